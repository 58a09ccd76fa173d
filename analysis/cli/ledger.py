"""``promptstate ledger ...``: the ledger's JSON Schema, and validating a ledger file.

``promptstate ledger schema`` prints the JSON Schema generated from the ledger's pydantic input
model (committed as ``docs/schemas/ledger.schema.json`` for editors); it covers shape and types
only. ``promptstate ledger validate L`` runs every rule ``load_ledger`` runs (shape, then
references, time order, allocations; see ``docs/ledger.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: ``$id`` of the generated schema (where the committed copy lives in the repository).
SCHEMA_ID = "docs/schemas/ledger.schema.json"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "ledger",
        help="print the ledger's JSON Schema, or validate a ledger file",
        description=(
            "Work with rollout ledger files. Exit codes: 0 ok, 2 bad input (validate: the "
            "ledger is invalid; the message names the entry and the fix), 4 internal error."
        ),
    )
    actions = parser.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    schema = actions.add_parser(
        "schema",
        help="print the JSON Schema of ledger files (shape and types)",
        description=(
            "Print the JSON Schema of ledger files, generated from the validating model, for "
            "editors (e.g. yaml-language-server: $schema=...). It checks shape and types only; "
            "`promptstate ledger validate` also checks references, time order and allocations."
        ),
    )
    schema.set_defaults(func=run_schema)
    validate = actions.add_parser(
        "validate",
        help="validate a ledger file with every rule (exit 0 valid, 2 invalid)",
        description=(
            "Validate a ledger file (YAML or JSON) with every rule load_ledger applies; print a "
            "one-line summary and exit 0, or the first error and exit 2."
        ),
    )
    validate.add_argument("ledger", type=Path, help="the ledger file (YAML or JSON)")
    validate.set_defaults(func=run_validate)


def schema_text() -> str:
    """The ledger's JSON Schema as committed: indented, keys sorted, trailing newline."""
    import json

    from analysis.ledger._schema import _LedgerIn

    schema = _LedgerIn.model_json_schema()
    schema["title"] = "promptstate rollout ledger"
    schema["description"] = (
        "Shape and types of a promptstate ledger file (YAML or JSON); references, time order "
        "and allocations are checked by `promptstate ledger validate` (see docs/ledger.md)."
    )
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def run_schema(args: argparse.Namespace) -> int:
    from analysis.cli._common import write_output

    write_output(schema_text())
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from analysis.cli._common import write_output
    from analysis.ledger import load_ledger

    ledger = load_ledger(args.ledger)
    write_output(
        f"{args.ledger}: valid ({len(ledger.prompts)} prompt(s), {len(ledger.revisions)} "
        f"revision(s), {len(ledger.experiments)} experiment(s), {len(ledger.consumers)} "
        f"consumer(s), {len(ledger.transitions)} transition(s))"
    )
    return 0
