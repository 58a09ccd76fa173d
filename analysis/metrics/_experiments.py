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
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis._render import fmt
from analysis.errors import SCHEMA_VERSION, PromptstateError, worst_exit
from analysis.metrics._completeness import parse_time

if TYPE_CHECKING:  # pragma: no cover
    from analysis.ledger import Ledger, Phase
    from analysis.metrics.results import AnalysisResult

__all__ = [
    "ExperimentError",
    "ExperimentsResult",
    "OverviewRow",
    "active_experiments",
    "analyze_experiments",
    "experiment_state",
    "headline_effect",
]


class ExperimentError(NamedTuple):
    """An active experiment that could not be analysed.

    Attributes:
        experiment: Experiment id.
        exit_code: The error's exit code (2 for bad input).
        message: The error's message (names the file, row or entry and what to do).
    """

    experiment: str
    exit_code: int
    message: str

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
    """

    results: tuple[AnalysisResult, ...]
    errors: tuple[ExperimentError, ...]
    states: dict[str, str]
    since: datetime | None
    until: datetime | None
    inactive: tuple[str, ...] = ()

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
                f"error: {e.message}",
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
            "overview": [r._asdict() for r in self.overview()],
            "experiments": [per[k] for k in sorted(per)],
        }

    def _overview_table(self) -> Any:
        from analysis._table import Table

        return Table(self.overview(), OverviewRow._fields, title="experiments")

    def __str__(self) -> str:
        parts = [str(self._overview_table())]
        parts += [f"ERROR ({e.experiment}): {e.message}" for e in self.errors]
        parts += [str(r) for r in self.results]
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        """The overview, then each experiment's tables."""
        parts = [self._overview_table().to_markdown()]
        parts += [f"- **error** `{e.experiment}`: {e.message}" for e in self.errors]
        parts += [r.to_markdown() for r in self.results]
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        errors = "".join(
            f"<p><b>error</b> {html.escape(e.experiment)}: {html.escape(e.message)}</p>"
            for e in self.errors
        )
        body = "".join(r._repr_html_() for r in self.results)
        return f"<div>{self._overview_table()._repr_html_()}{errors}{body}</div>"


def analyze_experiments(
    events: Any,
    ledger: Any,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    experiments: Sequence[str] | None = None,
    columns: Any = None,
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
    results: list[AnalysisResult] = []
    errors: list[ExperimentError] = []
    for exp in chosen:
        try:
            results.append(analyze(loaded, led, exp, since=start, until=stop, **analyze_kwargs))
        except PromptstateError as exc:
            errors.append(ExperimentError(exp, exc.exit_code, str(exc)))
    return ExperimentsResult(
        results=tuple(results),
        errors=tuple(errors),
        states={e: experiment_state(led, e) for e in chosen},
        since=start,
        until=stop,
        inactive=tuple(e for e in sorted(led.experiments) if e not in chosen),
    )
