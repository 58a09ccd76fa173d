"""``promptstate analyze``: clean per-arm effects per phase and combined, and the naive one."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # pragma: no cover
    from analysis.decisions import Decisions, StateUpdate
    from analysis.metrics import AnalysisResult, ExperimentsResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "analyze",
        help="clean per-arm effects (per phase and combined) next to the naive ones; SRM",
        description=(
            "Split the events of an experiment at its rollout boundaries and compute, for every "
            "metric, the clean effect per exposure phase and combined across phases, the naive "
            "effect a dashboard shows, SRM per phase, exclusions by label, missing values and "
            "recovery after a rollback. Clean effects compare arms within time blocks of each "
            "phase and are regression-adjusted on the pre-period where units have one. Pass "
            "EVENTS with --ledger; with neither it runs on the embedded sample (and its "
            "metrics.yaml). On your export without --metrics, metrics are inferred from the "
            "column types (numbers: the per-turn mean; booleans: the per-turn rate, the share "
            "of turns with a true value) and a note on stderr names them and their estimands; "
            "inferred metrics have no direction, so they never alert: give directions in a "
            "--metrics file. Before any statistics the export is checked against "
            "the ledger (coverage of each phase's window, hour-long gaps, one arm's logging "
            "lost); the last --late-hours are left out as late data when the window ends within "
            "--fresh-hours of the run time. Without --experiment on a "
            "ledger of several experiments, every experiment whose exposure overlaps "
            "[--since, --until) is analysed (JSON: one object per experiment; the exit code is "
            "the worst of them; an active experiment without events is a completeness finding, "
            "or a note when it started within --late-hours of the window's end; experiments "
            "that ended before --since are left out with a note; docs/completeness.md). "
            "Exit codes: 0 ok, 1 incomplete data, a regression (the clean "
            "combined effect of a metric with a direction, significant after the multiplicity "
            "adjustment, in the wrong direction), a sample-ratio mismatch, crossover or missing "
            "values above their thresholds, a guardrail breach (a metric's harm beyond its "
            "guardrail margin; docs/decisions.md) — with --state, only an alert not raised by an "
            "earlier run (or any with --repeat-alerts), 2 bad input (a corrupt --state file; "
            "a --metrics file naming a column the "
            "export lacks fails before the export is scanned; --out is not written), 4 internal "
            "error."
        ),
    )
    add_input_options(
        parser,
        out_help="write what would be printed (in --format) to this file instead of stdout",
    )
    parser.add_argument(
        "--alpha",
        type=number(low=0, high=1, low_open=True, high_open=True),
        default=0.05,
        help="1 - confidence level (default: 0.05)",
    )
    parser.add_argument(
        "--multiplicity",
        choices=("holm", "bh", "none"),
        default="holm",
        help="p-value adjustment across metrics x arms (default: holm)",
    )
    parser.add_argument(
        "--srm-threshold",
        type=number(low=0, high=1, low_open=True),
        default=0.001,
        help="flag a sample ratio mismatch at p below this (default: 0.001)",
    )
    parser.add_argument(
        "--crossover-threshold",
        type=number(low=0, high=1),
        default=0.02,
        help="alert when crossover units exceed this share of enrolled units (default: 0.02)",
    )
    add_sequential_options(parser)
    parser.add_argument(
        "--recovery-bin-hours",
        type=number(low=0, low_open=True),
        default=2.0,
        help="bin width of the recovery curve after a rollback (default: 2)",
    )
    parser.add_argument(
        "--block-hours",
        type=number(low=0),
        default=6.0,
        help="length of the time strata of the clean estimates inside each exposure phase "
        "(default: 6; 0: one stratum per phase)",
    )
    parser.add_argument(
        "--missing-threshold",
        type=number(low=0, high=1),
        default=0.01,
        help="alert when a metric's NaN/inf/null values exceed this share of the clean events "
        "(default: 0.01)",
    )
    add_moved_units_option(parser)
    add_segment_option(parser)
    add_window_options(parser, completeness_switch=True)
    add_clock_options(parser)
    add_decision_options(parser)
    parser.add_argument("--no-explain", action="store_true", help="skip the naive-vs-clean steps")
    parser.add_argument(
        "--all-columns", action="store_true", help="table format: show every effect column"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Analyse and print the effects (stdout or ``--out``); alerts and notes on stderr.

    JSON shape (``--format json``): ``{"schema_version": 1, ...}`` followed by the keys of
    :meth:`analysis.metrics.AnalysisResult.to_dict` (``experiment``, ``effects``, ``srm``, ...).
    """
    from analysis.metrics._completeness import run_clock

    with run_clock(args.fresh_hours, args.now):  # one run time for every experiment
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys

    from analysis._paths import check_outputs
    from analysis.cli._common import (
        check_decision_options,
        command_context,
        resolve_inputs,
        resolve_metrics,
        sequential_options,
        settle_alerts,
        window_options,
    )

    inputs = resolve_inputs(args)
    if args.out is not None:
        check_outputs([args.out], inputs.paths())
    check_decision_options(args)
    metrics, note = resolve_metrics(inputs)  # the schema only: fails before any scan
    from analysis.events.labelling import split  # the statistics' imports only once it is valid
    from analysis.ledger import load_ledger
    from analysis.metrics import analyze, analyze_experiments

    options = {
        "metrics": metrics,
        "alpha": args.alpha,
        "multiplicity": args.multiplicity,
        "srm_threshold": args.srm_threshold,
        "crossover_threshold": args.crossover_threshold,
        **sequential_options(args),
        "explain": not args.no_explain,
        "recovery_bin_hours": args.recovery_bin_hours,
        "block_hours": args.block_hours or None,
        "missing_threshold": args.missing_threshold,
        "moved_units": args.moved_units,
        "segments": args.segments,
        **window_options(args),
    }
    from analysis.decisions import decide, result_alerts
    from analysis.decisions.alert_state import generic_alert
    from analysis.errors import worst_exit

    context = command_context(inputs)
    where = str(inputs.metrics) if inputs.metrics is not None else "metrics"
    ledger = load_ledger(inputs.ledger_path)
    if inputs.experiment is None and len(ledger.experiments) > 1:
        # Every experiment whose exposure overlaps [--since, --until): one object each.
        with progress("analysing every active experiment", enabled=args.progress):
            multi = analyze_experiments(
                inputs.events_path, ledger, columns=inputs.columns, **options
            )
        decisions = {
            r.experiment: decide(r, metrics, ledger, mde=args.mde, context=context, where=where)
            for r in multi.results
        }
        items = [
            a for r in multi.results for a in result_alerts(r, decisions[r.experiment].guardrails)
        ]
        items += [
            generic_alert("completeness", e.experiment, e.message)
            for e in multi.errors
            if e.kind != "error"
        ]
        base = worst_exit(multi.exit_code, *(d.exit_code for d in decisions.values()))
        code, update = (base, None) if base in (2, 4) else settle_alerts(
            args, items, list(multi.experiments), base
        )  # fmt: skip
        if code != 2 or args.out is None:  # exit 2: no --out file at all
            _print(multi, args, decisions, code, update)
        if note is not None:
            print(f"promptstate: note: {note}", file=sys.stderr)
        for line in multi.notes:
            print(f"promptstate: note: {line}", file=sys.stderr)
        if update is None:
            for r in multi.results:
                for alert in (*r.all_alerts, *decisions[r.experiment].breach_messages):
                    print(f"promptstate: alert: {r.experiment}: {alert}", file=sys.stderr)
        else:
            for line in update.stderr_lines():
                print(f"promptstate: {line}", file=sys.stderr)
        for e in multi.errors:
            level = "error" if e.kind == "error" else "alert"
            if update is None or level == "error":
                print(f"promptstate: {level}: {e.experiment}: {e.message}", file=sys.stderr)
        if code == 2 and args.out is not None:
            print(f"promptstate: nothing written to {args.out} (bad input)", file=sys.stderr)
        return code

    with progress("loading and validating events", enabled=args.progress):
        result = split(inputs.events_path, ledger, inputs.experiment, columns=inputs.columns)
    with progress("aggregating and testing", enabled=args.progress):
        res = analyze(result, **options)
    if args.all_columns:
        res = dataclasses.replace(res, effects=dataclasses.replace(res.effects, shown=None))
    dec = decide(res, metrics, ledger, mde=args.mde, context=context, where=where)
    base = worst_exit(res.exit_code, dec.exit_code)
    items = result_alerts(res, dec.guardrails)
    # the state is read (and checked) before anything is printed
    code, update = settle_alerts(args, items, [res.experiment], base)
    _print(res, args, {res.experiment: dec}, code, update)
    if note is not None:  # after the run: an exit 2 stays one line on stderr
        print(f"promptstate: note: {note}", file=sys.stderr)
    if update is None:
        for alert in (*res.all_alerts, *dec.breach_messages):
            print(f"promptstate: alert: {alert}", file=sys.stderr)
    else:
        for line in update.stderr_lines():
            print(f"promptstate: {line}", file=sys.stderr)
    return code


def _print(
    res: AnalysisResult | ExperimentsResult,
    args: argparse.Namespace,
    decisions: dict[str, Decisions],
    code: int,
    update: StateUpdate | None,
) -> None:
    """Print (or write to ``--out``) one analysis or every experiment's, in ``--format``, with
    the guardrails first and the recommendation last (JSON: keys ``guardrails``,
    ``recommendation``; ``exit_code`` and ``ok`` are the command's; ``alert_state`` with
    ``--state``)."""
    from analysis._render import md_code
    from analysis.cli._common import json_output, write_output
    from analysis.metrics import AnalysisResult

    single = isinstance(res, AnalysisResult)
    if args.format == "json":
        data = res.to_dict()
        sections = [data] if single else data["experiments"]
        for d in sections:
            dec = decisions.get(d.get("experiment", ""))
            if dec is not None and "error" not in d:
                d.update(dec.to_dict())
                if single:
                    continue
                d["exit_code"] = max(d["exit_code"], dec.exit_code)
                d["ok"] = d["exit_code"] == 0
        data["exit_code"] = code
        if single:
            data["ok"] = code == 0
        if update is not None:
            data["alert_state"] = update.to_dict()
        text = json_output(data)
    elif args.format == "markdown":
        heads = [d.head_markdown() for d in decisions.values()]
        tails = [
            (f"### Recommendation for {md_code(k)}\n\n" if not single else "")
            + d.recommendation.to_markdown()
            for k, d in decisions.items()
        ]
        text = "\n\n".join(p for p in (*heads, res.to_markdown(), *tails) if p)
    else:
        heads = [d.head_text() for d in decisions.values()]
        tails = [("" if single else f"{k}: ") + d.tail_text() for k, d in decisions.items()]
        text = "\n\n".join(p for p in (*heads, str(res), *tails) if p)
    write_output(text, args.out)
