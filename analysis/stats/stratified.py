"""Stratified comparison of two arms when the same unit appears in several strata.

The clean analysis compares arms within time strata (blocks of an exposure phase in which the
allocation is constant) and combines the strata with weights fixed by design. A unit active in
several blocks contributes to several strata, so the strata are not independent; the variance is
clustered by unit through influence functions.

Estimand (arm ``a``, strata ``s`` with design weights ``w_s``, ``Σ w_s = 1``)::

    A_a = Σ_s w_s f(μ_{a,s}),        Δ = A_treatment − A_control

with ``f`` the metric as a function of the per-unit means ``μ_{a,s}`` of stratum ``s`` (a mean, or
a ratio of means for per-turn metrics). ``w_s`` is treated as fixed (the share of clean turns or
clean unit-blocks of the stratum over both arms; it is the same for both arms).

Estimator and variance. ``Â_a = Σ_s w_s f(m̄_{a,s})``. Its influence function at unit ``i`` of
arm ``a`` is ``ψ_i = Σ_{s ∋ i} (w_s / n_{a,s}) ∇f(m̄_{a,s})ᵀ (v_{i,s} − m̄_{a,s})`` (``v_{i,s}``: the
unit's aggregates within stratum ``s``), summed over the strata the unit appears in, so the
cross-stratum covariance of a unit's contributions is kept (variance clustered by unit, the
sandwich of Liang and Zeger 1986 on the unit level). ``Var(Â_a) = N_a / (N_a − 1) Σ_i ψ_i²`` with
``N_a`` the distinct units of the arm; with one stratum this is exactly the delta-method variance
``∇fᵀ Σ ∇f / n`` (Deng, Knoblich and Lu 2018). A ramp-moved unit belongs, in each stratum, to
the arm it had there, so it can be control in one stratum and treatment in another: its
influence on the difference is ``ψ_i^t − ψ_i^c``, one cluster per unit, and
``Var(Δ̂) = Var(Â_t) + Var(Â_c) − 2 Cov(Â_t, Â_c)`` with the covariance from the units in both
arms (zero when the arms are disjoint).

Regression adjustment (CUPED/CUPAC; Deng et al. 2013). With unit-level covariates ``h`` (the
unit's pre-period value of the metric and an indicator of pre-period events) the influence
functions of the covariates' stratified means, ``ψ^h_i``, are formed the same way. The adjusted
estimate is ``Δ̂(θ) = Δ̂_f − θᵀ Δ̂_h`` with one ``θ`` across strata,

    θ = (S^hh_t + S^hh_c)⁻¹ (S^hf_t + S^hf_c),      S_a = N_a / (N_a − 1) Σ_i ψ_i ψ_iᵀ,

the coefficient that minimises the estimated ``Var(Δ̂(θ))`` — Deng et al.'s
``θ = Cov(Ȳ, X̄) / Var(X̄)`` applied to the stratified estimator. Randomization makes
``E[Δ̂_h] = 0`` within every stratum, so any fixed ``θ`` leaves the estimand unchanged;
``Var(Δ̂(θ)) = uᵀ (S_t + S_c) u`` with ``u = (1, −θ)`` treats ``θ`` as known (its estimation error
is of order ``1/N``).

References:
    Deng, A., Xu, Y., Kohavi, R., Walker, T. (2013). Improving the sensitivity of online
    controlled experiments by utilizing pre-experiment data. WSDM 2013.
    Deng, A., Knoblich, U., Lu, J. (2018). Applying the Delta Method in Metric Analytics: A
    Practical Guide with Novel Ideas. KDD 2018.
    Liang, K.-Y., Zeger, S. L. (1986). Longitudinal data analysis using generalized linear
    models. Biometrika 73(1), 13–22.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2 as _chi2

from analysis.stats.delta import Statistic
from analysis.stats.effect import ArmEstimate, EffectResult, effect_from_arms
from analysis.stats.moments import Moments

__all__ = [
    "ArmInfluence",
    "StratifiedResult",
    "design_weights",
    "effect_with_covariance",
    "factor",
    "influence_coefficients",
    "scaled",
    "stratified_effect",
    "stratum_values",
    "wald_equal",
]


def design_weights(totals: Mapping[int, float]) -> dict[int, float]:
    """Normalise per-stratum totals (clean turns or unit-blocks of both arms) to weights.

    Strata with a zero or undefined total get no weight; an empty mapping gives ``{}``.
    """
    usable = {s: float(t) for s, t in totals.items() if math.isfinite(t) and t > 0}
    total = sum(usable.values())
    return {s: t / total for s, t in usable.items()} if total > 0 else {}


def influence_coefficients(
    m: Moments, f: Statistic, covariates: Sequence[str], weight: float
) -> npt.NDArray[np.float64]:
    """The linear map from a unit's aggregates in one stratum × arm to its influence.

    Args:
        m: The stratum × arm sufficient statistics (``m.names`` are the unit-level variables).
        f: The metric as a function of the unit-level means.
        covariates: Names of the covariate variables (each enters through its mean).
        weight: The stratum's design weight ``w_s``.

    Returns:
        Matrix ``C`` of shape ``(1 + len(covariates), len(m.names) + 1)``: a unit with
        aggregates ``v`` in this stratum contributes ``C[:, :-1] @ v − C[:, -1]`` to its
        influence-function vector (component 0 the metric, then each covariate).
    """
    k = len(m.names)
    out = np.zeros((1 + len(covariates), k + 1))
    if m.n == 0 or weight == 0:
        return out
    means = m.means
    scale = weight / m.n
    g = f.gradient(m)
    if np.all(np.isfinite(g)):
        out[0, :k] = scale * g
        out[0, k] = scale * float(g @ means)
    for j, name in enumerate(covariates, start=1):
        idx = m.index(name)
        out[j, idx] = scale
        out[j, k] = scale * float(means[idx])
    return out


def stratum_values(m: Moments, f: Statistic, covariates: Sequence[str]) -> npt.NDArray[np.float64]:
    """``(f(m̄), m̄[h_1], ...)`` of one stratum × arm."""
    return np.array([f.value(m), *(m.mean(h) for h in covariates)], dtype=np.float64)


class ArmInfluence(NamedTuple):
    """One arm's stratified estimate and the sums of its units' influence functions.

    Attributes:
        n: Distinct units of the arm in the strata (``N_a``).
        values: ``Σ_s w_s (f(m̄_{a,s}), m̄_{a,s}[h]...)``: the metric, then each covariate.
        cross: ``Σ_i ψ_i ψ_iᵀ`` over the arm's units, shape ``(1 + p, 1 + p)``.
    """

    n: int
    values: npt.NDArray[np.float64]
    cross: npt.NDArray[np.float64]

    @property
    def covariance(self) -> npt.NDArray[np.float64]:
        """``N / (N − 1) Σ ψ ψᵀ``: the clustered covariance of :attr:`values` (NaN if N < 2)."""
        if self.n < 2:
            return np.full(self.cross.shape, np.nan)
        return self.cross * (self.n / (self.n - 1))


class StratifiedResult(NamedTuple):
    """The adjusted and the unadjusted comparison.

    Attributes:
        adjusted: The effect with the regression adjustment (equal to ``unadjusted`` when no
            covariate is used).
        unadjusted: The effect of the metric alone.
        theta: Coefficients of the covariates (empty without adjustment).
    """

    adjusted: EffectResult
    unadjusted: EffectResult
    theta: npt.NDArray[np.float64]


def scaled(
    cross: npt.NDArray[np.float64],
    k_left: npt.NDArray[np.float64],
    k_right: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """``D_l R D_r`` with ``D = diag(sqrt(k))``: raw sums of influence products ``R`` with each
    component's small-sample factor ``k = N/(N − 1)`` of its arm and scope."""
    return np.sqrt(k_left)[:, None] * cross * np.sqrt(k_right)[None, :]


def factor(n: int) -> float:
    """``N / (N − 1)`` (NaN below two units)."""
    return n / (n - 1) if n >= 2 else math.nan


def stratified_effect(
    control: ArmInfluence,
    arm: ArmInfluence,
    *,
    pooled: npt.NDArray[np.float64] | None = None,
    adjust: bool = True,
    alpha: float = 0.05,
    between: npt.NDArray[np.float64] | None = None,
    n_units: int | None = None,
) -> StratifiedResult:
    """Compare two arms' stratified estimates, with and without regression adjustment.

    A unit may appear in both arms (a ramp-moved unit: control in one stratum, treatment in
    another): its influence on the difference is ``ψ_i^arm − ψ_i^control``, one cluster per
    unit. With each arm's small-sample factor ``k_a = N_a / (N_a − 1)``,

        Var(Δ̂) = k_t Σψᵗψᵗ + k_c Σψᶜψᶜ − √(k_t k_c) (Σψᵗψᶜ + Σψᶜψᵗ),

    which with disjoint arms (``between`` zero) is the sum of the arms' variances of before.

    Args:
        control: The control arm (:class:`ArmInfluence`).
        arm: The treatment arm.
        pooled: ``Σ_s w_s`` of each covariate's mean over both arms (the centre of the adjusted
            arm values; it cancels in the effect). Default: the average of the arms' values.
        adjust: Use the covariates (components ``1..p``); False gives the unadjusted effect.
        alpha: 1 − confidence level.
        between: ``Σ_i ψ_i^arm (ψ_i^control)ᵀ`` over units in both arms (``None``: zero).
        n_units: Distinct units of the two arms together (``None``: ``N_c + N_t``); the degrees
            of freedom are capped at ``n_units − 1``.

    Returns:
        The adjusted and unadjusted :class:`~analysis.stats.effect.EffectResult` and ``θ``.
        Degrees of freedom: Satterthwaite's ``V² / (V_c² / (N_c − 1) + V_t² / (N_t − 1))`` with
        ``V`` the variance of the difference and ``V_a`` the arms' variances (Welch's with
        disjoint arms), capped at the number of clusters minus one.
    """
    sc, st = control.covariance, arm.covariance
    p = len(control.values) - 1
    k = 1 + p
    x = np.zeros((k, k)) if between is None else np.asarray(between, dtype=np.float64)
    stc = x * math.sqrt(factor(control.n) * factor(arm.n)) if x.any() else np.zeros((k, k))
    s = sc + st - stc - stc.T
    g = n_units if n_units is not None else control.n + arm.n

    def result(
        u: npt.NDArray[np.float64], centre: npt.NDArray[np.float64] | None, theta0: float
    ) -> EffectResult:
        def est(a: ArmInfluence, cov: npt.NDArray[np.float64]) -> ArmEstimate:
            raw = float(a.values[0])
            value = raw if centre is None else raw + float(u[1:] @ (a.values[1:] - centre))
            return ArmEstimate(a.n, raw, value, max(float(u @ cov @ u), 0.0))

        return effect_with_covariance(
            est(control, sc),
            est(arm, st),
            float(u @ stc @ u),
            alpha=alpha,
            theta=theta0,
            n_units=g,
        )

    one = np.zeros(k)
    one[0] = 1.0
    unadjusted = result(one, None, 0.0)
    theta = np.zeros(p)
    if not adjust or p == 0 or control.n < 2 or arm.n < 2:
        return StratifiedResult(unadjusted, unadjusted, np.zeros(0))
    if not np.all(np.isfinite(s)):
        return StratifiedResult(unadjusted, unadjusted, np.zeros(0))
    hh, hf = s[1:, 1:], s[1:, 0]
    keep = np.diag(hh) > 1e-12 * max(float(np.max(np.abs(np.diag(hh)))), 1e-300)
    if keep.any():
        sub = hh[np.ix_(keep, keep)]
        theta[keep] = np.linalg.pinv(sub, rcond=1e-10) @ hf[keep]
    u = np.concatenate([[1.0], -theta])
    centre = (
        pooled
        if pooled is not None
        else (np.asarray(control.values[1:]) + np.asarray(arm.values[1:])) / 2
    )
    adjusted = result(u, np.asarray(centre, dtype=np.float64), float(theta[0]))
    return StratifiedResult(adjusted, unadjusted, theta)


def effect_with_covariance(
    control: ArmEstimate,
    arm: ArmEstimate,
    cov: float,
    *,
    alpha: float = 0.05,
    theta: float = 0.0,
    n_units: int | None = None,
) -> EffectResult:
    """:func:`~analysis.stats.effect.effect_from_arms` for arm estimates with covariance
    ``cov`` (units in both arms): ``Var(Δ̂) = V_t + V_c − 2 cov``, the relative effect's
    delta-method variance ``(V_t − 2 r cov + r² V_c) / c²`` (``r = arm / control``), and
    Satterthwaite degrees of freedom capped at ``n_units − 1``."""
    if cov == 0.0:
        return effect_from_arms(control, arm, alpha=alpha, theta=theta)
    vc, va = max(control.var, 0.0), max(arm.var, 0.0)
    var = vc + va - 2 * cov
    denom = vc * vc / max(control.n - 1, 1) + va * va / max(arm.n - 1, 1)
    df = var * var / denom if 0 < denom < math.inf and var > 0 else math.inf
    if n_units is not None and n_units >= 2:
        df = min(df, n_units - 1)
    base = effect_from_arms(
        ArmEstimate(control.n, control.raw, control.value, max(var, 0.0) / 2),
        ArmEstimate(arm.n, arm.raw, arm.value, max(var, 0.0) / 2),
        alpha=alpha,
        theta=theta,
        df=df,
    )
    cv = control.value
    cv2 = cv * cv
    if not (math.isfinite(base.se) and cv2 > 0 and math.isfinite(cv2)):
        return base._replace(
            rel_se=math.nan, rel_effect_ci_lower=math.nan, rel_effect_ci_upper=math.nan
        )
    ratio = arm.value / cv
    rel_var = (va - 2 * ratio * cov + ratio * ratio * vc) / cv2
    rel_se = math.sqrt(rel_var) if math.isfinite(rel_var) and rel_var >= 0 else math.nan
    q = (base.effect_ci_upper - base.effect) / base.se if base.se > 0 else math.nan
    return base._replace(
        rel_se=rel_se,
        rel_effect_ci_lower=base.rel_effect - q * rel_se,
        rel_effect_ci_upper=base.rel_effect + q * rel_se,
    )


def wald_equal(
    effects: npt.NDArray[np.float64], cov: npt.NDArray[np.float64]
) -> tuple[float, int, float]:
    """Wald test that all ``effects`` are equal, with their joint covariance ``cov``.

    ``W = (LΔ)ᵀ (L V Lᵀ)⁻¹ (LΔ)`` with ``L`` the successive differences; χ² reference with
    ``len(effects) − 1`` degrees of freedom (a large-sample test: the effects are clustered
    means of many units). Returns ``(W, df, p)``; NaN when undefined.
    """
    d = np.asarray(effects, dtype=np.float64)
    m = d.size
    if m < 2 or not np.all(np.isfinite(d)) or not np.all(np.isfinite(cov)):
        return math.nan, max(m - 1, 0), math.nan
    ell = np.zeros((m - 1, m))
    for j in range(m - 1):
        ell[j, j], ell[j, j + 1] = -1.0, 1.0
    diff = ell @ d
    v = ell @ cov @ ell.T
    try:
        w = float(diff @ np.linalg.solve(v, diff))
    except np.linalg.LinAlgError:
        return math.nan, m - 1, math.nan
    if not math.isfinite(w) or w < 0:
        return math.nan, m - 1, math.nan
    return w, m - 1, float(_chi2.sf(w, m - 1))
