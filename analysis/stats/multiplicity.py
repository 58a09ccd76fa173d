"""Multiple-testing adjustment of p-values across metrics and arms.

- ``holm``: Holm's step-down procedure, controls the family-wise error rate.
- ``bh``: Benjamini–Hochberg step-up procedure, controls the false discovery rate (independent or
  positively dependent tests).
- ``none``: p-values unchanged.

NaN p-values are left NaN and do not count towards the family size.

References:
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian
    Journal of Statistics 6(2), 65–70.
    Benjamini, Y., Hochberg, Y. (1995). Controlling the false discovery rate. JRSS B 57(1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["METHODS", "adjust_pvalues"]

METHODS = ("holm", "bh", "none")
Method = Literal["holm", "bh", "none"]


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values, in the order given."""
    if method not in METHODS:
        raise ValueError(f"unknown multiplicity method {method!r}; use one of {', '.join(METHODS)}")
    out = [float("nan")] * len(pvalues)
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(idx)
    if m == 0:
        return out
    p = np.array([pvalues[i] for i in idx], dtype=np.float64)
    if method == "none":
        adj = p
    elif method == "holm":
        order = np.argsort(p, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
        adj = np.empty(m)
        adj[order] = np.minimum(stepped, 1.0)
    else:  # bh
        order = np.argsort(p, kind="stable")[::-1]
        ranks = m - np.arange(m)  # ranks of p[order], largest first
        stepped = np.minimum.accumulate(p[order] * m / ranks)
        adj = np.empty(m)
        adj[order] = np.minimum(stepped, 1.0)
    for j, i in enumerate(idx):
        out[i] = float(adj[j])
    return out
