"""The stratified clean estimates against independent computations, and their simulation.

- brute force: per-unit rows built in polars from the labelled events, the time blocks computed
  here, the per-block ratios and the unit-clustered sandwich in plain numpy;
- statsmodels: an event-level OLS with one dummy per block × arm, cluster-robust by unit (CR0),
  gives the same per-block differences and the same clustered variance of their weighted sum;
- per block, the regression-adjusted difference equals an OLS with the covariates;
- one stratum and no covariate: exactly the Welch / delta-method comparison of before;
- seeded simulations (``@pytest.mark.slow``) of a bucket-moving ramp with a time trend and a
  known effect: bias, coverage and SE / sd of the combined estimate.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from _generators import END, RAMP, START, RampSpec, generate, ledger_file
from scipy import stats

from analysis import load_ledger
from analysis.events.labelling import split
from analysis.metrics import analyze
from analysis.metrics.definitions import Mean, Ratio
from analysis.stats import Identity, Moments, RatioOf, compare
from analysis.stats.stratified import ArmInfluence, design_weights, stratified_effect

TRUE = -0.30


def sim_scale() -> float:
    return float(os.environ.get("PROMPTSTATE_SIM_SCALE", "1.0"))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_ledger(ledger_file(tmp_path_factory.mktemp("ramp")))


@pytest.fixture(scope="module")
def small(ledger: Any) -> Any:
    return split(generate(RampSpec(n_units=1500, seed=5)), ledger)


def _blocks(hours: float | None) -> list[tuple[int, Any]]:
    """Block starts computed here: 6-hour blocks from each phase start; a trailing piece
    shorter than half a block joins the previous block."""
    out = []
    for phase, (a, b) in enumerate(((START, RAMP), (RAMP, END)), start=1):
        out.append((phase, a))
        if hours is None:
            continue
        t = a + timedelta(hours=hours)
        while t + timedelta(hours=hours / 2) <= b:
            out.append((phase, t))
            t += timedelta(hours=hours)
    return out


def _unit_rows(res: Any, hours: float | None) -> pl.DataFrame:
    """Per unit × block: helpfulness total and count, from the labelled clean events."""
    starts = _blocks(hours)
    ev = res.frame.collect().to_native().filter(pl.col("contamination") == "clean")
    ts = ev["ts"].to_list()
    block = [max(k for k, (_, b) in enumerate(starts) if b <= t) for t in ts]
    ev = ev.with_columns(pl.Series("block", block))
    return (
        ev.group_by("user_id", "arm", "block", "phase")
        .agg(pl.col("helpfulness").sum().alias("y"), pl.len().alias("x"))
        .sort("user_id", "block")
    )


def _brute_force(rows: pl.DataFrame, phase: int | None) -> dict[str, float]:
    """Stratified ratio estimate and the unit-clustered sandwich variance, by hand."""
    if phase is not None:
        rows = rows.filter(pl.col("phase") == phase)
    blocks = sorted(set(rows["block"]))
    totals = {b: float(rows.filter(pl.col("block") == b)["x"].sum()) for b in blocks}
    w = {b: totals[b] / sum(totals.values()) for b in blocks}
    out: dict[str, float] = {}
    psis: dict[str, dict[str, float]] = {}
    for arm in ("control", "treatment"):
        a = rows.filter(pl.col("arm") == arm)
        est = 0.0
        psi: dict[str, float] = {}
        for b in blocks:
            cell = a.filter(pl.col("block") == b)
            y, x = cell["y"].to_numpy(), cell["x"].to_numpy().astype(float)
            r = y.sum() / x.sum()
            est += w[b] * r
            for uid, yi, xi in zip(cell["user_id"], y, x, strict=True):
                psi[uid] = psi.get(uid, 0.0) + w[b] * (yi - r * xi) / x.sum()
        out[arm] = est
        out[f"n_{arm}"] = len(psi)
        psis[arm] = psi
    # one cluster per unit: a ramp-moved unit has both parts, √k_t ψ^t − √k_c ψ^c
    k = {a: out[f"n_{a}"] / (out[f"n_{a}"] - 1) for a in psis}
    ids = set(psis["control"]) | set(psis["treatment"])
    d = np.array(
        [
            math.sqrt(k["treatment"]) * psis["treatment"].get(i, 0.0)
            - math.sqrt(k["control"]) * psis["control"].get(i, 0.0)
            for i in ids
        ]
    )
    out["effect"] = out["treatment"] - out["control"]
    out["se"] = math.sqrt(float(np.sum(d * d)))
    return out


@pytest.mark.parametrize("phase", [None, 1, 2])
def test_stratified_ratio_matches_brute_force(small: Any, phase: int | None) -> None:
    res = analyze(small, metrics=[Ratio("helpfulness", cuped=False)], explain=False)
    want = _brute_force(_unit_rows(small, 6.0), phase)
    e = res.effect("helpfulness", phase="combined" if phase is None else str(phase))
    assert e.effect == pytest.approx(want["effect"], rel=1e-9)
    assert e.control_mean == pytest.approx(want["control"], rel=1e-9)
    assert e.se == pytest.approx(want["se"], rel=1e-9)
    assert (e.n_control, e.n_arm) == (want["n_control"], want["n_treatment"])
    assert e.covariate == "none"
    assert e.effect_unadjusted == e.effect


def test_stratified_variance_equals_cluster_robust_ols(small: Any) -> None:
    """Event-level OLS on block × arm dummies, CR0 by unit: the per-block ratios are the
    coefficients, and the weighted sum's clustered variance equals the influence-function
    variance up to the exact N/(N−1) factor of each arm."""
    res = analyze(small, metrics=[Ratio("helpfulness", cuped=False)], explain=False)
    e = res.effect("helpfulness")
    ev = small.frame.collect().to_native().filter(pl.col("contamination") == "clean")
    starts = np.array([b.replace(tzinfo=None) for _, b in _blocks(6.0)], dtype="datetime64[us]")
    ts = ev["ts"].dt.replace_time_zone(None).to_numpy()
    block = np.searchsorted(starts, ts, side="right") - 1
    cell = block * 2 + (ev["arm"] == "treatment").to_numpy().astype(int)
    cells = np.unique(cell)
    x = (cell[:, None] == cells[None, :]).astype(float)
    groups = ev["user_id"].cast(pl.Categorical).to_physical().to_numpy()
    fit = sm.OLS(ev["helpfulness"].to_numpy(), x).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    counts = {c: float((cell == c).sum()) for c in cells}
    blocks = sorted({c // 2 for c in cells})
    w = design_weights({b: counts[2 * b] + counts[2 * b + 1] for b in blocks})
    c_t = np.array([w[c // 2] if c % 2 else 0.0 for c in cells])
    c_c = np.array([0.0 if c % 2 else w[c // 2] for c in cells])
    assert e.effect == pytest.approx(float((c_t - c_c) @ fit.params), rel=1e-9)
    v_t, v_c = float(c_t @ fit.cov_params() @ c_t), float(c_c @ fit.cov_params() @ c_c)
    # ramp-moved units are kept: control in the canary's blocks, treatment after the ramp, one
    # cluster each, so the arms' estimates covary
    v_tc = float(c_t @ fit.cov_params() @ c_c)
    assert v_tc != pytest.approx(0.0, abs=1e-12)
    k_t, k_c = e.n_arm / (e.n_arm - 1), e.n_control / (e.n_control - 1)
    want = k_t * v_t + k_c * v_c - 2 * math.sqrt(k_t * k_c) * v_tc
    assert e.se**2 == pytest.approx(want, rel=1e-9)


def test_one_stratum_no_covariate_equals_welch_and_delta(small: Any) -> None:
    """block_hours=None: a phase is one stratum; without a covariate the phase rows are the
    Welch (mean) and delta-method (ratio) comparisons of per-unit aggregates in the phase."""
    metrics = [Ratio("helpfulness", cuped=False), Mean("helpfulness", cuped=False, name="h_sum")]
    res = analyze(small, metrics=metrics, explain=False, block_hours=None)
    rows = _unit_rows(small, None).filter(pl.col("phase") == 1)
    c, t = rows.filter(pl.col("arm") == "control"), rows.filter(pl.col("arm") == "treatment")
    ratio = compare(
        Moments.from_arrays({"y": c["y"].to_numpy(), "x": c["x"].to_numpy().astype(float)}),
        Moments.from_arrays({"y": t["y"].to_numpy(), "x": t["x"].to_numpy().astype(float)}),
        RatioOf("y", "x"),
    )
    e = res.effect("helpfulness", phase="1")
    for field in ("effect", "se", "effect_ci_lower", "pvalue", "rel_effect", "rel_effect_ci_lower"):
        assert getattr(e, field) == pytest.approx(getattr(ratio, field), rel=1e-9), field
    welch = stats.ttest_ind(t["y"].to_numpy(), c["y"].to_numpy(), equal_var=False)
    m = res.effect("h_sum", phase="1")
    assert m.effect == pytest.approx(t["y"].mean() - c["y"].mean(), rel=1e-9)
    assert m.pvalue == pytest.approx(welch.pvalue, rel=1e-9)
    ci = welch.confidence_interval(0.95)
    assert m.effect_ci_lower == pytest.approx(ci.low, rel=1e-9)
    assert m.effect_ci_upper == pytest.approx(ci.high, rel=1e-9)
    assert m.effect == pytest.approx(
        compare(
            Moments.from_arrays({"y": c["y"].to_numpy()}),
            Moments.from_arrays({"y": t["y"].to_numpy()}),
            Identity("y"),
        ).effect,
        rel=1e-12,
    )


def test_adjusted_single_stratum_matches_ols_with_covariates() -> None:
    """One stratum, a mean with covariates: the adjusted effect is Δy − θᵀΔh with θ the
    variance-minimising coefficient; with equal arm sizes that is the OLS coefficient of
    ``y ~ 1 + treatment + h`` (pooled within-arm slope)."""
    rng = np.random.default_rng(11)
    n = 600
    h = rng.normal(0, 1, (2 * n, 2))
    treat = np.r_[np.zeros(n), np.ones(n)]
    y = 1 + 0.3 * treat + h @ np.array([0.8, -0.5]) + rng.normal(0, 1, 2 * n)
    arms = []
    for a in (0, 1):
        sel = treat == a
        mom = Moments.from_arrays({"y": y[sel], "h1": h[sel, 0], "h2": h[sel, 1]})
        psi = np.column_stack([y[sel], h[sel, 0], h[sel, 1]])
        psi = (psi - psi.mean(axis=0)) / n
        arms.append(ArmInfluence(n, mom.means, psi.T @ psi))
    r = stratified_effect(arms[0], arms[1])
    fit = sm.OLS(y, sm.add_constant(np.column_stack([treat, h]))).fit(cov_type="HC2")
    assert r.adjusted.effect == pytest.approx(fit.params[1], rel=1e-9)
    np.testing.assert_allclose(r.theta, fit.params[2:], rtol=1e-9)
    assert r.adjusted.se == pytest.approx(fit.bse[1], rel=0.02)
    assert r.unadjusted.effect == pytest.approx(y[treat == 1].mean() - y[treat == 0].mean())
    assert r.adjusted.se < 0.8 * r.unadjusted.se


def test_adjustment_is_the_default_and_unadjusted_is_shown(small: Any) -> None:
    res = analyze(small, metrics=[Ratio("helpfulness")], explain=False)
    e = res.effect("helpfulness")
    assert e.covariate == "pre_period"
    plain = analyze(small, metrics=[Ratio("helpfulness", cuped=False)], explain=False)
    p = plain.effect("helpfulness")
    assert e.effect_unadjusted == pytest.approx(p.effect, rel=1e-12)
    assert e.effect_unadjusted_ci_lower == pytest.approx(p.effect_ci_lower, rel=1e-12)
    assert e.se < p.se
    assert e.strata == 12


def test_duckdb_and_pandas_agree_with_polars(ledger: Any) -> None:
    """The second pass looks its constants up by replace_strict on DuckDB (no cross-connection
    join) and pandas; the estimates equal polars' (join) ones."""
    import duckdb

    ev = generate(RampSpec(n_units=800, seed=9))
    con = duckdb.connect()
    con.register("ev", ev.to_arrow())
    metrics = [Ratio("helpfulness"), Mean("helpfulness", name="h_sum", cuped=False)]
    kw: dict[str, Any] = {"metrics": metrics, "explain": False, "recovery": False}
    want = analyze(ev, ledger, **kw)
    for native in (con.sql("select * from ev"), ev.to_pandas()):
        got = analyze(native, ledger, **kw)
        for g, w in zip(got.effects.rows, want.effects.rows, strict=True):
            assert (g.metric, g.phase, g.covariate) == (w.metric, w.phase, w.covariate)
            assert g.effect == pytest.approx(w.effect, rel=1e-9, abs=1e-12)
            assert g.se == pytest.approx(w.se, rel=1e-9)


# -- simulations ---------------------------------------------------------------------------------


def _simulate(ledger: Any, reps: int, units: int, seed0: int, **spec: Any) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for r in range(reps):
        res = split(generate(RampSpec(n_units=units, seed=seed0 + r, **spec)), ledger)
        a = analyze(res, metrics=[Ratio("helpfulness")], explain=False, recovery=False)
        e = a.effect("helpfulness")
        z = (e.effect_ci_upper - e.effect_ci_lower) / (2 * e.se)
        se_u = (e.effect_unadjusted_ci_upper - e.effect_unadjusted_ci_lower) / (2 * z)
        for key, value in (
            ("est", e.effect),
            ("se", e.se),
            ("cov", float(e.effect_ci_lower <= TRUE <= e.effect_ci_upper)),
            ("raw", e.effect_unadjusted),
            ("raw_se", se_u),
        ):
            out.setdefault(key, []).append(value)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.slow
def test_combined_estimate_unbiased_calibrated_on_bucket_moving_ramp(ledger: Any) -> None:
    """200 replicates × 5 000 units at scale 1 (CI: 50): bias within 4 MC SEs (+0.005),
    coverage within 3 binomial MC SEs of 95%, mean SE / sd within its sampling error."""
    reps = max(40, round(200 * sim_scale()))
    sim = _simulate(ledger, reps, 5000, 10_000)
    for est, se in (("est", "se"), ("raw", "raw_se")):
        sd = sim[est].std(ddof=1)
        mcse = sd / math.sqrt(reps)
        assert abs(sim[est].mean() - TRUE) < 4 * mcse + 0.005, (est, sim[est].mean(), mcse)
        # sd of a sample sd is about sd / sqrt(2 (reps − 1)); allow 4 of those
        assert abs(sim[se].mean() / sd - 1) < 4 / math.sqrt(2 * (reps - 1)), (
            est,
            sim[se].mean(),
            sd,
        )
    tol = 3 * math.sqrt(0.95 * 0.05 / reps)
    assert abs(sim["cov"].mean() - 0.95) <= tol
    assert sim["est"].var(ddof=1) < 0.85 * sim["raw"].var(ddof=1)  # adjustment pays


@pytest.mark.slow
def test_combined_coverage_when_the_effect_differs_between_phases(ledger: Any) -> None:
    """Design weights: with −0.2 in phase 1 and −0.4 in phase 2 the estimand is the turn-share
    weighted mean of the phase effects; its CI covers the truth computed from the weights."""
    reps = max(30, round(120 * sim_scale()))
    hits, ests = [], []
    for r in range(reps):
        res = split(
            generate(RampSpec(n_units=5000, seed=20_000 + r, effect=-0.2, effect_phase2=-0.4)),
            ledger,
        )
        a = analyze(res, metrics=[Ratio("helpfulness")], explain=False, recovery=False)
        e = a.effect("helpfulness")
        turns = (
            res.frame.to_native()
            .filter(pl.col("contamination") == "clean")
            .group_by("phase")
            .agg(pl.len())
            .collect()
        )
        share1 = float(turns.filter(pl.col("phase") == 1)["len"][0]) / float(turns["len"].sum())
        truth = -0.2 * share1 - 0.4 * (1 - share1)
        hits.append(float(e.effect_ci_lower <= truth <= e.effect_ci_upper))
        ests.append(e.effect - truth)
    tol = 3 * math.sqrt(0.95 * 0.05 / reps)
    assert abs(np.mean(hits) - 0.95) <= tol
    assert abs(np.mean(ests)) < 4 * np.std(ests, ddof=1) / math.sqrt(reps) + 0.005
