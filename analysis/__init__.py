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
    # clean per-arm metrics
    "analyze": "analysis.effects",
    "AnalysisResult": "analysis.effects",
    "EffectRow": "analysis.effects",
    "SRMRow": "analysis.effects",
    "ExclusionRow": "analysis.effects",
    "ExplainRow": "analysis.effects",
    "default_metrics": "analysis.effects",
    "Mean": "analysis.metrics",
    "Ratio": "analysis.metrics",
    "Proportion": "analysis.metrics",
    "Quantile": "analysis.metrics",
    "Metric": "analysis.metrics",
    "load_metrics": "analysis.metrics",
    "RecoveryRow": "analysis.recovery",
    "RecoverySummaryRow": "analysis.recovery",
    # rollback plan, caches, contracts
    "rollback_plan": "analysis.rollback",
    "rollback_apply": "analysis.rollback",
    "RollbackPlan": "analysis.rollback",
    "ApplyResult": "analysis.rollback",
    "ApplyStep": "analysis.rollback",
    "Leg": "analysis.rollback",
    "LegAction": "analysis.rollback",
    "RollbackError": "analysis.errors",
    "cache_impact": "analysis.cache",
    "CacheImpact": "analysis.cache",
    "ColdStartPrediction": "analysis.cache",
    "semantic_cache_writes": "analysis.cache",
    "contract_check": "analysis.contracts",
    "ContractCheck": "analysis.contracts",
    # the batch report and its plots
    "report": "analysis.reporting",
    "Report": "analysis.reporting",
    "Attention": "analysis.reporting",
    "BaselineStatus": "analysis.reporting",
    "ContractStatus": "analysis.reporting",
    "plot_metric_by_time": "analysis.plots",
    "plot_contamination": "analysis.plots",
    "plot_effects": "analysis.plots",
    "plot_recovery": "analysis.plots",
    "plot_cache": "analysis.plots",
    "plot_baseline_history": "analysis.plots",
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
    "AnalysisResult",
    "ApplyResult",
    "ApplyStep",
    "Attention",
    "BaselineError",
    "BaselineStatus",
    "BaselineStore",
    "BaselineVersion",
    "CacheImpact",
    "Check",
    "ColdStartPrediction",
    "ContaminationSummary",
    "ContractCheck",
    "ContractStatus",
    "EffectRow",
    "EvalResults",
    "Events",
    "EventsError",
    "ExclusionRow",
    "Experiment",
    "ExplainRow",
    "GateResult",
    "JournalEntry",
    "Ledger",
    "LedgerError",
    "Leg",
    "LegAction",
    "LoadReport",
    "Mean",
    "Metric",
    "MetricResult",
    "MetricSpec",
    "Phase",
    "PromptstateError",
    "Proportion",
    "Quantile",
    "Ratio",
    "RecoveryRow",
    "RecoverySummaryRow",
    "Reference",
    "Report",
    "ResultsError",
    "Revert",
    "Revision",
    "RevisionState",
    "RollbackError",
    "RollbackPlan",
    "SRMRow",
    "SplitResult",
    "StaleBaselineError",
    "Suite",
    "SuiteConfig",
    "SyncItem",
    "SyncReport",
    "Transition",
    "analyze",
    "cache_impact",
    "clean",
    "compare_metrics",
    "contamination_summary",
    "contract_check",
    "default_metrics",
    "eval_set_hash",
    "gate",
    "load_events",
    "load_ledger",
    "load_metrics",
    "load_results",
    "plot_baseline_history",
    "plot_cache",
    "plot_contamination",
    "plot_effects",
    "plot_metric_by_time",
    "plot_recovery",
    "report",
    "revision_state",
    "rollback_apply",
    "rollback_plan",
    "semantic_cache_writes",
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
    from analysis.cache import CacheImpact, ColdStartPrediction, cache_impact, semantic_cache_writes
    from analysis.contamination import (
        LABELS,
        ContaminationSummary,
        SplitResult,
        clean,
        contamination_summary,
        split,
    )
    from analysis.contracts import ContractCheck, contract_check
    from analysis.effects import (
        AnalysisResult,
        EffectRow,
        ExclusionRow,
        ExplainRow,
        SRMRow,
        analyze,
        default_metrics,
    )
    from analysis.errors import (
        BaselineError,
        EventsError,
        LedgerError,
        PromptstateError,
        ResultsError,
        RollbackError,
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
    from analysis.metrics import Mean, Metric, Proportion, Quantile, Ratio, load_metrics
    from analysis.plots import (
        plot_baseline_history,
        plot_cache,
        plot_contamination,
        plot_effects,
        plot_metric_by_time,
        plot_recovery,
    )
    from analysis.recovery import RecoveryRow, RecoverySummaryRow
    from analysis.reporting import Attention, BaselineStatus, ContractStatus, Report, report
    from analysis.rollback import (
        ApplyResult,
        ApplyStep,
        Leg,
        LegAction,
        RollbackPlan,
        rollback_apply,
        rollback_plan,
    )
