"""promptstate: make prompt rollbacks analysable.

The public API is listed in ``__all__``; names are imported lazily on first use so that the
``promptstate`` command starts quickly. See the README for a tour on the embedded sample.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "PromptstateError": "analysis.errors",
    "LedgerError": "analysis.errors",
    "EventsError": "analysis.errors",
    "BaselineError": "analysis.errors",
    "StaleBaselineError": "analysis.errors",
    "ResultsError": "analysis.errors",
    # ledger
    "Ledger": "analysis.ledger",
    "Revision": "analysis.ledger",
    "Experiment": "analysis.ledger",
    "Transition": "analysis.ledger",
    "Phase": "analysis.ledger",
    "Revert": "analysis.ledger",
    "RevisionState": "analysis.ledger",
    "load_ledger": "analysis.ledger",
    "revision_state": "analysis.ledger",
    # events and split
    "Events": "analysis.events",
    "LoadReport": "analysis.events",
    "load_events": "analysis.events",
    "SplitResult": "analysis.contamination",
    "ContaminationSummary": "analysis.contamination",
    "split": "analysis.contamination",
    "clean": "analysis.contamination",
    "contamination_summary": "analysis.contamination",
    "LABELS": "analysis.contamination",
    # eval baselines and the gate
    "gate": "analysis.gating",
    "GateResult": "analysis.gating",
    "MetricResult": "analysis.gating",
    "Check": "analysis.gating",
    "compare_metrics": "analysis.gating",
    "BaselineStore": "analysis.baselines",
    "Suite": "analysis.baselines",
    "SuiteConfig": "analysis.baselines",
    "MetricSpec": "analysis.baselines",
    "Reference": "analysis.baselines",
    "BaselineVersion": "analysis.baselines",
    "JournalEntry": "analysis.baselines",
    "SyncReport": "analysis.baselines",
    "SyncItem": "analysis.baselines",
    "DEFAULT_STORE": "analysis.baselines",
    "EvalResults": "analysis.evalresults",
    "load_results": "analysis.evalresults",
    "eval_set_hash": "analysis.evalresults",
}

__all__ = [
    "DEFAULT_STORE",
    "LABELS",
    "BaselineError",
    "BaselineStore",
    "BaselineVersion",
    "Check",
    "ContaminationSummary",
    "EvalResults",
    "Events",
    "EventsError",
    "Experiment",
    "GateResult",
    "JournalEntry",
    "Ledger",
    "LedgerError",
    "LoadReport",
    "MetricResult",
    "MetricSpec",
    "Phase",
    "PromptstateError",
    "Reference",
    "ResultsError",
    "Revert",
    "Revision",
    "RevisionState",
    "SplitResult",
    "StaleBaselineError",
    "Suite",
    "SuiteConfig",
    "SyncItem",
    "SyncReport",
    "Transition",
    "clean",
    "compare_metrics",
    "contamination_summary",
    "eval_set_hash",
    "gate",
    "load_events",
    "load_ledger",
    "load_results",
    "revision_state",
    "split",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from analysis.baselines import (
        DEFAULT_STORE,
        BaselineStore,
        BaselineVersion,
        JournalEntry,
        MetricSpec,
        Reference,
        Suite,
        SuiteConfig,
        SyncItem,
        SyncReport,
    )
    from analysis.contamination import (
        LABELS,
        ContaminationSummary,
        SplitResult,
        clean,
        contamination_summary,
        split,
    )
    from analysis.errors import (
        BaselineError,
        EventsError,
        LedgerError,
        PromptstateError,
        ResultsError,
        StaleBaselineError,
    )
    from analysis.evalresults import EvalResults, eval_set_hash, load_results
    from analysis.events import Events, LoadReport, load_events
    from analysis.gating import Check, GateResult, MetricResult, compare_metrics, gate
    from analysis.ledger import (
        Experiment,
        Ledger,
        Phase,
        Revert,
        Revision,
        RevisionState,
        Transition,
        load_ledger,
        revision_state,
    )
