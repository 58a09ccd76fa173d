"""Benchmark: ``analyze`` with three metrics (one with CUPED) on ~20 million events.

Compares ``analyze`` with a hand-written polars query computing the same aggregates (per phase ×
arm unit-level moments, enrollment-cohort × arm moments, naive per-arm moments, the CUPED
pre-exposure window, SRM counts and exclusions), each in a fresh subprocess so that its peak
resident memory (``ru_maxrss``) is its own. Both read the same labelled Parquet file (the output
of ``split``, materialised once), so the comparison is about the aggregation and statistics.

    python benchmarks/bench_analyze.py                 # 20M events (generates them once)
    python benchmarks/bench_analyze.py --users 20000   # a quick run

Data is written to ``benchmarks/data/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
LEDGER = ROOT / "data_samples" / "ledger.yaml"


def _metrics() -> list[object]:
    from analysis.metrics.definitions import Mean, Proportion, Ratio

    return [
        Ratio("helpfulness"),
        Proportion("thumbs_up"),
        Mean("cost_usd", cuped=True, direction="lower"),
    ]


def prepare(users: int, seed: int) -> Path:
    """Generate the export and its labelled version once; return the labelled file."""
    import polars as pl

    from analysis.events.labelling import split
    from analysis.sample import SampleSpec, generate

    DATA.mkdir(parents=True, exist_ok=True)
    raw = DATA / f"events_{users}"
    labelled = DATA / f"labelled_{users}.parquet"
    if not raw.exists():
        # generated in shards of at most 50 000 units (the generator holds a shard in memory);
        # ids get a shard prefix so that units, conversations and events stay distinct
        t = time.perf_counter()
        tmp = raw.with_suffix(".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        rows, shard, left = 0, 0, users
        while left > 0:
            size = min(50_000, left)
            events = generate(SampleSpec(n_users=size, seed=seed + shard)).events
            ids = [c for c in ("event_id", "user_id", "conversation_id", "cache_key")
                   if c in events.columns and events.schema[c] == pl.String]  # fmt: skip
            events = events.with_columns((pl.lit(f"s{shard}-") + pl.col(c)).alias(c) for c in ids)
            events.write_parquet(tmp / f"part-{shard:03d}.parquet", compression="zstd")
            rows += events.height
            left -= size
            shard += 1
            del events
        tmp.rename(raw)
        print(f"generated {rows:,} rows in {shard} shards in {time.perf_counter() - t:.0f}s")
    if not labelled.exists():
        t = time.perf_counter()
        res = split(pl.scan_parquet(raw / "*.parquet"), LEDGER)
        res.frame.to_native().sink_parquet(labelled)
        print(f"labelled with split() in {time.perf_counter() - t:.0f}s")
    return labelled


def run_analyze(labelled: Path, full: bool) -> float:
    import dataclasses

    import narwhals as nw
    import polars as pl

    from analysis.events.labelling import split
    from analysis.metrics import analyze

    # a SplitResult over the materialised labels (split() only validates here)
    base = split(pl.scan_parquet(labelled), LEDGER)
    labels = nw.from_native(pl.scan_parquet(labelled))
    res = dataclasses.replace(
        base, frame=labels, keyed=labels, unit_key=base.unit, conversation_key="conversation_id"
    )
    t = time.perf_counter()
    out = analyze(res, metrics=_metrics(), explain=full, recovery=full, materialize=False)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t
    e = out.effect("helpfulness")
    lo, hi = e.effect_ci_lower, e.effect_ci_upper
    print(f"  clean helpfulness effect {e.effect:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    return elapsed


def run_polars(labelled: Path) -> float:
    """The same aggregates written by hand in polars (one collect_all)."""
    import polars as pl

    t = time.perf_counter()
    lf = pl.scan_parquet(labelled).select(
        "ts", "user_id", "experiment_id", "arm", "phase", "contamination",
        "helpfulness", "thumbs_up", "cost_usd",
    )  # fmt: skip
    exposure = pl.col("phase").is_in([1, 2])
    tagged = lf.filter((pl.col("experiment_id") == "exp-17") & pl.col("arm").is_not_null())
    clean = lf.filter((pl.col("contamination") == "clean") & exposure)
    enroll = (
        tagged.filter(exposure & ~pl.col("contamination").is_in(["outside_window", "after_end"]))
        .group_by("user_id")
        .agg(pl.col("ts").min().alias("first_ts"), pl.col("phase").min().alias("cohort"),
             pl.col("arm").min().alias("first_arm"))
    )  # fmt: skip
    pre = (
        lf.join(enroll.select("user_id", "first_ts"), on="user_id")
        .filter((pl.col("ts") < pl.col("first_ts"))
                & (pl.col("ts") >= pl.col("first_ts") - pl.duration(days=14)))
        .group_by("user_id")
        .agg(pl.col("cost_usd").sum().alias("z"))
    )  # fmt: skip
    unit_aggs = [
        pl.col("helpfulness").sum().alias("hy"),
        pl.col("helpfulness").is_not_null().sum().cast(pl.Float64).alias("hx"),
        pl.col("thumbs_up").cast(pl.Float64).max().fill_null(0).alias("t"),
        pl.col("cost_usd").sum().alias("c"),
    ]

    def moments(units: pl.LazyFrame, keys: list[str], cov: bool) -> pl.LazyFrame:
        names = ["hy", "hx", "t", "c"] + (["z"] if cov else [])
        pairs = [("hy", "hy"), ("hy", "hx"), ("hx", "hx"), ("t", "t"), ("c", "c")]
        if cov:
            pairs += [("c", "z"), ("z", "z")]
        return units.group_by(keys).agg(
            pl.len(), *[pl.col(n).sum().alias(f"s_{n}") for n in names],
            *[(pl.col(a) * pl.col(b)).sum().alias(f"c_{a}_{b}") for a, b in pairs],
        )  # fmt: skip

    def with_cov(units: pl.LazyFrame) -> pl.LazyFrame:
        return units.join(pre, on="user_id", how="left").with_columns(pl.col("z").fill_null(0.0))

    by_phase = with_cov(clean.group_by("phase", "arm", "user_id").agg(unit_aggs))
    by_cohort = with_cov(
        clean.join(enroll.select("user_id", "cohort"), on="user_id")
        .group_by("cohort", "arm", "user_id")
        .agg(unit_aggs)
    )
    naive = tagged.group_by("arm", "user_id").agg(unit_aggs)
    outs = pl.collect_all(
        [
            moments(by_phase, ["phase", "arm"], True),
            moments(by_cohort, ["cohort", "arm"], True),
            moments(naive, ["arm"], False),
            enroll.group_by("cohort", "first_arm").len(),
            tagged.group_by("contamination", "arm").agg(pl.len(), pl.col("user_id").n_unique()),
        ]
    )
    assert all(o.height for o in outs)
    return time.perf_counter() - t


def child(mode: str, labelled: Path) -> None:
    elapsed = run_polars(labelled) if mode == "polars" else run_analyze(labelled, mode == "full")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "seconds": elapsed, "peak_rss_mb": rss_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=650_000, help="units (~31 events each)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (best is kept)")
    parser.add_argument(
        "--child", choices=("prepare", "polars", "core", "full"), help=argparse.SUPPRESS
    )
    parser.add_argument("--labelled", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "prepare":
        prepare(args.users, args.seed)
        return
    if args.child:
        child(args.child, args.labelled)
        return
    # prepare in a child too: ru_maxrss survives fork + exec, so the parent must stay small
    subprocess.run(
        [sys.executable, __file__, "--child", "prepare", "--users", str(args.users),
         "--seed", str(args.seed)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    labelled = DATA / f"labelled_{args.users}.parquet"
    import polars as pl

    n = pl.scan_parquet(labelled).select(pl.len()).collect().item()
    print(f"{n:,} labelled events in {labelled}")
    best: dict[str, dict[str, float]] = {}
    for mode in ("polars", "core", "full"):
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--labelled", str(labelled)],
                check=True, capture_output=True, text=True, cwd=ROOT,
            )  # fmt: skip
            lines = out.stdout.strip().splitlines()
            rec = json.loads(lines[-1])
            if mode not in best or rec["seconds"] < best[mode]["seconds"]:
                best[mode] = rec
            extra = lines[0] if len(lines) > 1 else ""
            print(
                f"{mode:>6}: {rec['seconds']:.2f}s  peak RSS {rec['peak_rss_mb']:.0f} MB  {extra}"
            )
    ratio = best["core"]["seconds"] / best["polars"]["seconds"]
    print(
        f"\nbest of {args.repeat}: polars {best['polars']['seconds']:.2f}s, analyze (3 metrics, "
        f"CUPED) {best['core']['seconds']:.2f}s = {ratio:.2f}x, analyze with explain + recovery "
        f"{best['full']['seconds']:.2f}s; peak RSS analyze {best['core']['peak_rss_mb']:.0f} MB, "
        f"full {best['full']['peak_rss_mb']:.0f} MB, polars {best['polars']['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
