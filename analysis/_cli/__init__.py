"""Subcommands of the ``promptstate`` CLI, one module each (discovered by :mod:`analysis.cli`).

A module defines ``register(subparsers)`` that adds its parser and sets ``func`` to a callable
``(argparse.Namespace) -> int``. Keep module-level imports to the standard library so that
``promptstate --help`` stays fast; import the API inside the command function.
"""
