"""Simulation: the size of the segments' heterogeneity test (issue 22, item 5).

Each replicate generates the bucket-ramp experiment of ``tests/_generators.py`` (a true effect of
−0.30 per treatment turn for every unit: no heterogeneity) and gives every unit a segment value
drawn independently of everything else — **balanced** (three values, 1/3 each) or
**unbalanced** (0.6 / 0.3 / 0.1) — written on every event of the unit. The public
``analyze(..., segments=["seg"])`` (explain, recovery and completeness off) then tests whether
the clean effect differs between the values (Cochran's Q); with one true effect the test must
reject at most ``α`` of the time (its size), per phase and combined. One JSONL row per
(config, seed) with the p-values; re-running resumes.

Usage::

    python benchmarks/sim_segments.py --seeds 0:500                  # both configurations
    python benchmarks/sim_segments.py --seeds 0:500 --configs balanced
    python benchmarks/sim_segments.py --summary                      # rates ± MC SE
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _generators import RampSpec, generate, ledger_file  # noqa: E402
from sim_moved import append_rows, parse_seeds, read_rows  # noqa: E402

OUT = HERE / "results" / "sim_segments_rows.jsonl"
ALPHA = 0.05
UNITS = 4000
CONFIGS: dict[str, tuple[float, ...]] = {
    "balanced": (1 / 3, 1 / 3, 1 / 3),
    "unbalanced": (0.6, 0.3, 0.1),
}
PHASES = ("1", "2", "combined")


def run_one(config: str, seed: int, units: int = UNITS) -> dict[str, Any]:
    """One replicate: Cochran's p-value per phase (and the values it compared)."""
    import polars as pl

    import analysis as ps

    t0 = time.process_time()
    events = generate(RampSpec(n_units=units, seed=seed))
    rng = np.random.default_rng(10_000 + seed)
    users = events.get_column("user_id").unique().sort()
    shares = np.array(CONFIGS[config])
    values = rng.choice(len(shares), size=users.len(), p=shares)
    seg = pl.DataFrame({"user_id": users, "seg": [f"s{v}" for v in values]})
    events = events.join(seg, on="user_id")
    with tempfile.TemporaryDirectory() as tmp:
        res = ps.analyze(
            events,
            ledger_file(Path(tmp)),
            metrics=[ps.Ratio("helpfulness")],
            segments=["seg"],
            explain=False,
            recovery=False,
            completeness=False,
            late_hours=0.0,
        )
    het: dict[str, Any] = {getattr(r, "phase", ""): r for r in res.segment_heterogeneity.rows}
    return {
        "config": config,
        "seed": seed,
        "units": units,
        "values": {p: int(het[p].values) if p in het else 0 for p in PHASES},
        "pvalue": {p: float(het[p].pvalue) if p in het else math.nan for p in PHASES},
        # every value's clean row, so a rule for which values enter the test can be judged
        # afterwards on the same replicates
        "rows": {
            p: [
                [r.segment_value, r.effect, r.se, r.n_control, r.n_arm]
                for r in res.segments.rows
                if r.phase == p
            ]
            for p in PHASES
        },
        "cpu_seconds": time.process_time() - t0,
    }


def run(out: Path, configs: Sequence[str], seeds: range, units: int) -> int:
    """The missing replicates of ``configs × seeds``; returns how many ran."""
    done = {(r["config"], int(r["seed"]), int(r["units"])) for r in read_rows(out)}
    todo = [(c, s) for s in seeds for c in configs if (c, s, units) not in done]
    print(f"# {len(todo)} replicates to run", flush=True)
    for k, (c, s) in enumerate(todo, 1):
        append_rows(out, [run_one(c, s, units)])
        if k % 10 == 0 or k == len(todo):
            print(f"# {k}/{len(todo)} done", flush=True)
    return len(todo)


def retest(row: dict[str, Any]) -> dict[str, float]:
    """Cochran's p-value per phase recomputed from a replicate's stored value rows with the
    package's current rule (:func:`analysis.metrics._segments.heterogeneity`: which values
    enter the test); NaN where no test is made."""
    from analysis.metrics._segments import heterogeneity
    from analysis.metrics.results import SegmentRow

    nan = math.nan
    segs = [
        SegmentRow(
            segment="seg",
            segment_value=v,
            values=v,
            metric="helpfulness",
            phase=phase,
            control="control",
            arm="treatment",
            n_control=int(nc),
            n_arm=int(nt),
            control_mean=nan,
            arm_mean=nan,
            effect=float(e),
            effect_ci_lower=nan,
            effect_ci_upper=nan,
            se=float(se),
            pvalue=nan,
            pvalue_bh=nan,
            significant=False,
        )
        for phase, values in row["rows"].items()
        for v, e, se, nc, nt in values
        if e is not None and se is not None
    ]
    got = {h.phase: h.pvalue for h in heterogeneity(segs)}
    return {p: float(got.get(p, nan)) for p in PHASES}


def summary(out: Path) -> str:
    """Rejection rates at α per configuration × phase, with binomial MC SEs (the test of the
    package's current rule, recomputed from the stored value rows; replicates written before
    the rows were stored are left out)."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for r in read_rows(out):
        if "rows" in r:
            rows.setdefault((r["config"], int(r["seed"])), {**r, "pvalue": retest(r)})
    lines = [
        f"| configuration | phase | replicates tested | rejected at α = {ALPHA} | MC SE | "
        "bound α + 3 MC SE |",
        "|---|---|---|---|---|---|",
    ]
    for config in CONFIGS:
        for phase in PHASES:
            p = np.array(
                [r["pvalue"][phase] for (c, _), r in rows.items() if c == config], dtype=float
            )
            total = p.size
            p = p[np.isfinite(p)]
            if not p.size:
                lines.append(f"| {config} | {phase} | 0 of {total} tested | – | – | – |")
                continue
            rate = float((p < ALPHA).mean())
            se = math.sqrt(ALPHA * (1 - ALPHA) / p.size)
            lines.append(
                f"| {config} | {phase} | {p.size} of {total} tested | {rate:.4f} | {se:.4f} | "
                f"{ALPHA + 3 * se:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=parse_seeds, default=range(500), help="A:B (0:500)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma list")
    parser.add_argument("--units", type=int, default=UNITS, help="units per replicate")
    parser.add_argument("--out", type=Path, default=OUT, help="JSONL output")
    parser.add_argument("--summary", action="store_true", help="print the rates and exit")
    args = parser.parse_args(argv)
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    if args.summary:
        print(summary(args.out), end="")
        return 0
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"--configs: unknown {unknown[0]!r}; use {', '.join(CONFIGS)}")
    run(args.out, configs, args.seeds, args.units)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
