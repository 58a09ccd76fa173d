"""Root finding for score intervals, without :mod:`scipy.optimize` (about 0.3 s to import)."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["bracketed_root", "invert_score"]


def bracketed_root(g: Callable[[float], float], a: float, b: float, xtol: float) -> float:
    """Root of ``g`` in the bracket ``[a, b]`` (``g(a)``, ``g(b)`` of opposite signs).

    Regula falsi with the Illinois modification, and a bisection whenever an iteration does
    not halve the bracket (so it converges at least as fast as bisection). Written here so
    that the gate does not import :mod:`scipy.optimize`.
    """
    fa, fb = g(a), g(b)
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    if fa * fb > 0.0:
        raise ValueError("the root is not bracketed")
    for _ in range(300):
        width = abs(b - a)
        c = (a * fb - b * fa) / (fb - fa)
        if not min(a, b) < c < max(a, b):
            c = 0.5 * (a + b)
        fc = g(c)
        if fc == 0.0:
            return c
        if fc * fb < 0.0:  # the root lies between c and b: b becomes the retained end
            a, fa = b, fb
        else:  # a is retained again: halve its value (Illinois)
            fa *= 0.5
        b, fb = c, fc
        if abs(b - a) > 0.5 * width:
            m = 0.5 * (a + b)
            fm = g(m)
            if fm == 0.0:
                return m
            if fm * fb < 0.0:
                a, fa = m, fm
            else:
                b, fb = m, fm
        if abs(b - a) <= xtol:
            break
    return b if abs(fb) <= abs(fa) else a


def invert_score(
    null_sd: Callable[[float], float],
    mean: float,
    n: int,
    lower: float,
    upper: float,
    z: float,
    guess: float,
) -> tuple[float, float]:
    """Bounds ``delta0`` with ``|mean − delta0| = z · null_sd(delta0) / sqrt(n)`` on each side.

    That is ``Z(delta0) = ±z`` for the score statistic ``Z = (mean − delta0) / (null_sd /
    sqrt(n))``. Each side is solved by the secant method on ``F(x) = x − mean ± z sd(x)/√n``
    from the Wald-like start ``mean ∓ guess`` (a few restricted fits suffice for large ``n``);
    should that fail, the side is bracketed by doubling a step from ``mean`` and solved by
    :func:`bracketed_root`. A side whose statistic never reaches ``±z`` inside the support returns
    that end of the support.
    """
    width = upper - lower
    eps = 1e-12 * width
    xtol = 1e-12 * max(1.0, width)
    root_n = math.sqrt(n)

    def statistic(x: float) -> float:
        sd = null_sd(x)
        gap = mean - x
        if sd <= 0.0:
            return math.copysign(math.inf, gap) if gap else 0.0
        return gap / (sd / root_n)

    def secant(sign: float, end: float) -> float | None:
        def f(x: float) -> float:
            return x - mean + sign * z * null_sd(x) / root_n

        x0 = mean - sign * guess
        if sign * (x0 - end) <= 0.0:
            return None
        f0 = f(x0)
        x1 = mean - sign * z * null_sd(x0) / root_n
        for _ in range(12):
            if sign * (x1 - end) <= 0.0 or sign * (mean - x1) <= 0.0:
                return None
            f1 = f(x1)
            if abs(x1 - x0) <= xtol or f1 == 0.0:
                return x1
            if f1 == f0:
                return None
            x0, f0, x1 = x1, f1, x1 - f1 * (x1 - x0) / (f1 - f0)
        return None

    def side(sign: float, end: float) -> float:
        found = secant(sign, end)
        if found is not None:
            return found

        def g(x: float) -> float:
            return sign * statistic(x) - z

        inner = mean
        step = max(guess, 1e-9 * width)
        while True:
            x = mean - sign * step
            if sign * (x - end) <= 0.0:
                x = end
            if g(x) >= 0.0:
                return bracketed_root(g, x, inner, xtol)
            if x == end:
                return end
            inner = x
            step *= 2.0

    lo = side(1.0, lower + eps) if mean > lower + eps else lower
    hi = side(-1.0, upper - eps) if mean < upper - eps else upper
    return lo, hi
