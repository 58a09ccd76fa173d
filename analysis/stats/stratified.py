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
``∇fᵀ Σ ∇f / n`` (Deng, Knoblich and Lu 2018). Crossover units are excluded from clean data,
so the arms hold disjoint units and ``Var(Δ̂) = Var(Â_t) + Var(Â_c)``.

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

from analysis.stats.delta import Statistic
from analysis.stats.effect import ArmEstimate, EffectResult, effect_from_arms
from analysis.stats.moments import Moments

__all__ = [
    "ArmInfluence",
    "StratifiedResult",
    "design_weights",
    "influence_coefficients",
    "stratified_effect",
    "stratum_values",
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


def stratified_effect(
    control: ArmInfluence,
    arm: ArmInfluence,
    *,
    pooled: npt.NDArray[np.float64] | None = None,
    adjust: bool = True,
    alpha: float = 0.05,
) -> StratifiedResult:
    """Compare two arms' stratified estimates, with and without regression adjustment.

    Args:
        control: The control arm (:class:`ArmInfluence`).
        arm: The treatment arm.
        pooled: ``Σ_s w_s`` of each covariate's mean over both arms (the centre of the adjusted
            arm values; it cancels in the effect). Default: the average of the arms' values.
        adjust: Use the covariates (components ``1..p``); False gives the unadjusted effect.
        alpha: 1 − confidence level.

    Returns:
        The adjusted and unadjusted :class:`~analysis.stats.effect.EffectResult` (Welch–
        Satterthwaite degrees of freedom from the distinct units of each arm) and ``θ``.
    """
    sc, st = control.covariance, arm.covariance
    p = len(control.values) - 1
    fc, ft = float(control.values[0]), float(arm.values[0])
    plain_c = ArmEstimate(control.n, fc, fc, float(sc[0, 0]))
    plain_t = ArmEstimate(arm.n, ft, ft, float(st[0, 0]))
    unadjusted = effect_from_arms(plain_c, plain_t, alpha=alpha)
    theta = np.zeros(p)
    if not adjust or p == 0 or control.n < 2 or arm.n < 2:
        return StratifiedResult(unadjusted, unadjusted, np.zeros(0))
    s = sc + st
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

    def adjusted_arm(a: ArmInfluence, cov: npt.NDArray[np.float64]) -> ArmEstimate:
        raw = float(a.values[0])
        value = raw - float(theta @ (a.values[1:] - centre))
        return ArmEstimate(a.n, raw, value, max(float(u @ cov @ u), 0.0))

    adjusted = effect_from_arms(
        adjusted_arm(control, sc),
        adjusted_arm(arm, st),
        alpha=alpha,
        theta=float(theta[0]),
    )
    return StratifiedResult(adjusted, unadjusted, theta)
