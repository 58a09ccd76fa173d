"""The scheduled batch report: :func:`report` and :class:`Report`.

``report()`` runs the whole story on one export and one ledger — the contamination split, clean
vs naive effects, recovery after a rollback, the prompt cache around each boundary, the eval
baselines of the prompt and its downstream contracts — and returns a :class:`Report` that writes

* ``report.html`` — one self-contained file: a headline, what needs attention, then one section
  per question with its plot (inline SVG, no network fetch) and its table;
* ``report.md`` — the headline, attention items and the key tables (a chat message or a CI step
  summary);
* ``report.json`` — the same numbers, machine-readable; effect rows use the result-table columns
  of docs/metrics.md (``analysis, metric, phase, control, arm, n_control, ...``).

**Attention** (exit code 1 of ``promptstate report``), led by the completeness and freshness
findings (the export does not cover a phase's window, a run of empty hours, an arm's lost
logging: :mod:`analysis.metrics._completeness`), then a sample-ratio mismatch in a phase, the
crossover share above its threshold, a clean regression (clean combined effect significant
after the multiple-testing adjustment and in the worse direction), a stale baseline (a suite's
reference is not anchored to the prompt's live revision — e.g. still the reverted revision's),
a contract risk (a consumer of the prompt does not accept the contract its live revision emits).

**Window.** ``since``/``until`` restrict the events analysed *after* the split: labels use the
whole export (carryover needs the turns before the window), effects, counts and plots use the
events in ``[since, until − late_hours)`` (``until`` defaults to the newest event; the events
left out as late are counted in the notes).

**Several experiments.** With no ``experiment`` and a ledger of several experiments, every
experiment whose exposure overlaps the window is reported (:mod:`analysis.reporting._multi`):
one overview table, then one section per experiment; the exit code is the worst of theirs.

**Determinism.** Same inputs → same bytes: no wall-clock time is written, tables are sorted,
SVGs are rendered with a fixed hash salt, no date metadata and ids prefixed per figure. The
engine's parallel sums may differ in the last bits from run to run, so every number of the
report is rounded to 10 significant digits, and the label-by-label ``change`` of the explain
table is set to 0 where it is below 1e-9 of the effects' scale (a difference of equal numbers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from analysis.errors import PromptstateError
from analysis.reporting._common import (
    REPORT_FILES,
    Attention,
    _attention,
    _canon,
    _canonical_result,
    _headline,
    _jsonable,
)
from analysis.reporting._sections import (
    BaselineStatus,
    ContractStatus,
    _baselines,
    _contracts,
    _describe,
    _find_store,
    _ledger_arg,
)
from analysis.reporting.plots import PLOTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analysis.decisions import Decisions
    from analysis.evals.store import JournalEntry
    from analysis.events.labelling import SplitResult
    from analysis.ledger import Ledger
    from analysis.metrics import AnalysisResult
    from analysis.metrics._completeness import Window
    from analysis.metrics.definitions import Metric
    from analysis.reporting._data import CacheRow, ContaminationRow, TimeRow
    from analysis.reporting._multi import MultiReport

__all__ = [
    "ATTENTION_KINDS",
    "PLOTS",
    "Attention",
    "BaselineStatus",
    "ContractStatus",
    "Report",
    "report",
]

ATTENTION_KINDS = (
    "guardrail_breach",  # the report leads with it (docs/decisions.md)
    "completeness",
    "srm",
    "crossover",
    "missing_values",
    "regression",
    "stale_baseline",
    "invalid_baseline",
    "contract_risk",
    "error",  # a multi-experiment report: an experiment that could not be analysed
)


@dataclass(frozen=True)
class Report:
    """Everything the report shows; :meth:`write` renders the three files.

    Attributes:
        experiment: Experiment id.
        prompt: Its prompt.
        headline: One-sentence summary (clean vs naive effect of the primary metric, and the
            treatment arm's contaminated share).
        attention: What needs attention (empty: exit code 0).
        analysis: The :class:`~analysis.metrics.AnalysisResult`.
        contamination: Events by phase × arm tag × label
            (:class:`~analysis.reporting._data.ContaminationRow`).
        timeseries: Metric by hour × arm tag (:class:`~analysis.reporting._data.TimeRow`).
        cache: Prompt cache around boundaries (:class:`~analysis.reporting._data.CacheRow`).
        boundaries: ``(instant, action)`` of the experiment's boundaries.
        baselines: One :class:`BaselineStatus` per suite of the store.
        journals: Suite → its journal (for the history plot).
        contracts: One :class:`ContractStatus` per consumer of the prompt.
        metrics: The metrics analysed.
        phases: The experiment's phases.
        arms: The experiment's arms (control first).
        inputs: What was read (paths as given; options).
        notes: What the reader should know.
        columns: The labelled export's columns (which optional columns it has).
        decisions: Guardrail verdicts and the recommendation
            (:class:`~analysis.decisions.Decisions`).
    """

    experiment: str
    prompt: str
    headline: str
    attention: tuple[Attention, ...]
    analysis: AnalysisResult
    contamination: tuple[ContaminationRow, ...]
    timeseries: tuple[TimeRow, ...]
    cache: tuple[CacheRow, ...]
    boundaries: tuple[tuple[datetime, str], ...]
    baselines: tuple[BaselineStatus, ...]
    journals: Mapping[str, tuple[JournalEntry, ...]]
    contracts: tuple[ContractStatus, ...]
    metrics: tuple[Metric, ...]
    phases: tuple[Any, ...]
    arms: tuple[str, ...]
    ledger: Ledger
    inputs: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    decisions: Decisions | None = None

    @property
    def ok(self) -> bool:
        """Nothing needs attention."""
        return not self.attention

    @property
    def exit_code(self) -> int:
        """0 when nothing needs attention, 1 otherwise (what ``promptstate report`` exits with)."""
        return 0 if self.ok else 1

    @property
    def exposure_metric(self) -> str:
        """The metric of the effect-by-exposure-day figure: the first one with rows (the first
        metric when none has)."""
        names = [getattr(r, "metric", "") for r in self.analysis.by_exposure_day.rows]
        first = next((m.label for m in self.metrics if m.label in names), None)
        return first or (self.metrics[0].label if self.metrics else "")

    # -- figures ---------------------------------------------------------------------------
    def figure(self, name: str) -> Figure:
        """One of the report's figures by name (see :data:`PLOTS`), built from its numbers."""
        from analysis.reporting import plots

        if name == "metric_by_time":
            return plots.draw_metric_by_time(self.timeseries, self.phases, self.arms, self.metrics)
        if name == "contamination":
            return plots.draw_contamination(self.contamination, self.experiment)
        if name == "effects":
            return plots.draw_effects(list(self.analysis.effects.rows))
        if name == "exposure_days":
            from analysis.reporting._plot_exposure import plot_effect_by_exposure_day

            return plot_effect_by_exposure_day(self.analysis, self.exposure_metric)
        if name == "segments":
            from analysis.reporting._plot_segments import plot_segments, segment_metric

            metric = segment_metric(self.analysis, self.exposure_metric)
            return plot_segments(self.analysis, metric)
        if name == "recovery":
            return plots.draw_recovery(list(self.analysis.recovery.rows))
        if name == "cache":
            return plots.draw_cache(self.cache, self.boundaries)
        if name == "baselines":
            prompts = {b.suite: b.prompt for b in self.baselines}
            return plots.draw_baseline_history(self.journals, prompts, self.ledger)
        raise KeyError(f"unknown plot {name!r}; plots are {', '.join(PLOTS)}")

    # -- renderings ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The report's numbers (what ``report.json`` holds)."""
        return _to_dict(self)

    def to_json(self) -> str:
        """``report.json``'s text (NaN as null)."""
        return json.dumps(_jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        """``report.md``'s text."""
        from analysis.reporting._html import render_markdown

        return render_markdown(self)

    def to_html(self) -> str:
        """``report.html``'s text: self-contained, plots as inline SVG."""
        from analysis.reporting._html import render_html

        return render_html(self)

    def _repr_html_(self) -> str:
        from analysis.reporting._html import render_summary_html

        return render_summary_html(self)

    def __str__(self) -> str:
        lines = [self.headline, ""]
        if self.attention:
            lines += ["Needs attention:", *(f"- [{a.kind}] {a.message}" for a in self.attention)]
        else:
            lines.append("Nothing needs attention.")
        return "\n".join(lines)

    def write(self, out: str | Path) -> tuple[Path, ...]:
        """Write ``report.html``, ``report.md`` and ``report.json`` into ``out`` (atomically).

        The three texts are rendered before anything is created, so a failure while rendering
        leaves no ``out`` directory behind.
        """
        from analysis._io import atomic_write_text

        out = Path(out)
        texts = (self.to_html(), self.to_markdown(), self.to_json())
        out.mkdir(parents=True, exist_ok=True)
        paths = tuple(out / name for name in REPORT_FILES)
        for path, text in zip(paths, texts, strict=True):
            atomic_write_text(path, text)
        return paths


# ------------------------------------------------------------------------------------------


def _parse_time(value: datetime | str | None, name: str) -> datetime | None:
    from analysis.metrics._completeness import parse_time

    return parse_time(value, name)


@overload
def report(
    events: Any,
    ledger: Any,
    experiment: str,
    *,
    metrics: Sequence[Metric] | str | Path | None = None,
    store: str | Path | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    columns: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    multiplicity: str = "holm",
    srm_threshold: float = 0.001,
    crossover_threshold: float = 0.02,
    recovery_bin_hours: float = 2.0,
    late_hours: float = 2.0,
    gap_hours: float = 1.0,
    drop_threshold: float = 0.3,
    completeness_alpha: float = 0.001,
    materialize: bool | None = None,
    out: str | Path | None = None,
    fresh_hours: float | None = None,
    now: datetime | str | None = None,
    moved_units: str = "keep",
    segments: Sequence[str] | None = None,
    sequential: bool = False,
    planned_units: float | None = None,
    mde: float | str | None = None,
) -> Report: ...


@overload
def report(
    events: Any = None,
    ledger: Any = None,
    experiment: None = None,
    *,
    metrics: Sequence[Metric] | str | Path | None = None,
    store: str | Path | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    columns: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    multiplicity: str = "holm",
    srm_threshold: float = 0.001,
    crossover_threshold: float = 0.02,
    recovery_bin_hours: float = 2.0,
    late_hours: float = 2.0,
    gap_hours: float = 1.0,
    drop_threshold: float = 0.3,
    completeness_alpha: float = 0.001,
    materialize: bool | None = None,
    out: str | Path | None = None,
    fresh_hours: float | None = None,
    now: datetime | str | None = None,
    moved_units: str = "keep",
    segments: Sequence[str] | None = None,
    sequential: bool = False,
    planned_units: float | None = None,
    mde: float | str | None = None,
) -> Report | MultiReport: ...


def report(
    events: Any = None,
    ledger: Any = None,
    experiment: str | None = None,
    *,
    metrics: Sequence[Metric] | str | Path | None = None,
    store: str | Path | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    columns: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    multiplicity: str = "holm",
    srm_threshold: float = 0.001,
    crossover_threshold: float = 0.02,
    recovery_bin_hours: float = 2.0,
    late_hours: float = 2.0,
    gap_hours: float = 1.0,
    drop_threshold: float = 0.3,
    completeness_alpha: float = 0.001,
    materialize: bool | None = None,
    out: str | Path | None = None,
    fresh_hours: float | None = None,
    now: datetime | str | None = None,
    moved_units: str = "keep",
    segments: Sequence[str] | None = None,
    sequential: bool = False,
    planned_units: float | None = None,
    mde: float | str | None = None,
) -> Report | MultiReport:
    """Build the batch report of one experiment, or of every active one (and write it when
    ``out`` is given).

    Args:
        events: The export (anything :func:`~analysis.events.labelling.split` reads, or a
            :class:`~analysis.events.labelling.SplitResult`); default: the embedded sample.
        ledger: Ledger path or object; default: the sample's (only with the sample's events).
        experiment: Experiment id. Left out with a ledger of several experiments: every
            experiment whose exposure overlaps ``[since, until)`` gets a section of a
            :class:`~analysis.reporting._multi.MultiReport` (overview table first).
        metrics: Metric objects or a metrics file; default: the sample's ``metrics.yaml`` with
            the sample, inferred from the export's columns otherwise
            (:func:`analysis.metrics.infer_metrics`; its note is on the page).
        store: Baseline store; default: the sample's store with the sample, else
            :func:`analysis.evals.locate_store` (``PROMPTSTATE_STORE``, ``[tool.promptstate]``
            in pyproject.toml, ``./baselines``); no baseline section (and a note naming the
            lookup order) when none is found.
        since: Analyse events at or after this instant (after the split, see the module doc).
        until: Analyse events before this instant (default: the newest event).
        columns: Column map for loading ``events``.
        alpha: 1 − confidence level.
        multiplicity: ``holm``, ``bh`` or ``none``.
        srm_threshold: SRM flagged at ``p < srm_threshold``.
        crossover_threshold: Attention when crossover units exceed this share of enrolled units.
        recovery_bin_hours: Bin width of the recovery curve.
        late_hours: Leave out the events of the last ``late_hours`` before ``until`` (noted).
        gap_hours: Shortest run of empty hours reported as a completeness gap.
        drop_threshold: Shortfall of an arm's newly enrolled units (per phase and day) against
            what the allocation and the other arms imply that is reported when significant.
        completeness_alpha: Significance level of the gap and volume checks.
        materialize: Compute the labelled events once and aggregate from that (default: on;
            a temporary Parquet file on polars and DuckDB, a persisted frame on PySpark; see
            :func:`analysis.events.labelling.materialized`).
        out: Directory to write ``report.html``, ``report.md``, ``report.json`` into.
        fresh_hours: Leave out late data only when ``until`` lies within this many hours of
            the run time (default: the ``run_clock`` block's, else 24).
        now: The run time ``fresh_hours`` is measured from (default: the clock).
        moved_units: ``keep`` (default) counts a ramp-moved unit in the arm it had in each
            phase; ``exclude`` leaves such units out, as before 0.3 (see
            :func:`analysis.metrics.analyze`).
        segments: Unit attributes whose values get their own clean effects (fixed at each
            unit's first exposure; a forest plot in the report; see
            :func:`analysis.metrics.analyze`).
        sequential: Monitoring that allows peeking: the regressions, guardrail verdicts and SRM
            the report judges are the always-valid ones, and its effects tables show the
            confidence sequences (see :func:`analysis.metrics.analyze`); needs
            ``planned_units``.
        planned_units: Units (all arms) the experiment is planned to reach, fixed before the
            first look (required with ``sequential=True``).
        mde: Planned minimum detectable effect of the primary metrics, absolute or a percent of
            the control value (``"5%"``): the recommendation ramps or promotes only once every
            primary metric can detect it (see :func:`analysis.decisions.decide`); default:
            planned power unknown.

    Returns:
        A :class:`Report` (one experiment) or a :class:`~analysis.reporting._multi.MultiReport`;
        ``exit_code`` is 1 when something needs attention (a multi-experiment report: the worst
        of its experiments', 2 when one could not be analysed).

    Raises:
        PromptstateError: bad input (exit code 2 in the CLI).
    """
    from analysis._paths import sample_path
    from analysis.decisions.recommendation import check_mde
    from analysis.events.labelling import SplitResult, materialized, split
    from analysis.metrics import infer_metrics
    from analysis.metrics._completeness import check_completeness_options, resolve_window
    from analysis.metrics.analyzing import check_sequential
    from analysis.metrics.definitions import load_metrics

    opts: dict[str, Any] = {
        "alpha": alpha,
        "multiplicity": multiplicity,
        "srm_threshold": srm_threshold,
        "crossover_threshold": crossover_threshold,
        "recovery_bin_hours": recovery_bin_hours,
        "late_hours": late_hours,
        "gap_hours": gap_hours,
        "drop_threshold": drop_threshold,
        "completeness_alpha": completeness_alpha,
        "moved_units": moved_units,
        "segments": segments,
        "sequential": sequential,
        "planned_units": planned_units,
    }
    check_completeness_options(late_hours, gap_hours, drop_threshold, completeness_alpha)
    check_sequential(sequential, planned_units)  # bad input fails before anything is read
    check_mde(mde)
    start = _parse_time(since, "since")
    stop = _parse_time(until, "until")
    if start is not None and stop is not None and stop <= start:
        raise PromptstateError(
            f"until ({stop.isoformat()}) must be after since ({start.isoformat()})"
        )
    use_sample = events is None
    if use_sample:
        if ledger is not None:
            raise PromptstateError("report: pass the events together with --ledger")
        events, ledger = sample_path("events.parquet"), sample_path("ledger.yaml")
        if metrics is None:
            metrics = sample_path("metrics.yaml")
    if isinstance(events, SplitResult):
        res = events
    else:
        if ledger is None:
            raise PromptstateError("report: pass the ledger (--ledger FILE) with the events")
        if experiment is None and not use_sample:
            from analysis.ledger import Ledger, load_ledger
            from analysis.reporting._multi import report_experiments

            led = ledger if isinstance(ledger, Ledger) else load_ledger(ledger)
            if len(led.experiments) > 1:
                multi = report_experiments(
                    report, events, led, metrics=metrics, store=store, since=start,
                    until=stop, columns=columns, materialize=materialize, fresh_hours=fresh_hours,
                    now=now, mde=mde, **opts,
                )  # fmt: skip
                if out is not None:
                    multi.write(out)
                return multi
            ledger = led
        res = split(events, ledger, experiment, columns=columns)
    notes: list[str] = []
    if isinstance(metrics, str | Path):
        ms = tuple(load_metrics(metrics))
    elif metrics is not None:
        ms = tuple(metrics)
    else:  # a user's export: never the sample's metrics
        inferred = infer_metrics(res, columns=columns)
        ms, notes = inferred.metrics, [inferred.note]
    if start is not None or stop is not None:
        notes.append(
            f"events restricted to [{start.isoformat() if start else '…'}, "
            f"{stop.isoformat() if stop else '…'}) after labelling (labels used the whole export)"
        )
    with materialized(res, materialize) as res:
        window = resolve_window(  # on the materialised events
            res, start, stop, late_hours, fresh_hours=fresh_hours, now=now
        )
        rep = _build(res, ms, store, use_sample, notes, events, ledger, window, opts, mde)
    if out is not None:
        rep.write(out)
    return rep


def _build(
    res: SplitResult,
    ms: tuple[Metric, ...],
    store: str | Path | None,
    use_sample: bool,
    notes: list[str],
    events: Any,
    ledger: Any,
    window: Window,
    opts: Mapping[str, Any],
    mde: float | str | None = None,
) -> Report:
    from analysis._paths import sample_store
    from analysis.metrics import analyze
    from analysis.metrics._completeness import apply_window
    from analysis.reporting import _data as data

    exp = res.experiment
    led = res.ledger
    result = analyze(
        res,
        metrics=ms,
        since=window.since,
        until=window.until,
        **opts,
        fresh_hours=window.fresh_hours,  # the window's run time: the same cutoff
        now=window.now,
        materialize=False,  # already materialised above
    )
    result = _canonical_result(result)
    res = apply_window(res, window)  # what the report's own aggregates read
    bounds = data.boundaries(res)
    frames = [
        data.timeseries_frame(res.frame, exp.id, ms),
        data.contamination_frame(res.frame, exp.id),
    ]
    cframe = data.cache_frame(res.frame, bounds, window=timedelta(hours=2))
    if cframe is not None:
        frames.append(cframe)
    collected = data.collect(frames)
    series = tuple(_canon(r) for r in data.timeseries_rows(collected[0], ms))
    counts = tuple(_canon(r) for r in data.contamination_rows(collected[1], res.phases))
    cache = tuple(_canon(r) for r in data.cache_rows(collected[2], bounds)) if cframe else ()

    store_path, store_source = _find_store(store, sample_store() if use_sample else None)
    baselines, journals = (
        _baselines(store_path, led, _ledger_arg(ledger if ledger is not None else led))
        if store_path is not None
        else ((), {})
    )
    if store_path is None:
        notes.append(store_source)
    contracts = _contracts(led, exp.prompt)

    decisions = _decisions(result, ms, led, events, ledger, mde)
    attention = [
        *(Attention("guardrail_breach", m) for m in decisions.breach_messages),  # leads
        *_attention(result, baselines, contracts),
    ]
    headline = _headline(result, counts, exp, ms, res.phases, window.since, window.until)
    if decisions.breaches:
        first = decisions.breaches[0]
        headline = (
            f"Guardrail breach: {first.metric} of {first.arm} is worse than its margin "
            f"{first.margin_text} (harm {first.harm:+.3g}, upper bound {first.bound:+.3g}). "
            + headline
        )
    inputs = {
        "events": "sample" if use_sample else _describe(events),
        "ledger": "sample" if use_sample else _describe(ledger),
        "store": None
        if store_path is None
        else ("sample" if use_sample and store is None else str(store_path)),
        "store_source": None if store_path is None else store_source,
        "experiment": exp.id,
        "since": window.since.isoformat() if window.since else None,
        "until": window.until.isoformat() if window.until else None,
        **opts,
        "mde": mde,
    }
    return Report(
        experiment=exp.id,
        prompt=exp.prompt,
        headline=headline,
        attention=tuple(attention),
        analysis=result,
        contamination=counts,
        timeseries=series,
        cache=cache,
        boundaries=tuple(bounds),
        baselines=tuple(baselines),
        journals=journals,
        contracts=tuple(contracts),
        metrics=ms,
        phases=tuple(res.phases),
        arms=(exp.control, *exp.treatment_arms),
        ledger=led,
        inputs=inputs,
        notes=tuple(dict.fromkeys([*result.notes, *notes])),
        columns=tuple(res.frame.collect_schema().names()),
        decisions=decisions,
    )


def _decisions(
    result: AnalysisResult,
    ms: Sequence[Metric],
    led: Ledger,
    events: Any,
    ledger: Any,
    mde: float | str | None = None,
) -> Decisions:
    """Guardrails and the recommendation (planned power from ``mde``; the always-valid
    decisions when ``result`` is sequential); the commands name the export and ledger when
    they were given as paths."""
    from analysis.decisions import CommandContext, decide

    def path(value: Any) -> str | None:
        return str(value) if isinstance(value, str | Path) else None

    context = CommandContext(events=path(events), ledger=path(ledger))
    return decide(result, ms, led, mde=mde, context=context)


def _rows(table_rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [dict(r._asdict()) for r in table_rows]


def _to_dict(rep: Report) -> dict[str, Any]:
    res = rep.analysis
    from analysis.errors import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "report_version": 1,
        "experiment": rep.experiment,
        "prompt": rep.prompt,
        "control": res.control,
        "arms": list(rep.arms),
        "headline": rep.headline,
        "ok": rep.ok,
        "exit_code": rep.exit_code,
        "attention": _rows(rep.attention),
        "completeness": res.completeness.to_records(),
        "inputs": dict(rep.inputs),
        "phases": [p.to_dict() for p in rep.phases],
        "metrics": [m.label for m in rep.metrics],
        "effects": res.effects.to_records(),
        "srm": res.srm.to_records(),
        "exclusions": res.exclusions.to_records(),
        "explain": res.explain.to_records(),
        "contamination": {
            "n_events": sum(r.n_events for r in rep.contamination),
            "rows": _rows(rep.contamination),
        },
        "recovery": res.recovery.to_records(),
        "recovery_summary": res.recovery_summary.to_records(),
        "segments": res.segments.to_records(),
        "segment_heterogeneity": res.segment_heterogeneity.to_records(),
        "metric_by_time": _rows(rep.timeseries),
        "cache": _rows(rep.cache),
        "baselines": [
            {**b._asdict(), "journal": [e.to_dict() for e in rep.journals.get(b.suite, ())]}
            for b in rep.baselines
        ],
        "contracts": [{**c._asdict(), "accepts": list(c.accepts)} for c in rep.contracts],
        "notes": list(rep.notes),
        **(rep.decisions.to_dict() if rep.decisions is not None else {}),
    }
