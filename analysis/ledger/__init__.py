"""The rollout ledger: prompts, revisions, experiments, consumers and their transitions.

Modules:

- :mod:`~analysis.ledger.model` — the typed ledger (the ledger semantics), its phases, live
  revisions and reverts.
- :mod:`~analysis.ledger.loading` — reading and validating a ledger file (YAML or JSON).
- :mod:`~analysis.ledger._index` — the derived timelines, built once per ledger.
- :mod:`~analysis.ledger.state` — the state tuple of one revision at one instant.
- :mod:`~analysis.ledger.writer` — appending a transition to a ledger file (atomic, locked,
  comments kept).
- :mod:`~analysis.ledger.recording` — recording one transition as it happens (built from
  arguments, appended with the writer).
- :mod:`~analysis.ledger.declaring` — an empty ledger (``ledger init``); declaring a revision
  or a consumer without a transition.
- :mod:`~analysis.ledger.overview` — the phases and the state tuple of every revision at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis._lazy import attach

_EXPORTS: dict[str, str] = {
    "ACTIONS": ".model",
    "ID_RULE": ".model",
    "valid_id": ".model",
    "Consumer": ".model",
    "Experiment": ".model",
    "Ledger": ".model",
    "Phase": ".model",
    "Prompt": ".model",
    "Revert": ".model",
    "Revision": ".model",
    "RevisionState": ".model",
    "Transition": ".model",
    "load_ledger": ".loading",
    "parse_ledger": ".loading",
    "revision_state": ".state",
    "AppendResult": ".writer",
    "append_transition": ".writer",
    "declare_and_append": ".writer",
    "ledger_lock": ".writer",
    "render_append": ".writer",
    "RecordResult": ".recording",
    "record_transition": ".recording",
    "DeclareResult": ".declaring",
    "declare_consumer": ".declaring",
    "declare_revision": ".declaring",
    "init_ledger": ".declaring",
    "LedgerOverview": ".overview",
    "ledger_overview": ".overview",
}

__all__ = [
    "ACTIONS",
    "ID_RULE",
    "AppendResult",
    "Consumer",
    "DeclareResult",
    "Experiment",
    "Ledger",
    "LedgerOverview",
    "Phase",
    "Prompt",
    "RecordResult",
    "Revert",
    "Revision",
    "RevisionState",
    "Transition",
    "append_transition",
    "declare_and_append",
    "declare_consumer",
    "declare_revision",
    "init_ledger",
    "ledger_lock",
    "ledger_overview",
    "load_ledger",
    "parse_ledger",
    "record_transition",
    "render_append",
    "revision_state",
    "valid_id",
]

__getattr__, __dir__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from analysis.ledger.declaring import (
        DeclareResult,
        declare_consumer,
        declare_revision,
        init_ledger,
    )
    from analysis.ledger.loading import load_ledger, parse_ledger
    from analysis.ledger.model import (
        ACTIONS,
        ID_RULE,
        Consumer,
        Experiment,
        Ledger,
        Phase,
        Prompt,
        Revert,
        Revision,
        RevisionState,
        Transition,
        valid_id,
    )
    from analysis.ledger.overview import LedgerOverview, ledger_overview
    from analysis.ledger.recording import RecordResult, record_transition
    from analysis.ledger.state import revision_state
    from analysis.ledger.writer import (
        AppendResult,
        append_transition,
        declare_and_append,
        ledger_lock,
        render_append,
    )
