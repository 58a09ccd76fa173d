"""The statistics of :func:`~analysis.metrics.analyzing.analyze`: rows from collected aggregates.

Every function here takes the small collected aggregates (lists of dicts, read into
:class:`~analysis.stats.moments.Moments`) and returns result rows: the effects with their
multiplicity adjustment (:func:`effect_rows`), exclusions, missing values, the
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
from analysis.metrics._stratified import Scope
from analysis.metrics.definitions import Quantile, Ratio
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
    ExposureDayRow,
    MissingRow,
)
from analysis.stats.combine import combine_time_strata
from analysis.stats.effect import ArmEstimate, EffectResult, compare
from analysis.stats.moments import Moments
from analysis.stats.multiplicity import adjust_pvalues
from analysis.stats.power import mde as _mde
from analysis.stats.quantile import QuantileEstimate, probability_bounds, quantile_effect
from analysis.stats.sequential import look_inference
from analysis.stats.stratified import StratifiedResult

if TYPE_CHECKING:  # pragma: no cover
    from analysis.ledger import Phase

__all__ = [
    "effect_row",
    "effect_rows",
    "exclusion_rows",
    "explain_rows",
    "exposure_day_rows",
    "missing_rows",
    "quantile_bounds",
    "quantile_estimates",
    "recovery_rows",
]

#: ``(view, group key, metric index)`` of a quantile estimate.
QuantileKey = tuple[str, Any, int]


# -- effects ----------------------------------------------------------------------------------


def effect_row(
    ctx: _Context,
    analysis: str,
    phase: str,
    i: int,
    arm: str,
    r: EffectResult,
    *,
    unadjusted: EffectResult | None = None,
    covariate: str = "none",
    strata: int = 1,
    fresh: EffectResult | None = None,
) -> EffectRow:
    """The row of metric ``i`` × ``arm`` (p-value not yet adjusted); ``unadjusted`` is the
    same comparison without regression adjustment (default: ``r`` itself), ``fresh`` the
    fresh-cohort estimate (``effect_fresh*``; NaN without)."""
    m = ctx.metrics[i]
    alpha, opt = ctx.options["alpha"], ctx.options
    u = r if unadjusted is None else unadjusted
    cs_lo = cs_hi = p_seq = float("nan")
    if opt["sequential"] and not isinstance(m, Quantile):
        units = r.n_control + r.n_arm
        cs_lo, cs_hi, p_seq = look_inference(
            r.effect, r.se, units, opt["planned_units"], alpha=alpha
        )
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
        direction=m.direction,  # type: ignore[arg-type]
        significant=False,
        better=None,
        cuped_theta=r.theta,
        mde=_mde(r.se, alpha=alpha, power=opt["power"]) if math.isfinite(r.se) else math.nan,
        cs_lower=cs_lo,
        cs_upper=cs_hi,
        covariate=covariate,
        effect_unadjusted=u.effect,
        effect_unadjusted_ci_lower=u.effect_ci_lower,
        effect_unadjusted_ci_upper=u.effect_ci_upper,
        strata=strata,
        effect_fresh=fresh.effect if fresh is not None else math.nan,
        effect_fresh_ci_lower=fresh.effect_ci_lower if fresh is not None else math.nan,
        effect_fresh_ci_upper=fresh.effect_ci_upper if fresh is not None else math.nan,
        pvalue_sequential=p_seq,
    )


def effect_rows(
    ctx: _Context,
    collected: Mapping[str, list[dict[str, Any]]],
    qest: Mapping[QuantileKey, QuantileEstimate],
    strat: Mapping[tuple[int, str, str, str], StratifiedResult],
    scopes: Mapping[tuple[int, str, str], Scope],
) -> list[EffectRow]:
    """Clean per phase, clean combined and naive pooled effects of every metric × arm, with
    p-values adjusted within each analysis × phase, in table order.

    Moment metrics' clean rows come from the stratified estimates ``strat`` (see
    :mod:`analysis.metrics._stratified`); quantiles are compared per phase and combined over the
    phases as time strata (design weights, conservative SE), without adjustment.
    """
    M, alpha, ctrl = ctx.metrics, ctx.options["alpha"], ctx.control
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
            turns = {int(r["phase"]): int(r["n"]) for r in collected.get("phase_turns", [])}
            for a in ctx.arms:
                strata = []
                for p in ctx.exposure:
                    qc, qt = qget("phase", (p, ctrl), i), qget("phase", (p, a), i)
                    strata.append(
                        (
                            ArmEstimate(qc.n, qc.value, qc.value, qc.se * qc.se),
                            ArmEstimate(qt.n, qt.value, qt.value, qt.se * qt.se),
                        )
                    )
                weights = [float(turns.get(p, 0)) for p in ctx.exposure]
                r = combine_time_strata(strata, weights, alpha=alpha)
                rows.append(effect_row(ctx, "clean", "combined", i, a, r, strata=len(ctx.exposure)))
                r = quantile_effect(qget("naive", (ctrl,), i), qget("naive", (a,), i), alpha=alpha)
                rows.append(effect_row(ctx, "naive", "pooled", i, a, r))
            continue
        m = metric
        f = m.statistic(agg.prefix(i))
        for label in [*(str(p) for p in ctx.exposure), "combined"]:
            scope = scopes[(i, label, "d")]
            cov = "none"
            if scope.adjust:
                cov = "pre_period" if m.pre_period else str(m.covariate)
            for a in ctx.arms:
                sr = strat[(i, label, "d", a)]
                fr = strat[(i, label, "f", a)]
                rows.append(
                    effect_row(
                        ctx,
                        "clean",
                        label,
                        i,
                        a,
                        sr.adjusted,
                        unadjusted=sr.unadjusted,
                        covariate=cov,
                        strata=len(scope.weights),
                        fresh=fr.adjusted,
                    )
                )
        for a in ctx.arms:
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
        # always-valid p-values: Holm across metrics × arms (NaN rows, quantiles, not counted)
        seq = adjust_pvalues([rows[j].pvalue_sequential for j in idx], "holm")
        for j, pa, ps in zip(idx, adj, seq, strict=True):
            sig = bool(pa < alpha)
            good = (rows[j].effect > 0) == (rows[j].direction == "higher")
            has_dir = rows[j].direction is not None
            rows[j] = rows[j]._replace(
                pvalue_adjusted=pa,
                significant=sig,
                better=good if sig and has_dir else None,
                pvalue_sequential_adjusted=ps,
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
            if value is None or lo_v is None or hi_v is None:  # no finite value in the group
                nan = float("nan")
                out[lab] = QuantileEstimate(n_units, nan, nan, nan, nan)
                continue
            out[lab] = QuantileEstimate.from_bounds(
                n_units, float(value), float(lo_v), float(hi_v), alpha=alpha
            )
    return out


# -- SRM, exclusions, alerts ------------------------------------------------------------------


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


def _pre_missing(rows: Sequence[Mapping[str, Any]]) -> dict[int, tuple[int, int]]:
    """Metric index -> (pre-period events with NaN/±inf, units) from the ``pre_missing:*`` rows."""
    out: dict[int, tuple[int, int]] = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("pre|"):
                i = int(k[4:])
                out[i] = (int(v or 0), int(r.get(f"preu|{i}") or 0))
    return out


def missing_rows(
    ctx: _Context, rows: list[dict[str, Any]], pre_rows: Sequence[Mapping[str, Any]] = ()
) -> tuple[list[MissingRow], list[str], list[str]]:
    """NaN, ±inf and null values per metric in the clean events: rows, notes and alerts
    (share of clean events above ``missing_threshold``); NaN and ±inf values of the pre-period
    windows (``pre_rows``, left out of the covariate) are counted and noted too."""
    if not rows:
        return [], [], []
    r = rows[0]
    pre = _pre_missing(pre_rows)
    total = int(r["events"] or 0)
    threshold = ctx.options["missing_threshold"]
    out: list[MissingRow] = []
    notes: list[str] = []
    alerts_: list[str] = []
    for i, m in enumerate(ctx.metrics):
        bad = int(r[f"miss|{i}"] or 0)
        share = bad / total if total else 0.0
        kinds = {k: int(r[f"{i}|{k}"] or 0) for k in ("nan", "inf", "null")}
        units = int(r[f"units|{i}"] or 0)
        pre_events, pre_units = pre.get(i, (0, 0))
        out.append(
            MissingRow(
                m.label, bad, share, kinds["nan"], kinds["inf"], kinds["null"], units, pre_events
            )
        )
        if pre_events:
            notes.append(
                f"{m.label}: {pre_events} pre-period events ({pre_units} units) had NaN or "
                "±inf values and were left out of the regression adjustment's covariate"
            )
        if not bad:
            continue
        what = ", ".join(f"{v} {k}" for k, v in kinds.items() if v)
        notes.append(
            f"{m.label}: {bad} clean events ({share:.1%}) had NaN/inf/null values ({what}; "
            f"{units} units) and were left out of this metric only"
        )
        if share > threshold:
            alerts_.append(
                f"missing values: {m.label} has NaN/inf/null values in {share:.1%} of the clean "
                f"events (threshold {threshold:.1%}): check the export's column(s) "
                f"{', '.join(m.columns)}"
            )
    return out, notes, alerts_


# -- effect by days since first exposure ------------------------------------------------------


def exposure_day_rows(ctx: _Context, rows: list[dict[str, Any]]) -> list[ExposureDayRow]:
    """Per moment metric × arm × day since first exposure: the design-weighted effect over
    the exposure phases of the fresh units (:func:`~analysis.metrics._plan.exposure_day_plan`)."""
    if not rows:
        return []
    from scipy import stats as st

    M, ctrl, alpha = ctx.metrics, ctx.control, ctx.options["alpha"]
    mom = agg.read_moments(rows, ["phase", "day", "arm"], M, use_covariates=False)
    days = sorted({int(k[1]) for k in mom if k[1] is not None and int(k[1]) >= 0})
    z = float(st.norm.ppf(1 - alpha / 2))
    out: list[ExposureDayRow] = []
    for i, m in agg.moment_metrics(M):
        names = agg.variables(m, i, use_covariates=False)
        f = m.statistic(agg.prefix(i))
        empty = Moments.empty(names)
        for a in ctx.arms:
            for d in days:
                parts: list[tuple[float, EffectResult]] = []
                n_c = n_t = 0
                for p in ctx.exposure:
                    c = mom.get((p, d, ctrl), {}).get(i, empty)
                    t = mom.get((p, d, a), {}).get(i, empty)
                    n_c, n_t = n_c + c.n, n_t + t.n
                    r = compare(c, t, f, alpha=alpha)
                    if math.isfinite(r.effect) and math.isfinite(r.se):
                        parts.append((_design_total(m, i, (c, t)), r))
                total = sum(w for w, _ in parts)
                if not parts or total <= 0:
                    continue
                effect = sum(w * r.effect for w, r in parts) / total
                se = math.sqrt(sum((w / total) ** 2 * r.se**2 for w, r in parts))
                out.append(
                    ExposureDayRow(
                        m.label, a, d, n_c, n_t, effect, se, effect - z * se, effect + z * se
                    )
                )
    return out


def _design_total(m: Any, i: int, arms: Sequence[Moments]) -> float:
    """Clean turns (a ratio's denominator) or units of a cell, over the arms."""
    if isinstance(m, Ratio):
        x = f"{agg.prefix(i)}x"
        return float(sum(a.sums[a.index(x)] for a in arms if a.n))
    return float(sum(a.n for a in arms))


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


#: A recovery bin is merged with the next ones until both sides hold this many units (or the
#: interval's half-width is within the margin): thin bins give intervals too wide to read.
RECOVERY_MIN_UNITS = 200


def _recovered(effect: float, pvalue: float, margin: float, alpha: float, sign: float) -> bool:
    """Whether a bin counts as recovered: within ±margin and not significantly different, or —
    for a metric with a direction (``sign`` +1 higher / −1 lower is better) — not worse by the
    margin and not significantly worse (an improvement beyond the margin is recovered)."""
    if not (math.isfinite(effect) and math.isfinite(margin)):
        return False
    significant = pvalue < alpha
    if sign == 0.0:
        return bool(abs(effect) < margin and not significant)
    better = sign * effect
    return bool(better > -margin and not (significant and better < 0))


def _merged_bins(
    pairs: Sequence[tuple[int, Moments, Moments]],
    f: Any,
    alpha: float,
    margin: float,
    min_units: int,
) -> list[tuple[int, Moments, Moments]]:
    """Consecutive bins ``(bin, reference, group)`` merged until each span's group and
    reference hold ``min_units`` units or the difference's half-width (statistic ``f``) is
    within ``margin``: ``(first bin, reference, group)`` per span. A short remainder at the end
    is merged into the span before it."""
    out: list[tuple[int, Moments, Moments]] = []
    acc: tuple[int, Moments, Moments] | None = None
    for b, c, t in pairs:
        acc = (b, c, t) if acc is None else (acc[0], acc[1] + c, acc[2] + t)
        if acc[2].n == 0:
            continue
        r = compare(acc[1], acc[2], f, alpha=alpha)
        half = (r.effect_ci_upper - r.effect_ci_lower) / 2
        enough = acc[1].n >= min_units and acc[2].n >= min_units
        if enough or (math.isfinite(half) and half <= margin):
            out.append(acc)
            acc = None
    if acc is not None and acc[2].n:
        if out:
            first, c0, t0 = out.pop()
            out.append((first, c0 + acc[1], t0 + acc[2]))
        else:
            out.append(acc)
    return out


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
        sign = {"higher": 1.0, "lower": -1.0}.get(getattr(m, "direction", None) or "", 0.0)
        for g in GROUPS:
            grp_rows: list[RecoveryRow] = []
            pairs = [
                (
                    b,
                    by_bin.get((REFERENCE, b), {}).get(i, empty),
                    by_bin.get((g, b), {}).get(i, empty),
                )
                for b in bins
            ]
            min_units = int(opt.get("recovery_min_units", RECOVERY_MIN_UNITS))
            spans = _merged_bins(pairs, f, alpha, margin, min_units)
            for b, c, t in [(None, ref_all, overall.get((g,), {}).get(i, empty)), *spans]:
                if t.n == 0:
                    continue
                r = compare(c, t, f, alpha=alpha)
                within = _recovered(r.effect, r.pvalue, margin, alpha, sign)
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
