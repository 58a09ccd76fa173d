"""Statistics of :mod:`analysis.rollback.cache` on small per-minute aggregates (no dataframes here):
the result rows, the saturation-curve fit of the prompt-cache warm-up, the cold-window
accounting and the price regression. Definitions are in :mod:`analysis.rollback.cache`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

__all__ = [
    "ColdStartPrediction",
    "CurveRow",
    "RevisionCacheRow",
    "WarmupRow",
    "as_float",
    "curve_rows",
    "fit_saturation",
    "median",
    "plain",
    "price_gap",
    "warmup_row",
]


class CurveRow(NamedTuple):
    """Hit rate and cost of one revision in one time bin around a boundary.

    Attributes:
        boundary: Index of the ledger transition.
        boundary_at: Its time.
        action: Its action.
        revision: Served revision.
        minutes_since: Start of the bin, in minutes after the boundary (negative before it).
        turns: Turns served by the revision in the bin.
        hit_rate: Share of prompt-cache hits.
        cost_per_turn: Mean ``cost_usd`` (NaN without the column).
        latency_ms: Mean ``latency_ms`` (NaN without the column).
    """

    boundary: int
    boundary_at: datetime
    action: str
    revision: str
    minutes_since: int
    turns: int
    hit_rate: float
    cost_per_turn: float
    latency_ms: float


class WarmupRow(NamedTuple):
    """A revision's prompt cache after one boundary.

    Attributes:
        boundary: Index of the ledger transition.
        boundary_at: Its time.
        action: Its action.
        revision: Served revision.
        cold: Whether the revision served no turn in ``idle_minutes`` before the boundary.
        turns: Turns in the fit window (boundary to the next boundary or ``fit_hours``).
        plateau: Fitted plateau hit rate (cold starts), else the window's hit rate.
        tau_minutes: Fitted time constant (NaN when warm or not estimable).
        warmup_minutes: Time to reach ``plateau_share`` of the plateau (NaN when warm).
        cold_turns: Turns in the cold window.
        cold_hit_rate: Hit rate in the cold window.
        warm_hit_rate: Hit rate after the cold window (in the fit window).
        missed_hits: ``plateau · cold_turns − hits`` in the cold window.
        extra_uncached_tokens: Missed hits × cached tokens per hit.
        extra_cost_usd: Missed hits × cost saved per hit.
        extra_latency_ms: Missed hits × latency saved per hit (total over the window).
    """

    boundary: int
    boundary_at: datetime
    action: str
    revision: str
    cold: bool
    turns: int
    plateau: float
    tau_minutes: float
    warmup_minutes: float
    cold_turns: float
    cold_hit_rate: float
    warm_hit_rate: float
    missed_hits: float
    extra_uncached_tokens: float
    extra_cost_usd: float
    extra_latency_ms: float


class RevisionCacheRow(NamedTuple):
    """A revision's prompt cache over the whole export.

    Attributes:
        revision: Served revision.
        turns: Turns it served.
        hit_rate: Share of prompt-cache hits.
        cost_per_turn: Mean cost (NaN without ``cost_usd``).
        cached_tokens_per_hit: Mean ``cached_tokens`` of hits (NaN without the column).
        cost_saved_per_hit: Cost one hit saves (see the module docstring).
        latency_saved_per_hit_ms: Mean latency of misses − hits.
    """

    revision: str
    turns: int
    hit_rate: float
    cost_per_turn: float
    cached_tokens_per_hit: float
    cost_saved_per_hit: float
    latency_saved_per_hit_ms: float


@dataclass(frozen=True)
class ColdStartPrediction:
    """Predicted cold-cache window of a revision that takes all traffic with an empty cache.

    Attributes:
        revision: The revision.
        cold: Whether its cache is expected cold (it served no turn in ``idle_minutes``).
        basis: Which observed cold start the warm-up comes from (text).
        rate_per_minute: Turns per minute it will serve.
        plateau: Expected plateau hit rate.
        warmup_minutes: Expected warm-up time (0 when warm).
        missed_hits: Expected hits missed in the cold window.
        extra_uncached_tokens: Expected extra uncached prompt tokens.
        extra_cost_usd: Expected extra cost.
        extra_latency_ms: Expected extra latency, summed over the window's turns.
    """

    revision: str
    cold: bool
    basis: str
    rate_per_minute: float
    plateau: float
    warmup_minutes: float
    missed_hits: float
    extra_uncached_tokens: float
    extra_cost_usd: float
    extra_latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form (NaN → None)."""
        return {k: plain(getattr(self, k)) for k in self.__dataclass_fields__}


def price_gap(r: Mapping[str, Any]) -> float:
    """(price of an uncached − a cached prompt token) by least squares without intercept."""
    import numpy as np

    keys = ["u", "c", "o"]

    def xx(a: str, b: str) -> float:
        return as_float(r.get(f"x{a}{b}", r.get(f"x{b}{a}")))

    gram = np.array([[xx(a, b) for b in keys] for a in keys])
    rhs = np.array([as_float(r[f"x{a}y"]) for a in keys])
    if not np.all(np.isfinite(gram)) or np.linalg.cond(gram) > 1e12:
        return math.nan
    prices = np.linalg.solve(gram, rhs)
    return float(prices[0] - prices[1])


# ---------------------------------------------------------------------- statistics (small)


def curve_rows(
    index: int,
    at: datetime,
    action: str,
    rev: str,
    minutes: Mapping[int, tuple[float, ...]],
    width: int,
    before: int,
    after: int,
) -> list[CurveRow]:
    bins: dict[int, list[float]] = {}
    for m, (n, h, c, lat) in minutes.items():
        if -before <= m < after:
            acc = bins.setdefault((m // width) * width, [0.0, 0.0, 0.0, 0.0])
            acc[0] += n
            acc[1] += h
            acc[2] += c
            acc[3] += lat
    return [
        CurveRow(index, at, action, rev, start, int(n), h / n, c / n, lat / n)
        for start, (n, h, c, lat) in sorted(bins.items())
    ]


def warmup_row(
    index: int,
    at: datetime,
    action: str,
    rev: str,
    minutes: Mapping[int, tuple[float, ...]],
    totals: RevisionCacheRow,
    idle: float,
    limit: float,
    fit_hours: float,
    share: float,
) -> WarmupRow | None:
    after = {m: v for m, v in minutes.items() if 0 <= m < limit}
    if not after:
        return None
    cold = not any(-idle <= m < 0 and v[0] > 0 for m, v in minutes.items())
    turns = sum(v[0] for v in after.values())
    hits = sum(v[1] for v in after.values())
    nan = math.nan
    if not cold:
        return WarmupRow(
            index,
            at,
            action,
            rev,
            False,
            int(turns),
            hits / turns,
            nan,
            nan,
            0.0,
            nan,
            hits / turns,
            0.0,
            0.0,
            0.0,
            0.0,
        )
    fit = fit_saturation(after, min(limit, fit_hours * 60))
    if fit is None:
        return WarmupRow(
            index,
            at,
            action,
            rev,
            True,
            int(turns),
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
        )
    plateau, tau = fit
    warmup = tau * math.log(1.0 / (1.0 - share))
    cold_n = cold_h = warm_n = warm_h = 0.0
    for m, (n, h, _c, _l) in after.items():
        frac = min(max(warmup - m, 0.0), 1.0)  # share of the minute inside the cold window
        cold_n += n * frac
        cold_h += h * frac
        warm_n += n * (1 - frac)
        warm_h += h * (1 - frac)
    missed = plateau * cold_n - cold_h
    return WarmupRow(
        boundary=index,
        boundary_at=at,
        action=action,
        revision=rev,
        cold=True,
        turns=int(turns),
        plateau=plateau,
        tau_minutes=tau,
        warmup_minutes=warmup,
        cold_turns=cold_n,
        cold_hit_rate=cold_h / cold_n if cold_n else nan,
        warm_hit_rate=warm_h / warm_n if warm_n else nan,
        missed_hits=missed,
        extra_uncached_tokens=missed * totals.cached_tokens_per_hit,
        extra_cost_usd=missed * totals.cost_saved_per_hit,
        extra_latency_ms=missed * totals.latency_saved_per_hit_ms,
    )


def fit_saturation(
    minutes: Mapping[int, tuple[float, ...]], limit: float
) -> tuple[float, float] | None:
    """Binomial MLE of ``h(t) = plateau · (1 − exp(−t/tau))`` on per-minute counts."""
    import numpy as np
    from scipy.optimize import minimize

    ms = sorted(m for m in minutes if m < limit)
    n = np.array([minutes[m][0] for m in ms])
    k = np.array([minutes[m][1] for m in ms])
    if n.sum() < 30 or k.sum() < 5:
        return None
    t = np.array(ms, dtype=float) + 0.5
    late = t >= t.max() / 2
    c0 = min(max(k[late].sum() / max(n[late].sum(), 1.0), 0.05), 0.95)
    eps = 1e-12

    def nll(theta: np.ndarray) -> float:
        c = 1.0 / (1.0 + math.exp(-theta[0]))
        tau = math.exp(theta[1])
        p = np.clip(c * (1.0 - np.exp(-t / tau)), eps, 1 - eps)
        return float(-(k * np.log(p) + (n - k) * np.log(1 - p)).sum())

    best = None
    for tau0 in (2.0, 10.0, 30.0, 90.0):
        res = minimize(
            nll,
            np.array([math.log(c0 / (1 - c0)), math.log(tau0)]),
            method="Nelder-Mead",
            options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000},
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    plateau = 1.0 / (1.0 + math.exp(-best.x[0]))
    tau = math.exp(best.x[1])
    if not (math.isfinite(tau) and 0 < tau < 10 * max(limit, 1.0)):
        return None
    return plateau, tau


def median(values: Sequence[float]) -> float:
    vals = sorted(v for v in values if not math.isnan(v))
    if not vals:
        return math.nan
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
