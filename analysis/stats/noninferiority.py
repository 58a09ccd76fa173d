"""Non-inferiority score tests whose variance is the variance *under the null*.

The gate tests ``H0: delta <= -m`` (non-inferiority is shown when it is rejected) and
``H0: delta >= -m`` (a regression beyond the margin is shown when it is rejected) on the
example-level paired differences ``d_i``, oriented so that positive is better. A Wald test
standardises ``mean(d) + m`` by the *observed* standard error; when most pairs tie, that error is
small or zero and an unchanged candidate "proves" non-inferiority (a zero-width interval). The
tests here standardise by the standard error of the distribution **restricted to the null**
``E[d] = -m``: the distribution of the data, reweighted as little as possible (maximum
likelihood) until its mean is ``-m``. That variance never vanishes, because a distribution with
mean ``-m`` on scores that tie at 0 must put mass below ``-m``.

* **Binary metrics, one sample per example** (paired proportions): Tango's (1998) score test,
  whose restricted maximum-likelihood estimate of the share of lost pairs is the root of a
  quadratic (:func:`tango_test`, :func:`tango_interval`).
* **Any other score** — binary with several samples per example, Likert steps, continuous
  scores: the same restricted maximum likelihood over a multinomial whose cells are the observed
  values of ``d`` *plus the two extreme differences the scores allow* (``±(upper − lower)``):
  :func:`restricted_fit`, :func:`score_test`, :func:`score_interval`. On the support
  ``{-1, 0, 1}`` this is exactly Tango's estimate. A cell that was never observed receives mass
  only at an extreme of the support (Karush–Kuhn–Tucker), so an all-tied sample gets the
  restricted variance ``m (R − m)`` (``R`` the width of the score range) instead of 0.
* **Lattices** (several samples per example, Likert steps): a difference of example means lives
  on a lattice of step ``s``; with mean ``-m`` its variance is at least
  ``s² f (1 − f)``, ``f = frac(m / s)`` (``m s − m²`` for ``m < s``): :func:`lattice_floor`.
  The restricted variance on lattice support is never below it; the floor is applied as a guard.
* **Continuous metrics with extreme skew**: the normal approximation fails when
  ``n < 25 g²`` (``g`` the sample skewness of ``d``, Cochran's rule): :func:`skew_min_examples`;
  the gate then says ``inconclusive`` and why.

Estimand throughout: ``delta = E[d]``, the mean over examples of the paired difference
(candidate − reference, oriented; each example contributes its mean over samples).

References:
    Tango, T. (1998). Equivalence test and confidence interval for the difference in
    proportions for the paired-sample design. Statistics in Medicine 17, 891–908.
    Nam, J. (1997). Establishing equivalence of two treatments and sample size requirements in
    matched-pairs design. Biometrics 53, 1422–1430.
    Owen, A. B. (2001). Empirical Likelihood, ch. 2–3 (the restricted multinomial MLE and its
    Lagrange form ``p_j = w_j / (1 + t (v_j − delta0))``).
    Hall, P. and Presnell, B. (1999). Intentionally biased bootstrap methods. JRSS B 61,
    143–158 (resampling from the null-restricted weights).
    Cochran, W. G. (1977). Sampling Techniques, 3rd ed., §2.15; Sugden, R. A., Smith, T. M. F.
    and Jones, R. P. (2000). Cochran's rule for simple random sampling. JRSS B 62, 787–793.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from analysis.stats._roots import invert_score

__all__ = [
    "RestrictedFit",
    "ScoreSupport",
    "ScoreTest",
    "lattice_floor",
    "lattice_step",
    "restricted_bootstrap",
    "restricted_fit",
    "score_interval",
    "score_test",
    "skew_min_examples",
    "skewness",
    "tango_interval",
    "tango_restricted_losses",
    "tango_test",
]

FloatArray = npt.NDArray[np.float64]

#: Cochran's constant: the normal approximation of a mean needs ``n >= 25 g²``.
COCHRAN = 25.0


class ScoreSupport(NamedTuple):
    """What the scores of one metric can be: their range and the lattice of the differences.

    Attributes:
        lower: Smallest possible score (0 for a binary metric).
        upper: Largest possible score (1 for a binary metric).
        step: Lattice step of the example-level paired differences (``1/k`` for a binary
            metric with ``k`` samples per example; 0 for continuous scores without a lattice).
    """

    lower: float
    upper: float
    step: float


class RestrictedFit(NamedTuple):
    """The maximum-likelihood distribution of ``d`` restricted to ``E[d] = delta0``.

    Estimand: the variance of one example's paired difference under the null
    ``E[d] = delta0``, estimated by the multinomial MLE on the observed values plus the two
    extreme values of the support, subject to the mean constraint.

    Attributes:
        delta0: The null mean.
        values: Distinct observed values of ``d`` (sorted).
        weights: Their restricted probabilities.
        lower: Lower end of the support (an extra cell).
        upper: Upper end of the support (an extra cell).
        mass_lower: Probability put on ``lower`` (0 unless the observed values cannot reach
            ``delta0`` cheaply enough).
        mass_upper: Probability put on ``upper``.
        variance: ``sum p_j (v_j − delta0)²`` over every cell: the variance under the null.
        tilt: The Lagrange multiplier ``t`` of ``p_j = w_j / (1 + t (v_j − delta0))``.
    """

    delta0: float
    values: FloatArray
    weights: FloatArray
    lower: float
    upper: float
    mass_lower: float
    mass_upper: float
    variance: float
    tilt: float


class ScoreTest(NamedTuple):
    """Score test of ``H0: E[d] = -margin`` with the null-restricted variance.

    Estimand: ``delta = E[d]`` (oriented: positive is better). ``statistic =
    (mean + margin) / sqrt(null_variance / n)`` is compared with the standard normal.

    Attributes:
        n: Examples (pairs).
        mean: ``mean(d)``.
        sd: Observed standard deviation of ``d`` (``ddof=1``; descriptive).
        margin: The margin ``m`` (the null is ``delta = -m``).
        null_sd: Standard deviation of one difference under the null (restricted MLE, at
            least the lattice floor).
        floor_sd: The lattice floor's standard deviation (0 without a lattice).
        statistic: The score statistic.
        p_noninferior: ``P(Z >= statistic)``: p-value of ``H0: delta <= -m``.
        p_regression: ``P(Z <= statistic)``: p-value of ``H0: delta >= -m``.
    """

    n: int
    mean: float
    sd: float
    margin: float
    null_sd: float
    floor_sd: float
    statistic: float
    p_noninferior: float
    p_regression: float


def _nan_test(n: int, mean: float, margin: float) -> ScoreTest:
    nan = math.nan
    return ScoreTest(n, mean, nan, margin, nan, 0.0, nan, nan, nan)


# ---------------------------------------------------------------- Tango (paired proportions)


def tango_restricted_losses(wins: float, losses: float, n: float, delta0: float) -> float:
    """Restricted MLE of the share of lost pairs under ``p_win − p_loss = delta0`` (Tango 1998).

    Estimand: ``p_loss`` (pairs the candidate lost: reference 1, candidate 0 for a
    higher-is-better metric) of the multinomial of paired outcomes, maximised under the null
    constraint. Closed form: the positive root of ``A q² + B q + C = 0`` with ``A = 2n``,
    ``B = −wins − losses + (2n − wins + losses) delta0``, ``C = −losses delta0 (1 − delta0)``.
    Counts may be expected counts (``n`` times probabilities), which gives the limit used in
    sample-size formulas.

    References:
        Tango (1998), eq. (4); in his notation ``x12 = wins``, ``x21 = losses``.

    Examples:
        >>> round(tango_restricted_losses(0, 0, 200, -0.005), 6)
        0.005
    """
    a = 2.0 * n
    b = -wins - losses + (2.0 * n - wins + losses) * delta0
    c = -losses * delta0 * (1.0 - delta0)
    disc = max(b * b - 4.0 * a * c, 0.0)
    return (math.sqrt(disc) - b) / (2.0 * a)


def _tango_z(wins: int, losses: int, n: int, delta0: float) -> tuple[float, float]:
    q = tango_restricted_losses(wins, losses, n, delta0)
    var = 2.0 * q + delta0 - delta0 * delta0  # variance of one pair's difference under H0
    gap = (wins - losses) / n - delta0
    if var <= 0.0:
        return (math.copysign(math.inf, gap) if gap else 0.0), 0.0
    return gap / math.sqrt(var / n), var


def tango_test(wins: int, losses: int, n: int, margin: float) -> ScoreTest:
    """Tango's score test of ``H0: p_win − p_loss = −margin`` for paired binary outcomes.

    Estimand: ``delta = p_win − p_loss``, the difference of the paired proportions (candidate
    − reference, oriented so that a win is better). The statistic is
    ``(wins − losses − n delta0) / sqrt(n (2 q + delta0 − delta0²))`` with ``q`` the restricted
    MLE of ``p_loss`` (:func:`tango_restricted_losses`) and ``delta0 = −margin``. With every
    pair tied it is ``sqrt(n m / (1 − m))``, never infinite.

    Args:
        wins: Pairs the candidate won (oriented).
        losses: Pairs the candidate lost.
        n: All pairs (ties included).
        margin: Non-inferiority margin ``m`` in ``(0, 1)``.

    References:
        Tango (1998), Statistics in Medicine 17, 891–908.

    Examples:
        >>> round(tango_test(0, 0, 200, 0.005).p_noninferior, 4)
        0.158
    """
    if wins < 0 or losses < 0 or wins + losses > n:
        raise ValueError(
            f"need 0 <= wins, losses and wins + losses <= n, got {wins}, {losses}, {n}"
        )
    if not 0.0 < margin < 1.0:
        raise ValueError(f"a binary margin must lie in (0, 1), got {margin}")
    mean = (wins - losses) / n if n else math.nan
    if n < 2:
        return _nan_test(n, mean, margin)
    sd = math.sqrt(max((wins + losses) / n - mean * mean, 0.0) * n / (n - 1))
    z, var = _tango_z(wins, losses, n, -margin)
    return ScoreTest(n, mean, sd, margin, math.sqrt(var), 0.0, z, _upper(z), _lower(z))


def tango_interval(wins: int, losses: int, n: int, *, confidence: float) -> tuple[float, float]:
    """Two-sided Tango score interval of ``p_win − p_loss``: the ``delta0`` not rejected.

    ``{delta0 : |Z(delta0)| <= z_{(1+confidence)/2}}``, found by root finding on each side
    of the estimate. Its lower bound is above ``−m`` exactly when :func:`tango_test` rejects
    ``H0: delta <= −m`` at level ``(1 − confidence) / 2``.

    References:
        Tango (1998), section 3.
    """
    if n < 2:
        return math.nan, math.nan
    z = float(special.ndtri(0.5 + confidence / 2.0))
    mean = (wins - losses) / n

    def null_sd(delta0: float) -> float:
        return math.sqrt(max(_tango_z(wins, losses, n, delta0)[1], 0.0))

    guess = z * math.sqrt(max((wins + losses) / n, 1.0 / n) / n)
    return invert_score(null_sd, mean, n, -1.0, 1.0, z, guess)


# ---------------------------------------------------------------- general restricted MLE


def _group(d: npt.ArrayLike) -> tuple[FloatArray, FloatArray, int, float]:
    arr = np.asarray(d, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-d array of paired differences, got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("paired differences contain NaN or infinite values")
    values, counts = np.unique(arr, return_counts=True)
    n = int(arr.size)
    mean = float(arr.mean()) if n else math.nan
    return values, counts.astype(np.float64), n, mean


def _dot(a: FloatArray, b: FloatArray) -> float:
    """Inner product without BLAS: a threaded ``np.dot`` spins on a busy machine (10× slower)."""
    return float(np.einsum("i,i->", a, b))


def _solve_tilt(
    we: FloatArray, wee: FloatArray, e: FloatArray, lo: float, hi: float, start: float
) -> float:
    """Root of ``h(t) = sum w e / (1 + t e)`` (decreasing) in ``(lo, hi)``: safeguarded Newton.

    ``we = w e`` and ``wee = w e²`` are precomputed; ``start`` (a previous root, when solving
    for nearby ``delta0``) is used when it lies inside the bracket.
    """
    t = start if lo < start < hi else 0.0
    a, b = lo, hi
    scale = float(np.sum(np.abs(we))) or 1.0
    for _ in range(200):
        r = 1.0 / (1.0 + t * e)
        h = float(_dot(we, r))
        if h > 0:
            a = t
        else:
            b = t
        if abs(h) <= 1e-14 * scale:
            break
        hp = -float(_dot(wee, r * r))
        step = t - h / hp if hp < 0 else math.nan
        new = step if a < step < b else 0.5 * (a + b)
        if abs(new - t) <= 1e-15 * max(1.0, abs(t)):
            break
        t = new
    return t


def _fit(
    values: FloatArray,
    counts: FloatArray,
    delta0: float,
    lower: float,
    upper: float,
    start: float = 0.0,
) -> RestrictedFit:
    n = float(counts.sum())
    w = counts / n
    e = values - delta0
    we = w * e
    h0 = float(we.sum())
    mass_lo = mass_hi = 0.0
    t = 0.0
    if h0 > 0.0:
        t_max = 1.0 / (delta0 - lower)
        reaches = bool(values[0] <= lower)
        h_max = math.inf if reaches else float(_dot(we, 1.0 / (1.0 + t_max * e)))
        if h_max >= 0.0 and not reaches:
            t, mass_lo = t_max, h_max / (delta0 - lower)
        else:
            t = _solve_tilt(we, we * e, e, 0.0, t_max, start)
    elif h0 < 0.0:
        t_min = -1.0 / (upper - delta0)
        reaches = bool(values[-1] >= upper)
        h_min = -math.inf if reaches else float(_dot(we, 1.0 / (1.0 + t_min * e)))
        if h_min <= 0.0 and not reaches:
            t, mass_hi = t_min, -h_min / (upper - delta0)
        else:
            t = _solve_tilt(we, we * e, e, t_min, 0.0, start)
    p = w / (1.0 + t * e)
    var = float(_dot(p * e, e))
    var += mass_lo * (lower - delta0) ** 2 + mass_hi * (upper - delta0) ** 2
    return RestrictedFit(delta0, values, p, lower, upper, mass_lo, mass_hi, var, t)


def restricted_fit(d: npt.ArrayLike, delta0: float, *, lower: float, upper: float) -> RestrictedFit:
    """Maximum-likelihood distribution of ``d`` under the constraint ``E[d] = delta0``.

    Estimand: the variance of ``d`` under the null ``E[d] = delta0``. The model is the
    multinomial on the distinct observed values of ``d`` and the two ends ``lower``/``upper``
    of the support (the most negative and most positive differences the scores allow). The
    maximiser has the Lagrange form ``p_j = w_j / (1 + t (v_j − delta0))`` (``w_j`` the
    observed shares); an unobserved end gets mass only when the observed values cannot bring
    the mean to ``delta0`` at a smaller likelihood cost. On ``{−1, 0, 1}`` this is Tango's
    restricted estimate (:func:`tango_restricted_losses`).

    Args:
        d: Paired differences (one per example).
        delta0: The null mean, strictly inside ``(lower, upper)``.
        lower: Smallest possible difference (``−(score max − score min)``).
        upper: Largest possible difference.

    References:
        Owen (2001), Empirical Likelihood, §2.9 and §3.14 (known support); Tango (1998).
    """
    values, counts, n, _ = _group(d)
    if n == 0:
        raise ValueError("restricted_fit needs at least one difference")
    if not lower < delta0 < upper:
        raise ValueError(f"delta0={delta0} must lie strictly inside ({lower}, {upper})")
    if values[0] < lower - 1e-9 * (upper - lower) or values[-1] > upper + 1e-9 * (upper - lower):
        raise ValueError(f"differences outside the support [{lower}, {upper}]")
    return _fit(values, counts, delta0, lower, upper)


def lattice_floor(margin: float, step: float) -> float:
    """Smallest variance of a difference on the lattice ``step·Z`` with mean ``−margin``.

    Estimand: a lower bound of the null variance. With ``f = frac(margin / step)`` the minimum
    is ``step² f (1 − f)`` (two adjacent lattice points), i.e. ``margin·step − margin²`` when
    ``margin < step``; 0 without a lattice (``step = 0``).

    Examples:
        >>> round(lattice_floor(0.1, 1.0), 6)
        0.09
    """
    if step <= 0.0 or not math.isfinite(step):
        return 0.0
    f = margin / step - math.floor(margin / step)
    return step * step * f * (1.0 - f)


def lattice_step(values: npt.ArrayLike, *, max_points: int = 1000) -> float:
    """Step ``s`` of the coarsest lattice ``a + s·Z`` holding every value; 0 when there is none.

    The greatest common divisor of the gaps between the sorted distinct values (Euclid's
    algorithm with a tolerance of ``1e-9`` of their span), provided every value is a multiple of
    it from the smallest (to ``1e-6`` of a step) and the lattice has at most ``max_points``
    points between the smallest and the largest value — otherwise the scores are treated as
    continuous (0). With fewer than two distinct values the step is unknown: ``nan``.

    Examples:
        >>> lattice_step([1.0, 3.0, 5.0, 4.0])
        1.0
        >>> lattice_step([0.0, 0.5, 1.0])
        0.5
    """
    v = np.unique(np.asarray(values, dtype=np.float64))
    if v.size < 2:
        return math.nan
    span = float(v[-1] - v[0])
    tol = 1e-9 * span
    smallest = span / max_points
    step = 0.0
    for gap in np.diff(v).tolist():
        a, b = (gap, step) if gap > step else (step, gap)
        while b > tol:
            r = math.fmod(a, b)
            if b - r <= tol:
                r = 0.0
            a, b = b, r
        step = a
        if step < smallest * (1 - 1e-9):
            return 0.0
    k = (v - v[0]) / step
    if float(np.max(np.abs(k - np.round(k)))) > 1e-6:
        return 0.0
    return step


def _floor_for(margin: float, step: float) -> float:
    return lattice_floor(margin, step) if step > 0.0 and math.isfinite(step) else 0.0


def _score_z(
    values: FloatArray,
    counts: FloatArray,
    n: int,
    mean: float,
    delta0: float,
    lower: float,
    upper: float,
    step: float,
    start: float = 0.0,
) -> tuple[float, float, float, float]:
    """``(Z, null variance, lattice floor, tilt)`` at ``delta0``."""
    fit = _fit(values, counts, delta0, lower, upper, start)
    floor = _floor_for(-delta0, step)
    var = max(fit.variance, floor)
    gap = mean - delta0
    if var <= 0.0:
        return (math.copysign(math.inf, gap) if gap else 0.0), var, floor, fit.tilt
    return gap / math.sqrt(var / n), var, floor, fit.tilt


def _upper(z: float) -> float:
    return float(special.ndtr(-z))


def _lower(z: float) -> float:
    return float(special.ndtr(z))


def score_test(
    d: npt.ArrayLike, margin: float, *, lower: float, upper: float, step: float = 0.0
) -> ScoreTest:
    """Score test of ``H0: E[d] = −margin`` with the null-restricted variance.

    Estimand: ``delta = E[d]``, the mean paired difference (oriented: positive is better).
    ``Z = (mean(d) + m) / sqrt(V0 / n)`` where ``V0`` is the variance of the restricted MLE
    (:func:`restricted_fit` at ``delta0 = −m``), at least the lattice floor
    (:func:`lattice_floor`) when ``step > 0``. ``p_noninferior = P(N(0,1) >= Z)`` and
    ``p_regression = 1 − p_noninferior``.

    Args:
        d: Example-level paired differences (oriented).
        margin: The margin ``m > 0``.
        lower: Smallest possible difference; must be below ``−m``.
        upper: Largest possible difference.
        step: Lattice step of ``d`` (0: continuous scores, no floor).

    References:
        Tango (1998) for the binary case; Owen (2001) for the restricted MLE.

    Examples:
        >>> r = score_test([0.0] * 500, 0.1, lower=-4.0, upper=4.0, step=1.0)
        >>> round(r.null_sd, 4), r.p_noninferior < 0.05
        (0.6245, True)
    """
    values, counts, n, mean = _group(d)
    if margin <= 0.0:
        raise ValueError(f"margin must be positive, got {margin}")
    if not lower < -margin < upper:
        raise ValueError(f"-margin={-margin} must lie strictly inside ({lower}, {upper})")
    if n < 2:
        return _nan_test(n, mean, margin)
    sd = float(np.sqrt(_dot(counts, (values - mean) ** 2) / (n - 1)))
    z, var, floor, _ = _score_z(values, counts, n, mean, -margin, lower, upper, step)
    return ScoreTest(n, mean, sd, margin, math.sqrt(var), math.sqrt(floor), z, _upper(z), _lower(z))


def score_interval(
    d: npt.ArrayLike, *, lower: float, upper: float, step: float = 0.0, confidence: float
) -> tuple[float, float]:
    """Two-sided score interval of ``E[d]``: every ``delta0`` the score test does not reject.

    ``{delta0 in (lower, upper) : |Z(delta0)| <= z_{(1+confidence)/2}}`` with the restricted
    variance (and lattice floor) re-estimated at each ``delta0``. Its lower bound lies above
    ``−m`` exactly when :func:`score_test` rejects ``H0: delta <= −m`` at level
    ``(1 − confidence) / 2``.

    References:
        Tango (1998), section 3 (the same inversion for paired proportions).
    """
    values, counts, n, mean = _group(d)
    if n < 2:
        return math.nan, math.nan
    z = float(special.ndtri(0.5 + confidence / 2.0))

    last = [0.0]  # the previous tilt: a warm start for the next, nearby delta0

    def null_sd(delta0: float) -> float:
        _, var, _, last[0] = _score_z(values, counts, n, mean, delta0, lower, upper, step, last[0])
        return math.sqrt(max(var, 0.0))

    sd = float(np.sqrt(_dot(counts, (values - mean) ** 2) / n))
    guess = z * max(sd, step, 1e-6 * (upper - lower)) / math.sqrt(n)
    return invert_score(null_sd, mean, n, lower, upper, z, guess)


# ---------------------------------------------------------------- skewness rule


def skewness(d: npt.ArrayLike) -> float:
    """Sample skewness ``g1 = m3 / m2^{3/2}`` of ``d`` (0 when ``d`` has no spread).

    Estimand: the third standardised moment of the paired differences. Equal to
    ``scipy.stats.skew(d, bias=True)``.
    """
    arr = np.asarray(d, dtype=np.float64)
    if arr.size < 3:
        return 0.0
    x = arr - arr.mean()
    m2 = float(np.mean(x * x))
    if m2 <= 0.0:
        return 0.0
    return float(np.mean(x * x * x) / m2**1.5)


def skew_min_examples(g: float) -> int:
    """Examples needed for the normal approximation of a mean with skewness ``g``: ``25 g²``.

    Cochran's rule (the sampling distribution of the mean is close enough to normal for a
    two-sided 95% interval when ``n > 25 G1²``). The gate applies it to continuous scores that
    are not on a lattice; the simulations in ``benchmarks/sim_gate.py`` show what it buys.

    References:
        Cochran (1977), Sampling Techniques, §2.15; Sugden, Smith and Jones (2000).

    Examples:
        >>> skew_min_examples(3.0)
        225
    """
    return math.ceil(COCHRAN * g * g)


# ---------------------------------------------------------------- restricted bootstrap


def restricted_bootstrap(
    d: npt.ArrayLike,
    margin: float,
    *,
    lower: float,
    upper: float,
    n_resamples: int = 2000,
    seed: int | None = 0,
    chunk: int = 5_000_000,
) -> tuple[float, float]:
    """Bootstrap p-values of the margin hypotheses, resampling from the null-restricted fit.

    Estimand: ``delta = E[d]``. The resamples are drawn from the restricted MLE at
    ``delta0 = −m`` (:func:`restricted_fit`: observed values reweighted, plus the extreme cells),
    so their mean is ``−m`` by construction and ties cannot make the null look certain:
    ``p_noninferior = (1 + #{mean* >= mean}) / (B + 1)``,
    ``p_regression = (1 + #{mean* <= mean}) / (B + 1)``.

    Returns:
        ``(p_noninferior, p_regression)``; ``nan`` with fewer than 2 examples.

    References:
        Hall and Presnell (1999), Intentionally biased bootstrap methods, JRSS B 61, 143–158.
    """
    values, counts, n, mean = _group(d)
    if n < 2:
        return math.nan, math.nan
    fit = _fit(values, counts, -margin, lower, upper)
    cells = np.concatenate([fit.values, [lower, upper]])
    probs = np.concatenate([fit.weights, [fit.mass_lower, fit.mass_upper]])
    probs = np.clip(probs, 0.0, None)
    probs /= probs.sum()
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    per = max(1, chunk // max(cells.size, 1))
    for start in range(0, n_resamples, per):
        stop = min(n_resamples, start + per)
        draws = rng.multinomial(n, probs, size=stop - start)
        means[start:stop] = draws @ cells / n
    tol = 1e-12 * max(1.0, abs(mean))
    ge = int(np.count_nonzero(means >= mean - tol))
    le = int(np.count_nonzero(means <= mean + tol))
    return (1 + ge) / (n_resamples + 1), (1 + le) / (n_resamples + 1)
