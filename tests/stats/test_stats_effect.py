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
