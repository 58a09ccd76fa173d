"""The hand-written polars reference: split + contamination summary + clean per-arm summary.

Usage (the benchmarks run it in a child process)::

    python benchmarks/_handwritten.py EVENTS_DIR

Plain polars, written for speed and memory the way one would by hand for the sample ledger
(its boundaries written in): drop duplicate event ids (exact, via sorted 64-bit hashes), label
every event with the package's rules in their precedence (outside_window, after_end, crossover,
served_mismatch, stale_cache, carryover, clean; ``analysis.events.labelling``), with 64-bit
hashed unit / conversation keys and the two lookup tables (crossed units; each conversation's
first instant of its second revision) computed first in their own streaming passes. Then, in
one streaming ``collect_all``:

* the contamination summary: events / units / conversations per phase × arm × label, and the
  units and conversations with a contaminated event;
* tagged events and units per label × arm (the ``exclusions`` table of ``analyze``);
* per exposure phase × arm on the clean events: units, and per unit the sums and sums of
  squares of turns, helpfulness, thumbs-up (0/1 per unit) and cost — the moments of the four
  default metrics — and the event-level p95 of ``latency_ms``.

No validation beyond dropping duplicates, no pre-period adjustment, no time strata, no
confidence intervals, no explain or recovery tables: that is what ``analyze`` adds. Prints one
JSON object: ``{"n_events", "tagged": {"label|arm": events}, "wall"}``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Final

import polars as pl

LABELS = (
    "outside_window",
    "after_end",
    "crossover",
    "served_mismatch",
    "stale_cache",
    "carryover",
    "clean",
)
S = datetime.fromisoformat("2026-11-02T09:00:00+00:00")  # start
R = datetime.fromisoformat("2026-11-02T21:00:00+00:00")  # ramp
E = datetime.fromisoformat("2026-11-03T08:15:00+00:00")  # rollback
D = datetime.fromisoformat("2026-11-01T00:00:00+00:00")  # deploy of r41
ST: Final = "streaming"


def dedup(lf: pl.LazyFrame) -> pl.LazyFrame:
    """One row per ``event_id`` (the earliest ``ts``): candidates by sorted hashes, exact."""
    h = lf.select(pl.col("event_id").hash().alias("h")).collect(engine=ST).to_series().sort()
    cand = h.filter(h == h.shift(1)).unique()
    if cand.is_empty():
        return lf
    dups = (
        lf.filter(pl.col("event_id").hash().is_in(cand.implode()))
        .group_by("event_id")
        .len()
        .filter(pl.col("len") > 1)
        .select("event_id")
        .collect(engine=ST)["event_id"]
    )
    rep = pl.col("event_id").is_in(dups.implode())
    first = lf.filter(rep).sort("ts").unique(subset=["event_id"], keep="first")
    return pl.concat([lf.filter(~rep), first])


def label(lf: pl.LazyFrame) -> pl.LazyFrame:
    """``phase``, ``uk``/``ck`` (hashed keys), ``label`` (index in LABELS), ``arm`` (0/1/-1)."""
    ts = pl.col("ts")
    tagged = (pl.col("experiment_id") == "exp-17").fill_null(False)
    exposed = tagged & (ts >= S) & (ts < E)
    arm_rev = (
        pl.when(pl.col("arm") == "treatment")
        .then(pl.lit("r42"))
        .when(pl.col("arm") == "control")
        .then(pl.lit("r41"))
    )
    inferred = pl.when(exposed).then(arm_rev).when(ts >= D).then(pl.lit("r41"))
    lf = lf.with_columns(
        phase=(ts >= S).cast(pl.Int32) + (ts >= R).cast(pl.Int32) + (ts >= E).cast(pl.Int32),
        served=pl.coalesce("revision_id", inferred),
        uk=pl.col("user_id").hash(),
        ck=pl.col("conversation_id").hash(),
        exposed=exposed,
    )
    crossed = (
        lf.filter("exposed")
        .group_by("uk")
        .agg(lo=pl.col("arm").min(), hi=pl.col("arm").max())
        .filter(pl.col("lo") != pl.col("hi"))
        .select("uk", crossed=pl.lit(True))
        .collect(engine=ST)
        .lazy()
    )
    convs = lf.filter("exposed").select("ck").unique().collect(engine=ST).lazy()
    firsts = (
        lf.filter(pl.col("served").is_not_null())
        .join(convs, on="ck", how="semi")
        .group_by("ck", "served")
        .agg(m=ts.min())
    )
    multi = firsts.group_by("ck").agg(t1=pl.col("m").min(), n=pl.len()).filter(pl.col("n") > 1)
    t2 = (
        firsts.join(multi, on="ck")
        .group_by("ck")
        .agg(
            t1=pl.col("t1").min(),
            nxt=pl.col("m").filter(pl.col("m") > pl.col("t1")).min(),
            at=(pl.col("m") == pl.col("t1")).sum(),
        )
        .select("ck", t2=pl.when(pl.col("at") > 1).then("t1").otherwise("nxt"))
        .collect(engine=ST)
        .lazy()
    )
    lf = lf.join(crossed, on="uk", how="left").join(t2, on="ck", how="left")
    resp = pl.col("response_revision_id")
    code = (
        pl.when(~tagged | (ts < S))
        .then(pl.lit(0))
        .when(ts >= E)
        .then(pl.lit(1))
        .when(pl.col("crossed").fill_null(False))
        .then(pl.lit(2))
        .when((pl.col("served") != arm_rev).fill_null(False))
        .then(pl.lit(3))
        .when(resp.is_not_null() & (resp != pl.col("served")).fill_null(True))
        .then(pl.lit(4))
        .when((ts >= pl.col("t2")).fill_null(False))
        .then(pl.lit(5))
        .otherwise(pl.lit(6))
    )
    arm = (
        pl.when(tagged & pl.col("arm").is_not_null())
        .then(pl.col("arm").replace_strict(["control", "treatment"], [0, 1], default=-1))
        .otherwise(-1)
    )
    return lf.select(
        "phase", "uk", "ck", "ts", "helpfulness", "thumbs_up", "cost_usd", "latency_ms",
        label=code, arm=arm,
    )  # fmt: skip


def summaries(lf: pl.LazyFrame) -> list[pl.DataFrame]:
    """The contamination summary, the tagged counts and the clean per-arm moments."""
    cell = ["phase", "arm", "label"]
    pu = lf.group_by(*cell, "uk").agg(n=pl.len()).collect(engine=ST).lazy()
    pc = lf.group_by(*cell, "ck").agg(n=pl.len()).collect(engine=ST).lazy()
    bad = pl.col("label").is_in([1, 2, 3, 4, 5])
    clean = lf.filter((pl.col("label") == 6) & pl.col("phase").is_in([1, 2]))
    units = clean.group_by("phase", "arm", "uk").agg(
        turns=pl.len().cast(pl.Float64),
        help=pl.col("helpfulness").sum(),
        thumbs=pl.col("thumbs_up").cast(pl.Float64).max().fill_null(0.0),
        cost=pl.col("cost_usd").sum(),
    )
    v = ["turns", "help", "thumbs", "cost"]
    moments = units.group_by("phase", "arm").agg(
        pl.len().alias("units"),
        *[pl.col(c).sum().alias(f"s_{c}") for c in v],
        *[(pl.col(c) ** 2).sum().alias(f"q_{c}") for c in v],
        (pl.col("help") * pl.col("turns")).sum().alias("c_help_turns"),
    )
    p95 = clean.group_by("phase", "arm").agg(
        pl.col("latency_ms").quantile(0.95, interpolation="lower").alias("p95")
    )
    return pl.collect_all(
        [
            pu.group_by(*cell).agg(pl.col("n").sum(), units=pl.len()),
            pu.filter(bad).select(pl.col("uk").n_unique()),
            pc.group_by(*cell).agg(conversations=pl.len()),
            pc.filter(bad).select(pl.col("ck").n_unique()),
            pu.filter(pl.col("arm") >= 0).group_by("label", "arm").agg(pl.col("n").sum()),
            moments,
            p95,
        ],
        engine=ST,
    )


def main(events: str) -> None:
    """Run the reference on the export ``events`` (a Parquet file or a directory of them)."""
    t0 = time.perf_counter()
    source = events if events.endswith(".parquet") else f"{events}/**/*.parquet"
    lf = pl.scan_parquet(source, hive_partitioning=True)
    out = summaries(label(dedup(lf)))
    tagged = {
        f"{LABELS[r['label']]}|{['control', 'treatment'][r['arm']]}": int(r["n"])
        for r in out[4].to_dicts()
    }
    n = int(out[0]["n"].sum())
    print(json.dumps({"n_events": n, "tagged": tagged, "wall": time.perf_counter() - t0}))


if __name__ == "__main__":
    main(sys.argv[1])
