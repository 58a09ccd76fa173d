"""Sample-ratio mismatch: are newly enrolled units split as the allocation says?

Per phase, the units *first enrolled* in that phase are counted per arm and compared with the
phase's allocation by Pearson's chi-square goodness-of-fit test (``k − 1`` degrees of freedom).
Counting only new enrolments matters after a ramp: units enrolled earlier keep their arm, so the
share of all active units lags the new allocation even when assignment works. A mismatch is
flagged at ``p < threshold`` (default 0.001, the usual conservative choice for a check that runs
on every report).

Who counts as newly enrolled, and in which arm: every unit whose first tagged exposure falls in
the phase, in the arm of that first exposure — also units that later change arm (at a ramp, or
by a tagging error). Dropping those units would remove units from one arm only (a bucket ramp
moves units out of the shrinking arm) and raise a false alarm on every ramped experiment; the
arm changes are judged by the crossover check instead (:mod:`analysis.stats.crossover`).

:func:`srm_power` gives the test's asymptotic power against given true shares (the noncentral
chi-square approximation), e.g. against a loss of part of one arm's units from logging
(:func:`lost_shares`).

References:
    Fabijan, A., Gupchup, J., Gupta, S., Omhover, J., Qin, W., Vermeer, L., Dmitriev, P. (2019).
    Diagnosing Sample Ratio Mismatch in Online Controlled Experiments. KDD 2019.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from scipy import stats as _st

__all__ = ["SRMResult", "lost_shares", "srm_power", "srm_test"]


class SRMResult(NamedTuple):
    """Chi-square test of observed unit counts against expected shares.

    Attributes:
        n: Total units.
        observed: Units per arm.
        expected: Expected units per arm (``n × share``).
        statistic: Pearson chi-square statistic.
        pvalue: Its p-value (NaN with fewer than two arms with positive share or no units).
        mismatch: ``pvalue < threshold``.
    """

    n: int
    observed: dict[str, int]
    expected: dict[str, float]
    statistic: float
    pvalue: float
    mismatch: bool


def srm_test(
    observed: Mapping[str, int],
    allocation: Mapping[str, float],
    *,
    threshold: float = 0.001,
) -> SRMResult:
    """Pearson chi-square test of ``observed`` unit counts against ``allocation`` shares.

    Arms of ``observed`` missing from ``allocation`` (or with share 0) make the test fail outright
    when they hold units: every unit in them is a mismatch (statistic ``inf``, p-value 0).
    """
    arms = list(dict.fromkeys([*allocation, *observed]))
    n = int(sum(observed.get(a, 0) for a in arms))
    total_share = sum(allocation.get(a, 0.0) for a in arms)
    obs = {a: int(observed.get(a, 0)) for a in arms}
    exp = {a: n * allocation.get(a, 0.0) / total_share if total_share else 0.0 for a in arms}
    live = [a for a in arms if exp[a] > 0]
    if n == 0 or len(live) < 2:
        return SRMResult(n, obs, exp, float("nan"), float("nan"), False)
    if any(obs[a] > 0 and exp[a] == 0 for a in arms):
        return SRMResult(n, obs, exp, float("inf"), 0.0, True)
    stat = sum((obs[a] - exp[a]) ** 2 / exp[a] for a in live)
    p = float(_st.chi2.sf(stat, len(live) - 1))
    return SRMResult(n, obs, exp, float(stat), p, p < threshold)


def lost_shares(allocation: Mapping[str, float], arm: str, lost: float) -> dict[str, float]:
    """The shares among logged units when a fraction ``lost`` of ``arm``'s units is not logged.

    >>> {a: round(s, 4) for a, s in lost_shares({"c": 0.5, "t": 0.5}, "t", 0.1).items()}
    {'c': 0.5263, 't': 0.4737}
    """
    if arm not in allocation:
        raise ValueError(f"arm {arm!r} is not in the allocation {dict(allocation)}")
    if not 0.0 <= lost < 1.0:
        raise ValueError(f"lost must be in [0, 1), got {lost}")
    kept = {a: s * (1.0 - lost) if a == arm else float(s) for a, s in allocation.items()}
    total = sum(kept.values())
    return {a: s / total for a, s in kept.items()}


def srm_power(
    allocation: Mapping[str, float],
    true_shares: Mapping[str, float],
    n: int,
    *,
    threshold: float = 0.001,
) -> float:
    """Asymptotic power of :func:`srm_test` with ``n`` units whose true shares are ``true_shares``.

    Estimand: ``P(p < threshold)`` when the counts are multinomial(``n``, ``true_shares``) and
    tested against ``allocation``. Pearson's statistic is then approximately noncentral
    chi-square with ``k − 1`` degrees of freedom and noncentrality
    ``λ = n Σ (true − allocation)² / allocation`` (Cohen's ``w² · n``).

    References:
        Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed.,
        ch. 7 (chi-square tests). Lawrence Erlbaum.
    """
    total = sum(allocation.values())
    live = [a for a in allocation if allocation[a] > 0]
    if n <= 0 or len(live) < 2:
        return float("nan")
    lam = n * sum(
        (true_shares.get(a, 0.0) - allocation[a] / total) ** 2 / (allocation[a] / total)
        for a in live
    )
    crit = float(_st.chi2.isf(threshold, len(live) - 1))
    return float(_st.ncx2.sf(crit, len(live) - 1, lam))
