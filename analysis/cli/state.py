"""``promptstate state``: the state tuple of one revision (ledger plus baseline store)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.cli._common import add_format_option, timestamp

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
            "evaluates the revision's prompt and is anchored to it. With no --ledger and no "
            "--store it reads the embedded sample and its bundled store; otherwise the store is "
            "--store, then $PROMPTSTATE_STORE, then `store` under [tool.promptstate] in the "
            "nearest pyproject.toml, then ./baselines (named on stderr; with none, baseline_id "
            "is empty and stderr says so). "
            "Exit codes: 0 ok, 2 bad input, 4 internal error."
        ),
    )
    parser.add_argument("revision", help="revision id, e.g. r42")
    parser.add_argument("--ledger", type=Path, help="rollout ledger (default: the sample's)")
    parser.add_argument(
        "--store",
        type=Path,
        help="baseline store directory (default: the sample's with no --ledger; else "
        "$PROMPTSTATE_STORE, [tool.promptstate] store in pyproject.toml, ./baselines)",
    )
    parser.add_argument(
        "--at",
        type=timestamp,
        help="instant, ISO 8601 with a timezone, e.g. 2026-11-03T00:00:00Z "
        "(default: after the last transition, and the store's current reference)",
    )
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from analysis import _render
    from analysis._paths import sample_path
    from analysis.cli._common import write_output
    from analysis.errors import SCHEMA_VERSION
    from analysis.evals.state import revision_state
    from analysis.ledger import load_ledger

    store, named = _store(args)
    ledger = load_ledger(args.ledger if args.ledger is not None else sample_path("ledger.yaml"))
    state = revision_state(ledger, args.revision, args.at, store=store)
    row = {f: getattr(state, f) for f in _FIELDS}
    row["at"] = state.at.isoformat().replace("+00:00", "Z")
    if args.format == "json":  # {"schema_version": 1, <the fields above>}
        write_output(json.dumps({"schema_version": SCHEMA_VERSION, **row}, indent=2))
    else:
        rows = [{"field": f, "value": row[f]} for f in _FIELDS]
        title = f"state of {state.revision}"
        render = _render.to_markdown if args.format == "markdown" else _render.to_text
        write_output(render(rows, ("field", "value"), title=title))
    print(named, file=sys.stderr)
    return 0


def _store(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The store ``state`` reads ``baseline_id`` from (``None``: no store), and the stderr line
    naming it (printed once the state is shown, so that an error stays one line)."""
    from analysis._paths import sample_store
    from analysis.evals._discovery import StoreNotFoundError, check_store_dir, locate_store

    if args.store is None and args.ledger is None:  # the no-argument sample demo
        store = sample_store()
        if store is None:
            return None, "promptstate: note: baseline_id is empty: no bundled sample store"
        return store, f"promptstate: store {store} (from the bundled sample)"
    try:
        location = locate_store(args.store)
    except StoreNotFoundError as exc:
        return None, f"promptstate: note: baseline_id is empty: {exc}"
    check_store_dir(location, "state")  # a file or a missing path: exit 2 naming it
    return location.path, f"promptstate: {location.describe()}"
