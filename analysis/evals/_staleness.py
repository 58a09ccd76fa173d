"""The gate's stale-baseline guard: which ledger a suite is checked against, and the check.

Which ledger (first match wins): the ``ledger`` argument (``--ledger``, then
``$PROMPTSTATE_LEDGER`` in the CLI); the ``ledger`` recorded in the suite's ``suite.yaml``
(relative to the store's directory; for the embedded sample's store, the sample's ledger when
the recorded path does not resolve, as inside an installed wheel). Opting out is explicit
(``stale_check=False``, ``--no-stale-check``) and shown in the gate's checks. With neither a
ledger nor the opt-out the gate refuses (:class:`~analysis.errors.BaselineError`, exit code 2)
naming both ways.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from analysis.errors import BaselineError, StaleBaselineError

if TYPE_CHECKING:
    from analysis.evals.models import Reference
    from analysis.evals.store import BaselineStore, Suite
    from analysis.ledger import Ledger

__all__ = ["LedgerChoice", "StaleReferenceError", "check_live", "choose_ledger", "rollback_of"]


class StaleReferenceError(StaleBaselineError):
    """The reference is not a baseline of the live revision (exit code 3).

    Attributes:
        command: The command that fixes it, ready to run (``""`` when none can be given).
    """

    def __init__(self, message: str, command: str = "") -> None:
        super().__init__(message)
        self.command = command


class LedgerChoice(NamedTuple):
    """The ledger a gate checks staleness against.

    Attributes:
        path: The ledger file, or ``None`` when the check is turned off.
        source: ``"argument"``, ``"suite.yaml"``, ``"sample"`` or ``"off"``.
    """

    path: Path | None
    source: str


def choose_ledger(
    suite: Suite, store: BaselineStore, ledger_given: bool, *, stale_check: bool
) -> LedgerChoice:
    """Decide which ledger the stale-baseline guard uses when none was given.

    Args:
        suite: The suite graded against.
        store: Its store.
        ledger_given: Whether the caller passed a ledger (it then wins).
        stale_check: ``False`` turns the guard off (explicitly).

    Raises:
        BaselineError: a ledger given together with ``stale_check=False``; no ledger given or
            recorded and the check not turned off; the recorded ledger does not exist (exit
            code 2, naming ``suite.yaml`` and the ways out).
    """
    from analysis.evals._discovery import is_sample_store

    if not stale_check:
        if ledger_given:
            raise BaselineError(
                "--no-stale-check and --ledger contradict each other: give --ledger to check "
                "the reference's staleness, or --no-stale-check to skip it (not both)"
            )
        return LedgerChoice(None, "off")
    if ledger_given:
        return LedgerChoice(None, "argument")
    cfg_path = suite.path / "suite.yaml"
    recorded = suite.config.ledger
    if recorded is None:
        raise BaselineError(
            f"{cfg_path}: suite {suite.name!r} records no ledger, so the gate cannot check "
            f"whether its reference is stale; pass --ledger LEDGER, or record it (add `ledger: "
            f"PATH` to {cfg_path}, relative to {store.root}), or skip the check explicitly with "
            f"--no-stale-check (API: stale_check=False)"
        )
    path = Path(recorded).expanduser()
    if not path.is_absolute():
        path = Path(os.path.normpath(store.root.absolute() / path))
    if path.is_file():
        return LedgerChoice(path, "suite.yaml")
    if is_sample_store(store.root):
        from analysis._paths import sample_path

        return LedgerChoice(sample_path("ledger.yaml"), "sample")
    raise BaselineError(
        f"{cfg_path}: ledger {recorded!r} (resolved to {path}) does not exist; fix `ledger:` in "
        f"{cfg_path} (relative to {store.root}), pass --ledger LEDGER, or skip the check with "
        "--no-stale-check"
    )


def check_live(suite: Suite, ref: Reference, ledger: Ledger, store: BaselineStore) -> str:
    """Stale-baseline guard: refuse a reference that is not a baseline of the live revision.

    Returns:
        What was checked (the ``ledger`` check's detail) when the reference is current.

    Raises:
        StaleReferenceError: the reference belongs to a reverted or non-live revision (exit
            code 3); the message and ``command`` name the fix with the real paths.
    """
    from analysis.evals._files import iso

    cfg = suite.config
    where = str(ledger.path) if ledger.path is not None else "the ledger"
    lopt = f" --ledger {shlex.quote(str(ledger.path))}" if ledger.path is not None else ""
    opt = store.store_option()
    live = ledger.live_revision(cfg.prompt)
    if ref.revision == live:
        return (
            f"reference {ref.version} is a baseline of {live}, the live revision of "
            f"{cfg.prompt} in {where}"
        )
    head = f"suite {suite.name}: reference {ref.version} is anchored to {ref.revision}"
    reverts = [r for r in ledger.reverts(cfg.prompt) if r.reverted == ref.revision]
    name = shlex.quote(suite.name)
    if reverts:
        rv = reverts[-1]
        applied = any(
            e.ledger_key == f"{rv.transition_index}:{rv.reverted}" for e in suite.journal()
        )
        if not applied:
            command = f"promptstate baseline sync {name}{lopt or ' --ledger LEDGER'}{opt}"
            fix = f"run `{command}` (on_revert: {cfg.on_revert})"
        else:
            command = (
                f"promptstate baseline revert {name} --reverted {rv.reverted} --restored "
                f"{rv.restored} --policy {cfg.on_revert}{opt}"
            )
            fix = f"the revert was applied but the reference was moved back; run `{command}`"
        raise StaleReferenceError(
            f"{head}, which {where} rolled back to {rv.restored} at {iso(rv.at)} (transition "
            f"{rv.transition_index}); a gate never grades against a reverted revision's "
            f"baseline — {fix}{store.advice()}",
            command,
        )
    if live is None:
        raise StaleReferenceError(
            f"{head}, but {cfg.prompt} has no live revision in {where}; deploy one first"
            f"{store.advice()}"
        )
    candidates = [v.id for v in suite.versions() if v.revision == live]
    if candidates:
        command = f"promptstate baseline pin {name} --version {candidates[-1]}{opt}"
        fix = f"pin it with `{command}`"
    else:
        command = f"promptstate baseline anchor {name} --revision {live} --results FILE{opt}"
        fix = f"anchor one with `{command}`"
    raise StaleReferenceError(
        f"{head}, but the live revision of {cfg.prompt} in {where} is {live}; the candidate "
        f"replaces {live}, so the reference must be a baseline of {live} — {fix}"
        f"{store.advice()}",
        command,
    )


def rollback_of(suite: Suite, revision: str, ledger: Ledger | str | Path | None) -> str:
    """Why anchoring ``revision`` must not move the reference: the ledger rolled it back.

    Args:
        suite: The suite anchored to.
        revision: The revision being anchored.
        ledger: The ledger (object or path); ``None``: the suite's recorded ledger when it
            resolves (nothing is checked when there is none).

    Returns:
        ``"<ledger> rolled <revision> back to <restored> at <time> (transition N)"`` when the
        ledger records a rollback of ``revision`` and it is not live again, else ``""``.

    Raises:
        LedgerError: the ledger cannot be read (exit code 2).
    """
    from analysis.evals._files import iso

    if ledger is None:
        try:
            path = choose_ledger(suite, suite.store, False, stale_check=True).path
        except BaselineError:  # none recorded, or it does not resolve: nothing to check
            return ""
        if path is None:  # pragma: no cover - the check is on
            return ""
        ledger = path
    if isinstance(ledger, str | Path):
        from analysis.ledger import load_ledger

        ledger = load_ledger(ledger)
    prompt = suite.config.prompt
    if prompt not in ledger.prompts or ledger.live_revision(prompt) == revision:
        return ""
    reverts = [r for r in ledger.reverts(prompt) if r.reverted == revision]
    if not reverts:
        return ""
    rv = reverts[-1]
    where = str(ledger.path) if ledger.path is not None else "the ledger"
    return (
        f"{where} rolled {revision} back to {rv.restored} at {iso(rv.at)} (transition "
        f"{rv.transition_index})"
    )
