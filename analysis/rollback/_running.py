"""Running the actions file within ``rollback apply`` (private): payload contexts, contract
notices while apply refuses, and the exit-1 error of failed actions.

See :mod:`analysis.rollback._journal` for the journal and its guarantees.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.errors import RollbackIncompleteError
from analysis.rollback._journal import Journal, check_reachable, journal_path, run_actions

if TYPE_CHECKING:
    from analysis.rollback._actions import Action, ActionsConfig
    from analysis.rollback._journal import ActionResult
    from analysis.rollback._kinds import ActionContext
    from analysis.rollback.planning import RollbackPlan

__all__ = ["contexts", "notify_contracts", "raise_on_failures"]


def raise_on_failures(
    results: Sequence[ActionResult], done_steps: Sequence[str], journal: Journal
) -> None:
    """Exit 1 naming the failed actions when one failed; the others' results are journalled."""
    failed = [r for r in results if r.status == "failed"]
    if not failed:
        return
    done = [*done_steps, *(r.action for r in results if r.status in ("done", "unchanged"))]
    why = "; ".join(f"{r.action} ({r.kind}, {r.target}): {r.detail}" for r in failed)
    raise RollbackIncompleteError(
        f"rollback apply: {len(failed)} action(s) failed: {why}. Done: "
        f"{', '.join(done) or 'nothing'} (recorded in {journal.path}). Fix the cause and re-run "
        f"the same command: it retries {', '.join(r.action for r in failed)} and repeats "
        "nothing that is done",
        done=tuple(done),
        failed=", ".join(r.action for r in failed),
    )


def contexts(
    plan: RollbackPlan,
    config: ActionsConfig,
    ident: str,
    out: Path,
    exports: Sequence[tuple[str, str, bytes]],
) -> Callable[[Action], ActionContext]:
    """The context of each action: its payload (the leg's JSON) and idempotency key."""
    from analysis.rollback._actions import hash_unit, payload
    from analysis.rollback._kinds import ActionContext

    plan_dict = plan.to_dict()
    plan_dict["experiment"] = plan.experiment
    at = plan.at.isoformat().replace("+00:00", "Z")
    files = {name: (out / filename, data) for name, filename, data in exports}

    def make(action: Action) -> ActionContext:
        extra: dict[str, Any] = {}
        if action.leg == "cohort":
            extra["exports"] = {
                "units": str(files["cohort_units"][0]) if "cohort_units" in files else None,
                "conversations": str(files["cohort_conversations"][0])
                if "cohort_conversations" in files
                else None,
            }
            how = action.config.get("include_units")
            if how is not None and "cohort_units" in files and plan._target is not None:
                units = _first_column(files["cohort_units"][1])
                extra["unit_ids"] = units if how == "plain" else [hash_unit(u) for u in units]
                extra["unit_ids_form"] = how
        body = payload(plan_dict, action.leg, at=at, apply=ident, extra=extra)
        return ActionContext(
            leg=action.leg,
            index=action.index,
            apply_id=ident,
            idempotency_key=f"{ident}#{action.leg}.{action.index}",
            payload=body,
            base_dir=config.base_dir,
            restored_text=config.restored_text,
        )

    return make


def _first_column(csv_bytes: bytes) -> list[str]:
    """The first column of a CSV export (the unit ids of ``cohort_units.csv``)."""
    import csv
    import io

    rows = csv.reader(io.StringIO(csv_bytes.decode("utf-8")))
    next(rows, None)
    return [row[0] for row in rows if row]


def notify_contracts(path: Path, plan: RollbackPlan) -> str:
    """Send the ``contracts`` actions as notices while apply refuses for a confirmation.

    A notice is sent once per state of the contracts findings: its key is
    ``<prompt>:<from>:<to>:notice-<hash of the findings>#contracts.<index>``, journalled like
    any action. Returns a sentence for the refusal message.
    """
    import hashlib

    config = plan._actions
    if config is None or not config.leg("contracts"):
        return ""
    findings = json.dumps(plan.leg("contracts").to_dict()["findings"], sort_keys=True)
    digest = hashlib.sha256(findings.encode()).hexdigest()[:16]
    ident = f"{plan.prompt}:{'+'.join(plan.reverted)}:{plan.to}:notice-{digest}"
    journal = Journal(journal_path(path))
    context = contexts(plan, config, ident, Path("."), [])
    mine = config.leg("contracts")
    check_reachable(config, mine, context)
    results = run_actions(config, mine, journal, apply=ident, context=context, dry_run=False)
    sent = [r.action for r in results if r.status == "done"]
    before = [r.action for r in results if r.status == "unchanged"]
    failed = [f"{r.action} ({r.detail})" for r in results if r.status == "failed"]
    parts = []
    if sent:
        parts.append(f"notified the contract owners ({', '.join(sent)})")
    if before:
        parts.append(f"already notified of these findings ({', '.join(before)})")
    if failed:
        parts.append(f"the notice failed: {'; '.join(failed)}")
    return "; " + "; ".join(parts) if parts else ""
