"""Benchmark: what the first looks of a sequential analysis cost (issue 22, item 2: ≤ 2× one
analysis).

Times, side by side in one process on the same labelled events (median of ``--repeat``; wall
and CPU seconds):

* ``fixed``: ``analyze`` without ``sequential`` — one analysis;
* ``sequential``: ``analyze(sequential=True, planned_units=...)``, which also computes the clean
  effect at every time-block boundary and the first look of each decision
  (:mod:`analysis.metrics._looks`: one extra window pass over the per-unit table).

    python benchmarks/bench_looks.py                   # the sample's generator, 50,000 users
    python benchmarks/bench_looks.py --users 200000 --repeat 3
    python benchmarks/bench_looks.py --generator ramp --users 40000   # 12 looks

The export is the sample's (``analysis.sample``: a canary, a ramp and a rollback over several
days, 6-hour blocks); the metrics are the sample's three moment metrics plus a guardrail.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000, help="units of the sample")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--generator",
        choices=("sample", "ramp"),
        default="sample",
        help="the sample's generator, or tests/_generators.py's 72-hour ramp (12 looks)",
    )
    args = parser.parse_args(argv)

    import analysis as ps

    if args.generator == "sample":
        from analysis.sample import SampleSpec, generate

        events = generate(SampleSpec(n_users=args.users, seed=args.seed)).events
        ledger = ROOT / "data_samples" / "ledger.yaml"
        metrics = [
            ps.Ratio("helpfulness", direction="higher", guardrail="5%"),
            ps.Mean("cost_usd", direction="lower"),
            ps.Proportion("thumbs_up", direction="higher"),
        ]
    else:
        import tempfile

        sys.path.insert(0, str(ROOT / "tests"))
        from _generators import RampSpec, ledger_file
        from _generators import generate as generate_ramp

        events = generate_ramp(RampSpec(n_units=args.users, seed=args.seed))
        ledger = ledger_file(Path(tempfile.mkdtemp()))
        metrics = [
            ps.Ratio("helpfulness", direction="higher", guardrail=0.1),
            ps.Mean("helpfulness", direction="higher", name="per_unit"),
        ]
    split = ps.split(events, ledger)
    kw: dict[str, Any] = {"metrics": metrics, "explain": False, "recovery": False}
    ps.analyze(split, **kw)  # warm-up (imports, first compilation)
    fixed = _timed(lambda: ps.analyze(split, **kw), args.repeat)
    seq = _timed(
        lambda: ps.analyze(split, sequential=True, planned_units=args.users, **kw), args.repeat
    )
    looks = max((r.look for r in seq[2].looks.rows), default=0)
    print(f"{args.generator}: units {args.users:,}, events {events.height:,}, looks {looks}")
    print("| run | wall s | CPU s |")
    print("|---|---|---|")
    print(f"| analyze (one analysis) | {fixed[0]:.2f} | {fixed[1]:.2f} |")
    print(f"| analyze --sequential (with every look) | {seq[0]:.2f} | {seq[1]:.2f} |")
    print(f"| ratio | **{seq[0] / fixed[0]:.2f}** | **{seq[1] / fixed[1]:.2f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
