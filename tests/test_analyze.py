"""analyze() on the embedded sample: against ground truth and independent computations."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.cli import main
from analysis.errors import PromptstateError
from analysis.events.labelling import split
from analysis.metrics import EFFECT_COLUMNS, AnalysisResult, analyze
from analysis.metrics.definitions import Mean, Proportion, Quantile, Ratio, load_metrics


@pytest.fixture(scope="module")
def split_sample(events_path: Path, ledger_path: Path) -> Any:
    return split(events_path, ledger_path)


@pytest.fixture(scope="module")
def result(split_sample: Any, sample_dir: Path) -> AnalysisResult:
    return analyze(split_sample, metrics=load_metrics(sample_dir / "metrics.yaml"))


@pytest.fixture(scope="module")
def labelled(split_sample: Any) -> pl.DataFrame:
    return split_sample.frame.collect().to_native()


def test_clean_covers_truth_naive_does_not(result: AnalysisResult, truth_info: dict) -> None:
    truth = truth_info["true_effect"]["helpfulness"]
    clean = result.effect("helpfulness")
    naive = result.effect("helpfulness", analysis="naive", phase="pooled")
    assert clean.effect_ci_lower <= truth <= clean.effect_ci_upper
    assert not naive.effect_ci_lower <= truth <= naive.effect_ci_upper
    for phase in ("1", "2"):
        e = result.effect("helpfulness", phase=phase)
        assert e.effect_ci_lower <= truth <= e.effect_ci_upper


def test_effects_table_columns_and_renderings(result: AnalysisResult) -> None:
    pdf = result.to_pandas()
    assert tuple(pdf.columns[: len(EFFECT_COLUMNS)]) == EFFECT_COLUMNS
    plf = result.to_polars()
    assert tuple(plf.columns[: len(EFFECT_COLUMNS)]) == EFFECT_COLUMNS
    assert set(plf["phase"]) == {"1", "2", "combined", "pooled"}
    assert set(plf["analysis"]) == {"clean", "naive"}
    assert plf.height == 4 * (2 + 1 + 1)
    d = result.to_dict()
    json.dumps(d)  # JSON-friendly
    assert d["effects"][0]["metric"] == "helpfulness"
    text = str(result)
    assert "effects (arm − control)" in text
    assert "combined" in text
    assert result.to_markdown().count("| analysis |") == 1
    assert result._repr_html_().startswith("<div>")


@pytest.fixture(scope="module")
def phases_result(split_sample: Any) -> AnalysisResult:
    """Whole phases as strata, no adjustment: the per-phase rows are the classic comparisons."""
    metrics = [
        Ratio("helpfulness", cuped=False),
        Proportion("thumbs_up", cuped=False),
        Mean("cost_usd", direction="lower"),
    ]
    return analyze(split_sample, metrics=metrics, block_hours=None, explain=False)


def test_per_phase_ratio_matches_event_level_cluster_ols(
    phases_result: AnalysisResult, labelled: pl.DataFrame
) -> None:
    ev = labelled.filter(
        (pl.col("contamination") == "clean")
        & (pl.col("phase") == 1)
        & pl.col("helpfulness").is_not_null()
    )
    y = ev["helpfulness"].to_numpy()
    t = (ev["arm"] == "treatment").to_numpy().astype(float)
    groups = ev["user_id"].cast(pl.Categorical).to_physical().to_numpy()
    fit = sm.OLS(y, sm.add_constant(t)).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    e = phases_result.effect("helpfulness", phase="1")
    assert e.effect == pytest.approx(fit.params[1], rel=1e-9)
    assert e.se == pytest.approx(fit.bse[1], rel=0.01)  # delta (n−1) vs CR0 (n)
    assert e.strata == 1


def test_thumbs_up_proportion_matches_welch(
    phases_result: AnalysisResult, labelled: pl.DataFrame
) -> None:
    units = (
        labelled.filter((pl.col("contamination") == "clean") & (pl.col("phase") == 2))
        .group_by("user_id", "arm")
        .agg(pl.col("thumbs_up").cast(pl.Float64).max().fill_null(0))
    )
    c = units.filter(pl.col("arm") == "control")["thumbs_up"].to_numpy()
    a = units.filter(pl.col("arm") == "treatment")["thumbs_up"].to_numpy()
    ref = stats.ttest_ind(a, c, equal_var=False)
    e = phases_result.effect("thumbs_up", phase="2")
    assert e.effect == pytest.approx(a.mean() - c.mean(), rel=1e-9)
    assert e.pvalue == pytest.approx(ref.pvalue, rel=1e-9)


def test_adjusted_cost_matches_regression_on_pre_period(
    phases_result: AnalysisResult, labelled: pl.DataFrame
) -> None:
    """Cost per user in phase 1, adjusted on the pre-period cost and an indicator of
    pre-period events (pre-period rebuilt independently in polars): Δy − θᵀΔh with θ the
    variance-minimising coefficient computed in numpy from the per-unit rows; close to OLS."""
    unit = "user_id"
    enrolled = labelled.filter(
        (pl.col("experiment_id") == "exp-17")
        & pl.col("phase").is_in([1, 2])
        & ~pl.col("contamination").is_in(["outside_window", "after_end"])
    )
    first = enrolled.group_by(unit).agg(pl.col("ts").min().alias("first_ts"))
    pre = (
        labelled.join(first, on=unit)
        .filter(
            (pl.col("ts") < pl.col("first_ts"))
            & (pl.col("ts") >= pl.col("first_ts") - pl.duration(days=14))
        )
        .group_by(unit)
        .agg(pl.col("cost_usd").sum().alias("z"), pl.lit(1.0).alias("d"))
    )
    y = (
        labelled.filter((pl.col("contamination") == "clean") & (pl.col("phase") == 1))
        .group_by(unit, "arm")
        .agg(pl.col("cost_usd").sum().alias("y"))
        .join(pre, on=unit, how="left")
        .with_columns(pl.col("z").fill_null(0.0), pl.col("d").fill_null(0.0))
    )
    s_hh = np.zeros((2, 2))
    s_hy = np.zeros(2)
    diff = {}
    for arm in ("control", "treatment"):
        a = y.filter(pl.col("arm") == arm)
        v = np.column_stack([a["y"].to_numpy(), a["z"].to_numpy(), a["d"].to_numpy()])
        cov = np.cov(v, rowvar=False) / len(v)
        s_hh += cov[1:, 1:]
        s_hy += cov[1:, 0]
        diff[arm] = v.mean(axis=0)
    theta = np.linalg.solve(s_hh, s_hy)
    delta = diff["treatment"] - diff["control"]
    e = phases_result.effect("cost_usd", phase="1")
    assert e.covariate == "pre_period"
    assert e.effect == pytest.approx(delta[0] - theta @ delta[1:], rel=1e-9)
    assert e.cuped_theta == pytest.approx(theta[0], rel=1e-9)
    assert e.effect_unadjusted == pytest.approx(delta[0], rel=1e-9)
    x = np.column_stack([(y["arm"] == "treatment").to_numpy().astype(float), y["z"], y["d"]])
    fit = sm.OLS(y["y"].to_numpy(), sm.add_constant(x)).fit(cov_type="HC2")
    assert abs(e.effect - fit.params[1]) < 0.2 * fit.bse[1]
    assert e.se == pytest.approx(fit.bse[1], rel=0.05)


def test_quantile_point_estimate(result: AnalysisResult, labelled: pl.DataFrame) -> None:
    ev = labelled.filter(
        (pl.col("contamination") == "clean") & (pl.col("phase") == 1) & (pl.col("arm") == "control")
    )
    want = np.quantile(ev["latency_ms"].drop_nulls().to_numpy(), 0.95, method="lower")
    e = result.effect("latency_ms_p95", phase="1")
    assert e.control_mean == pytest.approx(want)
    assert e.effect_ci_lower < e.effect < e.effect_ci_upper


def test_explain_ends_at_naive(result: AnalysisResult) -> None:
    for metric in ("helpfulness", "thumbs_up", "cost_usd"):
        steps = [r for r in result.explain.rows if r.metric == metric]  # type: ignore[attr-defined]
        naive = result.effect(metric, analysis="naive", phase="pooled")
        assert steps[-1].effect == pytest.approx(naive.effect, rel=1e-9)
        assert steps[0].added == "clean"


def test_exclusions_and_srm(result: AnalysisResult, labelled: pl.DataFrame) -> None:
    tagged = labelled.filter((pl.col("experiment_id") == "exp-17") & pl.col("arm").is_not_null())
    assert sum(r.events for r in result.exclusions.rows) == tagged.height  # type: ignore[attr-defined]
    srm = result.srm.to_polars()
    assert set(srm["phase"]) == {1, 2}
    for phase, alloc in ((1, [0.9, 0.1]), (2, [0.75, 0.25])):
        rows = srm.filter(pl.col("phase") == phase).sort("arm")
        obs = rows["observed"].to_numpy()
        ref = stats.chisquare(obs, np.array(alloc) * obs.sum())
        assert rows["pvalue"][0] == pytest.approx(ref.pvalue)
    assert not result.alerts


def test_multiplicity_is_per_analysis_and_phase(result: AnalysisResult) -> None:
    from statsmodels.stats.multitest import multipletests

    df = result.to_polars().filter((pl.col("analysis") == "clean") & (pl.col("phase") == "1"))
    ref = multipletests(df["pvalue"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(df["pvalue_adjusted"].to_numpy(), ref)


def test_recovery_after_rollback(result: AnalysisResult) -> None:
    summary = {(r.metric, r.group): r for r in result.recovery_summary.rows}  # type: ignore[attr-defined]
    tainted = summary[("helpfulness", "exposed_tainted")]
    fresh = summary[("helpfulness", "exposed_fresh")]
    # turns in conversations written by the rolled-back revision carry its harm
    assert tainted.overall_effect < fresh.overall_effect
    assert tainted.overall_effect < -0.1
    bins = [r for r in result.recovery.rows if r.bin is not None]  # type: ignore[attr-defined]
    assert bins
    assert all(r.hours_since_end >= 0 for r in bins)


def test_sequential_and_mde(split_sample: Any) -> None:
    res = analyze(
        split_sample,
        metrics=[Ratio("helpfulness")],
        sequential=True,
        planned_units=4000,
        explain=False,
    )
    e = res.effect("helpfulness")
    assert e.cs_lower < e.effect_ci_lower
    assert e.cs_upper > e.effect_ci_upper
    assert e.mde == pytest.approx(2.8016 * e.se, rel=1e-3)


def test_options_and_metric_errors(split_sample: Any) -> None:
    with pytest.raises(PromptstateError, match="alpha"):
        analyze(split_sample, alpha=2)
    with pytest.raises(PromptstateError, match="multiplicity"):
        analyze(split_sample, multiplicity="bonferroni")
    with pytest.raises(PromptstateError, match="nope"):
        analyze(split_sample, metrics=[Mean("nope")])
    with pytest.raises(PromptstateError, match="two metrics"):
        analyze(split_sample, metrics=[Mean("cost_usd"), Mean("cost_usd")])
    with pytest.raises(PromptstateError, match="ledger"):
        analyze(pl.DataFrame({"a": [1]}))


def test_winsorize_and_other_inputs(events_path: Path, ledger_path: Path) -> None:
    df = pl.read_parquet(events_path)
    metrics = [
        Mean("latency_ms", winsorize=0.99),
        Proportion("parse_ok"),
        Quantile("latency_ms", 0.5),
    ]
    a = analyze(df, ledger_path, metrics=metrics, explain=False, recovery=False)
    b = analyze(df.to_pandas(), ledger_path, metrics=metrics, explain=False, recovery=False)
    ea, eb = a.effect("latency_ms"), b.effect("latency_ms")
    assert ea.effect == pytest.approx(eb.effect, rel=1e-9)
    plain = analyze(df, ledger_path, metrics=[Mean("latency_ms")], explain=False, recovery=False)
    assert a.effect("latency_ms").control_mean < plain.effect("latency_ms").control_mean
    assert not math.isnan(a.effect("latency_ms_p50").effect)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the sample's helpfulness regression (higher is better, significantly lower): exit 1
    assert main(["analyze", "--format", "json"]) == 1
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["effects"][0]["analysis"] == "clean"
    assert payload["exit_code"] == 1
    assert not payload["alerts"]
    assert any(r.startswith("regression: helpfulness") for r in payload["regressions"])
    assert "regression: helpfulness" in captured.err
    # the same metric without a direction is never a regression: exit 0
    undirected = tmp_path / "undirected.yaml"
    undirected.write_text("metrics: [{type: ratio, numerator: helpfulness}]")
    assert main(["analyze", "--metrics", str(undirected), "--no-explain"]) == 0
    capsys.readouterr()
    # --block-hours 0: one stratum per exposure phase
    argv = ["analyze", "--metrics", str(undirected), "--block-hours", "0", "--format", "json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["effects"]
    assert {(r["phase"], r["strata"]) for r in rows if r["analysis"] == "clean"} == {
        ("1", 1),
        ("2", 1),
        ("combined", 2),
    }
    # a harmful effect in the good direction of the metric is not one either
    better = tmp_path / "lower.yaml"
    better.write_text("metrics: [{type: ratio, numerator: helpfulness, direction: lower}]")
    assert main(["analyze", "--metrics", str(better), "--no-explain"]) == 0
    capsys.readouterr()
    assert main(["analyze", "--metrics", str(undirected), "--crossover-threshold", "0.0001"]) == 1
    assert "crossover" in capsys.readouterr().err
    for bad_option in (["--alpha", "nan"], ["--block-hours", "-1"], ["--missing-threshold", "2"]):
        assert main(["analyze", *bad_option]) == 2
        assert bad_option[0] in capsys.readouterr().err
    bad = tmp_path / "m.yaml"
    bad.write_text("metrics: [{type: mean}]")
    assert main(["analyze", "--metrics", str(bad)]) == 2
    assert "metrics[0]" in capsys.readouterr().err
    assert main(["analyze", "--format", "markdown", "--no-explain"]) == 1
    assert "| analysis |" in capsys.readouterr().out


def test_srm_counts_every_newly_enrolled_unit_by_its_first_arm_brute_force(
    events_path, ledger_path
) -> None:
    """SRM's observed counts equal a brute-force count: per exposure phase, units whose first
    tagged exposure turn falls in it, by the arm of that first turn — crossover units included
    (ties at the first instant go to the smallest arm)."""
    import polars as pl

    from analysis import load_ledger

    res = analyze(events_path, ledger_path, explain=False, recovery=False)
    ledger = load_ledger(ledger_path)
    start, end = ledger.window("exp-17")
    ev = pl.read_parquet(events_path).unique(subset="event_id")
    tagged = ev.filter(
        (pl.col("experiment_id") == "exp-17") & (pl.col("ts") >= start) & (pl.col("ts") < end)
    )
    phases = ledger.phases("exp-17")
    first: dict[str, tuple[object, str]] = {}
    for row in tagged.sort(["ts", "arm"]).iter_rows(named=True):
        first.setdefault(row["user_id"], (row["ts"], row["arm"]))
    expected: dict[tuple[int, str], int] = {}
    for at, arm in first.values():
        phase = next(p.id for p in phases if p.kind == "exposure" and p.contains(at))
        expected[(phase, arm)] = expected.get((phase, arm), 0) + 1
    got = {(r.phase, r.arm): r.observed for r in res.srm.rows}
    assert got == expected
    assert sum(got.values()) == len(first)  # every enrolled unit, crossover units too


def test_missing_values_are_counted_and_left_out_of_their_metric_only(
    sample_events: pl.DataFrame, ledger_path: Path
) -> None:
    """2% NaN in helpfulness and one +inf in cost: each is left out of its metric only, counted,
    noted and alerted on above the threshold; NaN acts as a missing rating (null), an inf
    cost as an event that adds nothing to the unit's total (0)."""
    rng = np.random.default_rng(4)
    ev = sample_events.unique(subset="event_id", keep="first", maintain_order=True)
    nan_rows = rng.random(ev.height) < 0.02
    labelled = split(ev, ledger_path).frame.collect().to_native()
    clean = labelled.filter(pl.col("contamination") == "clean").select("event_id", "phase")
    inf_id = clean.filter(pl.col("phase") == 1)["event_id"][7]
    is_inf = (ev["event_id"] == inf_id).to_numpy()
    h = ev["helpfulness"].to_numpy().copy()
    h[nan_rows] = np.nan
    c = ev["cost_usd"].to_numpy().copy()
    c[is_inf] = np.inf
    bad = ev.with_columns(pl.Series("helpfulness", h), pl.Series("cost_usd", c))
    ref = ev.with_columns(
        pl.when(pl.Series(nan_rows))
        .then(None)
        .otherwise(pl.col("helpfulness"))
        .alias("helpfulness"),
        pl.when(pl.Series(is_inf)).then(0.0).otherwise(pl.col("cost_usd")).alias("cost_usd"),
    )
    metrics = [
        Ratio("helpfulness", direction="higher"),
        Proportion("thumbs_up"),
        Mean("cost_usd", direction="lower"),
    ]
    kw: dict[str, Any] = {"metrics": metrics, "explain": False, "recovery": False}
    got = analyze(bad, ledger_path, **kw)
    want = analyze(ref, ledger_path, **kw)
    untouched = analyze(ev, ledger_path, **kw)
    for metric in ("helpfulness", "cost_usd"):
        for phase in ("1", "2", "combined"):
            g, w = got.effect(metric, phase=phase), want.effect(metric, phase=phase)
            assert math.isfinite(g.effect)
            assert g.effect == pytest.approx(w.effect, rel=1e-12)
            assert g.se == pytest.approx(w.se, rel=1e-12)
    t_got, t_plain = got.effect("thumbs_up"), untouched.effect("thumbs_up")
    assert t_got.effect == pytest.approx(t_plain.effect, rel=1e-12)  # keeps every event
    rows = {r.metric: r for r in got.missing.rows}  # type: ignore[attr-defined]
    bad_clean = set(ev.filter(pl.Series(nan_rows))["event_id"]) & set(clean["event_id"])
    assert rows["helpfulness"].events == len(bad_clean)
    assert rows["helpfulness"].nan == len(bad_clean)
    assert rows["helpfulness"].share == pytest.approx(len(bad_clean) / clean.height)
    assert (rows["cost_usd"].events, rows["cost_usd"].inf, rows["cost_usd"].units) == (1, 1, 1)
    assert rows["thumbs_up"].events == 0
    assert any(a.startswith("missing values: helpfulness") for a in got.alerts)
    assert not any("cost_usd" in a for a in got.alerts)  # 1 event: under the threshold
    assert any(n.startswith("cost_usd: 1 clean events") for n in got.notes)
    assert got.exit_code == 1
    quiet = analyze(bad, ledger_path, missing_threshold=0.05, **kw)
    assert not quiet.alerts
    assert any(n.startswith("helpfulness:") for n in quiet.notes)


def test_a_metric_with_every_value_missing_is_reported_not_a_crash(
    events_path, ledger_path, tmp_path
) -> None:
    """All-NaN, all-inf and all-null metric columns: counted and alerted, the other metrics and
    the exit code (1, an alert) unaffected — before, the second pass crashed (exit 4)."""
    import math

    import polars as pl

    from analysis.cli import main

    bad = tmp_path / "events.parquet"
    pl.read_parquet(events_path).with_columns(
        pl.lit(float("nan")).alias("helpfulness"),
        pl.lit(float("inf")).alias("latency_ms"),
        pl.lit(None, dtype=pl.Float64).alias("cost_usd"),
    ).write_parquet(bad)
    metrics = [Ratio("helpfulness"), Mean("cost_usd"), Proportion("thumbs_up")]
    res = analyze(bad, ledger_path, metrics=metrics, explain=False, recovery=False)
    shares = {r.metric: r.share for r in res.missing.rows}
    assert shares["helpfulness"] == 1.0
    assert shares["cost_usd"] == 1.0
    assert math.isnan(res.effect("helpfulness").effect)
    assert math.isfinite(res.effect("thumbs_up").effect)
    assert any(a.startswith("missing values: helpfulness") for a in res.alerts)
    assert res.exit_code == 1
    assert main(["analyze", str(bad), "--ledger", str(ledger_path), "--no-explain"]) == 1


@pytest.mark.parametrize("column", ["user_id", "event_id", "phase", "served_revision"])
def test_a_metric_over_an_id_or_split_column_is_refused(events_path, ledger_path, column) -> None:
    """Integer user ids are numbers, but their mean is no measurement: exit 2, naming it."""
    events = pl.read_parquet(events_path).with_columns(
        pl.col("user_id").str.replace("u", "").cast(pl.Int64)
    )
    with pytest.raises(PromptstateError, match=f"reads column {column!r}, an id"):
        analyze(events, ledger_path, metrics=[Mean(column)], explain=False, recovery=False)


def test_effect_suggests_close_names_and_takes_an_integer_phase(events_path, ledger_path) -> None:
    res = analyze(events_path, ledger_path, explain=False, recovery=False)
    assert res.effect("helpfulness", phase=1) == res.effect("helpfulness", phase="1")
    with pytest.raises(KeyError, match="did you mean 'helpfulness'"):
        res.effect("helpfullness")
    with pytest.raises(KeyError, match="phase=7.*there are"):
        res.effect("helpfulness", phase=7)


def test_metric_names_instead_of_metrics_give_a_clear_type_error(events_path, ledger_path) -> None:
    for metrics in (["helpfulness"], "helpfulness"):
        with pytest.raises(TypeError, match=r"Ratio\('helpfulness'\).*Mean.*Proportion.*Quantile"):
            analyze(events_path, ledger_path, metrics=metrics)  # type: ignore[arg-type]


def test_user_export_without_metrics_gets_inferred_metrics_never_the_samples(
    tmp_path: Path, events_path: Path, ledger_path: Path
) -> None:
    """Issue 11: ``analyze(metrics=None)`` on a user's export infers metrics from its schema
    (every numeric/boolean column that is not an id) and says so; the sample's metric list
    (helpfulness, thumbs-up users, cost per user, p95 latency) is never what it gets."""
    from analysis.metrics import default_metrics, infer_metrics

    export = pl.read_parquet(events_path).select(
        "event_id", "ts", "user_id", "experiment_id", "arm", "conversation_id", "helpfulness"
    )
    export = export.rename({"helpfulness": "rating"})
    res = analyze(export, ledger_path, "exp-17", explain=False, recovery=False)
    metrics = {r.metric for r in res.effects.rows}
    assert metrics == {"rating"}
    want = infer_metrics(split(export, ledger_path, "exp-17"))
    assert res.notes[0] == want.note
    assert "Ratio('rating')" in res.notes[0]
    assert not metrics & {m.label for m in default_metrics()}
    # the same numbers as naming the inferred metric
    named = analyze(
        export, ledger_path, "exp-17", metrics=want.metrics, explain=False, recovery=False
    )
    for got, want_row in zip(res.effects.to_records(), named.effects.to_records(), strict=True):
        for k, v in want_row.items():
            if isinstance(v, float):
                assert got[k] == pytest.approx(v, rel=1e-9), k
            else:
                assert got[k] == v, k
    assert not any(r.direction in ("higher", "lower") for r in res.effects.rows)
