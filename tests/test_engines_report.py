"""``report()`` and ``rollback_plan()`` do not depend on the engine (issue 12).

The sample's report and rollback plan are built on polars (the Parquet file, the CLI's path),
on a DuckDB relation and on a PySpark DataFrame; their ``to_dict()`` must agree: every count and
label exactly, every float to 1e-9 relative. The time helpers that replaced polars-only
duration arithmetic (hour buckets, minute cells, window joins) are checked on all three engines
against plain Python integer arithmetic.

Spark runs one split (reused by the report through its ``SplitResult``) and one plan, in the
session-scoped ``spark`` fixture.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import narwhals as nw
import polars as pl
import pytest

import analysis as ps
from analysis.events import _engines
from analysis.reporting import report
from analysis.reporting._data import EPOCH
from analysis.rollback import rollback_plan
from analysis.rollback._windows import Window, window_join

pytestmark = [
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
    ),
]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"
PLAN_LEDGER = SAMPLES / "rollback" / "ledger.yaml"
AT = datetime(2026, 11, 3, 8, 15, tzinfo=UTC)
REL = 1e-9
ENGINES = ["duckdb", "pyspark"]


# ------------------------------------------------------------------------------ comparing


def _differences(a: Any, b: Any, path: str = "$") -> list[str]:
    """Where two ``to_dict()`` trees differ: floats beyond ``REL`` relative (NaN equals NaN),
    anything else (counts, labels, times, keys and their order) unequal or of another type."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{path}: keys {list(a)} vs {list(b)}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]  # fmt: skip
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return [] if math.isnan(a) and math.isnan(b) else [f"{path}: {a!r} vs {b!r}"]
        if a == b or abs(a - b) <= REL * max(abs(a), abs(b)):
            return []
        return [f"{path}: {a!r} vs {b!r}"]
    if type(a) is not type(b) or a != b:
        return [f"{path}: {a!r} ({type(a).__name__}) vs {b!r} ({type(b).__name__})"]
    return []


def test_differences_catches_what_it_must() -> None:
    base = {"n": 3, "x": 0.5, "rows": [{"label": "clean", "t": AT}], "nan": math.nan}
    assert _differences(base, json.loads(json.dumps(base, default=str)) | base) == []
    assert _differences(base, base | {"x": 0.5 * (1 + 1e-12)}) == []
    assert _differences(base, base | {"x": 0.5 * (1 + 1e-8)})
    assert _differences(base, base | {"n": 4})
    assert _differences(base, base | {"n": Decimal(3)})  # a DuckDB HUGEINT sum leaking out
    assert _differences(base, base | {"nan": 0.0})
    assert _differences(base, {**base, "rows": [{"label": "carryover", "t": AT}]})
    assert _differences(base, {**base, "rows": [{"label": "clean", "t": AT + timedelta(hours=1)}]})


# ------------------------------------------------------------------------------ inputs


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("store") / "baselines"
    shutil.copytree(ROOT / "baselines", dest)
    return dest


def _source(engine: str, request: pytest.FixtureRequest) -> Any:
    path = SAMPLES / "events.parquet"
    if engine == "polars":
        return path
    if engine == "duckdb":
        con = duckdb.connect()
        con.sql("SET TimeZone = 'UTC'")
        return con.read_parquet(str(path))
    return request.getfixturevalue("spark").read.parquet(str(path))


#: What each engine runs. DuckDB: the sample's metrics (every kind) and the plan's residual
#: effect. Spark keeps to about a minute on two busy cores: a ratio and a quantile (the other
#: kinds are sums like the ratio; every kind is compared on Spark in ``test_engines.py``) and no
#: residual effect (an ``analyze`` of the events after the rollback, compared there too).
SETUPS: dict[str, dict[str, Any]] = {
    "duckdb": {"metrics": SAMPLES / "metrics.yaml", "recovery": True},
    "pyspark": {
        "metrics": (ps.Ratio("helpfulness"), ps.Quantile("latency_ms", 0.95, direction="lower")),
        "recovery": False,
    },
}


#: The run time of every report here: the late-data note names the hours between the window's
#: end and the run, so a clock that ticks between the reference and an engine's run differs.
NOW = "2026-11-30T00:00:00Z"


def _report(source: Any, store: Path, engine: str) -> Any:
    res = ps.split(source, SAMPLES / "ledger.yaml", "exp-17")  # one split, reused by the report
    return report(res, metrics=SETUPS[engine]["metrics"], store=store, now=NOW)


def _plan(source: Any, store: Path, engine: str) -> Any:
    recovery = SETUPS[engine]["recovery"]
    return rollback_plan(PLAN_LEDGER, events=source, baselines=store, at=AT, recovery=recovery)


@pytest.fixture(scope="module")
def reference(store: Path) -> Callable[[str, str], Any]:
    """``(what, engine)`` → the polars report or plan of the sample, in ``engine``'s setup."""
    made: dict[tuple[str, str], Any] = {}
    path = SAMPLES / "events.parquet"

    def get(what: str, engine: str) -> Any:
        if (what, engine) not in made:
            build = _report if what == "report" else _plan
            made[(what, engine)] = build(path, store, engine)
        return made[(what, engine)]

    return get


def _numbers(rep: Any) -> dict[str, Any]:
    """The report's ``to_dict()`` without the description of the input (an engine's object)."""
    out = rep.to_dict()
    out["inputs"] = {k: v for k, v in out["inputs"].items() if k != "events"}
    return out


# ------------------------------------------------------------------------------ report


@pytest.mark.parametrize("engine", ENGINES)
def test_report_is_engine_independent(
    engine: str, reference: Callable[[str, str], Any], store: Path, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    rep = _report(_source(engine, request), store, engine)
    want = reference("report", engine)
    assert rep.to_dict()["inputs"]["events"] != "sample"
    # the reference is the story: a clean regression with all the report's tables filled
    assert want.timeseries
    assert want.cache
    assert want.contamination
    assert want.analysis.effects.rows
    assert _differences(_numbers(want), _numbers(rep)) == []
    assert rep.headline == want.headline
    assert rep.exit_code == want.exit_code == 1
    paths = rep.write(tmp_path / engine)
    assert [p.name for p in paths] == ["report.html", "report.md", "report.json"]
    page = paths[0].read_text()
    assert want.headline.split(":")[0] in page
    assert "<svg" in page
    written = json.loads(paths[2].read_text())
    assert written["schema_version"] == 1
    assert written["contamination"]["n_events"] == want.to_dict()["contamination"]["n_events"]


def test_report_tables_match_brute_force(reference: Callable[[str, str], Any]) -> None:
    """The reference's hour bins and boundary cache cells, recounted event by event from the
    labelled events the report read (before its late-data cutoff)."""
    rep = reference("report", "duckdb")
    # The report's late-data cutoff: ``until`` itself on the sample, whose window is historical
    # (late data is trimmed only within --fresh-hours of the run time).
    cutoff = datetime.fromisoformat(rep.analysis.options["window"]["cutoff"])
    labelled = ps.split(SAMPLES / "events.parquet", SAMPLES / "ledger.yaml", "exp-17")
    events = labelled.frame.collect().to_polars().filter(pl.col("ts") < cutoff)
    hours: dict[tuple[str, datetime], int] = {}
    for ts, exp, arm, value in events.select("ts", "experiment_id", "arm", "helpfulness").rows():
        if value is None:
            continue
        tag = arm if exp == "exp-17" and arm is not None else "untagged"
        start = ts.replace(minute=0, second=0, microsecond=0)
        hours[(tag, start)] = hours.get((tag, start), 0) + 1
    got = {(r.arm, r.bin_start): r.n_events for r in rep.timeseries if r.metric == "helpfulness"}
    assert got == hours
    assert sum(hours.values()) > 50_000

    (at, _action), *_ = rep.boundaries
    first = [c for c in rep.cache if c.boundary == 0]
    lo, hi = at - timedelta(hours=2), at + timedelta(hours=2)
    near = events.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
    assert sum(c.n_events for c in first) == near.height > 0
    cells: dict[float, int] = {}
    for (ts,) in near.select("ts").rows():
        minutes = (ts - at) // timedelta(minutes=10) * 10.0
        cells[minutes] = cells.get(minutes, 0) + 1
    summed: dict[float, int] = {}
    for c in first:
        summed[c.minutes] = summed.get(c.minutes, 0) + c.n_events
    assert summed == cells
    assert min(cells) == -120.0
    assert max(cells) == 110.0


# ------------------------------------------------------------------------------ rollback plan


@pytest.mark.parametrize("engine", ENGINES)
def test_rollback_plan_is_engine_independent(
    engine: str,
    reference: Callable[[str, str], Any],
    store: Path,
    request: pytest.FixtureRequest,
) -> None:
    plan = _plan(_source(engine, request), store, engine)
    want = reference("plan", engine).to_dict()
    caches = want["legs"]["caches"]["findings"]
    # the reference measured something: warm-up curves, keys, a cohort and parse failures
    assert caches["observed_warmup"]
    assert caches["semantic_cache_keys"]
    assert want["legs"]["cohort"]["findings"]["units"] > 0
    assert want["legs"]["contracts"]["findings"]["parse_failures"]
    assert _differences(want, plan.to_dict()) == []
    assert plan.exit_code == reference("plan", engine).exit_code
    residual = want["legs"]["cohort"]["findings"].get("residual_effect")
    assert (residual is not None and residual["available"]) == SETUPS[engine]["recovery"]


# ------------------------------------------------------------------------------ time helpers


_TIMES = [
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 11, 2, 8, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    datetime(2026, 11, 2, 9, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 2, 10, 7, 30, 250_000, tzinfo=UTC),
    datetime(2026, 11, 3, 8, 14, 56, 882_145, tzinfo=UTC),
]
_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _frame(engine: str, request: pytest.FixtureRequest) -> nw.LazyFrame[Any]:
    """The test instants (``i``, ``ts``) in an engine."""
    df = pl.DataFrame({"i": list(range(len(_TIMES))), "ts": _TIMES},
                      schema={"i": pl.Int64, "ts": pl.Datetime("us", "UTC")})  # fmt: skip
    if engine == "polars":
        return nw.from_native(df.lazy())
    if engine == "duckdb":
        con = duckdb.connect()
        con.sql("SET TimeZone = 'UTC'")
        con.register("times", df.to_arrow())
        return nw.from_native(con.sql("SELECT * FROM times"))
    spark = request.getfixturevalue("spark")
    return nw.from_native(spark.createDataFrame(df.rows(), "i bigint, ts timestamp"))


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pyspark"])
def test_micros_and_bins_since_are_exact(engine: str, request: pytest.FixtureRequest) -> None:
    frame = _frame(engine, request)
    ten = timedelta(minutes=10)
    out = _engines.with_micros_since(frame, "ts", _START, "us")
    out = _engines.with_bins_since(out, "ts", _START, ten, "bin")
    out = _engines.with_bins_since(out, "ts", EPOCH, timedelta(hours=1), "hour")
    if engine == "pyspark":  # computed in Spark, not on the driver
        assert type(out.to_native()).__module__.startswith("pyspark.sql")
    rows = sorted(out.select("i", "us", "bin", "hour").collect().rows())
    assert len(rows) == len(_TIMES)
    for i, us, b, hour in rows:
        ts = _TIMES[i]
        assert us == _us(ts - _START)
        assert b == (ts - _START) // ten  # Python floors timedelta division
        start = EPOCH + hour * timedelta(hours=1)
        assert start <= ts < start + timedelta(hours=1)
    with pytest.raises(ValueError, match="positive"):
        _engines.with_bins_since(frame, "ts", _START, timedelta(0), "bin")


@pytest.mark.parametrize("engine", ["polars", "duckdb", "pyspark"])
def test_window_join_matches_a_loop(engine: str, request: pytest.FixtureRequest) -> None:
    frame = _frame(engine, request)
    windows = [
        Window(_START - timedelta(hours=1), _START + timedelta(hours=1), {"w": 0}),
        Window(_START, None, {"w": 1}),
        Window(datetime(2026, 11, 3, 8, tzinfo=UTC), datetime(2026, 11, 3, 9, tzinfo=UTC), {"w": 2}),
    ]  # fmt: skip
    got = sorted(
        window_join(frame, windows, width_us=600_000_000, dtypes={"w": int})
        .select("i", "w").collect().rows()
    )  # fmt: skip
    want = sorted(
        (i, w.values["w"])
        for i, ts in enumerate(_TIMES)
        for w in windows
        if w.start <= ts and (w.end is None or ts < w.end)
    )
    assert got == want


def test_plot_data_on_duckdb_matches_polars(tmp_path: Path) -> None:
    """The plots' own aggregates (30-minute bins, 15-minute cache bins) on a DuckDB split."""
    from analysis.reporting import _data as data
    from analysis.reporting.plots import plot_cache, plot_metric_by_time

    ms = [ps.Ratio("helpfulness"), ps.Proportion("thumbs_up"), ps.Quantile("latency_ms", 0.5)]
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    splits = {
        "polars": ps.split(SAMPLES / "events.parquet", SAMPLES / "ledger.yaml", "exp-17"),
        "duckdb": ps.split(
            con.read_parquet(str(SAMPLES / "events.parquet")), SAMPLES / "ledger.yaml", "exp-17"
        ),
    }
    got: dict[str, tuple[list[Any], list[Any]]] = {}
    for engine, res in splits.items():
        bounds = data.boundaries(res)
        frame = data.cache_frame(res.frame, bounds, bin_minutes=15)
        assert frame is not None
        series, cache = data.collect([data.timeseries_frame(res.frame, "exp-17", ms, bin_minutes=30), frame])  # fmt: skip
        got[engine] = (
            data.timeseries_rows(series, ms, bin_minutes=30),
            data.cache_rows(cache, bounds, bin_minutes=15),
        )
    assert _differences([r._asdict() for r in got["polars"][0]], [r._asdict() for r in got["duckdb"][0]]) == []  # fmt: skip
    assert _differences([r._asdict() for r in got["polars"][1]], [r._asdict() for r in got["duckdb"][1]]) == []  # fmt: skip
    starts = {r.bin_start for r in got["duckdb"][0]}
    assert all(s.minute in (0, 30) and s.second == 0 and s.microsecond == 0 for s in starts)
    assert {r.minutes % 15 for r in got["duckdb"][1]} == {0.0}
    assert plot_metric_by_time(splits["duckdb"], ms, bin_minutes=30).axes
    assert plot_cache(splits["duckdb"], bin_minutes=15).axes
