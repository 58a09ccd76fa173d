"""Smooth functions of unit-level means and their delta-method variances.

An arm's estimate is a function ``f`` of the vector of unit-level means: the mean itself
(:class:`Identity`) or a ratio of two means (:class:`RatioOf`, e.g. helpfulness per turn =
mean per-unit helpfulness total / mean per-unit turn count). By the delta method, the variance of
``f(mean)`` is ``g' Σ g / n`` with ``g`` the gradient of ``f`` at the means and ``Σ`` the
covariance of the unit-level variables; units, not events, are the independent observations, so
the variance respects clustering of events within units.

References:
    Deng, A., Knoblich, U., Lu, J. (2018). Applying the Delta Method in Metric Analytics: A
    Practical Guide with Novel Ideas. KDD 2018. https://arxiv.org/abs/1803.06336
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analysis.stats.moments import Moments

__all__ = ["Identity", "RatioOf", "Statistic", "linear_cov"]


class Statistic(Protocol):
    """A smooth function of the unit-level means of some variables of a :class:`Moments`."""

    def value(self, m: Moments) -> float:
        """The function at the means."""
        ...

    def gradient(self, m: Moments) -> npt.NDArray[np.float64]:
        """Gradient with respect to the means, aligned with ``m.names``."""
        ...


@dataclass(frozen=True)
class Identity:
    """The mean of one unit-level variable.

    Attributes:
        var: Name of the variable.
    """

    var: str

    def value(self, m: Moments) -> float:
        """Mean of ``var``."""
        return m.mean(self.var)

    def gradient(self, m: Moments) -> npt.NDArray[np.float64]:
        """Unit vector at ``var``."""
        g = np.zeros(len(m.names))
        g[m.index(self.var)] = 1.0
        return g


@dataclass(frozen=True)
class RatioOf:
    """Ratio of the means of two unit-level variables, ``mean(num) / mean(den)``.

    Attributes:
        num: Numerator variable.
        den: Denominator variable.
    """

    num: str
    den: str

    def value(self, m: Moments) -> float:
        """``sum(num) / sum(den)`` (NaN when the denominator is 0)."""
        d = m.sums[m.index(self.den)]
        return float(m.sums[m.index(self.num)] / d) if d != 0 else float("nan")

    def gradient(self, m: Moments) -> npt.NDArray[np.float64]:
        """``(1 / mean(den), -mean(num) / mean(den)^2)`` at the num and den positions."""
        g = np.zeros(len(m.names))
        mu_n, mu_d = m.mean(self.num), m.mean(self.den)
        mu_d2 = mu_d * mu_d  # a product: no OverflowError, and 0 when it underflows
        if not 0 < mu_d2 < math.inf:
            return np.full(len(m.names), np.nan)
        g[m.index(self.num)] += 1.0 / mu_d
        g[m.index(self.den)] += -mu_n / mu_d2
        return g


def linear_cov(m: Moments, f: Statistic, h: Statistic) -> float:
    """Delta-method covariance of the estimators ``f(mean)`` and ``h(mean)``: ``g_f' Σ g_h / n``.

    With ``f = h`` it is the variance of the estimator. NaN when ``n < 2``.
    """
    if m.n < 2:
        return float("nan")
    return float(f.gradient(m) @ m.covariance @ h.gradient(m)) / m.n
