"""The ``promptstate`` command: a thin layer over the public API.

:func:`main` (in :mod:`analysis.cli._main`) builds the parser from the subcommand modules of
this package, one module each (``analyze``, ``baseline``, ``gate``, ``ledger``, ``report``,
``rollback``, ``split``, ``state``). A subcommand module defines ``register(subparsers)``
that adds its parser and sets ``func`` to a callable ``(argparse.Namespace) -> int``. Keep
module-level imports to the standard library so that ``promptstate --help`` stays fast; import
the API inside the command function.
"""

from __future__ import annotations

from analysis.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
