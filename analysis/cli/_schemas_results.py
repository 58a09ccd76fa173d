"""Output models of ``split``, ``analyze`` and ``gate``.

See :mod:`analysis.cli._schemas_base` for the conventions. The shapes are those of
``promptstate split --format json`` (:meth:`LoadReport.to_dict`,
:meth:`ContaminationSummary.to_dict`), :meth:`analysis.metrics.AnalysisResult.to_dict` and
:meth:`analysis.evals.gating.GateResult.to_dict`. The tables of ``analyze`` (effects, SRM,
exclusions, ...) are lists of row objects whose columns are documented in ``docs/metrics.md``;
their columns can depend on the metrics and options, so their rows are open objects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from analysis.cli._schemas_base import Output, Row, omittable
from analysis.ledger._schema import Action

__all__ = [
    "AlertStateRow",
    "AnalyzeMultiOutput",
    "AnalyzeOutput",
    "FailedSection",
    "GateOutput",
    "OverviewRow",
    "SplitOutput",
    "SplitPhaseRow",
]

Label = Literal[
    "outside_window", "after_end", "crossover", "served_mismatch", "stale_cache", "carryover",
    "prior_conversation", "clean",
]  # fmt: skip
PhaseKind = Literal["pre", "exposure", "after_end"]
Verdict = Literal["pass", "regression", "inconclusive"]
_ISO = "ISO 8601 time with its UTC offset"
_TABLE = "One row per {what}; columns in docs/metrics.md."


class SplitPhaseRow(Row):
    """One phase of the experiment: 0 before the start, 1..k exposure, k+1 after the end."""

    phase: int = Field(ge=0, description="Phase number.")
    kind: PhaseKind = Field(description="Kind of phase.")
    start: str | None = Field(description=f"Start (inclusive), {_ISO}; null for pre.")
    end: str | None = Field(description=f"End (exclusive), {_ISO}; null for after_end.")
    allocation: dict[str, float] = Field(
        description="Arm → share of units (empty outside exposure)."
    )
    arms: dict[str, str] = Field(description="Arm → revision served (empty outside exposure).")
    start_action: Action | None = Field(description="Transition that starts the phase.")
    end_action: Action | None = Field(description="Transition that ends the phase.")


class LoadRow(Row):
    """What loading the export found and did; nothing dropped or rewritten without a count."""

    source: str = Field(description="The input (path or in-memory type).")
    n_rows: int = Field(ge=0, description="Rows read.")
    n_events: int = Field(ge=0, description="Events kept (n_rows - n_duplicates).")
    n_duplicates: int = Field(ge=0, description="Extra rows of repeated event_id, dropped.")
    duplicate_examples: list[str] = Field(description="Up to five of the repeated ids.")
    timestamps: str = Field(
        description="utc, 'naive, read as UTC', 'converted from <tz> to UTC' or 'parsed from text'."
    )
    renamed: dict[str, str] = Field(description="Canonical name → the export's column name.")
    experiments: dict[str, int] = Field(description="Experiment id → tagged rows.")
    unknown_experiments: dict[str, int] = Field(
        description="Experiment ids the ledger does not define → rows (outside_window)."
    )
    arm_without_experiment: int = Field(
        ge=0, description="Rows with an arm but no experiment_id (treated as untagged)."
    )
    missing_optional: list[str] = Field(
        description="Optional canonical columns the export does not have."
    )
    notes: list[str] = Field(description="Everything dropped, converted or ignored, in words.")


class LabelTotalRow(Row):
    """Events with one contamination label, over every phase and arm."""

    label: Label = Field(description="Contamination label (first match wins).")
    n_events: int = Field(ge=0, description="Events with the label.")
    share: float = Field(ge=0, le=1, description="Share of the experiment's events.")
    n_units: int = Field(ge=0, description="Distinct units with such an event.")
    n_conversations: int = Field(ge=0, description="Distinct conversations with such an event.")


class LabelRow(Row):
    """Events of one phase × arm × label."""

    phase: int = Field(ge=0, description="Phase number.")
    phase_kind: PhaseKind = Field(description="Kind of phase.")
    arm: str | None = Field(description="Arm tag (null: untagged events).")
    label: Label = Field(description="Contamination label.")
    n_events: int = Field(ge=0, description="Events.")
    share: float = Field(ge=0, le=1, description="Share of the phase × arm's events.")
    n_units: int = Field(ge=0, description="Distinct units.")
    n_conversations: int = Field(ge=0, description="Distinct conversations.")


class SummaryRow(Row):
    """The contamination summary (ContaminationSummary.to_dict)."""

    experiment: str = Field(description="Experiment id.")
    n_events: int = Field(ge=0, description="Events of the export considered.")
    contaminated_units: int = Field(ge=0, description="Units with a contaminated event.")
    contaminated_conversations: int = Field(
        ge=0, description="Conversations with a contaminated event."
    )
    moved_units: int = Field(
        ge=0, description="Ramp-moved units (one arm per phase, moved by a ramp; kept)."
    )
    moved_events: int = Field(ge=0, description="Events of the ramp-moved units.")
    totals: list[LabelTotalRow] = Field(description="One row per label.")
    rows: list[LabelRow] = Field(description="One row per phase × arm × label present.")
    notes: list[str] = Field(description="What the reader should know.")


class SplitOutput(Output):
    """``promptstate split --format json``: phases, load report, contamination summary."""

    experiment: str = Field(description="Experiment id.")
    phases: list[SplitPhaseRow] = Field(description="The experiment's phases, in time order.")
    load: LoadRow = Field(description="What loading the export found and did.")
    summary: SummaryRow = Field(description="Counts by phase × arm × label.")


class GuardrailRow(Row):
    """One guardrail metric × treatment arm × phase verdict (docs/decisions.md)."""

    metric: str = Field(description="Metric name.")
    arm: str = Field(description="Treatment arm.")
    phase: str = Field(description="'combined' or the latest exposure phase's id.")
    verdict: Literal["ok", "breach", "inconclusive"] = Field(
        description="ok: harm shown below the margin; breach: shown above it (exit 1)."
    )
    margin: float | None = Field(description="The margin, absolute in the metric's unit.")
    margin_text: str = Field(description="The margin as given, e.g. '2%' or '20'.")
    harm: float | None = Field(description="The clean effect oriented so that positive is worse.")
    se: float | None = Field(description="Its standard error.")
    bound: float | None = Field(description="One-sided 1 − α/2 upper confidence bound of harm.")
    p_ok: float | None = Field(description="Holm-adjusted p-value of H0: harm ≥ margin.")
    p_breach: float | None = Field(description="Holm-adjusted p-value of H0: harm ≤ margin.")
    direction: Literal["higher", "lower"] = Field(description="Which direction is better.")


class RecommendationRow(Row):
    """What to do next (docs/decisions.md)."""

    action: Literal["rollback", "ramp", "promote", "continue"] = Field(
        description="rollback, ramp, promote or continue."
    )
    reasons: list[str] = Field(description="Why, one sentence each.")
    missing: list[str] = Field(description="What is missing before a ramp or promotion.")
    commands: list[str] = Field(
        description="Shell commands to run in order (rollback: plan, then apply)."
    )
    restore: str | None = Field(description="The revision to restore (rollback only).")


class AlertStateItem(Row):
    """One alert of the run with its stable key."""

    kind: str = Field(description="regression, guardrail_breach, srm, completeness, ...")
    experiment: str = Field(description="Experiment id.")
    subject: str = Field(description="What within the experiment (metric|arm, phase...).")
    message: str = Field(description="The alert in words.")
    key: str = Field(description="kind|experiment|subject.")
    first_seen: str | None = omittable("When an earlier run first raised it (known alerts).")


class ClearedAlertItem(Row):
    """An alert of an earlier run that this run did not raise (reported once)."""

    kind: str = Field(description="The alert's kind.")
    experiment: str = Field(description="Experiment id.")
    subject: str = Field(description="What within the experiment.")
    message: str = Field(description="Its last message.")
    last_seen: str = Field(description="When it was last raised.")
    cleared_at: str = Field(description="This run's time.")


class AlertStateRow(Row):
    """How this run's alerts compare with the --state file."""

    path: str = Field(description="The state file.")
    new: list[AlertStateItem] = Field(description="Alerts no earlier run raised (exit 1).")
    known: list[AlertStateItem] = Field(
        description="Alerts an earlier run raised (exit 1 only with --repeat-alerts)."
    )
    cleared: list[ClearedAlertItem] = Field(description="Alerts that cleared since last run.")


class AnalyzeOutput(Output):
    """``promptstate analyze --format json`` on one experiment: the clean and naive effects.

    Exit 1 when a check found a problem (regression, SRM, crossover, incomplete data), else 0.
    (With several active experiments and no --experiment: `analyze-multi`.)
    """

    experiment: str = Field(description="Experiment id.")
    control: str = Field(description="The control arm.")
    ok: bool = Field(description="Whether no check found a problem.")
    exit_code: Literal[0, 1] = Field(
        description="1 when a check found a problem (a guardrail breach included; with --state: "
        "a new alert, or any with --repeat-alerts), else 0."
    )
    completeness: list[dict[str, Any]] = Field(
        description="Data-completeness findings (kind, phase, start, end, arm, detail)."
    )
    alerts: list[str] = Field(description="Every problem found, completeness first, in words.")
    regressions: list[str] = Field(description="The clean regressions, in words.")
    notes: list[str] = Field(description="What the reader should know.")
    options: dict[str, Any] = Field(description="The options the analysis ran with.")
    effects: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="analysis × metric × phase × arm")
    )
    srm: list[dict[str, Any]] = Field(description=_TABLE.format(what="phase × arm (SRM test)"))
    exclusions: list[dict[str, Any]] = Field(description=_TABLE.format(what="excluded label × arm"))
    explain: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="step × metric × arm of the naive-to-clean walk")
    )
    recovery: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="metric × group × time bin after the rollback")
    )
    recovery_summary: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="metric × group (time to recover)")
    )
    missing: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="metric (missing and non-finite values)")
    )
    crossover: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="phase × arm move (crossover)")
    )
    phase_equality: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="metric × arm (test that the phase effects are equal)")
    )
    by_exposure_day: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="metric × arm × day since first exposure (fresh units)")
    )
    segments: list[dict[str, Any]] = Field(
        description=_TABLE.format(
            what="segment column × value (at first exposure) × metric × phase × arm (--segment)"
        )
    )
    segment_heterogeneity: list[dict[str, Any]] = Field(
        description=_TABLE.format(
            what="segment column × metric × phase × arm (Cochran's test across the values)"
        )
    )
    looks: list[dict[str, Any]] = Field(
        description=_TABLE.format(
            what="look × metric × scope × arm (--sequential: the clean effect at each time-block "
            "boundary; empty otherwise)"
        )
    )
    first_looks: list[dict[str, Any]] = Field(
        description=_TABLE.format(
            what="decision (--sequential: the first look at which each regression, sample ratio "
            "mismatch and guardrail breach would have fired; empty otherwise)"
        )
    )
    guardrails: list[GuardrailRow] | None = omittable(
        "Guardrail verdicts (only when some metric has a guardrail margin)."
    )
    recommendation: RecommendationRow | None = omittable(
        "What to do next (always in the CLI's output; not in AnalysisResult.to_dict())."
    )
    alert_state: AlertStateRow | None = omittable("With --state: new, known and cleared alerts.")


class FailedSection(Output):
    """An active experiment whose analysis failed (one of several; the others are reported), or
    one no event of the export is tagged with (a completeness finding, exit code 1)."""

    experiment: str = Field(description="Experiment id.")
    state: str = Field(description="running, 'rolled back', promoted or stopped.")
    ok: Literal[False] = Field(description="Always false.")
    exit_code: Literal[1, 2, 3, 4] = Field(description="The experiment's exit code.")
    error: str = Field(
        description="Why it could not be analysed (a completeness finding starts with "
        "'completeness:')."
    )


class OverviewRow(Row):
    """One line of the overview of several experiments."""

    experiment: str = Field(description="Experiment id.")
    state: str = Field(description="running, 'rolled back', promoted or stopped.")
    headline: str = Field(description="Clean combined effect of the first metric, or the error.")
    alerts: int | None = Field(description="Number of findings (null when it failed).")
    exit_code: int = Field(ge=0, le=4, description="The experiment's exit code.")


class AnalyzeSection(AnalyzeOutput):
    """One experiment's analysis inside the several-experiment output (with its state)."""

    state: str = Field(description="running, 'rolled back', promoted or stopped.")


class AnalyzeMultiOutput(Output):
    """``promptstate analyze EVENTS --ledger L --format json`` over a ledger of several experiments.

    Printed instead of the one-experiment ``analyze`` output when no --experiment is given and
    several experiments are active in the window. Exit code: the worst of the experiments'
    (2 when one could not be analysed: the others are still printed, but ``--out`` is not
    written; 1 when one has no events though it started more than late_hours before the
    window's end).
    """

    exit_code: int = Field(ge=0, le=4, description="The worst exit code of the experiments.")
    since: str | None = Field(description="Window start (null: unbounded).")
    until: str | None = Field(description="Window end.")
    inactive: list[str] = Field(description="Experiments without exposure in the window.")
    notes: list[str] = Field(
        description="The run's notes: experiments left out and why (ended before since, starts "
        "after until), experiments started within late_hours of the window's end without events "
        "yet (not analysed)."
    )
    overview: list[OverviewRow] = Field(description="One row per active experiment.")
    experiments: list[AnalyzeSection | FailedSection] = Field(
        description="Each experiment's analysis (the one-experiment analyze object with its "
        "state), or its error, by id."
    )
    alert_state: AlertStateRow | None = omittable("With --state: new, known and cleared alerts.")


class GateReference(Row):
    """The reference baseline the candidate was graded against."""

    version: str | None = Field(description="Baseline version id, e.g. v0001.")
    revision: str | None = Field(description="Revision the baseline was anchored to.")
    pinned: bool = Field(description="Whether the reference is pinned.")


class GateCandidate(Row):
    """The candidate's eval results."""

    source: str = Field(description="The candidate's results file.")
    revision: str | None = Field(description="The candidate's revision (--revision).")


class GateCheck(Row):
    """One validity check of the gate."""

    name: str = Field(description="reference, integrity, ledger, grader, eval_set or schema.")
    status: str = Field(description="ok, warn or skipped.")
    detail: str = Field(description="What was checked or found.")


class GateMetricRow(Row):
    """The gate's result for one metric (non-finite numbers are null)."""

    metric: str = Field(description="Metric name.")
    kind: str = Field(description="binary or continuous.")
    direction: str = Field(description="higher or lower is better.")
    margin: float = Field(description="Non-inferiority margin.")
    n: int = Field(ge=0, description="Examples compared (pairs).")
    reference_mean: float | None = Field(description="Mean of the reference's example means.")
    candidate_mean: float | None = Field(description="Mean of the candidate's example means.")
    diff: float | None = Field(description="Mean paired difference candidate − reference.")
    ci_lower: float | None = Field(description="Lower bound of the two-sided 1 − α CI of diff.")
    ci_upper: float | None = Field(description="Upper bound of that CI.")
    pvalue: float | None = Field(description="Two-sided p-value of no difference.")
    pvalue_adjusted: float | None = Field(description="Holm-adjusted pvalue.")
    p_noninferior: float | None = Field(
        description="One-sided p-value of H0: worse by at least the margin."
    )
    p_regression: float | None = Field(
        description="One-sided p-value of H0: not worse than the margin."
    )
    p_regression_adjusted: float | None = Field(
        description="Holm-adjusted p_regression (the regression decision)."
    )
    mde: float | None = Field(description="Minimum detectable difference at the gate's power.")
    n_required: int | None = Field(
        description="Examples at which mde equals the margin (null when not estimable)."
    )
    test: str = Field(description="The test used, e.g. 'Tango score', 'restricted score'.")
    verdict: Verdict = Field(description="pass, regression or inconclusive.")
    null_sd: float | None = Field(
        description="SD of one paired difference under δ = −margin (what the tests standardise by)."
    )
    skewness: float | None = Field(description="Sample skewness of the paired differences.")
    reason: str = Field(description="Why a decision was withheld ('' when none was).")


class GateOutput(Output):
    """``promptstate gate SUITE --candidate FILE --format json``: the gate's verdict.

    Exit 1 on a regression or an inconclusive verdict, 0 on pass; a stale reference exits 3
    with one line on stderr and no JSON.
    """

    suite: str = Field(description="The eval suite.")
    store: str = Field(description="The baseline store directory.")
    verdict: Verdict = Field(description="pass, regression or inconclusive (over metrics).")
    reference: GateReference = Field(description="The reference baseline.")
    candidate: GateCandidate = Field(description="The candidate's results.")
    alpha: float = Field(gt=0, lt=1, description="Two-sided significance level.")
    confidence: float = Field(gt=0, lt=1, description="1 − alpha.")
    power: float = Field(gt=0, lt=1, description="Power used for mde and n_required.")
    method: Literal["t", "bootstrap"] = Field(description="Test family.")
    stale_check: bool = Field(description="Whether the reference's staleness was checked.")
    checks: list[GateCheck] = Field(description="Validity checks.")
    metrics: list[GateMetricRow] = Field(description="One row per metric.")
    anchored: str | None = Field(
        description="Version anchored from the candidate (--anchor-on-pass), if any."
    )
    notes: list[str] = Field(description="What the reader should know.")


class PlanMetricRow(Row):
    """What one metric needs (``promptstate plan``)."""

    metric: str = Field(description="Metric name.")
    target: float = Field(description="The effect to detect, in the metric's unit.")
    target_text: str = Field(description="As given: '5%' of the control value, or the number.")
    days: float = Field(description="Days to reach it (fractional when extrapolated).")
    units: float = Field(description="Units then, all arms.")
    extrapolated: bool = Field(description="Whether the days lie beyond the replayed history.")


class PlanStepRow(Row):
    """Power at the end of one ramp step (``--schedule``)."""

    step: int = Field(description="Step number, from 1.")
    share: float = Field(description="Treatment's share during the step.")
    end_day: float = Field(description="Day the step ends (the last: the planned days).")
    metric: str = Field(description="Metric name.")
    power: float = Field(description="Power to detect the target then.")


class PlanReplayRow(Row):
    """One metric after some days of the A/A replay."""

    metric: str = Field(description="Metric name.")
    day: int = Field(description="Days replayed.")
    units: int = Field(description="Distinct units active so far.")
    units_per_arm: int = Field(description="The smallest arm's units with clean events.")
    control_mean: float | None = Field(description="The control arm's value.")
    se: float | None = Field(description="SE of the clean combined effect (the real estimator).")
    mde: float | None = Field(description="Effect detectable at the power.")
    effect: float | None = Field(description="The A/A estimate (truth 0).")


class PlanOutput(Output):
    """``promptstate plan --format json``: days and units per arm the next test needs."""

    days: float = Field(description="Days until every metric reaches its target.")
    units_per_arm: dict[str, int] = Field(description="Arm → units then.")
    metrics: list[PlanMetricRow] = Field(description="What each metric needs.")
    steps: list[PlanStepRow] = Field(description="Power at the end of each ramp step.")
    replay: list[PlanReplayRow] = Field(description="The A/A replay, metric × day.")
    options: dict[str, Any] = Field(description="alpha, power, allocation, schedule, ...")
    notes: list[str] = Field(description="What the reader should know.")
