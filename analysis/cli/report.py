"""``promptstate report``: the scheduled batch report (HTML with plots, Markdown, JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.cli._common import (
    add_columns_option,
    add_progress_option,
    number,
    parse_columns,
    progress,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "report",
        help="write report.html (plots inline), report.md and report.json for an experiment",
        description=(
            "Split the export at the rollout boundaries, compute clean vs naive effects, "
            "recovery after a rollback, the prompt cache around each boundary, the eval "
            "baselines and downstream contracts, and write report.html (self-contained, plots "
            "as inline SVG), report.md and report.json into --out. With no arguments it reports "
            "on the embedded sample into ./promptstate-report/. Exit codes: 0 nothing needs "
            "attention, 1 something does (SRM, crossover share, clean regression, stale or "
            "invalid baseline, contract risk), 2 bad input (nothing written), 4 internal error."
        ),
    )
    parser.add_argument(
        "events",
        nargs="?",
        help="event export: Parquet/CSV/NDJSON file, directory or glob (default: the sample)",
    )
    parser.add_argument("--ledger", type=Path, help="rollout ledger (default: the sample's)")
    parser.add_argument(
        "--metrics",
        type=Path,
        metavar="FILE",
        help="metrics file (see docs/metrics.md; default: the sample's with the sample)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        metavar="DIR",
        help="baseline store (default: baselines/ when it exists)",
    )
    parser.add_argument("--experiment", help="experiment id (default: the only one)")
    parser.add_argument("--since", metavar="T", help="analyse events at or after T (ISO-8601)")
    parser.add_argument("--until", metavar="T", help="analyse events before T (ISO-8601)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("promptstate-report"),
        metavar="DIR",
        help="output directory (default: ./promptstate-report)",
    )
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
    add_progress_option(parser)
    add_columns_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from analysis._paths import check_outputs, sample_dir
    from analysis.errors import PromptstateError
    from analysis.reporting.batch import REPORT_FILES, report

    # with no events the report reads the embedded sample: its directory is an input too
    sample = sample_dir() if args.events is None else None
    check_outputs(
        [args.out / name for name in REPORT_FILES],
        [args.events, args.ledger, args.metrics, args.store, args.columns, sample],
    )
    with progress("analysing", enabled=args.progress):
        rep = report(
            args.events,
            args.ledger,
            args.experiment,
            metrics=args.metrics,
            store=args.store,
            since=args.since,
            until=args.until,
            columns=parse_columns(args),
            alpha=args.alpha,
            crossover_threshold=args.crossover_threshold,
        )
    with progress("writing the report", enabled=args.progress):
        try:
            paths = rep.write(args.out)
        except OSError as exc:
            raise PromptstateError(
                f"--out {args.out}: cannot write the report ({exc.strerror or exc}); choose a "
                "writable directory"
            ) from None
    print(rep.headline)
    for a in rep.attention:
        print(f"promptstate: attention: [{a.kind}] {a.message}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return rep.exit_code
