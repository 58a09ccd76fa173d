"""Match events to time windows in one lazy join, linear in events + windows.

A ledger can hold thousands of transitions. Filtering the events once per transition (one lazy
frame per window, concatenated) or nesting one ``when/then`` per transition costs
``events × transitions``. :func:`window_join` instead cuts time into equal buckets, lists every
bucket each window touches in a small table, joins the events to it on the bucket and keeps the
pairs whose time lies in the window. Every pair it must find shares a bucket, so the result is
exact; the buckets only prune. With buckets as wide as the windows (or the span divided into a
few thousand buckets), each window touches a handful of buckets and each event meets only the
windows near it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import narwhals as nw

from analysis.events import _engines

__all__ = ["Window", "window_join"]

_BUCKET = "__ps_bucket"
_US = "__ps_us"
_LO = "__ps_lo"
_HI = "__ps_hi"
_INT64_MAX = 2**63 - 1
_NW: dict[type, Any] = {int: nw.Int64, str: nw.String}


class Window(NamedTuple):
    """A half-open time window ``[start, end)`` (``end=None``: open-ended) and its columns."""

    start: datetime
    end: datetime | None
    values: Mapping[str, Any]


def window_join(
    frame: nw.LazyFrame[Any],
    windows: Sequence[Window],
    *,
    width_us: int,
    dtypes: Mapping[str, type],
    ts: str = "ts",
) -> nw.LazyFrame[Any]:
    """One row per (event, window containing its ``ts``), with the window's ``values`` columns.

    Args:
        frame: The events (lazy), with a timezone-aware ``ts``.
        windows: The windows; they may overlap (an event then gets one row per window).
        width_us: Bucket width in microseconds (> 0); the windows' typical length is a good one.
        dtypes: Type of each ``values`` column: ``int`` (Int64) or ``str`` (String).
        ts: The time column.

    Returns:
        ``frame``'s columns plus the ``values`` columns; events in no window are dropped.
    """
    if not windows:
        empty = {name: nw.lit(None, dtype=_NW[dtype]) for name, dtype in dtypes.items()}
        return frame.head(0).with_columns(**empty)
    width_us = max(int(width_us), 1)
    origin = min(w.start for w in windows)
    starts = [_us(w.start, origin) for w in windows]
    ends = [None if w.end is None else _us(w.end, origin) for w in windows]
    top = max([*starts, *(e for e in ends if e is not None)]) // width_us + 1
    table: dict[str, list[Any]] = {_BUCKET: [], _LO: [], _HI: [], **{k: [] for k in dtypes}}
    for window, lo, hi in zip(windows, starts, ends, strict=True):
        if hi is not None and hi <= lo:
            continue
        last = top if hi is None else min((hi - 1) // width_us, top)
        for bucket in range(lo // width_us, last + 1):
            table[_BUCKET].append(bucket)
            table[_LO].append(lo)
            table[_HI].append(_INT64_MAX if hi is None else hi)
            for name in dtypes:
                table[name].append(window.values.get(name))
    small = _small_frame(table, dtypes, frame)
    return (
        _engines.with_micros_since(frame, ts, origin, _US)
        .with_columns((nw.col(_US) // width_us).clip(0, top).cast(nw.Int64).alias(_BUCKET))
        .join(small, on=_BUCKET, how="inner")
        .filter((nw.col(_US) >= nw.col(_LO)) & (nw.col(_US) < nw.col(_HI)))
        .drop(_BUCKET, _US, _LO, _HI)
    )


def _us(at: datetime, origin: datetime) -> int:
    delta = at - origin
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _small_frame(
    table: Mapping[str, list[Any]], dtypes: Mapping[str, type], like: nw.LazyFrame[Any]
) -> nw.LazyFrame[Any]:
    """The bucket table as a lazy frame on ``like``'s backend."""
    import polars as pl

    native = {int: pl.Int64, str: pl.String}
    schema: dict[str, Any] = {_BUCKET: pl.Int64, _LO: pl.Int64, _HI: pl.Int64}
    schema.update({name: native[dtype] for name, dtype in dtypes.items()})
    out: nw.LazyFrame[Any] = _engines.table(dict(table), like, schema)
    return out
