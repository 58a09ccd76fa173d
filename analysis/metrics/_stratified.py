"""The statistics of the stratified clean estimates (per phase and combined), on aggregates.

Two steps around the engine's second pass (:func:`~analysis.metrics._plan.influence_plan`):

1. :func:`prepare` reads the collected per stratum × arm moments, fixes the design weights of
   every scope (each exposure phase, and ``combined``), the point estimates, and the constants
   the engine needs to compute each unit's influence functions;
2. :func:`scope_effects` turns the collected per-arm sums of influence products into the
   adjusted and unadjusted effects of every metric × scope × arm
   (:func:`~analysis.stats.stratified.stratified_effect`).

Estimand of a scope (see :mod:`analysis.stats.stratified`): ``Σ_s w_s (f(μ_t,s) − f(μ_c,s))``
over the time strata ``s`` of the scope, with ``w_s`` the share of the scope's clean turns
(ratio metrics: the denominator's total over both arms) or clean unit-blocks (per-unit metrics)
in the stratum. Strata where an arm has fewer than two units, or the metric is undefined, get no
weight (and a note).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.metrics import aggregation as agg
from analysis.metrics._context import _Context
from analysis.metrics.definitions import MomentMetric, Ratio
from analysis.stats.effect import ArmEstimate, effect_from_arms
from analysis.stats.moments import Moments
from analysis.stats.stratified import (
    ArmInfluence,
    StratifiedResult,
    design_weights,
    influence_coefficients,
    stratum_values,
)
from analysis.stats.stratified import stratified_effect as _stratified_effect

__all__ = ["Prepared", "Scope", "prepare", "scope_effects"]

COMBINED = "combined"


@dataclass(frozen=True)
class Scope:
    """One metric × scope (an exposure phase or ``combined``) of the clean analysis.

    Attributes:
        metric: Metric index.
        label: ``"1"``, ``"2"``, ... or ``combined``.
        comps: Names of the influence components (metric, then each covariate).
        weights: Stratum -> design weight (usable strata only).
        covariates: The covariate variables (empty: no adjustment possible).
        adjust: Whether the effect is regression-adjusted.
        values: Arm -> ``Σ_s w_s (f, covariate means)`` of the arm.
        pooled: ``Σ_s w_s`` covariate means over both arms.
        dropped: Strata of the scope left out (an arm with fewer than two units).
    """

    metric: int
    label: str
    comps: tuple[str, ...]
    weights: Mapping[int, float]
    covariates: tuple[str, ...]
    adjust: bool
    values: Mapping[str, npt.NDArray[np.float64]]
    pooled: npt.NDArray[np.float64]
    dropped: int


@dataclass(frozen=True)
class Prepared:
    """What the second pass needs and what the effects are built from.

    Attributes:
        scopes: ``(metric index, scope label)`` -> :class:`Scope`.
        constants: Columns of the constants table (one row per stratum × arm).
        terms: Influence component -> the unit-level variables it reads.
        notes: Notes on the choices made (adjustment, dropped strata).
    """

    scopes: Mapping[tuple[int, str], Scope]
    constants: Mapping[str, list[Any]]
    terms: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...] = field(default=())


def _total(m: MomentMetric, i: int, arms: Sequence[Moments]) -> float:
    """The stratum's design total over all arms: clean turns (the ratio's denominator) or
    unit-blocks."""
    if isinstance(m, Ratio):
        x = f"{agg.prefix(i)}x"
        return float(sum(a.sums[a.index(x)] for a in arms))
    return float(sum(a.n for a in arms))


def prepare(ctx: _Context, rows: list[dict[str, Any]]) -> Prepared:
    """Weights, point estimates and second-pass constants from the per stratum × arm moments.

    Args:
        ctx: The run (its ``strata``: ``(phase, start)`` per stratum index).
        rows: The collected ``strata`` aggregate (keys ``phase``, ``stratum``, ``arm``).
    """
    M, ctrl = ctx.metrics, ctx.control
    arms = (ctrl, *ctx.arms)
    moments = agg.read_moments(rows, ["phase", "stratum", "arm"], M)
    by_stratum: dict[int, dict[str, dict[int, Moments]]] = {}
    for (_, s, a), by_metric in moments.items():
        by_stratum.setdefault(int(s), {})[a] = by_metric
    phase_of = {s: p for s, (p, _) in enumerate(ctx.strata)}
    scope_strata: dict[str, list[int]] = {str(p): [] for p in ctx.exposure}
    scope_strata[COMBINED] = []
    for s in sorted(by_stratum):
        if s in phase_of:
            scope_strata[str(phase_of[s])].append(s)
            scope_strata[COMBINED].append(s)
    scopes: dict[tuple[int, str], Scope] = {}
    terms: dict[str, tuple[str, ...]] = {}
    coef: dict[tuple[int, str], dict[str, float]] = {}
    notes: list[str] = []
    for i, m in agg.moment_metrics(M):
        p_ = agg.prefix(i)
        f = m.statistic(p_)
        names = agg.variables(m, i)
        covs = m.covariates(p_)
        base = agg.variables(m, i, use_covariates=False)
        empty = Moments.empty(names)
        for label, strata in scope_strata.items():
            kind = "c" if label == COMBINED else "p"
            comps = tuple(f"{kind}|{i}|{j}" for j in range(1 + len(covs)))
            for j, comp in enumerate(comps):
                terms[comp] = base if j == 0 else (covs[j - 1],)
            totals: dict[int, float] = {}
            dropped = 0
            for s in strata:
                cell = by_stratum[s]
                ms = [cell.get(a, {}).get(i, empty) for a in arms]
                if all(x.n >= 2 and math.isfinite(f.value(x)) for x in ms):
                    totals[s] = _total(m, i, ms)
                elif any(x.n for x in ms):
                    dropped += 1
            weights = design_weights(totals)
            values = {a: np.zeros(1 + len(covs)) for a in arms}
            pooled = np.zeros(len(covs))
            has_pre = 0.0
            for s, w in weights.items():
                cell = by_stratum[s]
                allm = empty
                for a in arms:
                    ma = cell.get(a, {}).get(i, empty)
                    allm = allm + ma
                    values[a] = values[a] + w * stratum_values(ma, f, covs)
                    cmat = influence_coefficients(ma, f, covs, w)
                    row = coef.setdefault((s, a), {})
                    for j, comp in enumerate(comps):
                        for v in terms[comp]:
                            row[f"k|{comp}|{v}"] = float(cmat[j, ma.index(v)])
                        row[f"o|{comp}"] = float(cmat[j, -1])
                if covs:
                    pooled = pooled + w * np.array([allm.mean(h) for h in covs])
                if m.pre_period:
                    has_pre += float(allm.sums[allm.index(f"{p_}d")])
            adjust = bool(covs) and (not m.pre_period or has_pre > 0)
            scopes[(i, label)] = Scope(
                i, label, comps, weights, covs, adjust, values, pooled, dropped
            )
        top = scopes[(i, COMBINED)]
        if m.pre_period and not top.adjust and top.weights:
            notes.append(f"{m.label}: no unit has pre-period events; not regression-adjusted")
        if top.dropped:
            notes.append(
                f"{m.label}: {top.dropped} time strata left out of the clean estimates "
                "(an arm had fewer than two units there)"
            )
    keys = sorted(coef)
    # every component the second pass reads has its columns, also a metric with no usable
    # stratum (all its values missing): zero coefficients, so its influence is 0
    needed = {f"o|{comp}" for comp in terms} | {
        f"k|{comp}|{v}" for comp, names in terms.items() for v in names
    }
    columns = sorted({c for row in coef.values() for c in row} | needed)
    constants: dict[str, list[Any]] = {
        "stratum": [s for s, _ in keys],
        "arm": [a for _, a in keys],
    }
    for col in columns:
        constants[col] = [coef[k].get(col, 0.0) for k in keys]
    return Prepared(scopes, constants, terms, tuple(notes))


def _arm_influence(
    scope: Scope, arm: str, rows: Sequence[Mapping[str, Any]], label_key: str | None
) -> ArmInfluence:
    """The arm's :class:`ArmInfluence` from the collected second-pass rows of the scope."""
    k = len(scope.comps)
    cross = np.zeros((k, k))
    n = 0
    for r in rows:
        if r["arm"] != arm or (label_key is not None and str(r[label_key]) != scope.label):
            continue
        n = int(r["n"])
        for a in range(k):
            for b in range(a, k):
                v = r.get(f"c|{scope.comps[a]}|{scope.comps[b]}")
                cross[a, b] = cross[b, a] = float(v) if v is not None else 0.0
    return ArmInfluence(n, scope.values[arm], cross)


def scope_effects(
    ctx: _Context,
    prep: Prepared,
    per_phase: Sequence[Mapping[str, Any]],
    overall: Sequence[Mapping[str, Any]],
) -> dict[tuple[int, str, str], StratifiedResult]:
    """``(metric, scope label, arm) -> StratifiedResult`` of every moment metric.

    Args:
        ctx: The run.
        prep: From :func:`prepare`.
        per_phase: The collected per phase × arm influence sums.
        overall: The collected per arm influence sums (the ``combined`` scope).
    """
    out: dict[tuple[int, str, str], StratifiedResult] = {}
    alpha = ctx.options["alpha"]
    for (i, label), scope in prep.scopes.items():
        rows, key = (overall, None) if label == COMBINED else (per_phase, "phase")
        c = _arm_influence(scope, ctx.control, rows, key)
        for a in ctx.arms:
            t = _arm_influence(scope, a, rows, key)
            if not scope.weights:
                nan = math.nan
                r = effect_from_arms(
                    ArmEstimate(c.n, nan, nan, nan), ArmEstimate(t.n, nan, nan, nan)
                )
                out[(i, label, a)] = StratifiedResult(r, r, np.zeros(0))
                continue
            out[(i, label, a)] = _stratified_effect(
                c, t, pooled=scope.pooled, adjust=scope.adjust, alpha=alpha
            )
    return out
