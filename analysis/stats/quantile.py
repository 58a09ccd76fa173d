"""Confidence intervals for event-level quantiles when events cluster within units.

A quantile such as p95 latency is computed over events, but events of one unit are correlated, so
the i.i.d. order-statistic interval is too narrow. Following Deng, Knoblich and Lu (2018, §4), the
empirical CDF at the sample quantile ``ξ̂`` is a ratio of unit-level sums,
``F̂(ξ̂) = Σ_i S_i / Σ_i N_i`` with ``S_i`` the unit's events at or below ``ξ̂`` and ``N_i`` its
events; its variance ``σ_p²`` comes from the delta method over units. The interval for the
quantile is then read off the empirical distribution (Woodruff's outer interval, no density
estimate needed): ``[ξ̂_{q − z σ_p}, ξ̂_{q + z σ_p}]``. Its standard error is taken as
``(upper − lower) / (2 z)``; the difference of two arms' quantiles uses those standard errors
with a normal reference.

This needs three passes over the events of quantile metrics (the quantile, the unit counts at
it, the outer quantiles); all quantile metrics share each pass.

**One exact definition in every engine.** Estimand: the ``q``-quantile of the event values of
the group (arm × phase, arm × cohort, or arm). With the group's finite values sorted,
``x_(1) ≤ … ≤ x_(n)``, the sample quantile is the *lower order statistic*
``x_(k)``, ``k = ⌊q (n − 1)⌋ + 1`` (numpy's ``method="lower"``), and the interval
``[x_(k_lo), x_(k_hi)]`` with ``k_lo = ⌊p_lo (n − 1)⌋ + 1`` and ``k_hi = ⌈p_hi (n − 1)⌉ + 1``
(``"higher"``), ``p_lo, p_hi = q ∓ z σ_p`` (:func:`order_statistic_rank`). ``p (n − 1)`` is one
IEEE double product. The engines never run their own quantile function (DuckDB only offers
interpolated ones for lazy relations, Spark's ``percentile_approx`` is approximate): each group
is ranked with a window function and the value at the rank is picked by comparing the integer
rank with ``p (n − 1)`` (:func:`analysis.metrics.aggregation.at_rank`), so polars, DuckDB and
Spark return the same value, bit for bit.

References:
    Deng, A., Knoblich, U., Lu, J. (2018). Applying the Delta Method in Metric Analytics: A
    Practical Guide with Novel Ideas. KDD 2018, section 4.
    Woodruff, R. S. (1952). Confidence intervals for medians and other position measures. JASA
    47(260), 635–646.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from scipy import stats as _st

from analysis.stats.delta import RatioOf, linear_cov
from analysis.stats.effect import ArmEstimate, EffectResult, effect_from_arms
from analysis.stats.moments import Moments

__all__ = ["QuantileEstimate", "order_statistic_rank", "probability_bounds", "quantile_effect"]


def order_statistic_rank(p: float, n: int, side: str = "lower") -> int:
    """The rank (1..n) of the order statistic at probability ``p`` among ``n`` values.

    Estimand: the ``p``-quantile of the empirical distribution, as an order statistic —
    ``lower``: ``⌊p (n − 1)⌋ + 1``; ``higher``: ``⌈p (n − 1)⌉ + 1`` (numpy's ``method="lower"``
    and ``"higher"``: Hyndman and Fan's discontinuous index ``p (n − 1)`` rounded down or up),
    with ``p (n − 1)`` computed as one double product, exactly as the engines do.

    Args:
        p: Probability in [0, 1].
        n: Number of values (at least 1).
        side: ``lower`` or ``higher``.

    Raises:
        ValueError: ``side`` is neither, or ``n < 1``.

    References:
        Hyndman, R. J., Fan, Y. (1996). Sample quantiles in statistical packages. The American
        Statistician 50(4), 361–365.
    """
    if n < 1:
        raise ValueError("order_statistic_rank needs n >= 1")
    x = float(p) * float(n - 1)
    if side == "lower":
        return min(n, max(1, math.floor(x) + 1))
    if side == "higher":
        return min(n, max(1, math.ceil(x) + 1))
    raise ValueError(f"side must be 'lower' or 'higher', not {side!r}")


def probability_bounds(
    counts: Moments, q: float, *, below: str = "below", events: str = "events", alpha: float = 0.05
) -> tuple[float, float, float]:
    """Bounds ``(q − z σ_p, q + z σ_p)`` of the probability level, and ``σ_p``.

    Args:
        counts: Unit-level statistics of ``below`` (events at or below the sample quantile) and
            ``events`` (events) per unit.
        q: The quantile level.
        below: Name of the at-or-below count variable.
        events: Name of the event count variable.
        alpha: 1 − confidence level.
    """
    var = linear_cov(counts, RatioOf(below, events), RatioOf(below, events))
    sigma = math.sqrt(var) if var > 0 else 0.0
    z = float(_st.norm.ppf(1 - alpha / 2))
    return max(q - z * sigma, 0.0), min(q + z * sigma, 1.0), sigma


class QuantileEstimate(NamedTuple):
    """An arm's quantile with its clustered interval.

    Attributes:
        n: Units.
        value: Sample quantile over events.
        lower: Lower bound (Woodruff outer interval).
        upper: Upper bound.
        se: ``(upper − lower) / (2 z)``.
    """

    n: int
    value: float
    lower: float
    upper: float
    se: float

    @classmethod
    def from_bounds(
        cls, n: int, value: float, lower: float, upper: float, *, alpha: float = 0.05
    ) -> QuantileEstimate:
        """Build from the quantile and its outer bounds."""
        z = float(_st.norm.ppf(1 - alpha / 2))
        return cls(n, value, lower, upper, (upper - lower) / (2 * z))


def quantile_effect(
    control: QuantileEstimate, arm: QuantileEstimate, *, alpha: float = 0.05
) -> EffectResult:
    """Difference (and ratio) of two arms' quantiles, normal reference."""
    return effect_from_arms(
        ArmEstimate(control.n, control.value, control.value, control.se * control.se),
        ArmEstimate(arm.n, arm.value, arm.value, arm.se * arm.se),
        alpha=alpha,
        df=math.inf,
    )
