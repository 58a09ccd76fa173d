"""The looks of a sequential analysis: what each always-valid decision said at every time-block
boundary, from one run.

A sequential analysis (``analyze(..., sequential=True)``) may be repeated whenever one likes;
this module answers "at which look would it first have fired?" without repeating it. A *look*
is the end of a time stratum (the analysis' time blocks within the exposure phases; the last
look is the analysis itself). Look ``k`` sees the clean events of strata ``0..k`` **as this
analysis labelled them** (its contamination labels, winsorizing bounds and window: a run at that
time could have labelled a late event or a unit that crossed later differently).

Estimand at look ``k`` (scope ``combined``): ``Σ_{s≤k} w_s (f(μ_t,s) − f(μ_c,s)) / W_k`` with
``w_s`` the analysis' design weights and ``W_k = Σ_{s≤k} w_s`` — what ``analyze`` estimates on
the events before the look's end (tested against it). Scope ``latest``: the same over the
strata ``≤ k`` of the phase the look falls in (the latest phase at that time).

How one pass gives every look: the influence coefficients are linear in the stratum's weight
(:func:`~analysis.stats.stratified.influence_coefficients`), so a unit's influence at look ``k``
is its running sum ``C_k`` of the analysis' per-stratum influences over strata ``≤ k``, divided
by ``W_k``. The sums over units of products ``Σ_i C_p C_q`` at every look come from one pass over
the per unit × stratum table: each row adds ``C_p C_q − (C_p − d_p)(C_q − d_q)`` (``d`` the
unit's part in that stratum, ``C`` its running sum ordered by stratum, a window per unit),
summed per stratum; a running sum over the strata gives every look. The units per arm (and in
both arms) at each look come from the same pass. The cost is one more pass over the per-unit
table, whatever the number of looks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import narwhals as nw
import numpy as np
import numpy.typing as npt

from analysis.metrics import aggregation as agg
from analysis.metrics._assignment import srm_first_looks
from analysis.metrics._context import _Context
from analysis.metrics._plan import keyed_by_stratum
from analysis.metrics._stratified import COMBINED, Prepared, Scope
from analysis.metrics.results import FirstLookRow, LookRow
from analysis.stats.effect import EffectResult
from analysis.stats.stratified import ArmInfluence, stratified_effect

__all__ = ["first_looks", "look_ends", "look_rows", "looks_plan"]

#: The two scopes of a look: every stratum so far (``c``), the look's phase so far (``p``).
_KINDS = ("c", "p")
_SCOPE = {"c": "combined", "p": "latest"}


def _d(kind: str, arm: str, i: int, j: int) -> str:
    return f"d|{kind}|{arm}|{i}|{j}"


def _c(kind: str, arm: str, i: int, j: int) -> str:
    return f"C|{kind}|{arm}|{i}|{j}"


def _x(kind: str, i: int, a: tuple[str, int], b: tuple[str, int]) -> str:
    return f"x|{kind}|{i}|{a[0]}:{a[1]}|{b[0]}:{b[1]}"


def _components(prep: Prepared) -> dict[int, dict[str, Any]]:
    """Per moment metric: the components of its combined scope and of each phase scope."""
    out: dict[int, dict[str, Any]] = {}
    for (i, label, v), scope in prep.scopes.items():
        if v != "d":
            continue
        slot = out.setdefault(i, {"c": (), "p": {}})
        if label == COMBINED:
            slot["c"] = scope.comps
        else:
            slot["p"][int(label)] = scope.comps
    return out


def looks_plan(ctx: _Context, units: nw.LazyFrame[Any], prep: Prepared) -> nw.LazyFrame[Any]:
    """One row per time stratum: the increments of the sums of products of the units' running
    influences (scopes ``c`` and ``p``), of the units reaching each arm (``n|kind|arm``) and of
    the units in both the control and a treatment arm (``b|kind|arm``).

    Args:
        ctx: The run.
        units: The per stratum × unit aggregates of the second pass.
        prep: The second pass' constants (:func:`~analysis.metrics._stratified.prepare`).
    """
    ctrl = ctx.control
    arms = (ctrl, *ctx.arms)
    comps = _components(prep)
    terms = {
        comp: prep.terms[comp]
        for slot in comps.values()
        for comp in (*slot["c"], *(c for cs in slot["p"].values() for c in cs))
    }
    rows = agg.with_constants(keyed_by_stratum(units), prep.constants, "skey").select(
        ctx.unit, "phase", "stratum", "arm", *agg.psi_exprs(terms)
    )
    parts: list[nw.Expr] = []
    dnames: dict[str, list[str]] = {k: [] for k in _KINDS}
    for i, slot in comps.items():
        for j, comp in enumerate(slot["c"]):
            own = nw.col(f"psi|{comp}")
            phase_expr: nw.Expr = nw.lit(0.0)
            for p_comps in slot["p"].values():  # only the row's own phase is non-zero
                phase_expr = phase_expr + nw.col(f"psi|{p_comps[j]}")
            for a in arms:
                is_a = nw.col("arm") == a
                for kind, expr in (("c", own), ("p", phase_expr)):
                    name = _d(kind, a, i, j)
                    parts.append(nw.when(is_a).then(expr).otherwise(0.0).alias(name))
                    dnames[kind].append(name)
    flags = [(nw.col("arm") == a).cast(nw.Int64).alias(f"in|{a}") for a in arms]
    per = (
        rows.select(ctx.unit, "phase", "stratum", *parts, *flags)
        .group_by(ctx.unit, "phase", "stratum")
        .agg(
            *(nw.col(n).sum() for k in _KINDS for n in dnames[k]),
            *(nw.col(f"in|{a}").max() for a in arms),
        )
    )
    part_by = {"c": [ctx.unit], "p": [ctx.unit, "phase"]}
    running: list[nw.Expr] = []
    for kind in _KINDS:
        for n in dnames[kind]:
            running.append(
                nw.col(n).cum_sum().over(*part_by[kind], order_by="stratum").alias("C" + n[1:])
            )
        for a in arms:
            running.append(
                nw.col(f"in|{a}")
                .cum_sum()
                .over(*part_by[kind], order_by="stratum")
                .alias(f"m|{kind}|{a}")
            )
    windowed = per.with_columns(*running)
    incs: dict[str, nw.Expr] = {}
    for kind in _KINDS:
        for i, slot in comps.items():
            k = len(slot["c"])
            for t in ctx.arms:
                cols = [(a, j) for a in (t, ctrl) for j in range(k)]
                for x, p in enumerate(cols):
                    for q in cols[x:]:
                        cp, cq = nw.col(_c(kind, p[0], i, p[1])), nw.col(_c(kind, q[0], i, q[1]))
                        dp, dq = nw.col(_d(kind, p[0], i, p[1])), nw.col(_d(kind, q[0], i, q[1]))
                        incs[_x(kind, i, p, q)] = cp * cq - (cp - dp) * (cq - dq)
        for a in arms:
            first = (nw.col(f"m|{kind}|{a}") == 1) & (nw.col(f"in|{a}") == 1)
            incs[f"n|{kind}|{a}"] = first.cast(nw.Int64)
        for t in ctx.arms:
            mc, mt = nw.col(f"m|{kind}|{ctrl}"), nw.col(f"m|{kind}|{t}")
            now = (mc > 0) & (mt > 0)
            before = ((mc - nw.col(f"in|{ctrl}")) > 0) & ((mt - nw.col(f"in|{t}")) > 0)
            incs[f"b|{kind}|{t}"] = now.cast(nw.Int64) - before.cast(nw.Int64)
    return (
        windowed.select("stratum", *(e.alias(n) for n, e in incs.items()))
        .group_by("stratum")
        .agg(*(nw.col(n).sum() for n in incs))
    )


def look_ends(ctx: _Context, until: datetime | None) -> list[datetime]:
    """When each look ends, for the strata that start before ``until`` (the analysis' window
    end; strata after it hold no data and are no look): the next stratum's start (or its
    phase's end, if earlier), never after ``until``; the last look ends at ``until`` — it is this
    analysis."""
    ends: list[datetime] = []
    phase_end = {p.id: p.end for p in ctx.phases}
    hours = ctx.options.get("block_hours") or 6.0
    strata = [(p, s) for p, s in ctx.strata if until is None or s < until]
    for k, (phase, start) in enumerate(strata):
        end = phase_end.get(phase)
        if k + 1 < len(strata):
            nxt = strata[k + 1][1]
            end = nxt if end is None else min(end, nxt)
        else:
            end = until if until is not None else end
        if end is not None and until is not None:
            end = min(end, until)
        ends.append(end if end is not None else start + timedelta(hours=hours))
    return ends


def _running(rows: Sequence[Mapping[str, Any]], ctx: _Context) -> list[dict[str, dict[str, float]]]:
    """Per look: the running totals of the increments, per scope kind (``p`` restarts at each
    phase's first stratum)."""
    by = {int(r["stratum"]): r for r in rows if r.get("stratum") is not None}
    out: list[dict[str, dict[str, float]]] = []
    tot: dict[str, dict[str, float]] = {"c": {}, "p": {}}
    for k, (phase, _) in enumerate(ctx.strata):
        if k == 0 or ctx.strata[k - 1][0] != phase:
            tot["p"] = {}
        row = by.get(k, {})
        for name, value in row.items():
            if name == "stratum" or value is None:
                continue
            kind = name.split("|")[1]
            tot[kind][name] = tot[kind].get(name, 0.0) + float(value)
        out.append({"c": dict(tot["c"]), "p": dict(tot["p"])})
    return out


def _block(
    tot: Mapping[str, float], kind: str, i: int, a: str, b: str, k: int, scale: float
) -> npt.NDArray[np.float64]:
    out = np.zeros((k, k))
    for x in range(k):
        for y in range(k):
            v = tot.get(_x(kind, i, (a, x), (b, y)))
            if v is None:
                v = tot.get(_x(kind, i, (b, y), (a, x)), 0.0)
            out[x, y] = v * scale
    return out


def _look_effect(
    ctx: _Context, scope: Scope, k: int, tot: Mapping[str, float], kind: str, arm: str
) -> EffectResult | None:
    """The scope's clean effect of ``arm`` on the strata up to look ``k`` (None: no stratum
    with weight yet)."""
    weights = {s: w for s, w in scope.weights.items() if s <= k}
    total = sum(weights.values())
    if not weights or total <= 0:
        return None
    ctrl, i = ctx.control, scope.metric
    m = ctx.metrics[i]
    vals = {a: np.zeros(len(scope.comps)) for a in (ctrl, arm)}
    pooled = np.zeros(len(scope.covariates))
    for s, w in weights.items():
        for a, v in list(vals.items()):
            vals[a] = v + w * scope.parts[s].values[a] / total
        pooled = pooled + w * scope.parts[s].pooled / total
    pre = sum(scope.parts[s].pre for s in weights)
    adjust = bool(scope.covariates) and (not m.pre_period or pre > 0)
    n = len(scope.comps)
    scale = 1.0 / (total * total)
    n_c = int(tot.get(f"n|{kind}|{ctrl}", 0))
    n_t = int(tot.get(f"n|{kind}|{arm}", 0))
    both = int(tot.get(f"b|{kind}|{arm}", 0))
    c = ArmInfluence(n_c, vals[ctrl], _block(tot, kind, i, ctrl, ctrl, n, scale))
    t = ArmInfluence(n_t, vals[arm], _block(tot, kind, i, arm, arm, n, scale))
    res = stratified_effect(
        c,
        t,
        pooled=pooled,
        adjust=adjust,
        alpha=ctx.options["alpha"],
        between=_block(tot, kind, i, arm, ctrl, n, scale),
        n_units=n_c + n_t - both,
    )
    return res.adjusted


def look_rows(
    ctx: _Context,
    prep: Prepared,
    rows: Sequence[Mapping[str, Any]],
    ends: Sequence[datetime],
    *,
    burn_in: int,
    ready_now: bool,
) -> list[LookRow]:
    """The clean effect (combined and latest phase) of every moment metric × treatment arm at
    every look, with its always-valid inference tuned at ``planned_units``.

    Args:
        ctx: The run (``options``: ``alpha``, ``planned_units``, ``block_hours``).
        prep: The second pass' constants.
        rows: The collected :func:`looks_plan` (one row per stratum).
        ends: :func:`look_ends`.
        burn_in: Units per arm before a look may decide.
        ready_now: Whether this analysis is past the burn-in's time half (the last look).
    """
    from analysis.stats.sequential import look_inference

    alpha, planned_units = ctx.options["alpha"], ctx.options["planned_units"]
    block = timedelta(hours=ctx.options.get("block_hours") or 6.0)
    first = ctx.strata[0][1] if ctx.strata else None
    totals = _running(rows, ctx)
    out: list[LookRow] = []
    last = len(ends) - 1
    for k, (phase, _) in enumerate(ctx.strata[: len(ends)]):
        # the burn-in's time half as ``analyze`` on the export cut at the look: its window ends
        # just after the newest event before the boundary, so strictly before it; the last look
        # is this analysis (``ready_now``)
        timely = ready_now if k == last else first is not None and ends[k] - first > block
        for (i, label, v), scope in prep.scopes.items():
            if v != "d" or label not in (COMBINED, str(phase)):
                continue
            kind = "c" if label == COMBINED else "p"
            for arm in ctx.arms:
                r = _look_effect(ctx, scope, k, totals[k][kind], kind, arm)
                if r is None:
                    continue
                units = r.n_control + r.n_arm
                lo, hi, p_seq = look_inference(r.effect, r.se, units, planned_units, alpha=alpha)
                out.append(
                    LookRow(
                        look=k + 1,
                        at=ends[k].isoformat(),
                        metric=ctx.metrics[i].label,
                        scope=_SCOPE[kind],
                        phase=label,
                        control=ctx.control,
                        arm=arm,
                        n_control=r.n_control,
                        n_arm=r.n_arm,
                        control_mean=r.control_mean,
                        effect=r.effect,
                        se=r.se,
                        cs_lower=lo,
                        cs_upper=hi,
                        pvalue_sequential=p_seq,
                        ready=bool(timely and min(r.n_control, r.n_arm) >= burn_in),
                    )
                )
    return out


def first_looks(
    ctx: _Context,
    looks: Sequence[LookRow],
    assignment: Sequence[Mapping[str, Any]],
    ends: Sequence[datetime],
    *,
    regressions: Sequence[tuple[str, str]],
    srm_now: Sequence[int],
    burn_in: int,
) -> list[FirstLookRow]:
    """The first look at which each regression and each phase's sample ratio mismatch would
    have fired under the sequential decision rules of ``analyze``.

    A regression at look ``k``: the combined clean effect of a metric with a direction is in
    the harmful direction and its always-valid p-value, Holm-adjusted across the metrics × arms
    at that look, is below ``alpha``, after the burn-in. SRM: the sequential test of each
    phase's newly enrolled units up to the look.

    Args:
        ctx: The run.
        looks: :func:`look_rows`.
        assignment: The collected newly enrolled units per phase × first arm × stratum.
        ends: :func:`look_ends`.
        regressions: ``(metric, arm)`` of the regressions this analysis reports.
        srm_now: Phases with a mismatch in this analysis.
        burn_in: Expected units per arm before a phase's SRM may decide.
    """
    from analysis.stats.multiplicity import adjust_pvalues

    alpha = ctx.options["alpha"]
    direction = {m.label: m.direction for m in ctx.metrics}
    total = len(ends)
    found: dict[tuple[str, str], int] = {}
    by_look: dict[int, list[LookRow]] = {}
    for r in looks:
        if r.scope == "combined":
            by_look.setdefault(r.look, []).append(r)
    for k in sorted(by_look):
        rows = by_look[k]
        adjusted = adjust_pvalues([r.pvalue_sequential for r in rows], "holm")
        for r, pa in zip(rows, adjusted, strict=True):
            d = direction.get(r.metric)
            harmful = d is not None and (r.effect > 0) != (d == "higher")
            if r.ready and harmful and pa < alpha:
                found.setdefault((r.metric, r.arm), k)
    out = [
        FirstLookRow(
            "regression", m, a, "combined", k, total, ends[k - 1].isoformat(), (m, a) in regressions
        )
        for (m, a), k in found.items()
    ]
    exposure = [p for p in ctx.phases if p.kind == "exposure"]
    srm = srm_first_looks(
        assignment, exposure, ctx.options["srm_threshold"], total, burn_in=burn_in
    )
    out += [
        FirstLookRow("srm", "", "", str(p), k + 1, total, ends[k].isoformat(), p in srm_now)
        for p, k in srm.items()
    ]
    return out
