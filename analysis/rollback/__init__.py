"""Rollback over the five legs of a revision: plan, apply, cache impact, contracts.

Modules:

- :mod:`~analysis.rollback.planning` — :func:`rollback_plan` and :class:`RollbackPlan`.
- :mod:`~analysis.rollback.applying` — :func:`rollback_apply`.
- :mod:`~analysis.rollback.cache` — :func:`cache_impact`: prompt-cache and semantic-cache
  impact of a revision change.
- :mod:`~analysis.rollback.contracts` — :func:`contract_check`: downstream output contracts.
- :class:`ActionKind`, :class:`ActionContext`, :class:`ActionFailed` — the interface of an action
  kind of the actions file (plugins register under the entry point group
  ``promptstate.actions``; see ``docs/rollback.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis._lazy import attach

_EXPORTS: dict[str, str] = {
    "ActionContext": "._kinds",
    "ActionFailed": "._kinds",
    "ActionKind": "._kinds",
    "RollbackPlan": ".planning",
    "rollback_plan": ".planning",
    "ApplyResult": ".applying",
    "ApplyStep": ".applying",
    "rollback_apply": ".applying",
    "Leg": "._legs",
    "LegAction": "._legs",
    "CacheImpact": ".cache",
    "ColdStartPrediction": ".cache",
    "CurveRow": ".cache",
    "RevisionCacheRow": ".cache",
    "WarmupRow": ".cache",
    "cache_impact": ".cache",
    "semantic_cache_writes": ".cache",
    "CompatibilityRow": ".contracts",
    "ContractCheck": ".contracts",
    "ParseFailureRow": ".contracts",
    "contract_check": ".contracts",
}

__all__ = [
    "ActionContext",
    "ActionFailed",
    "ActionKind",
    "ApplyResult",
    "ApplyStep",
    "CacheImpact",
    "ColdStartPrediction",
    "CompatibilityRow",
    "ContractCheck",
    "CurveRow",
    "Leg",
    "LegAction",
    "ParseFailureRow",
    "RevisionCacheRow",
    "RollbackPlan",
    "WarmupRow",
    "cache_impact",
    "contract_check",
    "rollback_apply",
    "rollback_plan",
    "semantic_cache_writes",
]

__getattr__, __dir__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from analysis.rollback._kinds import (
        ActionContext,
        ActionFailed,
        ActionKind,
    )
    from analysis.rollback._legs import (
        Leg,
        LegAction,
    )
    from analysis.rollback.applying import (
        ApplyResult,
        ApplyStep,
        rollback_apply,
    )
    from analysis.rollback.cache import (
        CacheImpact,
        ColdStartPrediction,
        CurveRow,
        RevisionCacheRow,
        WarmupRow,
        cache_impact,
        semantic_cache_writes,
    )
    from analysis.rollback.contracts import (
        CompatibilityRow,
        ContractCheck,
        ParseFailureRow,
        contract_check,
    )
    from analysis.rollback.planning import (
        RollbackPlan,
        rollback_plan,
    )
