"""Additive sufficient statistics of unit-level variables.

A :class:`Moments` value holds, for one group of units (an arm in a phase, say), the number of
units, the sum of each unit-level variable and the sums of all pairwise products. Everything the
tests of :mod:`analysis.stats` need (means, variances, covariances) follows from these, and two
groups of disjoint units pool by ``+`` — combining shards, or phases of a stratified analysis, is
addition.

Variances use the unbiased ``n - 1`` denominator. Sums of raw products lose precision when a
variable's mean is large relative to its spread (catastrophic cancellation); with float64 and the
metrics of this project (per-unit totals, counts, indicators) the relative error stays far below
the statistical error — tests check against ``numpy.cov`` on raw arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Moments"]


@dataclass(frozen=True, eq=False)
class Moments:
    """Sufficient statistics of unit-level variables for one group of units.

    Attributes:
        n: Number of units.
        names: Variable names, in the order of ``sums`` and ``cross``.
        sums: Sum over units of each variable, shape ``(k,)``.
        cross: Sum over units of each product of two variables, shape ``(k, k)`` (symmetric).
    """

    n: int
    names: tuple[str, ...]
    sums: npt.NDArray[np.float64]
    cross: npt.NDArray[np.float64]

    @classmethod
    def from_arrays(cls, data: Mapping[str, Sequence[float] | npt.NDArray[np.float64]]) -> Moments:
        """Compute the statistics from raw unit-level arrays (one value per unit per variable)."""
        names = tuple(data)
        x = np.column_stack([np.asarray(data[k], dtype=np.float64) for k in names])
        return cls(n=x.shape[0], names=names, sums=x.sum(axis=0), cross=x.T @ x)

    @classmethod
    def from_sums(
        cls,
        n: int,
        sums: Mapping[str, float],
        cross: Mapping[tuple[str, str], float],
    ) -> Moments:
        """Build from scalar sums; ``cross`` needs each unordered pair (incl. squares) once."""
        names = tuple(sums)
        k = len(names)
        s = np.array([float(sums[a] or 0.0) for a in names], dtype=np.float64)
        c = np.zeros((k, k), dtype=np.float64)
        for i, a in enumerate(names):
            for j in range(i, k):
                b = names[j]
                value = cross.get((a, b), cross.get((b, a)))
                if value is None:
                    value = 0.0
                c[i, j] = c[j, i] = float(value)
        return cls(n=int(n), names=names, sums=s, cross=c)

    @classmethod
    def empty(cls, names: Sequence[str]) -> Moments:
        """Statistics of no units (the neutral element of ``+``)."""
        k = len(names)
        return cls(0, tuple(names), np.zeros(k), np.zeros((k, k)))

    def __add__(self, other: Moments) -> Moments:
        """Pool two groups of disjoint units."""
        if not isinstance(other, Moments):
            return NotImplemented
        if other.names != self.names:
            raise ValueError(f"cannot add Moments of {self.names} and {other.names}")
        return Moments(
            self.n + other.n, self.names, self.sums + other.sums, self.cross + other.cross
        )

    def index(self, name: str) -> int:
        """Position of variable ``name``."""
        return self.names.index(name)

    @property
    def means(self) -> npt.NDArray[np.float64]:
        """Vector of means (NaN when there are no units)."""
        if self.n == 0:
            return np.full(len(self.names), np.nan)
        return self.sums / self.n

    @property
    def covariance(self) -> npt.NDArray[np.float64]:
        """Unbiased covariance matrix of the variables over units (NaN when ``n < 2``)."""
        k = len(self.names)
        if self.n < 2:
            return np.full((k, k), np.nan)
        mu = self.sums / self.n
        return (self.cross - self.n * np.outer(mu, mu)) / (self.n - 1)

    def mean(self, name: str) -> float:
        """Mean of one variable over units."""
        return float(self.means[self.index(name)])

    def var(self, name: str) -> float:
        """Unbiased variance of one variable over units."""
        i = self.index(name)
        return float(self.covariance[i, i])

    def cov(self, a: str, b: str) -> float:
        """Unbiased covariance of two variables over units."""
        return float(self.covariance[self.index(a), self.index(b)])
