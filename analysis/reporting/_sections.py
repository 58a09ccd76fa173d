"""The report's status sections: eval baselines against the ledger, downstream contracts.

Split out of :mod:`analysis.reporting.batch` (which re-exports :class:`BaselineStatus` and
:class:`ContractStatus`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis.errors import PromptstateError

if TYPE_CHECKING:
    from analysis.evals.store import JournalEntry
    from analysis.ledger import Ledger

__all__ = ["BaselineStatus", "ContractStatus"]


class BaselineStatus(NamedTuple):
    """The reference of one eval suite against the ledger.

    Attributes:
        suite: Suite name.
        prompt: Its prompt.
        version: Reference version (``None`` before the first anchor).
        revision: Revision the reference is anchored to.
        pinned: Whether the reference is pinned.
        live_revision: The prompt's live revision per the ledger.
        status: ``ok`` (reference of the live revision), ``stale`` (of a reverted revision or
            not of the live one), ``empty`` (nothing anchored) or ``invalid`` (the store's
            files disagree with its journal: ``promptstate baseline verify``).
        detail: Why, and what to run.
    """

    suite: str
    prompt: str
    version: str | None
    revision: str | None
    pinned: bool
    live_revision: str | None
    status: str
    detail: str


class ContractStatus(NamedTuple):
    """One downstream consumer of the prompt against the live revision's contract.

    Attributes:
        name: Consumer name.
        prompt: The prompt it reads.
        accepts: Contract versions it accepts.
        live_revision: The prompt's live revision.
        contract: The contract version the live revision emits.
        status: ``ok``, ``risk`` (does not accept it) or ``unknown`` (no contract recorded).
    """

    name: str
    prompt: str
    accepts: tuple[str, ...]
    live_revision: str | None
    contract: str | None
    status: str


def _describe(value: Any) -> str:
    if isinstance(value, str | Path):
        return str(value)
    path = getattr(value, "path", None)
    if path is not None:
        return str(path)
    return type(value).__name__


def _find_store(store: str | Path | None, sample_store: Path | None) -> tuple[Path | None, str]:
    """The baseline store of the report, and how it was found (or why there is none).

    ``store`` (``--store``) must be an existing directory; with the sample demo the sample's
    store; otherwise :func:`analysis.evals.locate_store` (``PROMPTSTATE_STORE``, pyproject,
    ``./baselines``): none found means no baseline section, with a note naming the lookup order.
    """
    from analysis.evals import StoreNotFoundError, locate_store

    if store is not None:
        path = Path(store)  # as given (the rule --store of locate_store), for the advice
        if not path.is_dir():
            raise PromptstateError(f"--store {store}: no such directory (a baseline store)")
        return path, "--store"
    if sample_store is not None and sample_store.is_dir():
        return sample_store, "sample"
    try:
        found = locate_store(None)
    except StoreNotFoundError as exc:
        return None, f"baseline section left out: {exc}"
    if not found.path.is_dir():
        return None, (
            f"baseline section left out: the store {found.path} (from {found.source}) is not a "
            "directory"
        )
    return found.path, found.source


def _ledger_arg(ledger: Any) -> str:
    """The ledger the report ran with, as a shell word for advice (``LEDGER`` when unknown)."""
    import shlex

    if isinstance(ledger, str | Path) or getattr(ledger, "path", None) is not None:
        return shlex.quote(_describe(ledger))
    return "LEDGER"


def _baselines(
    store_path: Path, ledger: Ledger, ledger_arg: str = "LEDGER"
) -> tuple[list[BaselineStatus], dict[str, tuple[JournalEntry, ...]]]:
    import shlex

    from analysis.errors import InvalidBaselineError
    from analysis.evals.store import BaselineStore

    st = BaselineStore(store_path)
    out: list[BaselineStatus] = []
    journals: dict[str, tuple[JournalEntry, ...]] = {}
    for name in sorted(st.suite_names()):
        suite = st.suite(name)
        prompt = suite.config.prompt
        if prompt not in ledger.prompts:
            continue
        live = ledger.live_revision(prompt)
        try:
            journals[name] = tuple(suite.journal())
            ref = suite.reference()
        except InvalidBaselineError as exc:  # tampered or torn: report it, keep reporting
            journals.pop(name, None)
            detail = f"{exc} (check it with `promptstate baseline verify {name}`)"
            out.append(BaselineStatus(name, prompt, None, None, False, live, "invalid", detail))
            continue
        if ref.version is None:
            status, detail = "empty", f"nothing anchored yet; anchor a baseline of {live}"
        elif ref.revision == live:
            status, detail = "ok", f"{ref.version} is a baseline of the live revision {live}"
        else:
            reverted = [r for r in ledger.reverts(prompt) if r.reverted == ref.revision]
            applied = {e.ledger_key for e in journals[name]}
            if reverted:
                rv = reverted[-1]
                done = f"{rv.transition_index}:{rv.reverted}" in applied
                opt = (
                    " --store PATH" if st.is_sample else f" --store {shlex.quote(str(store_path))}"
                )
                fix = (
                    f"run `promptstate baseline sync {shlex.quote(name)} "
                    f"--ledger {ledger_arg}{opt}`"
                    if not done
                    else f"run `promptstate baseline revert {name} --reverted {rv.reverted} "
                    f"--restored {rv.restored}{opt}`"
                ) + st.advice()
                detail = (
                    f"reference {ref.version} is anchored to {ref.revision}, which the ledger "
                    f"rolled back to {rv.restored} at {rv.at.isoformat()}; {fix}"
                )
            else:
                detail = (
                    f"reference {ref.version} is anchored to {ref.revision}, but the live "
                    f"revision is {live}"
                )
            status = "stale"
        out.append(
            BaselineStatus(
                name, prompt, ref.version, ref.revision, ref.pinned, live, status, detail
            )
        )
    return out, journals


def _contracts(ledger: Ledger, prompt: str) -> list[ContractStatus]:
    live = ledger.live_revision(prompt)
    contract = (
        ledger.revisions[live].contract if live is not None and live in ledger.revisions else None
    )
    out = []
    for name in sorted(ledger.consumers):
        c = ledger.consumers[name]
        if c.prompt != prompt:
            continue
        status = "unknown" if contract is None else ("ok" if contract in c.accepts else "risk")
        out.append(ContractStatus(name, prompt, tuple(c.accepts), live, contract, status))
    return out
