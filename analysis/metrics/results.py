"""The result of :func:`~analysis.metrics.analyzing.analyze`: its row types and tables.

- :class:`EffectRow` — one analysis × metric × phase × treatment arm (columns
  :data:`EFFECT_COLUMNS` first).
- :class:`SRMRow`, :class:`ExclusionRow`, :class:`ExplainRow` — the sample-ratio check, the
  tagged events by label and the naive number rebuilt label by label (in :data:`EXPLAIN_ORDER`).
- :class:`MissingRow` — NaN, ±inf and null metric values left out, per metric.
- :class:`AnalysisResult` — every table, the alerts and the notes, with their renderings.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from analysis import _render
from analysis._table import Table

__all__ = [
    "EFFECT_COLUMNS",
    "EXPLAIN_ORDER",
    "SEGMENT_SHOWN",
    "SHOWN_COLUMNS",
    "AnalysisResult",
    "EffectRow",
    "ExclusionRow",
    "ExplainRow",
    "ExposureDayRow",
    "FirstLookRow",
    "HeterogeneityRow",
    "LookRow",
    "MissingRow",
    "SRMRow",
    "SegmentRow",
]

#: The leading columns of the effects table; stable, documented in docs/metrics.md.
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

#: The labels the explanation adds to the clean events, one step each, in this order.
EXPLAIN_ORDER: tuple[str, ...] = (
    "prior_conversation",
    "carryover",
    "stale_cache",
    "served_mismatch",
    "crossover",
    "after_end",
    "outside_window",
)


#: Columns of the segments table shown in text, Markdown and HTML (all are in the records).
SEGMENT_SHOWN = (
    "segment",
    "segment_value",
    "metric",
    "phase",
    "arm",
    "n_control",
    "n_arm",
    "effect",
    "effect_ci_lower",
    "effect_ci_upper",
    "pvalue_bh",
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
        effect: Arm − control (regression-adjusted when ``covariate`` is not ``none``).
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
        cuped_theta: Coefficient of the first covariate (the pre-period value; a ratio's
            pre-period numerator) in the adjustment (0 without adjustment).
        mde: Minimum detectable absolute effect at the configured power and these sizes.
        cs_lower: Lower bound of the always-valid confidence sequence (``sequential=True``:
            tuned in information time at ``planned_units``; NaN otherwise and for quantiles).
        cs_upper: Upper bound of the always-valid confidence sequence.
        covariate: What the effect is adjusted for: ``pre_period`` (the unit's pre-period value
            of the metric and an indicator of pre-period events), the covariate column's name,
            or ``none``.
        effect_unadjusted: Arm − control without regression adjustment (same estimand).
        effect_unadjusted_ci_lower: Its lower confidence bound.
        effect_unadjusted_ci_upper: Its upper confidence bound.
        strata: Time strata the clean estimate combines (1 for one window).
        effect_fresh: The fresh-cohort estimate (clean rows of moment metrics): each stratum
            compares only units first enrolled in its phase, with the default's design weights
            (regression-adjusted like ``effect``); NaN where not defined.
        effect_fresh_ci_lower: Its lower confidence bound.
        effect_fresh_ci_upper: Its upper confidence bound.
        pvalue_sequential: Always-valid p-value of ``effect = 0`` at this look
            (``sequential=True``; valid however often the analysis is repeated; NaN otherwise
            and for quantiles).
        pvalue_sequential_adjusted: Its Holm adjustment within the analysis × phase (the
            regression decision of a sequential analysis).
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
    covariate: str = "none"
    effect_unadjusted: float = float("nan")
    effect_unadjusted_ci_lower: float = float("nan")
    effect_unadjusted_ci_upper: float = float("nan")
    strata: int = 1
    effect_fresh: float = float("nan")
    effect_fresh_ci_lower: float = float("nan")
    effect_fresh_ci_upper: float = float("nan")
    pvalue_sequential: float = float("nan")
    pvalue_sequential_adjusted: float = float("nan")


class MissingRow(NamedTuple):
    """NaN, ±inf and null values of one metric in the clean events, left out of that metric.

    Attributes:
        metric: Metric name.
        events: Clean events with a missing or non-finite value in a column the metric reads.
        share: Their share of the clean events.
        nan: Events with a NaN.
        inf: Events with +inf or −inf.
        null: Events with a null.
        units: Units with at least one such event.
        pre_period: Events of the pre-period windows (regression adjustment) with a NaN or
            ±inf value, left out of the covariate (nulls are not counted there).
    """

    metric: str
    events: int
    share: float
    nan: int
    inf: int
    null: int
    units: int
    pre_period: int = 0


class SRMRow(NamedTuple):
    """Newly enrolled units of one phase × arm against the phase's allocation.

    Attributes:
        phase: Exposure phase id.
        arm: Arm.
        allocation: The arm's share in the phase.
        observed: Units first enrolled in the phase, counted in the arm of their first exposure
            — crossover units included (leaving them out removes units from one arm only after a
            bucket-moving ramp, a false alarm). Whether their later moves are what the ramps
            allow is judged separately (``AnalysisResult.crossover``).
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


class ExposureDayRow(NamedTuple):
    """The clean effect on turns a given number of days after each unit's first exposure.

    Fresh units only (first enrolled in the phase), compared within each exposure phase and
    combined over the phases with the day's design weights (clean turns for ratio metrics,
    units otherwise); descriptive (no multiplicity adjustment, later days hold fewer units).

    Attributes:
        metric: Metric name.
        arm: Treatment arm.
        day: Whole days since the unit's first exposure (0: its first 24 hours).
        n_control: Control units with clean turns that day.
        n_arm: Treatment units with clean turns that day.
        effect: Arm − control (unadjusted).
        se: Its standard error (phases hold disjoint units: ``Σ w² se²``).
        effect_ci_lower: Lower bound (normal).
        effect_ci_upper: Upper bound.
    """

    metric: str
    arm: str
    day: int
    n_control: int
    n_arm: int
    effect: float
    se: float
    effect_ci_lower: float
    effect_ci_upper: float


class SegmentRow(NamedTuple):
    """One column × value × metric × phase × treatment arm: the clean effect on its units.

    Attributes:
        segment: The column.
        segment_value: Its value at the units' first exposure (``unknown``, ``other``).
        values: The column's original values this row pools (one, or several for ``other``).
        metric: Metric name.
        phase: Phase id as text, or ``combined``.
        control: Control arm.
        arm: Treatment arm.
        n_control: Control units (with clean events) of the value.
        n_arm: Treatment units of the value.
        control_mean: Control value of the metric (unadjusted).
        arm_mean: Treatment value.
        effect: Arm − control (the analysis' estimator on the value's units).
        effect_ci_lower: Lower confidence bound.
        effect_ci_upper: Upper confidence bound.
        se: Standard error of ``effect``.
        pvalue: Two-sided p-value.
        pvalue_bh: Benjamini–Hochberg across the column's values (per metric × arm × phase).
        significant: ``pvalue_bh < alpha``.
    """

    segment: str
    segment_value: str
    values: str
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
    se: float
    pvalue: float
    pvalue_bh: float
    significant: bool


class HeterogeneityRow(NamedTuple):
    """Does the clean effect differ between a column's values? (Cochran's Q.)

    Attributes:
        segment: The column.
        metric: Metric name.
        phase: Phase id as text, or ``combined``.
        arm: Treatment arm.
        values: Values with a finite estimate (``k``).
        statistic: Cochran's Q.
        df: ``k − 1``.
        pvalue: ``P(χ²(k − 1) ≥ Q)``.
    """

    segment: str
    metric: str
    phase: str
    arm: str
    values: int
    statistic: float
    df: int
    pvalue: float


class LookRow(NamedTuple):
    """One look of a sequential analysis (a time-block boundary): the clean effect on the
    events before it, with its always-valid inference.

    Attributes:
        look: 1, 2, ... (the end of time stratum ``look``; the last is this analysis).
        at: When the look ends (ISO 8601).
        metric: Metric name.
        scope: ``combined`` (every stratum up to the look) or ``latest`` (the strata up to the
            look of the phase the look falls in).
        phase: ``combined``, or the phase id of a ``latest`` row.
        control: Control arm.
        arm: Treatment arm.
        n_control: Control units up to the look.
        n_arm: Treatment units up to the look.
        control_mean: Control value (unadjusted).
        effect: Arm − control (regression-adjusted as the analysis).
        se: Its standard error.
        cs_lower: Lower bound of the always-valid confidence sequence at the look.
        cs_upper: Upper bound.
        pvalue_sequential: Always-valid p-value of ``effect = 0`` at the look.
        ready: Whether the burn-in was over (one full time block, 100 units per arm).
    """

    look: int
    at: str
    metric: str
    scope: str
    phase: str
    control: str
    arm: str
    n_control: int
    n_arm: int
    control_mean: float
    effect: float
    se: float
    cs_lower: float
    cs_upper: float
    pvalue_sequential: float
    ready: bool


class FirstLookRow(NamedTuple):
    """The first look at which a sequential decision would have fired.

    Attributes:
        decision: ``regression``, ``srm`` or ``guardrail_breach``.
        metric: Metric name (``srm``: empty).
        arm: Treatment arm (``srm``: empty).
        phase: ``combined``, ``latest`` or the phase id (``srm``).
        look: The first look (1-based) at which it fired.
        looks: Looks in all (the last is this analysis).
        at: When that look ended (ISO 8601).
        now: Whether it fires in this analysis too.
    """

    decision: str
    metric: str
    arm: str
    phase: str
    look: int
    looks: int
    at: str
    now: bool


@dataclass(frozen=True)
class AnalysisResult:
    """The result of :func:`~analysis.metrics.analyzing.analyze`.

    Attributes:
        experiment: Experiment id.
        control: Control arm.
        effects: One row per analysis × metric × phase × arm (:class:`EffectRow`).
        srm: Sample-ratio check per exposure phase × arm (:class:`SRMRow`).
        exclusions: Tagged events and units by label × arm (:class:`ExclusionRow`).
        explain: Naive number rebuilt label by label (:class:`ExplainRow`).
        recovery: Exposed vs never-exposed after the rollback, overall and per time bin.
        recovery_summary: When each exposed group is back within the margin.
        alerts: Problems a scheduled job should alert on (SRM, crossover share, missing
            values above ``missing_threshold``).
        notes: What the reader should know (loading notes, unchecked rules, choices made).
        options: The options the analysis ran with.
        missing: NaN, ±inf and null metric values left out, per metric (:class:`MissingRow`).
        crossover: Units whose arm changed between (or within) exposure phases, grouped, with
            the verdict against what the ledger's ramps allow
            (:class:`~analysis.stats.crossover.CrossoverRow`).
        completeness: Completeness and freshness findings — missing coverage, gaps, an arm's
            lost logging (:class:`~analysis.metrics._completeness.CompletenessRow`); each is an
            alert (exit code 1).
        phase_equality: Per moment metric × arm, the Wald test that the per-phase clean
            effects are equal (metric, arm, statistic, df, pvalue, phases, effects).
        by_exposure_day: The clean effect by days since each unit's first exposure (fresh
            units, within time strata; descriptive).
        segments: Per segment column × value (fixed at each unit's first exposure) the clean
            effects (:class:`SegmentRow`; empty unless ``segments=`` was given).
        segment_heterogeneity: Per segment column × metric × phase × arm, Cochran's test that
            the effect is the same for every value (:class:`HeterogeneityRow`).
        looks: ``sequential=True``: the clean effect at every time-block boundary
            (:class:`LookRow`; empty otherwise).
        first_looks: ``sequential=True``: the first look at which each regression and sample
            ratio mismatch would have fired (:class:`FirstLookRow`); the guardrail breaches are
            added by :func:`analysis.decisions.decide`.
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
    missing: Table = field(
        default_factory=lambda: Table((), MissingRow._fields, title="missing values")
    )
    crossover: Table = field(
        default_factory=lambda: Table((), ("from_phase",), title="arm changes between phases")
    )
    completeness: Table = field(
        default_factory=lambda: Table(
            (), ("kind", "phase", "start", "end", "arm", "detail"), title="completeness"
        )
    )
    phase_equality: Table = field(
        default_factory=lambda: Table(
            (),
            ("metric", "arm", "statistic", "df", "pvalue", "phases", "effects"),
            title="are the per-phase effects equal?",
        )
    )
    by_exposure_day: Table = field(
        default_factory=lambda: Table(
            (), ExposureDayRow._fields, title="effect by days since first exposure"
        )
    )
    segments: Table = field(
        default_factory=lambda: Table((), SegmentRow._fields, title="clean effects by segment")
    )
    segment_heterogeneity: Table = field(
        default_factory=lambda: Table(
            (), HeterogeneityRow._fields, title="does the effect differ between segments?"
        )
    )
    looks: Table = field(
        default_factory=lambda: Table((), LookRow._fields, title="the clean effect at each look")
    )
    first_looks: Table = field(
        default_factory=lambda: Table(
            (), FirstLookRow._fields, title="first look at which each decision would have fired"
        )
    )

    @property
    def completeness_messages(self) -> tuple[str, ...]:
        """One line per :attr:`completeness` finding (each is an alert)."""
        return tuple(str(getattr(r, "detail", r)) for r in self.completeness.rows)

    @property
    def all_alerts(self) -> tuple[str, ...]:
        """Completeness findings first, then :attr:`alerts`, then the regressions."""
        return (*self.completeness_messages, *self.alerts, *self.regression_messages)

    @property
    def regressions(self) -> tuple[EffectRow, ...]:
        """Clean combined rows of metrics with a ``direction`` whose effect is significant after
        the multiplicity adjustment (``pvalue_adjusted < alpha``) and in the wrong direction.

        A sequential analysis (``options["sequential"]``) decides on the always-valid
        ``pvalue_sequential_adjusted < alpha`` instead, only after the burn-in (one full time
        block, ``options["sequential_ready"]``, and 100 units per arm in the row); quantile
        rows (no always-valid p-value) never regress there."""
        out = []
        sequential = bool(self.options.get("sequential"))
        ready = bool(self.options.get("sequential_ready"))
        alpha = float(self.options.get("alpha", 0.05))
        for r in self.effects.rows:
            assert isinstance(r, EffectRow)
            if (r.analysis, r.phase) != ("clean", "combined"):
                continue
            if not sequential:
                if r.significant and r.better is False:
                    out.append(r)
                continue
            harmful = r.direction is not None and (r.effect > 0) != (r.direction == "higher")
            burned = ready and min(r.n_control, r.n_arm) >= 100
            if burned and harmful and r.pvalue_sequential_adjusted < alpha:
                out.append(r)
        return tuple(out)

    @property
    def regression_messages(self) -> tuple[str, ...]:
        """One line per :attr:`regressions` row."""
        if self.options.get("sequential"):
            return tuple(
                f"regression: {r.metric} ({r.arm} − {r.control}, clean combined) "
                f"{r.effect:+.4g}, always-valid [{r.cs_lower:+.4g}, {r.cs_upper:+.4g}], "
                f"always-valid adjusted p={r.pvalue_sequential_adjusted:.2g} ({r.direction} "
                "is better)"
                for r in self.regressions
            )
        return tuple(
            f"regression: {r.metric} ({r.arm} − {r.control}, clean combined) "
            f"{r.effect:+.4g} [{r.effect_ci_lower:+.4g}, {r.effect_ci_upper:+.4g}], "
            f"adjusted p={r.pvalue_adjusted:.2g} ({r.direction} is better)"
            for r in self.regressions
        )

    @property
    def ok(self) -> bool:
        """No completeness finding, no alert (SRM, crossover share, missing values) and no
        regression."""
        return not len(self.completeness) and not self.alerts and not self.regressions

    @property
    def exit_code(self) -> int:
        """What ``promptstate analyze`` exits with: 1 on a completeness finding, an alert or a
        regression, else 0."""
        return 0 if self.ok else 1

    def effect(
        self,
        metric: str,
        *,
        analysis: str = "clean",
        phase: str | int = "combined",
        arm: str | None = None,
    ) -> EffectRow:
        """The effect row of one metric (first treatment arm unless ``arm`` is given).

        Args:
            metric: The metric's name (e.g. ``"helpfulness"``, ``"latency_ms_p95"``).
            analysis: ``clean`` or ``naive``.
            phase: An exposure phase (``1`` or ``"1"``), ``"combined"`` (clean) or
                ``"pooled"`` (naive).
            arm: A treatment arm.

        Raises:
            KeyError: no such row; the message lists the close names and what there is.
        """
        import difflib

        rows = [r for r in self.effects.rows if isinstance(r, EffectRow)]
        want = (metric, analysis, str(phase))
        for r in rows:
            if (r.metric, r.analysis, r.phase) == want and (arm is None or r.arm == arm):
                return r
        options = {
            "metric": (metric, sorted({r.metric for r in rows})),
            "analysis": (analysis, sorted({r.analysis for r in rows})),
            "phase": (str(phase), sorted({r.phase for r in rows})),
            "arm": (arm, sorted({r.arm for r in rows})),
        }
        hints = []
        for name, (given, have) in options.items():
            if given is not None and given not in have:
                close = difflib.get_close_matches(given, have, n=3)
                hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
                hints.append(f"{name}={given!r}: {hint}there are {', '.join(map(repr, have))}")
        detail = "; ".join(hints) or "that combination has no row"
        raise KeyError(
            f"no effect row for metric={metric!r} analysis={analysis!r} phase={phase!r}"
            f"{'' if arm is None else f' arm={arm!r}'}: {detail}"
        )

    def to_pandas(self) -> Any:
        """The effects table as a pandas DataFrame."""
        return self.effects.to_pandas()

    def to_polars(self) -> Any:
        """The effects table as a polars DataFrame."""
        return self.effects.to_polars()

    def to_dict(self) -> dict[str, Any]:
        """Every table as JSON-friendly records; ``schema_version`` first, then the experiment,
        ``ok``, ``exit_code``, ``completeness`` (records: kind, phase, start, end, arm,
        detail), ``alerts`` (completeness findings first), ``regressions``, ``notes``,
        ``options`` and the tables."""
        from analysis.errors import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "experiment": self.experiment,
            "control": self.control,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "completeness": self.completeness.to_records(),
            "alerts": [*self.completeness_messages, *self.alerts],
            "regressions": list(self.regression_messages),
            "notes": list(self.notes),
            "options": dict(self.options),
            "effects": self.effects.to_records(),
            "srm": self.srm.to_records(),
            "exclusions": self.exclusions.to_records(),
            "explain": self.explain.to_records(),
            "recovery": self.recovery.to_records(),
            "recovery_summary": self.recovery_summary.to_records(),
            "missing": self.missing.to_records(),
            "crossover": self.crossover.to_records(),
            "phase_equality": self.phase_equality.to_records(),
            "by_exposure_day": self.by_exposure_day.to_records(),
            "segments": self.segments.to_records(),
            "segment_heterogeneity": self.segment_heterogeneity.to_records(),
            "looks": self.looks.to_records(),
            "first_looks": self.first_looks.to_records(),
        }

    def _tables(self) -> list[Table]:
        return [
            t
            for t in (
                self.completeness,
                self.effects,
                self.srm,
                self.crossover,
                self.phase_equality,
                self.segments,
                self.segment_heterogeneity,
                self.first_looks,
                self.exclusions,
                self.missing,
                self.explain,
                self.recovery_summary,
            )
            if len(t)
        ]

    def __str__(self) -> str:
        head = f"experiment {self.experiment} (control: {self.control})"
        parts = [head, *(str(t) for t in self._tables())]
        parts += [f"ALERT: {a}" for a in self.all_alerts]
        parts += [f"note: {n}" for n in self.notes]
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        """All tables as Markdown."""
        parts = [
            f"### Experiment {_render.md_code(self.experiment)}",
            *(t.to_markdown() for t in self._tables()),
        ]
        parts += [f"- **alert**: {_render.md_text(a)}" for a in self.all_alerts]
        parts += [f"- note: {_render.md_text(n)}" for n in self.notes]
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        body = "".join(t._repr_html_() for t in self._tables())
        alerts = "".join(f"<p><b>alert:</b> {html.escape(a)}</p>" for a in self.all_alerts)
        return f"<div><h4>experiment {self.experiment}</h4>{body}{alerts}</div>"
