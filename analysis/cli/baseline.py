"""``promptstate baseline ...``: the versioned eval-baseline store (see docs/baselines.md).

Which store: ``--store``, then ``$PROMPTSTATE_STORE``, then ``store`` under ``[tool.promptstate]``
in the nearest ``pyproject.toml``, then ``./baselines`` (:func:`analysis.evals.locate_store`);
with none, exit 2 naming the four. Every subcommand that completes names the store it used as its
last line on stderr (``promptstate: store DIR (from RULE)``), so stdout (JSON included) stays
clean and an error stays one line (its message names the paths involved). A store that is not
a folder is refused (exit 2; ``init`` may create it). The embedded sample's store is read-only.

Every JSON output is an object whose first key is ``"schema_version": 1``: ``list`` →
``{schema_version, store, suites: [{suite, prompt, grader, on_revert, reference, revision,
pinned, versions}]}``; ``show`` → ``{schema_version, suite, config, reference, versions}`` (with
``--version``: ``{schema_version, <meta.json fields>}``); ``history`` → ``{schema_version, suite,
entries: [journal entries]}``; ``verify`` → :meth:`VerifyReport.to_dict`; ``sync`` →
:meth:`SyncReport.to_dict`.

Exit codes: 0 ok; 2 bad input (a suite config, a suite or version name, an option — nothing was
changed); 3 a stored baseline is invalid (its files disagree with the journal: ``verify`` lists
every mismatch) or, for ``sync``, a revert is pending. Repairs a writer made of leftovers of a
writer that died are reported on stderr as ``promptstate: warning: ...``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from analysis.cli._common import add_format_option, number, write_output
from analysis.errors import SCHEMA_VERSION

__all__ = ["register", "run"]


#: ``--results-format`` choices (:func:`analysis.evals.results.load_results`).
RESULTS_FORMATS = ("auto", "table", "promptfoo", "inspect")


def add_results_format_option(p: argparse.ArgumentParser, what: str) -> None:
    """Add ``--results-format {auto,table,promptfoo,inspect}`` (default ``auto``)."""
    p.add_argument(
        "--results-format",
        choices=RESULTS_FORMATS,
        default="auto",
        help=f"format of {what}: table (Parquet/CSV/JSONL, one row per scored sample), "
        "promptfoo (its JSON output), inspect (an Inspect AI log), or auto (default: told "
        "apart by the file's content)",
    )


def _common(p: argparse.ArgumentParser, *, write: bool = False) -> None:
    p.add_argument(
        "--store",
        type=Path,
        default=None,
        help="baseline store directory (default: $PROMPTSTATE_STORE, then `store` under "
        "[tool.promptstate] in the nearest pyproject.toml, then ./baselines; it must be a "
        "folder; the bundled sample store is read-only)",
    )
    if write:
        p.add_argument(
            "--actor",
            default=None,
            help="who acts, for the journal (default: $PROMPTSTATE_ACTOR, then $USER)",
        )
        p.add_argument("--reason", default="", help="why, for the journal")


def register(subparsers: Any) -> None:
    """Add ``baseline`` and its subcommands."""
    parser = subparsers.add_parser(
        "baseline",
        help="versioned eval baselines: init, anchor, list, show, history, pin, unpin, revert, "
        "sync, verify",
        description="Versioned eval baselines that follow rollbacks. The store is --store, "
        "then $PROMPTSTATE_STORE, then `store` under [tool.promptstate] in the nearest "
        "pyproject.toml, then ./baselines (with none: exit 2); a command that completes names "
        "it on stderr. The bundled sample store is read-only (make your own with `baseline "
        "init SUITE --store PATH --config suite.yaml`). "
        "Exit codes: 0 ok, 2 bad input (nothing changed), 3 invalid stored baseline (verify: "
        "any mismatch; sync: also a pending revert).",
    )
    sub = parser.add_subparsers(
        dest="baseline_command", metavar="ACTION", required=True, help="what to do with the store"
    )

    p = sub.add_parser("init", help="create a suite from a suite YAML config")
    p.add_argument("suite", help="name of the new suite (a folder of the store)")
    p.add_argument(
        "--config",
        type=Path,
        required=True,
        help="suite YAML (prompt, grader, on_revert, metrics, optional primary and ledger; a "
        "relative ledger is relative to this file)",
    )
    p.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="rollout ledger the gate checks the reference's staleness against; recorded in "
        "the suite's suite.yaml relative to the store (overrides the config's ledger)",
    )
    _common(p, write=True)

    p = sub.add_parser(
        "anchor",
        help="anchor a new baseline version from eval results",
        description="Anchor a new baseline version of SUITE from eval results of --revision. It "
        "becomes the reference unless the reference is pinned, or the suite's ledger "
        "($PROMPTSTATE_LEDGER, else the ledger recorded in its suite.yaml) records that "
        "--revision was rolled back and it is not live again: then the version is stored, the "
        "reference stays, and stderr says why and the `baseline pin` command that makes it the "
        "reference anyway.",
    )
    p.add_argument("suite", help="suite name")
    p.add_argument("--revision", required=True, help="revision that produced the results")
    p.add_argument(
        "--results",
        type=Path,
        required=True,
        help="eval results: a Parquet/CSV/JSONL table, promptfoo output JSON or an Inspect AI log",
    )
    p.add_argument(
        "--grader", default=None, help="grader id when the results have no grader column"
    )
    add_results_format_option(p, "--results")
    _common(p, write=True)

    p = sub.add_parser("list", help="list the suites and their references")
    _common(p)
    add_format_option(p)

    p = sub.add_parser("show", help="show a suite: config, reference, versions")
    p.add_argument("suite", help="suite name")
    p.add_argument("--version", default=None, help="show one version's metadata")
    _common(p)
    add_format_option(p)

    p = sub.add_parser("history", help="the suite's journal, oldest first")
    p.add_argument("suite", help="suite name")
    _common(p)
    add_format_option(p)

    p = sub.add_parser("pin", help="pin the reference (to --version, default the current one)")
    p.add_argument("suite", help="suite name")
    p.add_argument(
        "--version", default=None, help="version to pin, e.g. v0001 (default: the current one)"
    )
    _common(p, write=True)

    p = sub.add_parser("unpin", help="unpin the reference")
    p.add_argument("suite", help="suite name")
    _common(p, write=True)

    p = sub.add_parser(
        "revert",
        help="apply a revert: pin the restored revision's baseline or "
        "re-anchor it from fresh results",
    )
    p.add_argument("suite", help="suite name")
    p.add_argument("--reverted", required=True, help="the reverted revision")
    p.add_argument("--restored", required=True, help="the restored revision")
    p.add_argument(
        "--policy", choices=("pin", "reanchor"), default=None, help="default: the suite's on_revert"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="fresh eval results of the restored revision (policy reanchor)",
    )
    p.add_argument(
        "--grader", default=None, help="grader id when the results have no grader column"
    )
    p.add_argument(
        "--ledger-transition",
        type=number(integer=True, low=0),
        default=None,
        metavar="N",
        help="the ledger transition index (from 0) this revert applies, a whole number >= 0 "
        "(makes sync skip it)",
    )
    _common(p, write=True)

    p = sub.add_parser("sync", help="apply every rollback of the ledger the store has not applied")
    p.add_argument("suite", nargs="?", default=None, help="default: every suite")
    p.add_argument(
        "--ledger",
        type=Path,
        default=None,
        help="rollout ledger whose rollbacks are applied, YAML or JSON (default: each suite's "
        "recorded ledger, see `ledger:` in its suite.yaml)",
    )
    _common(p, write=True)
    add_format_option(p)

    p = sub.add_parser(
        "verify",
        help="check every stored file against the journal (exit 3 on any mismatch)",
        description="Cross-check each version's meta.json with the journal entry that created "
        "it, its scores with both recorded hashes, its eval-set hash with its scores, and the "
        "journal itself; notes leftovers of writers that died. Read-only. Exit 0 when all is "
        "well, 3 on any mismatch (each listed), 2 when a suite config is invalid.",
    )
    p.add_argument("suite", nargs="?", default=None, help="default: every suite")
    _common(p)
    add_format_option(p)

    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch ``baseline ACTION``; repairs of crash leftovers are printed as warnings."""
    from analysis.evals.store import ReferenceKeptWarning, RepairWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepairWarning)
        warnings.simplefilter("always", ReferenceKeptWarning)
        try:
            return _run(args)
        finally:
            for w in caught:
                if issubclass(w.category, RepairWarning):
                    print(f"promptstate: warning: {w.message}", file=sys.stderr)
                elif issubclass(w.category, ReferenceKeptWarning):
                    print(f"promptstate: note: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


_WRITES = frozenset({"init", "anchor", "pin", "unpin", "revert", "sync"})


def _run(args: argparse.Namespace) -> int:
    from analysis.evals._discovery import check_store_dir, check_writable, locate_store
    from analysis.evals.store import BaselineStore

    cmd = args.baseline_command
    location = locate_store(args.store)
    check_store_dir(location, f"baseline {cmd}", may_create=cmd == "init")
    if cmd in _WRITES:
        check_writable(location, f"baseline {cmd}")
    code = _dispatch(args, BaselineStore(location.path))
    # named once the command has run: an error stays the one line on stderr (and names its path)
    print(f"promptstate: {location.describe()}", file=sys.stderr)
    return code


def _dispatch(args: argparse.Namespace, store: Any) -> int:
    cmd = args.baseline_command
    if cmd == "init":
        config = _init_config(args, store.root)
        suite = store.init(args.suite, config, actor=args.actor, reason=args.reason)
        recorded = f"; ledger {config.ledger}" if config.ledger else ""
        write_output(f"initialised suite {suite.name} in {store.root}{recorded}")
        return 0
    if cmd == "anchor":
        return _anchor(store, args)
    if cmd == "list":
        return _list(store, args.format)
    if cmd == "show":
        return _show(store, args)
    if cmd == "history":
        return _history(store, args)
    if cmd == "pin":
        ref = store.suite(args.suite).pin(args.version, actor=args.actor, reason=args.reason)
        write_output(f"{args.suite}: reference pinned to {ref.version} ({ref.revision})")
        return 0
    if cmd == "unpin":
        ref = store.suite(args.suite).unpin(actor=args.actor, reason=args.reason)
        write_output(f"{args.suite}: reference {ref.version} ({ref.revision}) unpinned")
        return 0
    if cmd == "revert":
        key = (
            None if args.ledger_transition is None else f"{args.ledger_transition}:{args.reverted}"
        )
        ref = store.suite(args.suite).revert(
            args.reverted,
            args.restored,
            policy=args.policy,
            results=args.results,
            ledger_key=key,
            actor=args.actor,
            reason=args.reason,
            grader=args.grader,
        )
        write_output(
            f"{args.suite}: reverted {args.reverted} -> {args.restored}; reference "
            f"{ref.version} ({ref.revision}){', pinned' if ref.pinned else ''}"
        )
        return 0
    if cmd == "sync":
        return _sync(store, args)
    if cmd == "verify":
        return _verify(store, args)
    raise AssertionError(cmd)  # pragma: no cover


def _anchor(store: Any, args: argparse.Namespace) -> int:
    """``baseline anchor``: a rolled-back revision is stored without becoming the reference.

    What reading the results ignored or counted (the reader's notes: text columns, metrics
    some results do not score, errored promptfoo results) is printed on stderr once the
    version is stored, as ``gate`` lists it in its report.
    """
    import os

    from analysis.evals.results import load_results

    ledger = os.environ.get("PROMPTSTATE_LEDGER") or None
    suite = store.suite(args.suite)
    results = load_results(args.results, results_format=args.results_format)
    meta, ref = suite.anchor(
        args.revision,
        results,
        actor=args.actor,
        reason=args.reason,
        grader=args.grader,
        ledger=Path(ledger) if ledger else None,
        results_format=args.results_format,
    )
    if ref.version == meta.id:
        kept = "; it is the reference"
    elif ref.pinned:
        kept = f"; reference stays {ref.version} (pinned)"
    else:
        kept = f"; reference stays {ref.version or 'unset'} ({args.revision} was rolled back)"
    for note in results.notes:
        print(f"promptstate: note: {note}", file=sys.stderr)
    write_output(
        f"anchored {args.revision} as {args.suite} {meta.id} ({meta.n_examples} examples){kept}"
    )
    return 0


def _init_config(args: argparse.Namespace, root: Path) -> Any:
    """The suite config of ``init``, its ``ledger`` made relative to the store.

    ``--ledger`` (relative to the working directory) wins over the config's ``ledger``
    (relative to the config file); the ledger must exist.
    """
    import dataclasses
    import os

    from analysis.errors import BaselineError
    from analysis.evals.store import SuiteConfig

    config = SuiteConfig.load(args.config)
    if args.ledger is not None:
        ledger, where = args.ledger.absolute(), "--ledger"
    elif config.ledger is not None:
        ledger = Path(config.ledger).expanduser()
        ledger = ledger if ledger.is_absolute() else args.config.absolute().parent / ledger
        where = f"{args.config}: ledger"
    else:
        return config
    if not ledger.is_file():
        raise BaselineError(
            f"{where} {ledger}: no such file; give the rollout ledger the gate should check "
            "the reference's staleness against (nothing was created)"
        )
    try:
        text = os.path.relpath(ledger, root.absolute())
    except ValueError:  # another drive (Windows): keep it absolute
        text = str(ledger)
    return dataclasses.replace(config, ledger=Path(text).as_posix())


def _render(
    rows: list[dict[str, Any]], columns: list[str], fmt: str, title: str, payload: Any = None
) -> str:
    from analysis._render import to_markdown, to_text

    if fmt == "json":
        import json

        return json.dumps(payload, indent=2, default=str)
    if fmt == "markdown":
        return to_markdown(rows, columns, title=title)
    return to_text(rows, columns, title=title)


def _list(store: Any, fmt: str) -> int:
    rows = []
    for name in store.suite_names():
        s = store.suite(name)
        ref = s.reference()
        cfg = s.config
        rows.append(
            {
                "suite": name,
                "prompt": cfg.prompt,
                "grader": cfg.grader,
                "on_revert": cfg.on_revert,
                "reference": ref.version,
                "revision": ref.revision,
                "pinned": ref.pinned,
                "versions": len(s.versions()),
            }
        )
    cols = ["suite", "prompt", "grader", "on_revert", "reference", "revision", "pinned", "versions"]
    payload = {"schema_version": SCHEMA_VERSION, "store": str(store.root), "suites": rows}
    write_output(_render(rows, cols, fmt, f"suites in {store.root}", payload))
    return 0


def _show(store: Any, args: argparse.Namespace) -> int:
    s = store.suite(args.suite)
    if args.version:
        meta = s.version(args.version)
        data = meta.to_dict()
        rows = [{"field": k, "value": str(v)} for k, v in data.items()]
        payload = {"schema_version": SCHEMA_VERSION, **data}
        write_output(_render(rows, ["field", "value"], args.format, f"{s.name} {meta.id}", payload))
        return 0
    ref = s.reference()
    rows = []
    for v in s.versions():
        rows.append(
            {
                "version": v.id,
                "revision": v.revision,
                "created_at": v.created_at,
                "examples": v.n_examples,
                "samples": v.n_rows,
                "parent": v.parent,
                "reference": "*" if v.id == ref.version else "",
                **{f"mean_{k}": val for k, val in v.summary.items()},
            }
        )
    cfg = s.config
    payload = {
        "schema_version": SCHEMA_VERSION,
        "suite": s.name,
        "config": cfg.to_mapping(),
        "reference": ref.to_dict(),
        "versions": [v.to_dict() for v in s.versions()],
    }
    cols = [
        "version",
        "revision",
        "created_at",
        "examples",
        "samples",
        "parent",
        "reference",
        *(f"mean_{m.name}" for m in cfg.metrics),
    ]
    title = (
        f"suite {s.name}: prompt {cfg.prompt}, grader {cfg.grader}, on_revert "
        f"{cfg.on_revert}; reference {ref.version} ({ref.revision})"
        f"{', pinned' if ref.pinned else ''}"
    )
    write_output(_render(rows, cols, args.format, title, payload))
    return 0


def _history(store: Any, args: argparse.Namespace) -> int:
    s = store.suite(args.suite)
    entries = s.journal()
    rows = [
        {
            "seq": e.seq,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "version": e.version,
            "revision": e.revision,
            "reference": e.reference.version,
            "pinned": e.reference.pinned,
            "ledger_key": e.ledger_key,
            "reason": e.reason,
        }
        for e in entries
    ]
    cols = [
        "seq",
        "at",
        "actor",
        "action",
        "version",
        "revision",
        "reference",
        "pinned",
        "ledger_key",
        "reason",
    ]
    write_output(
        _render(
            rows,
            cols,
            args.format,
            f"journal of {s.name}",
            {
                "schema_version": SCHEMA_VERSION,
                "suite": s.name,
                "entries": [e.to_dict() for e in entries],
            },
        )
    )
    return 0


def _verify(store: Any, args: argparse.Namespace) -> int:
    report = store.verify([args.suite] if args.suite else None)
    cols = ["suite", "status", "path", "detail"]
    code: int = report.exit_code()
    verdict = {0: "all is well", 2: "invalid suite config", 3: "INVALID stored baseline"}[code]
    title = f"verify {store.root}: {verdict}"
    write_output(_render(report.rows(), cols, args.format, title, report.to_dict()))
    for f in report.findings:
        if f.kind != "note":
            print(f"promptstate: {f.kind}: {f.path}: {f.problem}", file=sys.stderr)
    return code


def _sync(store: Any, args: argparse.Namespace) -> int:
    from analysis.evals.models import SyncReport
    from analysis.ledger import load_ledger

    names = [args.suite] if args.suite else list(store.suite_names())
    groups = {args.ledger: names} if args.ledger is not None else _recorded_ledgers(store, names)
    items: list[Any] = []
    ledgers = {path: load_ledger(path) for path in groups}  # all read before any write
    for path, group in groups.items():
        items.extend(store.sync(ledgers[path], group, actor=args.actor).items)
    report = SyncReport(tuple(items))
    cols = ["suite", "rollback", "reverted", "restored", "policy", "status", "reference"]
    title = f"sync with {', '.join(str(p) for p in groups) or 'no ledger (no suites)'}"
    write_output(_render(report.rows(), cols, args.format, title, report.to_dict()))
    for item in report.pending:
        print(
            f"promptstate: pending: {item.suite}: {item.message}: {item.command}", file=sys.stderr
        )
    return 3 if report.pending else 0


def _recorded_ledgers(store: Any, names: list[str]) -> dict[Path, list[str]]:
    """Suites grouped by the ledger their ``suite.yaml`` records (``sync`` without --ledger).

    Raises:
        BaselineError: a suite records no ledger, or its ledger does not exist (exit 2, naming
            the suites and how to fix it; nothing was changed).
    """
    from analysis.errors import BaselineError
    from analysis.evals._staleness import choose_ledger

    groups: dict[Path, list[str]] = {}
    missing: list[str] = []
    for name in names:
        suite = store.suite(name)
        if suite.config.ledger is None:
            missing.append(f"{name} (records none)")
            continue
        try:
            path = choose_ledger(suite, store, False, stale_check=True).path
        except BaselineError as exc:
            missing.append(f"{name} ({str(exc).split(';')[0]})")
            continue
        assert path is not None
        groups.setdefault(path, []).append(name)
    if missing:
        raise BaselineError(
            f"baseline sync: no usable ledger recorded for {', '.join(missing)}; pass --ledger "
            "LEDGER, or record one (`ledger: PATH` in the suite's suite.yaml, relative to the "
            "store, or `baseline init SUITE --config FILE --ledger LEDGER`); nothing was changed"
        )
    return groups
