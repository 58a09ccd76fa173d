"""Helpers shared by the subcommands: output formats, progress on stderr, column maps."""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "add_columns_option",
    "add_format_option",
    "add_progress_option",
    "number",
    "parse_columns",
    "progress",
    "write_output",
]

FORMATS = ("table", "json", "markdown")


def add_format_option(parser: argparse.ArgumentParser, formats: tuple[str, ...] = FORMATS) -> None:
    """Add ``--format`` with the given choices (first is the default)."""
    parser.add_argument(
        "--format",
        choices=formats,
        default=formats[0],
        help=f"output format (default: {formats[0]})",
    )


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--progress/--no-progress`` (default: progress when stderr is a terminal)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: when stderr is a terminal)",
    )


def add_columns_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--column CANONICAL=YOURS`` (repeatable) and ``--columns FILE`` (YAML/JSON map)."""
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="CANONICAL=YOURS",
        help="map a canonical column to the export's name, e.g. user_id=account (repeatable)",
    )
    parser.add_argument(
        "--columns",
        type=Path,
        metavar="FILE",
        help="YAML or JSON file mapping canonical column names to the export's names",
    )


def parse_columns(args: argparse.Namespace) -> dict[str, str]:
    """Read the column map given by ``--columns FILE`` and ``--column A=B`` (the latter wins)."""
    from analysis.errors import PromptstateError

    mapping: dict[str, str] = {}
    if getattr(args, "columns", None) is not None:
        from analysis import _yaml

        path: Path = args.columns
        data = _yaml.load(path, what="column map", error=PromptstateError)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise PromptstateError(
                f"{path}: the column map must be a mapping canonical_name: your_column_name"
            )
        mapping.update(data)
    for item in getattr(args, "column", []) or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise PromptstateError(f"--column {item!r}: expected CANONICAL=YOURS, e.g. user_id=uid")
        mapping[key.strip()] = value.strip()
    return mapping


def number(
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An argparse ``type=`` that parses a finite number in a range, e.g. ``(0, 1)``.

    NaN, infinities and values outside ``[low, high]`` (bounds excluded with ``low_open`` /
    ``high_open``) are refused with a message naming the range; argparse then exits with
    code 2.

    >>> number(low=0, high=1, low_open=True, high_open=True)("0.05")
    0.05
    """
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    span = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    kind = "a whole number" if integer else "a number"

    def parse(text: str) -> float:
        try:
            value = float(int(text)) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind} in {span}") from None
        bad = not math.isfinite(value)
        bad = bad or (low is not None and (value < low or (low_open and value == low)))
        bad = bad or (high is not None and (value > high or (high_open and value == high)))
        if bad:
            raise argparse.ArgumentTypeError(f"{text!r} must be {kind} in {span}")
        return int(value) if integer else value

    return parse


def write_output(text: str, out: Path | None = None) -> None:
    """Print ``text`` to stdout, or write it atomically to ``out``."""
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from analysis._io import atomic_write_text

    atomic_write_text(out, text if text.endswith("\n") else text + "\n")


@contextmanager
def progress(label: str, *, enabled: bool | None = None) -> Iterator[None]:
    """Show ``label`` with a spinner and elapsed seconds on stderr while the block runs.

    Shown only when stderr is a terminal (or ``enabled=True``); a final line reports the time.
    """
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield
        return
    done = threading.Event()
    start = time.perf_counter()

    def spin() -> None:
        frames = "|/-\\"
        i = 0
        while not done.wait(0.2):
            elapsed = time.perf_counter() - start
            sys.stderr.write(f"\r{frames[i % 4]} {label} ... {elapsed:5.1f}s")
            sys.stderr.flush()
            i += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.stderr.write(f"\r  {label} done in {time.perf_counter() - start:.1f}s\n")
        sys.stderr.flush()
