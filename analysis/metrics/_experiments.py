"""Every active experiment of a ledger in one run: :func:`analyze_experiments`.

An experiment is *active* in ``[since, until)`` when one of its exposure phases overlaps it
(``until`` defaults to the newest event of the export, ``since`` to the beginning of time). Each
active experiment is analysed on its own with :func:`~analysis.metrics.analyzing.analyze` (the
same export, loaded once; the same ``until`` for all, so every experiment is cut at the same
instant).

**A bad experiment does not hide the others.** When the analysis of one experiment fails with a
:class:`~analysis.errors.PromptstateError` (bad input, e.g. no event tagged with it), the error
is kept as an :class:`ExperimentError` row (its message and exit code) and the other experiments
are still analysed; the run's :attr:`ExperimentsResult.exit_code` is the worst of all by the
exit-code precedence (4 > 2 > 3 > 1 > 0, :func:`analysis.errors.worst_exit`), so such a run
exits 2 while still reporting the others. A crash (any other exception) is not caught.

**A lagging export is not bad input.** An active experiment with no tagged event in the export
(:func:`untagged_experiments`) is not analysed: when its exposure started more than ``late_hours``
before the window's end (0 when the window is not fresh: ``fresh_hours``,
:mod:`analysis.metrics._completeness`) it is a ``completeness`` finding (an
:class:`ExperimentError` of kind ``completeness``, exit code 1: the export lags or its tagging is
broken); when it started later, a note (events may still be arriving; exit code 0 for that
cause). Experiments left out because their exposure ended before ``since`` (or starts after
``until``) are named in one note.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis._render import fmt
from analysis.errors import SCHEMA_VERSION, PromptstateError, worst_exit
from analysis.metrics._completeness import effective_clock, is_fresh, parse_time, run_clock

if TYPE_CHECKING:  # pragma: no cover
    from analysis.ledger import Ledger, Phase
    from analysis.metrics.results import AnalysisResult

__all__ = [
    "ExperimentError",
    "ExperimentsResult",
    "OverviewRow",
    "Untagged",
    "active_experiments",
    "analyze_experiments",
    "experiment_state",
    "headline_effect",
    "left_out_note",
    "untagged_experiments",
]


class ExperimentError(NamedTuple):
    """An active experiment that could not be analysed.

    Attributes:
        experiment: Experiment id.
        exit_code: The error's exit code (2 for bad input; 1 for a ``completeness`` finding).
        message: The error's message (names the file, row or entry and what to do).
        kind: ``error`` (the analysis failed) or ``completeness`` (no event of the export is
            tagged with an experiment that started more than ``late_hours`` before the window's
            end: the export lags, or the tagging is broken).
    """

    experiment: str
    exit_code: int
    message: str
    kind: str = "error"

    def to_dict(self, state: str) -> dict[str, Any]:
        """JSON-friendly: ``{"schema_version", "experiment", "state", "ok": false, "exit_code",
        "error"}`` (its object among the experiments of a JSON output)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "experiment": self.experiment,
            "state": state,
            "ok": False,
            "exit_code": self.exit_code,
            "error": self.message,
        }


class OverviewRow(NamedTuple):
    """One line of the overview of several experiments.

    Attributes:
        experiment: Experiment id.
        state: ``running``, or the action that ended it (``rolled back``, ``promoted``,
            ``stopped``) per the ledger.
        headline: The clean combined effect of the first metric on the first treatment arm
            (``metric arm: effect [lower, upper]``), or the error.
        alerts: Completeness findings, alerts and regressions (``None`` when it failed).
        exit_code: The experiment's exit code.
    """

    experiment: str
    state: str
    headline: str
    alerts: int | None
    exit_code: int


def experiment_state(ledger: Ledger, experiment: str) -> str:
    """``running``, ``rolled back``, ``promoted`` or ``stopped`` from the ledger's phases."""
    phases = ledger.phases(experiment)
    ended = [p for p in phases if p.kind == "after_end"]
    if not ended:
        return "running"
    action = ended[-1].start_action or "stop"
    return {"rollback": "rolled back", "promote": "promoted"}.get(action, "stopped")


def headline_effect(result: AnalysisResult) -> str:
    """The clean combined effect of the first metric on the first treatment arm, as text."""
    from analysis.metrics.results import EffectRow

    for r in result.effects.rows:
        if isinstance(r, EffectRow) and (r.analysis, r.phase) == ("clean", "combined"):
            if not math.isfinite(r.effect):
                why = (
                    f"fewer than two units with clean events in an arm "
                    f"({r.n_control} {r.control}, {r.n_arm} {r.arm})"
                    if min(r.n_control, r.n_arm) < 2
                    else "the effect could not be estimated (see the notes)"
                )
                return f"{r.metric} {r.arm}: no clean combined effect: {why}"
            rel = "" if r.rel_effect != r.rel_effect else f" ({r.rel_effect * 100:+.1f}%)"
            return (
                f"{r.metric} {r.arm}: {fmt(r.effect)}{rel} "
                f"[{fmt(r.effect_ci_lower)}, {fmt(r.effect_ci_upper)}]"
            ).replace("-", "−")
    return "no clean combined effect"


def _overlaps(phases: Iterable[Phase], since: datetime | None, until: datetime | None) -> bool:
    for p in phases:
        if p.kind != "exposure" or p.start is None:
            continue
        if (until is None or p.start < until) and (since is None or p.end is None or p.end > since):
            return True
    return False


def active_experiments(
    ledger: Ledger, since: datetime | None, until: datetime | None
) -> tuple[str, ...]:
    """Experiments of ``ledger`` with an exposure phase overlapping ``[since, until)``, by id."""
    return tuple(e for e in sorted(ledger.experiments) if _overlaps(ledger.phases(e), since, until))


@dataclass(frozen=True)
class ExperimentsResult:
    """The analyses of every active experiment.

    Attributes:
        results: One :class:`~analysis.metrics.results.AnalysisResult` per analysed experiment.
        errors: Active experiments whose analysis failed (:class:`ExperimentError`).
        states: Experiment → its state (:func:`experiment_state`).
        since: Start of the window (``None``: unbounded).
        until: End of the window (the newest event unless given).
        inactive: Experiments of the ledger left out (no exposure in the window).
        notes: What the reader should know about the run: experiments left out and why,
            experiments that started too recently to have events (:func:`untagged_experiments`).
    """

    results: tuple[AnalysisResult, ...]
    errors: tuple[ExperimentError, ...]
    states: dict[str, str]
    since: datetime | None
    until: datetime | None
    inactive: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def experiments(self) -> tuple[str, ...]:
        """Every active experiment, analysed or failed, by id."""
        return tuple(
            sorted([r.experiment for r in self.results] + [e.experiment for e in self.errors])
        )

    @property
    def exit_code(self) -> int:
        """The worst exit code of the experiments (4 > 2 > 3 > 1 > 0)."""
        return worst_exit(*(r.exit_code for r in self.results), *(e.exit_code for e in self.errors))

    @property
    def ok(self) -> bool:
        """Every experiment analysed and nothing to alert on."""
        return self.exit_code == 0

    def result(self, experiment: str) -> AnalysisResult:
        """The analysis of one experiment.

        Raises:
            KeyError: not analysed (the message lists those that were, and the errors).
        """
        for r in self.results:
            if r.experiment == experiment:
                return r
        failed = {e.experiment: e.message for e in self.errors}
        if experiment in failed:
            raise KeyError(f"experiment {experiment!r} failed: {failed[experiment]}")
        have = ", ".join(r.experiment for r in self.results) or "none"
        raise KeyError(f"experiment {experiment!r} was not analysed; analysed: {have}")

    def overview(self) -> tuple[OverviewRow, ...]:
        """One :class:`OverviewRow` per active experiment, by id."""
        rows = [
            OverviewRow(
                r.experiment,
                self.states.get(r.experiment, ""),
                headline_effect(r),
                len(r.all_alerts),
                r.exit_code,
            )
            for r in self.results
        ]
        rows += [
            OverviewRow(
                e.experiment,
                self.states.get(e.experiment, ""),
                f"error: {e.message}" if e.kind == "error" else e.message,
                None,
                e.exit_code,
            )
            for e in self.errors
        ]
        return tuple(sorted(rows))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: ``{"schema_version": 1, "exit_code", "since", "until", "inactive",
        "overview": [rows], "experiments": [one object per experiment]}``; an analysed
        experiment's object is its :meth:`AnalysisResult.to_dict` (with ``state``), a failed
        one's ``{"schema_version", "experiment", "state", "ok": false, "exit_code", "error"}``.
        """
        per: dict[str, dict[str, Any]] = {}
        for r in self.results:
            d = r.to_dict()
            d["state"] = self.states.get(r.experiment, "")
            per[r.experiment] = d
        for e in self.errors:
            per[e.experiment] = e.to_dict(self.states.get(e.experiment, ""))
        return {
            "schema_version": SCHEMA_VERSION,
            "exit_code": self.exit_code,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "inactive": list(self.inactive),
            "notes": list(self.notes),
            "overview": [r._asdict() for r in self.overview()],
            "experiments": [per[k] for k in sorted(per)],
        }

    def _overview_table(self) -> Any:
        from analysis._table import Table

        return Table(self.overview(), OverviewRow._fields, title="experiments")

    def __str__(self) -> str:
        parts = [str(self._overview_table())]
        parts += [f"{e.kind.upper()} ({e.experiment}): {e.message}" for e in self.errors]
        parts += [f"note: {n}" for n in self.notes]
        parts += [str(r) for r in self.results]
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        """The overview, then each experiment's tables."""
        from analysis._render import md_code, md_text

        parts = [self._overview_table().to_markdown()]
        parts += [
            f"- **{e.kind}** {md_code(e.experiment)}: {md_text(e.message)}" for e in self.errors
        ]
        parts += [f"- note: {md_text(n)}" for n in self.notes]
        parts += [r.to_markdown() for r in self.results]
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        errors = "".join(
            f"<p><b>{html.escape(e.kind)}</b> {html.escape(e.experiment)}: "
            f"{html.escape(e.message)}</p>"
            for e in self.errors
        ) + "".join(f"<p>note: {html.escape(n)}</p>" for n in self.notes)
        body = "".join(r._repr_html_() for r in self.results)
        return f"<div>{self._overview_table()._repr_html_()}{errors}{body}</div>"


class Untagged(NamedTuple):
    """The active experiments sorted by whether the export has events of theirs
    (:func:`untagged_experiments`).

    Attributes:
        findings: Experiments without events that started more than the late-data margin
            before the window's end (kind ``completeness``, exit code 1).
        notes: One note per experiment without events that started within the margin.
        rest: The experiments to analyse (those with tagged events), in the given order.
    """

    findings: tuple[ExperimentError, ...]
    notes: tuple[str, ...]
    rest: tuple[str, ...]


def untagged_experiments(
    ledger: Ledger,
    chosen: Sequence[str],
    held: Mapping[str, int],
    until: datetime | None,
    late_hours: float,
    *,
    fresh_hours: float | None = None,
    now: datetime | str | None = None,
    source: str = "the export",
) -> Untagged:
    """Sort out the active experiments no event of the export is tagged with.

    An experiment without events whose exposure started more than ``late_hours`` before
    ``until`` (the margin is 0 when the window is not fresh: ``until`` more than
    ``fresh_hours`` before the run time ``now``) is a ``completeness`` finding: the export lags
    or the experiment's tagging is broken. One that started later is a note: its first events
    may still be arriving.

    Args:
        ledger: The ledger.
        chosen: The active experiments.
        held: Experiment → number of tagged events in the export (``LoadReport.experiments``).
        until: The window's end (``None``: an empty export; every experiment is a finding).
        late_hours: The late-data margin.
        fresh_hours: Freshness horizon (default: the :func:`run_clock` block's, else 24).
        now: Run time (default: the block's, else the clock).
        source: How to name the export in the messages.

    Returns:
        An :class:`Untagged`.
    """
    clock = effective_clock(fresh_hours, now)
    assert clock.now is not None
    margin = (
        late_hours if until is not None and is_fresh(until, clock.fresh_hours, clock.now) else 0.0
    )
    listing = ", ".join(f"{e} ({n} events)" for e, n in sorted(held.items()) if n) or "none"
    findings: list[ExperimentError] = []
    notes: list[str] = []
    rest: list[str] = []
    for exp in chosen:
        if held.get(exp, 0) > 0:
            rest.append(exp)
            continue
        started = _first_exposure(ledger.phases(exp))
        age = None if until is None or started is None else (until - started) / timedelta(hours=1)
        when = "" if started is None else f", which started at {started.isoformat()}"
        if age is not None and age <= margin:
            notes.append(
                f"{exp}: no event yet{when}, {age:.3g} h before the window's end "
                f"{until.isoformat() if until else '…'} (within late_hours={margin:g}: its first "
                "events may still be arriving); not analysed"
            )
            continue
        ago = "" if age is None else f" ({age:.3g} h before the window's end {until})"
        findings.append(
            ExperimentError(
                exp,
                1,
                f"completeness: no event of {source} is tagged with experiment {exp!r}{when}"
                f"{ago}; the export lags or the experiment's events are not tagged with it "
                f"(check the export's newest events and its experiment_id column); the export "
                f"holds: {listing}",
                "completeness",
            )
        )
    return Untagged(tuple(findings), tuple(notes), tuple(rest))


def _first_exposure(phases: Iterable[Phase]) -> datetime | None:
    return next((p.start for p in phases if p.kind == "exposure" and p.start is not None), None)


def left_out_note(
    ledger: Ledger, inactive: Sequence[str], since: datetime | None, until: datetime | None
) -> str | None:
    """One line naming the experiments left out of a run, each with why (ended before
    ``since``, starts after ``until``, never started); ``None`` when none was."""
    if not inactive:
        return None
    parts = []
    for exp in inactive:
        phases = [p for p in ledger.phases(exp) if p.kind == "exposure" and p.start is not None]
        ends = [p.end for p in phases]
        if not phases:
            why = "never started"
        elif since is not None and all(e is not None and e <= since for e in ends):
            last = max(e for e in ends if e is not None)
            why = f"ended at {last.isoformat()}, before since {since.isoformat()}"
        elif until is not None and phases[0].start is not None and phases[0].start >= until:
            why = f"starts at {phases[0].start.isoformat()}, after the window"
        else:  # pragma: no cover - active_experiments keeps every other one
            why = "no exposure in the window"
        parts.append(f"{exp} ({why})")
    return "left out: " + "; ".join(parts)


def analyze_experiments(
    events: Any,
    ledger: Any,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    experiments: Sequence[str] | None = None,
    columns: Any = None,
    fresh_hours: float | None = None,
    now: datetime | str | None = None,
    **analyze_kwargs: Any,
) -> ExperimentsResult:
    """Analyse every experiment whose exposure overlaps ``[since, until)``.

    Args:
        events: The export (anything :func:`~analysis.events.loading.load_events` reads);
            loaded once.
        ledger: Ledger path or :class:`~analysis.ledger.Ledger`.
        since: Window start (ISO-8601 text or datetime; default unbounded).
        until: Window end (default: the newest event of the export, the same for all).
        experiments: Analyse these experiments instead of the active ones.
        columns: Column map for loading ``events``.
        fresh_hours: Late data is left out only when ``until`` lies within this many hours of
            the run time (default 24; :func:`~analysis.metrics._completeness.run_clock`).
        now: The run time (ISO-8601 text or datetime; default: the clock).
        **analyze_kwargs: Passed to :func:`~analysis.metrics.analyzing.analyze` for each
            experiment (metrics, alpha, late_hours, ...).

    Returns:
        An :class:`ExperimentsResult` (exit code: the worst of the experiments').

    Raises:
        PromptstateError: the ledger or export cannot be read, a time is not ISO-8601, or no
            experiment is active in the window (the message lists the experiments).
    """
    import narwhals as nw

    from analysis.events.loading import load_events
    from analysis.ledger import Ledger, load_ledger
    from analysis.metrics.analyzing import analyze

    led = ledger if isinstance(ledger, Ledger) else load_ledger(ledger)
    start, stop = parse_time(since, "since"), parse_time(until, "until")
    if start is not None and stop is not None and stop <= start:
        raise PromptstateError(
            f"until ({stop.isoformat()}) must be after since ({start.isoformat()})"
        )
    units = [led.experiments[e].unit for e in sorted(led.experiments)]
    loaded = load_events(events, columns=columns, ledger=led, unit=units[0] if units else "user_id")
    if stop is None:
        newest = loaded.frame.select(nw.col("ts").max()).collect().rows()[0][0]
        # just after the newest event, so that [since, until) includes it
        stop = None if newest is None else parse_time(newest, "ts")
        stop = None if stop is None else stop + timedelta(microseconds=1)
    chosen = tuple(experiments) if experiments is not None else active_experiments(led, start, stop)
    if not chosen:
        window = f"[{start.isoformat() if start else '…'}, {stop.isoformat() if stop else '…'})"
        raise PromptstateError(
            f"no experiment of the ledger has exposure in {window} (experiments: "
            f"{', '.join(sorted(led.experiments)) or 'none'}); widen --since/--until or name "
            "one with --experiment"
        )
    clock = effective_clock(fresh_hours, now)
    sorted_out = untagged_experiments(
        led,
        chosen,
        loaded.report.experiments,
        stop,
        analyze_kwargs.get("late_hours", 2.0),
        fresh_hours=clock.fresh_hours,
        now=clock.now,
        source=loaded.report.source,
    )
    results: list[AnalysisResult] = []
    errors: list[ExperimentError] = list(sorted_out.findings)
    with run_clock(clock.fresh_hours, clock.now):  # every experiment judged at one run time
        for exp in sorted_out.rest:
            try:
                results.append(analyze(loaded, led, exp, since=start, until=stop, **analyze_kwargs))
            except PromptstateError as exc:
                errors.append(ExperimentError(exp, exc.exit_code, str(exc)))
    inactive = tuple(e for e in sorted(led.experiments) if e not in chosen)
    left_out = left_out_note(led, inactive, start, stop)
    pending = {n.split(":", 1)[0] for n in sorted_out.notes}
    return ExperimentsResult(
        results=tuple(results),
        errors=tuple(errors),
        states={e: experiment_state(led, e) for e in chosen if e not in pending},
        since=start,
        until=stop,
        inactive=inactive,
        notes=(*([left_out] if left_out else []), *sorted_out.notes),
    )
