"""Benchmark: ``split`` + ``contamination_summary`` against a hand-written polars query.

Usage::

    python -m analysis.sample --events 20000000 --out benchmarks/data/e20m   # ~1.5 min, ~630 MB
    python benchmarks/bench_split.py benchmarks/data/e20m --repeat 3

Each measurement runs in a fresh subprocess that reports its wall time and peak resident memory
(``ru_maxrss``). The reference is plain polars written the way we would write it by hand for
speed and memory: the same rules with the sample ledger's boundaries written in, 64-bit hashed
unit/conversation keys, the small lookup tables (crossed units, conversations' second revision)
computed first, and the summary from per-cell × unit and per-cell × conversation aggregates. It
does no validation beyond dropping duplicate event ids; ``split`` also validates the export.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROMPTSTATE = """
import resource, time, json
t0 = time.perf_counter()
from analysis import split, contamination_summary
result = split({events!r}, {ledger!r}, "exp-17")
summary = contamination_summary(result)
wall = time.perf_counter() - t0
print(json.dumps({{"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "n": summary.n_events, "clean": summary.total("clean").n_events}}))
"""

POLARS = """
import resource, time, json
t0 = time.perf_counter()
from datetime import datetime
import polars as pl
S = datetime.fromisoformat("2026-11-02T09:00:00+00:00")
R = datetime.fromisoformat("2026-11-02T21:00:00+00:00")
E = datetime.fromisoformat("2026-11-03T08:15:00+00:00")
D = datetime.fromisoformat("2026-11-01T00:00:00+00:00")
ST = dict(engine="streaming")
lf = pl.scan_parquet({glob!r}, hive_partitioning=True)
h = lf.select(pl.col("event_id").hash().alias("h")).collect(**ST).to_series().sort()
dups = lf.filter(pl.col("event_id").hash().is_in(h.filter(h == h.shift(1)).unique().implode())).select("event_id").unique().collect(**ST)["event_id"]
if len(dups):
    rep = pl.col("event_id").is_in(dups.implode())
    lf = pl.concat([lf.filter(~rep), lf.filter(rep).sort("ts").unique(subset=["event_id"], keep="first")])
ts = pl.col("ts")
tagged = (pl.col("experiment_id") == "exp-17").fill_null(False)
exposed = tagged & (ts >= S) & (ts < E)
arm_rev = pl.when(pl.col("arm") == "treatment").then(pl.lit("r42")).when(pl.col("arm") == "control").then(pl.lit("r41"))
inferred = pl.when(exposed).then(arm_rev).when(ts >= D).then(pl.lit("r41"))
lf = lf.with_columns(
    phase=(ts >= S).cast(pl.Int32) + (ts >= R).cast(pl.Int32) + (ts >= E).cast(pl.Int32),
    served_revision=pl.coalesce("revision_id", inferred),
    uk=pl.col("user_id").hash(), ck=pl.col("conversation_id").hash(), exposed=exposed,
)
crossed = (lf.filter("exposed").group_by("uk").agg(lo=pl.col("arm").min(), hi=pl.col("arm").max())
           .filter(pl.col("lo") != pl.col("hi")).select("uk", crossed=pl.lit(True)).collect(**ST).lazy())
convs = lf.filter("exposed").select("ck").unique().collect(**ST).lazy()
firsts = (lf.filter(pl.col("served_revision").is_not_null()).join(convs, on="ck", how="semi")
          .group_by("ck", "served_revision").agg(m=ts.min()))
multi = firsts.group_by("ck").agg(t1=pl.col("m").min(), n=pl.len()).filter(pl.col("n") > 1)
t2 = (firsts.join(multi, on="ck").group_by("ck")
      .agg(t1=pl.col("t1").min(), nxt=pl.col("m").filter(pl.col("m") > pl.col("t1")).min(),
           at=(pl.col("m") == pl.col("t1")).sum())
      .select("ck", t2=pl.when(pl.col("at") > 1).then("t1").otherwise("nxt")).collect(**ST).lazy())
lf = lf.join(crossed, on="uk", how="left").join(t2, on="ck", how="left")
label = (
    pl.when(~tagged | (ts < S)).then(pl.lit(0))
    .when(ts >= E).then(pl.lit(1))
    .when(pl.col("crossed").fill_null(False)).then(pl.lit(2))
    .when((pl.col("served_revision") != arm_rev).fill_null(False)).then(pl.lit(3))
    .when(pl.col("response_revision_id").is_not_null() & (pl.col("response_revision_id") != pl.col("served_revision"))).then(pl.lit(4))
    .when((ts >= pl.col("t2")).fill_null(False)).then(pl.lit(5))
    .otherwise(pl.lit(6))
)
arm = pl.when(tagged).then(pl.col("arm").replace_strict(["control", "treatment"], [0, 1], default=-1)).otherwise(-1)
lf = lf.select("phase", "uk", "ck", label=label, arm=arm)
cell = ["phase", "arm", "label"]
pu = lf.group_by(*cell, "uk").agg(n=pl.len()).collect(**ST).lazy()
pc = lf.group_by(*cell, "ck").agg(n=pl.len()).collect(**ST).lazy()
bad = pl.col("label").is_in([1, 2, 3, 4, 5])
out = pl.collect_all([
    pu.group_by(*cell).agg(pl.col("n").sum(), pl.len()),
    pu.filter(bad).select(pl.col("uk").n_unique()),
    pu.group_by("label").agg(pl.col("n").sum(), pl.col("uk").n_unique()),
    pc.group_by(*cell).agg(pl.len()),
    pc.filter(bad).select(pl.col("ck").n_unique()),
    pc.group_by("label").agg(pl.col("ck").n_unique()),
])
wall = time.perf_counter() - t0
by_label = out[2]
clean = by_label.filter(pl.col("label") == 6)["n"][0]
print(json.dumps({{"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "n": int(by_label["n"].sum()), "clean": int(clean)}}))
"""


def run(code: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path, help="directory of the generated export")
    parser.add_argument("--ledger", type=Path, default=ROOT / "data_samples" / "ledger.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    glob = str(args.events / "**" / "*.parquet")
    results: dict[str, list[dict[str, float]]] = {"promptstate": [], "polars": []}
    for _ in range(args.repeat):
        results["polars"].append(run(POLARS.format(glob=glob)))
        results["promptstate"].append(
            run(PROMPTSTATE.format(events=str(args.events), ledger=str(args.ledger)))
        )
    ours, ref = results["promptstate"], results["polars"]
    assert ours[0]["n"] == ref[0]["n"] and ours[0]["clean"] == ref[0]["clean"], (ours, ref)
    med = {k: statistics.median(r["wall"] for r in v) for k, v in results.items()}
    rss = {k: max(r["rss_mb"] for r in v) for k, v in results.items()}
    print(f"events: {int(ours[0]['n']):,} (clean {int(ours[0]['clean']):,})")
    for k in ("polars", "promptstate"):
        walls = ", ".join(f"{r['wall']:.2f}" for r in results[k])
        print(f"{k:12s} median {med[k]:6.2f} s  [{walls}]  peak RSS {rss[k]:7.0f} MB")
    print(f"ratio promptstate / polars: {med['promptstate'] / med['polars']:.2f} (floor: 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
