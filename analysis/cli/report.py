"""``promptstate report``: the scheduled batch report (HTML with plots, Markdown, JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli._common import (
    add_clock_options,
    add_decision_options,
    add_input_options,
    add_moved_units_option,
    add_segment_option,
    add_sequential_options,
    add_window_options,
    number,
    progress,
)

#: What ``--format`` prints on stdout (the three report files are written in every case).
REPORT_FORMATS = ("text", "json", "markdown")

if TYPE_CHECKING:  # pragma: no cover
    from analysis.reporting._multi import MultiReport
    from analysis.reporting.batch import Report


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "report",
        help="write report.html (plots inline), report.md and report.json for an experiment",
        description=(
            "Split the export at the rollout boundaries, compute clean vs naive effects, "
            "recovery after a rollback, the prompt cache around each boundary, the eval "
            "baselines and downstream contracts, and write report.html (self-contained, plots "
            "as inline SVG), report.md and report.json into --out, and print a summary. Pass "
            "EVENTS with --ledger (without --metrics, metrics are inferred from the export's "
            "column types; a note on stderr names them); with neither it reports on the "
            "embedded sample into ./promptstate-report/. The export is first checked against the "
            "ledger (coverage, gaps, one arm's logging lost; the last --late-hours left out when "
            "the window ends within --fresh-hours of the run time), "
            "and the report leads with what it finds. Without --experiment on a ledger of "
            "several experiments it covers every experiment whose exposure overlaps [--since, "
            "--until): an overview, then one section each; the exit code is the worst of them "
            "(experiments that ended before --since are left out with a note; "
            "docs/completeness.md). The report ends with a recommendation (rollback, ramp, "
            "promote or continue); --mde gives the planned power it needs to ramp or promote. "
            "With --sequential --planned-units N the regressions, guardrail verdicts and SRM "
            "are the always-valid ones (safe to run every hour) and the effects tables show "
            "the confidence sequences (docs/decisions.md). "
            "Exit codes: 0 nothing needs "
            "attention, 1 something does (incomplete data, SRM, crossover share, clean "
            "regression, guardrail breach, stale or "
            "invalid baseline, contract risk; with --state only what an earlier run did not "
            "already report, or anything with --repeat-alerts), 2 bad input (nothing written; "
            "also a corrupt --state file, a bad --mde, --sequential without --planned-units), "
            "4 internal error."
        ),
    )
    add_input_options(
        parser,
        out_help="directory to write report.html, report.md and report.json into (default: "
        "./promptstate-report)",
        out_metavar="DIR",
        out_default=Path("promptstate-report"),
        formats=REPORT_FORMATS,
        format_help="what to print on stdout: a summary (headline, what needs attention, the "
        "files written) as text, json or markdown (default: text); the three report files are "
        "written to --out in every case",
    )
    parser.add_argument(
        "--store",
        type=Path,
        metavar="DIR",
        help="baseline store (default: baselines/ when it exists; the sample's with the sample)",
    )
    add_moved_units_option(parser)
    add_segment_option(parser)
    add_window_options(parser, completeness_switch=False)
    add_clock_options(parser)
    parser.add_argument(
        "--alpha",
        type=number(low=0, high=1, low_open=True, high_open=True),
        default=0.05,
        help="1 - confidence level, in (0, 1) (default: 0.05)",
    )
    parser.add_argument(
        "--crossover-threshold",
        type=number(low=0, high=1),
        default=0.02,
        help="attention when crossover units exceed this share of enrolled units, in [0, 1] "
        "(default: 0.02)",
    )
    add_sequential_options(parser)
    add_decision_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build and write the report; print its summary on stdout in ``--format``.

    JSON shape (``--format json``)::

        {"schema_version": 1, "experiments": [id, ...], "headline": str, "ok": bool,
         "exit_code": 0 | 1 | 2, "attention": [{"kind": str, "message": str}, ...],
         "notes": [str, ...], "files": [path of report.html, report.md, report.json]}

    ``experiments`` lists the reported experiment, or every active one when no
    ``--experiment`` is given and the ledger has several (``notes`` then start with the
    experiment's id).
    """
    from analysis.metrics._completeness import run_clock

    with run_clock(args.fresh_hours, args.now):  # one run time for every experiment
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import sys

    from analysis._paths import check_outputs
    from analysis.cli._common import (
        check_decision_options,
        resolve_inputs,
        resolve_metrics,
        sequential_options,
        settle_alerts,
        window_options,
        write_output,
    )
    from analysis.errors import PromptstateError
    from analysis.reporting.batch import (  # light: heavy imports are lazy
        REPORT_FILES,
        Report,
        report,
    )

    inputs = resolve_inputs(args)
    check_outputs([args.out / name for name in REPORT_FILES], [*inputs.paths(), args.store])
    check_decision_options(args)
    metrics, note = resolve_metrics(inputs)  # the schema only: fails before any scan
    with progress("analysing", enabled=args.progress):
        rep = report(
            inputs.events,  # None: the embedded sample (its ledger and baseline store too)
            inputs.ledger,
            inputs.experiment,
            metrics=metrics,
            store=args.store,
            columns=inputs.columns,
            alpha=args.alpha,
            crossover_threshold=args.crossover_threshold,
            moved_units=args.moved_units,
            segments=args.segments,
            mde=args.mde,
            **sequential_options(args),
            **window_options(args),
        )
    if rep.exit_code == 2:  # an experiment could not be analysed: bad input, nothing written
        if note is not None:
            print(f"promptstate: note: {note}", file=sys.stderr)
        for a in rep.attention:
            print(f"promptstate: attention: [{a.kind}] {a.message}", file=sys.stderr)
        print(f"promptstate: nothing written to {args.out} (bad input)", file=sys.stderr)
        return 2
    with progress("writing the report", enabled=args.progress):
        try:
            paths = rep.write(args.out)
        except OSError as exc:
            raise PromptstateError(
                f"--out {args.out}: cannot write the report ({exc.strerror or exc}); choose a "
                "writable directory"
            ) from None
    experiments = [rep.experiment] if isinstance(rep, Report) else list(rep.experiments)
    code, update = settle_alerts(args, _alert_items(rep), experiments, rep.exit_code)
    write_output(_summary(rep, paths, args.format))
    if note is not None:  # after the run: an exit 2 stays one line on stderr
        print(f"promptstate: note: {note}", file=sys.stderr)
    if not isinstance(rep, Report):  # several experiments: those left out, and why
        for line in rep.notes[1:]:
            print(f"promptstate: note: {line}", file=sys.stderr)
    if update is None:
        for a in rep.attention:
            print(f"promptstate: attention: [{a.kind}] {a.message}", file=sys.stderr)
    else:
        for line in update.stderr_lines():
            print(f"promptstate: {line}", file=sys.stderr)
    return code


#: Attention kinds that are not alerts of the analysis (their subject is read from the text).
_REPORT_KINDS = ("stale_baseline", "invalid_baseline", "contract_risk", "error")


def _alert_items(rep: Report | MultiReport) -> list[Any]:
    """Every attention item of the report as an alert with a stable key (``--state``)."""
    from analysis.decisions import result_alerts
    from analysis.decisions.alert_state import generic_alert
    from analysis.reporting.batch import Report

    reports = [rep] if isinstance(rep, Report) else list(rep.reports)
    items: list[Any] = []
    for r in reports:
        extra = [
            generic_alert(a.kind, r.experiment, a.message)
            for a in r.attention
            if a.kind in _REPORT_KINDS
        ]
        table = r.decisions.guardrails if r.decisions is not None else None
        items += result_alerts(r.analysis, table, extra=extra)
    if not isinstance(rep, Report):  # experiments that could not be reported
        items += [generic_alert(e.kind, e.experiment, e.message) for e in rep.errors]
    return items


def _summary(rep: Report | MultiReport, paths: tuple[Path, ...], fmt: str) -> str:
    """The summary printed on stdout: headline, attention, notes and files, in ``fmt``."""
    from analysis.cli._common import json_output
    from analysis.reporting.batch import Report

    files = [str(p) for p in paths]
    if isinstance(rep, Report):
        experiments, notes = [rep.experiment], list(rep.notes)
    else:  # every active experiment: notes prefixed with the experiment
        experiments = list(rep.experiments)
        notes = [*rep.notes, *(f"{r.experiment}: {n}" for r in rep.reports for n in r.notes)]
    if fmt == "json":
        return json_output(
            {
                "experiments": experiments,
                "headline": rep.headline,
                "ok": rep.ok,
                "exit_code": rep.exit_code,
                "attention": [{"kind": a.kind, "message": a.message} for a in rep.attention],
                "notes": notes,
                "files": files,
            }
        )
    if fmt == "markdown":
        lines = [f"## promptstate report: {', '.join(experiments)}", "", rep.headline, ""]
        if rep.attention:
            lines += ["**Needs attention:**", ""]
            lines += [f"- `{a.kind}` {a.message}" for a in rep.attention]
        else:
            lines.append("Nothing needs attention.")
        lines += ["", "Files: " + ", ".join(f"`{f}`" for f in files)]
        return "\n".join(lines)
    return f"{rep.headline}\nwrote {', '.join(files)}"
