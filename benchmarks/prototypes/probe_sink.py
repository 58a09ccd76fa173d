"""Probe: peak memory of the labelled-events sink (``labelling.materialized``) by variant.

Usage (one variant per process; ``bench_e2e``'s ``_measure`` or ``/usr/bin/time -v``)::

    python benchmarks/prototypes/probe_sink.py EVENTS VARIANT

Variants: ``as_is`` (what ``materialized`` does: every column), ``no_cse`` (the same with
common-subplan elimination off), ``lean`` (the columns analyze reads), ``lean_no_cse``,
``no_dedup`` (the keyed frame built from an export whose duplicates were not dropped: the
``concat`` of ``_drop_duplicates`` left out), ``cols=a,b,...`` (those columns of the keyed
frame; ``EXPORT`` stands for the export's own columns); a suffix ``+contamination=when``,
``+contamination=enum`` or ``+contamination=gather`` computes the label column another way
first. Prints seconds and this process's peak RSS.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from analysis.events import loading
from analysis.events.labelling import LABELS, split

LEAN = (
    "ts", "experiment_id", "arm", "phase", "contamination", "served_revision",
    "conversation_id", "response_revision_id",
    "helpfulness", "thumbs_up", "cost_usd", "latency_ms", "__uk", "__ck",
)  # fmt: skip


def main(events: str, variant: str) -> None:
    """Split ``events`` with the sample ledger and sink the keyed frame as ``variant`` asks."""
    if variant == "no_dedup":
        loading._drop_duplicates = lambda frame, ids: frame
    ledger = Path(__file__).resolve().parents[2] / "data_samples" / "ledger.yaml"
    res = split(events, ledger)
    native = res.keyed.to_native()
    labels = pl.Series(list(LABELS))
    if "contamination=when" in variant:  # the label spelled out by a when/then chain
        spelled = pl.lit(None, dtype=pl.String)
        for code in reversed(range(len(LABELS))):
            spelled = (
                pl.when(pl.col("__code") == code).then(pl.lit(LABELS[code])).otherwise(spelled)
            )
        native = native.with_columns(spelled.alias("contamination"))
    if "contamination=enum" in variant:  # the label as an Enum over the same code
        enum = pl.Enum(list(LABELS))
        native = native.with_columns(
            pl.col("__code").cast(pl.UInt32).cast(enum).alias("contamination")
        )
    if "contamination=gather" in variant:
        native = native.with_columns(pl.lit(labels).gather(pl.col("__code")).alias("contamination"))
    variant = variant.split("+", maxsplit=1)[0]
    if variant.startswith("lean"):
        native = native.select(LEAN)
    if variant.startswith("cols="):
        wanted = variant.removeprefix("cols=").split(",")
        export = [c for c in native.collect_schema().names() if c in loading.CANONICAL_COLUMNS
                  or c in ("semantic_cache_hit", "cache_key", "helpfulness", "thumbs_up",
                           "latency_ms", "cost_usd", "cache_hit", "prompt_tokens",
                           "cached_tokens", "output_tokens", "parse_ok", "chunk")]  # fmt: skip
        native = native.select([*(export if "EXPORT" in wanted else []),
                                *(c for c in wanted if c != "EXPORT")])  # fmt: skip
    opts = pl.QueryOptFlags()
    if variant.endswith("no_cse"):
        opts = pl.QueryOptFlags(comm_subplan_elim=False)
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    with tempfile.TemporaryDirectory() as tmp:
        native.sink_parquet(
            Path(tmp) / "x.parquet", compression="lz4", engine="streaming", optimizations=opts
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"{variant}: sink {time.perf_counter() - t0:.1f} s; peak RSS before the sink "
          f"{before:.2f} GB, after {peak:.2f} GB")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
