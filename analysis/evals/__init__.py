"""Eval results, the versioned baseline store and the gate.

Modules:

- :mod:`~analysis.evals.results` — reading per-example eval results; the eval-set hash.
- :mod:`~analysis.evals.models` — suite configs, versions, references and journal entries.
- :mod:`~analysis.evals.store` — :class:`BaselineStore`: versions, journal, reference, sync.
- :mod:`~analysis.evals.gating` — :func:`gate`: paired tests of a candidate against the
  reference.
- :mod:`~analysis.evals._discovery` — :func:`locate_store`: which store a command uses.
- :mod:`~analysis.evals.state` — :func:`revision_state`: the ledger's state tuple with
  ``baseline_id`` read from a store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis._lazy import attach

_EXPORTS: dict[str, str] = {
    "EvalResults": ".results",
    "eval_set_hash": ".results",
    "EVAL_SET_HASH_SCHEME": ".results",
    "load_results": ".results",
    "BaselineVersion": ".models",
    "JournalEntry": ".models",
    "MetricSpec": ".models",
    "Reference": ".models",
    "SuiteConfig": ".models",
    "SyncItem": ".models",
    "SyncReport": ".models",
    "Finding": ".models",
    "SuiteCheck": ".models",
    "VerifyReport": ".models",
    "DEFAULT_STORE": ".store",
    "BaselineStore": ".store",
    "Suite": ".store",
    "RepairWarning": ".store",
    "ReferenceKeptWarning": ".store",
    "Check": ".gating",
    "GateResult": ".gating",
    "MetricResult": ".gating",
    "compare_metrics": ".gating",
    "gate": ".gating",
    "anchored_baselines": ".state",
    "StoreLocation": "._discovery",
    "StoreNotFoundError": "._discovery",
    "locate_store": "._discovery",
    "revision_state": ".state",
}

__all__ = [
    "DEFAULT_STORE",
    "EVAL_SET_HASH_SCHEME",
    "BaselineStore",
    "BaselineVersion",
    "Check",
    "EvalResults",
    "Finding",
    "GateResult",
    "JournalEntry",
    "MetricResult",
    "MetricSpec",
    "Reference",
    "ReferenceKeptWarning",
    "RepairWarning",
    "StoreLocation",
    "StoreNotFoundError",
    "Suite",
    "SuiteCheck",
    "SuiteConfig",
    "SyncItem",
    "SyncReport",
    "VerifyReport",
    "anchored_baselines",
    "compare_metrics",
    "eval_set_hash",
    "gate",
    "load_results",
    "locate_store",
    "revision_state",
]

__getattr__, __dir__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from analysis.evals._discovery import StoreLocation, StoreNotFoundError, locate_store
    from analysis.evals.gating import (
        Check,
        GateResult,
        MetricResult,
        compare_metrics,
        gate,
    )
    from analysis.evals.models import (
        BaselineVersion,
        Finding,
        JournalEntry,
        MetricSpec,
        Reference,
        SuiteCheck,
        SuiteConfig,
        SyncItem,
        SyncReport,
        VerifyReport,
    )
    from analysis.evals.results import (
        EVAL_SET_HASH_SCHEME,
        EvalResults,
        eval_set_hash,
        load_results,
    )
    from analysis.evals.state import anchored_baselines, revision_state
    from analysis.evals.store import (
        DEFAULT_STORE,
        BaselineStore,
        ReferenceKeptWarning,
        RepairWarning,
        Suite,
    )
