"""``promptstate gate``: grade a candidate's eval results against the suite's reference."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from analysis.cli._common import add_format_option, number, write_output

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``gate`` subcommand."""
    p = subparsers.add_parser(
        "gate",
        help="paired statistical gate of eval results against the suite's reference baseline",
        description=(
            "Grade a candidate's eval results against the reference baseline of SUITE: "
            "stale-baseline guard (with --ledger), validity checks, paired tests per metric "
            "against each margin. Alpha convention: --alpha is the one-sided level of each "
            "decision and the interval shown is the two-sided 1-2*alpha one (90 percent by "
            "default); "
            "a metric passes when that interval's lower bound lies above -margin, and regresses "
            "when the Holm-adjusted one-sided p-value of 'worse than the margin' is below alpha. "
            "Every test uses the variance under 'worse by exactly the margin' (Tango's score "
            "test for 0/1 metrics, a restricted score test otherwise), so tied scores cannot "
            "pass. Exit codes: 0 pass, 1 regression or inconclusive, 2 bad input, 3 stale or "
            "invalid baseline."
        ),
    )
    p.add_argument("suite")
    p.add_argument(
        "--candidate", type=Path, required=True, help="candidate eval results (Parquet/CSV/JSONL)"
    )
    p.add_argument("--revision", default=None, help="the candidate's revision")
    p.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="rollout ledger for the stale-baseline guard (default: "
        "$PROMPTSTATE_LEDGER; without one the guard is skipped, with a warning)",
    )
    p.add_argument(
        "--store",
        type=Path,
        default=Path("baselines"),
        help="baseline store directory (default: baselines/)",
    )
    add_format_option(p, ("table", "json", "markdown", "junit"))
    p.add_argument("--output", type=Path, default=None, help="write the report to a file")
    p.add_argument(
        "--alpha",
        type=number(low=0, high=0.5, low_open=True, high_open=True),
        default=0.05,
        help="one-sided level of each decision, in (0, 0.5) (default 0.05); the CI shown is "
        "two-sided 1-2*alpha and a pass needs its lower bound above -margin",
    )
    p.add_argument(
        "--power",
        type=number(low=0, high=1, low_open=True, high_open=True),
        default=0.8,
        help="power behind mde and n_required, in (0, 1) (default 0.8)",
    )
    p.add_argument(
        "--method",
        choices=("t", "bootstrap"),
        default="t",
        help="score tests (default) or a bootstrap from the null-restricted fit over examples",
    )
    p.add_argument(
        "--resamples",
        type=number(integer=True, low=1),
        default=2000,
        help="bootstrap resamples, a whole number >= 1 (default 2000)",
    )
    p.add_argument(
        "--min-coverage",
        type=number(low=0, high=1, low_open=True),
        default=0.95,
        help="share of the reference's examples the candidate must cover when the "
        "eval sets differ, in (0, 1] (default 0.95)",
    )
    p.add_argument(
        "--grader",
        default=None,
        help="the candidate's grader when its results have no grader column",
    )
    p.add_argument(
        "--anchor-on-pass",
        action="store_true",
        help="anchor the candidate as the new reference when it passes and is better "
        "on the primary metric",
    )
    p.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help="exit 0 (not 1) when the verdict is inconclusive",
    )
    p.add_argument("--actor", default=None, help="journal actor for --anchor-on-pass")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the gate and print its report; returns the exit code."""
    import sys

    from analysis._paths import check_outputs
    from analysis.evals.gating import gate

    ledger = args.ledger or (
        Path(os.environ["PROMPTSTATE_LEDGER"]) if os.environ.get("PROMPTSTATE_LEDGER") else None
    )
    if ledger is None:
        print(
            "promptstate: warning: no --ledger: the stale-baseline guard is skipped",
            file=sys.stderr,
        )
    if args.output is not None:  # checked before anything is read or graded
        check_outputs([args.output], [args.candidate, ledger, args.store], option="--output")
    result = gate(
        args.suite,
        args.candidate,
        revision=args.revision,
        ledger=ledger,
        store=args.store,
        alpha=args.alpha,
        power=args.power,
        method=args.method,
        n_resamples=args.resamples,
        min_coverage=args.min_coverage,
        grader=args.grader,
        anchor_on_pass=args.anchor_on_pass,
        actor=args.actor,
    )
    render = {
        "table": result.to_text,
        "json": result.to_json,
        "markdown": result.to_markdown,
        "junit": result.to_junit,
    }[args.format]
    write_output(render(), args.output)
    return result.exit_code(allow_inconclusive=args.allow_inconclusive)
