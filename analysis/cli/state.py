"""``promptstate state``: the state tuple of one revision (ledger plus baseline store)."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from analysis.cli._common import add_format_option

_FIELDS = (
    "revision",
    "prompt",
    "at",
    "text_sha256",
    "rollout_state",
    "baseline_id",
    "cohort_id",
    "contract_version",
    "experiment",
    "arm",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "state",
        help="print a revision's state tuple (text, rollout, baseline, cohort, contract)",
        description=(
            "Print the state tuple (text, rollout_state, baseline_id, cohort_id, "
            "contract_version) of REVISION at an instant. rollout_state and cohort_id come "
            "from the ledger; baseline_id is the reference of each suite of the store that "
            "evaluates the revision's prompt and is anchored to it. With no --ledger it reads "
            "the embedded sample (and its store unless --store is given). "
            "Exit codes: 0 ok, 2 bad input, 4 internal error."
        ),
    )
    parser.add_argument("revision", help="revision id, e.g. r42")
    parser.add_argument("--ledger", type=Path, help="rollout ledger (default: the sample's)")
    parser.add_argument(
        "--store",
        type=Path,
        help="baseline store directory (default: the sample's with no --ledger, else none)",
    )
    parser.add_argument(
        "--at",
        type=_timestamp,
        help="instant, ISO 8601 with a timezone, e.g. 2026-11-03T00:00:00Z "
        "(default: after the last transition, and the store's current reference)",
    )
    add_format_option(parser)
    parser.set_defaults(func=run)


def _timestamp(text: str) -> datetime:
    """Parse an ISO 8601 instant with a timezone (argparse exits 2 otherwise)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-03T00:00:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no timezone; write it in UTC with a trailing Z"
        )
    return value


def run(args: argparse.Namespace) -> int:
    import json

    from analysis import _render
    from analysis._paths import sample_path, sample_store
    from analysis.cli._common import write_output
    from analysis.evals.state import revision_state
    from analysis.ledger import load_ledger

    store = args.store
    if store is not None and not store.is_dir():
        from analysis.errors import BaselineError

        raise BaselineError(f"--store {store}: no such directory; pass a baseline store directory")
    if store is None and args.ledger is None:
        store = sample_store()
    ledger = load_ledger(args.ledger if args.ledger is not None else sample_path("ledger.yaml"))
    state = revision_state(ledger, args.revision, args.at, store=store)
    row = {f: getattr(state, f) for f in _FIELDS}
    row["at"] = state.at.isoformat().replace("+00:00", "Z")
    if args.format == "json":
        write_output(json.dumps(row, indent=2))
        return 0
    rows = [{"field": f, "value": row[f]} for f in _FIELDS]
    title = f"state of {state.revision}"
    if args.format == "markdown":
        write_output(_render.to_markdown(rows, ("field", "value"), title=title))
    else:
        write_output(_render.to_text(rows, ("field", "value"), title=title))
    return 0
