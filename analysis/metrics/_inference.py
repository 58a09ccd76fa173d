"""Metrics inferred from an export's columns, when the user names none — read from the schema
only, never from the data.

A user's export is analysed with the user's metrics, never with the sample's. When none are
given, :func:`infer_metrics` proposes one metric per measured column and says which it proposed
and which columns it left out, so that the choice is visible and can be overridden
(``metrics=[...]`` in the API, ``--metrics FILE`` on the command line):

- a **boolean** column ``x`` → ``Ratio("x")``: the per-turn rate, the share of turns with
  ``x`` true, ``Σ_u #{e: x} / Σ_u #{e: x not null}``;
- a **numeric** column ``x`` (integers, floats, decimals) → ``Ratio("x")``: the per-turn mean
  ``Σ_u Σ_e x / Σ_u #{e: x not null}`` over the units of an arm;
- **left out**: the export's canonical columns (``event_id``, ``ts``, ``user_id``, ...), the
  split's own columns (``phase``, ``served_revision``, ``contamination``, ``ramp_moved``), the
  experiment's unit, columns named in the column map, columns whose name marks an id (``id``,
  ``*_id``, ``*Id``, ``uuid``, ``*_key``, ``*_hash``), the hive partition keys of a folder or
  glob export (``chunk=003/``), and columns that are neither numeric nor boolean (text, timestamps,
  lists, ...).

Why a per-turn :class:`~analysis.metrics.definitions.Ratio` and not a per-unit
:class:`~analysis.metrics.definitions.Mean` for numbers: nothing in a schema says whether a
column adds up over a unit's turns (cost, tokens) or not (a score, a latency, a rating). The
per-turn mean is meaningful for both kinds — average cost per turn, average score per turn — and
it is the number a dashboard shows; a per-unit total of a score or a latency is meaningless, and
it mixes "more turns" with "larger values". The per-turn mean is still analysed with the unit as
the independent observation: a ratio of unit totals whose variance is the delta method over
units, so the analysis unit (the randomization unit) does not change. Nulls, NaN and infinities
are left out of the turn count as well as the sum.

Why a per-turn rate and not the share of units with any true value (``Proportion``) for
booleans: the share of units with *any* true grows with the number of turns a unit has, so a
revision that changes how many turns users take moves it even when each turn is as likely to be
true — it mixes engagement with the rate. The per-turn rate does not, it is the "rate" a
dashboard shows, and it is what an integer 0/1 column of the same data gives: the estimand no
longer depends on whether the export stores the flag as a boolean or as 0/1 (the kind is decided
by **dtype only**, no scan). A per-unit outcome ("did the user convert") is a
``Proportion("x")`` named in a metrics file.

Inferred metrics have no ``direction``: they are estimated and shown, and never make ``analyze``
report a regression (nothing can alert on them). The note says so and shows how to give
directions: a metrics file (``--metrics FILE``, docs/metrics.md) such as::

    metrics:
      - {type: ratio, numerator: score, direction: higher}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import narwhals as nw

from analysis.errors import PromptstateError
from analysis.events.loading import CANONICAL_COLUMNS
from analysis.metrics.definitions import Metric, Ratio

if TYPE_CHECKING:  # pragma: no cover
    from analysis.events.labelling import SplitResult

__all__ = [
    "SPLIT_COLUMNS",
    "InferredMetrics",
    "check_metric_columns",
    "infer_metrics",
    "partition_columns",
    "reserved_columns",
]

#: Columns :func:`~analysis.events.labelling.split` adds to the export.
SPLIT_COLUMNS: tuple[str, ...] = ("phase", "served_revision", "contamination", "ramp_moved")

#: Column names that mark an identifier (case-insensitive; camelCase ``userId`` too).
_ID_NAME = re.compile(r"(^|[_\-. ])(id|ids|uuid|guid|key|hash)$", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID|Ids|IDs|Uuid|UUID|Key|Hash)$")

# reasons a column is left out, in the order the note lists them
_CANONICAL = "canonical column"
_SPLIT = "column of the split"
_UNIT = "unit id"
_MAPPED = "mapped"
_ID = "id column"
_PRIVATE = "internal column"
_PARTITION = "partition column"
#: Suffixes of the files of an export (``analysis.events._sources``).
_SUFFIXES = (".parquet", ".csv", ".tsv", ".ndjson", ".jsonl")


class InferredMetrics(NamedTuple):
    """Metrics inferred from an export's schema, and what was left out.

    Attributes:
        metrics: One metric per measured column, in the export's column order: a per-turn
            ``Ratio`` (booleans: the share of turns with a true value; numbers: the mean per
            turn); no direction.
        note: One line saying which metrics were inferred with each one's estimand, which
            columns were left out (and why), that inferred metrics cannot alert (no direction),
            and how to give metrics with directions instead.
        left_out: ``(column, reason)`` of every column that is not a metric.
    """

    metrics: tuple[Metric, ...]
    note: str
    left_out: tuple[tuple[str, str], ...]


def infer_metrics(
    events: SplitResult | nw.LazyFrame[Any] | nw.DataFrame[Any] | Mapping[str, Any],
    *,
    columns: Mapping[str, str] | None = None,
    ids: Iterable[str] = (),
    exclude: Mapping[str, str] | None = None,
) -> InferredMetrics:
    """Infer metrics from an export's column types (the schema only: nothing is scanned).

    Estimands of the inferred metrics (``u`` runs over the units of an arm, ``e`` over a unit's
    events): a numeric column ``x`` gives ``Ratio("x")``, ``Σ_u Σ_e x / Σ_u #{e: x finite}``,
    the per-turn mean, and a boolean column the same per-turn ratio of its 0/1 values, the
    share of turns with ``x`` true (like an integer 0/1 column); the unit is the independent
    observation (delta method over unit totals). Why a per-turn ratio rather than a per-unit
    total (``Mean``) or the share of units with any true (``Proportion``): a schema does not say
    whether a column adds up over turns, and a per-unit "any" grows with the number of turns;
    the per-turn number means something for every column and is what a dashboard shows, while
    the unit stays the analysis unit. Inferred metrics have no direction: they cannot alert.

    Args:
        events: A :class:`~analysis.events.labelling.SplitResult` (its unit, unit key and column
            map are left out too), a narwhals frame (lazy or eager) or a mapping column → narwhals
            dtype (e.g. ``frame.collect_schema()``).
        columns: Column map canonical → the export's name (``--column``/``--columns``), when
            ``events`` is not renamed yet: the mapped columns are left out.
        ids: More id columns to leave out (e.g. each experiment's unit).
        exclude: More columns to leave out → the reason shown (e.g. the hive partition keys
            of :func:`partition_columns`; found by itself on a split of a folder or glob).

    Returns:
        The :class:`InferredMetrics` (metrics, a one-line note, the left-out columns).

    Raises:
        PromptstateError: no column can be a metric (the message lists the columns and names
            ``--metrics`` / ``metrics=[...]``).

    Examples:
        >>> import narwhals as nw
        >>> inf = infer_metrics({"event_id": nw.String(), "ok": nw.Boolean(),
        ...                      "score": nw.Float64(), "session_id": nw.Int64()})
        >>> [f"{type(m).__name__}({m.column})" for m in inf.metrics]
        ['Ratio(ok)', 'Ratio(score)']
        >>> inf.left_out
        (('event_id', 'canonical column'), ('session_id', 'id column'))
    """
    schema, reserved, where = _schema_of(events, columns or {}, ids)
    for c, why in (exclude or {}).items():
        reserved.setdefault(c, why)
    metrics: list[Metric] = []
    kinds: dict[str, str] = {}
    left_out: list[tuple[str, str]] = []
    for name, dtype in schema.items():
        reason = reserved.get(name) or _reason(name, dtype)
        if reason is not None:
            left_out.append((name, reason))
        else:  # booleans too: the per-turn rate (see the module doc)
            metrics.append(Ratio(name))
            kinds[name] = "rate" if _is_boolean(dtype) else "mean"
    if not metrics:
        listed = "; ".join(f"{c} ({r})" for c, r in left_out) or "none"
        raise PromptstateError(
            f"{where}: no column can be a metric (a metric needs a numeric or boolean column "
            f"that is not an id); the columns: {listed}. Name your metrics with --metrics FILE "
            "(command line, see docs/metrics.md) or metrics=[...] (Python)"
        )
    return InferredMetrics(tuple(metrics), _note(metrics, kinds, left_out), tuple(left_out))


def check_metric_columns(
    metrics: Sequence[Metric],
    schema: Mapping[str, Any],
    *,
    where: str,
    reserved: Iterable[str] = (),
    source: str = "the export",
    hint: str = "pass --metrics FILE (command line) or metrics=[...] (Python)",
) -> None:
    """Check that every metric reads columns ``schema`` has, numeric or boolean, not ids.

    Schema only: call it before any scan, so that a metrics file naming a column the export
    lacks fails at once.

    Args:
        metrics: The metrics.
        schema: Column → narwhals dtype of the events (renamed to canonical names).
        where: What gave the metrics, e.g. the metrics file's path (starts the message).
        reserved: Columns no metric may read (ids, the split's columns).
        source: How to name the events in the message.
        hint: What the user can do, ending the message.

    Raises:
        PromptstateError: naming ``where``, the metric, the column and ``hint``.
    """
    names = list(schema)
    banned = set(reserved)
    for m in metrics:
        absent = [c for c in m.columns if c not in schema]
        if absent:
            raise PromptstateError(
                f"{where}: metric {m.label!r} reads column(s) {', '.join(absent)} that "
                f"{source} does not have (it has: {', '.join(names)}); fix the metric or "
                f"{hint}"
            )
        for c in m.columns:
            if c in banned or c.startswith("__"):
                raise PromptstateError(
                    f"{where}: metric {m.label!r} reads column {c!r}, an id or a column of the "
                    f"split; give a measured column (e.g. helpfulness, latency_ms, cost_usd) or "
                    f"{hint}"
                )
            dtype = schema[c]
            if not (dtype.is_numeric() or dtype in (nw.Boolean, nw.Unknown)):
                raise PromptstateError(
                    f"{where}: metric {m.label!r} reads column {c!r}, which holds {dtype} "
                    "values; give a numeric or boolean column (null, NaN and inf values are "
                    f"allowed and left out) or {hint}"
                )


def partition_columns(source: object) -> tuple[str, ...]:
    """Hive partition keys of a folder or glob export: the ``key`` of its ``key=value`` folders.

    Reads file names only (the first file of the export), never data; ``()`` for a single file,
    an in-memory object or a path that does not exist. Partition keys (``chunk=003/``,
    ``date=2026-11-03/``) are how the export was written, not measurements.
    """
    import glob

    if not isinstance(source, str | Path):
        return ()
    text = str(source)
    first: Path | None = None
    if any(ch in text for ch in "*?["):
        for name in glob.iglob(text, recursive=True):
            if name.endswith(_SUFFIXES):
                first = Path(name)
                break
        root = Path(text.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]).parent
    else:
        root = Path(text)
        if root.is_dir():
            first = next((f for f in root.rglob("*") if f.name.endswith(_SUFFIXES)), None)
    if first is None:
        return ()
    try:
        parts = first.relative_to(root).parts[:-1]
    except ValueError:
        parts = first.parts[:-1]
    return tuple(dict.fromkeys(p.split("=", 1)[0] for p in parts if "=" in p and p[0] != "="))


def reserved_columns(unit: str = "user_id", unit_key: str | None = None) -> frozenset[str]:
    """Columns no metric may read: the canonical ones, the unit, its key and the split's."""
    out = {*CANONICAL_COLUMNS, *SPLIT_COLUMNS, unit}
    if unit_key is not None:
        out.add(unit_key)
    return frozenset(out)


# ------------------------------------------------------------------------------------------


def _schema_of(
    events: Any, columns: Mapping[str, str], ids: Iterable[str]
) -> tuple[Mapping[str, Any], dict[str, str], str]:
    """The schema, the reserved columns with their reasons, and how to name the events."""
    from analysis.events.labelling import SplitResult

    reserved: dict[str, str] = dict.fromkeys(CANONICAL_COLUMNS, _CANONICAL)
    reserved.update(dict.fromkeys(SPLIT_COLUMNS, _SPLIT))
    if isinstance(events, SplitResult):
        schema: Mapping[str, Any] = events.frame.collect_schema()
        where = events.load_report.source
        reserved[events.unit] = _UNIT
        reserved.setdefault(events.unit_key, _UNIT)
        for c in partition_columns(where):
            reserved.setdefault(c, _PARTITION)
        columns = {**events.load_report.renamed, **columns}
    elif isinstance(events, nw.LazyFrame | nw.DataFrame):
        schema, where = events.collect_schema(), "events"
    elif isinstance(events, Mapping):
        schema, where = events, "events"
    else:
        raise PromptstateError(
            f"infer_metrics: expected a SplitResult, a narwhals frame or a schema mapping, "
            f"not a {type(events).__name__}"
        )
    for canonical, theirs in columns.items():
        if theirs != canonical:
            reserved.setdefault(theirs, f"{_MAPPED} to {canonical}")
    for c in ids:
        reserved.setdefault(c, _UNIT)
    return schema, reserved, where


def _reason(name: str, dtype: Any) -> str | None:
    """Why a column that is not reserved is no metric (``None``: it is one)."""
    if name.startswith("__"):
        return _PRIVATE
    if _ID_NAME.search(name) or _CAMEL_ID.search(name):
        return _ID
    if isinstance(dtype, type):  # a dtype class rather than an instance, e.g. nw.Float64
        dtype = dtype()
    if dtype == nw.Boolean:
        return None
    if dtype == nw.Unknown:
        return "type unknown to narwhals"
    if dtype.is_numeric():
        return None
    if dtype.is_temporal():
        return "time, not a measurement"
    return f"{dtype}, not numeric or boolean"


def _is_boolean(dtype: Any) -> bool:
    return bool((dtype() if isinstance(dtype, type) else dtype) == nw.Boolean)


def _note(
    metrics: Sequence[Metric], kinds: Mapping[str, str], left_out: Sequence[tuple[str, str]]
) -> str:
    """The one-line note: inferred metrics with their estimands, left-out columns grouped by
    reason, that they cannot alert, and how to give directions."""
    shown = ", ".join(
        f"{type(m).__name__}({m.column!r}): "
        + (
            f"per-turn rate, the share of turns with {m.column} true"
            if kinds.get(m.column) == "rate"
            else f"per-turn mean of {m.column}"
        )
        for m in metrics
    )
    groups: dict[str, list[str]] = {}
    for col, reason in left_out:
        groups.setdefault(reason, []).append(col)
    parts = [f"{', '.join(cols)} ({reason})" for reason, cols in groups.items()]
    out = f"inferred metrics from the export's columns: {shown}"
    if parts:
        out += f"; left out: {'; '.join(parts)}"
    first = metrics[0].column if metrics else "score"
    return out + (
        ". Inferred metrics have no direction, so no regression can alert on them: pass "
        "--metrics FILE / metrics=[...] with a direction per metric, e.g. a metrics.yaml of "
        f"`metrics: [{{type: ratio, numerator: {first}, direction: higher}}]` (docs/metrics.md)"
    )
