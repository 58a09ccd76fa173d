"""The full state tuple of a revision: the ledger's answer plus the baseline store's.

:func:`analysis.ledger.revision_state` reads the ledger alone and leaves ``baseline_id`` empty
(the ledger does not import the eval store); :func:`revision_state` here fills it from a
:class:`~analysis.evals.store.BaselineStore`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from analysis.errors import BaselineError
from analysis.evals.models import Reference
from analysis.evals.store import BaselineStore, Suite
from analysis.ledger import Ledger, RevisionState
from analysis.ledger import revision_state as ledger_state

__all__ = ["anchored_baselines", "revision_state"]


def revision_state(
    ledger: Ledger,
    revision: str,
    at: datetime | None = None,
    *,
    store: BaselineStore | str | Path | None = None,
) -> RevisionState:
    """The state tuple of ``revision`` at ``at``, with ``baseline_id`` read from ``store``.

    Every field but ``baseline_id`` is :func:`analysis.ledger.revision_state`'s. ``baseline_id``
    is ``None`` without a store; with one it is the id ``<suite>/<version>`` of the reference of
    every suite of the store that evaluates the revision's prompt (``prompt`` in its
    ``suite.yaml``) and whose reference at ``at`` is anchored to ``revision`` (see
    :func:`anchored_baselines`), several ids joined by ``", "`` in suite order, ``None`` when
    no such suite exists.

    Args:
        ledger: The rollout ledger.
        revision: The revision id.
        at: The instant (timezone-aware); default: after the last transition, and the store's
            current reference.
        store: A baseline store or its directory.

    Raises:
        LedgerError: the revision is not in the ledger, or ``at`` has no timezone.
        InvalidBaselineError: a suite's current reference disagrees with its journal.
    """
    state = ledger_state(ledger, revision, at)
    if store is None:
        return state
    ids = anchored_baselines(store, state.prompt, revision, at)
    return dataclasses.replace(state, baseline_id=", ".join(ids) if ids else None)


def anchored_baselines(
    store: BaselineStore | str | Path, prompt: str, revision: str, at: datetime | None = None
) -> tuple[str, ...]:
    """Ids ``<suite>/<version>`` of the references of ``prompt``'s suites anchored to ``revision``.

    The reference of a suite at ``at`` is the one after its last journal entry at or before
    ``at``; with ``at=None`` it is its current reference, checked against the stored version.
    Suites are taken in name order.

    Raises:
        BaselineError: ``at`` has no timezone.
        InvalidBaselineError: a suite's current reference disagrees with its journal.
    """
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise BaselineError(
            f"time {at.isoformat()} has no timezone; pass an aware datetime (e.g. tzinfo=UTC)"
        )
    if not isinstance(store, BaselineStore):
        store = BaselineStore(store)
    out = []
    for name in store.suite_names():
        suite = store.suite(name)
        if suite.config.prompt != prompt:
            continue
        ref = suite.reference() if at is None else _reference_at(suite, at)
        if ref.version is not None and ref.revision == revision:
            out.append(f"{name}/{ref.version}")
    return tuple(out)


def _reference_at(suite: Suite, at: datetime) -> Reference:
    """The reference after the last committed journal entry at or before ``at``."""
    ref = Reference(None, None)
    for entry in suite.journal():
        if entry.at > at:
            break
        ref = entry.reference
    return ref
