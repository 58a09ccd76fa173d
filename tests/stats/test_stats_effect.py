from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.stats import Identity, Moments, RatioOf, combine_strata, compare
from analysis.stats.effect import ArmEstimate


def _arm(rng: np.random.Generator, n: int, lift: float) -> dict[str, np.ndarray]:
    turns = rng.poisson(4, n) + 1
    pre = rng.gamma(2.0, 1.5, n)
    base = 3 + 0.8 * pre
    helpful = np.array([rng.normal(b + lift, 1.0, t).sum() for b, t in zip(base, turns)])
    cost = turns * (0.02 + 0.01 * pre) + rng.normal(0, 0.02, n) + lift * 0.01
    return {"y": helpful, "x": turns.astype(float), "cost": cost, "pre": pre}


@pytest.fixture(scope="module")
def arms() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    return _arm(rng, 900, 0.0), _arm(rng, 400, -0.3)


def test_welch_matches_scipy(arms) -> None:
    c, t = arms
    res = compare(
        Moments.from_arrays({"cost": c["cost"]}),
        Moments.from_arrays({"cost": t["cost"]}),
        Identity("cost"),
    )
    ref = stats.ttest_ind(t["cost"], c["cost"], equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert res.effect == pytest.approx(t["cost"].mean() - c["cost"].mean(), rel=1e-10)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-8)
    assert res.effect_ci_lower == pytest.approx(ci.low, rel=1e-8)
    assert res.effect_ci_upper == pytest.approx(ci.high, rel=1e-8)
    assert res.df == pytest.approx(ref.df, rel=1e-8)


def test_relative_effect_delta_method(arms) -> None:
    c, t = arms
    res = compare(
        Moments.from_arrays({"cost": c["cost"]}),
        Moments.from_arrays({"cost": t["cost"]}),
        Identity("cost"),
    )
    mc, mt = c["cost"].mean(), t["cost"].mean()
    vc = c["cost"].var(ddof=1) / len(c["cost"])
    vt = t["cost"].var(ddof=1) / len(t["cost"])
    assert res.rel_effect == pytest.approx(mt / mc - 1, rel=1e-10)
    assert res.rel_se == pytest.approx(math.sqrt(vt / mc**2 + mt**2 * vc / mc**4), rel=1e-10)


def _events(d: dict[str, np.ndarray], rng: np.random.Generator, offset: int):
    """Split each unit's helpfulness total into per-turn values (event level)."""
    ys, units = [], []
    for i, (total, turns) in enumerate(zip(d["y"], d["x"].astype(int))):
        parts = rng.normal(0, 1, turns)
        parts = parts - parts.mean() + total / turns
        ys.append(parts)
        units.append(np.full(turns, offset + i))
    return np.concatenate(ys), np.concatenate(units)


def test_ratio_delta_matches_cluster_robust_ols(arms) -> None:
    c, t = arms
    rng = np.random.default_rng(1)
    yc, uc = _events(c, rng, 0)
    yt, ut = _events(t, rng, 10_000)
    res = compare(
        Moments.from_arrays({"y": c["y"], "x": c["x"]}),
        Moments.from_arrays({"y": t["y"], "x": t["x"]}),
        RatioOf("y", "x"),
    )
    y = np.concatenate([yc, yt])
    treat = np.concatenate([np.zeros(len(yc)), np.ones(len(yt))])
    groups = np.concatenate([uc, ut])
    fit = sm.OLS(y, sm.add_constant(treat)).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    assert res.effect == pytest.approx(fit.params[1], rel=1e-9)
    # CR0 sums squared cluster residuals; the delta method uses n-1 per arm: exact factor.
    nc, nt = len(c["y"]), len(t["y"])
    rc = c["y"] - res.control_mean * c["x"]
    rt = t["y"] - res.arm_mean * t["x"]
    cr0 = np.sum(rc**2) / c["x"].sum() ** 2 + np.sum(rt**2) / t["x"].sum() ** 2
    assert fit.bse[1] ** 2 == pytest.approx(cr0, rel=1e-9)
    delta = np.sum(rc**2) / c["x"].sum() ** 2 * nc / (nc - 1) + np.sum(rt**2) / t[
        "x"
    ].sum() ** 2 * nt / (nt - 1)
    assert res.se**2 == pytest.approx(delta, rel=1e-9)
    assert res.se == pytest.approx(fit.bse[1], rel=2e-3)


def test_ratio_with_denominator_matches_weighted_cluster_ols(arms) -> None:
    c, t = arms
    # unit-level WLS of y/x on treatment with weights x equals sum(y)/sum(x) per arm
    y = np.concatenate([c["y"] / c["x"], t["y"] / t["x"]])
    w = np.concatenate([c["x"], t["x"]])
    treat = np.concatenate([np.zeros(len(c["y"])), np.ones(len(t["y"]))])
    fit = sm.WLS(y, sm.add_constant(treat), weights=w).fit(
        cov_type="cluster",
        cov_kwds={"groups": np.arange(len(y)), "use_correction": False},
    )
    res = compare(
        Moments.from_arrays({"y": c["y"], "x": c["x"]}),
        Moments.from_arrays({"y": t["y"], "x": t["x"]}),
        RatioOf("y", "x"),
    )
    assert res.effect == pytest.approx(fit.params[1], rel=1e-9)
    assert res.se == pytest.approx(fit.bse[1], rel=2e-3)


def test_cuped_matches_ols_with_covariate(arms) -> None:
    c, t = arms
    res = compare(
        Moments.from_arrays({"cost": c["cost"], "pre": c["pre"]}),
        Moments.from_arrays({"cost": t["cost"], "pre": t["pre"]}),
        Identity("cost"),
        covariate=Identity("pre"),
    )
    y = np.concatenate([c["cost"], t["cost"]])
    treat = np.concatenate([np.zeros(len(c["cost"])), np.ones(len(t["cost"]))])
    pre = np.concatenate([c["pre"], t["pre"]])
    fit = sm.OLS(y, sm.add_constant(np.column_stack([treat, pre]))).fit(cov_type="HC2")
    assert res.effect == pytest.approx(fit.params[1], rel=1e-9)
    assert res.theta == pytest.approx(fit.params[2], rel=1e-9)
    assert res.se == pytest.approx(fit.bse[1], rel=0.02)
    plain = compare(
        Moments.from_arrays({"cost": c["cost"]}),
        Moments.from_arrays({"cost": t["cost"]}),
        Identity("cost"),
    )
    assert res.se < 0.8 * plain.se  # the covariate explains much of the variance


def test_cuped_ratio_reduces_variance(arms) -> None:
    c, t = arms
    # covariate: pre-period ratio, num and den per unit
    rng = np.random.default_rng(3)

    def cov_vars(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        zx = rng.poisson(4, len(d["y"])) + 1.0
        zy = (3 + 0.8 * d["pre"]) * zx + rng.normal(0, 1, len(zx))
        return {"y": d["y"], "x": d["x"], "zy": zy, "zx": zx}

    mc, mt = Moments.from_arrays(cov_vars(c)), Moments.from_arrays(cov_vars(t))
    plain = compare(mc, mt, RatioOf("y", "x"))
    adj = compare(mc, mt, RatioOf("y", "x"), covariate=RatioOf("zy", "zx"))
    assert adj.se < 0.8 * plain.se
    assert abs(adj.effect - plain.effect) < 3 * plain.se


def test_combine_strata_inverse_variance() -> None:
    s1 = (ArmEstimate(100, 1.0, 1.0, 0.01), ArmEstimate(20, 1.5, 1.5, 0.04))
    s2 = (ArmEstimate(50, 2.0, 2.0, 0.02), ArmEstimate(50, 2.2, 2.2, 0.02))
    res = combine_strata([s1, s2])
    w1, w2 = 1 / 0.05, 1 / 0.04
    assert res.effect == pytest.approx((w1 * 0.5 + w2 * 0.2) / (w1 + w2))
    assert res.se == pytest.approx(math.sqrt(1 / (w1 + w2)))
    assert res.n_control == 150
    assert res.n_arm == 70


def test_small_arms_give_nan() -> None:
    res = compare(
        Moments.from_arrays({"y": [1.0]}), Moments.from_arrays({"y": [1.0, 2.0]}), Identity("y")
    )
    assert math.isnan(res.se)
    assert math.isnan(res.pvalue)


def test_influence_coefficients_linearise_the_ratio() -> None:
    """Each unit's influence (``C[:, :-1] @ v − C[:, -1]``) is the first-order change of the
    weighted ratio when the unit's aggregates are perturbed (numerical derivative), and the
    influences of a stratum sum to zero."""
    from analysis.stats.stratified import design_weights, influence_coefficients

    rng = np.random.default_rng(5)
    x = rng.poisson(3, 50) + 1.0
    y = 2 * x + rng.normal(0, 1, 50)
    h = rng.normal(0, 1, 50)
    m = Moments.from_arrays({"y": y, "x": x, "h": h})
    w = 0.3
    c = influence_coefficients(m, RatioOf("y", "x"), ["h"], w)
    v = np.column_stack([y, x, h])
    psi = v @ c[:, :-1].T - c[:, -1]
    np.testing.assert_allclose(psi.sum(axis=0), 0.0, atol=1e-12)
    eps = 1e-6
    y2 = y.copy()
    y2[0] += eps * len(y)  # a change of eps in the mean of y
    ratio = lambda yy: yy.sum() / x.sum()  # noqa: E731
    assert w * (ratio(y2) - ratio(y)) / eps == pytest.approx(c[0, 0] * len(y), rel=1e-6)
    assert psi[:, 1] == pytest.approx(w * (h - h.mean()) / len(h), rel=1e-12)
    assert design_weights({0: 1.0, 1: 3.0, 2: 0.0, 3: float("nan")}) == {0: 0.25, 1: 0.75}


def test_stratified_effect_without_covariates_is_effect_from_arms() -> None:
    """No covariate: the stratified comparison is ``effect_from_arms`` on (N, value, N/(N−1)Σψ²)."""
    from analysis.stats.effect import effect_from_arms
    from analysis.stats.stratified import ArmInfluence, stratified_effect

    c = ArmInfluence(40, np.array([1.0]), np.array([[0.02]]))
    t = ArmInfluence(25, np.array([1.3]), np.array([[0.05]]))
    r = stratified_effect(c, t)
    want = effect_from_arms(
        ArmEstimate(40, 1.0, 1.0, 0.02 * 40 / 39), ArmEstimate(25, 1.3, 1.3, 0.05 * 25 / 24)
    )
    assert r.adjusted == r.unadjusted
    for got, expected in zip(r.adjusted, want, strict=True):
        assert got == pytest.approx(expected, rel=1e-12)
    assert r.theta.size == 0


def test_tiny_and_huge_control_values_give_nan_not_an_exception() -> None:
    """A control estimate whose square under- or overflows: the relative effect is NaN (or
    finite), never a ZeroDivisionError / OverflowError (found by the event fuzz test)."""
    import math

    from analysis.stats.effect import ArmEstimate, effect_from_arms

    for cv, av in ((1e-200, 2e-200), (1e200, 3e200), (0.0, 1.0), (-1e-170, 1e-170)):
        r = effect_from_arms(ArmEstimate(5, cv, cv, 1e-3), ArmEstimate(5, av, av, 1e-3))
        assert math.isfinite(r.effect) or math.isinf(r.effect)
        assert math.isnan(r.rel_se) or math.isfinite(r.rel_se)
