"""analysis.stats.paired against scipy, statsmodels and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from analysis.stats import paired


@pytest.fixture
def pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    ref = rng.normal(3.5, 0.8, 250)
    cand = ref + rng.normal(-0.05, 0.4, 250)
    return ref, cand


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_paired_t_matches_scipy(pairs: tuple[np.ndarray, np.ndarray], confidence: float) -> None:
    ref, cand = pairs
    res = paired.paired_t(cand - ref, confidence=confidence)
    rel = stats.ttest_rel(cand, ref)
    one = stats.ttest_1samp(cand - ref, 0.0)
    assert res.statistic == pytest.approx(rel.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(rel.pvalue, rel=1e-10)
    assert res.pvalue == pytest.approx(one.pvalue, rel=1e-10)
    ci = rel.confidence_interval(confidence_level=confidence)
    assert (res.ci_lower, res.ci_upper) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert res.df == len(ref) - 1
    assert res.se == pytest.approx(stats.sem(cand - ref), rel=1e-12)


def test_paired_t_on_example_means_is_the_clustered_analysis() -> None:
    """Several samples per example: the example-level mean is the unit (cluster by example)."""
    rng = np.random.default_rng(3)
    n, k = 120, 4
    example_effect = rng.normal(0, 1, n)
    ref = example_effect[:, None] + rng.normal(0, 1, (n, k))
    cand = example_effect[:, None] + 0.1 + rng.normal(0, 1, (n, k))
    d = cand.mean(axis=1) - ref.mean(axis=1)
    res = paired.paired_t(d)
    expected = stats.ttest_rel(cand.mean(axis=1), ref.mean(axis=1))
    assert res.pvalue == pytest.approx(expected.pvalue, rel=1e-10)
    assert res.n == n


@pytest.mark.parametrize("margin", [0.02, 0.1, 0.3])
def test_margin_pvalues_match_scipy_one_sided(
    pairs: tuple[np.ndarray, np.ndarray], margin: float
) -> None:
    ref, cand = pairs
    d = cand - ref
    t = paired.paired_t(d)
    mp = paired.margin_pvalues(t.mean, t.se, t.df, margin)
    ni = stats.ttest_1samp(d, -margin, alternative="greater")
    reg = stats.ttest_1samp(d, -margin, alternative="less")
    assert mp.p_noninferior == pytest.approx(ni.pvalue, rel=1e-9)
    assert mp.p_regression == pytest.approx(reg.pvalue, rel=1e-9)
    # duality with the two-sided 1 - 2*alpha CI
    alpha = 0.05
    lo = paired.paired_t(d, confidence=1 - 2 * alpha).ci_lower
    assert (mp.p_noninferior < alpha) == (lo > -margin)


def test_degenerate_inputs() -> None:
    assert math.isnan(paired.paired_t([]).mean)
    one = paired.paired_t([0.5])
    assert one.mean == 0.5
    assert math.isnan(one.pvalue)
    same = paired.paired_t([0.5, 0.5, 0.5])
    assert same.pvalue == 0.0
    assert same.ci_lower == same.ci_upper == 0.5
    zero = paired.paired_t([0.0, 0.0])
    assert zero.pvalue == 1.0
    assert paired.margin_pvalues(0.0, 0.0, 2, 0.1) == (0.0, 1.0)
    assert paired.margin_pvalues(-0.2, 0.0, 2, 0.1) == (1.0, 0.0)
    assert all(math.isnan(p) for p in paired.margin_pvalues(0.0, math.nan, 0, 0.1))
    assert paired.minimum_detectable_effect(math.nan, 0, alpha=0.05, power=0.8) == math.inf
    with pytest.raises(ValueError):
        paired.paired_t([1.0, math.nan])
    with pytest.raises(ValueError):
        paired.paired_t(np.zeros((2, 2)))


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (10, 3), (3, 10), (25, 25), (40, 61)])
def test_mcnemar_exact_matches_statsmodels(b: int, c: int) -> None:
    table = np.array([[50, b], [c, 70]])
    expected = mcnemar(table, exact=True).pvalue
    assert paired.mcnemar_exact(b, c).pvalue == pytest.approx(expected, rel=1e-10, abs=1e-15)


def test_discordant_counts_brute_force() -> None:
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 2, 500)
    cand = rng.integers(0, 2, 500)
    b, c = paired.discordant_counts(ref, cand)
    assert b == sum(1 for r, x in zip(ref, cand, strict=True) if r == 1 and x == 0)
    assert c == sum(1 for r, x in zip(ref, cand, strict=True) if r == 0 and x == 1)
    with pytest.raises(ValueError):
        paired.discordant_counts([1, 0], [1])
    with pytest.raises(ValueError):
        paired.mcnemar_exact(-1, 2)


@pytest.mark.parametrize(
    "p", [[0.01, 0.04, 0.03], [0.5], [0.001, 0.2, 0.2, 0.049, 0.9], [0.03, 0.03, 0.03]]
)
def test_holm_matches_statsmodels(p: list[float]) -> None:
    expected = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(paired.holm(p), expected, rtol=1e-12)


def test_holm_ignores_nan() -> None:
    out = paired.holm([0.01, math.nan, 0.04])
    np.testing.assert_allclose(out[[0, 2]], multipletests([0.01, 0.04], method="holm")[1])
    assert math.isnan(out[1])
    assert paired.holm([]).size == 0


def test_bootstrap_close_to_t_for_large_n() -> None:
    rng = np.random.default_rng(11)
    d = rng.normal(0.1, 1.0, 2000)
    b = paired.paired_bootstrap(d, confidence=0.9, n_resamples=4000, seed=1)
    t = paired.paired_t(d, confidence=0.9)
    assert b.mean == pytest.approx(t.mean)
    assert b.se == pytest.approx(t.se, rel=0.05)
    assert b.ci_lower == pytest.approx(t.ci_lower, abs=0.2 * t.se)
    assert b.ci_upper == pytest.approx(t.ci_upper, abs=0.2 * t.se)
    # reproducible and chunking-independent
    b2 = paired.paired_bootstrap(d, confidence=0.9, n_resamples=4000, seed=1, chunk=10**9)
    assert b2.ci_lower == b.ci_lower
    assert math.isnan(paired.paired_bootstrap([1.0]).se)


def test_quantiles_match_scipy() -> None:
    assert paired.t_quantile(0.975, 10) == pytest.approx(stats.t.ppf(0.975, 10))
    assert paired.t_quantile(0.975, math.inf) == pytest.approx(stats.norm.ppf(0.975))


def test_mde_and_required_examples_are_consistent() -> None:
    sd, margin = 0.3, 0.02
    n = paired.required_examples(sd, margin, alpha=0.05, power=0.8)
    mde = paired.minimum_detectable_effect(sd / math.sqrt(n), n - 1, alpha=0.05, power=0.8)
    assert mde == pytest.approx(margin, rel=0.01)
    assert paired.required_examples(sd, margin, n_metrics=2) > n
    with pytest.raises(ValueError):
        paired.required_examples(0.0, 0.1)


def test_power_formula_against_noncentral_t() -> None:
    """At the MDE, the one-sided t-test has the stated power (checked with scipy's nct)."""
    n, sd, alpha = 400, 1.0, 0.05
    se = sd / math.sqrt(n)
    mde = paired.minimum_detectable_effect(se, n - 1, alpha=alpha, power=0.8)
    crit = stats.t.ppf(1 - alpha, n - 1)
    power = stats.nct.sf(crit, n - 1, mde / se)
    assert power == pytest.approx(0.8, abs=0.01)
