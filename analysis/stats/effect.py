"""Comparison of a treatment arm with the control arm on unit-level sufficient statistics.

Estimands (for an arm ``a`` the estimate is ``f(mean_a)`` with ``f`` a :class:`Statistic`):

- absolute effect ``f(mean_arm) − f(mean_control)`` with a Welch confidence interval
  (Welch–Satterthwaite degrees of freedom; for ``f`` = a mean this is exactly Welch's t-test);
- relative effect ``f(mean_arm) / f(mean_control) − 1`` with a delta-method interval (arms are
  independent, so ``Var(rel) ≈ V_arm / c² + a² V_control / c⁴``);
- optionally CUPED: with a pre-exposure covariate ``h`` per arm, the adjusted arm estimate is
  ``f_a − θ (h_a − h_pooled)`` and the effect ``Δf − θ Δh``. ``θ`` is the pooled within-arm
  regression slope of the linearised metric on the linearised covariate,
  ``θ = Σ_a (n_a − 1) Cov_a(f, h) / Σ_a (n_a − 1) Var_a(h)``; for a plain mean with a
  scalar covariate this makes the point estimate identical to the treatment coefficient of the OLS
  ``y ~ 1 + treatment + covariate``. Variances treat ``θ`` as known (standard CUPED practice;
  its estimation error is of order 1/n).

References:
    Welch, B. L. (1947). The generalization of "Student's" problem when several different
    population variances are involved. Biometrika 34(1–2), 28–35.
    Deng, A., Xu, Y., Kohavi, R., Walker, T. (2013). Improving the sensitivity of online
    controlled experiments by utilizing pre-experiment data. WSDM 2013.
    Deng, A., Knoblich, U., Lu, J. (2018). Applying the Delta Method in Metric Analytics.
    KDD 2018.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from scipy import stats as _st

from analysis.stats.delta import Statistic, linear_cov
from analysis.stats.moments import Moments

__all__ = ["ArmEstimate", "EffectResult", "arm_estimates", "compare", "effect_from_arms"]


class ArmEstimate(NamedTuple):
    """One arm's (possibly CUPED-adjusted) estimate.

    Attributes:
        n: Units in the arm.
        raw: Unadjusted estimate ``f(mean)``.
        value: Estimate used for the effect (CUPED-adjusted when a covariate is given).
        var: Variance of ``value`` (delta method).
    """

    n: int
    raw: float
    value: float
    var: float


class EffectResult(NamedTuple):
    """Arm minus control, absolute and relative.

    Attributes:
        n_control: Units in the control arm.
        n_arm: Units in the treatment arm.
        control_mean: Unadjusted control estimate.
        arm_mean: Unadjusted treatment estimate.
        effect: Arm − control (CUPED-adjusted when a covariate was used).
        se: Standard error of ``effect``.
        effect_ci_lower: Lower confidence bound of ``effect``.
        effect_ci_upper: Upper confidence bound of ``effect``.
        rel_effect: Arm / control − 1 on the (adjusted) arm estimates.
        rel_se: Delta-method standard error of ``rel_effect``.
        rel_effect_ci_lower: Lower bound of ``rel_effect``.
        rel_effect_ci_upper: Upper bound of ``rel_effect``.
        pvalue: Two-sided p-value of ``effect = 0``.
        df: Degrees of freedom of the t reference (``inf``: normal).
        theta: CUPED coefficient (0 without a covariate).
    """

    n_control: int
    n_arm: int
    control_mean: float
    arm_mean: float
    effect: float
    se: float
    effect_ci_lower: float
    effect_ci_upper: float
    rel_effect: float
    rel_se: float
    rel_effect_ci_lower: float
    rel_effect_ci_upper: float
    pvalue: float
    df: float
    theta: float


_NAN = float("nan")


def _arm(m: Moments, f: Statistic, h: Statistic | None, theta: float, h_pool: float) -> ArmEstimate:
    raw = f.value(m)
    var = linear_cov(m, f, f)
    if h is None or theta == 0.0:
        return ArmEstimate(m.n, raw, raw, var)
    adj = raw - theta * (h.value(m) - h_pool)
    v = var - 2 * theta * linear_cov(m, f, h) + theta * theta * linear_cov(m, h, h)
    return ArmEstimate(m.n, raw, adj, max(v, 0.0))


def cuped_theta(control: Moments, arm: Moments, f: Statistic, h: Statistic) -> float:
    """Pooled within-arm slope of the linearised metric on the linearised covariate."""
    num = den = 0.0
    for m in (control, arm):
        if m.n < 2:
            continue
        w = m.n * (m.n - 1)  # turns g'Σg/n into the within-arm sum of centred products
        num += w * linear_cov(m, f, h)
        den += w * linear_cov(m, h, h)
    if not (den > 0) or not math.isfinite(num):
        return 0.0
    return num / den


def arm_estimates(
    control: Moments,
    arm: Moments,
    f: Statistic,
    *,
    covariate: Statistic | None = None,
) -> tuple[ArmEstimate, ArmEstimate, float]:
    """The two arms' (CUPED-adjusted when ``covariate`` is given) estimates, and ``θ``."""
    theta, h_pool = 0.0, 0.0
    if covariate is not None:
        theta = cuped_theta(control, arm, f, covariate)
        h_pool = covariate.value(control + arm)
    c = _arm(control, f, covariate, theta, h_pool)
    a = _arm(arm, f, covariate, theta, h_pool)
    return c, a, theta


def compare(
    control: Moments,
    arm: Moments,
    f: Statistic,
    *,
    covariate: Statistic | None = None,
    alpha: float = 0.05,
) -> EffectResult:
    """Compare ``f`` between two arms, optionally CUPED-adjusted by ``covariate``.

    Args:
        control: Unit-level sufficient statistics of the control arm.
        arm: Unit-level sufficient statistics of the treatment arm.
        f: The metric as a function of unit-level means.
        covariate: Pre-exposure covariate as a function of unit-level means (CUPED), or None.
        alpha: 1 − confidence level of the intervals.

    Returns:
        The :class:`EffectResult`; fields are NaN when an arm has fewer than 2 units.
    """
    c, a, theta = arm_estimates(control, arm, f, covariate=covariate)
    return effect_from_arms(c, a, alpha=alpha, theta=theta)


def effect_from_arms(
    control: ArmEstimate,
    arm: ArmEstimate,
    *,
    alpha: float = 0.05,
    theta: float = 0.0,
    df: float | None = None,
) -> EffectResult:
    """Effect, relative effect and their intervals from two independent arm estimates.

    ``df=None`` uses Welch–Satterthwaite degrees of freedom from the arms' sizes; pass
    ``math.inf`` for a normal reference.
    """
    vc, va = max(control.var, 0.0), max(arm.var, 0.0)  # a constant column: -1e-12 by rounding
    effect = arm.value - control.value
    var = vc + va
    if not (math.isfinite(var) and control.n >= 2 and arm.n >= 2):
        return EffectResult(
            control.n, arm.n, control.raw, arm.raw, effect, _NAN, _NAN, _NAN,
            _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, theta,
        )  # fmt: skip
    if df is None:
        denom = vc * vc / (control.n - 1) + va * va / (arm.n - 1)
        df = var * var / denom if 0 < denom < math.inf else math.inf
    se = math.sqrt(var)
    q = (
        float(_st.t.ppf(1 - alpha / 2, df))
        if math.isfinite(df)
        else float(_st.norm.ppf(1 - alpha / 2))
    )
    if se > 0:
        tstat = effect / se
        p = 2 * float(_st.t.sf(abs(tstat), df) if math.isfinite(df) else _st.norm.sf(abs(tstat)))
    else:
        p = _NAN if effect == 0 else 0.0
    cv = control.value
    cv2 = cv * cv  # products, not ``**``: float ``**`` raises on overflow, ``*`` gives inf
    if cv2 > 0 and math.isfinite(cv2):
        ratio = arm.value / cv
        rel = ratio - 1
        rel_var = (va + ratio * ratio * vc) / cv2
        rel_se = math.sqrt(rel_var) if math.isfinite(rel_var) else _NAN
    else:
        rel, rel_se = _NAN, _NAN
    return EffectResult(
        n_control=control.n,
        n_arm=arm.n,
        control_mean=control.raw,
        arm_mean=arm.raw,
        effect=effect,
        se=se,
        effect_ci_lower=effect - q * se,
        effect_ci_upper=effect + q * se,
        rel_effect=rel,
        rel_se=rel_se,
        rel_effect_ci_lower=rel - q * rel_se,
        rel_effect_ci_upper=rel + q * rel_se,
        pvalue=p,
        df=df,
        theta=theta,
    )
