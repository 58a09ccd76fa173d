"""``analyze()``: clean per-arm effects per phase and combined, next to the naive number.

What :func:`analyze` computes for every metric and treatment arm (estimands):

- **clean, per phase** and **clean, combined** — on the ``clean`` events of the exposure phases,
  compared within *time strata*: blocks of ``block_hours`` (default 6) inside each exposure
  phase, where the allocation is constant. Per-unit aggregates are formed within each block; the
  arm − control difference of the metric in each block is averaged with weights fixed by design
  (the block's share of the clean turns — ratio metrics — or clean unit-blocks — per-unit
  metrics — over both arms). A phase's row uses its blocks, ``combined`` all blocks. The
  variance is clustered by unit (influence functions summed over the blocks a unit appears in;
  :mod:`analysis.stats.stratified`). Comparing within short blocks keeps a time trend of the
  metric out of the effect when exclusions (crossover) or the ramp change the arms' mix of
  times. Regression adjustment (CUPED) on each unit's pre-period value of the metric and an
  indicator of pre-period events is on by default when units have pre-period events; the
  unadjusted estimate is in ``effect_unadjusted*``. Quantiles: per phase, and combined over
  the phases as time strata (:func:`analysis.stats.combine.combine_time_strata`), unadjusted.
- **naive, pooled** — what a dashboard shows: arm tags at face value, every tagged event
  (including stale tags after the end, crossover units, served mismatches, stale cache hits,
  carryover), one window, no CUPED.
- **explain** — the naive number rebuilt step by step: clean events in one pooled window, then
  adding each excluded label in turn, so the gap between clean and naive is attributed to labels.
- **SRM** per exposure phase on newly enrolled units; **exclusions** by label; **recovery** after
  a rollback (:mod:`analysis.metrics.recovery`); **missing values** (NaN, ±inf, null) per
  metric, left out of that metric only.
- **regressions** — clean combined rows of metrics with a ``direction`` that are significant
  after the multiplicity adjustment and in the wrong direction
  (:attr:`~analysis.metrics.results.AnalysisResult.regressions`; exit code 1 on the CLI).

Multiple testing: p-values are adjusted across metrics × arms within each analysis × phase
(Holm by default, Benjamini–Hochberg with ``multiplicity="bh"``).

The work is split in three: :mod:`analysis.metrics._plan` builds the lazy frames and the
aggregates, this module collects them (in one go, then the second pass of the stratified
estimates), and :mod:`analysis.metrics._estimates` / :mod:`analysis.metrics._stratified` turn
the collected aggregates into rows; the result types are in :mod:`analysis.metrics.results`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis._table import Table
from analysis.errors import PromptstateError
from analysis.metrics import _completeness, _estimates, _looks, _plan, _segments, _stratified
from analysis.metrics import aggregation as agg
from analysis.metrics._assignment import ASSIGNMENT_LOOKS, assignment_checks
from analysis.metrics._completeness import CompletenessRow
from analysis.metrics._context import _Context, make_context
from analysis.metrics._inference import infer_metrics
from analysis.metrics.definitions import (
    Mean,
    Metric,
    Proportion,
    Quantile,
    Ratio,
    check_names,
)
from analysis.metrics.recovery import RecoveryRow, RecoverySummaryRow
from analysis.metrics.results import (
    SEGMENT_SHOWN,
    SHOWN_COLUMNS,
    AnalysisResult,
    EffectRow,
    ExclusionRow,
    ExplainRow,
    ExposureDayRow,
    FirstLookRow,
    HeterogeneityRow,
    LookRow,
    MissingRow,
    SegmentRow,
    SRMRow,
)
from analysis.stats.crossover import CrossoverRow
from analysis.stats.multiplicity import METHODS

if TYPE_CHECKING:  # pragma: no cover
    import narwhals as nw

    from analysis.events.labelling import SplitResult
    from analysis.stats.quantile import QuantileEstimate

__all__ = ["MOVED_UNITS", "analyze", "check_sequential", "default_metrics"]

#: What ``analyze(moved_units=...)`` accepts.
MOVED_UNITS = ("keep", "exclude")

#: Significance level of the phase-equality test and of the default-versus-fresh note.
JOINT_ALPHA = 0.01


def default_metrics() -> tuple[Metric, ...]:
    """The sample's metrics: helpfulness per turn, thumbs-up users, cost per user, p95 latency
    (regression-adjusted on the pre-period where units have one; quantiles are not).

    Only for the embedded sample (and back-compat): :func:`analyze` on a user's export with no
    metrics infers them from its schema (:func:`analysis.metrics.infer_metrics`)."""
    return (
        Ratio("helpfulness", direction="higher"),
        Proportion("thumbs_up", direction="higher"),
        Mean("cost_usd", direction="lower"),
        Quantile("latency_ms", 0.95, direction="lower"),
    )


# ------------------------------------------------------------------------------------------


def _check_options(
    alpha: float,
    multiplicity: str,
    power: float,
    bin_hours: float,
    block_hours: float | None,
    missing_threshold: float,
    moved_units: str = "keep",
) -> None:
    if block_hours is not None and not (block_hours >= 0 and math.isfinite(block_hours)):
        raise PromptstateError(
            f"block_hours={block_hours}: must be a positive number of hours, or 0 / None for "
            "one stratum per exposure phase"
        )
    if moved_units not in MOVED_UNITS:
        raise PromptstateError(
            f"moved_units={moved_units!r}: use one of {', '.join(MOVED_UNITS)} (keep: ramp-moved "
            "units count in the arm they had in each phase; exclude: left out, as before issue 21)"
        )
    if not 0 <= missing_threshold <= 1:
        raise PromptstateError(
            f"missing_threshold={missing_threshold}: must be a share in [0, 1], e.g. 0.01"
        )
    if not 0 < alpha < 1:
        raise PromptstateError(f"alpha={alpha}: must lie in (0, 1), e.g. 0.05")
    if multiplicity not in METHODS:
        raise PromptstateError(f"multiplicity={multiplicity!r}: use one of {', '.join(METHODS)}")
    if not 0 < power < 1:
        raise PromptstateError(f"power={power}: must lie in (0, 1), e.g. 0.8")
    if not (bin_hours > 0 and math.isfinite(bin_hours)):
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
    planned_units: float | None = None,
    explain: bool = True,
    recovery: bool = True,
    recovery_bin_hours: float = 2.0,
    recovery_margin: float | Mapping[str, float] = 0.05,
    block_hours: float | None = 6.0,
    missing_threshold: float = 0.01,
    moved_units: str = "keep",
    segments: Sequence[str] | str | None = None,
    materialize: bool | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    late_hours: float = 2.0,
    gap_hours: float = 1.0,
    drop_threshold: float = 0.3,
    completeness_alpha: float = 0.001,
    completeness: bool = True,
    fresh_hours: float | None = None,
    now: datetime | str | None = None,
) -> AnalysisResult:
    """Clean per-arm effects per phase and combined, naive vs clean, SRM, recovery.

    Before any statistics the export is checked against the ledger (completeness and freshness,
    :mod:`analysis.metrics._completeness`): each exposure phase's window is covered up to
    ``until``, has no run of ``gap_hours`` empty hours (overall and per arm), and no arm's newly
    enrolled units fall more than ``drop_threshold`` below what the allocation and the other
    arms imply (significant at ``completeness_alpha``); events in the last ``late_hours`` before
    ``until`` are left out (and noted). Each finding is a row of ``result.completeness`` and an
    alert (exit code 1).

    Args:
        events: A :class:`~analysis.events.labelling.SplitResult`, or an export
            :func:`~analysis.events.labelling.split` reads (path, pandas/polars/pyarrow/DuckDB
            frame, :class:`~analysis.events.loading.Events`).
        ledger: The ledger (path or :class:`~analysis.ledger.Ledger`); not needed for a split.
        experiment: Experiment id (may be left out when unambiguous).
        metrics: Metric definitions (default: inferred from the export's columns by
            :func:`analysis.metrics.infer_metrics`, its note added to the result's notes).
        columns: Column map for loading ``events``.
        alpha: 1 − confidence level.
        multiplicity: ``holm``, ``bh`` or ``none`` (across metrics × arms per analysis × phase).
        power: Target power of the ``mde`` column.
        srm_threshold: SRM is flagged at ``p < srm_threshold``.
        crossover_threshold: Without ramps: alert when crossover units exceed this share of
            enrolled units. With ramps: the share of units with a move no ramp allows (or two
            arms within one phase) tolerated per phase pair and arm; moves a ramp allows are
            tested against the ramp's cap ``(old − new) / old`` instead.
        sequential: Monitoring that allows peeking: always-valid confidence sequences
            (``cs_lower``/``cs_upper``) and p-values (``pvalue_sequential``, Holm-adjusted in
            ``pvalue_sequential_adjusted``) tuned in information time at ``planned_units``;
            the regression decision (and the guardrail verdicts of
            :func:`analysis.decisions.decide`) then use them, so a job may run every hour
            without inflating false alarms. No sequential decision before the burn-in (100
            units per arm and one full time block) nor for quantile metrics.
            See ``docs/decisions.md``.
        planned_units: Units (all arms) the experiment is planned to reach; with
            ``sequential=True`` it is required (fix it before the first look, e.g. from
            ``promptstate plan``).
        explain: Compute the label-by-label explanation of naive − clean.
        recovery: Compute the after-rollback analysis when the experiment was rolled back.
        recovery_bin_hours: Width of the recovery-curve bins.
        recovery_margin: Equivalence margin: a share of the never-exposed value (float), or
            absolute margins by metric name.
        block_hours: Length of the time strata of the clean estimates inside each exposure
            phase (aligned to the phase's start; a trailing block shorter than half joins the
            previous one). ``None`` or ``0``: one stratum per exposure phase.
        missing_threshold: Alert when a metric's NaN/inf/null values exceed this share of the
            clean events (they are always counted, noted and left out of that metric).
        moved_units: ``keep`` (default): ramp-moved units (the split's ``ramp_moved``) count,
            in each time stratum, in the arm they had in that phase; ``exclude``: they are left
            out and ``prior_conversation`` turns count as clean — the estimates of before.
        segments: Columns of unit attributes (e.g. ``["plan", "country"]``), each analysed on
            its own: per value at each unit's first exposure, the clean effects of the units
            with that value (``result.segments``, Benjamini–Hochberg across values) and
            Cochran's test that the effect is the same for every value
            (``result.segment_heterogeneity``); see :mod:`analysis.metrics._segments`.
        materialize: Compute the labelled events once and aggregate from that, rather than
            repeating the labelling in each collect (default ``None``: on; polars and DuckDB
            write a temporary Parquet file, PySpark persists the frame for the analysis); see
            :func:`analysis.events.labelling.materialized`.
        since: Analyse events at or after this instant (ISO-8601 text or datetime; after the
            split: labels use the whole export).
        until: Analyse events before this instant (default: the newest event of the export).
        late_hours: Leave out the events of the last ``late_hours`` before ``until`` (late data
            may still be arriving); 0 keeps them.
        gap_hours: Shortest run of empty hours reported as a gap (or missing coverage).
        drop_threshold: Shortfall of an arm's newly enrolled units, per phase and day, against
            what the allocation and the other arms imply, above which it is an alert when
            significant.
        completeness_alpha: Significance level of the gap and volume tests.
        completeness: Run the completeness checks (the late-data cutoff applies regardless).
        fresh_hours: Leave out late data only when ``until`` lies within this many hours of
            the run time (default: the :func:`~analysis.metrics._completeness.run_clock`
            block's, else 24); an older window is complete and nothing is left out (noted).
        now: The run time ``fresh_hours`` is measured from (ISO-8601 text or datetime;
            default: the block's, else the clock).

    Returns:
        An :class:`AnalysisResult`.

    Raises:
        PromptstateError: invalid options, metrics or input.
    """
    from analysis.events.labelling import SplitResult, materialized, split

    _check_options(
        alpha, multiplicity, power, recovery_bin_hours, block_hours, missing_threshold, moved_units
    )
    check_sequential(sequential, planned_units)
    if block_hours == 0:
        block_hours = None  # one stratum per exposure phase, as the CLI's --block-hours 0
    _completeness.check_completeness_options(
        late_hours, gap_hours, drop_threshold, completeness_alpha
    )
    if metrics is not None:
        metrics = _checked_metrics(metrics)
    if isinstance(events, SplitResult):
        res = events
    else:
        if ledger is None:
            raise PromptstateError("analyze: pass the ledger (path or Ledger) with the events")
        res = split(events, ledger, experiment, columns=columns)
    metric_notes: list[str] = []
    if metrics is None:  # a user's export: never the sample's metrics
        inferred = infer_metrics(res, columns=columns)
        metrics, metric_notes = _checked_metrics(inferred.metrics), [inferred.note]
    segment_columns = _segments.check_segments(
        segments, res.frame.collect_schema().names(), where=res.load_report.source
    )
    options = locals()
    # extreme values (e.g. 1e308) overflow to inf/NaN estimates rather than stopping the run
    # only the columns the run reads are materialised (the export's ids, cache keys, token
    # counts... are not; on 6M events that halves the spill's time and memory)
    lean = materialized(res, materialize, (*_plan.read_columns(metrics), *segment_columns))
    with lean as labelled, np.errstate(all="ignore"):
        # the window on the materialised events: its collects do not repeat the labelling
        window = _completeness.resolve_window(
            labelled, since, until, late_hours, fresh_hours=fresh_hours, now=now
        )
        windowed = _completeness.apply_window(labelled, window)
        result = _run(windowed, metrics, options, window)
        if segment_columns:
            result = _with_segments(result, windowed, metrics, options, window, segment_columns)
        return result


def check_sequential(sequential: bool, planned_units: float | None) -> None:
    """``sequential=True`` needs the planned size, fixed before the first look."""
    if planned_units is not None and not (
        isinstance(planned_units, (int, float))
        and not isinstance(planned_units, bool)
        and math.isfinite(planned_units)
        and planned_units > 0
    ):
        raise PromptstateError(
            f"planned_units={planned_units!r}: must be a positive number of units (all arms)"
        )
    if sequential and planned_units is None:
        raise PromptstateError(
            "sequential=True needs the planned size the confidence sequences are tuned for: "
            "give planned_units=N (CLI: --planned-units N), the units (all arms) the experiment "
            "is planned to reach, fixed before the first look (e.g. from `promptstate plan`)"
        )


#: Fewest units per arm, and full time blocks, before a sequential decision may fire.
BURN_IN_UNITS = 100


def _checked_metrics(metrics: Any) -> tuple[Metric, ...]:
    """``metrics`` as a tuple, or a TypeError/PromptstateError naming what is wrong."""
    if isinstance(metrics, str):
        metrics = [metrics]  # reported below with the other non-metrics
    metrics = tuple(metrics)
    wrong = [m for m in metrics if not isinstance(m, Metric)]
    if wrong:
        raise TypeError(
            f"metrics: {wrong[0]!r} is not a metric; give metric objects such as "
            f"Ratio({wrong[0]!r}) (per turn), Mean({wrong[0]!r}) (per unit), "
            f"Proportion({wrong[0]!r}) (0/1 per turn) or Quantile({wrong[0]!r}, 0.95)"
            if isinstance(wrong[0], str)
            else f"metrics: {wrong[0]!r} is not a metric; give Ratio/Mean/Proportion/Quantile "
            "objects"
        )
    if not metrics:
        raise PromptstateError("metrics: give at least one metric, e.g. [Ratio('helpfulness')]")
    check_names(metrics)
    return metrics


_OPTION_NAMES = (
    "alpha",
    "multiplicity",
    "power",
    "srm_threshold",
    "crossover_threshold",
    "sequential",
    "planned_units",
    "explain",
    "recovery",
    "recovery_bin_hours",
    "recovery_margin",
    "block_hours",
    "missing_threshold",
    "moved_units",
)


_COMPLETENESS_OPTIONS = ("late_hours", "gap_hours", "drop_threshold", "completeness_alpha")


def _run(
    res: SplitResult,
    metrics: tuple[Metric, ...],
    options: Mapping[str, Any],
    window: _completeness.Window,
) -> AnalysisResult:
    """One run of :func:`analyze`: builds the lazy aggregates, collects once, tests."""
    ctx = make_context(res, metrics, {k: options[k] for k in _OPTION_NAMES})
    notes = [*options["metric_notes"], *res.notes(), *window.notes()]
    fr = _plan.build_frames(ctx, res.keyed, res.conversation_key)
    ctx = dataclasses.replace(ctx, metrics=_plan.winsorized(ctx.metrics, fr.clean))
    ctx = dataclasses.replace(ctx, strata=_plan.block_starts(ctx, fr.clean))
    plan = _plan.build_plan(ctx, fr)
    frames = dict(plan.frames)
    if options["completeness"]:
        frames |= {
            f"completeness_{k}": v for k, v in _completeness.completeness_frames(res).items()
        }
    names = list(frames)
    collected = dict(zip(names, agg.collect_all([frames[n] for n in names]), strict=True))
    found = (
        _completeness.completeness_rows(
            res.phases,
            collected["completeness_hourly"],
            collected["completeness_enrolled"],
            window,
            gap_hours=options["gap_hours"],
            drop_threshold=options["drop_threshold"],
            alpha=options["completeness_alpha"],
        )
        if options["completeness"]
        else []
    )
    # second pass: per-unit influence functions of the stratified estimates, one cluster per
    # unit (a ramp-moved unit is control in one stratum and treatment in another)
    prep = _stratified.prepare(ctx, collected["strata"])
    row: dict[str, Any] = {}
    look_sums: list[dict[str, Any]] = []
    with_looks = bool(ctx.options["sequential"]) and options.get("looks", True)
    if prep.constants["skey"]:
        plan2 = _plan.influence_plan(
            ctx, plan.units, prep.constants, prep.terms, prep.presence, prep.products
        )
        passes = [plan2]
        if with_looks:
            passes.append(_looks.looks_plan(ctx, plan.units, prep))
        got_all = agg.collect_all(passes)
        row = got_all[0][0] if got_all[0] else {}
        look_sums = got_all[1] if with_looks else []
    strat = _stratified.scope_effects(ctx, prep, row)
    joint = _stratified.joint_tests(ctx, prep, row, strat)
    qest = _quantile_estimates(ctx, fr.frame, plan.quantile_views, collected)

    effects = _estimates.effect_rows(ctx, collected, qest, strat, prep.scopes)
    checks = assignment_checks(
        collected,
        ctx.phases,
        srm_threshold=ctx.options["srm_threshold"],
        crossover_threshold=ctx.options["crossover_threshold"],
        sequential=bool(ctx.options["sequential"]),
        burn_in=BURN_IN_UNITS,
    )
    srm = list(checks.srm)
    exclusions = _estimates.exclusion_rows(collected["excl"])
    alerts = list(checks.alerts)
    pre_rows = [r for k, v in collected.items() if k.startswith("pre_missing:") for r in v]
    missing, missing_notes, missing_alerts = _estimates.missing_rows(
        ctx, collected["missing"], pre_rows
    )
    alerts += missing_alerts
    notes += missing_notes
    notes += prep.notes
    notes += _strata_notes(ctx)
    notes += _joint_notes(ctx, joint)
    notes += _moved_notes(ctx, checks)
    ready = _sequential_ready(ctx, window)
    notes += _sequential_notes(ctx, ready)
    explain_rows = _estimates.explain_rows(ctx, collected.get("explain", []))
    recovery_rows, summary = _estimates.recovery_rows(ctx, plan.after_phase, collected)
    result = AnalysisResult(
        experiment=ctx.experiment.id,
        control=ctx.control,
        effects=Table(
            tuple(effects),
            EffectRow._fields,
            title="effects (arm − control)",
            shown=SHOWN_COLUMNS,
            percent=("rel_effect",),
        ),
        srm=Table(tuple(srm), SRMRow._fields, title="sample ratio (newly enrolled units)"),
        crossover=Table(
            checks.crossover,
            CrossoverRow._fields,
            title="arm changes between phases, against what the ramps allow",
        ),
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
        notes=tuple(notes),
        options={
            **ctx.options,
            **{k: options[k] for k in _COMPLETENESS_OPTIONS},
            "completeness": options["completeness"],
            "window": window.to_dict(),
            "sequential_ready": ready,
        },
        completeness=Table(
            tuple(found),
            CompletenessRow._fields,
            title="completeness and freshness findings",
            shown=CompletenessRow._fields[:5],
        ),
        missing=Table(
            tuple(missing),
            MissingRow._fields,
            title="NaN/inf/null metric values left out (clean events)",
            percent=("share",),
        ),
        by_exposure_day=Table(
            tuple(_estimates.exposure_day_rows(ctx, collected.get("exposure_day", []))),
            ExposureDayRow._fields,
            title="clean effect by days since first exposure (fresh units, descriptive)",
        ),
        phase_equality=Table(
            tuple(joint.phase_equality),
            _stratified.PhaseEqualityRow._fields,
            title="are the per-phase clean effects equal? (Wald, clustered by unit)",
        ),
    )
    if not with_looks:
        return result
    return _with_looks(ctx, prep, result, look_sums, collected, window)


def _with_looks(
    ctx: _Context,
    prep: _stratified.Prepared,
    result: AnalysisResult,
    sums: list[dict[str, Any]],
    collected: Mapping[str, list[dict[str, Any]]],
    window: _completeness.Window,
) -> AnalysisResult:
    """``result`` with the clean effect at every look and the first look of each decision
    (:mod:`analysis.metrics._looks`)."""
    ends = _looks.look_ends(ctx, window.cutoff or window.until)
    srm_rows: list[Any] = list(result.srm.rows)
    looks = _looks.look_rows(
        ctx,
        prep,
        sums,
        ends,
        burn_in=BURN_IN_UNITS,
        ready_now=bool(result.options.get("sequential_ready")),
    )
    first = _looks.first_looks(
        ctx,
        looks,
        collected.get(ASSIGNMENT_LOOKS, []),
        ends,
        regressions=[(r.metric, r.arm) for r in result.regressions],
        srm_now=sorted({int(r.phase) for r in srm_rows if r.mismatch}),
        burn_in=BURN_IN_UNITS,
    )
    return dataclasses.replace(
        result,
        looks=Table(tuple(looks), LookRow._fields, title="the clean effect at each look"),
        first_looks=Table(
            tuple(first),
            FirstLookRow._fields,
            title="first look at which each sequential decision would have fired",
        ),
    )


def _with_segments(
    result: AnalysisResult,
    res: SplitResult,
    metrics: tuple[Metric, ...],
    options: Mapping[str, Any],
    window: _completeness.Window,
    columns: Sequence[str],
) -> AnalysisResult:
    """``result`` with its segment tables: per column, the values at first exposure, then the
    whole analysis on each value's units (same window; explain, recovery and completeness off)."""
    from analysis.events.labelling import with_frames

    sub_options = {
        **options,
        "explain": False,
        "recovery": False,
        "completeness": False,
        "metric_notes": [],
        "looks": False,
    }
    exp = res.experiment
    exposure = [p.id for p in res.phases if p.kind == "exposure"]
    rows: list[SegmentRow] = []
    notes: list[str] = []
    for column in columns:
        units = _segments.unit_segments(
            res.keyed, unit=res.unit_key, experiment_id=exp.id, exposure=exposure, column=column
        )
        values = _segments.segment_values(
            units, column=column, arms=(exp.control, *exp.treatment_arms), collect=agg.collect_all
        )
        per: dict[str, AnalysisResult] = {}
        for label in values.labels:
            keep = _segments.units_of(units, values, label, res.unit_key)

            def only(frame: Any, keep: Any = keep) -> Any:
                return frame.join(keep, on=res.unit_key, how="semi")

            try:
                per[label] = _run(with_frames(res, only), metrics, sub_options, window)
            except PromptstateError as exc:
                notes.append(f"segments: {column!r} = {label!r} was not analysed: {exc}")
        rows += _segments.segment_rows(column, values, per, alpha=options["alpha"])
        notes += _segments.pooled_notes(values)
    het = _segments.heterogeneity(rows)
    notes += _segments.untested_notes(rows)
    notes += _segments.heterogeneity_notes(het, alpha=options["alpha"])
    return dataclasses.replace(
        result,
        notes=(*result.notes, *notes),
        options={**result.options, "segments": list(columns)},
        segments=Table(
            tuple(rows),
            SegmentRow._fields,
            title="clean effects by segment (value at first exposure)",
            shown=SEGMENT_SHOWN,
        ),
        segment_heterogeneity=Table(
            tuple(het),
            HeterogeneityRow._fields,
            title="does the clean effect differ between a segment's values? (Cochran's Q)",
        ),
    )


def _joint_notes(ctx: _Context, joint: _stratified.JointTests) -> list[str]:
    """Notes of the phase-equality tests and of the default-versus-fresh comparison (α 0.01;
    the latter Holm-adjusted across metrics per arm)."""
    from analysis.stats.multiplicity import adjust_pvalues

    out: list[str] = []
    for r in joint.phase_equality:
        if math.isfinite(r.pvalue) and r.pvalue < JOINT_ALPHA:
            each = ", ".join(
                f"phase {p} {e:+.4g}" for p, e in zip(r.phases.split(", "), r.effects, strict=True)
            )
            out.append(
                f"{r.metric} ({r.arm}): the per-phase clean effects differ ({each}; Wald "
                f"p={r.pvalue:.2g} < {JOINT_ALPHA}): `combined` is a turn-weighted average that "
                "depends on how long each phase ran"
            )
    labels = dict(agg.moment_metrics(ctx.metrics))
    for a in ctx.arms:
        keys = [k for k in joint.fresh_gap if k[1] == a and math.isfinite(joint.fresh_gap[k][2])]
        adjusted = adjust_pvalues([joint.fresh_gap[k][2] for k in keys], "holm") if keys else []
        for k, pa in zip(keys, adjusted, strict=True):
            if pa < JOINT_ALPHA:
                diff, se, _ = joint.fresh_gap[k]
                out.append(
                    f"{labels[k[0]].label} ({a}): the default and the fresh-cohort combined "
                    f"effects differ by {diff:+.4g} (SE {se:.2g}, Holm-adjusted p={pa:.2g} < "
                    f"{JOINT_ALPHA}): returning or moved units respond differently (memory, "
                    "novelty, or the treatment changed who stays active)"
                )
    return out


def _sequential_ready(ctx: _Context, window: _completeness.Window) -> bool:
    """Whether the window holds one full time block since the first stratum's start (the
    burn-in's time half; its units half is checked per row: :data:`BURN_IN_UNITS` per arm)."""
    if not ctx.options["sequential"] or not ctx.strata:
        return False
    end = window.cutoff or window.until
    if end is None:
        return False
    block = ctx.options["block_hours"] or 6.0
    return (end - ctx.strata[0][1]).total_seconds() >= block * 3600


def _sequential_notes(ctx: _Context, ready: bool) -> list[str]:
    """What a sequential analysis decides on, and what it does not."""
    if not ctx.options["sequential"]:
        return []
    out = [
        f"sequential: always-valid inference tuned at {ctx.options['planned_units']:g} planned "
        "units (confidence sequences, Holm on always-valid p-values, a sequential SRM test): "
        "valid however often this analysis is repeated"
    ]
    if not ready:
        block = ctx.options["block_hours"] or 6.0
        out.append(
            f"sequential: burn-in — no sequential decision before one full time block "
            f"({block:g} h) and {BURN_IN_UNITS} units per arm"
        )
    quantiles = [m.label for m in ctx.metrics if isinstance(m, Quantile)]
    if quantiles:
        out.append(
            f"sequential: {', '.join(quantiles)}: quantile metric(s) get no sequential decision "
            "(their fixed-horizon rows are shown, never a regression)"
        )
    return out


def _moved_notes(ctx: _Context, checks: Any) -> list[str]:
    """What the estimates did with ramp-moved units, and the ramp cap's warning."""
    moved = sum(r.moved for r in checks.crossover if r.kind == "ramp")
    if not moved:
        return []
    if ctx.options.get("moved_units", "keep") == "exclude":
        return [
            f"{moved} ramp-moved units left out of the clean estimates (moved_units='exclude'): "
            "an activity-selected slice of the shrinking arm; the estimates may be biased"
        ]
    return [
        f"{moved} ramp-moved units kept: in each time stratum a unit counts in the arm it had "
        "in that phase (variance clustered by unit)"
    ]


def _strata_notes(ctx: _Context) -> list[str]:
    """What the clean estimates were stratified by, and what was not adjusted."""
    hours = ctx.options["block_hours"]
    per = {p: sum(1 for q, _ in ctx.strata if q == p) for p in ctx.exposure}
    detail = ", ".join(f"phase {p}: {n}" for p, n in per.items())
    out = [
        f"clean estimates compare arms within {len(ctx.strata)} time strata "
        + (f"of {hours:g} h ({detail})" if hours is not None else "(one per exposure phase)")
    ]
    quantiles = [m.label for m in ctx.metrics if isinstance(m, Quantile)]
    if quantiles:
        out.append(
            f"{', '.join(quantiles)}: quantile metric(s), not regression-adjusted; combined over "
            "the exposure phases with their shares of the clean turns (SE: the conservative "
            "sum of the phases' SEs, since units appear in several phases)"
        )
    return out


def _quantile_estimates(
    ctx: _Context,
    frame: nw.LazyFrame[Any],
    views: _plan.QuantileViews,
    collected: Mapping[str, list[dict[str, Any]]],
) -> dict[tuple[str, Any, int], QuantileEstimate]:
    """Clustered quantile CIs: counts at the quantile, then the outer quantiles (two collects)."""
    if not any(isinstance(m, Quantile) for m in ctx.metrics):
        return {}
    plans = _plan.below_count_plans(ctx, frame, views, collected)
    counts = dict(zip(views, agg.collect_all(plans), strict=True))
    view_keys = {name: keys for name, (_, keys) in views.items()}
    bounds = _estimates.quantile_bounds(ctx, view_keys, collected, counts)
    labels, groups, frames = _plan.outer_quantile_plans(ctx, views, bounds)
    outer = agg.collect_all(frames)
    alpha = ctx.options["alpha"]
    return _estimates.quantile_estimates(bounds, labels, groups, outer, alpha=alpha)


def load_and_analyze(
    events: Any, ledger: Any, metrics_file: str | Path | None, **kw: Any
) -> AnalysisResult:
    """Convenience for the CLI: read the metrics file (if any) and analyze."""
    from analysis.metrics.definitions import load_metrics

    metrics = load_metrics(metrics_file) if metrics_file is not None else None
    return analyze(events, ledger, metrics=metrics, **kw)
