"""Prototype: run analyze's aggregate collects on polars' streaming engine.

``analysis.metrics.aggregation.collect_all`` calls ``polars.collect_all`` with the default
engine (``auto``), which runs the plan in memory: every column the eleven aggregates read is
loaded whole, and each group-by over units builds its table from the full column. Asking for
``engine="streaming"`` keeps the scan morsel-sized. Executed by ``bench_e2e.py --patch`` /
``profile_collects.py --patch`` before the package runs (nothing in the package is edited).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import narwhals as nw
import polars as pl

from analysis.metrics import aggregation


def collect_all(frames: Sequence[nw.LazyFrame[Any]]) -> list[list[dict[str, Any]]]:
    """``aggregation.collect_all`` with ``engine="streaming"`` on polars."""
    if frames and all(f.implementation.is_polars() for f in frames):
        outs = pl.collect_all([f.to_native() for f in frames], engine="streaming")
        return [o.to_dicts() for o in outs]
    return [f.collect().rows(named=True) for f in frames]


aggregation.collect_all = collect_all
