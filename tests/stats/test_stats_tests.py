"""SRM, multiplicity, power, confidence sequences and quantile CIs against references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

from analysis.stats import (
    Moments,
    QuantileEstimate,
    adjust_pvalues,
    confidence_sequence_halfwidth,
    quantile_effect,
    srm_test,
)
from analysis.stats.power import mde, power
from analysis.stats.quantile import probability_bounds


def test_srm_matches_scipy_chisquare() -> None:
    res = srm_test({"control": 912, "treatment": 88}, {"control": 0.9, "treatment": 0.1})
    ref = stats.chisquare([912, 88], [900, 100])
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.pvalue == pytest.approx(ref.pvalue)
    assert not res.mismatch
    bad = srm_test({"control": 800, "treatment": 200}, {"control": 0.9, "treatment": 0.1})
    assert bad.mismatch
    assert bad.pvalue < 1e-10


def test_srm_unknown_arm_and_empty() -> None:
    assert srm_test({"a": 5, "x": 1}, {"a": 1.0}).pvalue != srm_test({"a": 5}, {"a": 1.0}).pvalue
    assert math.isnan(srm_test({}, {"a": 0.5, "b": 0.5}).pvalue)


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_multiplicity_matches_statsmodels(ours: str, theirs: str) -> None:
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(0, 1, 20), rng.uniform(0, 0.01, 5), [0.03, 0.03]])
    ref = multipletests(p, method=theirs)[1]
    np.testing.assert_allclose(adjust_pvalues(list(p), ours), ref, rtol=1e-12)


def test_multiplicity_skips_nan() -> None:
    out = adjust_pvalues([0.01, float("nan"), 0.04], "holm")
    assert math.isnan(out[1])
    np.testing.assert_allclose([out[0], out[2]], multipletests([0.01, 0.04], method="holm")[1])
    with pytest.raises(ValueError, match="unknown"):
        adjust_pvalues([0.1], "bonferonni")


def test_power_and_mde_match_statsmodels() -> None:
    se = 0.1 * math.sqrt(2 / 400)  # sd 0.1, 400 per arm
    ref = NormalIndPower().solve_power(effect_size=None, nobs1=400, alpha=0.05, power=0.8, ratio=1)
    # statsmodels solves with both tails; the far tail moves the MDE by ~1e-6
    assert mde(se) == pytest.approx(ref * 0.1, rel=1e-5)
    p_ref = NormalIndPower().power(effect_size=0.15, nobs1=400, alpha=0.05, ratio=1)
    assert power(0.015, se) == pytest.approx(p_ref, rel=1e-6)


def test_confidence_sequence_is_wider_and_time_uniform() -> None:
    z = stats.norm.ppf(0.975)
    assert confidence_sequence_halfwidth(1.0, 10_000) > z
    # time-uniform coverage of the running mean of N(0,1) over 1000 looks
    rng = np.random.default_rng(11)
    n_streams, n_steps = 400, 1000
    misses_cs = misses_fixed = 0
    steps = np.arange(1, n_steps + 1)
    for _ in range(n_streams):
        x = rng.normal(0, 1, n_steps)
        mean = np.cumsum(x) / steps
        se = 1 / np.sqrt(steps)
        hw = np.array(
            [confidence_sequence_halfwidth(s, int(n), n_star=500) for s, n in zip(se, steps)]
        )
        misses_cs += bool(np.any(np.abs(mean[9:]) > hw[9:]))
        misses_fixed += bool(np.any(np.abs(mean[9:]) > z * se[9:]))
    assert misses_cs / n_streams <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / n_streams)
    assert misses_fixed / n_streams > 0.2  # peeking with fixed intervals fails


def test_quantile_ci_matches_cluster_bootstrap() -> None:
    rng = np.random.default_rng(2)
    n_units = 600
    sizes = rng.poisson(6, n_units) + 1
    unit_effect = rng.normal(0, 0.6, n_units)
    values = [np.exp(5 + u + rng.normal(0, 0.5, k)) for u, k in zip(unit_effect, sizes)]
    allv = np.concatenate(values)
    q = 0.95
    xi = float(np.quantile(allv, q))
    below = np.array([np.sum(v <= xi) for v in values], dtype=float)
    m = Moments.from_arrays({"below": below, "events": sizes.astype(float)})
    lo_p, hi_p, _ = probability_bounds(m, q)
    est = QuantileEstimate.from_bounds(
        n_units, xi, float(np.quantile(allv, lo_p)), float(np.quantile(allv, hi_p))
    )
    boots = []
    for _ in range(400):
        idx = rng.integers(0, n_units, n_units)
        boots.append(np.quantile(np.concatenate([values[i] for i in idx]), q))
    se_boot = float(np.std(boots, ddof=1))
    assert est.se == pytest.approx(se_boot, rel=0.2)
    # the i.i.d. interval ignores clustering and is clearly narrower
    p_iid = math.sqrt(q * (1 - q) / len(allv))
    assert hi_p - lo_p > 1.3 * 2 * 1.96 * p_iid
    res = quantile_effect(est, est._replace(value=xi * 1.1))
    assert res.effect == pytest.approx(0.1 * xi)
    assert res.se == pytest.approx(math.sqrt(2) * est.se)
