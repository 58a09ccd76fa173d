"""Prototype: materialise only the columns ``analyze`` reads, the label as an ``Enum``.

``analysis.events.labelling.materialized`` writes *every* column of the keyed split to the
temporary Parquet file (the export's 21 columns — ids, cache keys, token counts, contract
fields — plus ``phase``, ``served_revision``, ``contamination``, ``__uk``, ``__ck``,
``__code``) although ``analyze`` reads about a dozen. This prototype writes the columns
``analysis.metrics._plan.build_frames`` keeps (for the CLI's default metrics) and the split's
keys, with ``contamination`` spelled out by a ``when`` chain (``contamination_when.py``) as
``pl.Enum(LABELS)`` (a 1-byte code in memory and a dictionary
in the file) so that the label filters compare integers, not strings. Executed by
``bench_e2e.py --patch`` before the package runs (nothing in the package is edited).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import narwhals as nw
import polars as pl

from analysis.events import labelling

#: What analyze reads with the default metrics (build_frames' ``keep``, the recovery tables).
KEEP = (
    "ts", "experiment_id", "arm", "phase", "contamination", "served_revision",
    "conversation_id", "response_revision_id",
    "helpfulness", "thumbs_up", "cost_usd", "latency_ms",
)  # fmt: skip


@contextlib.contextmanager
def materialized(result: Any, enabled: bool | None = None) -> Iterator[Any]:
    """``labelling.materialized`` writing the lean column set (polars only)."""
    if enabled is False or not result.keyed.implementation.is_polars():
        yield result
        return
    native = result.keyed.to_native()
    names = native.collect_schema().names()
    keys = [k for k in (result.unit_key, result.conversation_key) if k is not None]
    cols = [c for c in (*KEEP, *keys) if c in names]
    enum = pl.Enum(list(labelling.LABELS))
    with tempfile.TemporaryDirectory(prefix="promptstate-") as tmp:
        path = Path(tmp) / "labelled.parquet"
        # the label spelled out by a when chain (see contamination_when.py), stored as an Enum
        spelled = pl.lit(None, dtype=pl.String)
        for i in reversed(range(len(labelling.LABELS))):
            spelled = (
                pl.when(pl.col("__code") == i).then(pl.lit(labelling.LABELS[i])).otherwise(spelled)
            )
        label = spelled.cast(enum).alias("contamination")
        native.with_columns(label).select(cols).sink_parquet(
            path, compression="lz4", engine="streaming"
        )
        stored = nw.from_native(pl.scan_parquet(path))
        frame_cols = [c for c in cols if not c.startswith("__")]
        yield dataclasses.replace(result, keyed=stored, frame=stored.select(frame_cols))


labelling.materialized = materialized
