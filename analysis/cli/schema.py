"""``promptstate schema [NAME] [--out DIR]``: the JSON Schemas of the commands' JSON outputs.

``promptstate schema NAME`` prints the schema of one output (e.g. ``rollback-plan``);
``promptstate schema --out DIR`` writes every output's schema into ``DIR`` as
``<name>.schema.json`` (the committed copies are ``docs/schemas/``, regenerated with
``promptstate schema --out docs/schemas``); with neither, it lists the outputs. The models are
in :mod:`analysis.cli._schemas` (imported only when the command runs: pydantic is not loaded to
build the parser).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "schema",
        help="print or write the JSON Schemas of the commands' JSON outputs",
        description=(
            "Print the JSON Schema (draft 2020-12) of one JSON output of promptstate (NAME, e.g. "
            "rollback-plan), or write every output's schema into --out DIR as "
            "<name>.schema.json (the repository's copies are docs/schemas/). With neither, list "
            "the outputs and the command printing each. Every JSON output starts with "
            '"schema_version". (The ledger file\'s input schema is `promptstate ledger schema`.) '
            "Exit codes: 0 ok, 2 bad input (an unknown NAME), 4 internal error."
        ),
    )
    parser.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="the output whose schema to print or write, e.g. rollback-plan (default: list "
        "them; with --out, all of them)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="directory to write <name>.schema.json into (created if missing; files replaced "
        "atomically) instead of printing",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from analysis.cli._common import write_output
    from analysis.cli._schemas import OUTPUTS, file_name, schema_text, summary
    from analysis.errors import PromptstateError

    if args.name is not None and args.name not in OUTPUTS:
        raise PromptstateError(
            f"schema {args.name!r}: no such output; use one of {', '.join(sorted(OUTPUTS))} "
            "(the ledger file's schema is `promptstate ledger schema`)"
        )
    if args.out is None:
        if args.name is not None:
            write_output(schema_text(args.name))
        else:
            write_output("\n".join(f"{n}\t{summary(OUTPUTS[n])}" for n in sorted(OUTPUTS)))
        return 0
    names = [args.name] if args.name is not None else sorted(OUTPUTS)
    if args.out.exists() and not args.out.is_dir():
        raise PromptstateError(f"--out {args.out}: not a directory; name a directory")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_output(schema_text(name), args.out / file_name(name))
    write_output("\n".join(str(args.out / file_name(n)) for n in names))
    return 0
