"""The ``promptstate`` command: a thin layer over the public API, and its exit-code contract.

Each subcommand lives in its own module of this package exposing ``register(subparsers)``;
they are discovered here so that start-up imports only :mod:`argparse` (heavy libraries are
imported inside each command's ``run``).

Exit codes (one contract for every command; ``docs/cli.md``):

- ``0`` ok;
- ``1`` a check found a problem (regression, SRM, crossover, a leg needing confirmation, a
  failed rollback action, a report that needs attention);
- ``2`` bad input: one line on stderr naming the file, row or entry and what to do; nothing the
  user owns was changed;
- ``3`` stale or invalid baseline — from ``gate``, ``baseline verify`` and ``baseline sync``
  only (elsewhere an invalid baseline store is bad input, 2);
- ``4`` internal error: one line saying so (the traceback with ``--debug``).

Where several apply, the highest in the order 4 > 2 > 3 > 1 wins
(:func:`analysis.errors.worst_exit`). :func:`main` is the only place that turns outcomes into
codes: a command returns 0 or 1 (or raises), everything else is decided here.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["build_parser", "main"]

#: Commands (``command`` or ``command subcommand``) that may exit 3 (stale or invalid baseline).
STALE_BASELINE_COMMANDS = frozenset({"gate", "baseline verify", "baseline sync"})

_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (e.g. `| head`)

#: errno values of an ``OSError`` that a user path causes (missing, not allowed, wrong kind).
_USER_PATH_ERRORS = {
    errno.ENOENT: "no such file or directory; check the path",
    errno.EACCES: "permission denied; check its permissions",
    errno.EPERM: "operation not permitted; check its permissions",
    errno.EISDIR: "is a directory; pass a file",
    errno.ENOTDIR: "a part of the path is not a directory; check the path",
    errno.ENAMETOOLONG: "the path is too long; use a shorter one",
    errno.ELOOP: "too many symbolic links; check the path",
    errno.EROFS: "read-only file system; write somewhere else",
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EEXIST: "already exists; remove it or choose another path",
    errno.ENOTEMPTY: "directory not empty; choose another path",
    errno.ETXTBSY: "file busy; retry when it is free",
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2).

    Subcommand parsers are made of the same class (``add_subparsers`` uses the parent's class).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand module of :mod:`analysis.cli`."""
    parser = _Parser(
        prog="promptstate",
        description=(
            "Make prompt rollbacks analysable: split event exports at rollout boundaries, "
            "compute clean per-arm metrics, gate on versioned eval baselines, plan rollbacks. "
            "Exit codes: 0 ok, 1 a check found a problem, 2 bad input, 3 stale or invalid "
            "baseline (gate, baseline verify, baseline sync), 4 internal error; where several "
            "apply, 4 > 2 > 3 > 1."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of an internal error (also accepted after the command, or "
        "with PROMPTSTATE_DEBUG=1)",
    )
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        help="the command to run (COMMAND --help for its options)",
    )
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
    """Run the command line; returns the exit code (also used by the console script).

    Never raises: usage errors return 2, ``--help``/``--version`` 0, an interrupt 130, a closed
    stdout pipe 141, and any exception that is not a :class:`~analysis.errors.PromptstateError`
    or an ``OSError`` on a user's path returns 4 with one line on stderr (the traceback with
    ``--debug``, accepted anywhere on the command line, or ``PROMPTSTATE_DEBUG=1``).
    """
    tokens = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in _options(tokens) or os.environ.get("PROMPTSTATE_DEBUG", "") not in (
        "",
        "0",
    )
    tokens = _without_debug(tokens)
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(tokens)
        if extra and not _late_positional(args, extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse: --help/--version (0), usage errors (2)
        return _system_exit(exc)
    except Exception as exc:  # a broken parser is an internal error
        return _internal(exc, debug)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return run_command(args, debug=debug)


def _late_positional(args: argparse.Namespace, extra: list[str]) -> bool:
    """Take a lone optional positional given after the options (``record consumer --ledger L
    NAME``): argparse fills ``NAME`` only when it follows ``ACTION`` directly, so it is left
    over; put it in its place. Returns whether ``extra`` was taken."""
    if len(extra) != 1 or extra[0].startswith("-") or getattr(args, "name", "") is not None:
        return False
    args.name = extra[0]
    return True


def run_command(args: argparse.Namespace, *, debug: bool = False) -> int:
    """Run ``args.func(args)`` and map its outcome onto the exit-code contract."""
    from analysis.errors import EXIT_BAD_INPUT, EXIT_PROBLEM, PromptstateError

    command = _command_name(args)
    try:
        code = args.func(args)
    except PromptstateError as exc:
        _error(str(exc))
        return _allowed(command, exc.exit_code)
    except KeyboardInterrupt:
        print("promptstate: interrupted", file=sys.stderr)
        return _INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return _BROKEN_PIPE
    except OSError as exc:
        if exc.errno in _USER_PATH_ERRORS and exc.filename is not None:
            path = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
            _error(f"{path}: {_USER_PATH_ERRORS[exc.errno]}")
            return EXIT_BAD_INPUT
        return _internal(exc, debug)
    except SystemExit as exc:  # a command that called parser.error() or sys.exit()
        return _allowed(command, _system_exit(exc))
    except Exception as exc:  # every other exception is a bug: exit 4
        return _internal(exc, debug)
    if not isinstance(code, int) or isinstance(code, bool) or code not in (0, 1, 2, 3):
        return _internal(
            RuntimeError(f"command {command!r} returned {code!r}, not an exit code"), debug
        )
    if code in (2, 3):
        return _allowed(command, code)
    return EXIT_PROBLEM if code == EXIT_PROBLEM else 0


def _allowed(command: str, code: int) -> int:
    """``code`` under the contract: 3 only from the baseline-checking commands (else 2)."""
    from analysis.errors import EXIT_BAD_INPUT, EXIT_STALE_BASELINE, worst_exit

    try:
        code = worst_exit(code)
    except ValueError:
        return _internal(RuntimeError(f"command {command!r} exited {code!r}"), debug=False)
    if code == EXIT_STALE_BASELINE and command not in STALE_BASELINE_COMMANDS:
        return EXIT_BAD_INPUT
    return code


def _command_name(args: argparse.Namespace) -> str:
    command = str(getattr(args, "command", "") or "")
    sub = getattr(args, f"{command}_command", None)
    return f"{command} {sub}" if sub else command


def _options(tokens: Sequence[str]) -> list[str]:
    """The tokens before a ``--`` end-of-options marker."""
    return list(tokens[: tokens.index("--")]) if "--" in tokens else list(tokens)


def _without_debug(tokens: list[str]) -> list[str]:
    """``tokens`` without ``--debug`` (accepted before or after the command)."""
    end = tokens.index("--") if "--" in tokens else len(tokens)
    return [t for t in tokens[:end] if t != "--debug"] + tokens[end:]


def _system_exit(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code if code in (0, 1, 2, 3, 4) else 2
    print(f"promptstate: error: {_one_line(str(code))}", file=sys.stderr)
    return 2


def _error(message: str) -> None:
    print(f"promptstate: error: {_one_line(message)}", file=sys.stderr)


def _one_line(message: str, limit: int = 2000) -> str:
    """``message`` on one line (line breaks become ``; ``), at most ``limit`` characters."""
    parts = [p.strip() for p in message.splitlines() if p.strip()]
    text = "; ".join(parts) if parts else message.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _internal(exc: BaseException, debug: bool) -> int:
    """Report a bug: one line (the traceback too with ``debug``); exit code 4."""
    from analysis.errors import EXIT_INTERNAL

    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    hint = "please report it" if debug else "run with --debug for the traceback; please report it"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = _one_line(lines[0] if lines else "", limit=300)
    print(f"promptstate: internal error: {name}: {message} ({hint})", file=sys.stderr)
    return EXIT_INTERNAL


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that the exit flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stdout already replaced
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
