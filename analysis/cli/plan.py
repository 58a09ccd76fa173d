"""``promptstate plan``: how long the next test must run, from an A/A replay of history."""

from __future__ import annotations

import argparse

from analysis.cli._common import add_input_options, effect_size, number, progress


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "plan",
        help="size the next test: days and units per arm to detect an effect (A/A replay)",
        description=(
            "Replay the real estimator on a historical export (a pre-period, or a finished "
            "experiment whose tags are ignored): units are hashed into the planned arms (or the "
            "--schedule ramp), the clean analysis runs on the first 1, 2, ... days, and the "
            "standard error it gives is the one the test will have. Prints the days and units "
            "per arm each metric needs to detect --mde at --power (two-sided --alpha; "
            "--sequential: for analyze --sequential), the power at the end of each ramp step, "
            "and the replay (docs/decisions.md). Pass EVENTS with --ledger (its unit column); "
            "with neither it runs on the embedded sample. "
            "Exit codes: 0 ok, 2 bad input (nothing written), 4 internal error."
        ),
    )
    add_input_options(
        parser,
        out_help="write what would be printed to this file instead of stdout",
    )
    parser.add_argument(
        "--mde",
        required=True,
        type=effect_size,
        metavar="EFFECT",
        help="the effect to detect: absolute in the metric's unit (0.05) or relative to the "
        "control value ('5%%')",
    )
    parser.add_argument(
        "--alpha",
        type=number(low=0, high=1, low_open=True, high_open=True),
        default=0.05,
        help="two-sided level (default: 0.05)",
    )
    parser.add_argument(
        "--power",
        type=number(low=0, high=1, low_open=True, high_open=True),
        default=0.8,
        help="power wanted (default: 0.8)",
    )
    parser.add_argument(
        "--allocation",
        nargs="+",
        metavar="ARM=SHARE",
        help="planned arm shares summing to 1, the control first (default: control=0.5 "
        "treatment=0.5)",
    )
    parser.add_argument(
        "--schedule",
        metavar="STEPS",
        help="the treatment's ramp instead of --allocation: SHARE:LENGTH(d|h) steps, the last "
        "without a length, e.g. '0.1:2d,0.5' (10%% for two days, then 50%%)",
    )
    parser.add_argument(
        "--pre-days",
        type=number(low=0),
        default=None,
        help="days at the start of the export kept as the pre-period the adjustment reads "
        "(default: a third of the export, at most 7)",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="size for always-valid monitoring (analyze --sequential): about 1.9x the units",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plan and print (or write ``--out``).

    JSON shape (``--format json``): ``{"schema_version": 1, "days", "units_per_arm": {arm: n},
    "metrics": [...], "steps": [...], "replay": [...], "options": {...}, "notes": [...]}``.
    """
    import sys

    from analysis._paths import check_outputs
    from analysis.cli._common import json_output, resolve_inputs, resolve_metrics, write_output
    from analysis.cli.ledger import parse_allocation
    from analysis.decisions.recommendation import check_mde

    inputs = resolve_inputs(args)
    if args.out is not None:
        check_outputs([args.out], inputs.paths())
    check_mde(args.mde)  # a malformed --mde fails before any scan
    metrics, note = resolve_metrics(inputs)
    from analysis.decisions.planning import parse_schedule, plan_test

    if args.schedule is not None:
        parse_schedule(args.schedule)
    with progress("replaying the estimator on the history", enabled=args.progress):
        plan = plan_test(
            inputs.events_path,
            inputs.ledger_path,
            metrics=metrics,
            mde=args.mde,
            alpha=args.alpha,
            power=args.power,
            allocation=parse_allocation(args.allocation),
            schedule=args.schedule,
            pre_days=args.pre_days,
            sequential=args.sequential,
            columns=inputs.columns,
        )
    if args.format == "json":
        text = json_output(plan.to_dict())
    elif args.format == "markdown":
        text = plan.to_markdown()
    else:
        text = str(plan)
    write_output(text, args.out)
    if note is not None:
        print(f"promptstate: note: {note}", file=sys.stderr)
    if args.out is not None:
        print(f"promptstate: wrote {args.out}", file=sys.stderr)
    return 0
