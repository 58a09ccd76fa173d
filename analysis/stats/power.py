"""Power and minimum detectable effect (two-sided test, normal approximation).

For an effect estimate with standard error ``se``, the power to detect ``effect`` at level
``alpha`` is ``Φ(|effect|/se − z_{1−α/2}) + Φ(−|effect|/se − z_{1−α/2})`` and the minimum
detectable effect at a target power is ``(z_{1−α/2} + z_{power}) · se``. In :func:`analyze`
the ``se`` comes from the observed unit-level variances and sizes of each comparison, so the MDE
says what that comparison could have detected.

References:
    Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed.
    Kohavi, R., Tang, D., Xu, Y. (2020). Trustworthy Online Controlled Experiments, ch. 17.
"""

from __future__ import annotations

import math

from scipy import stats as _st

__all__ = ["mde", "power", "se_two_sample"]


def se_two_sample(sd_control: float, sd_arm: float, n_control: float, n_arm: float) -> float:
    """Standard error of a difference of two independent means."""
    return math.sqrt(sd_control * sd_control / n_control + sd_arm * sd_arm / n_arm)


def mde(se: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest absolute effect detected with probability ``power`` by a two-sided test."""
    z = _st.norm.ppf(1 - alpha / 2) + _st.norm.ppf(power)
    return float(z * se)


def power(effect: float, se: float, *, alpha: float = 0.05) -> float:
    """Probability that a two-sided level-``alpha`` test rejects when the effect is ``effect``."""
    if se <= 0 or not math.isfinite(se):
        return float("nan")
    z = _st.norm.ppf(1 - alpha / 2)
    d = abs(effect) / se
    return float(_st.norm.cdf(d - z) + _st.norm.cdf(-d - z))
