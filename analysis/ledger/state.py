"""The state tuple of one revision at one instant, derived from the ledger's transitions."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from analysis.ledger.model import Ledger, Revision, RevisionState, Transition, _utc

__all__ = ["revision_state"]


def revision_state(ledger: Ledger, revision_id: str, at: datetime | None = None) -> RevisionState:
    """Return the state tuple of a revision at an instant (default: after the last transition).

    ``rollout_state`` is derived from the transitions, never typed in; see
    :class:`RevisionState` for its values. ``baseline_id`` stays ``None`` here; the baseline
    store fills it.
    """
    rev = ledger.revision(revision_id)
    moment = _utc(at) if at is not None else None
    relevant = [t for t in ledger.transitions if moment is None or t.at <= moment]
    live = ledger.live_revision(rev.prompt, moment)
    running = ledger._running(rev.prompt, moment)

    experiment: str | None = None
    arm: str | None = None
    # last experiment whose arms include the revision and that started by `at`
    for t in relevant:
        if t.action == "start" and t.experiment is not None:
            exp = ledger.experiments[t.experiment]
            arms = [a for a, r in exp.arms.items() if r == revision_id]
            if arms:
                experiment, arm = exp.id, arms[0]

    if running is not None and experiment == running.experiment and revision_id != live:
        share = sum(
            s
            for a, s in running.allocation.items()
            if ledger.experiments[running.experiment].arms[a] == revision_id
        )
        state = f"canary {_percent(share)}"
    elif revision_id == live:
        state = "live"
    else:
        state = _past_state(ledger, rev, relevant)
    cohort = f"{experiment}/{arm}" if experiment is not None and arm is not None else None
    return RevisionState(
        revision=revision_id,
        prompt=rev.prompt,
        at=moment if moment is not None else (relevant[-1].at if relevant else datetime.now(UTC)),
        text_sha256=rev.text_sha256,
        rollout_state=state,
        experiment=experiment,
        arm=arm,
        cohort_id=cohort,
        contract_version=rev.contract,
    )


def _past_state(ledger: Ledger, rev: Revision, relevant: list[Transition]) -> str:
    """State of a revision that is neither live nor an arm of a running experiment."""
    last: str = "not_deployed"
    live: str | None = None
    for t in relevant:
        if t.prompt != rev.prompt:
            continue
        was_live = live == rev.id
        if t.action == "deploy":
            live = t.revision
            if was_live and live != rev.id:
                last = "superseded"
        elif t.action == "promote" and t.experiment is not None and t.arm is not None:
            live = ledger.experiments[t.experiment].arms[t.arm]
            if was_live and live != rev.id:
                last = "superseded"
            elif rev.id in ledger.experiments[t.experiment].arms.values() and live != rev.id:
                last = "stopped"
        elif t.action == "rollback":
            in_exp = (
                t.experiment is not None
                and rev.id in ledger.experiments[t.experiment].arms.values()
            )
            if (in_exp or was_live) and t.to != rev.id:
                last = "rolled_back"
            live = t.to if t.to is not None else live
        elif t.action == "stop" and t.experiment is not None:
            exp = ledger.experiments[t.experiment]
            if rev.id in exp.arms.values() and last == "not_deployed":
                last = "stopped"
    return last


def _percent(share: float) -> str:
    pct = share * 100
    return f"{pct:.0f}%" if math.isclose(pct, round(pct), abs_tol=1e-9) else f"{pct:.1f}%"
