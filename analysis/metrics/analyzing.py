"""``analyze()``: clean per-arm effects per phase and combined, next to the naive number.

What :func:`analyze` computes for every metric and treatment arm (estimands):

- **clean, per phase** — on the ``clean`` events of each exposure phase, units that have clean
  events in the phase, per-unit aggregates within the phase: arm − control of the metric
  (:mod:`analysis.metrics.definitions`), Welch / delta-method CI, CUPED when the metric asks for it.
- **clean, combined** — stratified by *enrollment cohort* (the exposure phase of a unit's first
  tagged turn, so the allocation it was randomized with), per-unit aggregates over all its clean
  exposure turns; cohort effects are combined with inverse-variance weights
  (:mod:`analysis.stats.combine`), which avoids Simpson's paradox when the allocation changed.
  Cohorts hold disjoint units, so the strata are independent.
- **naive, pooled** — what a dashboard shows: arm tags at face value, every tagged event
  (including stale tags after the end, crossover units, served mismatches, stale cache hits,
  carryover), one window, no CUPED.
- **explain** — the naive number rebuilt step by step: clean events in one pooled window, then
  adding each excluded label in turn, so the gap between clean and naive is attributed to labels.
- **SRM** per exposure phase on newly enrolled units; **exclusions** by label; **recovery** after
  a rollback (:mod:`analysis.metrics.recovery`).

Multiple testing: p-values are adjusted across metrics × arms within each analysis × phase
(Holm by default, Benjamini–Hochberg with ``multiplicity="bh"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import narwhals as nw

from analysis._table import Table
from analysis.errors import PromptstateError
from analysis.metrics import aggregation as agg
from analysis.metrics.definitions import (
    Mean,
    Metric,
    Proportion,
    Quantile,
    Ratio,
    check_names,
    with_bounds,
)
from analysis.metrics.recovery import (
    GROUPS,
    REFERENCE,
    RecoveryRow,
    RecoverySummaryRow,
    after_end_events,
    recovered_after,
)
from analysis.stats.combine import combine_strata
from analysis.stats.effect import ArmEstimate, EffectResult, arm_estimates, compare
from analysis.stats.moments import Moments
from analysis.stats.multiplicity import METHODS, adjust_pvalues
from analysis.stats.power import mde as _mde
from analysis.stats.quantile import QuantileEstimate, probability_bounds, quantile_effect
from analysis.stats.sequential import confidence_sequence_halfwidth
from analysis.stats.srm import srm_test

__all__ = [
    "EFFECT_COLUMNS",
    "AnalysisResult",
    "EffectRow",
    "ExclusionRow",
    "ExplainRow",
    "SRMRow",
    "analyze",
    "default_metrics",
]

#: The leading columns of the effects table, fixed by DESIGN.md ("Result tables").
EFFECT_COLUMNS: tuple[str, ...] = (
    "analysis",
    "metric",
    "phase",
    "control",
    "arm",
    "n_control",
    "n_arm",
    "control_mean",
    "arm_mean",
    "effect",
    "effect_ci_lower",
    "effect_ci_upper",
    "rel_effect",
    "rel_effect_ci_lower",
    "rel_effect_ci_upper",
    "pvalue",
    "pvalue_adjusted",
)

#: Effect columns shown in the text renderings (every column is in the tables).
SHOWN_COLUMNS: tuple[str, ...] = (
    *EFFECT_COLUMNS[:3],
    *EFFECT_COLUMNS[4:12],
    "rel_effect",
    "pvalue",
    "pvalue_adjusted",
)

EXPLAIN_ORDER: tuple[str, ...] = (
    "carryover",
    "stale_cache",
    "served_mismatch",
    "crossover",
    "after_end",
    "outside_window",
)


class EffectRow(NamedTuple):
    """One analysis × metric × phase × treatment arm.

    Attributes:
        analysis: ``clean`` or ``naive``.
        metric: Metric name.
        phase: Phase id as text, ``combined`` (clean, across exposure phases) or ``pooled``
            (naive, one window).
        control: Control arm.
        arm: Treatment arm.
        n_control: Units in the control arm.
        n_arm: Units in the treatment arm.
        control_mean: Control value of the metric (unadjusted).
        arm_mean: Treatment value of the metric (unadjusted).
        effect: Arm − control (CUPED-adjusted when the metric uses CUPED).
        effect_ci_lower: Lower confidence bound.
        effect_ci_upper: Upper confidence bound.
        rel_effect: Arm / control − 1 (on adjusted values).
        rel_effect_ci_lower: Lower bound (delta method).
        rel_effect_ci_upper: Upper bound.
        pvalue: Two-sided p-value.
        pvalue_adjusted: After the multiple-testing adjustment.
        se: Standard error of ``effect``.
        direction: ``higher`` or ``lower`` is better.
        significant: ``pvalue_adjusted < alpha``.
        better: Significant and in the better direction (None when not significant).
        cuped_theta: CUPED coefficient (0 without CUPED).
        mde: Minimum detectable absolute effect at the configured power and these sizes.
        cs_lower: Lower bound of the always-valid confidence sequence (NaN unless requested).
        cs_upper: Upper bound of the always-valid confidence sequence.
    """

    analysis: str
    metric: str
    phase: str
    control: str
    arm: str
    n_control: int
    n_arm: int
    control_mean: float
    arm_mean: float
    effect: float
    effect_ci_lower: float
    effect_ci_upper: float
    rel_effect: float
    rel_effect_ci_lower: float
    rel_effect_ci_upper: float
    pvalue: float
    pvalue_adjusted: float
    se: float
    direction: str
    significant: bool
    better: bool | None
    cuped_theta: float
    mde: float
    cs_lower: float
    cs_upper: float


class SRMRow(NamedTuple):
    """Newly enrolled units of one phase × arm against the phase's allocation.

    Attributes:
        phase: Exposure phase id.
        arm: Arm.
        allocation: The arm's share in the phase.
        observed: Units first enrolled in the phase in the arm. Units tagged with more than
            one arm (crossover) are left out: their arm is not defined, and they have an alert of
            their own (``crossover_threshold``).
        expected: ``allocation × units enrolled in the phase``.
        statistic: Chi-square statistic of the phase (repeated on each arm's row).
        pvalue: Its p-value.
        mismatch: ``pvalue < threshold``.
    """

    phase: int
    arm: str
    allocation: float
    observed: int
    expected: float
    statistic: float
    pvalue: float
    mismatch: bool


class ExclusionRow(NamedTuple):
    """Events and units tagged with the experiment, by contamination label and arm tag.

    Attributes:
        label: Contamination label (``clean`` rows are what the clean analysis uses).
        arm: The arm tag.
        events: Events.
        units: Distinct units.
        share_events: Share of the arm's tagged events.
    """

    label: str
    arm: str
    events: int
    units: int
    share_events: float


class ExplainRow(NamedTuple):
    """The pooled effect with clean events plus the labels added so far.

    Attributes:
        step: 0 for clean events only; the last step equals the naive analysis.
        added: The label added at this step (``clean`` at step 0).
        metric: Metric name.
        arm: Treatment arm.
        n_control: Units in control.
        n_arm: Units in the arm.
        effect: Arm − control with the events of this step, one pooled window.
        effect_ci_lower: Lower bound.
        effect_ci_upper: Upper bound.
        change: Change of ``effect`` from the previous step.
    """

    step: int
    added: str
    metric: str
    arm: str
    n_control: int
    n_arm: int
    effect: float
    effect_ci_lower: float
    effect_ci_upper: float
    change: float


def default_metrics() -> tuple[Metric, ...]:
    """The sample's metrics: helpfulness per turn, thumbs-up users, cost per user (CUPED),
    p95 latency."""
    return (
        Ratio("helpfulness"),
        Proportion("thumbs_up"),
        Mean("cost_usd", cuped=True, direction="lower"),
        Quantile("latency_ms", 0.95, direction="lower"),
    )


@dataclass(frozen=True)
class AnalysisResult:
    """The result of :func:`analyze`.

    Attributes:
        experiment: Experiment id.
        control: Control arm.
        effects: One row per analysis × metric × phase × arm (:class:`EffectRow`).
        srm: Sample-ratio check per exposure phase × arm (:class:`SRMRow`).
        exclusions: Tagged events and units by label × arm (:class:`ExclusionRow`).
        explain: Naive number rebuilt label by label (:class:`ExplainRow`).
        recovery: Exposed vs never-exposed after the rollback, overall and per time bin.
        recovery_summary: When each exposed group is back within the margin.
        alerts: Problems a scheduled job should alert on (SRM, crossover share).
        notes: What the reader should know (loading notes, unchecked rules, choices made).
        options: The options the analysis ran with.
    """

    experiment: str
    control: str
    effects: Table
    srm: Table
    exclusions: Table
    explain: Table
    recovery: Table
    recovery_summary: Table
    alerts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No alert (no SRM, crossover share under its threshold)."""
        return not self.alerts

    def effect(
        self,
        metric: str,
        *,
        analysis: str = "clean",
        phase: str = "combined",
        arm: str | None = None,
    ) -> EffectRow:
        """The effect row of one metric (first treatment arm unless ``arm`` is given)."""
        for r in self.effects.rows:
            assert isinstance(r, EffectRow)
            if (r.metric, r.analysis, r.phase) == (metric, analysis, phase) and (
                arm is None or r.arm == arm
            ):
                return r
        raise KeyError(f"no effect row for metric={metric!r} analysis={analysis!r} phase={phase!r}")

    def to_pandas(self) -> Any:
        """The effects table as a pandas DataFrame."""
        return self.effects.to_pandas()

    def to_polars(self) -> Any:
        """The effects table as a polars DataFrame."""
        return self.effects.to_polars()

    def to_dict(self) -> dict[str, Any]:
        """Every table as JSON-friendly records."""
        return {
            "experiment": self.experiment,
            "control": self.control,
            "ok": self.ok,
            "alerts": list(self.alerts),
            "notes": list(self.notes),
            "options": dict(self.options),
            "effects": self.effects.to_records(),
            "srm": self.srm.to_records(),
            "exclusions": self.exclusions.to_records(),
            "explain": self.explain.to_records(),
            "recovery": self.recovery.to_records(),
            "recovery_summary": self.recovery_summary.to_records(),
        }

    def _tables(self) -> list[Table]:
        return [
            t
            for t in (self.effects, self.srm, self.exclusions, self.explain, self.recovery_summary)
            if len(t)
        ]

    def __str__(self) -> str:
        head = f"experiment {self.experiment} (control: {self.control})"
        parts = [head, *(str(t) for t in self._tables())]
        parts += [f"ALERT: {a}" for a in self.alerts] + [f"note: {n}" for n in self.notes]
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        """All tables as Markdown."""
        parts = [f"### Experiment `{self.experiment}`", *(t.to_markdown() for t in self._tables())]
        parts += [f"- **alert**: {a}" for a in self.alerts] + [f"- note: {n}" for n in self.notes]
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        body = "".join(t._repr_html_() for t in self._tables())
        alerts = "".join(f"<p><b>alert:</b> {a}</p>" for a in self.alerts)
        return f"<div><h4>experiment {self.experiment}</h4>{body}{alerts}</div>"


# ------------------------------------------------------------------------------------------


def _check_options(alpha: float, multiplicity: str, power: float, bin_hours: float) -> None:
    if not 0 < alpha < 1:
        raise PromptstateError(f"alpha={alpha}: must lie in (0, 1), e.g. 0.05")
    if multiplicity not in METHODS:
        raise PromptstateError(f"multiplicity={multiplicity!r}: use one of {', '.join(METHODS)}")
    if not 0 < power < 1:
        raise PromptstateError(f"power={power}: must lie in (0, 1), e.g. 0.8")
    if not bin_hours > 0:
        raise PromptstateError(f"recovery_bin_hours={bin_hours}: must be positive")


def analyze(
    events: Any,
    ledger: Any = None,
    experiment: str | None = None,
    *,
    metrics: Sequence[Metric] | None = None,
    columns: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    multiplicity: str = "holm",
    power: float = 0.8,
    srm_threshold: float = 0.001,
    crossover_threshold: float = 0.02,
    sequential: bool = False,
    n_star: float = 10_000.0,
    explain: bool = True,
    recovery: bool = True,
    recovery_bin_hours: float = 2.0,
    recovery_margin: float | Mapping[str, float] = 0.05,
    materialize: bool | None = None,
) -> AnalysisResult:
    """Clean per-arm effects per phase and combined, naive vs clean, SRM, recovery.

    Args:
        events: A :class:`~analysis.split.SplitResult`, or an export :func:`~analysis.split.split`
            reads (path, pandas/polars/pyarrow/DuckDB frame, :class:`~analysis.events.loading.Events`).
        ledger: The ledger (path or :class:`~analysis.ledger.Ledger`); not needed for a split.
        experiment: Experiment id (may be left out when unambiguous).
        metrics: Metric definitions (default :func:`default_metrics`).
        columns: Column map for loading ``events``.
        alpha: 1 − confidence level.
        multiplicity: ``holm``, ``bh`` or ``none`` (across metrics × arms per analysis × phase).
        power: Target power of the ``mde`` column.
        srm_threshold: SRM is flagged at ``p < srm_threshold``.
        crossover_threshold: Alert when crossover units exceed this share of enrolled units.
        sequential: Add always-valid confidence sequences (``cs_lower``/``cs_upper``).
        n_star: Planned units at which the confidence sequence is tightest.
        explain: Compute the label-by-label explanation of naive − clean.
        recovery: Compute the after-rollback analysis when the experiment was rolled back.
        recovery_bin_hours: Width of the recovery-curve bins.
        recovery_margin: Equivalence margin: a share of the never-exposed value (float), or
            absolute margins by metric name.
        materialize: Write the labelled events once to a temporary Parquet file and aggregate
            from it (default ``None``: on polars-backed splits), rather than repeating the
            labelling in each collect; see :func:`analysis.events.labelling.materialized`.

    Returns:
        An :class:`AnalysisResult`.

    Raises:
        PromptstateError: invalid options, metrics or input.
    """
    from analysis.events.labelling import SplitResult, materialized, split

    _check_options(alpha, multiplicity, power, recovery_bin_hours)
    metrics = tuple(metrics) if metrics is not None else default_metrics()
    if not metrics:
        raise PromptstateError("metrics: give at least one metric, e.g. [Ratio('helpfulness')]")
    check_names(metrics)
    if isinstance(events, SplitResult):
        res = events
    else:
        if ledger is None:
            raise PromptstateError("analyze: pass the ledger (path or Ledger) with the events")
        res = split(events, ledger, experiment, columns=columns)
    options = locals()
    with materialized(res, materialize) as labelled:
        return _Analysis(labelled, metrics, options).run()


_OPTION_NAMES = (
    "alpha",
    "multiplicity",
    "power",
    "srm_threshold",
    "crossover_threshold",
    "sequential",
    "n_star",
    "explain",
    "recovery",
    "recovery_bin_hours",
    "recovery_margin",
)


class _Analysis:
    """One run of :func:`analyze`: builds the lazy aggregates, collects once, tests."""

    def __init__(self, res: Any, metrics: tuple[Metric, ...], options: Mapping[str, Any]) -> None:
        self.res = res
        self.opt = {k: options[k] for k in _OPTION_NAMES}
        self.exp = res.experiment
        # group units by the split's compact key (a 64-bit hash of the id on polars)
        self.unit: str = res.unit_key
        self.ctrl: str = self.exp.control
        self.arms: tuple[str, ...] = self.exp.treatment_arms
        self.phases = res.phases
        self.exposure = [p.id for p in self.phases if p.kind == "exposure"]
        names = set(res.frame.collect_schema().names())
        missing = sorted({c for m in metrics for c in m.columns} - names)
        if missing:
            raise PromptstateError(
                f"metrics read column(s) {', '.join(missing)} that the export does not have; "
                f"it has: {', '.join(sorted(names))}"
            )
        self.names = names
        self.metrics = metrics
        self.notes: list[str] = list(res.notes())

    # -- lazy frames --------------------------------------------------------------------
    def _frames(self) -> None:
        f = self.res.keyed
        unit, exp_id = self.unit, self.exp.id
        keep = {"ts", unit, "experiment_id", "arm", "phase", "contamination", "served_revision"}
        keep |= {c for m in self.metrics for c in m.columns}
        keep |= {"conversation_id", "response_revision_id"} & self.names
        f = f.select(*sorted(keep))
        self.frame = f
        in_exposure = nw.col("phase").is_in(self.exposure)
        self.tagged = f.filter((nw.col("experiment_id") == exp_id) & ~nw.col("arm").is_null())
        self.clean = f.filter((nw.col("contamination") == "clean") & in_exposure)
        enrolled = self.tagged.filter(
            in_exposure & ~nw.col("contamination").is_in(["outside_window", "after_end"])
        )
        self.enroll = enrolled.group_by(unit).agg(
            nw.col("ts").min().alias("first_ts"),
            nw.col("phase").min().alias("cohort"),
            nw.col("arm").min().alias("first_arm"),
            nw.col("arm").max().alias("last_arm"),
        )

    def _winsorize(self) -> None:
        todo = [(i, m) for i, m in enumerate(self.metrics) if m.winsorize is not None]
        if not todo:
            return
        exprs = []
        for i, m in todo:
            lo, hi = m.winsorize_bounds
            v = m.value_expr(m.column)
            if lo is not None:
                exprs.append(v.quantile(lo, interpolation="linear").alias(f"lo{i}"))
            if hi is not None:
                exprs.append(v.quantile(hi, interpolation="linear").alias(f"hi{i}"))
        row = self.clean.select(*exprs).collect().rows(named=True)[0]
        metrics = list(self.metrics)
        for i, m in todo:
            metrics[i] = with_bounds(m, row.get(f"lo{i}"), row.get(f"hi{i}"))
        self.metrics = tuple(metrics)

    # -- run ----------------------------------------------------------------------------
    def run(self) -> AnalysisResult:
        self._frames()
        self._winsorize()
        M, unit = self.metrics, self.unit
        cov = agg.pre_exposure(self.frame, self.enroll, unit, M)
        clean_cohort = self.clean.join(self.enroll.select(unit, "cohort"), on=unit, how="inner")
        plan: dict[str, nw.LazyFrame[Any]] = {}
        plan["phase"] = agg.group_moments(
            agg.unit_level(self.clean, ["phase", "arm"], unit, M, covariates=cov),
            ["phase", "arm"],
            M,
        )
        plan["cohort"] = agg.group_moments(
            agg.unit_level(clean_cohort, ["cohort", "arm"], unit, M, covariates=cov),
            ["cohort", "arm"],
            M,
        )
        plan["naive"] = agg.group_moments(
            agg.unit_level(self.tagged, ["arm"], unit, M, use_covariates=False),
            ["arm"],
            M,
            use_covariates=False,
        )
        # a unit's arm is its single arm tag; crossover units (two arms) are left out of SRM
        plan["srm"] = (
            self.enroll.filter(nw.col("first_arm") == nw.col("last_arm"))
            .group_by("cohort", "first_arm")
            .agg(nw.len().alias("n"))
        )
        plan["xunits"] = self.tagged.filter(nw.col("contamination") == "crossover").select(
            nw.col(unit).n_unique().alias("units")
        )
        plan["excl"] = self.tagged.group_by("contamination", "arm").agg(
            nw.len().alias("events"), nw.col(unit).n_unique().alias("units")
        )
        if self.opt["explain"]:
            plan["explain"] = self._explain_plan()
        self._recovery_setup(plan)
        quantile_views = {
            "phase": (self.clean, ["phase", "arm"]),
            "cohort": (clean_cohort, ["cohort", "arm"]),
            "naive": (self.tagged, ["arm"]),
        }
        for name, (ev, keys) in quantile_views.items():
            q = agg.quantiles(ev, keys, M)
            if q is not None:
                plan[f"q:{name}"] = q
        names = list(plan)
        collected = dict(zip(names, agg.collect_all([plan[n] for n in names]), strict=True))
        qest = self._quantile_estimates(quantile_views, collected)

        effects = self._effects(collected, qest)
        srm = self._srm(collected["srm"])
        exclusions = self._exclusions(collected["excl"])
        crossed = int(collected["xunits"][0]["units"]) if collected["xunits"] else 0
        alerts = self._alerts(srm, crossed, collected["srm"])
        explain_rows = self._explain(collected.get("explain", []))
        recovery_rows, summary = self._recovery(collected)
        return AnalysisResult(
            experiment=self.exp.id,
            control=self.ctrl,
            effects=Table(
                tuple(effects),
                EffectRow._fields,
                title="effects (arm − control)",
                shown=SHOWN_COLUMNS,
                percent=("rel_effect",),
            ),
            srm=Table(tuple(srm), SRMRow._fields, title="sample ratio (newly enrolled units)"),
            exclusions=Table(
                tuple(exclusions),
                ExclusionRow._fields,
                title="tagged events by label",
                percent=("share_events",),
            ),
            explain=Table(
                tuple(explain_rows),
                ExplainRow._fields,
                title="naive − clean, label by label (pooled window)",
            ),
            recovery=Table(tuple(recovery_rows), RecoveryRow._fields, title="after the rollback"),
            recovery_summary=Table(
                tuple(summary), RecoverySummaryRow._fields, title="recovery after the rollback"
            ),
            alerts=tuple(alerts),
            notes=tuple(self.notes),
            options=dict(self.opt),
        )

    # -- effects ------------------------------------------------------------------------
    def _quantile_estimates(
        self,
        views: Mapping[str, tuple[nw.LazyFrame[Any], list[str]]],
        collected: Mapping[str, list[dict[str, Any]]],
    ) -> dict[tuple[str, Any, int], QuantileEstimate]:
        """Clustered quantile CIs: counts at the quantile, then the outer quantiles."""
        qs = [(i, m) for i, m in enumerate(self.metrics) if isinstance(m, Quantile)]
        if not qs:
            return {}
        alpha = self.opt["alpha"]
        plans: list[nw.LazyFrame[Any]] = []
        for name, (ev, keys) in views.items():
            native = collected[f"q:{name}"]
            thresholds = self._thresholds(native, keys, qs)
            plans.append(agg.below_counts(ev, thresholds, keys, self.unit, self.metrics))
        counts = dict(zip(views, agg.collect_all(plans), strict=True))
        # outer quantiles: one filtered quantile per group and metric
        bounds: dict[tuple[str, Any, int], tuple[float, float, int, float]] = {}
        for name, (_, keys) in views.items():
            qrows = {tuple(r[k] for k in keys): r for r in collected[f"q:{name}"]}
            for row in counts[name]:
                key = tuple(row[k] for k in keys)
                for i, m in qs:
                    assert isinstance(m, Quantile)
                    lo, hi, _ = probability_bounds(agg.read_below(row, i), m.q, alpha=alpha)
                    value = qrows[key][f"q|{i}"]
                    bounds[(name, key, i)] = (lo, hi, int(row["n"]), value)
        exprs: list[nw.Expr] = []
        labels: list[tuple[str, Any, int]] = []
        for (name, key, i), (lo, hi, _, _) in bounds.items():
            ev, keys = views[name]
            cond = nw.lit(value=True)
            for k, v in zip(keys, key, strict=True):
                cond = cond & (nw.col(k) == v)
            qm = self.metrics[i]
            v_expr = qm.value_expr(qm.column)
            j = len(labels)
            exprs.append(v_expr.filter(cond).quantile(lo, interpolation="lower").alias(f"lo{j}"))
            exprs.append(v_expr.filter(cond).quantile(hi, interpolation="higher").alias(f"hi{j}"))
            labels.append((name, key, i))
        per_view: dict[str, list[int]] = {}
        for j, (name, _, _) in enumerate(labels):
            per_view.setdefault(name, []).append(j)
        frames = [
            views[n][0].select(*[e for j in js for e in exprs[2 * j : 2 * j + 2]])
            for n, js in per_view.items()
        ]
        rows = agg.collect_all(frames)
        out: dict[tuple[str, Any, int], QuantileEstimate] = {}
        for js, res in zip(per_view.values(), rows, strict=True):
            r = res[0]
            for j in js:
                lab = labels[j]
                _, _, n_units, value = bounds[lab]
                lo_v, hi_v = r[f"lo{j}"], r[f"hi{j}"]
                out[lab] = QuantileEstimate.from_bounds(
                    n_units, float(value), float(lo_v), float(hi_v), alpha=alpha
                )
        return out

    def _thresholds(
        self, rows: list[dict[str, Any]], keys: list[str], qs: Sequence[tuple[int, Quantile]]
    ) -> nw.LazyFrame[Any]:
        import polars as pl

        cols = [*keys, *(f"q|{i}" for i, _ in qs)]
        data = {c: [r[c] for r in rows] for c in cols}
        df = pl.DataFrame(data)
        casts = [pl.col(k).cast(pl.Int32) for k in keys if k in ("phase", "cohort")]
        if casts:
            df = df.with_columns(casts)
        lf = nw.from_native(df.lazy())
        if not self.frame.implementation.is_polars():
            lf = nw.from_native(df).lazy(backend=self.frame.implementation)
        return lf

    def _row(self, analysis: str, phase: str, i: int, arm: str, r: EffectResult) -> EffectRow:
        m = self.metrics[i]
        alpha, opt = self.opt["alpha"], self.opt
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
            control=self.ctrl,
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

    def _effects(
        self,
        collected: Mapping[str, list[dict[str, Any]]],
        qest: Mapping[tuple[str, Any, int], QuantileEstimate],
    ) -> list[EffectRow]:
        M, alpha = self.metrics, self.opt["alpha"]
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
                for p in self.exposure:
                    for a in self.arms:
                        r = quantile_effect(
                            qget("phase", (p, self.ctrl), i), qget("phase", (p, a), i), alpha=alpha
                        )
                        rows.append(self._row("clean", str(p), i, a, r))
                for a in self.arms:
                    strata = []
                    for p in self.exposure:
                        qc, qt = qget("cohort", (p, self.ctrl), i), qget("cohort", (p, a), i)
                        strata.append(
                            (
                                ArmEstimate(qc.n, qc.value, qc.value, qc.se**2),
                                ArmEstimate(qt.n, qt.value, qt.value, qt.se**2),
                            )
                        )
                    rows.append(
                        self._row("clean", "combined", i, a, combine_strata(strata, alpha=alpha))
                    )
                    r = quantile_effect(
                        qget("naive", (self.ctrl,), i), qget("naive", (a,), i), alpha=alpha
                    )
                    rows.append(self._row("naive", "pooled", i, a, r))
                continue
            m = metric
            p_ = agg.prefix(i)
            f, h = m.statistic(p_), m.covariate_statistic(p_)
            names = agg.variables(m, i)
            for p in self.exposure:
                for a in self.arms:
                    r = compare(
                        get(phase_m, (p, self.ctrl), i, names),
                        get(phase_m, (p, a), i, names),
                        f,
                        covariate=h,
                        alpha=alpha,
                    )
                    rows.append(self._row("clean", str(p), i, a, r))
            for a in self.arms:
                strata = []
                thetas: list[float] = []
                for p in self.exposure:
                    c, t, theta = arm_estimates(
                        get(cohort_m, (p, self.ctrl), i, names),
                        get(cohort_m, (p, a), i, names),
                        f,
                        covariate=h,
                    )
                    strata.append((c, t))
                    thetas.append(theta)
                r = combine_strata(strata, alpha=alpha)
                r = r._replace(theta=thetas[-1] if len(thetas) == 1 else float("nan") if h else 0.0)
                rows.append(self._row("clean", "combined", i, a, r))
                n_names = agg.variables(m, i, use_covariates=False)
                r = compare(
                    get(naive_m, (self.ctrl,), i, n_names),
                    get(naive_m, (a,), i, n_names),
                    f,
                    alpha=alpha,
                )
                rows.append(self._row("naive", "pooled", i, a, r))
        # multiplicity within analysis × phase
        families: dict[tuple[str, str], list[int]] = {}
        for j, row in enumerate(rows):
            families.setdefault((row.analysis, row.phase), []).append(j)
        for idx in families.values():
            adj = adjust_pvalues([rows[j].pvalue for j in idx], self.opt["multiplicity"])
            for j, pa in zip(idx, adj, strict=True):
                sig = bool(pa < alpha)
                good = (rows[j].effect > 0) == (rows[j].direction == "higher")
                rows[j] = rows[j]._replace(
                    pvalue_adjusted=pa, significant=sig, better=good if sig else None
                )
        order = {"clean": 0, "naive": 1}
        metric_order = {m.label: k for k, m in enumerate(M)}
        phase_order = {str(p): k for k, p in enumerate(self.exposure)} | {
            "combined": 98,
            "pooled": 99,
        }
        rows.sort(
            key=lambda r: (metric_order[r.metric], order[r.analysis], phase_order[r.phase], r.arm)
        )
        return rows

    # -- SRM, exclusions, alerts ----------------------------------------------------------
    def _srm(self, rows: list[dict[str, Any]]) -> list[SRMRow]:
        out: list[SRMRow] = []
        for p in self.phases:
            if p.kind != "exposure":
                continue
            observed = {r["first_arm"]: int(r["n"]) for r in rows if r["cohort"] == p.id}
            t = srm_test(observed, p.allocation, threshold=self.opt["srm_threshold"])
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

    def _exclusions(self, rows: list[dict[str, Any]]) -> list[ExclusionRow]:
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

    def _alerts(
        self, srm: list[SRMRow], crossed_units: int, enroll: list[dict[str, Any]]
    ) -> list[str]:
        alerts: list[str] = []
        seen: set[int] = set()
        for r in srm:
            if r.mismatch and r.phase not in seen:
                seen.add(r.phase)
                obs = ", ".join(f"{x.arm}={x.observed}" for x in srm if x.phase == r.phase)
                alerts.append(
                    f"sample ratio mismatch in phase {r.phase}: newly enrolled {obs} "
                    f"(p={r.pvalue:.2g} < {self.opt['srm_threshold']})"
                )
        enrolled = sum(int(r["n"]) for r in enroll) + crossed_units
        share = crossed_units / enrolled if enrolled else 0.0
        if share > self.opt["crossover_threshold"]:
            alerts.append(
                f"crossover units are {share:.1%} of enrolled units "
                f"(threshold {self.opt['crossover_threshold']:.1%}): check the assignment service"
            )
        return alerts

    # -- explain ------------------------------------------------------------------------
    def _explain_plan(self) -> nw.LazyFrame[Any]:
        steps: list[nw.LazyFrame[Any]] = []
        labels = ["clean"]
        for k in range(len(EXPLAIN_ORDER) + 1):
            if k:
                labels.append(EXPLAIN_ORDER[k - 1])
            steps.append(
                self.tagged.filter(nw.col("contamination").is_in(list(labels))).with_columns(
                    nw.lit(k, dtype=nw.Int32).alias("step")
                )
            )
        events = nw.concat(steps, how="vertical")
        units = agg.unit_level(
            events, ["step", "arm"], self.unit, self.metrics, use_covariates=False
        )
        return agg.group_moments(units, ["step", "arm"], self.metrics, use_covariates=False)

    def _explain(self, rows: list[dict[str, Any]]) -> list[ExplainRow]:
        if not rows:
            return []
        M = self.metrics
        mom = agg.read_moments(rows, ["step", "arm"], M, use_covariates=False)
        out: list[ExplainRow] = []
        for i, m in agg.moment_metrics(M):
            names = agg.variables(m, i, use_covariates=False)
            f = m.statistic(agg.prefix(i))
            for a in self.arms:
                prev = float("nan")
                for k in range(len(EXPLAIN_ORDER) + 1):
                    c = mom.get((k, self.ctrl), {}).get(i, Moments.empty(names))
                    t = mom.get((k, a), {}).get(i, Moments.empty(names))
                    r = compare(c, t, f, alpha=self.opt["alpha"])
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

    # -- recovery -----------------------------------------------------------------------
    def _recovery_setup(self, plan: dict[str, nw.LazyFrame[Any]]) -> None:
        self.after_phase = None
        last = self.phases[-1]
        if not self.opt["recovery"] or last.kind != "after_end" or last.start_action != "rollback":
            return
        rolled = sorted({self.exp.arms[a] for a in self.arms} - {last.served_after_end})
        if not rolled:
            return
        assert last.start is not None
        self.after_phase = last
        ev = after_end_events(
            self.frame,
            unit=self.unit,
            end=last.start,
            after_phase=last.id,
            exposure_phases=self.exposure,
            rolled_back=rolled,
            bin_width=timedelta(hours=self.opt["recovery_bin_hours"]),
            has_conversations="conversation_id" in self.names,
            has_response_revision="response_revision_id" in self.names,
        )
        M = self.metrics
        plan["rec_bin"] = agg.group_moments(
            agg.unit_level(ev, ["group", "bin"], self.unit, M, use_covariates=False),
            ["group", "bin"],
            M,
            use_covariates=False,
        )
        plan["rec_all"] = agg.group_moments(
            agg.unit_level(ev, ["group"], self.unit, M, use_covariates=False),
            ["group"],
            M,
            use_covariates=False,
        )

    def _recovery(
        self, collected: Mapping[str, list[dict[str, Any]]]
    ) -> tuple[list[RecoveryRow], list[RecoverySummaryRow]]:
        if self.after_phase is None:
            return [], []
        end = self.after_phase.start
        assert end is not None
        M, alpha, bin_h = self.metrics, self.opt["alpha"], self.opt["recovery_bin_hours"]
        by_bin = agg.read_moments(collected["rec_bin"], ["group", "bin"], M, use_covariates=False)
        overall = agg.read_moments(collected["rec_all"], ["group"], M, use_covariates=False)
        bins = sorted({k[1] for k in by_bin if k[1] is not None and k[1] >= 0})
        margins = self.opt["recovery_margin"]
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


def load_and_analyze(
    events: Any, ledger: Any, metrics_file: str | Path | None, **kw: Any
) -> AnalysisResult:
    """Convenience for the CLI: read the metrics file (if any) and analyze."""
    from analysis.metrics.definitions import load_metrics

    metrics = load_metrics(metrics_file) if metrics_file is not None else None
    return analyze(events, ledger, metrics=metrics, **kw)
