"""One metric of the eval gate: the non-inferiority and regression tests against its margin.

Pure numbers on the example-level means of the two runs (no dataframes). The choice of test:

* binary metric, one sample per example on both sides → Tango's score test and interval
  (:func:`~analysis.stats.noninferiority.tango_test`), exact McNemar for the descriptive
  two-sided p-value;
* any other metric → the score test with the null-restricted variance on the support of the
  scores (:func:`~analysis.stats.noninferiority.score_test`), with the lattice floor when the
  differences live on a lattice (several samples per example, Likert steps);
* continuous scores off any lattice with ``n < 25 g²`` (``g`` the skewness of the paired
  differences): the one-sided decision on the skewed side (pass for ``g < 0``, regression for
  ``g > 0``) is withheld — ``inconclusive`` with the reason;
* ``method="bootstrap"``: the margin p-values come from resampling the null-restricted fit
  (:func:`~analysis.stats.noninferiority.restricted_bootstrap`); the interval shown is the paired
  percentile bootstrap (descriptive).

Estimand: ``delta = E[d]``, the mean over examples of the oriented paired difference
``d = sign × (candidate − reference)`` (positive = candidate better), each example contributing
its mean over samples.

Alpha convention (ICH E9): ``alpha`` is the **two-sided** level. The interval is the two-sided
``1 − alpha`` one, and each one-sided decision (non-inferiority, regression) is a test at
``alpha / 2`` — non-inferiority is shown when the interval's lower bound lies above ``−margin``.

References:
    ICH E9, Statistical Principles for Clinical Trials (1998), section 5.5; ICH E9 / CPMP,
    Points to Consider on Switching between Superiority and Non-inferiority (2000).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from analysis.stats import noninferiority as ni
from analysis.stats import paired

__all__ = [
    "Blocked",
    "MarginTest",
    "infer_support",
    "margin_test",
    "required_examples_score",
    "tango_sds",
]

Blocked = Literal["", "pass", "regression", "both"]


class MarginTest(NamedTuple):
    """The margin tests of one metric (oriented: positive = candidate better).

    Estimand: ``delta = E[d]``, the mean over examples of ``sign × (candidate − reference)``.

    Attributes:
        n: Examples compared.
        mean: ``mean(d)``.
        sd: Observed standard deviation of ``d``.
        ci_lower: Lower bound of the two-sided ``confidence`` interval of ``delta``.
        ci_upper: Upper bound.
        p_two: Two-sided p-value of no difference (descriptive: McNemar exact, paired t or
            bootstrap).
        p_noninferior: p-value of ``H0: delta <= -margin``.
        p_regression: p-value of ``H0: delta >= -margin`` (before Holm).
        null_sd: Standard deviation of one difference under ``delta = -margin`` (the
            restricted MLE, at least the lattice floor).
        skewness: Sample skewness of ``d``.
        mde: Minimum detectable difference ``(z_{1−α/2} sd0 + z_{power} sd) / sqrt(n)`` with
            ``sd0`` the null-restricted sd (capped at the observed one, floor included, when
            the pairs do not all tie): a planning figure.
        n_required: Examples at which a regression of twice the margin is flagged with the
            gate's power (one-sided, Holm worst case ``alpha / (2 n_metrics)``); ``None`` when
            not estimable.
        test: The test used.
        blocked: The decision(s) withheld (``pass``, ``regression``, ``both``) or ``""``.
        reason: Why, in words (``""`` when nothing is withheld).
    """

    n: int
    mean: float
    sd: float
    ci_lower: float
    ci_upper: float
    p_two: float
    p_noninferior: float
    p_regression: float
    null_sd: float
    skewness: float
    mde: float
    n_required: int | None
    test: str
    blocked: Blocked
    reason: str


def infer_support(
    reference: npt.ArrayLike, candidate: npt.ArrayLike, *, binary: bool
) -> ni.ScoreSupport:
    """The support of a metric's scores as seen in two runs' example means.

    A binary metric's scores lie in ``[0, 1]``; a continuous metric's range is the observed one.
    The lattice step of the differences is that of the example means (their values on both
    sides; for a binary metric 0 and 1 included), 0 when they are on no lattice, ``nan`` when
    every mean is the same value. The gate passes a better support, computed from the raw
    scores and the sample counts.
    """
    vals = np.concatenate([np.asarray(reference, float), np.asarray(candidate, float)])
    if binary:
        return ni.ScoreSupport(0.0, 1.0, ni.lattice_step(np.concatenate([vals, [0.0, 1.0]])))
    if vals.size == 0:
        return ni.ScoreSupport(math.nan, math.nan, math.nan)
    return ni.ScoreSupport(float(vals.min()), float(vals.max()), ni.lattice_step(vals))


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def margin_test(
    reference: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    binary: bool,
    sign: int,
    margin: float,
    support: ni.ScoreSupport | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    n_metrics: int = 1,
    method: Literal["t", "bootstrap"] = "t",
    single_sample: bool = True,
    n_resamples: int = 2000,
    seed: int | None = 0,
) -> MarginTest:
    """Test one metric against its margin (see the module docstring for the choice of test).

    Args:
        reference: Example-level means of the reference.
        candidate: Example-level means of the candidate, aligned with ``reference``.
        binary: Whether the metric is binary (0/1 scores).
        sign: +1 when higher is better, −1 when lower is better.
        margin: The non-inferiority margin ``m > 0``.
        support: Range of the scores and lattice step of the differences (default:
            :func:`infer_support`).
        alpha: Two-sided level: the interval is the two-sided ``1 − alpha`` one and each
            one-sided decision is taken at ``alpha / 2``.
        power: Power behind ``mde`` and ``n_required``.
        n_metrics: Metrics in the suite (Holm worst case for ``n_required``).
        method: ``t`` (score tests) or ``bootstrap`` (restricted bootstrap p-values).
        single_sample: Whether both runs have one sample per example (Tango and McNemar for
            binary metrics).
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ValueError("reference and candidate are not aligned")
    d = (cand - ref) * sign
    n = int(d.size)
    confidence = 1.0 - alpha
    t = paired.paired_t(d, confidence=confidence)
    sup = support if support is not None else infer_support(ref, cand, binary=binary)
    width = sup.upper - sup.lower
    nan = math.nan
    g = ni.skewness(d)
    if n < 2:
        reason = f"{n} common example(s): at least 2 are needed"
        return MarginTest(
            n, t.mean, nan, nan, nan, nan, nan, nan, nan, g, math.inf, None, "none", "both", reason
        )
    if not width > margin:
        what = (
            f"every score is {_fmt(sup.lower)} on both sides"
            if width == 0
            else f"the scores span {_fmt(width)}, no more than the margin {_fmt(margin)}"
        )
        reason = f"{what}: the variance under the null cannot be estimated"
        return MarginTest(
            n, t.mean, t.sd, nan, nan, t.pvalue, nan, nan, nan, g, math.inf, None, "none",
            "both", reason,
        )  # fmt: skip
    lower, upper = -width, width
    blocked: Blocked = ""
    reason = ""
    if binary and single_sample:
        wins = int(np.count_nonzero(d > 0))
        losses = int(np.count_nonzero(d < 0))
        st = ni.tango_test(wins, losses, n, margin)
        lo, hi = ni.tango_interval(wins, losses, n, confidence=confidence)
        test = "Tango score"
        p_two = paired.mcnemar_exact(*paired.discordant_counts(ref, cand)).pvalue
        test_two = " + McNemar exact"
    else:
        step = sup.step if math.isfinite(sup.step) else 0.0
        st = ni.score_test(d, margin, lower=lower, upper=upper, step=step)
        lo, hi = ni.score_interval(d, lower=lower, upper=upper, step=step, confidence=confidence)
        test = "restricted score" + (f" (lattice {step:.4g})" if step > 0 else "")
        p_two, test_two = t.pvalue, ""
        if not binary and step <= 0:
            need = ni.skew_min_examples(g)
            if n < need:
                blocked = "pass" if g < 0 else "regression"
                side = "left" if g < 0 else "right"
                reason = (
                    f"paired differences are {side}-skewed (skewness {g:.2f}): the normal "
                    f"approximation needs n >= 25·skewness² = {need:,} examples (Cochran), "
                    f"have {n:,}; {blocked} is not decided"
                )
    p_ni, p_reg = st.p_noninferior, st.p_regression
    if method == "bootstrap":
        p_ni, p_reg = ni.restricted_bootstrap(
            d, margin, lower=lower, upper=upper, n_resamples=n_resamples, seed=seed
        )
        b = paired.paired_bootstrap(d, confidence=confidence, n_resamples=n_resamples, seed=seed)
        lo, hi = b.ci_lower, b.ci_upper
        if not (binary and single_sample):
            tail = min(float(np.mean(b.means <= 0)), float(np.mean(b.means >= 0)))
            p_two = min(1.0, 2.0 * tail)
        test = "restricted bootstrap"
    za = float(special.ndtri(1.0 - alpha / 2.0))
    zb = float(special.ndtri(power))
    null_sd = st.null_sd
    sd = t.sd
    # planning sd under the null: the restricted one, unless the data sit far from the margin
    # (then the fit leans on the support's ends and overstates the spread near the margin)
    plan = null_sd if not sd > 0 else min(null_sd, max(sd, st.floor_sd))
    mde = (za * plan + zb * sd) / math.sqrt(n) if plan > 0 else math.inf
    n_req: int | None = None
    if plan > 0:
        n_req = required_examples_score(
            plan, sd, margin, alpha=alpha / (2.0 * max(n_metrics, 1)), power=power
        )
    return MarginTest(
        n=n,
        mean=t.mean,
        sd=sd,
        ci_lower=lo,
        ci_upper=hi,
        p_two=p_two,
        p_noninferior=p_ni,
        p_regression=p_reg,
        null_sd=null_sd,
        skewness=g,
        mde=mde,
        n_required=n_req,
        test=test + test_two,
        blocked=blocked,
        reason=reason,
    )


# ---------------------------------------------------------------- sample sizes


def tango_sds(discordance: float, delta: float, delta0: float) -> tuple[float, float]:
    """Per-pair standard deviations behind Tango's test: under the null and under the truth.

    Estimand: for paired binary outcomes with ``P(discordant) = discordance`` and true
    difference ``delta = p_win − p_loss``: ``sd_alt = sqrt(discordance − delta²)`` and
    ``sd_null = sqrt(2 q + delta0 − delta0²)`` with ``q`` the large-sample limit of the
    restricted MLE (:func:`~analysis.stats.noninferiority.tango_restricted_losses` at the
    expected counts).

    References:
        Nam (1997), Biometrics 53, 1422–1430; Tango (1998), section 4.
    """
    p_win = (discordance + delta) / 2.0
    p_loss = (discordance - delta) / 2.0
    if p_win < 0 or p_loss < 0 or discordance > 1:
        raise ValueError(f"impossible: discordance {discordance} with difference {delta}")
    q = ni.tango_restricted_losses(p_win, p_loss, 1.0, delta0)
    return math.sqrt(2 * q + delta0 - delta0 * delta0), math.sqrt(discordance - delta * delta)


def required_examples_score(
    sd_null: float, sd_alt: float, gap: float, *, alpha: float, power: float
) -> int:
    """Examples for a one-sided level-``alpha`` score test to reach ``power``.

    ``alpha`` here is the level of the **one-sided** test itself (a planning primitive); the
    gate, whose ``alpha`` is two-sided, calls it with ``alpha / 2`` (``alpha / (2k)`` for the
    Holm worst case over ``k`` metrics).

    Estimand-free planning formula: with the statistic standardised by ``sd_null`` and the
    estimate spread ``sd_alt`` at a truth ``gap`` away from the null,
    ``n = ((z_{1−alpha} sd_null + z_{power} sd_alt) / gap)²``, rounded up.

    References:
        Nam (1997), eq. (9) (paired proportions); the normal-mean case has
        ``sd_null = sd_alt``.

    Examples:
        >>> required_examples_score(0.5, 0.5, 0.1, alpha=0.05, power=0.8)
        155
    """
    if sd_null <= 0 or sd_alt < 0 or gap <= 0:
        raise ValueError("need sd_null > 0, sd_alt >= 0 and gap > 0")
    za = float(special.ndtri(1.0 - alpha))
    zb = float(special.ndtri(power))
    return math.ceil(((za * sd_null + zb * sd_alt) / gap) ** 2)
