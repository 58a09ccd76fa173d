"""The ``promptstate`` command: a thin layer over the public API.

Each subcommand lives in its own module of this package exposing ``register(subparsers)``;
they are discovered here so that start-up imports only :mod:`argparse` (heavy libraries are
imported inside each command's ``run``). Exit codes: 0 ok, 1 the check found a problem,
2 bad input, 3 stale or invalid baseline.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand module of :mod:`analysis.cli`."""
    parser = argparse.ArgumentParser(
        prog="promptstate",
        description=(
            "Make prompt rollbacks analysable: split event exports at rollout boundaries, "
            "compute clean per-arm metrics, gate on versioned eval baselines, plan rollbacks. "
            "Exit codes: 0 ok, 1 a check found a problem, 2 bad input, 3 stale or invalid baseline."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"analysis.cli.{info.name}")
        module.register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("promptstate")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by the console script)."""
    from analysis.errors import PromptstateError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except PromptstateError as exc:
        print(f"promptstate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        print(f"promptstate: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print("promptstate: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
