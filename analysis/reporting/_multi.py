"""The report of every active experiment: :class:`MultiReport` (from :func:`report_experiments`).

:func:`analysis.report` with no ``experiment`` over a ledger of several experiments reports
every experiment whose exposure overlaps ``[since, until)`` (``until``: the newest event of the
export, the same instant for all): one overview table (experiment, state, headline effect,
alerts, exit code), then the report of each experiment as its own section (the same content as a
one-experiment report, ids prefixed with the experiment id).

A bad experiment does not hide the others: an experiment whose report fails with a
:class:`~analysis.errors.PromptstateError` gets an ``error`` row in the overview and an
``error`` attention item; the others are reported. The exit code is the worst of all
(:func:`analysis.errors.worst_exit`: 4 > 2 > 3 > 1 > 0), so a run with a failed experiment exits
2 — and still writes the others' sections.

``report.json`` holds ``{"schema_version": 1, "exit_code", "since", "until", "inactive",
"overview": [rows], "experiments": [one object per experiment]}``: each object is that
experiment's one-experiment ``report.json`` object (with ``state``), or for a failed one
``{"schema_version", "experiment", "state", "ok": false, "exit_code", "error"}``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.errors import SCHEMA_VERSION, PromptstateError, worst_exit
from analysis.metrics._experiments import (
    ExperimentError,
    OverviewRow,
    active_experiments,
    experiment_state,
    headline_effect,
    left_out_note,
    untagged_experiments,
)

if TYPE_CHECKING:
    from analysis.ledger import Ledger
    from analysis.reporting._common import Attention
    from analysis.reporting.batch import Report

__all__ = ["MultiReport", "report_experiments"]


@dataclass(frozen=True)
class MultiReport:
    """The reports of every active experiment; :meth:`write` renders the three files.

    Attributes:
        reports: One :class:`~analysis.reporting.batch.Report` per reported experiment.
        errors: Active experiments whose report failed
            (:class:`~analysis.metrics._experiments.ExperimentError`).
        states: Experiment → ``running``, ``rolled back``, ``promoted`` or ``stopped``.
        since: Window start (``None``: unbounded).
        until: Window end (just after the newest event unless given).
        inactive: Experiments of the ledger without exposure in the window (left out).
        extra_notes: The run's notes: experiments left out and why, experiments started within
            late_hours of the window's end without events yet (not reported).
    """

    reports: tuple[Report, ...]
    errors: tuple[ExperimentError, ...]
    states: Mapping[str, str]
    since: datetime | None
    until: datetime | None
    inactive: tuple[str, ...] = ()
    extra_notes: tuple[str, ...] = ()

    @property
    def experiments(self) -> tuple[str, ...]:
        """Every active experiment (reported or failed), by id."""
        names = [r.experiment for r in self.reports] + [e.experiment for e in self.errors]
        return tuple(sorted(names))

    @property
    def experiment(self) -> str:
        """The reported experiments' ids, comma-separated (for one-line summaries)."""
        return ", ".join(self.experiments)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the reader should know about the whole run (each section has its own notes)."""
        out = [f"experiments active in {_window(self.since, self.until)}: {self.experiment}"]
        if self.extra_notes:
            out += self.extra_notes
        elif self.inactive:
            out.append(f"left out (no exposure in the window): {', '.join(self.inactive)}")
        return tuple(out)

    @property
    def exit_code(self) -> int:
        """The worst exit code of the experiments (4 > 2 > 3 > 1 > 0)."""
        return worst_exit(*(r.exit_code for r in self.reports), *(e.exit_code for e in self.errors))

    @property
    def ok(self) -> bool:
        """Every experiment reported, nothing needs attention."""
        return self.exit_code == 0

    @property
    def attention(self) -> tuple[Attention, ...]:
        """Every experiment's attention items (prefixed with its id), failed ones as
        ``error``."""
        from analysis.reporting._common import Attention

        out = [Attention(e.kind, f"{e.experiment}: {e.message}") for e in sorted(self.errors)]
        for r in sorted(self.reports, key=lambda r: r.experiment):
            out += [Attention(a.kind, f"{r.experiment}: {a.message}") for a in r.attention]
        return tuple(out)

    @property
    def headline(self) -> str:
        """One sentence: how many experiments, how many need attention, how many failed."""
        need = sum(1 for r in self.reports if not r.ok)
        text = (
            f"{len(self.experiments)} experiment(s) active in {_window(self.since, self.until)}: "
            f"{need} need attention"
        )
        failed = [e for e in self.errors if e.kind == "error"]
        lagging = [e.experiment for e in self.errors if e.kind != "error"]
        if failed:
            text += f", {len(failed)} could not be analysed"
        if lagging:
            text += f", {len(lagging)} without events ({', '.join(lagging)})"
        return text

    def report(self, experiment: str) -> Report:
        """The report of one experiment.

        Raises:
            KeyError: not reported (the message says why, or lists those that were).
        """
        for r in self.reports:
            if r.experiment == experiment:
                return r
        for e in self.errors:
            if e.experiment == experiment:
                raise KeyError(f"experiment {experiment!r} failed: {e.message}")
        have = ", ".join(r.experiment for r in self.reports) or "none"
        raise KeyError(f"experiment {experiment!r} was not reported; reported: {have}")

    def overview(self) -> tuple[OverviewRow, ...]:
        """One row per active experiment: state, headline effect, alerts, exit code."""
        rows = [
            OverviewRow(
                r.experiment,
                self.states.get(r.experiment, ""),
                _overview_headline(r),
                len(r.attention),
                r.exit_code,
            )
            for r in self.reports
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

    # -- renderings ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``report.json``'s object (see the module doc for its shape)."""
        per: dict[str, dict[str, Any]] = {}
        for r in self.reports:
            d = r.to_dict()
            d["state"] = self.states.get(r.experiment, "")
            per[r.experiment] = d
        for e in self.errors:
            per[e.experiment] = e.to_dict(self.states.get(e.experiment, ""))
        return {
            "schema_version": SCHEMA_VERSION,
            "headline": self.headline,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "inactive": list(self.inactive),
            "overview": [r._asdict() for r in self.overview()],
            "attention": [a._asdict() for a in self.attention],
            "experiments": [per[k] for k in sorted(per)],
        }

    def to_json(self) -> str:
        """``report.json``'s text (NaN as null)."""
        from analysis.reporting._common import _jsonable

        return json.dumps(_jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n"

    def _overview_rows(self) -> list[dict[str, Any]]:
        return [
            {**r._asdict(), "alerts": "" if r.alerts is None else r.alerts} for r in self.overview()
        ]

    def to_markdown(self) -> str:
        """``report.md``: headline, overview, attention, then each experiment's report."""
        from analysis import _render
        from analysis._render import md_code, md_text
        from analysis.reporting._html import render_markdown

        parts = [
            "## promptstate report: every active experiment",
            "",
            f"**{md_text(self.headline)}**",
            "",
            _render.to_markdown(self._overview_rows(), OverviewRow._fields),
        ]
        if self.attention:
            parts += ["", "**Needs attention**", ""]
            parts += [f"- {md_code(a.kind)}: {md_text(a.message)}" for a in self.attention]
        for r in sorted(self.reports, key=lambda r: r.experiment):
            parts += ["", render_markdown(r).rstrip("\n")]
        return "\n".join(parts) + "\n"

    def to_html(self) -> str:
        """``report.html``: overview table (linking to each section), then one section per
        experiment; self-contained."""
        from analysis import _render
        from analysis.reporting._html import article_html, page_html

        esc = html.escape
        table = _render.to_html(self._overview_rows(), OverviewRow._fields, title="Experiments")
        links = "".join(
            f"<a href='#exp-{esc(r.experiment)}'>{esc(r.experiment)}</a>"
            for r in sorted(self.reports, key=lambda r: r.experiment)
        )
        errors = "".join(
            f"<li><span class='kind'>{esc(e.kind)}</span> {esc(e.experiment)}: "
            f"{esc(e.message)}</li>"
            for e in sorted(self.errors)
        )
        body = (
            "<header><h1>promptstate report: every active experiment</h1>\n"
            f"<p class='headline' id='headline'>{esc(self.headline)}</p>\n"
            f"<section id='overview'>{table}"
            + (f"<div class='attention'><ul>{errors}</ul></div>" if errors else "")
            + f"<nav>{links}</nav></section>\n</header>\n"
        )
        for r in sorted(self.reports, key=lambda r: r.experiment):
            prefix = f"{r.experiment}-"
            body += (
                f"<article id='exp-{esc(r.experiment)}'>\n"
                f"{article_html(r, prefix=esc(prefix), level=2)}</article>\n"
            )
        return page_html("promptstate report: every active experiment", body)

    def _repr_html_(self) -> str:
        from analysis import _render

        table = _render.to_html(self._overview_rows(), OverviewRow._fields, title="Experiments")
        return f"<div><p><strong>{html.escape(self.headline)}</strong></p>{table}</div>"

    def __str__(self) -> str:
        lines = [self.headline, ""]
        lines += [
            f"- {r.experiment} ({r.state}): {r.headline}; exit {r.exit_code}"
            for r in self.overview()
        ]
        if self.attention:
            lines += [
                "",
                "Needs attention:",
                *(f"- [{a.kind}] {a.message}" for a in self.attention),
            ]
        return "\n".join(lines)

    def write(self, out: str | Path) -> tuple[Path, ...]:
        """Write ``report.html``, ``report.md`` and ``report.json`` into ``out`` (atomically;
        rendered before anything is created)."""
        from analysis._io import atomic_write_text
        from analysis.reporting._common import REPORT_FILES

        out = Path(out)
        texts = (self.to_html(), self.to_markdown(), self.to_json())
        out.mkdir(parents=True, exist_ok=True)
        paths = tuple(out / name for name in REPORT_FILES)
        for path, text in zip(paths, texts, strict=True):
            atomic_write_text(path, text)
        return paths


def _overview_headline(rep: Report) -> str:
    """The overview's headline effect, never empty: without a clean number (an arm or a window
    without events) the first clause of the report's headline, which says why."""
    text = headline_effect(rep.analysis)
    if "[, ]" in text or "no clean combined effect" in text or text.rstrip().endswith(":"):
        return rep.headline.split("; ")[0]
    return text


def _window(since: datetime | None, until: datetime | None) -> str:
    return f"[{since.isoformat() if since else '…'}, {until.isoformat() if until else '…'})"


def report_experiments(
    report_one: Callable[..., Report],
    events: Any,
    ledger: Ledger,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Mapping[str, str] | None = None,
    **report_kwargs: Any,
) -> MultiReport:
    """Report every experiment of ``ledger`` whose exposure overlaps ``[since, until)``.

    Args:
        report_one: The one-experiment report (:func:`~analysis.reporting.batch.report`).
        events: The export (loaded once).
        ledger: The ledger.
        since: Window start.
        until: Window end (default: just after the newest event, the same for all).
        columns: Column map for loading ``events``.
        **report_kwargs: Passed to :func:`~analysis.reporting.batch.report` for each
            experiment (metrics, store, alpha, late_hours, ...).

    Returns:
        A :class:`MultiReport`.

    Raises:
        PromptstateError: the export cannot be read, or no experiment is active in the window.
    """
    import narwhals as nw

    from analysis.events.loading import load_events
    from analysis.metrics.definitions import load_metrics

    units = [ledger.experiments[e].unit for e in sorted(ledger.experiments)]
    loaded = load_events(events, columns=columns, ledger=ledger, unit=units[0])
    if until is None:
        newest = loaded.frame.select(nw.col("ts").max()).collect().rows()[0][0]
        if newest is not None:
            until = newest + timedelta(microseconds=1)
    chosen = active_experiments(ledger, since, until)
    if not chosen:
        raise PromptstateError(
            f"no experiment of the ledger has exposure in {_window(since, until)} (experiments: "
            f"{', '.join(sorted(ledger.experiments))}); widen --since/--until or name one with "
            "--experiment"
        )
    metrics = report_kwargs.get("metrics")
    if isinstance(metrics, str | Path):  # read once
        report_kwargs["metrics"] = tuple(load_metrics(metrics))
    sorted_out = untagged_experiments(
        ledger,
        chosen,
        loaded.report.experiments,
        until,
        report_kwargs.get("late_hours", 2.0),
        fresh_hours=report_kwargs.get("fresh_hours"),
        now=report_kwargs.get("now"),
        source=loaded.report.source,
    )
    reports: list[Report] = []
    errors: list[ExperimentError] = list(sorted_out.findings)
    for exp in sorted_out.rest:
        try:
            rep = report_one(loaded, ledger, exp, since=since, until=until, **report_kwargs)
        except PromptstateError as exc:
            errors.append(ExperimentError(exp, exc.exit_code, str(exc)))
            continue
        reports.append(rep)
    return MultiReport(
        reports=tuple(reports),
        errors=tuple(errors),
        states={e: experiment_state(ledger, e) for e in chosen},
        since=since,
        until=until,
        inactive=(inactive := tuple(e for e in sorted(ledger.experiments) if e not in chosen)),
        extra_notes=(
            *((note,) if (note := left_out_note(ledger, inactive, since, until)) else ()),
            *sorted_out.notes,
        ),
    )
