"""``promptstate analyze``: clean per-arm effects per phase and combined, and the naive one."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from analysis.cli._common import add_input_options, add_window_options, number, progress

if TYPE_CHECKING:  # pragma: no cover
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
            "values above their thresholds, 2 bad input (a --metrics file naming a column the "
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
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="add always-valid confidence sequences (cs_lower, cs_upper)",
    )
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
    add_window_options(parser, completeness_switch=True)
    add_clock_options(parser)
    parser.add_argument("--no-explain", action="store_true", help="skip the naive-vs-clean steps")
    parser.add_argument(
        "--all-columns", action="store_true", help="table format: show every effect column"
    )
    parser.set_defaults(func=run)


def add_clock_options(parser: argparse.ArgumentParser) -> None:
    """``--fresh-hours`` and ``--now``: when late data is left out (``analyze``, ``report``)."""
    from analysis.cli._common import timestamp

    parser.add_argument(
        "--fresh-hours",
        type=number(low=0),
        default=24.0,
        metavar="H",
        help="leave out --late-hours of late data only when the window's end is within H hours "
        "of the run time (default: 24); an older window is complete: nothing is left out, and "
        "a note says so",
    )
    parser.add_argument(
        "--now",
        type=timestamp,
        metavar="T",
        help="the run time --fresh-hours is measured from (ISO-8601 with a timezone; default: "
        "the clock), e.g. to reproduce a past run",
    )


def add_moved_units_option(parser: argparse.ArgumentParser) -> None:
    """``--moved-units``: what the clean estimates do with ramp-moved units (``analyze``,
    ``report``)."""
    parser.add_argument(
        "--moved-units",
        choices=("keep", "exclude"),
        default="keep",
        help="units a ramp moved from a shrinking to a growing arm: keep them, each phase in the "
        "arm it had then (default), or exclude them as crossover (the estimates before 0.3)",
    )


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
    from analysis.cli._common import resolve_inputs, resolve_metrics, window_options

    inputs = resolve_inputs(args)
    if args.out is not None:
        check_outputs([args.out], inputs.paths())
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
        "sequential": args.sequential,
        "explain": not args.no_explain,
        "recovery_bin_hours": args.recovery_bin_hours,
        "block_hours": args.block_hours or None,
        "missing_threshold": args.missing_threshold,
        "moved_units": args.moved_units,
        **window_options(args),
    }
    ledger = load_ledger(inputs.ledger_path)
    if inputs.experiment is None and len(ledger.experiments) > 1:
        # Every experiment whose exposure overlaps [--since, --until): one object each.
        with progress("analysing every active experiment", enabled=args.progress):
            multi = analyze_experiments(
                inputs.events_path, ledger, columns=inputs.columns, **options
            )
        if multi.exit_code != 2 or args.out is None:  # exit 2: no --out file at all
            _print(multi, args)
        if note is not None:
            print(f"promptstate: note: {note}", file=sys.stderr)
        for line in multi.notes:
            print(f"promptstate: note: {line}", file=sys.stderr)
        for r in multi.results:
            for alert in (*r.all_alerts,):
                print(f"promptstate: alert: {r.experiment}: {alert}", file=sys.stderr)
        for e in multi.errors:
            level = "error" if e.kind == "error" else "alert"
            print(f"promptstate: {level}: {e.experiment}: {e.message}", file=sys.stderr)
        if multi.exit_code == 2 and args.out is not None:
            print(f"promptstate: nothing written to {args.out} (bad input)", file=sys.stderr)
        return multi.exit_code

    with progress("loading and validating events", enabled=args.progress):
        result = split(inputs.events_path, ledger, inputs.experiment, columns=inputs.columns)
    with progress("aggregating and testing", enabled=args.progress):
        res = analyze(result, **options)
    if args.all_columns:
        res = dataclasses.replace(res, effects=dataclasses.replace(res.effects, shown=None))
    _print(res, args)
    if note is not None:  # after the run: an exit 2 stays one line on stderr
        print(f"promptstate: note: {note}", file=sys.stderr)
    for alert in res.all_alerts:
        print(f"promptstate: alert: {alert}", file=sys.stderr)
    return res.exit_code


def _print(res: AnalysisResult | ExperimentsResult, args: argparse.Namespace) -> None:
    """Print (or write to ``--out``) one analysis or every experiment's, in ``--format``."""
    from analysis.cli._common import json_output, write_output

    if args.format == "json":
        text = json_output(res.to_dict())
    elif args.format == "markdown":
        text = res.to_markdown()
    else:
        text = str(res)
    write_output(text, args.out)
