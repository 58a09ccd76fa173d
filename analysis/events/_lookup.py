"""Ledger facts joined to the events as small lookup tables: no expression grows with the ledger.

Private to :mod:`analysis.events.labelling`. The split needs, for every event, facts that are
step functions of time: the experiment's phase, the live revision of a prompt, and whether the
experiment the event is tagged with was running. Written as ``when/then`` chains (or sums of
comparisons) the expression nests one level deeper per transition or experiment, and a ledger
of a few hundred transitions overflows the recursion limit of the expression builders. Here
they reach the events through flat expressions and a join against a small table, which every
lazy engine (polars, DuckDB, Spark) runs the same way:

* :func:`join_ledger` reads, for each *tag key* — every experiment of the ledger the export
  is tagged with, and one key for untagged events and experiments the ledger does not define
  (small integers, from a flat map look-up) — the step function of ``(live revision,
  running, phase)``: the live revision of that experiment's prompt (the split experiment's
  prompt when untagged), whether the tagged experiment runs, and the split experiment's phase.
  With few change instants (at most :data:`FLAT_MAX_POINTS`, a typical experiment's ledger)
  the interval of ``ts`` is a flat sum of comparisons and each fact a flat map look-up on
  (tag key, interval): as fast as the hand-written expressions. Otherwise a small *step table*
  is joined: time is cut into buckets of one calendar unit (second, minute, hour, day or year:
  the finest that keeps the table within four rows per change and :data:`MAX_STEP_ROWS`
  rows); each bucket lists every interval of the
  step function that overlaps it. An event joins the rows of its ``(tag key, bucket)`` — the
  bucket is ``ts`` truncated to the unit — and keeps the one row whose interval holds ``ts``.
  Times before the first change or after the last join one row each (sentinel buckets). An
  event matches one row, or a few in the buckets where the ledger changes.
* the arm's revision of the tagged experiment is a flat map look-up (``replace_strict``) on
  (tag key, arm code).

Truncation and the table's buckets are both in UTC: ``ts`` is UTC here
(:mod:`analysis.events.loading` converts it, and refuses a DuckDB connection whose time zone is
not UTC).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import narwhals as nw

from analysis.events import _engines
from analysis.ledger import Experiment, Ledger

__all__ = ["FLAT_MAX_POINTS", "MAX_STEP_ROWS", "join_ledger"]

#: The most comparisons (change instants) for which the facts are flat expressions, not a join.
FLAT_MAX_POINTS = 32
#: The longest ``when`` chain written for a look-up; longer ones are map look-ups.
_FLAT_MAX_LOOKUP = 8
#: The most rows of the step table (tag keys x buckets); sets how fine the buckets can be.
MAX_STEP_ROWS = 8_192
_MIN_ROWS = 64
_GRAINS = ("second", "minute", "hour", "day", "year")
_SIZE = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_EVERY = {"second": "1s", "minute": "1m", "hour": "1h", "day": "1d", "year": "1y"}


def join_ledger(
    frame: nw.LazyFrame[Any],
    ledger: Ledger,
    exp: Experiment,
    tagged: Sequence[str],
    ts_dtype: Any,
) -> nw.LazyFrame[Any]:
    """Add ``__ph`` (phase of ``exp``), ``__live`` (live revision of the tagged experiment's
    prompt, else of ``exp``'s), ``__run`` (the tagged experiment runs at ``ts``) and ``__xrev``
    (the revision of the event's arm in its tagged experiment) to every event.

    Args:
        frame: The events (lazy), with ``ts``, ``experiment_id`` and ``arm``.
        ledger: The ledger.
        exp: The experiment being split.
        tagged: The ledger's experiments the export is tagged with (``exp`` is added).
        ts_dtype: The dtype of ``ts`` (the table's times are cast to it).
    """
    experiments = [*dict.fromkeys([*tagged, exp.id])]
    phase_starts = [p.start for p in ledger.phases(exp.id)[1:] if p.start is not None]
    prompts = [exp.prompt, *(ledger.experiments[e].prompt for e in experiments)]
    windows = [(None, None), *(ledger.window(e) for e in experiments)]
    histories = {p: ledger.live_history(p) for p in dict.fromkeys(prompts)}
    tag = nw.col("experiment_id")
    # the tag key as a small integer (0: untagged, or an experiment the ledger does not define)
    key_expr = _lookup(tag, experiments, list(range(1, len(experiments) + 1)), 0, nw.Int32)
    # the arm's revision: a look-up on (tag key, arm code), small integers only
    names = [*dict.fromkeys(a for e in experiments for a in ledger.experiments[e].arms)]
    width = len(names) + 1
    arm_code = _lookup(nw.col("arm"), names, list(range(1, width)), 0, nw.Int32)
    cells, revisions = [], []
    for k, e in enumerate(experiments, start=1):
        for arm, revision in ledger.experiments[e].arms.items():
            cells.append(k * width + names.index(arm) + 1)
            revisions.append(revision)
    cell = key_expr.cast(nw.Int64) * width + arm_code.cast(nw.Int64)
    arm_revision = _lookup(cell, cells, revisions, None, nw.String)
    frame = frame.with_columns(key_expr.alias("__K"), arm_revision.alias("__xrev"))
    n_compare = len(phase_starts) + sum(len(h) for h in histories.values()) + 2 * len(experiments)
    if n_compare <= FLAT_MAX_POINTS and len(histories) <= _FLAT_MAX_LOOKUP:
        return _flat(frame, phase_starts, prompts, windows, histories)
    steps = [
        _Steps.of(histories[p], phase_starts, w) for p, w in zip(prompts, windows, strict=True)
    ]
    return _joined(frame, steps, ts_dtype)


def _flat(
    frame: nw.LazyFrame[Any],
    phase_starts: Sequence[datetime],
    prompts: Sequence[str],
    windows: Sequence[tuple[datetime | None, datetime | None]],
    histories: Mapping[str, Sequence[tuple[datetime, str | None]]],
) -> nw.LazyFrame[Any]:
    """Few changes: each fact from flat sums of comparisons and short look-ups (as fast as
    hand-written expressions). ``prompts[k]`` and ``windows[k]`` belong to tag key ``k``."""
    ts, key = nw.col("ts"), nw.col("__K")

    def count(instants: Sequence[datetime]) -> nw.Expr:
        """How many of ``instants`` are at or before ``ts`` (repeats count)."""
        if not instants:
            return nw.lit(0, dtype=nw.Int32)
        return nw.sum_horizontal(*[(ts >= nw.lit(at)).cast(nw.Int32) for at in instants])

    running = [
        (key == nw.lit(k)) & (ts >= nw.lit(start)) & ((ts < nw.lit(end)) if end else nw.lit(True))
        for k, (start, end) in enumerate(windows)
        if start is not None
    ]
    live_of = {
        p: _lookup(
            count([at for at, _ in h]), list(range(len(h) + 1)), [None, *(r for _, r in h)],
            None, nw.String,
        )
        for p, h in histories.items()
    }  # fmt: skip
    distinct = list(histories)
    live = live_of[distinct[0]]
    if len(distinct) > 1:
        codes = [distinct.index(p) for p in prompts]
        which = _lookup(key, list(range(len(prompts))), codes, 0, nw.Int32)
        live = _lookup_exprs(which, [live_of[p] for p in distinct])
    return frame.with_columns(
        count(phase_starts).cast(nw.Int32).alias("__ph"),
        (nw.any_horizontal(*running, ignore_nulls=True) if running else nw.lit(False)).alias(
            "__run"
        ),
        live.alias("__live"),
    )


def _lookup(
    expr: nw.Expr, old: Sequence[Any], new: Sequence[Any], default: Any, dtype: Any
) -> nw.Expr:
    """``expr`` mapped through ``old -> new`` (``default`` elsewhere): a short ``when`` chain
    for up to :data:`_FLAT_MAX_LOOKUP` values (the fastest form in polars), else a map look-up
    (``replace_strict``); either way the depth is bounded."""
    if len(old) > _FLAT_MAX_LOOKUP:
        return expr.replace_strict(old, new, default=default, return_dtype=dtype)
    out: nw.Expr = nw.lit(default, dtype=dtype)
    for value, result in reversed(list(zip(old, new, strict=True))):
        out = nw.when(expr == nw.lit(value)).then(nw.lit(result, dtype=dtype)).otherwise(out)
    return out


def _lookup_exprs(index: nw.Expr, choices: Sequence[nw.Expr]) -> nw.Expr:
    """``choices[index]`` (at most :data:`_FLAT_MAX_LOOKUP` choices)."""
    out = choices[-1]
    for i in range(len(choices) - 2, -1, -1):
        out = nw.when(index == nw.lit(i)).then(choices[i]).otherwise(out)
    return out


def _joined(frame: nw.LazyFrame[Any], steps: list[_Steps], ts_dtype: Any) -> nw.LazyFrame[Any]:
    """Many changes: the bucketed step table, joined on (tag key, bucket) (see the module)."""
    ends = [p for st in steps for p in (st.points[:1] + st.points[-1:])]
    lo, hi = min(ends), max(ends)  # the split experiment started: there is a change
    n_points = sum(len(st.points) for st in steps)
    grain = _grain(lo, hi, len(steps), n_points)
    below, above = _outside(lo, hi, grain)
    rows: dict[str, list[Any]] = {c: [] for c in ("__K", "__b", "__s", "__e", "__live")}
    rows |= {"__run": [], "__ph": []}
    for code, st in enumerate(steps):
        for start_of_bucket, i in st.rows(lo, hi, grain, below, above):
            start = st.points[i - 1] if i > 0 else None
            end = st.points[i] if i < len(st.points) else None
            live, run, phase = st.values[i]
            values = (code, start_of_bucket, start, end, live, run, phase)
            for column, value in zip(rows, values, strict=True):
                rows[column].append(value)
    types = {
        "__K": "int32",
        "__b": "time",
        "__s": "time",
        "__e": "time",
        "__run": "bool",
        "__ph": "int32",
    }
    table = _table(frame, rows, types, ts_dtype)
    ts = nw.col("ts")
    bucket = (
        nw.when(ts < nw.lit(lo))
        .then(nw.lit(below))
        .otherwise(
            nw.when(ts >= nw.lit(hi)).then(nw.lit(above)).otherwise(ts.dt.truncate(_EVERY[grain]))
        )
        .cast(ts_dtype)
    )
    holds = (nw.col("__s").is_null() | (ts >= nw.col("__s"))) & (
        nw.col("__e").is_null() | (ts < nw.col("__e"))
    )
    return (
        frame.with_columns(bucket.alias("__b"))
        .join(table, on=["__K", "__b"], how="left")
        .filter(holds.fill_null(value=False))
    )


@dataclass(frozen=True)
class _Steps:
    """A step function of time: ``values[i]`` holds on ``[points[i-1], points[i])``, where
    ``points[-1]`` is -inf and ``points[len(points)]`` +inf."""

    points: list[datetime]
    values: list[tuple[str | None, bool, int]]

    @classmethod
    def of(
        cls,
        live: Sequence[tuple[datetime, str | None]],
        phase_starts: Sequence[datetime],
        window: tuple[datetime | None, datetime | None],
    ) -> _Steps:
        """``(live revision, running, phase)`` between consecutive changes of any of them:
        the live revision from its changes, running within ``window`` (never when it has no
        start), the phase as the number of ``phase_starts`` at or before the instant."""
        times = [at for at, _ in live]
        start, end = window
        bounds = [t for t in window if t is not None]
        points = sorted({*times, *phase_starts, *bounds})
        values: list[tuple[str | None, bool, int]] = [(None, False, 0)]
        for at in points:
            i = bisect.bisect_right(times, at)
            run = start is not None and start <= at and (end is None or at < end)
            values.append(
                (live[i - 1][1] if i else None, run, bisect.bisect_right(phase_starts, at))
            )
        return cls(points, values)

    def rows(
        self, lo: datetime, hi: datetime, grain: str, below: datetime, above: datetime
    ) -> Iterator[tuple[datetime, int]]:
        """``(bucket, interval index)`` for the table: the first interval under ``below``
        (times before ``lo``), the last under ``above`` (at or after ``hi``), and every
        interval overlapping each bucket of ``[lo, hi)``; linear in buckets + intervals."""
        n = len(self.points)
        yield below, 0
        yield above, n
        i = 0  # the first interval that does not end before the bucket
        start: datetime | None = _floor(lo, grain)
        while start is not None and start < hi:
            after = _next(start, grain)
            while i < n and self.points[i] <= start:
                i += 1
            j = i
            while j <= n and (j == 0 or after is None or self.points[j - 1] < after):
                yield start, j
                j += 1
            start = after


# ------------------------------------------------------------------------------ time buckets


def _grain(lo: datetime, hi: datetime, keys: int, points: int) -> str:
    """The finest calendar unit whose buckets over ``[lo, hi]``, for every key, number at most
    four per change instant (at least :data:`_MIN_ROWS`, at most :data:`MAX_STEP_ROWS`): few
    changes give a small table, many changes fine buckets (few changes per bucket)."""
    budget = min(MAX_STEP_ROWS, max(_MIN_ROWS, 4 * points))
    span = (hi - lo).total_seconds()
    for grain in _GRAINS[:-1]:
        if (span / _SIZE[grain] + 2) * keys <= budget:
            return grain
    return "year"


def _outside(lo: datetime, hi: datetime, grain: str) -> tuple[datetime, datetime]:
    """Bucket values for times before ``lo`` and at or after ``hi``: bucket starts that no
    time in ``[lo, hi)`` truncates to."""
    first = _floor(lo, grain)
    try:
        below = (
            first.replace(year=first.year - 1)
            if grain == "year"
            else first - timedelta(seconds=_SIZE[grain])
        )
    except (OverflowError, ValueError):  # pragma: no cover - a ledger in year 1
        below = datetime.min.replace(tzinfo=UTC)
    above = _next(_floor(hi, grain), grain)
    return below, above if above is not None else datetime.max.replace(tzinfo=UTC)


def _floor(at: datetime, grain: str) -> datetime:
    """``at`` truncated to the start of its bucket (UTC), as ``dt.truncate`` does."""
    at = at.astimezone(UTC)
    if grain == "year":
        return datetime(at.year, 1, 1, tzinfo=UTC)
    if grain == "day":
        return datetime(at.year, at.month, at.day, tzinfo=UTC)
    if grain == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    if grain == "minute":
        return at.replace(second=0, microsecond=0)
    return at.replace(microsecond=0)


def _next(start: datetime, grain: str) -> datetime | None:
    """The start of the bucket after ``start`` (``None`` past year 9999)."""
    try:
        if grain == "year":
            return datetime(start.year + 1, 1, 1, tzinfo=UTC)
        return start + timedelta(seconds=_SIZE[grain])
    except (OverflowError, ValueError):
        return None


# ------------------------------------------------------------------------------ small tables


def _table(
    frame: nw.LazyFrame[Any], rows: Mapping[str, list[Any]], types: Mapping[str, str], ts_dtype: Any
) -> nw.LazyFrame[Any]:
    """A small lazy table in the events' engine (on DuckDB: on the events' own connection);
    ``types`` marks the columns that are not text."""
    if frame.implementation.is_duckdb():
        sql = _engines.values_sql(rows, types)
        return nw.from_native(frame.to_native().query("__events", sql))
    if frame.implementation.is_polars():
        import polars as pl

        native_ts = frame.select(nw.col("ts")).to_native().collect_schema()["ts"]
        kinds = {"time": native_ts, "int": pl.Int64, "int32": pl.Int32, "bool": pl.Boolean}
        schema = {c: kinds.get(types.get(c, ""), pl.String) for c in rows}
        return nw.from_native(pl.DataFrame(dict(rows), schema=schema).lazy())
    import polars as pl

    kinds = {
        "time": pl.Datetime("us", "UTC"),
        "int": pl.Int64,
        "int32": pl.Int32,
        "bool": pl.Boolean,
    }
    schema = {c: kinds.get(types.get(c, ""), pl.String) for c in rows}
    lazy: nw.LazyFrame[Any] = _engines.table(rows, frame, schema)
    casts = [
        nw.col(c).cast(ts_dtype)
        for c, kind in types.items()
        if kind == "time" and lazy.collect_schema()[c] != ts_dtype
    ]
    return lazy.with_columns(*casts) if casts else lazy
