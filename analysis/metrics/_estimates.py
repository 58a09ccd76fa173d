"""The statistics of :func:`~analysis.metrics.analyzing.analyze`: rows from collected aggregates.

Every function here takes the small collected aggregates (lists of dicts, read into
:class:`~analysis.stats.moments.Moments`) and returns result rows: the effects with their
multiplicity adjustment (:func:`effect_rows`), SRM (:func:`srm_rows`), exclusions, alerts, the
explanation and the recovery analysis, and the clustered quantile CIs (:func:`quantile_bounds`,
:func:`quantile_estimates`). No frame is built or collected here; that is
:mod:`analysis.metrics._plan`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from analysis.metrics import aggregation as agg
from analysis.metrics._context import _Context
from analysis.metrics.definitions import Quantile
from analysis.metrics.recovery import (
    GROUPS,
    REFERENCE,
    RecoveryRow,
    RecoverySummaryRow,
    recovered_after,
)
from analysis.metrics.results import (
    EXPLAIN_ORDER,
    EffectRow,
    ExclusionRow,
    ExplainRow,
    SRMRow,
)
from analysis.stats.combine import combine_strata
from analysis.stats.effect import ArmEstimate, EffectResult, arm_estimates, compare
from analysis.stats.moments import Moments
from analysis.stats.multiplicity import adjust_pvalues
from analysis.stats.power import mde as _mde
from analysis.stats.quantile import QuantileEstimate, probability_bounds, quantile_effect
from analysis.stats.sequential import confidence_sequence_halfwidth
from analysis.stats.srm import srm_test

if TYPE_CHECKING:  # pragma: no cover
    from analysis.ledger import Phase

__all__ = [
    "alerts",
    "effect_row",
    "effect_rows",
    "exclusion_rows",
    "explain_rows",
    "quantile_bounds",
    "quantile_estimates",
    "recovery_rows",
    "srm_rows",
]

#: ``(view, group key, metric index)`` of a quantile estimate.
QuantileKey = tuple[str, Any, int]


# -- effects ----------------------------------------------------------------------------------


def effect_row(
    ctx: _Context, analysis: str, phase: str, i: int, arm: str, r: EffectResult
) -> EffectRow:
    """The row of metric ``i`` × ``arm`` (p-value not yet adjusted)."""
    m = ctx.metrics[i]
    alpha, opt = ctx.options["alpha"], ctx.options
    cs_lo = cs_hi = float("nan")
    if opt["sequential"] and math.isfinite(r.se):
        hw = confidence_sequence_halfwidth(
            r.se, r.n_control + r.n_arm, alpha=alpha, n_star=opt["n_star"]
        )
        cs_lo, cs_hi = r.effect - hw, r.effect + hw
    return EffectRow(
        analysis=analysis,
        metric=m.label,
        phase=phase,
        control=ctx.control,
        arm=arm,
        n_control=r.n_control,
        n_arm=r.n_arm,
        control_mean=r.control_mean,
        arm_mean=r.arm_mean,
        effect=r.effect,
        effect_ci_lower=r.effect_ci_lower,
        effect_ci_upper=r.effect_ci_upper,
        rel_effect=r.rel_effect,
        rel_effect_ci_lower=r.rel_effect_ci_lower,
        rel_effect_ci_upper=r.rel_effect_ci_upper,
        pvalue=r.pvalue,
        pvalue_adjusted=float("nan"),
        se=r.se,
        direction=m.direction,
        significant=False,
        better=None,
        cuped_theta=r.theta,
        mde=_mde(r.se, alpha=alpha, power=opt["power"]) if math.isfinite(r.se) else math.nan,
        cs_lower=cs_lo,
        cs_upper=cs_hi,
    )


def effect_rows(
    ctx: _Context,
    collected: Mapping[str, list[dict[str, Any]]],
    qest: Mapping[QuantileKey, QuantileEstimate],
) -> list[EffectRow]:
    """Clean per phase, clean combined and naive pooled effects of every metric × arm, with
    p-values adjusted within each analysis × phase, in table order."""
    M, alpha, ctrl = ctx.metrics, ctx.options["alpha"], ctx.control
    phase_m = agg.read_moments(collected["phase"], ["phase", "arm"], M)
    cohort_m = agg.read_moments(collected["cohort"], ["cohort", "arm"], M)
    naive_m = agg.read_moments(collected["naive"], ["arm"], M, use_covariates=False)
    rows: list[EffectRow] = []

    def get(
        d: Mapping[Any, dict[int, Moments]], key: Any, i: int, names: tuple[str, ...]
    ) -> Moments:
        per = d.get(key)
        return per[i] if per is not None else Moments.empty(names)

    def qget(view: str, key: Any, i: int) -> QuantileEstimate:
        nan = float("nan")
        return qest.get((view, key, i), QuantileEstimate(0, nan, nan, nan, nan))

    for i, metric in enumerate(M):
        if isinstance(metric, Quantile):
            for p in ctx.exposure:
                for a in ctx.arms:
                    r = quantile_effect(
                        qget("phase", (p, ctrl), i), qget("phase", (p, a), i), alpha=alpha
                    )
                    rows.append(effect_row(ctx, "clean", str(p), i, a, r))
            for a in ctx.arms:
                strata = []
                for p in ctx.exposure:
                    qc, qt = qget("cohort", (p, ctrl), i), qget("cohort", (p, a), i)
                    strata.append(
                        (
                            ArmEstimate(qc.n, qc.value, qc.value, qc.se**2),
                            ArmEstimate(qt.n, qt.value, qt.value, qt.se**2),
                        )
                    )
                r = combine_strata(strata, alpha=alpha)
                rows.append(effect_row(ctx, "clean", "combined", i, a, r))
                r = quantile_effect(qget("naive", (ctrl,), i), qget("naive", (a,), i), alpha=alpha)
                rows.append(effect_row(ctx, "naive", "pooled", i, a, r))
            continue
        m = metric
        p_ = agg.prefix(i)
        f, h = m.statistic(p_), m.covariate_statistic(p_)
        names = agg.variables(m, i)
        for p in ctx.exposure:
            for a in ctx.arms:
                r = compare(
                    get(phase_m, (p, ctrl), i, names),
                    get(phase_m, (p, a), i, names),
                    f,
                    covariate=h,
                    alpha=alpha,
                )
                rows.append(effect_row(ctx, "clean", str(p), i, a, r))
        for a in ctx.arms:
            strata = []
            thetas: list[float] = []
            for p in ctx.exposure:
                c, t, theta = arm_estimates(
                    get(cohort_m, (p, ctrl), i, names),
                    get(cohort_m, (p, a), i, names),
                    f,
                    covariate=h,
                )
                strata.append((c, t))
                thetas.append(theta)
            r = combine_strata(strata, alpha=alpha)
            r = r._replace(theta=thetas[-1] if len(thetas) == 1 else float("nan") if h else 0.0)
            rows.append(effect_row(ctx, "clean", "combined", i, a, r))
            n_names = agg.variables(m, i, use_covariates=False)
            r = compare(
                get(naive_m, (ctrl,), i, n_names),
                get(naive_m, (a,), i, n_names),
                f,
                alpha=alpha,
            )
            rows.append(effect_row(ctx, "naive", "pooled", i, a, r))
    # multiplicity within analysis × phase
    families: dict[tuple[str, str], list[int]] = {}
    for j, row in enumerate(rows):
        families.setdefault((row.analysis, row.phase), []).append(j)
    for idx in families.values():
        adj = adjust_pvalues([rows[j].pvalue for j in idx], ctx.options["multiplicity"])
        for j, pa in zip(idx, adj, strict=True):
            sig = bool(pa < alpha)
            good = (rows[j].effect > 0) == (rows[j].direction == "higher")
            rows[j] = rows[j]._replace(
                pvalue_adjusted=pa, significant=sig, better=good if sig else None
            )
    order = {"clean": 0, "naive": 1}
    metric_order = {m.label: k for k, m in enumerate(M)}
    phase_order = {str(p): k for k, p in enumerate(ctx.exposure)} | {
        "combined": 98,
        "pooled": 99,
    }
    rows.sort(
        key=lambda r: (metric_order[r.metric], order[r.analysis], phase_order[r.phase], r.arm)
    )
    return rows


# -- the clustered quantile CIs ---------------------------------------------------------------


def quantile_bounds(
    ctx: _Context,
    view_keys: Mapping[str, Sequence[str]],
    collected: Mapping[str, list[dict[str, Any]]],
    counts: Mapping[str, list[dict[str, Any]]],
) -> dict[QuantileKey, tuple[float, float, int, float]]:
    """Per view, group and quantile metric: the probabilities of the outer quantiles that bound
    the CI (from the per-unit counts at or below the sample quantile), the units and the value.

    Args:
        ctx: The run.
        view_keys: View name -> group keys, in the order of ``counts``.
        collected: The collected aggregates, with the sample quantiles as ``q:<view>``.
        counts: View name -> the collected :func:`~analysis.metrics._plan.below_count_plans`.
    """
    qs = [(i, m) for i, m in enumerate(ctx.metrics) if isinstance(m, Quantile)]
    alpha = ctx.options["alpha"]
    bounds: dict[QuantileKey, tuple[float, float, int, float]] = {}
    for name, keys in view_keys.items():
        qrows = {tuple(r[k] for k in keys): r for r in collected[f"q:{name}"]}
        for row in counts[name]:
            key = tuple(row[k] for k in keys)
            for i, m in qs:
                assert isinstance(m, Quantile)
                lo, hi, _ = probability_bounds(agg.read_below(row, i), m.q, alpha=alpha)
                value = qrows[key][f"q|{i}"]
                bounds[(name, key, i)] = (lo, hi, int(row["n"]), value)
    return bounds


def quantile_estimates(
    bounds: Mapping[QuantileKey, tuple[float, float, int, float]],
    labels: Sequence[QuantileKey],
    groups: Sequence[Sequence[int]],
    outer: Sequence[list[dict[str, Any]]],
    *,
    alpha: float,
) -> dict[QuantileKey, QuantileEstimate]:
    """The quantile estimates from the collected outer quantiles ``outer`` (one frame per
    group of ``groups``; see :func:`~analysis.metrics._plan.outer_quantile_plans`)."""
    out: dict[QuantileKey, QuantileEstimate] = {}
    for js, res in zip(groups, outer, strict=True):
        r = res[0]
        for j in js:
            lab = labels[j]
            _, _, n_units, value = bounds[lab]
            lo_v, hi_v = r[f"lo{j}"], r[f"hi{j}"]
            out[lab] = QuantileEstimate.from_bounds(
                n_units, float(value), float(lo_v), float(hi_v), alpha=alpha
            )
    return out


# -- SRM, exclusions, alerts ------------------------------------------------------------------


def srm_rows(ctx: _Context, rows: list[dict[str, Any]]) -> list[SRMRow]:
    """The sample-ratio check of each exposure phase on its newly enrolled single-arm units."""
    out: list[SRMRow] = []
    for p in ctx.phases:
        if p.kind != "exposure":
            continue
        observed = {r["first_arm"]: int(r["n"]) for r in rows if r["cohort"] == p.id}
        t = srm_test(observed, p.allocation, threshold=ctx.options["srm_threshold"])
        for a in t.observed:
            out.append(
                SRMRow(
                    p.id,
                    a,
                    float(p.allocation.get(a, 0.0)),
                    t.observed[a],
                    t.expected[a],
                    t.statistic,
                    t.pvalue,
                    t.mismatch,
                )
            )
    return out


def exclusion_rows(rows: list[dict[str, Any]]) -> list[ExclusionRow]:
    """Tagged events and units by label × arm, in label order."""
    from analysis.events.labelling import LABELS

    totals: dict[str, int] = {}
    for r in rows:
        totals[r["arm"]] = totals.get(r["arm"], 0) + int(r["events"])
    out = [
        ExclusionRow(
            r["contamination"],
            r["arm"],
            int(r["events"]),
            int(r["units"]),
            int(r["events"]) / totals[r["arm"]],
        )
        for r in rows
    ]
    order = {lab: k for k, lab in enumerate(LABELS)}
    out.sort(key=lambda r: (order.get(r.label, 99), r.arm))
    return out


def alerts(
    ctx: _Context, srm: list[SRMRow], crossed_units: int, enroll: list[dict[str, Any]]
) -> list[str]:
    """Sample ratio mismatches and a crossover share above its threshold."""
    out: list[str] = []
    seen: set[int] = set()
    for r in srm:
        if r.mismatch and r.phase not in seen:
            seen.add(r.phase)
            obs = ", ".join(f"{x.arm}={x.observed}" for x in srm if x.phase == r.phase)
            out.append(
                f"sample ratio mismatch in phase {r.phase}: newly enrolled {obs} "
                f"(p={r.pvalue:.2g} < {ctx.options['srm_threshold']})"
            )
    enrolled = sum(int(r["n"]) for r in enroll) + crossed_units
    share = crossed_units / enrolled if enrolled else 0.0
    threshold = ctx.options["crossover_threshold"]
    if share > threshold:
        out.append(
            f"crossover units are {share:.1%} of enrolled units "
            f"(threshold {threshold:.1%}): check the assignment service"
        )
    return out


# -- explain ----------------------------------------------------------------------------------


def explain_rows(ctx: _Context, rows: list[dict[str, Any]]) -> list[ExplainRow]:
    """The pooled effect step by step (:func:`~analysis.metrics._plan.explain_plan`)."""
    if not rows:
        return []
    M = ctx.metrics
    mom = agg.read_moments(rows, ["step", "arm"], M, use_covariates=False)
    out: list[ExplainRow] = []
    for i, m in agg.moment_metrics(M):
        names = agg.variables(m, i, use_covariates=False)
        f = m.statistic(agg.prefix(i))
        for a in ctx.arms:
            prev = float("nan")
            for k in range(len(EXPLAIN_ORDER) + 1):
                c = mom.get((k, ctx.control), {}).get(i, Moments.empty(names))
                t = mom.get((k, a), {}).get(i, Moments.empty(names))
                r = compare(c, t, f, alpha=ctx.options["alpha"])
                out.append(
                    ExplainRow(
                        k,
                        "clean" if k == 0 else EXPLAIN_ORDER[k - 1],
                        m.label,
                        a,
                        r.n_control,
                        r.n_arm,
                        r.effect,
                        r.effect_ci_lower,
                        r.effect_ci_upper,
                        r.effect - prev,
                    )
                )
                prev = r.effect
    return out


# -- recovery ---------------------------------------------------------------------------------


def recovery_rows(
    ctx: _Context, after_phase: Phase | None, collected: Mapping[str, list[dict[str, Any]]]
) -> tuple[list[RecoveryRow], list[RecoverySummaryRow]]:
    """Exposed groups vs never-exposed units after the rollback, overall and per time bin, and
    when each group is back within the margin (nothing without ``after_phase``)."""
    if after_phase is None:
        return [], []
    end = after_phase.start
    assert end is not None
    opt = ctx.options
    M, alpha, bin_h = ctx.metrics, opt["alpha"], opt["recovery_bin_hours"]
    by_bin = agg.read_moments(collected["rec_bin"], ["group", "bin"], M, use_covariates=False)
    overall = agg.read_moments(collected["rec_all"], ["group"], M, use_covariates=False)
    bins = sorted({k[1] for k in by_bin if k[1] is not None and k[1] >= 0})
    margins = opt["recovery_margin"]
    rows: list[RecoveryRow] = []
    summary: list[RecoverySummaryRow] = []
    for i, m in agg.moment_metrics(M):
        names = agg.variables(m, i, use_covariates=False)
        f = m.statistic(agg.prefix(i))
        empty = Moments.empty(names)
        ref_all = overall.get((REFERENCE,), {}).get(i, empty)
        if isinstance(margins, Mapping):
            if m.label not in margins:
                continue
            margin = float(margins[m.label])
        else:
            ref_value = f.value(ref_all) if ref_all.n else float("nan")
            margin = abs(ref_value) * float(margins)
        for g in GROUPS:
            grp_rows: list[RecoveryRow] = []
            for b in [None, *bins]:
                if b is None:
                    c, t = ref_all, overall.get((g,), {}).get(i, empty)
                else:
                    c = by_bin.get((REFERENCE, b), {}).get(i, empty)
                    t = by_bin.get((g, b), {}).get(i, empty)
                if t.n == 0:
                    continue
                r = compare(c, t, f, alpha=alpha)
                within = bool(abs(r.effect) < margin and not r.pvalue < alpha)
                hours = 0.0 if b is None else b * bin_h
                grp_rows.append(
                    RecoveryRow(
                        m.label,
                        g,
                        REFERENCE,
                        b,
                        hours,
                        end + timedelta(hours=hours),
                        r.n_arm,
                        r.n_control,
                        r.arm_mean,
                        r.control_mean,
                        r.effect,
                        r.effect_ci_lower,
                        r.effect_ci_upper,
                        r.pvalue,
                        margin,
                        within,
                    )
                )
            if not grp_rows:
                continue
            rows.extend(grp_rows)
            first = recovered_after(grp_rows)
            hours_r = None if first is None else first * bin_h
            summary.append(
                RecoverySummaryRow(
                    m.label,
                    g,
                    margin,
                    grp_rows[0].effect if grp_rows[0].bin is None else math.nan,
                    hours_r,
                    None if hours_r is None else end + timedelta(hours=hours_r),
                )
            )
    return rows, summary
