"""What a ledger says, at a glance: live revisions, phases, and every revision's state tuple.

:func:`ledger_overview` gathers the views ``promptstate ledger show`` prints, from the ledger
alone (``baseline_id`` stays empty; the command fills it from a baseline store with
``--store``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from analysis.errors import SCHEMA_VERSION
from analysis.ledger.model import Ledger, Phase, RevisionState, _utc
from analysis.ledger.state import revision_state

__all__ = [
    "PHASE_COLUMNS",
    "PROMPT_COLUMNS",
    "STATE_COLUMNS",
    "ExperimentPhases",
    "LedgerOverview",
    "ledger_overview",
]

#: Columns of :meth:`LedgerOverview.prompt_rows`.
PROMPT_COLUMNS: tuple[str, ...] = ("prompt", "live_revision", "running_experiment", "revisions")
#: Columns of :meth:`LedgerOverview.phase_rows`.
PHASE_COLUMNS: tuple[str, ...] = (
    "phase",
    "kind",
    "start",
    "end",
    "allocation",
    "start_action",
    "end_action",
    "served_after_end",
)
#: Columns of :meth:`LedgerOverview.state_rows`: the state tuple and where it comes from.
STATE_COLUMNS: tuple[str, ...] = (
    "revision",
    "prompt",
    "text_sha256",
    "rollout_state",
    "baseline_id",
    "cohort_id",
    "contract_version",
    "experiment",
    "arm",
)


@dataclass(frozen=True)
class ExperimentPhases:
    """One experiment and its phases (``pre``, the exposure phases, ``after_end``)."""

    experiment: str
    prompt: str
    arms: Mapping[str, str]
    control: str
    phases: tuple[Phase, ...]


@dataclass(frozen=True)
class LedgerOverview:
    """The ledger's derived views at one instant.

    Attributes:
        path: The ledger file (``None`` when parsed from a mapping).
        at: The instant the live revisions and states are read at (``None``: after the last
            transition).
        counts: Number of prompts, revisions, experiments, consumers and transitions.
        live: Prompt → its live revision at ``at`` (``None`` before its first deploy).
        running: Prompt → its experiment running at ``at``, if any.
        experiments: Every experiment and its phases, in ledger order.
        states: The state tuple of every revision at ``at``, in ledger order.
    """

    path: Path | None
    at: datetime | None
    counts: Mapping[str, int]
    live: Mapping[str, str | None]
    running: Mapping[str, str | None]
    prompt_revisions: Mapping[str, tuple[str, ...]]
    experiments: tuple[ExperimentPhases, ...]
    states: tuple[RevisionState, ...]

    def prompt_rows(self) -> list[dict[str, Any]]:
        """One row per prompt: :data:`PROMPT_COLUMNS`."""
        return [
            {
                "prompt": p,
                "live_revision": self.live[p],
                "running_experiment": self.running[p],
                "revisions": ", ".join(self.prompt_revisions[p]),
            }
            for p in self.live
        ]

    def phase_rows(self, experiment: ExperimentPhases) -> list[dict[str, Any]]:
        """One row per phase of ``experiment``: :data:`PHASE_COLUMNS` (allocation as text)."""
        return [
            {
                "phase": ph.id,
                "kind": ph.kind,
                "start": _iso(ph.start),
                "end": _iso(ph.end),
                "allocation": ", ".join(f"{a}={s:g}" for a, s in ph.allocation.items()) or None,
                "start_action": ph.start_action,
                "end_action": ph.end_action,
                "served_after_end": ph.served_after_end,
            }
            for ph in experiment.phases
        ]

    def state_rows(self) -> list[dict[str, Any]]:
        """One row per revision: :data:`STATE_COLUMNS`."""
        return [{c: getattr(s, c) for c in STATE_COLUMNS} for s in self.states]

    def to_dict(self) -> dict[str, Any]:
        """JSON shape (``schema_version`` first)::

            {"schema_version": 1, "ledger": path | null, "at": ISO | null,
             "counts": {"prompts": n, "revisions": n, "experiments": n, "consumers": n,
                        "transitions": n},
             "prompts": [{"prompt", "live_revision", "running_experiment",
                          "revisions": [ids]}],
             "experiments": [{"experiment", "prompt", "arms": {arm: revision}, "control",
                              "phases": [{"phase", "kind", "start", "end",
                                          "allocation": {arm: share}, "start_action",
                                          "end_action", "served_after_end"}]}],
             "revisions": [{"revision", "prompt", "text_sha256", "rollout_state",
                            "baseline_id", "cohort_id", "contract_version", "experiment",
                            "arm"}]}

        Times are ISO 8601 in UTC with a trailing ``Z``; missing values are ``null``.
        """
        return {
            "schema_version": SCHEMA_VERSION,
            "ledger": None if self.path is None else str(self.path),
            "at": _iso(self.at),
            "counts": dict(self.counts),
            "prompts": [
                {
                    "prompt": p,
                    "live_revision": self.live[p],
                    "running_experiment": self.running[p],
                    "revisions": list(self.prompt_revisions[p]),
                }
                for p in self.live
            ],
            "experiments": [
                {
                    "experiment": e.experiment,
                    "prompt": e.prompt,
                    "arms": dict(e.arms),
                    "control": e.control,
                    "phases": [_phase_dict(ph) for ph in e.phases],
                }
                for e in self.experiments
            ],
            "revisions": self.state_rows(),
        }


def ledger_overview(
    ledger: Ledger,
    at: datetime | None = None,
    *,
    states: Sequence[RevisionState] | None = None,
) -> LedgerOverview:
    """The phases of every experiment and the state tuple of every revision at ``at``.

    Args:
        ledger: A validated ledger.
        at: The instant (timezone-aware); default after the last transition.
        states: The revisions' states when the caller computed them (e.g. with a baseline
            store, :func:`analysis.evals.state.revision_state`); default: from the ledger alone.

    Raises:
        LedgerError: ``at`` has no timezone.
    """
    moment = None if at is None else _utc(at)
    if states is None:
        states = [revision_state(ledger, r, moment) for r in ledger.revisions]
    experiments = tuple(
        ExperimentPhases(e.id, e.prompt, dict(e.arms), e.control, ledger.phases(e.id))
        for e in ledger.experiments.values()
    )
    return LedgerOverview(
        path=ledger.path,
        at=moment,
        counts={
            "prompts": len(ledger.prompts),
            "revisions": len(ledger.revisions),
            "experiments": len(ledger.experiments),
            "consumers": len(ledger.consumers),
            "transitions": len(ledger.transitions),
        },
        live={p: ledger.live_revision(p, moment) for p in ledger.prompts},
        running={p: ledger.running_experiment(p, moment) for p in ledger.prompts},
        prompt_revisions={p: tuple(pr.revisions) for p, pr in ledger.prompts.items()},
        experiments=experiments,
        states=tuple(states),
    )


def _phase_dict(phase: Phase) -> dict[str, Any]:
    return {
        "phase": phase.id,
        "kind": phase.kind,
        "start": _iso(phase.start),
        "end": _iso(phase.end),
        "allocation": dict(phase.allocation),
        "start_action": phase.start_action,
        "end_action": phase.end_action,
        "served_after_end": phase.served_after_end,
    }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")
