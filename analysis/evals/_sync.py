"""What ``baseline sync`` does for one suite, decided from an index built once (no file access).

:func:`plan_sync` walks the ledger's reverts of the suite's prompt in order, against an index of
the suite built once under the lock — the ledger keys already applied, the current reference,
the versions of each revision — and returns the journal records to append and one
:class:`~analysis.evals.models.SyncItem` per revert. Each revert costs O(1) plus the versions
of its restored revision, so a sync is linear in the number of transitions (the former loop
re-read the journal and every version's metadata for each revert: quadratic).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from analysis.evals.models import Reference, SuiteConfig, SyncItem

if TYPE_CHECKING:
    from analysis.ledger.model import Revert

__all__ = ["SyncIndex", "plan_sync"]


@dataclass
class SyncIndex:
    """The state of a suite that sync decisions read (mutated as the plan appends entries).

    Attributes:
        reference: The current reference.
        applied: Ledger keys already in the journal.
        by_revision: Revision → its versions ``(id, created_at)``, oldest first.
    """

    reference: Reference
    applied: set[str]
    by_revision: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        reference: Reference,
        keys: Iterable[str | None],
        versions: Iterable[tuple[str, str, datetime]],
    ) -> SyncIndex:
        """From the reference, the journal's ledger keys and ``(id, revision, created_at)``."""
        index = cls(reference, {k for k in keys if k is not None})
        for vid, revision, created in versions:
            index.by_revision.setdefault(revision, []).append((vid, created))
        return index

    def newest(self, revision: str, after: datetime | None) -> str | None:
        """The newest version of ``revision`` (created after ``after`` when given)."""
        for vid, created in reversed(self.by_revision.get(revision, [])):
            if after is None or created > after:
                return vid
        return None


def plan_sync(
    suite: str,
    cfg: SuiteConfig,
    reverts: Sequence[Revert],
    index: SyncIndex,
    *,
    ledger_name: str,
    store_option: str,
) -> tuple[list[dict[str, Any]], list[SyncItem]]:
    """Decide every revert of the ledger for one suite (see ``Suite.sync`` for the rules).

    Returns:
        The journal records to append (``action="revert"`` keyword arguments of a journal entry,
        in order) and one item per revert.
    """
    records: list[dict[str, Any]] = []
    items: list[SyncItem] = []
    for rv in reverts:
        key = f"{rv.transition_index}:{rv.reverted}"
        current = index.reference
        base: dict[str, Any] = {
            "suite": suite,
            "ledger_key": key,
            "at": rv.at,
            "reverted": rv.reverted,
            "restored": rv.restored,
            "policy": cfg.on_revert,
        }
        if key in index.applied:
            items.append(
                SyncItem(
                    **base, status="already", version=current.version, message="applied before"
                )
            )
            continue
        reason = (
            f"{ledger_name}: transition {rv.transition_index} rolled back {rv.reverted} to "
            f"{rv.restored}"
        )
        common = {
            "ledger_key": key,
            "reverted": rv.reverted,
            "restored": rv.restored,
            "policy": cfg.on_revert,
        }
        if current.revision != rv.reverted:
            records.append(
                {
                    "reason": reason + "; reference not anchored to the reverted revision, "
                    "unchanged",
                    "reference": current,
                    "version": current.version,
                    "revision": current.revision,
                    **common,
                }
            )
            index.applied.add(key)
            items.append(
                SyncItem(
                    **base,
                    status="noop",
                    version=current.version,
                    message=f"reference {current.version} ({current.revision}) is not a "
                    f"baseline of {rv.reverted}; unchanged",
                )
            )
            continue
        after = rv.at if cfg.on_revert == "reanchor" else None
        target = index.newest(rv.restored, after)
        if target is None:
            cmd = (
                f"promptstate baseline revert {suite} --reverted {rv.reverted} "
                f"--restored {rv.restored} --policy reanchor --results FILE "
                f"--ledger-transition {rv.transition_index}{store_option}"
            )
            why = (
                "on_revert is reanchor"
                if cfg.on_revert == "reanchor"
                else f"no baseline of {rv.restored} to pin"
            )
            items.append(
                SyncItem(
                    **base,
                    status="pending",
                    version=current.version,
                    message=f"{why}: evaluate {rv.restored} and run the command",
                    command=cmd,
                )
            )
            continue
        ref = Reference(target, rv.restored, cfg.on_revert == "pin")
        records.append(
            {
                "reason": reason,
                "reference": ref,
                "version": target,
                "revision": rv.restored,
                **common,
            }
        )
        index.applied.add(key)
        index.reference = ref
        items.append(
            SyncItem(
                **base,
                status="applied",
                version=target,
                message=f"reference {current.version} ({rv.reverted}) -> {target} "
                f"({rv.restored}){', pinned' if ref.pinned else ''}",
            )
        )
    return records, items
