"""Segments (issue 22, item 5): the clean effects per value of a unit attribute fixed at the
unit's first exposure.

Checked on the bucket-ramp generator (``tests/_generators.py``) with a ``plan`` column written
per event: each unit's value at its first exposure is worked out by brute force in polars (its
earliest tagged exposure event), some units change value later (a later value must never move
them), some have none (``unknown``), some values are too small (``other``). Each value's row must
equal ``analyze`` run on the export filtered to that value's units, to 1e-9; Cochran's Q must
equal statsmodels' ``combine_effects``; BH must equal statsmodels' ``multipletests``.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from _generators import END, START, RampSpec, generate, ledger_file

import analysis as ps
from analysis.errors import PromptstateError
from analysis.metrics import _segments
from analysis.metrics._segments import TEST_MIN_UNITS

UNTIL = END + timedelta(hours=20)
NOW = UNTIL + timedelta(hours=1)
KW: dict[str, Any] = {
    "metrics": [ps.Ratio("helpfulness", direction="higher")],
    "explain": False,
    "recovery": False,
    "completeness": False,
    "until": UNTIL,
    "now": NOW,
    "late_hours": 0.0,
}


def _with_plan(events: pl.DataFrame, seed: int = 3) -> pl.DataFrame:
    """A ``plan`` per unit (free 40%, pro 25%, team 15%, null 15%, five tiny values 5%), changed
    to ``enterprise`` on every event 6 hours past the unit's first event in the experiment for a fifth of
    the units (a later change that must not move them)."""
    rng = np.random.default_rng(seed)
    users = events.get_column("user_id").unique().sort()
    n = users.len()
    draw = rng.random(n)
    plan = np.where(
        draw < 0.40,
        "free",
        np.where(
            draw < 0.65, "pro", np.where(draw < 0.80, "team", np.where(draw < 0.95, None, "x"))
        ),
    )
    tiny = rng.integers(0, 5, n).astype(str)
    plan = np.where(plan == "x", np.char.add("tiny-", tiny), plan)
    movers = rng.random(n) < 0.2
    per_unit = pl.DataFrame({"user_id": users, "plan0": plan, "mover": movers})
    first = (
        events.filter(pl.col("ts") >= START).group_by("user_id").agg(pl.col("ts").min().alias("t0"))
    )
    return (
        events.join(per_unit, on="user_id")
        .join(first, on="user_id", how="left")
        .with_columns(
            pl.when(pl.col("mover") & (pl.col("ts") > pl.col("t0") + timedelta(hours=6)))
            .then(pl.lit("enterprise"))
            .otherwise(pl.col("plan0"))
            .alias("plan")
        )
        .drop("plan0", "mover", "t0")
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, Path]:
    events = _with_plan(generate(RampSpec(n_units=8000, seed=11)))
    ledger = ledger_file(tmp_path_factory.mktemp("seg"))
    return events, ledger


def _first_values(events: pl.DataFrame, ledger: Path) -> pl.DataFrame:
    """Brute force: each unit's ``plan`` at its earliest exposure event (tagged with the
    experiment and an arm, in an exposure phase, not outside the window or after the end)."""
    labelled = ps.split(events, ledger).to_polars()
    exposed = labelled.filter(
        (pl.col("experiment_id") == "exp-ramp")
        & pl.col("arm").is_not_null()
        & pl.col("phase").is_in([1, 2])
        & ~pl.col("contamination").is_in(["outside_window", "after_end"])
    )
    t0 = exposed.group_by("user_id").agg(pl.col("ts").min().alias("t0"))
    return (
        exposed.join(t0, on="user_id")
        .filter(pl.col("ts") == pl.col("t0"))
        .group_by("user_id")
        .agg(pl.col("plan").min().fill_null("unknown").alias("value"))
    )


def test_each_value_equals_a_brute_force_analysis_of_its_units(
    data: tuple[pl.DataFrame, Path],
) -> None:
    events, ledger = data
    res = ps.analyze(events, ledger, segments=["plan"], **KW)
    rows = res.segments.to_polars()
    assert set(rows.get_column("segment_value")) == {"free", "pro", "team", "unknown", "other"}
    assert "enterprise" not in set(rows.get_column("segment_value"))  # a later value moves none
    first = _first_values(events, ledger)
    kept = {"free", "pro", "team", "unknown"}
    first = first.with_columns(
        pl.when(pl.col("value").is_in(list(kept))).then("value").otherwise(pl.lit("other"))
    )
    for value in sorted(kept | {"other"}):
        units = first.filter(pl.col("value") == value).get_column("user_id")
        alone = ps.analyze(events.filter(pl.col("user_id").is_in(units.implode())), ledger, **KW)
        for phase in ("1", "2", "combined"):
            want = alone.effect("helpfulness", phase=phase)
            got = rows.filter((pl.col("segment_value") == value) & (pl.col("phase") == phase))
            assert got.height == 1
            g = got.row(0, named=True)
            assert (g["n_control"], g["n_arm"]) == (want.n_control, want.n_arm)
            for col in ("effect", "se", "effect_ci_lower", "effect_ci_upper", "pvalue"):
                assert g[col] == pytest.approx(getattr(want, col), rel=1e-9, abs=1e-12), (
                    value,
                    phase,
                    col,
                )
    other = rows.filter(pl.col("segment_value") == "other").row(0, named=True)
    assert other["values"].startswith("tiny-")


def test_bh_and_cochran_q_against_statsmodels(data: tuple[pl.DataFrame, Path]) -> None:
    from statsmodels.stats.meta_analysis import combine_effects
    from statsmodels.stats.multitest import multipletests

    events, ledger = data
    res = ps.analyze(events, ledger, segments="plan", **KW)
    rows = res.segments.to_polars()
    het = res.segment_heterogeneity.to_polars()
    tested: set[str] = set()
    for phase in ("1", "2", "combined"):
        part = rows.filter(pl.col("phase") == phase)
        p = part.get_column("pvalue").to_numpy()
        want = multipletests(p, method="fdr_bh")[1]
        np.testing.assert_allclose(part.get_column("pvalue_bh").to_numpy(), want, rtol=1e-12)
        # only values with TEST_MIN_UNITS units in each arm of the row enter the test
        big = part.filter(pl.min_horizontal("n_control", "n_arm") >= TEST_MIN_UNITS)
        got = het.filter(pl.col("phase") == phase)
        if big.height < 2:
            assert got.height == 0
            continue
        tested.add(phase)
        eff = big.get_column("effect").to_numpy()
        var = big.get_column("se").to_numpy() ** 2
        with warnings.catch_warnings():  # its random-effects part takes sqrt of negatives
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = combine_effects(eff, var, method_re="chi2")
        h = got.row(0, named=True)
        assert h["values"] == len(eff)
        assert h["df"] == len(eff) - 1
        assert h["statistic"] == pytest.approx(ref.q, rel=1e-10)
        from scipy.stats import chi2

        assert h["pvalue"] == pytest.approx(chi2.sf(ref.q, len(eff) - 1), rel=1e-10)
    assert "combined" in tested
    small = rows.filter(
        (pl.col("phase") == "combined") & (pl.min_horizontal("n_control", "n_arm") < TEST_MIN_UNITS)
    )
    if small.height:
        (note,) = [n for n in res.notes if "left out of the heterogeneity test" in n]
        for value in small.get_column("segment_value"):
            assert value in note


def test_pooling_rules() -> None:
    """Values below 200 units in some arm join ``other``; at most 20 values are reported."""
    rng = np.random.default_rng(0)
    sizes = {f"v{i:02d}": 450 + 10 * i for i in range(25)} | {"small": 300}
    unit, value, arm = [], [], []
    k = 0
    for v, n in sizes.items():
        for j in range(n):
            unit.append(k)
            value.append(v)
            # 'small' has 300 units but only ~30 treated: below 200 in treatment
            p = 0.1 if v == "small" else 0.5
            arm.append("treatment" if rng.random() < p else "control")
            k += 1
        del j
    units = pl.LazyFrame({"u": unit, "__segment": value, "__first_arm": arm})
    import narwhals as nw

    from analysis.metrics import aggregation as agg

    got = _segments.segment_values(
        nw.from_native(units),
        column="plan",
        arms=("control", "treatment"),
        collect=agg.collect_all,
    )
    assert len(got.labels) == 20
    assert got.labels[-1] == "other"
    assert got.kept == tuple(f"v{i:02d}" for i in range(24, 5, -1))  # the 19 largest
    assert got.pooled_count == len(sizes) - 19
    assert got.units["other"] == sum(sizes.values()) - sum(sizes[v] for v in got.kept)
    assert got.total_units == sum(sizes.values())


def test_bad_segment_columns_are_refused(data: tuple[pl.DataFrame, Path]) -> None:
    events, ledger = data
    with pytest.raises(PromptstateError, match="segment column 'plann' is not in the export"):
        ps.analyze(events, ledger, segments=["plann"], **KW)
    with pytest.raises(PromptstateError, match="'plan' is given twice"):
        ps.analyze(events, ledger, segments=["plan", "plan"], **KW)


def test_the_segment_is_the_value_at_first_exposure_not_before(
    data: tuple[pl.DataFrame, Path],
) -> None:
    """A value on a unit's pre-period events (before the experiment) does not count: only the
    first exposure event's."""
    events, ledger = data
    changed = events.with_columns(
        pl.when(pl.col("ts") < START).then(pl.lit("enterprise")).otherwise("plan").alias("plan")
    )
    a = ps.analyze(events, ledger, segments=["plan"], **KW).segments.to_polars()
    b = ps.analyze(changed, ledger, segments=["plan"], **KW).segments.to_polars()
    assert a.select("segment_value", "phase", "n_control", "n_arm").equals(
        b.select("segment_value", "phase", "n_control", "n_arm")
    )
    np.testing.assert_allclose(b.get_column("effect"), a.get_column("effect"), rtol=1e-9)


def _same_segments(a: pl.DataFrame, b: pl.DataFrame, what: str) -> None:
    keys = ["segment", "segment_value", "metric", "phase", "arm"]
    a, b = a.sort(keys), b.sort(keys)
    assert a.select(*keys, "values", "n_control", "n_arm").equals(
        b.select(*keys, "values", "n_control", "n_arm")
    ), what
    for col in ("effect", "se", "pvalue", "pvalue_bh"):
        np.testing.assert_allclose(b.get_column(col), a.get_column(col), rtol=1e-9, err_msg=what)


@pytest.mark.parametrize("engine", ["duckdb", "pyspark"])
def test_segments_are_engine_independent(
    engine: str, data: tuple[pl.DataFrame, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import duckdb

    events, ledger = data
    users = events.get_column("user_id").unique().sort().head(3500)
    events = events.filter(pl.col("user_id").is_in(users.implode()))  # Spark: a smaller export
    path = tmp_path / "events.parquet"
    events.write_parquet(path)
    if engine == "duckdb":
        source: Any = duckdb.read_parquet(str(path))
    else:
        source = request.getfixturevalue("spark").read.parquet(str(path))
    base = ps.analyze(events, ledger, segments=["plan"], **KW)
    run = ps.analyze(source, ledger, segments=["plan"], **KW)
    assert len(base.segments) > 3
    _same_segments(base.segments.to_polars(), run.segments.to_polars(), engine)
    for x, y in zip(base.segment_heterogeneity.rows, run.segment_heterogeneity.rows, strict=True):
        assert y.statistic == pytest.approx(x.statistic, rel=1e-9)


def _files(events: pl.DataFrame, directory: Path) -> tuple[Path, Path]:
    """The export as Parquet and a metrics file (helpfulness, higher is better)."""
    path = directory / "events.parquet"
    events.write_parquet(path)
    metrics = directory / "metrics.yaml"
    metrics.write_text(
        "metrics:\n  - {type: ratio, numerator: helpfulness, direction: higher}\n", encoding="utf-8"
    )
    return path, metrics


def test_cli_segment_option(
    data: tuple[pl.DataFrame, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``analyze --segment plan --format json`` carries the segments and their test; a
    column the export lacks is exit 2 with one line naming it, and no output file."""
    import json

    from analysis.cli import main

    events, ledger = data
    path, metrics = _files(events, tmp_path)
    base = ["analyze", str(path), "--ledger", str(ledger), "--metrics", str(metrics)]
    clock = ["--until", UNTIL.isoformat(), "--now", NOW.isoformat(), "--late-hours", "0"]
    flags = ["--no-explain", "--no-completeness", "--format", "json", *clock]
    code = main([*base, *flags, "--segment", "plan"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    got = json.loads(out)
    api = ps.analyze(events, ledger, segments=["plan"], **KW)
    assert [(r["segment_value"], r["phase"]) for r in got["segments"]] == [
        (r.segment_value, r.phase) for r in api.segments.rows
    ]
    assert len(got["segment_heterogeneity"]) == len(api.segment_heterogeneity) >= 1
    target = tmp_path / "out.json"
    code = main([*base, *flags, "--segment", "plann", "--out", str(target)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "segment column 'plann' is not in the export" in err
    assert not target.exists()


def test_report_forest_plot(
    data: tuple[pl.DataFrame, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report --segment plan``: the page has the forest plot (an inline SVG with a line per
    value), report.md the segment table, report.json the rows; without ``--segment`` there is
    no segments section at all."""
    import json

    from analysis.cli import main

    events, ledger = data
    path, metrics = _files(events, tmp_path)
    clock = ["--until", UNTIL.isoformat(), "--now", NOW.isoformat(), "--late-hours", "0"]
    base = ["report", str(path), "--ledger", str(ledger), "--metrics", str(metrics), *clock]
    out = tmp_path / "with"
    code = main([*base, "--segment", "plan", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code in (0, 1), err
    page = (out / "report.html").read_text(encoding="utf-8")
    section = page[page.index("<section id='segments'>") :]
    section = section[: section.index("</section>")]
    assert "Effects by segment" in section
    assert section.count("<svg") == 1
    for value in ("free", "pro", "team", "unknown", "other"):
        assert f"plan: {value}" in section
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "### Effects by segment" in md
    assert "Cochran" in md
    got = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {r["segment_value"] for r in got["segments"]} == {
        "free",
        "pro",
        "team",
        "unknown",
        "other",
    }
    assert len(got["segment_heterogeneity"]) >= 1
    plain = tmp_path / "without"
    assert main([*base, "--out", str(plain)]) in (0, 1)
    capsys.readouterr()
    assert "<section id='segments'>" not in (plain / "report.html").read_text(encoding="utf-8")
    assert json.loads((plain / "report.json").read_text(encoding="utf-8"))["segments"] == []
