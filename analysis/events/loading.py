"""Loading a warehouse event export: sources, the column map and validation.

:func:`load_events` accepts Parquet/CSV/NDJSON files, directories and globs (hive-partitioned
exports), and in-memory pandas, polars (eager or lazy), pyarrow, DuckDB and PySpark objects.
Every input becomes a lazy narwhals frame with the canonical column names (README, "Inputs");
files and eager frames run on polars' lazy engine, DuckDB relations stay in DuckDB, PySpark
DataFrames in Spark (other lazy narwhals backends stay in theirs, untested). Validation reads the
schema and one small aggregate (counts per experiment × arm, null counts, repeated event ids);
the events themselves stay in the engine (:mod:`analysis.events._engines`).

What validation does, and reports in :class:`LoadReport`:

* missing required columns, a column map naming absent columns, a ``ts`` that is not a timestamp
  (or ISO-8601 text), null unit ids / timestamps / event ids → :class:`EventsError`;
* the unit column is the ledger's: the experiment's ``unit`` (``user_id`` by default); with a
  ledger and no experiment, the unit its experiments declare (:func:`default_unit`). In a column
  map, ``user_id`` names the unit column whatever the unit is called (:func:`unit_column_map`):
  ``user_id=account`` with the unit ``account`` reads the ``account`` column;
* naive timestamps are read as UTC, other time zones converted to UTC — and the report says so;
* duplicate ``event_id`` rows: counted, one row per id kept (the earliest ``ts``), reported;
* tags: counts per experiment × arm; with a ledger, events of experiments it does not define are
  reported with counts, and an arm the experiment does not define is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import narwhals as nw

from analysis.errors import SCHEMA_VERSION, EventsError
from analysis.events import _engines
from analysis.events._sources import first_line, is_glob, open_path

if TYPE_CHECKING:
    from analysis.ledger import Ledger

__all__ = [
    "CANONICAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Events",
    "LoadReport",
    "check_tags",
    "collect",
    "default_unit",
    "load_events",
    "unit_column_map",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("event_id", "ts", "user_id", "experiment_id", "arm")
CANONICAL_COLUMNS: tuple[str, ...] = (
    *REQUIRED_COLUMNS,
    "conversation_id",
    "revision_id",
    "response_revision_id",
    "contract_version",
    "consumer",
)
_TEXT_COLUMNS = ("experiment_id", "arm", "revision_id", "response_revision_id")
_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
_MAX_EXAMPLES = 5
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})


@dataclass(frozen=True)
class LoadReport:
    """What loading found and did; nothing is dropped or rewritten without being counted here.

    Attributes:
        source: Description of the input (path or in-memory type).
        n_rows: Rows read.
        n_events: Events kept (``n_rows - n_duplicates``).
        n_duplicates: Extra rows of repeated ``event_id`` values, dropped.
        duplicate_examples: Up to five of the repeated ids.
        timestamps: ``utc``, ``naive, read as UTC``, ``converted from <tz> to UTC`` or
            ``parsed from text``.
        renamed: Canonical name → the export's name, for every mapped column.
        tags: ``(experiment_id, arm)`` → rows, ``None`` for untagged.
        unknown_experiments: Experiment ids the ledger does not define → rows (set by
            :func:`check_tags`); these events are ``outside_window`` for any split.
        arm_without_experiment: Rows with an ``arm`` but no ``experiment_id`` (treated as
            untagged).
        missing_optional: Optional canonical columns the export does not have.
        unit: The unit column validated as required (the experiment's ``unit``).
    """

    source: str
    n_rows: int
    n_events: int
    n_duplicates: int
    duplicate_examples: tuple[str, ...]
    timestamps: str
    renamed: Mapping[str, str]
    tags: Mapping[tuple[str | None, str | None], int]
    unknown_experiments: Mapping[str, int] = field(default_factory=dict)
    arm_without_experiment: int = 0
    missing_optional: tuple[str, ...] = ()
    unit: str = "user_id"

    @property
    def experiments(self) -> dict[str, int]:
        """Experiment id → number of tagged rows in the export."""
        out: dict[str, int] = {}
        for (exp, _arm), n in self.tags.items():
            if exp is not None:
                out[exp] = out.get(exp, 0) + n
        return dict(sorted(out.items()))

    def notes(self) -> list[str]:
        """Human-readable lines for everything that was dropped, converted or ignored."""
        notes = []
        if self.n_duplicates:
            ex = ", ".join(self.duplicate_examples)
            notes.append(
                f"{self.n_duplicates} duplicate event_id row(s) dropped, one row kept per id "
                f"(earliest ts); e.g. {ex}"
            )
        if self.timestamps != "utc":
            notes.append(f"timestamps: {self.timestamps}")
        for exp, n in self.unknown_experiments.items():
            notes.append(
                f"{n} event(s) tagged with experiment {exp!r}, which the ledger does not "
                "define: counted as outside_window"
            )
        if self.arm_without_experiment:
            notes.append(
                f"{self.arm_without_experiment} event(s) have an arm but no experiment_id: "
                "treated as untagged"
            )
        return notes

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view: ``{"schema_version": 1, "source", "n_rows", "n_events",
        "n_duplicates", "duplicate_examples": [...], "timestamps", "renamed": {canonical: theirs},
        "experiments": {id: rows}, "unknown_experiments": {id: rows}, "arm_without_experiment",
        "missing_optional": [...], "notes": [...]}``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "source": self.source,
            "n_rows": self.n_rows,
            "n_events": self.n_events,
            "n_duplicates": self.n_duplicates,
            "duplicate_examples": list(self.duplicate_examples),
            "timestamps": self.timestamps,
            "renamed": dict(self.renamed),
            "experiments": self.experiments,
            "unknown_experiments": dict(self.unknown_experiments),
            "arm_without_experiment": self.arm_without_experiment,
            "missing_optional": list(self.missing_optional),
            "notes": self.notes(),
        }


@dataclass(frozen=True)
class Events:
    """A validated event export: a lazy narwhals frame in canonical names, and its report.

    Attributes:
        frame: Lazy frame (polars, DuckDB or Spark engine), deduplicated, ``ts`` in UTC.
        report: What loading found and did.
        kind: The input's kind: ``polars-lazy``, ``polars``, ``pandas``, ``pyarrow``,
            ``duckdb``, ``pyspark`` or ``file``; results are handed back in this kind.
    """

    frame: nw.LazyFrame[Any]
    report: LoadReport
    kind: str

    @property
    def columns(self) -> list[str]:
        """Column names (canonical)."""
        return list(self.frame.collect_schema().names())

    def to_native(self) -> Any:
        """The events as a native object of the input's kind (lazy where the kind is lazy)."""
        return to_kind(self.frame, self.kind)


def to_kind(frame: nw.LazyFrame[Any], kind: str) -> Any:
    """Hand a lazy frame back in the input's kind: lazy for polars-lazy, DuckDB, PySpark (a
    Spark DataFrame), other lazy backends and files; eager kinds are collected."""
    if kind not in ("polars", "pandas", "pyarrow"):
        return frame.to_native()
    eager = frame.collect()
    if kind == "pandas":
        return eager.to_pandas()
    if kind == "pyarrow":
        return eager.to_arrow()
    return eager.to_polars()


def load_events(
    source: Any,
    *,
    columns: Mapping[str, str] | None = None,
    ledger: Ledger | None = None,
    unit: str | None = None,
) -> Events:
    """Load and validate an event export.

    Args:
        source: A path (file, directory or glob of Parquet/CSV/NDJSON; directories are read as
            hive-partitioned Parquet, CSV or NDJSON), a pandas/polars/pyarrow/DuckDB object, a
            PySpark DataFrame, a narwhals frame, or an :class:`Events` (returned re-checked
            against ``ledger``).
        columns: Canonical name → the export's column name, e.g. ``{"user_id": "account"}``;
            ``user_id`` names the unit column whatever the unit is called
            (:func:`unit_column_map`).
        ledger: When given, experiment and arm tags are checked against it.
        unit: The randomization unit column (required, never null). ``None`` or ``user_id``
            (the canonical name) with a ledger: the ledger's unit (:func:`default_unit`);
            without a ledger: ``user_id``.

    Returns:
        The validated :class:`Events`.

    Raises:
        EventsError: naming the source, the column or rows, and what to do.

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, UTC
        >>> ev = load_events(pl.DataFrame({
        ...     "event_id": ["a", "b", "b"], "ts": [datetime(2026, 11, 2, tzinfo=UTC)] * 3,
        ...     "user_id": ["u1", "u2", "u2"], "experiment_id": [None, None, None],
        ...     "arm": [None, None, None]}))
        >>> ev.report.n_duplicates
        1
    """
    if isinstance(source, Events):
        if ledger is not None:
            return replace(source, report=check_tags(source.report, ledger))
        return source
    frame, kind, where, text = _open(source)
    if ledger is not None and unit in (None, "user_id"):
        present = (*frame.collect_schema().names(), *(columns or {}))
        unit = default_unit(ledger, present)
    unit = unit or "user_id"
    frame, renamed = _rename(frame, unit_column_map(columns, unit), where)
    required = tuple(unit if c == "user_id" else c for c in REQUIRED_COLUMNS)
    names = frame.collect_schema().names()
    missing = [c for c in required if c not in names]
    if missing:
        raise EventsError(_missing_message(where, missing, names, unit))
    _check_key_types(frame, where, unit)
    frame, timestamps = _normalise_types(frame, where)
    report, duplicates = _scan(frame, where, unit, renamed, timestamps, names, parse_all=text)
    if duplicates:
        frame = _drop_duplicates(frame, duplicates)
    events = Events(frame=frame, report=report, kind=kind)
    if ledger is not None:
        events = replace(events, report=check_tags(report, ledger))
    return events


def default_unit(ledger: Ledger, present: Sequence[str] = ()) -> str:
    """The unit column of a run over the whole ledger (no experiment named).

    ``user_id`` when no experiment declares another unit (or one of them declares
    ``user_id``); the one unit the experiments declare; of several, the first (by name) that is
    in ``present`` (the export's columns and the column map's keys), else the first by name.

    >>> from analysis.ledger import parse_ledger
    >>> led = parse_ledger({"version": 1, "prompts": {"p": {"revisions": {"a": {}, "b": {}}}},
    ...     "experiments": {"e": {"prompt": "p", "unit": "account",
    ...                           "arms": {"control": "a", "treatment": "b"}}}})
    >>> default_unit(led)
    'account'
    """
    units = sorted({e.unit for e in ledger.experiments.values()})
    if not units or "user_id" in units:
        return "user_id"
    return next((u for u in units if u in present), units[0])


def unit_column_map(columns: Mapping[str, str] | None, unit: str) -> dict[str, str]:
    """The column map with its ``user_id`` entry read as the unit column's.

    ``user_id`` is the canonical name of the unit column (README, "Inputs"), so a map
    ``user_id=account`` keeps meaning "my unit is the column ``account``" when the ledger's
    unit is called ``account`` (or anything else). An entry for the unit's own name wins.

    >>> unit_column_map({"user_id": "acct", "ts": "time"}, "account")
    {'ts': 'time', 'account': 'acct'}
    >>> unit_column_map({"user_id": "account"}, "user_id")
    {'user_id': 'account'}
    """
    mapping = dict(columns or {})
    if unit != "user_id" and "user_id" in mapping:
        theirs = mapping.pop("user_id")
        mapping.setdefault(unit, theirs)
    return mapping


def _missing_message(where: str, missing: Sequence[str], names: Sequence[str], unit: str) -> str:
    """The error for required columns the export lacks: which, what it has, how to map them."""
    hint = " ".join(f"--column {c}=<your column>" for c in missing)
    why = ""
    if unit in missing:
        why = f" ({unit!r} is the unit column: the experiment's unit in the ledger)"
    return (
        f"{where}: required column(s) {', '.join(missing)} missing{why}; the export has: "
        f"{', '.join(names)}. Map yours with {hint} (or a --columns FILE map; "
        "columns={...} in Python)"
    )


def check_tags(report: LoadReport, ledger: Ledger) -> LoadReport:
    """Check the experiment × arm tags against the ledger (no scan: uses the report's counts).

    Unknown experiments are reported with counts; an arm a known experiment does not define
    (including a missing arm) raises :class:`EventsError` listing every such tag and its count.
    """
    unknown: dict[str, int] = {}
    bad: dict[tuple[str, str | None], int] = {}
    orphan = 0
    for (exp, arm), n in report.tags.items():
        if exp is None:
            orphan += n if arm is not None else 0
            continue
        definition = ledger.experiments.get(exp)
        if definition is None:
            unknown[exp] = unknown.get(exp, 0) + n
        elif arm is None or arm not in definition.arms:
            bad[(exp, arm)] = n
    if bad:
        listed = "; ".join(
            f"experiment {e!r} arm {a!r}: {n} row(s)" for (e, a), n in sorted(bad.items(), key=str)
        )
        raise EventsError(
            f"{report.source}: arm tag(s) the ledger does not define — {listed}. Fix the tags "
            "or add the arm to the experiment in the ledger"
        )
    return replace(
        report, unknown_experiments=dict(sorted(unknown.items())), arm_without_experiment=orphan
    )


# ------------------------------------------------------------------------------------------
# sources


def _open(source: Any) -> tuple[nw.LazyFrame[Any], str, str, bool]:
    """The lazy frame, its kind, its description, and whether it comes from text files (CSV,
    NDJSON: every column is parsed by the validation scan, so that a bad value fails here)."""
    if isinstance(source, str | Path):
        frame, where, fmt = open_path(Path(source) if not is_glob(str(source)) else source)
        return frame, "file", where, fmt != "parquet"
    frame, kind, where = _open_object(source)
    return frame, kind, where, False


_DESCRIPTIONS = {
    "polars-lazy": "events (polars LazyFrame)",
    "duckdb": "events (DuckDB relation)",
    "pyspark": "events (Spark DataFrame)",
}


def _open_object(source: Any) -> tuple[nw.LazyFrame[Any], str, str]:
    """Lazy inputs stay in their engine; eager frames run on polars' lazy engine."""
    if isinstance(source, nw.LazyFrame):
        return source, _engines.kind_of(source), "events"
    if isinstance(source, nw.DataFrame):
        return source.lazy(backend="polars"), "polars", "events"
    module = type(source).__module__.split(".")[0]
    try:
        native = nw.from_native(source)
    except TypeError:
        raise EventsError(
            f"events: cannot read a {type(source).__name__}; pass a path (Parquet/CSV/NDJSON), "
            "or a pandas, polars, pyarrow, DuckDB or PySpark object"
        ) from None
    if isinstance(native, nw.LazyFrame):
        kind = _engines.kind_of(native)
        return native, kind, _DESCRIPTIONS.get(kind, f"events ({module})")
    if isinstance(native, nw.DataFrame):
        kind = _engines.kind_of(native, module)
        return native.lazy(backend="polars"), kind, f"events ({kind} DataFrame)"
    raise EventsError(f"events: a {type(source).__name__} is not a table")  # pragma: no cover


# ------------------------------------------------------------------------------------------
# column map and types


def _rename(
    frame: nw.LazyFrame[Any], columns: Mapping[str, str], where: str
) -> tuple[nw.LazyFrame[Any], dict[str, str]]:
    names = frame.collect_schema().names()
    renamed: dict[str, str] = {}
    for canonical, theirs in columns.items():
        if theirs == canonical:
            continue
        if theirs not in names:
            raise EventsError(
                f"{where}: column map names {theirs!r} for {canonical!r}, but the export has no "
                f"such column; it has: {', '.join(names)}. Fix --column {canonical}=<your "
                "column> (or the --columns file)"
            )
        if canonical in names and canonical not in columns.values():
            raise EventsError(
                f"{where}: column map renames {theirs!r} to {canonical!r}, but the export already "
                f"has a {canonical!r} column; map or drop that one first"
            )
        renamed[canonical] = theirs
    if renamed:
        frame = frame.rename({v: k for k, v in renamed.items()})
    return frame, renamed


def _normalise_types(frame: nw.LazyFrame[Any], where: str) -> tuple[nw.LazyFrame[Any], str]:
    schema = frame.collect_schema()
    casts = [
        nw.col(c).cast(nw.String)
        for c in _TEXT_COLUMNS
        if c in schema
        and schema[c] != nw.String
        and (
            schema[c].is_numeric()
            or schema[c] in (nw.Unknown, nw.Categorical, nw.Enum)
            or str(schema[c]) == "Null"
        )
    ]
    for c in _TEXT_COLUMNS:
        if c in schema and not (
            schema[c] == nw.String
            or schema[c].is_numeric()
            or schema[c] in (nw.Unknown, nw.Categorical, nw.Enum)
            or str(schema[c]) == "Null"
        ):
            raise EventsError(
                f"{where}: column {c!r} has type {schema[c]}; expected text (or integers)"
            )
    if casts:
        frame = frame.with_columns(*casts)
    ts_type = schema["ts"]
    if isinstance(ts_type, nw.Datetime):
        tz = ts_type.time_zone
        if tz is not None and _engines.is_spark(frame):
            tz = _engines.spark_time_zone(frame)  # narwhals caches it per session
        if tz is None:
            return frame.with_columns(nw.col("ts").dt.replace_time_zone("UTC")), (
                "naive, read as UTC"
            )
        if tz not in _UTC_NAMES:
            if frame.implementation.is_duckdb():
                raise EventsError(
                    f"{where}: column 'ts' is in time zone {tz}; run SET TimeZone = 'UTC' on the "
                    "DuckDB connection before passing the relation"
                )
            if _engines.is_spark(frame):
                raise EventsError(
                    f"{where}: column 'ts' is read in the Spark session time zone {tz}; set "
                    "spark.sql.session.timeZone to UTC before reading the events"
                )
            return frame.with_columns(nw.col("ts").dt.convert_time_zone("UTC")), (
                f"converted from {tz} to UTC"
            )
        return frame, "utc"
    if ts_type == nw.String:
        return _parse_text_ts(frame, where)
    if ts_type == nw.Date:
        raise EventsError(
            f"{where}: column 'ts' holds dates without a time; the split needs event times"
        )
    raise EventsError(
        f"{where}: column 'ts' has type {ts_type}; expected a timestamp (datetime or ISO-8601 "
        "text such as 2026-11-02T09:00:00Z)"
    )


def _parse_text_ts(frame: nw.LazyFrame[Any], where: str) -> tuple[nw.LazyFrame[Any], str]:
    if not frame.implementation.is_polars():
        cast = "to_timestamp(ts) in Spark" if _engines.is_spark(frame) else "TIMESTAMPTZ"
        raise EventsError(
            f"{where}: column 'ts' is text; cast it to a timestamp ({cast}) in the query that "
            "builds the events"
        )
    import polars as pl

    native: pl.LazyFrame = frame.to_native()
    first = native.select(pl.col("ts").drop_nulls().first()).collect().item()
    naive = first is None or not _OFFSET.search(str(first).strip())
    parsed = pl.col("ts").str.strip_chars().str.to_datetime(time_zone="UTC", strict=False)
    bad = (
        native.select(
            (parsed.is_null() & pl.col("ts").is_not_null()).sum().alias("n"),
            pl.col("ts").filter(parsed.is_null() & pl.col("ts").is_not_null()).first().alias("ex"),
        )
        .collect()
        .row(0)
    )
    if bad[0]:
        raise EventsError(
            f"{where}: column 'ts': {bad[0]} value(s) are not ISO-8601 timestamps, e.g. "
            f"{bad[1]!r}; write them like 2026-11-02T09:00:00Z"
        )
    out = nw.from_native(native.with_columns(parsed.alias("ts")))
    return out, "parsed from text, naive, read as UTC" if naive else "parsed from text"


# ------------------------------------------------------------------------------------------
# the validation scan


def _scan(
    frame: nw.LazyFrame[Any],
    where: str,
    unit: str,
    renamed: Mapping[str, str],
    timestamps: str,
    names: list[str],
    *,
    parse_all: bool = False,
) -> tuple[LoadReport, list[Any]]:
    """The validation scan: counts per tag, nulls, duplicate ids. With ``parse_all`` (text
    files) every column is read too, so that a value the engine cannot parse fails here, named,
    instead of in the middle of an analysis."""
    keys = {"experiment_id", "arm", "ts", unit, "event_id"}
    extra = [
        nw.col(c).is_null().cast(nw.Int64).sum().alias(f"__parsed_{i}")
        for i, c in enumerate(frame.collect_schema().names())
        if parse_all and c not in keys
    ]
    try:
        per_tag = collect(
            frame.group_by("experiment_id", "arm", drop_null_keys=False).agg(
                nw.len().alias("n"),
                nw.col("ts").is_null().cast(nw.Int64).sum().alias("null_ts"),
                nw.col(unit).is_null().cast(nw.Int64).sum().alias("null_unit"),
                nw.col("event_id").is_null().cast(nw.Int64).sum().alias("null_id"),
                *extra,
            )
        ).rows(named=True)
    except _engine_errors() as exc:
        raise EventsError(
            f"{where}: cannot read the events: {first_line(exc)}; fix the value or export the "
            "column with one type"
        ) from None
    n_rows = sum(int(r["n"]) for r in per_tag)
    for col, key in (("ts", "null_ts"), (unit, "null_unit"), ("event_id", "null_id")):
        nulls = sum(int(r[key]) for r in per_tag)
        if nulls:
            example = _null_example(frame, col)
            raise EventsError(
                f"{where}: {nulls} row(s) have a null {col!r}{example}; every event needs one — "
                "fix or filter them in the export"
            )
    duplicates = _duplicate_ids(frame)
    n_dup = sum(n - 1 for n in duplicates.values())
    examples = tuple(str(v) for v in sorted(duplicates, key=str)[:_MAX_EXAMPLES])
    tags = {(r["experiment_id"], r["arm"]): int(r["n"]) for r in per_tag}
    report = LoadReport(
        source=where,
        n_rows=n_rows,
        n_events=n_rows - n_dup,
        n_duplicates=n_dup,
        duplicate_examples=examples,
        timestamps=timestamps,
        renamed=dict(renamed),
        tags=dict(sorted(tags.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))),
        missing_optional=tuple(
            c
            for c in CANONICAL_COLUMNS
            if c not in names and c not in renamed and not (c == "user_id" and unit != c)
        ),
        unit=unit,
    )
    return report, list(duplicates)


def _engine_errors() -> tuple[type[BaseException], ...]:
    """The errors a query engine raises on data it cannot read (polars; DuckDB when loaded)."""
    import sys

    import polars as pl

    errors: list[type[BaseException]] = [pl.exceptions.PolarsError, OSError]
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None:
        errors.append(duckdb.Error)
    if "pyspark" in sys.modules:
        from pyspark.errors import PySparkException

        errors.append(PySparkException)
    return tuple(errors)


def _check_key_types(frame: nw.LazyFrame[Any], where: str, unit: str) -> None:
    """Id columns (``event_id``, the unit, ``conversation_id``) hold scalars: text, numbers,
    booleans or categories — not lists, structs, binary data or objects."""
    schema = frame.collect_schema()
    for col in ("event_id", unit, "conversation_id"):
        if col not in schema:
            continue
        dtype = schema[col]
        if dtype.is_nested() or dtype in (nw.Binary, nw.Object, nw.Unknown):
            raise EventsError(
                f"{where}: column {col!r} has type {dtype}; an id must be text or a number — "
                "cast or flatten it in the export"
            )


def collect(frame: nw.LazyFrame[Any]) -> nw.DataFrame[Any]:
    """Collect a (small) result (see :func:`analysis.events._engines.collect`)."""
    return _engines.collect(frame)


def _duplicate_ids(frame: nw.LazyFrame[Any]) -> dict[Any, int]:
    """``event_id`` → rows, for every id that occurs more than once (exact; per engine:
    :func:`analysis.events._engines.duplicate_ids`)."""
    return _engines.duplicate_ids(frame)


def _drop_duplicates(frame: nw.LazyFrame[Any], ids: list[Any]) -> nw.LazyFrame[Any]:
    """Keep one row per duplicated id (the earliest ``ts``); other rows are untouched."""
    repeated = nw.col("event_id").is_in(ids)
    kept = frame.filter(repeated).unique(subset=["event_id"], keep="first", order_by=["ts"])
    return nw.concat([frame.filter(~repeated), kept], how="vertical")


def _null_example(frame: nw.LazyFrame[Any], col: str) -> str:
    if col == "event_id":
        return ""
    row = frame.filter(nw.col(col).is_null()).select("event_id").head(1).collect()
    return f" (e.g. event_id {row['event_id'][0]!r})" if len(row) else ""
