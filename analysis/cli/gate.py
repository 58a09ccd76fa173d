"""``promptstate gate``: grade a candidate's eval results against the suite's reference."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from analysis.cli._common import add_format_option, number, write_output
from analysis.cli.baseline import add_results_format_option

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``gate`` subcommand."""
    p = subparsers.add_parser(
        "gate",
        help="paired statistical gate of eval results against the suite's reference baseline",
        description=(
            "Grade a candidate's eval results against the reference baseline of SUITE: "
            "stale-baseline check against the suite's ledger (on by default), validity checks, "
            "paired tests per metric against each margin. Alpha convention (ICH E9): --alpha is "
            "the two-sided level, as everywhere in promptstate; the interval shown is the "
            "two-sided 1-alpha one (95 percent by default) and each one-sided decision is a test "
            "at alpha/2: a metric passes when that interval's lower bound lies above -margin, "
            "and regresses when the Holm-adjusted one-sided p-value of 'worse than the margin' "
            "is below alpha/2. "
            "Every test uses the variance under 'worse by exactly the margin' (Tango's score "
            "test for 0/1 metrics, a restricted score test otherwise), so tied scores cannot "
            "pass. Exit codes: 0 pass, 1 regression or inconclusive, 2 bad input, 3 stale or "
            "invalid baseline (with --format junit a JUnit report with one <error> saying why "
            "and what to run is still written). Every input (the candidate, --grader, the "
            "ledger, --out) is checked first: bad input exits 2 even when the reference is "
            "also stale."
        ),
    )
    p.add_argument("suite", help="name of the suite in the baseline store, e.g. support-qa")
    p.add_argument(
        "--candidate", type=Path, required=True, help="candidate eval results (Parquet/CSV/JSONL)"
    )
    p.add_argument("--revision", default=None, help="the candidate's revision")
    p.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="rollout ledger for the stale-baseline check (default: $PROMPTSTATE_LEDGER, then "
        "the ledger recorded in the suite's suite.yaml; with none, exit 2 unless "
        "--no-stale-check)",
    )
    p.add_argument(
        "--no-stale-check",
        action="store_true",
        help="skip the stale-baseline check explicitly (the output says it was skipped); "
        "cannot be combined with --ledger",
    )
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help="baseline store directory (default: $PROMPTSTATE_STORE, then `store` under "
        "[tool.promptstate] in the nearest pyproject.toml, then ./baselines)",
    )
    add_format_option(p, ("table", "json", "markdown", "junit"))
    p.add_argument(
        "--out", type=Path, default=None, help="write the report to this file (default: stdout)"
    )
    p.add_argument("--output", type=Path, dest="out", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--alpha",
        type=number(low=0, high=0.5, low_open=True, high_open=True),
        default=0.05,
        help="two-sided level, in (0, 0.5) (default 0.05): the CI shown is the two-sided "
        "1-alpha one, each one-sided decision is taken at alpha/2, and a pass needs the CI's "
        "lower bound above -margin (ICH E9)",
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
    add_results_format_option(p, "the candidate's results")
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
    """Run the gate and print its report; returns the exit code.

    The store used is named on stderr once graded (``promptstate: store DIR (from RULE)``);
    an error stays one line. A refusal with
    exit code 3 (stale or invalid baseline) under ``--format junit`` still writes a JUnit report
    (to ``--out`` or stdout) whose one ``<error>`` says why and what to run.
    """
    import sys

    from analysis._paths import check_outputs
    from analysis.errors import InvalidBaselineError, StaleBaselineError
    from analysis.evals._discovery import check_store_dir, check_writable, locate_store
    from analysis.evals.gating import gate

    location = locate_store(args.store)
    check_store_dir(location, "gate")
    ledger = args.ledger
    if ledger is None and not args.no_stale_check and os.environ.get("PROMPTSTATE_LEDGER"):
        ledger = Path(os.environ["PROMPTSTATE_LEDGER"])  # the explicit opt-out wins over it
    if args.out is not None:  # checked before anything is read or graded
        check_outputs([args.out], [args.candidate, ledger, location.path], option="--out")
        _check_out_file(args.out)
    if args.anchor_on_pass:
        check_writable(location, "gate --anchor-on-pass")
    try:
        result = gate(
            args.suite,
            args.candidate,
            revision=args.revision,
            ledger=ledger,
            store=location.path,
            stale_check=not args.no_stale_check,
            alpha=args.alpha,
            power=args.power,
            method=args.method,
            n_resamples=args.resamples,
            min_coverage=args.min_coverage,
            grader=args.grader,
            anchor_on_pass=args.anchor_on_pass,
            actor=args.actor,
            results_format=args.results_format,
        )
    except (StaleBaselineError, InvalidBaselineError) as exc:
        if args.format == "junit":
            _junit_refusal(args, location.path, exc)
        raise
    render = {
        "table": result.to_text,
        "json": result.to_json,
        "markdown": result.to_markdown,
        "junit": result.to_junit,
    }[args.format]
    write_output(render(), args.out)
    # named once graded: a refusal stays one line on stderr (naming the store in its command)
    print(f"promptstate: {location.describe()}", file=sys.stderr)
    return result.exit_code(allow_inconclusive=args.allow_inconclusive)


def _check_out_file(out: Path) -> None:
    """Refuse an ``--out`` that cannot be a file (a folder, or under a file) before grading.

    Raises:
        ResultsError: naming ``--out`` and what it is (exit code 2; nothing written).
    """
    from analysis.errors import ResultsError

    path = out.expanduser()
    if path.is_dir():
        raise ResultsError(
            f"--out {out}: is a folder; give the path of the file to write, e.g. "
            f"{path / 'gate.xml'} (nothing was written)"
        )
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ResultsError(
                    f"--out {out}: {parent} is a file, not a folder; write the report somewhere "
                    "else (nothing was written)"
                )
            break


def _junit_refusal(args: argparse.Namespace, store: Path, exc: Exception) -> None:
    """Write the JUnit report of a refusal: one ``<error>`` with why and the command to run."""
    import shlex

    from analysis.errors import StaleBaselineError
    from analysis.evals._gate_render import junit_refusal

    if isinstance(exc, StaleBaselineError):
        kind, command = "StaleBaseline", str(getattr(exc, "command", ""))
    else:
        kind = "InvalidBaseline"
        command = (
            f"promptstate baseline verify {shlex.quote(args.suite)} --store "
            f"{shlex.quote(str(store))}"
        )
    write_output(junit_refusal(args.suite, kind, str(exc), command), args.out)
