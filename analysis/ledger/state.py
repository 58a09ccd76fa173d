"""The state tuple of one revision at one instant, derived from the ledger's transitions."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from analysis.ledger.model import Ledger, RevisionState, _utc

__all__ = ["revision_state"]


def revision_state(ledger: Ledger, revision_id: str, at: datetime | None = None) -> RevisionState:
    """Return the state tuple of a revision at an instant (default: after the last transition).

    ``rollout_state`` is derived from the transitions, never typed in; see
    :class:`RevisionState` for its values. ``baseline_id`` stays ``None`` here; the baseline
    store fills it. Every transition at or before ``at`` counts. The answer comes from the
    ledger's timelines (built once per ledger), in O(log n) for a ledger of n transitions.
    """
    rev = ledger.revision(revision_id)
    moment = _utc(at) if at is not None else None
    index = ledger._index
    live = ledger.live_revision(rev.prompt, moment)
    running = ledger._running(rev.prompt, moment)

    # the last experiment started by `at` that has the revision as an arm (its first such arm)
    experiment: str | None = None
    arm: str | None = None
    starts = index.starts.get(revision_id)
    if starts is not None:
        found = starts.at(moment)
        if found is not None:
            experiment, arm = found

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
        past = index.past.get(revision_id)
        state = (past.at(moment) if past is not None else None) or "not_deployed"
    cohort = f"{experiment}/{arm}" if experiment is not None and arm is not None else None
    if moment is None:
        moment = index.last_at if index.last_at is not None else datetime.now(UTC)
    return RevisionState(
        revision=revision_id,
        prompt=rev.prompt,
        at=moment,
        text_sha256=rev.text_sha256,
        rollout_state=state,
        experiment=experiment,
        arm=arm,
        cohort_id=cohort,
        contract_version=rev.contract,
    )


def _percent(share: float) -> str:
    pct = share * 100
    return f"{pct:.0f}%" if math.isclose(pct, round(pct), abs_tol=1e-9) else f"{pct:.1f}%"
