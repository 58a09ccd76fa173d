"""Decisions during a canary: guardrails, what to do next, alerts that do not page every hour.

Reads the results of :mod:`analysis.metrics` (and the ledger); is read by
:mod:`analysis.reporting` and :mod:`analysis.cli`.

- :func:`evaluate_guardrails` — non-inferiority verdicts (``ok``, ``breach``, ``inconclusive``)
  of the metrics with a ``guardrail`` margin, combined and in the latest exposure phase
  (statistics: :mod:`analysis.stats.guardrail`).
- :func:`recommend` — ``rollback``, ``ramp``, ``promote`` or ``continue``, with the commands.
- :func:`decide` — both, as :class:`Decisions`.
- :func:`update_state` — the ``--state`` file of alerts already raised.
"""

from __future__ import annotations

from analysis.decisions.alert_state import AlertItem, StateUpdate, result_alerts, update_state
from analysis.decisions.deciding import Decisions, decide
from analysis.decisions.guardrails import GuardrailRow, evaluate_guardrails
from analysis.decisions.recommendation import CommandContext, Recommendation, recommend

__all__ = [
    "AlertItem",
    "CommandContext",
    "Decisions",
    "GuardrailRow",
    "Recommendation",
    "StateUpdate",
    "decide",
    "evaluate_guardrails",
    "recommend",
    "result_alerts",
    "update_state",
]
