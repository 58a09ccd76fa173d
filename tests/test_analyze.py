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


def test_per_phase_ratio_matches_event_level_cluster_ols(
    result: AnalysisResult, labelled: pl.DataFrame
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
    e = result.effect("helpfulness", phase="1")
    assert e.effect == pytest.approx(fit.params[1], rel=1e-9)
    assert e.se == pytest.approx(fit.bse[1], rel=0.01)  # delta (n−1) vs CR0 (n)


def test_thumbs_up_proportion_matches_welch(result: AnalysisResult, labelled: pl.DataFrame) -> None:
    units = (
        labelled.filter((pl.col("contamination") == "clean") & (pl.col("phase") == 2))
        .group_by("user_id", "arm")
        .agg(pl.col("thumbs_up").cast(pl.Float64).max().fill_null(0))
    )
    c = units.filter(pl.col("arm") == "control")["thumbs_up"].to_numpy()
    a = units.filter(pl.col("arm") == "treatment")["thumbs_up"].to_numpy()
    ref = stats.ttest_ind(a, c, equal_var=False)
    e = result.effect("thumbs_up", phase="2")
    assert e.effect == pytest.approx(a.mean() - c.mean(), rel=1e-9)
    assert e.pvalue == pytest.approx(ref.pvalue, rel=1e-6)


def test_cuped_cost_matches_ols_with_pre_period(
    result: AnalysisResult, labelled: pl.DataFrame
) -> None:
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
        .agg(pl.col("cost_usd").sum().alias("z"))
    )
    y = (
        labelled.filter((pl.col("contamination") == "clean") & (pl.col("phase") == 1))
        .group_by(unit, "arm")
        .agg(pl.col("cost_usd").sum().alias("y"))
        .join(pre, on=unit, how="left")
        .with_columns(pl.col("z").fill_null(0.0))
    )
    x = np.column_stack([(y["arm"] == "treatment").to_numpy().astype(float), y["z"].to_numpy()])
    fit = sm.OLS(y["y"].to_numpy(), sm.add_constant(x)).fit(cov_type="HC2")
    e = result.effect("cost_usd", phase="1")
    assert e.effect == pytest.approx(fit.params[1], rel=1e-6)
    assert e.cuped_theta == pytest.approx(fit.params[2], rel=1e-6)
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
    assert result.ok


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
    res = analyze(split_sample, metrics=[Ratio("helpfulness")], sequential=True, explain=False)
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
    assert main(["analyze", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["effects"][0]["analysis"] == "clean"
    assert main(["analyze", "--crossover-threshold", "0.0001", "--no-explain"]) == 1
    assert "crossover" in capsys.readouterr().err
    bad = tmp_path / "m.yaml"
    bad.write_text("metrics: [{type: mean}]")
    assert main(["analyze", "--metrics", str(bad)]) == 2
    assert "metrics[0]" in capsys.readouterr().err
    assert main(["analyze", "--format", "markdown", "--no-explain"]) == 0
    assert "| analysis |" in capsys.readouterr().out


def test_srm_counts_newly_enrolled_single_arm_units_brute_force(events_path, ledger_path) -> None:
    """SRM's observed counts equal a brute-force count: per exposure phase, units whose first
    tagged exposure turn falls in it, by their arm; units tagged with two arms left out."""
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
    units: dict[str, tuple[object, set[str]]] = {}
    for row in tagged.sort("ts").iter_rows(named=True):
        first, arms = units.setdefault(row["user_id"], (row["ts"], set()))
        arms.add(row["arm"])
    expected: dict[tuple[int, str], int] = {}
    for first, arms in units.values():
        if len(arms) != 1:
            continue
        phase = next(p.id for p in phases if p.kind == "exposure" and p.contains(first))
        key = (phase, next(iter(arms)))
        expected[key] = expected.get(key, 0) + 1
    got = {(r.phase, r.arm): r.observed for r in res.srm.rows}
    assert got == expected
