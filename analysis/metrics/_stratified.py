"""The statistics of the stratified clean estimates (per phase and combined), on aggregates.

Two steps around the engine's second pass (:func:`~analysis.metrics._plan.influence_plan`):

1. :func:`prepare` reads the collected per stratum × arm × fresh moments, fixes the design
   weights of every scope (each exposure phase, and ``combined``), the point estimates, and the
   constants the engine needs to compute each unit's influence functions;
2. :func:`scope_effects` turns the collected sums of influence products into the adjusted and
   unadjusted effects of every metric × scope × arm
   (:func:`~analysis.stats.stratified.stratified_effect`), and :func:`joint_tests` into the
   phase-equality test and the default-versus-fresh comparison.

Estimand of a scope (see :mod:`analysis.stats.stratified`): ``Σ_s w_s (f(μ_t,s) − f(μ_c,s))``
over the time strata ``s`` of the scope, with ``w_s`` the share of the scope's clean turns
(ratio metrics: the denominator's total over both arms) or clean unit-blocks (per-unit metrics)
in the stratum. Strata where an arm has fewer than two units, or the metric is undefined, get no
weight (and a note). In each stratum a unit is in the arm it had in that phase: a ramp-moved
unit is control in one phase and treatment in another, one cluster with both parts.

*Variants.* ``d`` (default): every unit of the stratum. ``f`` (fresh cohort): only units first
enrolled in the stratum's phase, with the default's design weights (renormalised over the
strata where the fresh units of both arms can be compared); it needs no assumption about what
units remember of an earlier phase.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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
    factor,
    influence_coefficients,
    scaled,
    stratum_values,
    wald_equal,
)
from analysis.stats.stratified import stratified_effect as _stratified_effect

__all__ = [
    "COMBINED",
    "JointTests",
    "Prepared",
    "Scope",
    "joint_tests",
    "prepare",
    "scope_effects",
    "stratum_key",
]

COMBINED = "combined"
#: Variants of a scope: every unit of the strata (default) and units first enrolled in the
#: stratum's phase (fresh cohort).
VARIANTS = ("d", "f")


def stratum_key(stratum: int, fresh: bool) -> int:
    """The constants' key of a stratum × fresh-cohort cell."""
    return 2 * stratum + int(fresh)


class StratumPart(NamedTuple):
    """One stratum's unweighted contributions to a scope's values."""

    values: Mapping[str, npt.NDArray[np.float64]]
    pooled: npt.NDArray[np.float64]
    pre: float


@dataclass(frozen=True)
class Scope:
    """One metric × scope (an exposure phase or ``combined``) × variant of the clean analysis.

    Attributes:
        metric: Metric index.
        label: ``"1"``, ``"2"``, ... or ``combined``.
        variant: ``d`` (all units) or ``f`` (fresh cohort).
        comps: Names of the influence components (metric, then each covariate).
        weights: Stratum -> design weight (usable strata only).
        covariates: The covariate variables (empty: no adjustment possible).
        adjust: Whether the effect is regression-adjusted.
        values: Arm -> ``Σ_s w_s (f, covariate means)`` of the arm.
        pooled: ``Σ_s w_s`` covariate means over both arms.
        dropped: Strata of the scope left out (an arm with fewer than two units).
        parts: Stratum -> its unweighted contributions ``(arm -> (f, covariate means), pooled
            covariate means, pre-period events)``: what a prefix of the strata (a look of a
            sequential analysis, :mod:`analysis.metrics._looks`) is rebuilt from.
    """

    metric: int
    label: str
    variant: str
    comps: tuple[str, ...]
    weights: Mapping[int, float]
    covariates: tuple[str, ...]
    adjust: bool
    values: Mapping[str, npt.NDArray[np.float64]]
    pooled: npt.NDArray[np.float64]
    dropped: int
    parts: Mapping[int, StratumPart] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The presence name of the scope × variant (``d1``, ``fcombined``...)."""
        return f"{self.variant}{self.label}"


@dataclass(frozen=True)
class Prepared:
    """What the second pass needs and what the effects are built from.

    Attributes:
        scopes: ``(metric index, scope label, variant)`` -> :class:`Scope`.
        constants: Columns of the constants table (one row per stratum key × arm).
        terms: Influence component -> the unit-level variables it reads.
        presence: Presence name -> ``(phase or None, fresh only)``: the rows a scope × variant
            counts units on.
        products: The pairs of per-unit influence columns whose products are summed.
        notes: Notes on the choices made (adjustment, dropped strata).
    """

    scopes: Mapping[tuple[int, str, str], Scope]
    constants: Mapping[str, list[Any]]
    terms: Mapping[str, tuple[str, ...]]
    presence: Mapping[str, tuple[int | None, bool]]
    products: tuple[tuple[str, str], ...]
    notes: tuple[str, ...] = field(default=())


def _total(m: MomentMetric, i: int, arms: Sequence[Moments]) -> float:
    """The stratum's design total over all arms: clean turns (the ratio's denominator) or
    unit-blocks."""
    if isinstance(m, Ratio):
        x = f"{agg.prefix(i)}x"
        return float(sum(a.sums[a.index(x)] for a in arms))
    return float(sum(a.n for a in arms))


def _ucol(arm: str, comp: str) -> str:
    return f"u|{arm}|{comp}"


def _pairs(cols: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for k, a in enumerate(cols) for b in cols[k:]]


def prepare(ctx: _Context, rows: list[dict[str, Any]]) -> Prepared:
    """Weights, point estimates and second-pass constants from the per stratum × arm × fresh
    moments.

    Args:
        ctx: The run (its ``strata``: ``(phase, start)`` per stratum index).
        rows: The collected ``strata`` aggregate (keys ``phase``, ``stratum``, ``arm``,
            ``fresh``).
    """
    M, ctrl = ctx.metrics, ctx.control
    arms = (ctrl, *ctx.arms)
    moments = agg.read_moments(rows, ["phase", "stratum", "arm", "fresh"], M)
    cells: dict[str, dict[int, dict[str, dict[int, Moments]]]] = {"d": {}, "f": {}}
    for (_, s, a, fresh), by_metric in moments.items():
        for v in ("d", "f") if fresh else ("d",):
            slot = cells[v].setdefault(int(s), {}).setdefault(a, {})
            for i, mom in by_metric.items():
                slot[i] = slot[i] + mom if i in slot else mom
    phase_of = {s: p for s, (p, _) in enumerate(ctx.strata)}
    scope_strata: dict[str, list[int]] = {str(p): [] for p in ctx.exposure}
    scope_strata[COMBINED] = []
    for s in sorted(cells["d"]):
        if s in phase_of:
            scope_strata[str(phase_of[s])].append(s)
            scope_strata[COMBINED].append(s)
    scopes: dict[tuple[int, str, str], Scope] = {}
    terms: dict[str, tuple[str, ...]] = {}
    coef: dict[tuple[int, str], dict[str, float]] = {}
    presence: dict[str, tuple[int | None, bool]] = {}
    products: list[tuple[str, str]] = []
    notes: list[str] = []
    for i, m in agg.moment_metrics(M):
        p_ = agg.prefix(i)
        f = m.statistic(p_)
        names = agg.variables(m, i)
        covs = m.covariates(p_)
        base = agg.variables(m, i, use_covariates=False)
        empty = Moments.empty(names)
        for label, strata in scope_strata.items():
            default_weights: dict[int, float] = {}
            for v in VARIANTS:
                presence[f"{v}{label}"] = (None if label == COMBINED else int(label), v == "f")
                comps = tuple(f"{v}{label}|{i}|{j}" for j in range(1 + len(covs)))
                for j, comp in enumerate(comps):
                    terms[comp] = base if j == 0 else (covs[j - 1],)
                usable: dict[int, float] = {}
                dropped = 0
                for s in strata:
                    cell = cells[v].get(s, {})
                    ms = [cell.get(a, {}).get(i, empty) for a in arms]
                    if all(x.n >= 2 and math.isfinite(f.value(x)) for x in ms):
                        usable[s] = _total(m, i, ms)
                    elif any(x.n for x in ms):
                        dropped += 1
                if v == "d":
                    weights = design_weights(usable)
                    default_weights = weights
                else:  # the default's weights, over the strata the fresh units can compare
                    weights = design_weights(
                        {s: w for s, w in default_weights.items() if s in usable}
                    )
                values = {a: np.zeros(1 + len(covs)) for a in arms}
                pooled = np.zeros(len(covs))
                has_pre = 0.0
                parts: dict[int, StratumPart] = {}
                for s, w in weights.items():
                    cell = cells[v][s]
                    allm = empty
                    part: dict[str, npt.NDArray[np.float64]] = {}
                    for a in arms:
                        ma = cell.get(a, {}).get(i, empty)
                        allm = allm + ma
                        part[a] = stratum_values(ma, f, covs)
                        values[a] = values[a] + w * part[a]
                        cmat = influence_coefficients(ma, f, covs, w)
                        for fresh in (False, True) if v == "d" else (True,):
                            row = coef.setdefault((stratum_key(s, fresh), a), {})
                            for j, comp in enumerate(comps):
                                for var in terms[comp]:
                                    row[f"k|{comp}|{var}"] = float(cmat[j, ma.index(var)])
                                row[f"o|{comp}"] = float(cmat[j, -1])
                    cov_means = np.array([allm.mean(h) for h in covs], dtype=np.float64)
                    if covs:
                        pooled = pooled + w * cov_means
                    pre = float(allm.sums[allm.index(f"{p_}d")]) if m.pre_period else 0.0
                    has_pre += pre
                    parts[s] = StratumPart(part, cov_means, pre)
                adjust = bool(covs) and (not m.pre_period or has_pre > 0)
                scopes[(i, label, v)] = Scope(
                    i, label, v, comps, weights, covs, adjust, values, pooled, dropped, parts
                )
        # products: each scope × variant with itself; the phases together (phase-equality
        # test); combined default with combined fresh (their difference)
        groups = [[(str(p), "f")] for p in ctx.exposure]
        groups.append([(str(p), "d") for p in ctx.exposure])
        groups.append([(COMBINED, "d"), (COMBINED, "f")])
        for t in ctx.arms:
            for group in groups:
                cols = [
                    _ucol(a, c)
                    for a in (t, ctrl)
                    for label, v in group
                    for c in scopes[(i, label, v)].comps
                ]
                products.extend(_pairs(cols))
        top = scopes[(i, COMBINED, "d")]
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
        "skey": [s for s, _ in keys],
        "arm": [a for _, a in keys],
    }
    for col in columns:
        constants[col] = [coef[k].get(col, 0.0) for k in keys]
    return Prepared(
        scopes, constants, terms, presence, tuple(dict.fromkeys(products)), tuple(notes)
    )


def _x(row: Mapping[str, Any], a: str, b: str) -> float:
    """The collected sum of products of per-unit columns ``a`` and ``b`` (either order)."""
    v = row.get(f"x|{a}|{b}")
    if v is None:
        v = row.get(f"x|{b}|{a}")
    return float(v) if v is not None else 0.0


def _block(
    row: Mapping[str, Any], arm_a: str, comps_a: Sequence[str], arm_b: str, comps_b: Sequence[str]
) -> npt.NDArray[np.float64]:
    """``Σ_i u_i[arm_a, comps_a] u_i[arm_b, comps_b]ᵀ``: raw sums of products."""
    out = np.zeros((len(comps_a), len(comps_b)))
    for x, ca in enumerate(comps_a):
        for y, cb in enumerate(comps_b):
            out[x, y] = _x(row, _ucol(arm_a, ca), _ucol(arm_b, cb))
    return out


def _n(row: Mapping[str, Any], arm: str, name: str) -> int:
    v = row.get(f"n|{arm}|{name}")
    return int(v) if v is not None else 0


def _both(row: Mapping[str, Any], ctrl: str, arm: str, name: str) -> int:
    v = row.get(f"b|{ctrl}|{arm}|{name}")
    if v is None:
        v = row.get(f"b|{arm}|{ctrl}|{name}")
    return int(v) if v is not None else 0


def scope_effects(
    ctx: _Context, prep: Prepared, row: Mapping[str, Any]
) -> dict[tuple[int, str, str, str], StratifiedResult]:
    """``(metric, scope label, variant, arm) -> StratifiedResult`` of every moment metric.

    Args:
        ctx: The run.
        prep: From :func:`prepare`.
        row: The collected second pass (one row, :func:`~analysis.metrics.aggregation.
            influence_sums`).
    """
    out: dict[tuple[int, str, str, str], StratifiedResult] = {}
    alpha, ctrl = ctx.options["alpha"], ctx.control
    for (i, label, v), scope in prep.scopes.items():
        n_c = _n(row, ctrl, scope.name)
        cc = _block(row, ctrl, scope.comps, ctrl, scope.comps)
        c = ArmInfluence(n_c, scope.values[ctrl], cc)
        for a in ctx.arms:
            n_t = _n(row, a, scope.name)
            t = ArmInfluence(n_t, scope.values[a], _block(row, a, scope.comps, a, scope.comps))
            if not scope.weights:
                nan = math.nan
                r = effect_from_arms(
                    ArmEstimate(n_c, nan, nan, nan), ArmEstimate(n_t, nan, nan, nan)
                )
                out[(i, label, v, a)] = StratifiedResult(r, r, np.zeros(0))
                continue
            out[(i, label, v, a)] = _stratified_effect(
                c,
                t,
                pooled=scope.pooled,
                adjust=scope.adjust,
                alpha=alpha,
                between=_block(row, a, scope.comps, ctrl, scope.comps),
                n_units=n_c + n_t - _both(row, ctrl, a, scope.name),
            )
    return out


def _weights_u(sr: StratifiedResult, k: int) -> npt.NDArray[np.float64]:
    """``(1, −θ)`` of an estimate, padded to ``k`` components."""
    u = np.zeros(k)
    u[0] = 1.0
    if sr.theta.size:
        u[1:] = -sr.theta
    return u


def _part(
    row: Mapping[str, Any], sk: Scope, sl: Scope, a: str, fa: float, b: str, fb: float
) -> npt.NDArray[np.float64]:
    """The scaled block of arm ``a`` × scope ``sk`` against arm ``b`` × scope ``sl``."""
    raw = _block(row, a, sk.comps, b, sl.comps)
    return scaled(raw, np.full(len(sk.comps), fa), np.full(len(sl.comps), fb))


def effect_covariance(
    ctx: _Context,
    row: Mapping[str, Any],
    items: Sequence[tuple[Scope, StratifiedResult]],
    arm: str,
) -> npt.NDArray[np.float64]:
    """Joint clustered covariance of several adjusted effects of one metric × arm (units in
    several scopes, and in both arms, are one cluster each): ``Cov(Δ̂_k, Δ̂_l) = u_kᵀ (S_tt +
    S_cc − S_tc − S_ct)_{kl} u_l`` with each component scaled by its arm × scope factor."""
    ctrl = ctx.control
    m = len(items)
    out = np.zeros((m, m))
    for k, (sk, rk) in enumerate(items):
        uk = _weights_u(rk, len(sk.comps))
        fk_t, fk_c = factor(_n(row, arm, sk.name)), factor(_n(row, ctrl, sk.name))
        for ll, (sl, rl) in enumerate(items):
            ul = _weights_u(rl, len(sl.comps))
            fl_t, fl_c = factor(_n(row, arm, sl.name)), factor(_n(row, ctrl, sl.name))

            s = (
                _part(row, sk, sl, arm, fk_t, arm, fl_t)
                + _part(row, sk, sl, ctrl, fk_c, ctrl, fl_c)
                - _part(row, sk, sl, arm, fk_t, ctrl, fl_c)
                - _part(row, sk, sl, ctrl, fk_c, arm, fl_t)
            )
            out[k, ll] = float(uk @ s @ ul)
    return out


class PhaseEqualityRow(NamedTuple):
    """Wald test that the per-phase clean effects of one metric × arm are equal.

    Attributes:
        metric: Metric label.
        arm: Treatment arm.
        statistic: Wald statistic (χ² with ``df`` degrees of freedom).
        df: Phases compared minus one.
        pvalue: Its p-value (clustered covariance across phases: units appear in several).
        phases: The phases compared (those with an estimate), as text ``"1, 2"``.
        effects: Their (adjusted) effects, in the same order.
    """

    metric: str
    arm: str
    statistic: float
    df: int
    pvalue: float
    phases: str
    effects: tuple[float, ...]


class JointTests(NamedTuple):
    """The tests that need the joint covariance of several estimates.

    Attributes:
        phase_equality: One row per moment metric × treatment arm.
        fresh_gap: ``(metric, arm) -> (default − fresh combined effect, its SE, p-value)``.
    """

    phase_equality: list[PhaseEqualityRow]
    fresh_gap: dict[tuple[int, str], tuple[float, float, float]]


def joint_tests(
    ctx: _Context,
    prep: Prepared,
    row: Mapping[str, Any],
    strat: Mapping[tuple[int, str, str, str], StratifiedResult],
) -> JointTests:
    """Phase-equality Wald tests and the default − fresh differences of the combined rows."""
    from scipy import stats as st

    rows: list[PhaseEqualityRow] = []
    gap: dict[tuple[int, str], tuple[float, float, float]] = {}
    for i, m in agg.moment_metrics(ctx.metrics):
        for a in ctx.arms:
            items = [
                (prep.scopes[(i, str(p), "d")], strat[(i, str(p), "d", a)])
                for p in ctx.exposure
                if prep.scopes[(i, str(p), "d")].weights
                and math.isfinite(strat[(i, str(p), "d", a)].adjusted.effect)
            ]
            effects = np.array([r.adjusted.effect for _, r in items])
            if len(items) >= 2:
                w, df, pv = wald_equal(effects, effect_covariance(ctx, row, items, a))
            else:
                w, df, pv = math.nan, max(len(items) - 1, 0), math.nan
            rows.append(
                PhaseEqualityRow(
                    m.label,
                    a,
                    w,
                    df,
                    pv,
                    ", ".join(s.label for s, _ in items),
                    tuple(float(e) for e in effects),
                )
            )
            d_scope, f_scope = prep.scopes[(i, COMBINED, "d")], prep.scopes[(i, COMBINED, "f")]
            d_r, f_r = strat[(i, COMBINED, "d", a)], strat[(i, COMBINED, "f", a)]
            diff = d_r.adjusted.effect - f_r.adjusted.effect
            if d_scope.weights and f_scope.weights and math.isfinite(diff):
                cov = effect_covariance(ctx, row, [(d_scope, d_r), (f_scope, f_r)], a)
                var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
                se = math.sqrt(var) if var > 0 else math.nan
                pv = float(2 * st.norm.sf(abs(diff) / se)) if se > 0 else math.nan
                gap[(i, a)] = (diff, se, pv)
            else:
                gap[(i, a)] = (math.nan, math.nan, math.nan)
    return JointTests(rows, gap)
