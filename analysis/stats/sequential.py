"""Always-valid (time-uniform) confidence sequences for reports that look every day.

Construction: the asymptotic confidence sequence of Waudby-Smith et al. (2024), built on Robbins'
normal mixture boundary. For an estimate with standard error ``se`` from ``n`` units, the
half-width is

    se · sqrt( (n ρ² + 1) / (n ρ²) · log( (n ρ² + 1) / α² ) )

and the interval covers the effect at *every* look simultaneously with probability ≥ 1 − α
(asymptotically). The tuning parameter ``ρ`` sets where the sequence is tightest; it is chosen
from a planned number of units ``n_star`` as ``ρ² = (−2 log α + log(−2 log α + 1)) / n_star``
(Howard et al. 2021, eq. for the optimal mixture variance). It must be fixed before looking;
the default ``n_star`` is 10 000 units.

References:
    Robbins, H. (1970). Statistical methods related to the law of the iterated logarithm.
    Annals of Mathematical Statistics 41(5).
    Howard, S. R., Ramdas, A., McAuliffe, J., Sekhon, J. (2021). Time-uniform, nonparametric,
    nonasymptotic confidence sequences. Annals of Statistics 49(2).
    Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H., Ramdas, A. (2024). Time-uniform
    central limit theory and asymptotic confidence sequences. Annals of Statistics 52(6).
"""

from __future__ import annotations

import math

__all__ = ["confidence_sequence_halfwidth", "mixture_rho2"]


def mixture_rho2(n_star: float, alpha: float = 0.05) -> float:
    """Mixture variance ``ρ²`` that makes the boundary tightest at ``n_star`` units."""
    la = -2.0 * math.log(alpha)
    return (la + math.log(la + 1.0)) / n_star


def confidence_sequence_halfwidth(
    se: float, n: int, *, alpha: float = 0.05, n_star: float = 10_000.0
) -> float:
    """Half-width of the always-valid interval around an estimate with standard error ``se``.

    Args:
        se: Standard error of the estimate at this look.
        n: Units (observations) behind the estimate at this look.
        alpha: 1 − the time-uniform coverage.
        n_star: Planned number of units at which the sequence is tuned to be tightest.
    """
    if n <= 0 or not math.isfinite(se):
        return float("nan")
    r = n * mixture_rho2(n_star, alpha)
    return se * math.sqrt((r + 1.0) / r * math.log((r + 1.0) / alpha**2))
