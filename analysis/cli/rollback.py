"""``promptstate rollback plan|apply``: plan and apply a rollback across the five legs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from analysis.cli._common import (
    add_columns_option,
    add_format_option,
    add_progress_option,
    number,
    parse_columns,
    progress,
)

_EXIT = (
    "Exit codes: 0 ok; 1 a leg needs confirmation (apply: refused until confirmed), a step is "
    "pending, or an apply action failed (re-run the same command: it retries the failed "
    "actions and repeats nothing done); 2 bad input, including an invalid baseline store, an "
    "unusable actions file or an unreachable action target (nothing was changed); 4 internal "
    "error."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "rollback",
        help="plan or apply a rollback: text, caches, cohort, baseline, contracts",
        description="Plan or apply the rollback of a prompt's canary or live revision. " + _EXIT,
    )
    rsub = parser.add_subparsers(
        dest="rollback_command", metavar="ACTION", help="plan the rollback, or apply it"
    )
    plan = rsub.add_parser(
        "plan",
        help="print the five legs of the rollback (status, findings, actions)",
        description=(
            "Plan the rollback of the prompt's canary (ends the running experiment) or live "
            "revision: text, caches, cohort, baseline, contracts. When the ledger's last "
            "transition of the prompt is a rollback, the plan is that recorded rollback's (at "
            "its time; nothing to append). The cohort is counted by the experiment's unit "
            "column (the ledger's unit). With no --ledger it runs on "
            "the embedded sample before its rollback (data_samples/rollback/ledger.yaml, "
            "data_samples/events.parquet, the baselines/ store) at the rollback time the sample "
            "records. " + _EXIT
        ),
    )
    _common(plan)
    plan.set_defaults(func=run_plan)
    apply = rsub.add_parser(
        "apply",
        help="append the rollback to the ledger, run the baseline action and the actions file",
        description=(
            "Apply the plan: refuse while a consumer needs confirmation (sending the contracts "
            "actions of --actions as notices); check every action target is reachable; write "
            "the cohort export, the semantic-cache expiry list and plan.json to --out; append "
            "the rollback transition to the ledger (atomic, under a lock, comments kept); run "
            "the baseline revert action; run the --actions in leg order text, caches, cohort, "
            "contracts, any, each recorded in <ledger>.apply-journal.jsonl. Idempotent: a "
            "second apply changes nothing and says so. On the embedded sample only --dry-run is "
            "allowed (copy the sample to apply it). " + _EXIT
        ),
    )
    _common(apply)
    apply.add_argument(
        "--confirm",
        action="append",
        default=[],
        metavar="CONSUMER",
        help="confirm that a consumer can take the restored revision's contract (repeatable)",
    )
    apply.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would change and every action with its resolved target (secrets "
        "redacted); write, send and delete nothing",
    )
    apply.add_argument(
        "--out",
        type=Path,
        help="directory of the exports (default: rollback-<prompt>-<at>/ next to the ledger)",
    )
    apply.set_defaults(func=run_apply)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "events_positional",
        nargs="?",
        metavar="EVENTS",
        help="event export: Parquet/CSV/NDJSON file, directory or glob (optional; default with "
        "no --ledger: the sample's)",
    )
    parser.add_argument("--ledger", type=Path, help="rollout ledger (YAML/JSON); default: sample")
    parser.add_argument("--prompt", help="prompt to roll back (default: the ledger's only one)")
    parser.add_argument(
        "--to",
        help="revision to restore (default: control / previously live; when the ledger already "
        "records the prompt's rollback, that rollback is planned)",
    )
    parser.add_argument(
        "--revision", help="revision to roll back (default: the canary or live revision)"
    )
    parser.add_argument(
        "--events", help="event export (file, directory or glob); the same as EVENTS"
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="baseline store directory (default: PROMPTSTATE_STORE, [tool.promptstate] store in "
        "the nearest pyproject.toml, else ./baselines when it exists)",
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        metavar="FILE",
        help="metrics of the residual effect (YAML/JSON, see docs/metrics.md; default: inferred "
        "from the export; on the sample, its metrics.yaml)",
    )
    parser.add_argument(
        "--actions",
        type=Path,
        metavar="FILE",
        help="actions file (YAML/JSON, see docs/rollback.md): what apply runs per leg (text, "
        "caches, cohort, contracts, any); the plan lists them",
    )
    parser.add_argument(
        "--at",
        help="when the rollback takes effect, ISO time with zone (default: now; on the sample, "
        "the rollback time it records); events at or after it only feed the residual effect",
    )
    parser.add_argument(
        "--open-hours",
        type=_option("open_hours"),
        default=4.0,
        metavar="H",
        help="a tainted conversation with a turn this recent is open (default: 4; 0-8784)",
    )
    parser.add_argument(
        "--holdout-days",
        type=_option("holdout_days"),
        default=14.0,
        metavar="D",
        help="proposed cohort hold-out (default: 14; 0-3660)",
    )
    parser.add_argument(
        "--idle-minutes",
        type=_option("idle_minutes"),
        default=60.0,
        metavar="M",
        help="a revision idle this long has a cold prefix cache (default: 60; > 0)",
    )
    parser.add_argument("--reason", help="reason recorded in the transition")
    parser.add_argument("--actor", help="actor recorded in the transition")
    parser.add_argument(
        "--no-recovery", action="store_true", help="skip the residual-effect measurement"
    )
    add_progress_option(parser)
    add_format_option(parser)
    add_columns_option(parser)


#: The ranges of :data:`analysis.rollback.planning.OPTION_RANGES` (repeated here so that
#: ``--help`` imports nothing heavy; ``tests/test_cli_contract.py`` checks they agree).
OPTION_RANGES: dict[str, tuple[float, float, bool]] = {
    "open_hours": (0.0, 24.0 * 366, False),
    "holdout_days": (0.0, 3660.0, False),
    "idle_minutes": (0.0, 60.0 * 24 * 366, True),
}


def _option(name: str) -> Any:
    """The argparse type of a numeric option (NaN, infinities, out of range: exit 2)."""
    low, high, low_open = OPTION_RANGES[name]
    return number(low=low, high=high, low_open=low_open)


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    from datetime import datetime

    from analysis._paths import sample_dir, sample_store
    from analysis.errors import PromptstateError

    sample = args.ledger is None
    both = args.events is not None and args.events_positional is not None
    if both and args.events != args.events_positional:
        raise PromptstateError(
            f"EVENTS {args.events_positional!r} and --events {args.events!r} disagree; give "
            "the event export once"
        )
    events_arg = args.events if args.events is not None else args.events_positional
    at: datetime | None = None
    if args.at is not None:
        try:
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            raise PromptstateError(
                f"--at {args.at!r}: not an ISO time; write e.g. 2026-11-03T08:15:00Z"
            ) from None
        if at.tzinfo is None:
            raise PromptstateError(f"--at {args.at!r}: add a time zone, e.g. a trailing Z")
    if sample:
        root = sample_dir()
        ledger = root / "rollback" / "ledger.yaml"
        events = events_arg if events_arg is not None else root / "events.parquet"
        store = args.store if args.store is not None else sample_store()
        if at is None:
            at = _sample_rollback_time(root / "ledger.yaml")
        metrics_file = args.metrics
        if metrics_file is None and events_arg is None:
            metrics_file = root / "metrics.yaml"
    else:
        ledger = args.ledger
        events = events_arg
        store = _locate_store(args.store)
        metrics_file = args.metrics
    metrics = None
    if metrics_file is not None and not args.no_recovery:
        from analysis.metrics.definitions import load_metrics

        metrics = load_metrics(metrics_file)
    return {
        "sample": sample,
        "ledger": ledger,
        "prompt": args.prompt,
        "to": args.to,
        "revision": args.revision,
        "events": events,
        "baselines": store,
        "at": at,
        "columns": parse_columns(args) or None,
        "open_hours": args.open_hours,
        "holdout_days": args.holdout_days,
        "idle_minutes": args.idle_minutes,
        "recovery": not args.no_recovery,
        "reason": args.reason,
        "actor": args.actor,
        "metrics": metrics,
        "actions": args.actions,
    }


def _locate_store(flag: Path | None) -> Path | None:
    """The baseline store of ``analysis.evals.locate_store`` (``--store``, then
    ``PROMPTSTATE_STORE``, ``[tool.promptstate] store`` in the nearest pyproject.toml,
    ``./baselines``); when none is found the baseline leg is left out (a rollback needs no
    store)."""
    from analysis.evals import StoreNotFoundError, locate_store

    try:
        return Path(locate_store(flag).path)
    except StoreNotFoundError:
        return None


def _sample_rollback_time(path: Path) -> Any:
    from analysis.ledger import load_ledger

    rollbacks = [t.at for t in load_ledger(path).transitions if t.action == "rollback"]
    return rollbacks[-1] if rollbacks else None


def run_plan(args: argparse.Namespace) -> int:
    from analysis.cli._common import write_output
    from analysis.rollback.planning import rollback_plan

    inputs = _inputs(args)
    inputs.pop("sample")
    ledger = inputs.pop("ledger")
    with progress("planning the rollback", enabled=args.progress):
        plan = rollback_plan(ledger, **inputs)
    if args.format == "json":
        write_output(plan.to_json())
    elif args.format == "markdown":
        write_output(plan.to_markdown())
    else:
        write_output(str(plan))
    return plan.exit_code


def run_apply(args: argparse.Namespace) -> int:
    import json

    from analysis.cli._common import write_output
    from analysis.errors import PromptstateError
    from analysis.rollback.applying import rollback_apply

    inputs = _inputs(args)
    if inputs.pop("sample") and not args.dry_run:
        raise PromptstateError(
            "rollback apply on the embedded sample needs --dry-run (it would rewrite the "
            "shipped sample); copy data_samples/rollback/ledger.yaml and pass --ledger COPY"
        )
    ledger = inputs.pop("ledger")
    with progress("applying the rollback", enabled=args.progress):
        result = rollback_apply(
            ledger, confirm=args.confirm, dry_run=args.dry_run, out_dir=args.out, **inputs
        )
    if args.format == "json":
        write_output(json.dumps(result.to_dict(), indent=2, default=str))
    elif args.format == "markdown":
        write_output(result.to_markdown())
    else:
        write_output(str(result))
    return result.exit_code
