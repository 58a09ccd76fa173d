"""Combine strata into one estimate without Simpson's paradox.

``analyze`` uses :func:`combine_time_strata` for the ``combined`` row of quantile metrics (the
exposure phases as time strata, design weights, a conservative SE since units appear in several
phases); :func:`combine_strata` (independent strata, inverse-variance weights) is the rule of
0.2, over enrollment cohorts. Moment metrics are
combined over time strata with design weights and unit-clustered variances
(:mod:`analysis.stats.stratified`), because cohorts do not remove confounding by time.

When the allocation changes between phases, pooling units of all phases into one comparison
mixes cohorts enrolled with different treatment shares; if the metric level differs by cohort the
pooled difference is biased (Simpson's paradox). Each stratum is compared within itself and the
stratum estimates are combined with fixed-effect inverse-variance weights
``w_s = 1 / Var(effect_s)``. The combined arm estimates use the same weights, so the combined
effect equals ``Σ w_s effect_s / Σ w_s`` and its variance is ``1 / Σ w_s``. Normal reference.

The estimand is the weighted average of the cohort effects (the common effect when it is the same
in every cohort).

References:
    Borenstein, M., Hedges, L. V., Higgins, J. P. T., Rothstein, H. R. (2009). Introduction to
    Meta-Analysis, ch. 11 (fixed-effect model). Wiley.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from analysis.stats.effect import ArmEstimate, EffectResult, effect_from_arms

__all__ = ["combine_strata", "combine_time_strata"]


def combine_strata(
    strata: Sequence[tuple[ArmEstimate, ArmEstimate]],
    *,
    alpha: float = 0.05,
) -> EffectResult:
    """Inverse-variance combination of ``(control, arm)`` estimates of independent strata.

    Strata where either arm has fewer than 2 units or a zero/undefined variance are skipped.
    """
    usable = [
        (c, a)
        for c, a in strata
        if c.n >= 2 and a.n >= 2 and math.isfinite(c.var + a.var) and c.var + a.var > 0
    ]
    if not usable:
        n_c = sum(c.n for c, _ in strata)
        n_a = sum(a.n for _, a in strata)
        nan = float("nan")
        return effect_from_arms(ArmEstimate(n_c, nan, nan, nan), ArmEstimate(n_a, nan, nan, nan))
    weights = [1.0 / (c.var + a.var) for c, a in usable]
    total = sum(weights)

    def pool(arms: Sequence[ArmEstimate]) -> ArmEstimate:
        return ArmEstimate(
            n=sum(x.n for x in arms),
            raw=sum(w * x.raw for w, x in zip(weights, arms, strict=True)) / total,
            value=sum(w * x.value for w, x in zip(weights, arms, strict=True)) / total,
            var=sum(w * w * x.var for w, x in zip(weights, arms, strict=True)) / (total * total),
        )

    control = pool([c for c, _ in usable])
    arm = pool([a for _, a in usable])
    return effect_from_arms(control, arm, alpha=alpha, df=math.inf)


def combine_time_strata(
    strata: Sequence[tuple[ArmEstimate, ArmEstimate]],
    weights: Sequence[float],
    *,
    alpha: float = 0.05,
) -> EffectResult:
    """Design-weighted combination of per-phase ``(control, arm)`` estimates whose units
    overlap (a unit active in two phases, a ramp-moved unit in both arms).

    Estimand ``Σ_p w_p Δ_p`` with the design weights ``w_p`` (the phases' shares of the clean
    turns, renormalised over the usable phases). The phases' estimates are correlated and their
    covariance is not estimated (a quantile's clustered variance is per group), so the
    standard error is the Cauchy–Schwarz bound ``Σ_p w_p se_p`` (perfect correlation):
    conservative, exact when one phase has all the weight. Normal reference.
    """
    usable = [
        (w, c, a)
        for w, (c, a) in zip(weights, strata, strict=True)
        if w > 0 and c.n >= 2 and a.n >= 2 and math.isfinite(c.var + a.var + c.value + a.value)
    ]
    total = sum(w for w, _, _ in usable)
    if not usable or total <= 0:
        n_c = max((c.n for c, _ in strata), default=0)
        n_a = max((a.n for _, a in strata), default=0)
        nan = float("nan")
        return effect_from_arms(ArmEstimate(n_c, nan, nan, nan), ArmEstimate(n_a, nan, nan, nan))
    ws = [w / total for w, _, _ in usable]
    se = sum(w * math.sqrt(c.var + a.var) for w, (_, c, a) in zip(ws, usable, strict=True))

    def pool(arms: Sequence[ArmEstimate], share: float) -> ArmEstimate:
        return ArmEstimate(
            n=max(x.n for x in arms),
            raw=sum(w * x.raw for w, x in zip(ws, arms, strict=True)),
            value=sum(w * x.value for w, x in zip(ws, arms, strict=True)),
            var=share * se * se,
        )

    vc = sum(w * w * c.var for w, (_, c, _) in zip(ws, usable, strict=True))
    va = sum(w * w * a.var for w, (_, _, a) in zip(ws, usable, strict=True))
    share_c = vc / (vc + va) if vc + va > 0 else 0.5
    control = pool([c for _, c, _ in usable], share_c)
    arm = pool([a for _, _, a in usable], 1 - share_c)
    return effect_from_arms(control, arm, alpha=alpha, df=math.inf)
