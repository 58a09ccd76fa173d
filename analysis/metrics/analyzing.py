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

The work is split in three: :mod:`analysis.metrics._plan` builds the lazy frames and the
aggregates, this module collects them in one go, and :mod:`analysis.metrics._estimates` turns
the collected aggregates into rows; the result types are in :mod:`analysis.metrics.results`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis._table import Table
from analysis.errors import PromptstateError
from analysis.metrics import _estimates, _plan
from analysis.metrics import aggregation as agg
from analysis.metrics._context import _Context, make_context
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
    SHOWN_COLUMNS,
    AnalysisResult,
    EffectRow,
    ExclusionRow,
    ExplainRow,
    SRMRow,
)
from analysis.stats.multiplicity import METHODS

if TYPE_CHECKING:  # pragma: no cover
    import narwhals as nw

    from analysis.events.labelling import SplitResult
    from analysis.stats.quantile import QuantileEstimate

__all__ = ["analyze", "default_metrics"]


def default_metrics() -> tuple[Metric, ...]:
    """The sample's metrics: helpfulness per turn, thumbs-up users, cost per user (CUPED),
    p95 latency."""
    return (
        Ratio("helpfulness"),
        Proportion("thumbs_up"),
        Mean("cost_usd", cuped=True, direction="lower"),
        Quantile("latency_ms", 0.95, direction="lower"),
    )


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
        events: A :class:`~analysis.events.labelling.SplitResult`, or an export
            :func:`~analysis.events.labelling.split` reads (path, pandas/polars/pyarrow/DuckDB
            frame, :class:`~analysis.events.loading.Events`).
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
        return _run(labelled, metrics, options)


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


def _run(
    res: SplitResult, metrics: tuple[Metric, ...], options: Mapping[str, Any]
) -> AnalysisResult:
    """One run of :func:`analyze`: builds the lazy aggregates, collects once, tests."""
    ctx = make_context(res, metrics, {k: options[k] for k in _OPTION_NAMES})
    notes = tuple(res.notes())
    fr = _plan.build_frames(ctx, res.keyed)
    ctx = dataclasses.replace(ctx, metrics=_plan.winsorized(ctx.metrics, fr.clean))
    plan = _plan.build_plan(ctx, fr)
    names = list(plan.frames)
    collected = dict(zip(names, agg.collect_all([plan.frames[n] for n in names]), strict=True))
    qest = _quantile_estimates(ctx, fr.frame, plan.quantile_views, collected)

    effects = _estimates.effect_rows(ctx, collected, qest)
    srm = _estimates.srm_rows(ctx, collected["srm"])
    exclusions = _estimates.exclusion_rows(collected["excl"])
    crossed = int(collected["xunits"][0]["units"]) if collected["xunits"] else 0
    alerts = _estimates.alerts(ctx, srm, crossed, collected["srm"])
    explain_rows = _estimates.explain_rows(ctx, collected.get("explain", []))
    recovery_rows, summary = _estimates.recovery_rows(ctx, plan.after_phase, collected)
    return AnalysisResult(
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
        notes=notes,
        options=dict(ctx.options),
    )


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
