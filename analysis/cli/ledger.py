"""``promptstate ledger ...``: the ledger's JSON Schema; validating, recording and showing.

``promptstate ledger init L`` creates an empty, valid ledger (never over an existing file).
``promptstate ledger schema`` prints the JSON Schema generated from the ledger's pydantic input
model (committed as ``docs/schemas/ledger.schema.json`` for editors); it covers shape and types
only. ``promptstate ledger validate L`` runs every rule ``load_ledger`` runs (shape, then
references, time order, allocations; see ``docs/ledger.md``). ``promptstate ledger record
ACTION --ledger L ...`` appends one transition as it happens
(:func:`analysis.ledger.record_transition`: validated against the whole ledger, locked, atomic,
comments kept; exit 2 and an unchanged file on any violation); ``record revision`` and ``record
consumer NAME`` declare a revision or a consumer alone. ``promptstate ledger show L``
prints the phases of every experiment and the state tuple of every revision
(:func:`analysis.ledger.ledger_overview`; ``baseline_id`` from ``--store``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from analysis.cli._common import timestamp

#: ``$id`` of the generated schema (where the committed copy lives in the repository).
SCHEMA_ID = "docs/schemas/ledger.schema.json"
#: The actions ``ledger record`` accepts (``analysis.ledger.ACTIONS``; not imported at start-up).
RECORD_ACTIONS = ("deploy", "start", "ramp", "rollback", "promote", "stop")
#: What ``ledger record`` declares without a transition.
DECLARE_ACTIONS = ("revision", "consumer")
#: Options of ``ledger record`` and the attribute each sets (for refusals naming the option).
_OPTIONS = {
    "at": "--at",
    "prompt": "--prompt",
    "revision": "--revision",
    "experiment": "--experiment",
    "allocation": "--allocation",
    "to": "--to",
    "arm": "--arm",
    "text_file": "--text-file",
    "text": "--text",
    "contract": "--contract",
    "parent": "--parent",
    "arms": "--arms",
    "control": "--control",
    "unit": "--unit",
    "revision_text": "--revision-text",
    "revision_text_file": "--revision-text-file",
    "revision_contract": "--revision-contract",
    "revision_parent": "--revision-parent",
    "accepts": "--accepts",
    "description": "--description",
    "actor": "--actor",
    "reason": "--reason",
}
#: The options each declaring action takes (any other is refused).
_DECLARE_OPTIONS = {
    "revision": {"prompt", "revision", "text_file", "text", "contract", "parent"},
    "consumer": {"prompt", "accepts", "description"},
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "ledger",
        help="validate, record in, show or describe (JSON Schema) a rollout ledger",
        description=(
            "Work with rollout ledger files. Exit codes: 0 ok, 2 bad input (validate: the "
            "ledger is invalid; record: the transition breaks a rule and nothing was written; "
            "init: the file exists; the message names the entry and the fix), 4 internal error."
        ),
    )
    actions = parser.add_subparsers(
        dest="ledger_command", metavar="ACTION", required=True, help="what to do with the ledger"
    )
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
    init = actions.add_parser(
        "init",
        help="create an empty, valid ledger to record in (never over an existing file)",
        description=(
            "Create an empty, valid ledger (version 1, no prompts, no transitions): YAML, or "
            "JSON when the name ends in .json. Then keep it with `promptstate ledger record`: "
            "`record deploy --text-file` and `record revision` declare prompts and revisions, "
            "`record start --arms` experiments, `record consumer` consumers. The file is created "
            "atomically and never over an existing one (a symbolic link that points nowhere "
            "creates its target). Exit codes: 0 created, 2 the file exists or its folder does "
            "not (nothing written), 4 internal error."
        ),
    )
    init.add_argument("ledger", type=Path, help="the ledger file to create (YAML or .json)")
    init.set_defaults(func=run_init)
    validate = actions.add_parser(
        "validate",
        help="validate a ledger file with every rule (exit 0 valid, 2 invalid)",
        description=(
            "Validate a ledger file (YAML or JSON) with every rule load_ledger applies; print a "
            "one-line summary and exit 0, or the first error and exit 2."
        ),
    )
    validate.add_argument("ledger", type=Path, help="the ledger file (YAML or JSON)")
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="output format of the summary (default: text); errors are one line on stderr",
    )
    validate.set_defaults(func=run_validate)
    _register_record(actions)
    _register_show(actions)


def _register_record(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    record = actions.add_parser(
        "record",
        help="append one transition (deploy, start, ramp, promote, stop, rollback) as it happens",
        description=(
            "Append one transition to the ledger, validated against the whole ledger (times not "
            "decreasing, references resolving, allocations summing to 1, one live revision per "
            "prompt), under the ledger's lock, atomically, keeping its comments and layout. "
            "Fields by action: deploy --prompt --revision; start/ramp --experiment --allocation; "
            "promote --experiment --arm; stop --experiment; rollback --experiment [--to] or "
            "--prompt --to. What a record names must be declared in the ledger's header, or "
            "declared by the record itself in the same write: a deploy with --text/--text-file "
            "(--contract, --parent) declares a new revision (and its prompt, when new), a start "
            "with --arms a new experiment (and, with --revision-text-file REV=FILE or "
            "--revision-text REV=TEXT, its arms' new revisions). Two more ACTIONs declare "
            "without a transition: `revision` (--prompt --revision [--text-file|--text] "
            "[--contract] [--parent]) and `consumer NAME --prompt P --accepts V [--accepts V]`; "
            "declaring what is declared already with the same fields writes nothing. The ledger "
            "must exist (`promptstate ledger init` creates it). Exit codes: 0 recorded (or "
            "valid, with --dry-run), 2 the transition breaks a rule or an argument is malformed "
            "(one line naming the rule and the entry; the file is unchanged), 4 internal error."
        ),
    )
    record.add_argument(
        "action",
        choices=RECORD_ACTIONS + DECLARE_ACTIONS,
        metavar="ACTION",
        help="a transition: "
        + ", ".join(RECORD_ACTIONS)
        + "; or a declaration: "
        + ", ".join(DECLARE_ACTIONS),
    )
    record.add_argument(
        "name", nargs="?", metavar="NAME", help="consumer only: the consumer id to declare"
    )
    record.add_argument(
        "--ledger",
        type=Path,
        required=True,
        help="the ledger file to append to (YAML or JSON); it must exist (`ledger init`)",
    )
    record.add_argument(
        "--at",
        type=timestamp,
        help="when it took effect, ISO 8601 with a timezone, e.g. 2026-11-03T08:15:00Z "
        "(default: now in UTC, rounded up to the second)",
    )
    record.add_argument("--prompt", help="prompt id (deploy, prompt rollback)")
    record.add_argument("--revision", help="revision id deployed (deploy)")
    record.add_argument("--experiment", help="experiment id (start, ramp, promote, stop, rollback)")
    record.add_argument(
        "--allocation",
        nargs="+",
        action="extend",
        metavar="ARM=SHARE",
        help="arm shares summing to 1, e.g. --allocation control=0.9 treatment=0.1 (start, ramp)",
    )
    record.add_argument("--to", help="revision restored (rollback; default: the control arm's)")
    record.add_argument("--arm", help="arm whose revision becomes live (promote)")
    text = record.add_mutually_exclusive_group()
    text.add_argument(
        "--text-file",
        type=Path,
        help="deploy only: the new revision's prompt text; declares the revision under "
        "prompts.PROMPT.revisions (path stored relative to the ledger, with its SHA-256) when "
        "the header lacks it, else must match its declared text",
    )
    text.add_argument(
        "--text",
        help="deploy only: the new revision's prompt text itself (not with --text-file); "
        "declared inline as `text` (with its SHA-256, the same as a file holding the same "
        "text) when the header lacks the revision, else must match its declared text",
    )
    record.add_argument(
        "--contract",
        help="deploy only: output-schema version the new revision emits (declared with it)",
    )
    record.add_argument(
        "--parent", help="deploy only: revision the new revision was derived from (declared)"
    )
    record.add_argument(
        "--arms",
        nargs="+",
        action="extend",
        metavar="ARM=REVISION",
        help="start only: the new experiment's arms, e.g. --arms control=r41 treatment=r42; "
        "declares the experiment under experiments when the header lacks it (its prompt: "
        "--prompt, else the arms' revisions'), else must match its declaration",
    )
    record.add_argument(
        "--control", help="start only: control arm of the new experiment (declared with it)"
    )
    record.add_argument(
        "--unit",
        help="start only: randomisation unit column of the new experiment (default user_id)",
    )
    for option, value, what in (
        ("--revision-text-file", "FILE", "prompt text file"),
        ("--revision-text", "TEXT", "prompt text, inline"),
        ("--revision-contract", "VERSION", "contract version"),
        ("--revision-parent", "PARENT", "parent revision"),
    ):
        record.add_argument(
            option,
            action="append",
            metavar=f"REV={value}",
            help=f"start only, repeatable: the {what} of an arm revision the header does not "
            "declare yet, declared with the experiment (--arms); e.g. "
            f"{option} r42={'prompts/r42.txt' if value == 'FILE' else value}",
        )
    record.add_argument(
        "--accepts",
        action="append",
        metavar="VERSION",
        help="consumer only, repeatable: a contract version the consumer reads, e.g. "
        "--accepts v3 --accepts v4",
    )
    record.add_argument("--description", help="consumer only: free text describing it")
    record.add_argument("--actor", help="who did it (free text, recorded as `actor`)")
    record.add_argument("--reason", help="why (free text, recorded as `reason`)")
    record.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the change as a diff, write nothing",
    )
    record.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="output format (default: text)",
    )
    record.set_defaults(func=run_record)


def _register_show(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = actions.add_parser(
        "show",
        help="print the phases of every experiment and the state tuple of every revision",
        description=(
            "Print what a ledger says: each prompt's live revision and running experiment, the "
            "phases of every experiment (pre, one per allocation, after_end) and the state tuple "
            "(text, rollout_state, baseline_id, cohort_id, contract_version) of every revision. "
            "baseline_id needs a baseline store, found as `promptstate state` finds it (--store, "
            "$PROMPTSTATE_STORE, [tool.promptstate] in pyproject.toml, ./baselines; named on "
            "stderr); without one it is empty. With no ledger and no --store it reads the "
            "embedded sample and its store. Exit codes: 0 ok, 2 bad input "
            "(the ledger is invalid), 4 internal error."
        ),
    )
    show.add_argument(
        "ledger",
        type=Path,
        nargs="?",
        help="the ledger file (YAML or JSON; default: the embedded sample's); or --ledger",
    )
    show.add_argument(
        "--ledger",
        dest="ledger_option",
        type=Path,
        metavar="LEDGER",
        help="the ledger file, as `ledger record` takes it (the same as the positional form)",
    )
    show.add_argument(
        "--store",
        type=Path,
        help="baseline store directory, for baseline_id (default: the sample's with no ledger; "
        "else $PROMPTSTATE_STORE, [tool.promptstate] store in pyproject.toml, ./baselines; "
        "with none, baseline_id is empty)",
    )
    show.add_argument(
        "--at",
        type=timestamp,
        help="read the live revisions and states at this instant, ISO 8601 with a timezone "
        "(default: after the last transition)",
    )
    show.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="output format (default: text)",
    )
    show.add_argument("--out", type=Path, help="write the output to this file instead of stdout")
    show.set_defaults(func=run_show)


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
    import json

    from analysis.cli._common import write_output
    from analysis.errors import SCHEMA_VERSION
    from analysis.ledger import load_ledger

    ledger = load_ledger(args.ledger)
    counts = {
        "prompts": len(ledger.prompts),
        "revisions": len(ledger.revisions),
        "experiments": len(ledger.experiments),
        "consumers": len(ledger.consumers),
        "transitions": len(ledger.transitions),
    }
    if args.format == "json":
        data = {"schema_version": SCHEMA_VERSION, "ledger": str(args.ledger), "valid": True}
        write_output(json.dumps({**data, "counts": counts}, indent=2))
        return 0
    write_output(
        f"{args.ledger}: valid ({counts['prompts']} prompt(s), {counts['revisions']} "
        f"revision(s), {counts['experiments']} experiment(s), {counts['consumers']} "
        f"consumer(s), {counts['transitions']} transition(s))"
    )
    return 0


def parse_allocation(items: list[str] | None) -> dict[str, float] | None:
    """``["control=0.9", "treatment=0.1"]`` as a mapping; ``LedgerError`` naming the bad item."""
    from analysis.errors import LedgerError

    if items is None:
        return None
    out: dict[str, float] = {}
    for item in items:
        arm, sep, share = item.partition("=")
        arm = arm.strip()
        if not sep or not arm:
            raise LedgerError(
                f"--allocation {item!r}: expected ARM=SHARE, e.g. control=0.9; nothing was written"
            )
        if arm in out:
            raise LedgerError(
                f"--allocation {item!r}: arm {arm!r} is given twice; give each arm once "
                "(nothing was written)"
            )
        try:
            out[arm] = float(share)
        except ValueError:
            raise LedgerError(
                f"--allocation {item!r}: the share {share!r} is not a number; write a share in "
                "[0, 1], e.g. control=0.9 (nothing was written)"
            ) from None
    return out


def parse_arms(items: list[str] | None) -> dict[str, str] | None:
    """``["control=r41", "treatment=r42"]`` as a mapping; ``LedgerError`` naming the bad item."""
    from analysis.errors import LedgerError

    if items is None:
        return None
    out: dict[str, str] = {}
    for item in items:
        arm, sep, revision = (part.strip() for part in item.partition("="))
        if not sep or not arm or not revision:
            raise LedgerError(
                f"--arms {item!r}: expected ARM=REVISION, e.g. treatment=r42; nothing was written"
            )
        if arm in out:
            raise LedgerError(
                f"--arms {item!r}: arm {arm!r} is given twice; give each arm once (nothing was "
                "written)"
            )
        out[arm] = revision
    return out


def run_init(args: argparse.Namespace) -> int:
    from analysis.cli._common import write_output
    from analysis.ledger.declaring import init_ledger

    result = init_ledger(args.ledger)
    write_output(
        f"{result.path}: created an empty ledger; declare and record with `promptstate ledger "
        f"record ... --ledger {result.path}` (docs/ledger.md)"
    )
    return 0


def parse_pairs(option: str, items: list[str] | None, example: str) -> dict[str, str]:
    """``["r42=prompts/r42.txt"]`` as a mapping; ``LedgerError`` naming the bad item."""
    from analysis.errors import LedgerError

    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value:
            raise LedgerError(
                f"{option} {item!r}: expected REV=VALUE, e.g. {option} {example}; nothing was "
                "written"
            )
        if key in out:
            raise LedgerError(
                f"{option} {item!r}: revision {key!r} is given twice; give each once (nothing "
                "was written)"
            )
        out[key] = value
    return out


def _arm_revisions(args: argparse.Namespace) -> dict[str, dict[str, Any]] | None:
    """``--revision-*`` options as ``{revision: {field: value}}`` (``None``: none given)."""
    out: dict[str, dict[str, Any]] = {}
    for attr, field, example in (
        ("revision_text_file", "text_file", "r42=prompts/r42.txt"),
        ("revision_text", "text", "'r42=Be brief.'"),
        ("revision_contract", "contract", "r42=v4"),
        ("revision_parent", "parent", "r42=r41"),
    ):
        option = _OPTIONS[attr]
        for revision, value in parse_pairs(option, getattr(args, attr), example).items():
            out.setdefault(revision, {})[field] = Path(value) if field == "text_file" else value
    return out or None


def _refuse_options(args: argparse.Namespace, allowed: set[str], what: str) -> None:
    """Refuse options ``what`` does not take, naming them (exit 2, nothing written)."""
    from analysis.errors import LedgerError

    given = [opt for attr, opt in _OPTIONS.items() if attr not in allowed and _given(args, attr)]
    if given:
        raise LedgerError(
            f"{args.ledger}: {', '.join(given)} do(es) not apply to {what}; remove it (nothing "
            "was written)"
        )


def _given(args: argparse.Namespace, attr: str) -> bool:
    return getattr(args, attr, None) is not None


def run_declare(args: argparse.Namespace) -> int:
    """``ledger record revision`` / ``ledger record consumer NAME``: a declaration only."""
    import json

    from analysis.cli._common import write_output
    from analysis.errors import LedgerError
    from analysis.ledger.declaring import declare_consumer, declare_revision

    _refuse_options(args, _DECLARE_OPTIONS[args.action], f"`record {args.action}`")
    if args.action == "revision":
        if args.name is not None:
            raise LedgerError(
                f"{args.ledger}: `record revision` takes no NAME ({args.name!r}); name it with "
                "--prompt P --revision R (nothing was written)"
            )
        if args.prompt is None or args.revision is None:
            raise LedgerError(
                f"{args.ledger}: `record revision` needs --prompt and --revision (and its text: "
                "--text-file FILE or --text TEXT); nothing was written"
            )
        result = declare_revision(
            args.ledger,
            args.prompt,
            args.revision,
            text=args.text,
            text_file=args.text_file,
            contract=args.contract,
            parent=args.parent,
            dry_run=args.dry_run,
        )
        wanted = f"prompts.{args.prompt}.revisions.{args.revision}"
    else:
        if args.name is None or args.prompt is None or not args.accepts:
            raise LedgerError(
                f"{args.ledger}: `record consumer` needs the consumer's NAME, --prompt and at "
                "least one --accepts VERSION, e.g. `promptstate ledger record consumer "
                "ticket-router --ledger L --prompt P --accepts v4`; nothing was written"
            )
        result = declare_consumer(
            args.ledger,
            args.name,
            prompt=args.prompt,
            accepts=args.accepts,
            description=args.description,
            dry_run=args.dry_run,
        )
        wanted = f"consumers.{args.name}"
    if args.format == "json":
        data = result.to_dict()
        if args.dry_run:
            data["diff"] = result.diff
        write_output(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    if not result.declared:
        line = f"{result.path}: {wanted} is declared already, with these fields; nothing to write"
    else:
        head = "would declare" if args.dry_run else "declared"
        line = f"{result.path}: {head} " + ", ".join(result.declared)
    write_output(line + ("\n" + result.diff if args.dry_run and result.diff else ""))
    return 0


def run_record(args: argparse.Namespace) -> int:
    import json

    from analysis.cli._common import write_output
    from analysis.errors import LedgerError
    from analysis.ledger import record_transition

    if args.action in DECLARE_ACTIONS:
        return run_declare(args)
    _refuse_options(args, set(_OPTIONS) - {"accepts", "description"}, f"{args.action}")
    if args.name is not None:
        raise LedgerError(
            f"{args.ledger}: {args.action} takes no NAME ({args.name!r}); only `record consumer "
            "NAME` does (nothing was written)"
        )
    result = record_transition(
        args.ledger,
        args.action,
        at=args.at,
        prompt=args.prompt,
        revision=args.revision,
        experiment=args.experiment,
        allocation=parse_allocation(args.allocation),
        to=args.to,
        arm=args.arm,
        actor=args.actor,
        reason=args.reason,
        text_file=args.text_file,
        text=args.text,
        contract=args.contract,
        parent=args.parent,
        arms=parse_arms(args.arms),
        control=args.control,
        unit=args.unit,
        declare_revisions=_arm_revisions(args),
        dry_run=args.dry_run,
    )
    if args.format == "json":
        data = result.to_dict()
        if args.dry_run:
            data["diff"] = result.diff
        write_output(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    t = result.transition
    head = "would record" if args.dry_run else "recorded"
    line = f"{result.path}: {head} transitions[{t.index}] ({t.action} at {result.entry['at']})"
    if result.declared:
        line += ", declaring " + ", ".join(result.declared)
    write_output(line + ("\n" + result.diff if args.dry_run else ""))
    return 0


def run_show(args: argparse.Namespace) -> int:
    import json

    from analysis._paths import check_outputs, sample_path
    from analysis.cli._common import write_output
    from analysis.ledger import ledger_overview, load_ledger

    if args.ledger_option is not None:
        if args.ledger is not None and args.ledger != args.ledger_option:
            from analysis.errors import LedgerError

            raise LedgerError(
                f"ledger show: two ledgers given ({args.ledger} and --ledger "
                f"{args.ledger_option}); give one"
            )
        args.ledger = args.ledger_option
    path = args.ledger if args.ledger is not None else sample_path("ledger.yaml")
    store = _show_store(args)
    if args.out is not None:
        check_outputs([args.out], [path, store])
    ledger = load_ledger(path)
    states = None
    if store is not None:
        from analysis.evals.state import revision_state

        states = [revision_state(ledger, r, args.at, store=store) for r in ledger.revisions]
    overview = ledger_overview(ledger, args.at, states=states)
    if args.format == "json":
        text = json.dumps(overview.to_dict(), indent=2, ensure_ascii=False)
    else:
        text = _show_tables(overview, markdown=args.format == "markdown")
    write_output(text, args.out)
    return 0


def _show_store(args: argparse.Namespace) -> Path | None:
    """The store ``baseline_id`` is read from, named on stderr (``None``: no store).

    The rule of ``promptstate state``: the embedded sample's store for the no-argument demo;
    otherwise ``--store``, ``$PROMPTSTATE_STORE``, ``[tool.promptstate] store`` in the nearest
    ``pyproject.toml``, ``./baselines``; with none of them ``baseline_id`` stays empty.
    """
    import sys

    from analysis._paths import sample_store
    from analysis.errors import BaselineError
    from analysis.evals._discovery import StoreNotFoundError, locate_store

    if args.store is None and args.ledger is None:
        store = sample_store()
        if store is not None:
            print(f"promptstate: store {store} (from the bundled sample)", file=sys.stderr)
        return store
    try:
        location = locate_store(args.store)
    except StoreNotFoundError as exc:
        print(f"promptstate: note: baseline_id is empty: {exc}", file=sys.stderr)
        return None
    if not location.path.is_dir():
        raise BaselineError(
            f"{location.path} (from {location.source}): no such directory; name a baseline "
            "store directory"
        )
    print(f"promptstate: {location.describe()}", file=sys.stderr)
    return location.path


def _show_tables(overview: Any, *, markdown: bool) -> str:
    from analysis import _render
    from analysis.ledger.overview import PHASE_COLUMNS, PROMPT_COLUMNS, STATE_COLUMNS

    render = _render.to_markdown if markdown else _render.to_text
    counts = overview.counts
    at = "after the last transition" if overview.at is None else overview.at.isoformat()
    head = (
        f"Ledger {overview.path}: {counts['prompts']} prompt(s), {counts['revisions']} "
        f"revision(s), {counts['experiments']} experiment(s), {counts['consumers']} consumer(s), "
        f"{counts['transitions']} transition(s); state {at}"
    )
    parts = [f"# {head}" if markdown else head]
    parts.append(render(overview.prompt_rows(), PROMPT_COLUMNS, title="prompts"))
    for exp in overview.experiments:
        arms = ", ".join(f"{a}={r}" for a, r in exp.arms.items())
        title = f"phases of {exp.experiment} (prompt {exp.prompt}; arms {arms})"
        parts.append(render(overview.phase_rows(exp), PHASE_COLUMNS, title=title))
    rows = overview.state_rows()
    if not markdown:  # the full hash is in --format json; 12 hex digits tell texts apart
        for row in rows:
            if row["text_sha256"] is not None:
                row["text_sha256"] = row["text_sha256"][:12]
    parts.append(render(rows, STATE_COLUMNS, title="revisions: the state tuple"))
    return "\n\n".join(parts)
