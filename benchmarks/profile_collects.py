"""Profile ``promptstate analyze`` on polars: time and memory of every collect, by caller.

Usage::

    python benchmarks/profile_collects.py EVENTS [--ledger L] [--patch FILE ...] [-- CLI args]

Runs ``promptstate analyze EVENTS --ledger L --metrics M --format json`` in this process with every polars
``LazyFrame.collect``, ``polars.collect_all`` and ``LazyFrame.sink_parquet`` wrapped: for each
call, the package function that made it (first frame under ``analysis/``), the engine asked
for, its wall time, the resident memory before it and the peak during it (a thread samples RSS
every 20 ms). Prints one line per call and a summary: where the time went and which call set
the process's peak. ``--patch FILE`` executes a Python file first (to try a change to the
package without editing it, e.g. ``benchmarks/prototypes/streaming_collects.py``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

GB = 1024**3
ROOT = Path(__file__).resolve().parent.parent


class _Sampler:
    """Samples this process's RSS; ``window()`` starts a new peak window."""

    def __init__(self, interval: float = 0.02) -> None:
        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.overall = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.proc.memory_info().rss
            self.peak = max(self.peak, rss)
            self.overall = max(self.overall, rss)
            time.sleep(self.interval)

    def window(self) -> int:
        """Start a new window; return the current RSS."""
        rss = self.proc.memory_info().rss
        self.peak = rss
        return rss

    def stop(self) -> None:
        self._stop.set()


def _caller() -> str:
    """The innermost frame in the package (``analysis/``), as ``module.function:line``."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "/analysis/" in frame.filename and "site-packages" not in frame.filename:
            mod = frame.filename.split("/analysis/", 1)[1].removesuffix(".py").replace("/", ".")
            return f"{mod}.{frame.name}:{frame.lineno}"
    return "?"


RECORDS: list[dict[str, Any]] = []


def _wrap(owner: Any, name: str, sampler: _Sampler, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        where = _caller()
        engine = kwargs.get("engine", "auto")
        before = sampler.window()
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            RECORDS.append(
                {
                    "call": label,
                    "where": where,
                    "engine": engine if isinstance(engine, str) else type(engine).__name__,
                    "seconds": time.perf_counter() - t0,
                    "rss_before_gb": before / GB,
                    "peak_gb": sampler.peak / GB,
                    "n": len(args[0]) if label == "collect_all" else 1,
                }
            )
            sampler.window()

    setattr(owner, name, wrapped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", help="event export (file, directory or glob)")
    parser.add_argument(
        "--ledger", default=str(ROOT / "data_samples" / "ledger.yaml"), help="rollout ledger"
    )
    parser.add_argument(
        "--metrics",
        default=str(ROOT / "data_samples" / "metrics.yaml"),
        help="metrics file (default: the sample's four metrics)",
    )
    parser.add_argument(
        "--patch", action="append", default=[], help="Python file executed first (repeatable)"
    )
    parser.add_argument("rest", nargs="*", help="extra arguments for `promptstate analyze`")
    args = parser.parse_args(argv)
    for patch in args.patch:
        exec(compile(Path(patch).read_text(), patch, "exec"), {"__name__": "__patch__"})
    import polars as pl

    sampler = _Sampler()
    _wrap(pl.LazyFrame, "collect", sampler, "collect")
    _wrap(pl.LazyFrame, "sink_parquet", sampler, "sink_parquet")
    _wrap(pl, "collect_all", sampler, "collect_all")
    import analysis
    from analysis.cli import main as cli

    print(f"package: {Path(str(analysis.__file__)).parent}", flush=True)

    t0 = time.perf_counter()
    cmd = ["analyze", args.events, "--ledger", args.ledger, "--metrics", args.metrics]
    cmd += ["--format", "json", *args.rest]
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(cmd)
    total = time.perf_counter() - t0
    sampler.stop()
    print(f"{'call':12s} {'engine':9s} {'s':>7s} {'before':>7s} {'peak':>7s}  where")
    for r in RECORDS:
        print(
            f"{r['call']:12s} {r['engine']:9s} {r['seconds']:7.2f} {r['rss_before_gb']:6.2f}G "
            f"{r['peak_gb']:6.2f}G  {r['where']}" + (f" ({r['n']} frames)" if r["n"] > 1 else "")
        )
    timed = sum(r["seconds"] for r in RECORDS)
    top = max(RECORDS, key=lambda r: r["peak_gb"]) if RECORDS else None
    print(
        f"\nexit {code}; total {total:.1f} s, of which in collects/sinks {timed:.1f} s; "
        f"process peak RSS {sampler.overall / GB:.2f} GB"
        + (f", set by {top['call']} at {top['where']}" if top else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
