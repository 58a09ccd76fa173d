"""``promptstate analyze``: clean per-arm effects per phase and combined, and the naive one."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.cli._common import (
    add_columns_option,
    add_format_option,
    add_progress_option,
    number,
    parse_columns,
    progress,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "analyze",
        help="clean per-arm effects (per phase and combined) next to the naive ones; SRM",
        description=(
            "Split the events of an experiment at its rollout boundaries and compute, for every "
            "metric, the clean effect per exposure phase and combined across phases, the naive "
            "effect a dashboard shows, SRM per phase, exclusions by label, missing values and "
            "recovery after a rollback. Clean effects compare arms within time blocks of each "
            "phase and are regression-adjusted on the pre-period where units have one. With no "
            "arguments it runs on the embedded sample. Exit codes: 0 ok, 1 a regression (the "
            "clean combined effect of a metric with a direction, significant after the "
            "multiplicity adjustment, in the wrong direction), a sample-ratio mismatch, crossover "
            "or missing values above their thresholds, 2 bad input."
        ),
    )
    parser.add_argument(
        "events",
        nargs="?",
        help="event export: Parquet/CSV/NDJSON file, directory or glob (default: the sample)",
    )
    parser.add_argument("--ledger", type=Path, help="rollout ledger (default: the sample's)")
    parser.add_argument("--experiment", help="experiment id (default: the only one)")
    parser.add_argument(
        "--metrics",
        type=Path,
        metavar="FILE",
        help="metrics file (YAML/JSON, see docs/metrics.md; default: the sample's metrics.yaml)",
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
    parser.add_argument("--no-explain", action="store_true", help="skip the naive-vs-clean steps")
    parser.add_argument(
        "--all-columns", action="store_true", help="table format: show every effect column"
    )
    add_progress_option(parser)
    add_format_option(parser)
    add_columns_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import sys

    from analysis._paths import sample_path
    from analysis.cli._common import write_output
    from analysis.events.labelling import split
    from analysis.metrics import analyze
    from analysis.metrics.definitions import load_metrics

    events = args.events if args.events is not None else sample_path("events.parquet")
    ledger = args.ledger if args.ledger is not None else sample_path("ledger.yaml")
    metrics_file = args.metrics
    if metrics_file is None and args.events is None:
        metrics_file = sample_path("metrics.yaml")
    metrics = load_metrics(metrics_file) if metrics_file is not None else None
    with progress("loading and validating events", enabled=args.progress):
        result = split(events, ledger, args.experiment, columns=parse_columns(args))
    with progress("aggregating and testing", enabled=args.progress):
        res = analyze(
            result,
            metrics=metrics,
            alpha=args.alpha,
            multiplicity=args.multiplicity,
            srm_threshold=args.srm_threshold,
            crossover_threshold=args.crossover_threshold,
            sequential=args.sequential,
            explain=not args.no_explain,
            recovery_bin_hours=args.recovery_bin_hours,
            block_hours=args.block_hours or None,
            missing_threshold=args.missing_threshold,
        )
    if args.format == "json":
        write_output(json.dumps(res.to_dict(), indent=2, default=str))
    elif args.format == "markdown":
        write_output(res.to_markdown())
    else:
        if args.all_columns:
            res = dataclasses.replace(res, effects=dataclasses.replace(res.effects, shown=None))
        write_output(str(res))
    for alert in (*res.alerts, *res.regression_messages):
        print(f"promptstate: alert: {alert}", file=sys.stderr)
    return res.exit_code
