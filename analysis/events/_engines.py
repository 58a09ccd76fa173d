"""The few steps that differ between query engines, behind one private interface.

Everything else in :mod:`analysis.events` and :mod:`analysis.metrics` is written once, in
narwhals' lazy API (joins, group-bys, window functions), and runs unchanged in every engine. The
steps here have one implementation per engine, the way narwhals keeps its own backends private:

* :func:`kind_of` — the kind of an input (``polars``, ``polars-lazy``, ``pandas``, ``pyarrow``,
  ``duckdb``, ``pyspark``, other lazy narwhals backends by name, or ``file``);
* :func:`collect` / :func:`collect_all` — bring small aggregates to the driver (polars: its
  streaming engine, several plans in one go; elsewhere the engine's own collect);
* :func:`small` — compute a small lookup table once (polars and DuckDB keep it in memory, Spark
  checkpoints it locally); :func:`shared` — the same for a sub-plan several aggregates of one
  run read, except on polars, whose ``collect_all`` already computes common sub-plans once;
* :func:`with_keys` — compact grouping keys (64-bit hashes on polars; elsewhere the ids);
* :func:`duplicate_ids` — repeated ``event_id`` values, exactly;
* :func:`with_unit_bucket` — a uniform number in [0, 1) per unit from a hash of its id (the
  A/A replay of ``promptstate plan`` assigns arms by it);
* :func:`with_minutes_since` — whole minutes elapsed since an instant (Spark has no duration
  arithmetic in narwhals; it counts microseconds since the epoch instead);
* :func:`with_micros_since` / :func:`with_bins_since` — exact microseconds since an instant,
  and the index of a fixed-width time bin (the hour buckets of the report, the minute cells
  around rollout boundaries), as integers, the same in every engine;
* :func:`table` — a small table of Python values as a lazy frame in an engine (on Spark in the
  frame's own session);
* :func:`materialize` — the labelled events computed once for several aggregations: polars
  and DuckDB write them to a temporary Parquet file (DuckDB re-runs a relation's whole plan for
  every aggregate, and the labelling joins are most of it: on the sample ``analyze`` takes
  about a tenth of the time), Spark persists them (memory and disk) for the block.

Nothing here computes a statistic.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import narwhals as nw

__all__ = [
    "LAZY_KINDS",
    "collect",
    "collect_all",
    "duplicate_ids",
    "is_spark",
    "kind_of",
    "materialize",
    "shared",
    "small",
    "spark_time_zone",
    "table",
    "values_sql",
    "with_bins_since",
    "with_keys",
    "with_micros_since",
    "with_minutes_since",
]

#: Kinds whose results stay lazy in their engine (``to_native`` hands back a lazy object).
LAZY_KINDS = frozenset({"polars-lazy", "duckdb", "pyspark", "file"})


def kind_of(frame: nw.LazyFrame[Any] | nw.DataFrame[Any], module: str = "") -> str:
    """The kind of an input frame: ``polars-lazy``, ``duckdb``, ``pyspark`` (also for Spark
    Connect), another lazy backend's name (``sqlframe``, ``ibis``, ``dask``), or for eager
    frames ``polars``, ``pandas``, ``pyarrow`` (``module``: the native object's top module)."""
    impl = frame.implementation
    if isinstance(frame, nw.LazyFrame):
        if impl.is_polars():
            return "polars-lazy"
        if impl.is_duckdb():
            return "duckdb"
        if impl.is_pyspark() or impl.is_pyspark_connect():
            return "pyspark"
        return str(impl.value)
    return {"pandas": "pandas", "pyarrow": "pyarrow", "polars": "polars"}.get(module, module)


def is_spark(frame: nw.LazyFrame[Any]) -> bool:
    """Whether ``frame`` runs on PySpark (classic or Spark Connect)."""
    impl = frame.implementation
    return bool(impl.is_pyspark() or impl.is_pyspark_connect())


def spark_time_zone(frame: nw.LazyFrame[Any]) -> str:
    """The Spark session's time zone now (``spark.sql.session.timeZone``), in which Spark
    reads and writes its ``TIMESTAMP`` values."""
    session = frame.to_native().sparkSession
    return str(session.conf.get("spark.sql.session.timeZone"))


def collect(frame: nw.LazyFrame[Any]) -> nw.DataFrame[Any]:
    """Collect a (small) result; polars plans run on its streaming engine to bound memory."""
    if frame.implementation.is_polars():
        return nw.from_native(frame.to_native().collect(engine="streaming"))
    return frame.collect()


def collect_all(frames: Sequence[nw.LazyFrame[Any]]) -> list[list[dict[str, Any]]]:
    """Collect several small aggregates, as rows.

    polars runs them in one go (``collect_all`` shares the sub-plans); Spark in one action
    (:func:`_spark_collect_all`; on the persisted labelled events, see :func:`materialize`);
    other engines one by one.
    """
    if frames and all(f.implementation.is_polars() for f in frames):
        import polars as pl

        # streaming engine: the in-memory one loads every column the plans read whole (20M
        # events: 3.1 GB against 2.5 GB, benchmarks/README.md)
        outs = pl.collect_all([f.to_native() for f in frames], engine="streaming")
        return [o.to_dicts() for o in outs]
    if len(frames) > 1 and all(is_spark(f) for f in frames):
        return _spark_collect_all(frames)
    return [f.collect().rows(named=True) for f in frames]


def _spark_collect_all(frames: Sequence[nw.LazyFrame[Any]]) -> list[list[dict[str, Any]]]:
    """Several aggregates of one Spark session in one action.

    Every action is a Spark job with its own scheduling overhead (seconds on a small cluster);
    the aggregates are stacked into one wide frame instead — frame ``i``'s column ``c`` becomes
    column ``_{i}_{j}`` (null in the other frames' rows), a ``__q`` column says which frame a
    row came from — collected once through narwhals (the same value conversions as collecting
    each frame), and cut apart again. Each aggregate keeps its own column types.
    """
    from pyspark.sql import functions as F

    natives = [f.to_native() for f in frames]
    fields = [(i, field) for i, df in enumerate(natives) for field in df.schema.fields]
    alias = {(i, field.name): f"_{i}_{j}" for j, (i, field) in enumerate(fields)}
    parts = []
    for i, df in enumerate(natives):
        cols = [F.lit(i).cast("int").alias("__q")]
        for k, field in fields:
            if k == i:
                quoted = field.name.replace("`", "``")
                cols.append(F.col(f"`{quoted}`").alias(alias[(k, field.name)]))
            else:
                cols.append(F.lit(None).cast(field.dataType).alias(alias[(k, field.name)]))
        parts.append(df.select(*cols))
    packed = parts[0]
    for part in parts[1:]:
        packed = packed.unionAll(part)
    rows = nw.from_native(packed).collect().rows(named=True)
    out: list[list[dict[str, Any]]] = [[] for _ in frames]
    names = [
        [(field.name, alias[(i, field.name)]) for field in df.schema.fields]
        for i, df in enumerate(natives)
    ]
    for row in rows:
        i = int(row["__q"])
        out[i].append({name: row[col] for name, col in names[i]})
    return out


def small(frame: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Compute a small lookup table now, so that the plans that join it stay lean.

    polars collects it in its own streaming pass and keeps it in memory; Spark computes it
    once with ``localCheckpoint`` (kept on the executors, memory and disk, lineage cut: every
    later query that joins it reads the stored rows instead of re-running the labelling, and
    Spark's planner sees a leaf instead of the whole plan); DuckDB holds the computed rows
    (``relation.materialize()``; left lazy, every query that joined it re-ran the labelling —
    one count over the labelled events scanned the export 40 times).
    """
    if frame.implementation.is_polars():
        return nw.from_native(frame.to_native().collect(engine="streaming").lazy())
    if is_spark(frame):
        return nw.from_native(frame.to_native().localCheckpoint(eager=True))
    if frame.implementation.is_duckdb():
        return nw.from_native(_duckdb_held(frame.to_native()))
    return frame


def _duckdb_held(relation: Any) -> Any:
    """``relation`` computed once and held (``DuckDBPyRelation.materialize``); a DuckDB without
    that method gets the lazy relation back (the same results, computed at every read)."""
    held = getattr(relation, "materialize", None)
    return held() if callable(held) else relation


def shared(frame: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """A small sub-plan several aggregates of one run read (the enrolment table, the per-unit
    table): polars leaves it lazy (its ``collect_all`` computes a sub-plan common to several
    queries once); engines that run each query on its own compute it once (:func:`small`)."""
    if frame.implementation.is_polars():
        return frame
    return small(frame)


def with_keys(
    frame: nw.LazyFrame[Any], unit: str, conversations: bool
) -> tuple[nw.LazyFrame[Any], str, str | None]:
    """Add compact grouping keys for units and conversations where the engine profits.

    On polars, 64-bit hashes ``__uk``/``__ck`` of the ids group with far less memory than the
    strings; DuckDB and Spark group on the id columns themselves (they spill to disk, and a hash
    key would only add a column to every shuffled row).
    """
    conv: str | None = "conversation_id" if conversations else None
    if not frame.implementation.is_polars():
        return frame, unit, conv
    import polars as pl

    native: pl.LazyFrame = frame.to_native()
    keys = [pl.col(unit).hash(seed=0).alias("__uk")]
    if conversations:
        cid = pl.col("conversation_id")
        keys.append(pl.when(cid.is_not_null()).then(cid.hash(seed=0)).alias("__ck"))
    return nw.from_native(native.with_columns(keys)), "__uk", "__ck" if conversations else None


#: Modulus of the unit buckets (a prime: the hash's low bits are used evenly).
_BUCKETS = 1_000_000_007


def with_unit_bucket(frame: nw.LazyFrame[Any], unit: str, column: str, salt: int) -> Any:
    """``frame`` with ``column``: a number in [0, 1) per unit, a fixed function of the unit id
    and ``salt`` (each engine's 64-bit hash modulo a prime): the same for every event of a unit,
    uniform across units, different for another salt. Not the same numbers in every engine (each
    has its own hash), which an A/A replay does not need.
    """
    m = _BUCKETS
    if frame.implementation.is_polars():
        import polars as pl

        bucket = (pl.col(unit).cast(pl.String).hash(seed=salt) % m).cast(pl.Float64) / m
        return nw.from_native(frame.to_native().with_columns(bucket.alias(column)))
    if is_spark(frame):
        from pyspark.sql import functions as F

        col = F.col(f"`{unit}`").cast("string")
        hashed = F.pmod(F.xxhash64(col, F.lit(salt)), F.lit(m)).cast("double") / F.lit(float(m))
        return nw.from_native(frame.to_native().withColumn(column, hashed))
    if frame.implementation.is_duckdb():
        rel = frame.to_native()
        quoted = '"' + unit.replace('"', '""') + '"'
        expr = f"(hash(CAST({quoted} AS VARCHAR) || '#{int(salt)}') % {m}) / {float(m)}"
        return nw.from_native(rel.project(f'*, {expr} AS "{column}"'))
    raise NotImplementedError(f"unit buckets are not implemented for {frame.implementation}")


def duplicate_ids(frame: nw.LazyFrame[Any]) -> dict[Any, int]:
    """``event_id`` → rows, for every id that occurs more than once (exact).

    On polars, candidates are found by grouping a 64-bit hash of the id (much less memory than
    grouping the strings), then confirmed on the ids themselves, so the result is exact. Other
    engines group the ids and bring only the repeated ones to the driver.
    """
    if frame.implementation.is_polars():
        import polars as pl

        native: pl.LazyFrame = frame.to_native()
        hashed = pl.col("event_id").hash(seed=0).alias("__h")
        # sorting 8-byte hashes takes far less memory than a hash table of the ids
        hashes = native.select(hashed).collect(engine="streaming").to_series().sort()
        candidates = hashes.filter(hashes == hashes.shift(1)).unique()
        if candidates.is_empty():
            return {}
        found = (
            native.with_columns(hashed)
            .filter(pl.col("__h").is_in(candidates.implode()))
            .group_by("event_id")
            .agg(pl.len().alias("n"))
            .filter(pl.col("n") > 1)
            .collect(engine="streaming")
        )
        return dict(zip(found["event_id"].to_list(), found["n"].to_list(), strict=True))
    dup = frame.group_by("event_id").agg(nw.len().alias("n")).filter(nw.col("n") > 1).collect()
    return dict(zip(dup["event_id"].to_list(), dup["n"].to_list(), strict=True))


def with_minutes_since(
    frame: nw.LazyFrame[Any], column: str, start: datetime, out: str
) -> nw.LazyFrame[Any]:
    """``frame`` with ``out``: the whole minutes from ``start`` to ``column`` (a UTC timestamp
    at or after ``start``), truncated, as an integer — the same in every engine."""
    if is_spark(frame):
        from pyspark.sql import functions as F

        start_us = int(start.astimezone(UTC).timestamp()) * 1_000_000 + start.microsecond
        quoted = column.replace("`", "``")
        minutes = F.expr(f"(unix_micros(`{quoted}`) - {start_us}) div 60000000")
        return nw.from_native(frame.to_native().withColumn(out, minutes))
    return frame.with_columns(
        (nw.col(column) - nw.lit(start)).dt.total_minutes().cast(nw.Int64).alias(out)
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    """Microseconds from the Unix epoch to ``at`` (naive: read as UTC), exactly."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def with_micros_since(
    frame: nw.LazyFrame[Any], column: str, start: datetime, out: str
) -> nw.LazyFrame[Any]:
    """``frame`` with ``out``: the microseconds from ``start`` to ``column`` (a UTC timestamp;
    negative before ``start``) as an exact Int64 — the same in every engine (Spark has no
    duration arithmetic in narwhals; it subtracts microseconds since the epoch)."""
    if is_spark(frame):
        from pyspark.sql import functions as F

        quoted = column.replace("`", "``")
        micros = F.expr(f"unix_micros(`{quoted}`) - {_micros(start)}")
        return nw.from_native(frame.to_native().withColumn(out, micros))
    return frame.with_columns(
        (nw.col(column) - nw.lit(start)).dt.total_microseconds().cast(nw.Int64).alias(out)
    )


def with_bins_since(
    frame: nw.LazyFrame[Any], column: str, start: datetime, width: timedelta, out: str
) -> nw.LazyFrame[Any]:
    """``frame`` with ``out``: the index of the ``width``-wide time bin holding ``column``,
    counted from ``start`` — ``floor((column − start) / width)``, negative before ``start`` — as
    an exact Int64 in every engine (integer arithmetic on microseconds, no float division).

    With ``start`` the epoch and ``width`` one hour this is the hour bucket: bin ``k`` starts at
    ``start + k·width`` (what polars' ``dt.truncate("1h")`` gives, which narwhals does not
    offer on DuckDB for widths other than one unit, nor on Spark).
    """
    width_us = (width.days * 86_400 + width.seconds) * 1_000_000 + width.microseconds
    if width_us <= 0:
        raise ValueError(f"bin width must be positive, got {width}")
    if is_spark(frame):
        from pyspark.sql import functions as F

        quoted = column.replace("`", "``")
        us = f"(unix_micros(`{quoted}`) - {_micros(start)})"
        bins = F.expr(f"({us} - pmod({us}, {width_us})) div {width_us}")
        return nw.from_native(frame.to_native().withColumn(out, bins))
    tmp = f"{out}__us"
    return (
        with_micros_since(frame, column, start, tmp)
        .with_columns((nw.col(tmp) // width_us).cast(nw.Int64).alias(out))
        .drop(tmp)
    )


def table(data: Mapping[str, Sequence[Any]], like: nw.LazyFrame[Any], schema: Any) -> Any:
    """A small table of Python values as a lazy frame on ``like``'s engine.

    Args:
        data: Column name → values.
        like: A frame of the target engine (on Spark, its session is used).
        schema: The polars schema of ``data`` (column → polars dtype).

    Returns:
        A lazy narwhals frame; on DuckDB a relation on ``like``'s own connection (relations of
        two connections cannot be joined), built from typed SQL literals.
    """
    import polars as pl

    df = pl.DataFrame(dict(data), schema=schema)
    if like.implementation.is_polars():
        return nw.from_native(df.lazy())
    if like.implementation.is_duckdb():
        kinds: dict[Any, str] = {pl.Int64: "int", pl.Int32: "int32", pl.Int16: "int16"}
        kinds |= {pl.Float64: "float", pl.Boolean: "bool", pl.Float32: "float"}
        types = {
            c: "time" if isinstance(t, pl.Datetime) else kinds.get(t, "text")
            for c, t in df.schema.items()
        }
        sql = values_sql(df.to_dict(as_series=False), types)
        # held computed: the typed casts of the literals run once, not on every row of a join
        return nw.from_native(_duckdb_held(like.to_native().query("__like", sql)))
    if is_spark(like):
        session = like.to_native().sparkSession
        ddl = ", ".join(f"`{c}` {_spark_type(t)}" for c, t in df.schema.items())
        return nw.from_native(session.createDataFrame(df.rows(), ddl))
    eager = nw.from_native(df.to_arrow(), eager_only=True)
    return eager.lazy(backend=like.implementation)


def _spark_type(dtype: Any) -> str:
    """The Spark SQL type of a polars dtype (the few a small table holds)."""
    import polars as pl

    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    names: dict[Any, str] = {pl.Int64: "bigint", pl.Int32: "int", pl.Int16: "smallint"}
    names[pl.Int8] = "tinyint"
    names |= {pl.Float64: "double", pl.Float32: "float", pl.Boolean: "boolean"}
    return names.get(dtype, "string")


@contextlib.contextmanager
def materialize(frame: nw.LazyFrame[Any]) -> Iterator[nw.LazyFrame[Any]]:
    """``frame`` computed once for the block: Parquet on polars and DuckDB, persisted on Spark.

    polars writes the frame (streaming) to a temporary Parquet file, removed when the block
    exits, and scans it; DuckDB does the same on the relation's own connection; Spark persists
    the DataFrame (memory and disk; computed by the first aggregation, unpersisted when the
    block exits); other engines yield the plan unchanged.
    """
    if frame.implementation.is_polars():
        import polars as pl

        with tempfile.TemporaryDirectory(prefix="promptstate-") as tmp:
            path = Path(tmp) / "labelled.parquet"
            frame.to_native().sink_parquet(path, compression="lz4", engine="streaming")
            yield nw.from_native(pl.scan_parquet(path))
        return
    if frame.implementation.is_duckdb():
        with tempfile.TemporaryDirectory(prefix="promptstate-") as tmp:
            path = Path(tmp) / "labelled.parquet"
            relation = frame.to_native()
            relation.write_parquet(str(path))
            quoted = str(path).replace("'", "''")
            yield nw.from_native(relation.query("__labelled", f"SELECT * FROM '{quoted}'"))
        return
    if is_spark(frame):
        from pyspark import StorageLevel

        native = frame.to_native().persist(StorageLevel.MEMORY_AND_DISK)
        try:
            yield nw.from_native(native)
        finally:
            native.unpersist()
        return
    yield frame


_SQL_TYPES = {
    "time": "TIMESTAMPTZ",
    "int": "BIGINT",
    "int32": "INTEGER",
    "int16": "SMALLINT",
    "bool": "BOOLEAN",
    "float": "DOUBLE",
}


def values_sql(rows: Mapping[str, list[Any]], types: Mapping[str, str]) -> str:
    """``SELECT ... FROM (VALUES ...)`` holding ``rows``, every value a typed SQL literal."""

    def literal(value: Any, kind: str) -> str:
        if value is None:
            return "NULL"
        if kind == "time":
            return f"TIMESTAMPTZ '{value.astimezone(UTC).isoformat()}'"
        if kind == "bool":
            return "TRUE" if value else "FALSE"
        if kind in ("int", "int32", "int16"):
            return str(int(value))
        if kind == "float":  # the shortest text that reads back as the same double
            return f"'{float(value)!r}'"
        return "'" + str(value).replace("'", "''") + "'"

    columns = list(rows)
    kinds = [types.get(c, "text") for c in columns]
    n = len(rows[columns[0]]) if columns else 0
    select = ", ".join(
        f'CAST(c{i} AS {_SQL_TYPES.get(k, "VARCHAR")}) AS "{c}"'
        for i, (c, k) in enumerate(zip(columns, kinds, strict=True))
    )
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    if n == 0:
        nulls = ", ".join("NULL" for _ in columns)
        return f"SELECT {select} FROM (VALUES ({nulls})) AS v({names}) WHERE false"
    values = ",".join(
        "(" + ", ".join(literal(rows[c][r], k) for c, k in zip(columns, kinds, strict=True)) + ")"
        for r in range(n)
    )
    return f"SELECT {select} FROM (VALUES {values}) AS v({names})"
