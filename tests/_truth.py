"""The sample's ground truth as the split labels it now: the generator's labels plus the
symmetric ``prior_conversation`` exclusion (shared by tests/test_split.py and
tests/test_long_ledger.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl


def expected_labels(events_path: Path, ledger: Any, truth: pl.DataFrame) -> pl.DataFrame:
    """The generator's truth with the symmetric exclusion added: a turn the truth calls clean
    whose conversation (any event of the export) began before its exposure phase's start is
    ``prior_conversation`` (the sample has no ramp-moved units, so nothing else changes)."""
    ev = pl.read_parquet(events_path).select("event_id", "ts", "conversation_id")
    first = ev.group_by("conversation_id").agg(pl.col("ts").min().alias("c0"))
    ev = ev.unique("event_id", keep="first")
    starts = pl.DataFrame(
        {
            "phase": [p.id for p in ledger.phases("exp-17") if p.kind == "exposure"],
            "phase_start": [p.start for p in ledger.phases("exp-17") if p.kind == "exposure"],
        }
    ).with_columns(pl.col("phase").cast(pl.Int32))
    out = (
        truth.with_columns(pl.col("phase").cast(pl.Int32))
        .join(ev, on="event_id", how="left")
        .join(first, on="conversation_id", how="left")
        .join(starts, on="phase", how="left")
        .with_columns(
            pl.when((pl.col("label") == "clean") & (pl.col("c0") < pl.col("phase_start")))
            .then(pl.lit("prior_conversation"))
            .otherwise(pl.col("label"))
            .alias("label")
        )
    )
    return out.select(truth.columns)
