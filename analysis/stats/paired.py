"""Paired statistics for eval gates: pure numbers on arrays, no dataframes here.

The gate's margin *decisions* use the null-restricted score tests of
:mod:`analysis.stats.noninferiority` (a Wald or t test on the observed variance passes tied
scores with certainty); this module gives its descriptive two-sided tests (paired t, exact
McNemar, percentile bootstrap), the Holm adjustment, and the Wald/t margin p-values kept as the
reference the simulations compare against.

Every function works on the vector ``d`` of *example-level paired differences*
``d_i = mean_i(candidate) - mean_i(reference)`` over the examples common to both runs. When an
example was scored several times (several samples per example), its mean over samples is the unit
of analysis: averaging within the example first is the cluster-by-example analysis, and it keeps
the samples of one example, which are correlated, from counting as independent observations.

Differences are *oriented* by the caller so that a positive value means "the candidate is
better" (for a lower-is-better metric the caller passes ``reference - candidate``). The
non-inferiority margin ``m > 0`` is then always on the same side:

* ``H0_NI: delta <= -m`` against ``delta > -m`` — rejecting it shows non-inferiority
  (:func:`margin_pvalues`, ``p_noninferior``);
* ``H0_REG: delta >= -m`` against ``delta < -m`` — rejecting it shows a regression beyond the
  margin (``p_regression``).

Distribution functions come from :mod:`scipy.special` (``stdtr``/``stdtrit``/``bdtr``), which
imports much faster than :mod:`scipy.stats`; tests check them against ``scipy.stats`` and
``statsmodels``.

References:
    ICH E9 / CONSORT extension for non-inferiority trials (Piaggio et al., JAMA 2012): a
    non-inferiority claim is made when the confidence interval's bound lies beyond ``-margin``.
    McNemar (1947); exact conditional version: the discordant count is Binomial(b + c, 1/2).
    Holm (1979), "A simple sequentially rejective multiple test procedure".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

__all__ = [
    "BootstrapResult",
    "MarginPValues",
    "McNemarResult",
    "PairedTTest",
    "discordant_counts",
    "holm",
    "margin_pvalues",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "paired_bootstrap",
    "paired_t",
    "required_examples",
    "t_quantile",
]

FloatArray = npt.NDArray[np.float64]


class PairedTTest(NamedTuple):
    """Paired t-test on example-level differences.

    Estimand: the mean paired difference ``E[d]`` over examples (candidate − reference, oriented
    as passed). Equal to ``scipy.stats.ttest_rel(candidate_means, reference_means)`` and to
    ``ttest_1samp(d, 0)``.

    Attributes:
        n: Number of examples (pairs).
        mean: Mean difference ``mean(d)``.
        sd: Sample standard deviation of ``d`` (``ddof=1``).
        se: Standard error ``sd / sqrt(n)``.
        df: Degrees of freedom ``n - 1``.
        statistic: ``mean / se`` (``nan`` when undefined).
        pvalue: Two-sided p-value of ``H0: E[d] = 0``.
        ci_lower: Lower bound of the two-sided ``confidence`` interval of ``E[d]``.
        ci_upper: Upper bound of the two-sided ``confidence`` interval of ``E[d]``.
    """

    n: int
    mean: float
    sd: float
    se: float
    df: float
    statistic: float
    pvalue: float
    ci_lower: float
    ci_upper: float


class BootstrapResult(NamedTuple):
    """Paired (example-resampling) percentile bootstrap of the mean difference.

    Estimand: the mean paired difference ``E[d]`` over examples; examples (clusters of samples)
    are resampled with replacement, never single samples.

    Attributes:
        n: Number of examples.
        mean: Mean difference ``mean(d)``.
        se: Standard deviation of the bootstrap means.
        ci_lower: ``(1 - confidence) / 2`` quantile of the bootstrap means.
        ci_upper: ``(1 + confidence) / 2`` quantile of the bootstrap means.
        means: The bootstrap means (length ``n_resamples``), for margin p-values.
    """

    n: int
    mean: float
    se: float
    ci_lower: float
    ci_upper: float
    means: FloatArray


class McNemarResult(NamedTuple):
    """Exact McNemar test for paired binary outcomes.

    Estimand: the difference of paired proportions ``P(cand=1) - P(ref=1) = (c - b) / n``; the
    exact test conditions on the ``b + c`` discordant pairs, ``c ~ Binomial(b + c, 1/2)`` under
    ``H0: no difference``. Same p-value as
    ``statsmodels.stats.contingency_tables.mcnemar(table, exact=True)``.

    Attributes:
        b: Pairs with reference 1 and candidate 0 (the candidate lost the example).
        c: Pairs with reference 0 and candidate 1 (the candidate won the example).
        pvalue: Two-sided exact p-value, ``min(1, 2 * P(X <= min(b, c)))``.
    """

    b: int
    c: int
    pvalue: float


class MarginPValues(NamedTuple):
    """One-sided p-values against the non-inferiority margin (oriented: positive is better).

    Attributes:
        p_noninferior: p-value of ``H0: delta <= -margin``; small means non-inferior.
        p_regression: p-value of ``H0: delta >= -margin``; small means worse than the margin.
    """

    p_noninferior: float
    p_regression: float


def _as_float(d: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(d, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-d array of paired differences, got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("paired differences contain NaN or infinite values")
    return arr


def t_quantile(q: float, df: float) -> float:
    """Quantile ``q`` of Student's t with ``df`` degrees of freedom (normal when ``df`` is inf)."""
    if math.isinf(df):
        return float(special.ndtri(q))
    return float(special.stdtrit(df, q))


def _t_cdf(x: float, df: float) -> float:
    if math.isnan(x):
        return math.nan
    if math.isinf(df):
        return float(special.ndtr(x))
    return float(special.stdtr(df, x))


def paired_t(d: npt.ArrayLike, *, confidence: float = 0.95) -> PairedTTest:
    """Paired t-test and two-sided confidence interval of the mean difference.

    Args:
        d: Example-level paired differences (one value per example).
        confidence: Two-sided confidence level of the interval.

    Returns:
        The test; with fewer than 2 examples every inferential field is ``nan``. When all
        differences are equal (``sd = 0``) the interval collapses onto the mean and the p-value
        is 0 (or 1 when the mean is 0).

    Examples:
        >>> r = paired_t([0.1, -0.2, 0.3, 0.0, 0.2])
        >>> round(r.mean, 3), round(r.pvalue, 3)
        (0.08, 0.405)
    """
    arr = _as_float(d)
    n = int(arr.size)
    if n == 0:
        nan = math.nan
        return PairedTTest(0, nan, nan, nan, nan, nan, nan, nan, nan)
    mean = float(arr.mean())
    if n < 2:
        nan = math.nan
        return PairedTTest(n, mean, nan, nan, 0.0, nan, nan, nan, nan)
    sd = float(arr.std(ddof=1))
    se = sd / math.sqrt(n)
    df = float(n - 1)
    if se == 0.0:
        stat = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        pvalue = 1.0 if mean == 0.0 else 0.0
        return PairedTTest(n, mean, sd, se, df, stat, pvalue, mean, mean)
    stat = mean / se
    pvalue = min(1.0, 2.0 * _t_cdf(-abs(stat), df))
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    return PairedTTest(n, mean, sd, se, df, stat, pvalue, mean - half, mean + half)


def paired_bootstrap(
    d: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int | None = 0,
    chunk: int = 5_000_000,
) -> BootstrapResult:
    """Percentile bootstrap of the mean paired difference, resampling examples.

    Args:
        d: Example-level paired differences.
        confidence: Two-sided confidence level.
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the generator (results are reproducible by default).
        chunk: Upper bound on indices drawn at once (memory guard for large suites).

    Returns:
        The bootstrap result; ``nan`` fields with fewer than 2 examples.
    """
    arr = _as_float(d)
    n = int(arr.size)
    if n < 2:
        nan = math.nan
        mean = float(arr.mean()) if n else nan
        return BootstrapResult(n, mean, nan, nan, nan, np.empty(0))
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)
    per = max(1, chunk // n)
    for start in range(0, n_resamples, per):
        stop = min(n_resamples, start + per)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = arr[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return BootstrapResult(
        n, float(arr.mean()), float(means.std(ddof=1)), float(lo), float(hi), means
    )


def discordant_counts(reference: npt.ArrayLike, candidate: npt.ArrayLike) -> tuple[int, int]:
    """Return ``(b, c)``: pairs the candidate lost (1→0) and won (0→1); inputs are 0/1 arrays."""
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    if ref.shape != cand.shape:
        raise ValueError(f"reference and candidate differ in shape: {ref.shape} vs {cand.shape}")
    b = int(np.count_nonzero((ref == 1) & (cand == 0)))
    c = int(np.count_nonzero((ref == 0) & (cand == 1)))
    return b, c


def mcnemar_exact(b: int, c: int) -> McNemarResult:
    """Exact two-sided McNemar test from the discordant counts.

    Args:
        b: Pairs with reference 1 and candidate 0.
        c: Pairs with reference 0 and candidate 1.

    Examples:
        >>> round(mcnemar_exact(10, 3).pvalue, 4)
        0.0923
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return McNemarResult(b, c, 1.0)
    pvalue = min(1.0, 2.0 * float(special.bdtr(min(b, c), n, 0.5)))
    return McNemarResult(b, c, pvalue)


def holm(pvalues: npt.ArrayLike) -> FloatArray:
    """Holm step-down adjusted p-values (family-wise error control, any dependence).

    ``nan`` entries are left out of the family and stay ``nan``. Matches
    ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``.

    Examples:
        >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    mask = ~np.isnan(p)
    vals = p[mask]
    k = vals.size
    if k == 0:
        return out
    order = np.argsort(vals, kind="stable")
    scaled = (k - np.arange(k)) * vals[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    res = np.empty(k)
    res[order] = adjusted
    out[mask] = res
    return out


def margin_pvalues(mean: float, se: float, df: float, margin: float) -> MarginPValues:
    """One-sided t p-values against ``-margin`` for an oriented mean difference.

    ``t = (mean + margin) / se``; ``p_noninferior = P(T >= t)``, ``p_regression = P(T <= t)``.
    Without an estimable standard error (fewer than 2 examples) both are ``nan``; with ``se = 0``
    they are 0 or 1 (0.5 each exactly at the margin).
    """
    if math.isnan(se) or math.isnan(mean):
        return MarginPValues(math.nan, math.nan)
    gap = mean + margin
    if se == 0.0:
        if gap == 0.0:
            return MarginPValues(0.5, 0.5)
        return MarginPValues(0.0, 1.0) if gap > 0 else MarginPValues(1.0, 0.0)
    t = gap / se
    return MarginPValues(_t_cdf(-t, df), _t_cdf(t, df))


def minimum_detectable_effect(se: float, df: float, *, alpha: float, power: float) -> float:
    """Minimum detectable difference of a one-sided level-``alpha`` test at ``power``.

    ``(t_{1-alpha} + t_{power}) * se``: a true mean difference this far beyond the tested bound
    is detected with probability ``power``. For the gate this means: a regression of
    ``margin + mde`` is flagged with probability ``power``, and non-inferiority is shown with
    probability ``power`` at a true difference of ``mde - margin`` (so when ``mde <= margin``
    an unchanged candidate passes with probability ``power``).
    """
    if math.isnan(se) or df < 1:
        return math.inf
    return (t_quantile(1.0 - alpha, df) + t_quantile(power, df)) * se


def required_examples(
    sd: float, margin: float, *, alpha: float = 0.05, power: float = 0.8, n_metrics: int = 1
) -> int:
    """Examples needed to flag a regression of ``2 * margin`` with probability ``power``.

    Normal approximation with the worst-case Holm level ``alpha / n_metrics``:
    ``n = ((z_{1-alpha/k} + z_{power}) * sd / margin) ** 2``, rounded up. The same ``n`` shows
    non-inferiority of an unchanged candidate (true difference 0) with probability ``power``.

    Args:
        sd: Standard deviation of the example-level paired differences.
        margin: Non-inferiority margin (absolute, in the metric's units).
        alpha: One-sided level of each decision.
        power: Target power.
        n_metrics: Metrics in the Holm family.

    Examples:
        >>> required_examples(0.3137, 0.02, n_metrics=2)
        1931
    """
    if sd <= 0 or margin <= 0:
        raise ValueError("sd and margin must be positive")
    z = float(special.ndtri(1.0 - alpha / n_metrics)) + float(special.ndtri(power))
    return math.ceil((z * sd / margin) ** 2)
