"""Sequential sample-ratio-mismatch test that may be run at every look (Lindon & Malek 2022).

**Null.** Each newly enrolled unit lands in arm ``i`` with the planned share ``π_i`` (the
allocation of the phase it enrolls in), independently of the others.

**Statistic.** Within a phase, the counts ``x`` (newly enrolled units per arm, ``n = Σ x``) are
compared with a Dirichlet-multinomial alternative whose prior is centred on the allocation,
``Dirichlet(a)``, ``a = κ π`` (concentration ``κ``, default 100, the choice of Lindon & Malek's
reference implementation). The Bayes factor of the alternative against the null is the ratio of
the marginal likelihoods of the *sequence* of assignments (the multinomial coefficient cancels):

    BF = Γ(Σa) / Γ(Σa + n) · Π_i Γ(a_i + x_i) / Γ(a_i)  /  Π_i π_i^{x_i}

computed in log space with ``scipy.special.gammaln`` (exact at millions of units). Read unit by
unit, ``BF`` is the running product of ``q_t(i) / π_i`` with the posterior predictive
``q_t(i) = (a_i + x_i) / (Σa + n)`` of the units seen so far, so under the null it is a
nonnegative martingale with mean 1, whatever the order of the units; Ville's inequality gives
``P(∃ look: BF ≥ 1/α) ≤ α``. The **always-valid p-value** is ``min(1, min_{s ≤ t} 1/BF_s)``.

**Ramps.** When the allocation changes, each exposure phase gets its own Bayes factor on the
units first enrolled in it, and the evidence is their product ``Π_p BF_p``. A unit's arm is
predicted from the posterior of its own phase only, so the product is still a test martingale
in the order the units are *counted* — also when late data adds units to an earlier phase after
a later one has started (the phase of a unit, fixed at its enrollment, does not depend on its
arm under the null). An arm with share 0 that holds units makes ``BF`` infinite (p-value 0).

References:
    Lindon, M., Malek, A. (2022). Anytime-valid inference for multinomial count data. NeurIPS
    2022 (arXiv:2011.03567).
    Ville, J. (1939). Étude critique de la notion de collectif. Gauthier-Villars.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from analysis.stats.sequential import first_look, running_pvalues

__all__ = ["SequentialSRM", "dirichlet_multinomial_log_bf", "srm_sequential"]

FloatArray = npt.NDArray[np.float64]
DEFAULT_CONCENTRATION = 100.0


def _shares(allocation: npt.ArrayLike) -> FloatArray:
    p = np.asarray(allocation, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] < 2:
        raise ValueError(f"the allocation needs at least two arms, got shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"allocation shares must be finite and >= 0, got {p.tolist()}")
    total = p.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("an allocation has no positive share")
    out: FloatArray = p / total
    return out


def dirichlet_multinomial_log_bf(
    counts: npt.ArrayLike,
    allocation: npt.ArrayLike,
    *,
    concentration: float = DEFAULT_CONCENTRATION,
) -> FloatArray:
    """``log BF`` of the Dirichlet-multinomial alternative against the allocation.

    Args:
        counts: Units per arm along the last axis (any leading shape, e.g. looks × phases).
        allocation: Planned shares along the last axis, broadcastable against ``counts``
            (normalised to sum to 1).
        concentration: ``κ`` of the prior ``Dirichlet(κ π)``.

    Returns:
        ``log BF`` with the leading shape of ``counts`` (``+inf`` when an arm with share 0 holds
        units).
    """
    if not concentration > 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    x = np.asarray(counts, dtype=np.float64)
    if np.any(x < 0) or np.any(~np.isfinite(x)):
        raise ValueError("counts must be finite and >= 0")
    p = np.broadcast_to(_shares(allocation), x.shape)
    live = p > 0
    a = concentration * p
    a_safe = np.where(live, a, 1.0)
    p_safe = np.where(live, p, 1.0)
    per_arm = np.where(
        live,
        special.gammaln(a_safe + x) - special.gammaln(a_safe) - x * np.log(p_safe),
        0.0,
    )
    n = x.sum(axis=-1)
    a_total = a.sum(axis=-1)
    log_bf = special.gammaln(a_total) - special.gammaln(a_total + n) + per_arm.sum(-1)
    dead = np.any(~live & (x > 0), axis=-1)
    out: FloatArray = np.where(dead, np.inf, log_bf)
    return out


class SequentialSRM(NamedTuple):
    """The sequential SRM test over looks.

    Attributes:
        log_bf: ``log BF`` at each look (summed over phases).
        pvalues: Always-valid p-value at each look (running minimum of ``min(1, 1/BF)``; 1 at
            looks that may not decide).
        first_look: Index of the first look with ``p ≤ alpha`` (``None`` if none).
        alpha: The level of ``first_look``.
    """

    log_bf: FloatArray
    pvalues: FloatArray
    first_look: int | None
    alpha: float


def srm_sequential(
    counts: npt.ArrayLike,
    allocation: npt.ArrayLike,
    *,
    alpha: float = 0.001,
    concentration: float = DEFAULT_CONCENTRATION,
    eligible: npt.ArrayLike | None = None,
) -> SequentialSRM:
    """Always-valid SRM test of cumulative newly-enrolled counts at a series of looks.

    Args:
        counts: Cumulative units per arm at each look: shape ``(looks, arms)`` for one
            allocation, or ``(looks, phases, arms)`` with the units first enrolled in each
            exposure phase (zeros for phases not started yet).
        allocation: Shares per arm, shape ``(arms,)``, or ``(phases, arms)`` with the counts
            per phase.
        alpha: Level of ``first_look`` (0.001 is the fixed-horizon check's threshold).
        concentration: ``κ`` of the prior ``Dirichlet(κ π)``.
        eligible: Looks that may decide (false before a burn-in); default all.

    Returns:
        ``log BF``, the running always-valid p-values and the first look where ``p ≤ alpha``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    x = np.asarray(counts, dtype=np.float64)
    p = np.asarray(allocation, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    if p.ndim == 1:
        p = p[None, :]
    if x.ndim != 3 or p.ndim != 2 or x.shape[1:] != p.shape:
        raise ValueError(
            f"counts of shape {np.shape(counts)} do not match the allocation of shape "
            f"{np.shape(allocation)}: give (looks, arms) with (arms,) or (looks, phases, arms) "
            "with (phases, arms)"
        )
    if np.any(np.diff(x, axis=0) < 0):
        raise ValueError("counts must be cumulative (never decreasing from one look to the next)")
    log_bf = dirichlet_multinomial_log_bf(x, p, concentration=concentration).sum(axis=-1)
    with np.errstate(over="ignore"):
        at_look = np.exp(-np.maximum(log_bf, 0.0))
    pv = running_pvalues(at_look, eligible=eligible)
    k = int(first_look(pv <= alpha))
    return SequentialSRM(log_bf, pv, None if k < 0 else k, alpha)
