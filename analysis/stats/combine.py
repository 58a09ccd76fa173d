"""Combine independent strata (enrollment cohorts) into one estimate without Simpson's paradox.

``analyze`` uses it for the ``combined`` row of quantile metrics only; moment metrics are
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

__all__ = ["combine_strata"]


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
