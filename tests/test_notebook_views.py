"""What a notebook user sees of a split: rows, not an opaque lazy frame."""

from __future__ import annotations

from pathlib import Path

import polars as pl

import analysis as ps

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


def test_split_head_shows_labelled_rows_and_the_repr_says_how() -> None:
    res = ps.split(SAMPLES / "events.parquet", SAMPLES / "ledger.yaml")
    head = res.head(5)
    assert isinstance(head, pl.DataFrame)
    assert head.height == 5
    assert {"phase", "served_revision", "contamination", "ramp_moved"} <= set(head.columns)
    assert set(head["contamination"]) <= set(ps.LABELS)
    assert ".head(n)" in repr(res)
