"""The numbers do not depend on the engine (issue 12).

The whole sample story — split labels, contamination counts, every effect row, SRM, explain —
runs on polars (lazy file scan and eager DataFrame), pandas, pyarrow, DuckDB and PySpark; labels
and counts must match exactly and floats to 1e-9 relative. Spark and DuckDB must keep the
event-level work in their engine (the labelled frame stays a Spark DataFrame / DuckDB
relation). Quantiles are order statistics chosen by rank, checked against a brute-force sort
and numpy on polars, DuckDB and Spark. One generated export (``tests/_generators.py``) is
compared on polars, DuckDB and Spark as well.

Spark tests share the session-scoped ``spark`` fixture (``local[2]``); each Spark run is made
once per module and kept.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import narwhals as nw
import numpy as np
import polars as pl
import pytest

import analysis as ps
from analysis.events import _engines
from analysis.events.labelling import materialized, split
from analysis.metrics import aggregation as agg
from analysis.metrics.definitions import Quantile
from analysis.stats.quantile import order_statistic_rank

sys.path.insert(0, str(Path(__file__).parent))
from _generators import RampSpec, generate, ledger_file

# PySpark's Arrow collect leaves its result socket to the garbage collector
# (pyspark/sql/pandas/conversion.py, _load_from_socket); not a leak of ours.
pytestmark = [
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
    ),
]

REL = 1e-9
LABEL_COLUMNS = ["event_id", "phase", "served_revision", "contamination", "ramp_moved"]


def _metrics() -> list[Any]:
    return [
        ps.Ratio("helpfulness"),
        ps.Proportion("thumbs_up"),
        ps.Mean("cost_usd", direction="lower"),
        ps.Quantile("latency_ms", 0.95, direction="lower"),
        ps.Quantile("latency_ms", 0.5, name="latency_p50"),
    ]


def _same(a: Any, b: Any, where: str, scale: float = 0.0) -> None:
    """Equal; floats to ``REL`` relative to the larger of the two values and ``scale`` (NaN
    equals NaN)."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            assert a is None, where
            assert b is None, where
            return
        x, y = float(a), float(b)
        if math.isnan(x) or math.isnan(y):
            assert math.isnan(x), f"{where}: {x} vs {y}"
            assert math.isnan(y), f"{where}: {x} vs {y}"
            return
        tol = REL * max(abs(x), abs(y), scale)
        assert x == y or abs(x - y) <= tol, f"{where}: {x!r} vs {y!r}"
        return
    assert a == b, f"{where}: {a!r} vs {b!r}"


def _row_scale(row: Any) -> float:
    """The largest finite estimate of a row (not p-values): a difference of two estimates that
    should be zero (e.g. an explain step that changes nothing) is compared on that scale, since
    summation order leaves ~1e-16 of it."""
    values = [
        abs(v)
        for f, v in zip(row._fields, row, strict=True)
        if isinstance(v, float) and math.isfinite(v) and "pvalue" not in f and f != "statistic"
    ]
    return max(values, default=0.0)


def _same_rows(want: Any, got: Any, what: str) -> None:
    assert len(want.rows) == len(got.rows), what
    for i, (a, b) in enumerate(zip(want.rows, got.rows, strict=True)):
        scale = _row_scale(a)
        for field, x, y in zip(a._fields, a, b, strict=True):
            _same(x, y, f"{what} row {i} {field}", 0.0 if "pvalue" in field else scale)


def _labels(res: Any) -> pl.DataFrame:
    """The per-event labels, collected (test only), sorted by event id."""
    native = res.frame.select(*LABEL_COLUMNS).collect().to_polars()
    return native.sort("event_id")


class _Run:
    """One engine's split, summary, labels and analysis of an export."""

    def __init__(self, source: Any, ledger: Any, metrics: list[Any] | None = None, **kw: Any):
        self.res = split(source, ledger)
        self.summary = ps.contamination_summary(self.res)
        self.labels = _labels(self.res)
        self.effects = ps.analyze(self.res, metrics=metrics or _metrics(), **kw)


# ---------------------------------------------------------------------------------- inputs


def _inputs(events_path: Path) -> dict[str, Callable[[Any], Any]]:
    """Engine name -> a function of the ``spark`` fixture giving the sample in that engine."""
    return {
        "polars-file": lambda _: events_path,
        "polars-lazy": lambda _: pl.scan_parquet(events_path),
        "polars": lambda _: pl.read_parquet(events_path),
        "pandas": lambda _: pl.read_parquet(events_path).to_pandas(),
        "pyarrow": lambda _: pl.read_parquet(events_path).to_arrow(),
        "duckdb": lambda _: duckdb.read_parquet(str(events_path)),
        "pyspark": lambda spark: spark.read.parquet(str(events_path)),
    }


ENGINES = ["polars-lazy", "polars", "pandas", "pyarrow", "duckdb", "pyspark"]
KINDS = {
    "polars-lazy": "polars-lazy",
    "polars": "polars",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "duckdb": "duckdb",
    "pyspark": "pyspark",
}


@pytest.fixture(scope="module")
def reference(events_path: Path, ledger: Any) -> _Run:
    """The sample on polars from the Parquet file (the CLI's path)."""
    return _Run(events_path, ledger)


@pytest.fixture(scope="module")
def runs() -> dict[str, _Run]:
    """The runs made so far in this module, by engine (each engine is run once)."""
    return {}


@pytest.fixture
def run_of(
    runs: dict[str, _Run], events_path: Path, ledger: Any, request: pytest.FixtureRequest
) -> Callable[[str], _Run]:
    def get(engine: str) -> _Run:
        if engine not in runs:
            spark = request.getfixturevalue("spark") if engine == "pyspark" else None
            runs[engine] = _Run(_inputs(events_path)[engine](spark), ledger)
        return runs[engine]

    return get


# ---------------------------------------------------------------------- the sample story


@pytest.fixture(scope="module")
def truth(events_path: Path, ledger: Any, truth: pl.DataFrame) -> pl.DataFrame:
    """The generator's ground truth with ``prior_conversation`` (``tests/test_split.py``)."""
    from test_split import expected_labels

    return expected_labels(events_path, ledger, truth)


@pytest.mark.parametrize("engine", ENGINES)
def test_sample_story_is_engine_independent(
    engine: str, reference: _Run, run_of: Callable[[str], _Run], truth: pl.DataFrame
) -> None:
    run = run_of(engine)
    assert run.res.kind == KINDS[engine]
    # labels: every event, exactly (and equal to the generator's ground truth)
    assert run.labels.equals(reference.labels)
    joined = run.labels.join(truth, on="event_id", how="inner")
    assert len(joined) == len(truth)
    assert (joined["contamination"] == joined["label"]).all()
    assert (joined["phase"] == joined["phase_right"]).all()
    # counts by phase × arm × label, and per-label totals
    assert run.summary.to_dicts() == reference.summary.to_dicts()
    assert run.summary.totals == reference.summary.totals
    assert run.summary.contaminated_units == reference.summary.contaminated_units
    # every effect row, SRM, explain, exclusions, crossover, missing, recovery
    want, got = reference.effects, run.effects
    for table in (
        "effects",
        "srm",
        "explain",
        "exclusions",
        "crossover",
        "missing",
        "recovery",
        "recovery_summary",
    ):
        _same_rows(getattr(want, table), getattr(got, table), f"{engine} {table}")
    assert got.alerts == want.alerts


def test_sample_reference_is_the_story(reference: _Run) -> None:
    """The reference itself tells the sample's story (so equality above is not vacuous)."""
    row = reference.effects.effect("helpfulness")
    assert -0.46 < row.effect < -0.33
    assert {r.label for r in reference.summary.rows} >= {"clean", "carryover", "crossover"}
    assert next(iter(reference.summary.to_dict())) == "schema_version"
    assert reference.summary.to_dict()["schema_version"] == 1
    assert next(iter(reference.res.load_report.to_dict())) == "schema_version"
    q = [r for r in reference.effects.effects.rows if r.metric == "latency_ms_p95"]
    assert q
    assert all(not math.isnan(r.effect) for r in q)


def test_spark_keeps_the_events_in_spark(run_of: Callable[[str], _Run]) -> None:
    from pyspark.sql import DataFrame

    run = run_of("pyspark")
    assert run.res.frame.implementation.is_pyspark()
    assert isinstance(run.res.to_native(), DataFrame)
    assert isinstance(run.res.keyed.to_native(), DataFrame)
    with materialized(run.res) as stored:
        native = stored.keyed.to_native()
        assert isinstance(native, DataFrame)
        assert native.storageLevel.useMemory or native.storageLevel.useDisk
    assert not native.storageLevel.useMemory
    assert not native.storageLevel.useDisk


def test_duckdb_keeps_the_events_in_duckdb(run_of: Callable[[str], _Run]) -> None:
    run = run_of("duckdb")
    assert isinstance(run.res.to_native(), duckdb.DuckDBPyRelation)
    with materialized(run.res) as stored:
        assert isinstance(stored.keyed.to_native(), duckdb.DuckDBPyRelation)
        n = stored.frame.select(nw.len().alias("n")).collect().item(0, "n")
    assert n == run.summary.n_events


# ------------------------------------------------------------------------- generated export


@pytest.fixture(scope="module")
def ramp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A generated bucket-moving ramp export (written once as Parquet) and its ledger."""
    directory = tmp_path_factory.mktemp("engines-ramp")
    path = directory / "events.parquet"
    generate(RampSpec(n_units=600, seed=12)).write_parquet(path)
    return path, ps.load_ledger(ledger_file(directory))


def test_generated_export_polars_duckdb_spark(ramp: tuple[Path, Any], spark: Any) -> None:
    path, ledger = ramp
    metrics = [ps.Ratio("helpfulness"), ps.Quantile("helpfulness", 0.9)]
    base = _Run(path, ledger, metrics, block_hours=6)
    # the ramp moves units (kept, with their labels); every engine counts them alike
    assert base.summary.moved_units > 0
    for engine, source in (
        ("duckdb", duckdb.read_parquet(str(path))),
        ("pyspark", spark.read.parquet(str(path))),
    ):
        run = _Run(source, ledger, metrics, block_hours=6)
        assert run.res.kind == engine
        assert run.labels.equals(base.labels), engine
        assert run.summary.to_dicts() == base.summary.to_dicts(), engine
        assert (run.summary.moved_units, run.summary.moved_events) == (
            base.summary.moved_units,
            base.summary.moved_events,
        ), engine
        for table in ("effects", "srm", "crossover", "explain", "missing", "by_exposure_day"):
            _same_rows(getattr(base.effects, table), getattr(run.effects, table), engine)
        for a, b in zip(base.effects.phase_equality.rows, run.effects.phase_equality.rows):
            _same(a.statistic, b.statistic, f"{engine} phase_equality", 1.0)


# ------------------------------------------------------------------------------- quantiles


def _quantile_data(seed: int) -> pl.DataFrame:
    """Groups of several sizes (1, 2, 19, 20, 21, 101 values), ties, nulls, NaN and inf."""
    rng = np.random.default_rng(seed)
    groups, values = [], []
    for g, n in enumerate((1, 2, 19, 20, 21, 101)):
        v = rng.integers(0, 7, n).astype(float) if g % 2 else rng.normal(100, 30, n)
        groups += [f"g{g}"] * (n + 3)
        values += [*v.tolist(), None, float("nan"), float("inf")]
    return pl.DataFrame({"g": groups, "x": values}, schema={"g": pl.String, "x": pl.Float64})


def _brute(df: pl.DataFrame, p: float, side: str) -> dict[str, float]:
    """The order statistic by sorting each group's finite values in Python."""
    out = {}
    for (g,), part in df.group_by("g"):
        xs = sorted(v for v in part["x"].to_list() if v is not None and math.isfinite(v))
        out[g] = xs[order_statistic_rank(p, len(xs), side) - 1]
    return out


PROBS = [0.0, 0.05, 0.25, 0.5, 0.95, 0.975, 1.0, 1 / 3, 0.1, 0.7]


def _engine_frame(engine: str, df: pl.DataFrame, spark: Any) -> nw.LazyFrame[Any]:
    if engine == "polars":
        return nw.from_native(df.lazy())
    if engine == "duckdb":
        con = duckdb.connect()
        con.register("df", df.to_arrow())
        return nw.from_native(con.sql("SELECT * FROM df"))
    return nw.from_native(spark.createDataFrame(df.rows(), "g string, x double"))


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pyspark"])
def test_order_statistics_by_rank(engine: str, request: pytest.FixtureRequest) -> None:
    df = _quantile_data(3)
    spark = request.getfixturevalue("spark") if engine == "pyspark" else None
    frame = _engine_frame(engine, df, spark)
    metric = Quantile("x", 0.5)
    ranked = agg.ranked(frame, ["g"], metric)
    exprs = [
        nw.when(agg.at_rank(p, side)).then(nw.col("__v")).min().alias(f"{side}{k}")
        for k, p in enumerate(PROBS)
        for side in ("lower", "higher")
    ]
    rows = {r["g"]: r for r in ranked.group_by("g").agg(*exprs).collect().rows(named=True)}
    for k, p in enumerate(PROBS):
        for side in ("lower", "higher"):
            want = _brute(df, p, side)
            for g, value in want.items():
                assert rows[g][f"{side}{k}"] == value, (engine, g, p, side)
    # and numpy's definition of the same order statistics
    for (g,), part in df.group_by("g"):
        xs = np.array([v for v in part["x"].to_list() if v is not None and math.isfinite(v)])
        for k, p in enumerate(PROBS):
            assert rows[g][f"lower{k}"] == np.quantile(xs, p, method="lower")
            assert rows[g][f"higher{k}"] == np.quantile(xs, p, method="higher")


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_quantiles_per_group(engine: str) -> None:
    df = _quantile_data(4)
    frame = _engine_frame(engine, df, None)
    out = agg.quantiles(frame, ["g"], [ps.Mean("x"), Quantile("x", 0.9)])
    assert out is not None
    got = {r["g"]: r["q|1"] for r in out.collect().rows(named=True)}
    assert got == _brute(df, 0.9, "lower")


def test_order_statistic_rank_definition() -> None:
    """The rank is numpy's ``lower``/``higher`` index plus one, for every n and many p."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 20, 21, 100, 1001):
        xs = np.sort(rng.normal(size=n))
        for p in [*PROBS, *rng.random(20).tolist()]:
            for side in ("lower", "higher"):
                k = order_statistic_rank(p, n, side)
                assert 1 <= k <= n
                assert xs[k - 1] == np.quantile(xs, p, method=side)
    with pytest.raises(ValueError, match="side"):
        order_statistic_rank(0.5, 3, "middle")


def test_duckdb_quantile_metric_on_a_relation(ledger: Any, events_path: Path) -> None:
    """Was: 'Only linear interpolation methods are supported for DuckDB quantile'."""
    con = duckdb.connect()
    rel = con.read_parquet(str(events_path))
    res = ps.analyze(rel, ledger, metrics=[ps.Quantile("latency_ms", 0.95)], explain=False)
    rows = res.effects.rows
    assert rows
    assert all(math.isfinite(r.effect) for r in rows)


# ---------------------------------------------------------------------------- engine helpers


def test_kind_of_and_lazy_kinds(spark: Any) -> None:
    sdf = spark.createDataFrame([(1,)], ["a"])
    assert _engines.kind_of(nw.from_native(sdf)) == "pyspark"
    assert _engines.kind_of(nw.from_native(duckdb.sql("SELECT 1 AS a"))) == "duckdb"
    assert _engines.kind_of(nw.from_native(pl.LazyFrame({"a": [1]}))) == "polars-lazy"
    eager = nw.from_native(pl.DataFrame({"a": [1]}), eager_only=True)
    assert _engines.kind_of(eager, "pandas") == "pandas"


def test_spark_session_time_zone_must_be_utc(spark: Any, events_path: Path, ledger: Any) -> None:
    spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
    try:
        sdf = spark.read.parquet(str(events_path)).limit(50)
        with pytest.raises(ps.EventsError, match=r"spark\.sql\.session\.timeZone"):
            ps.load_events(sdf)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_spark_text_timestamps_are_named(spark: Any) -> None:
    sdf = spark.createDataFrame(
        [("e1", "2026-11-02T09:00:00Z", "u1", None, None)],
        "event_id string, ts string, user_id string, experiment_id string, arm string",
    )
    with pytest.raises(ps.EventsError, match="to_timestamp"):
        ps.load_events(sdf)


def test_spark_duplicates_and_nulls(spark: Any) -> None:
    from datetime import UTC, datetime

    t0, t1 = datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 2, 8, tzinfo=UTC)
    rows = [("a", t0, "u1"), ("b", t0, "u2"), ("b", t1, "u2"), ("c", t0, "u3")]
    sdf = spark.createDataFrame(rows, "event_id string, ts timestamp, user_id string")
    sdf = sdf.selectExpr(
        "*", "CAST(NULL AS string) AS experiment_id", "CAST(NULL AS string) AS arm"
    )
    ev = ps.load_events(sdf)
    assert ev.kind == "pyspark"
    assert (ev.report.n_rows, ev.report.n_duplicates, ev.report.n_events) == (4, 1, 3)
    kept = ev.frame.filter(nw.col("event_id") == "b").collect().to_polars()
    assert kept["ts"].to_list() == [t1]  # the earliest ts is kept
    bad = spark.createDataFrame([("a", t0, None)], "event_id string, ts timestamp, user_id string")
    bad = bad.selectExpr("*", "CAST(NULL AS string) AS experiment_id", "'x' AS arm")
    with pytest.raises(ps.EventsError, match="null 'user_id'"):
        ps.load_events(bad)
