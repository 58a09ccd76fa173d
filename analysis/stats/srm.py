"""Sample-ratio mismatch: are newly enrolled units split as the allocation says?

Per phase, the units *first enrolled* in that phase are counted per arm and compared with the
phase's allocation by Pearson's chi-square goodness-of-fit test (``k − 1`` degrees of freedom).
Counting only new enrolments matters after a ramp: units enrolled earlier keep their arm, so the
share of all active units lags the new allocation even when assignment works. A mismatch is
flagged at ``p < threshold`` (default 0.001, the usual conservative choice for a check that runs
on every report).

References:
    Fabijan, A., Gupchup, J., Gupta, S., Omhover, J., Qin, W., Vermeer, L., Dmitriev, P. (2019).
    Diagnosing Sample Ratio Mismatch in Online Controlled Experiments. KDD 2019.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from scipy import stats as _st

__all__ = ["SRMResult", "srm_test"]


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
