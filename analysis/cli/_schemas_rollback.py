"""Output models of ``rollback plan`` and ``rollback apply`` (and the ``plan.json`` it writes).

See :mod:`analysis.cli._schemas_base` for the conventions; the shapes are those of
:meth:`analysis.rollback.planning.RollbackPlan.to_dict` and
:meth:`analysis.rollback.applying.ApplyResult.to_dict`. A leg's ``findings`` depend on the leg
(``docs/rollback.md``) and are typed as an open object.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from analysis.cli._schemas_base import Omitted, Output, Row, omittable

__all__ = ["ApplyStepRow", "LegRow", "RollbackApplyOutput", "RollbackPlanOutput"]

LegStatus = Literal["ok", "action", "needs-confirmation"]
StepStatus = Literal["applied", "unchanged", "would-apply", "pending", "skipped"]
ActionStatus = Literal["done", "unchanged", "would-run", "failed"]
ActionLeg = Literal["text", "caches", "cohort", "contracts", "any"]


class LegActionRow(Row):
    """One thing a leg asks to be done."""

    kind: str = Field(
        description="Short machine name: append-transition, serve-text, expire-prefix, "
        "warm-cache, expire-keys, export-cohort, truncate-histories, hold-out, check-store (no "
        "baseline store was found), pin, reanchor, confirm, notify or run-action (an action of "
        "the --actions file)."
    )
    description: str = Field(description="What to do, in words.")
    automatic: bool = Field(description="Whether `rollback apply` performs it.")
    command: str | Omitted = omittable("A command to run, when the action is not automatic.")


class LegRow(Row):
    """One leg of the rollback."""

    status: LegStatus = Field(
        description="ok (nothing to do), action (actions to take) or needs-confirmation (a "
        "person must confirm before apply proceeds; the plan exits 1)."
    )
    findings: dict[str, Any] = Field(
        description="What the leg found; the keys depend on the leg (docs/rollback.md)."
    )
    actions: list[LegActionRow] = Field(description="What to do, in order.")


class Legs(Row):
    """The five legs of a rollback."""

    text: LegRow = Field(description="The prompt text: the ledger transition to append.")
    caches: LegRow = Field(description="Prompt-cache prefixes and semantic-cache entries.")
    cohort: LegRow = Field(
        description="Units and conversations exposed to the reverted revision, their histories "
        "and the residual effect."
    )
    baseline: LegRow = Field(description="Eval baselines anchored to the reverted revision.")
    contracts: LegRow = Field(
        description="Downstream consumers and the restored revision's output contract."
    )


class ConfiguredActionRow(Row):
    """One action of the --actions file (secrets redacted)."""

    name: str = Field(description="'<leg>[<index>]', as in messages and the apply journal.")
    leg: ActionLeg = Field(description="The leg it runs with.")
    index: int = Field(ge=0, description="Its position in the leg.")
    kind: str = Field(description="The action kind (docs/rollback.md).")
    target: str = Field(description="The resolved target in words, secrets redacted.")


class RollbackPlanOutput(Output):
    """``promptstate rollback plan --format json`` (and ``plan.json`` written by apply).

    Exit 1 when a leg needs confirmation, else 0.
    """

    prompt: str = Field(description="The prompt rolled back.")
    from_: str | list[str] = Field(
        alias="from",
        description="The reverted revision (a list when an experiment reverts several arms).",
    )
    to: str = Field(description="The revision every unit is served afterwards.")
    legs: Legs = Field(description="The five legs: status, findings, actions.")
    actions: list[ConfiguredActionRow] = Field(
        description="The actions file's actions in run order (empty without --actions)."
    )


class ApplyStepRow(Row):
    """One built-in step of ``rollback apply``."""

    name: str = Field(
        description="ledger, baseline:<suite>, cohort_units, cohort_conversations, "
        "semantic_cache_expiry or plan."
    )
    status: StepStatus = Field(
        description="applied (changed now), unchanged (already in place), would-apply (dry "
        "run), pending (needs a person: see detail; exit 1) or skipped."
    )
    detail: str = Field(description="What was (or would be) done.")
    path: str | None = Field(description="The file written, if any.")


class ActionResultRow(Row):
    """What happened to one configured action."""

    action: str = Field(description="'<leg>[<index>]'.")
    kind: str = Field(description="The action kind.")
    target: str = Field(description="The resolved target, secrets redacted.")
    key: str = Field(description="The Idempotency-Key sent with it.")
    status: ActionStatus = Field(
        description="done (ran now), unchanged (done by an earlier apply), would-run (dry run) "
        "or failed."
    )
    detail: str = Field(description="What was done, or why it failed (secrets redacted).")


class RollbackApplyOutput(Output):
    """``promptstate rollback apply --format json``: what apply did (or would do).

    Exit 1 when a dry run shows apply would refuse, or a step is pending; else 0.
    """

    apply_id: str = Field(description="'<prompt>:<from>:<to>:<transition time>'.")
    dry_run: bool = Field(description="Whether nothing was written (--dry-run).")
    changed: bool = Field(description="Whether anything was (or would be) written.")
    already_recorded: bool = Field(description="Whether the ledger already held the rollback.")
    refused: list[str] = Field(
        description="Consumers whose confirmation is missing (dry run only; a real apply "
        "refuses with exit 1 and prints no JSON)."
    )
    steps: list[ApplyStepRow] = Field(description="Each built-in step and its status.")
    actions: list[ActionResultRow] = Field(
        description="Each configured action's result (empty without --actions)."
    )
    journal: str | None = Field(description="The apply journal file (null without --actions).")
    ledger_diff: str = Field(description="Unified diff of the ledger change (empty: unchanged).")
    plan: RollbackPlanOutput = Field(description="The plan that was applied.")
