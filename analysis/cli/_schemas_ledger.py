"""Output models of ``ledger validate``, ``ledger record``, ``ledger show`` and ``state``.

See :mod:`analysis.cli._schemas_base` for the conventions; the shapes are those of
:meth:`analysis.ledger.recording.RecordResult.to_dict`,
:meth:`analysis.ledger.overview.LedgerOverview.to_dict` and ``promptstate state --format json``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from analysis.cli._schemas_base import ISO_TIME, Omitted, Output, Row, omittable
from analysis.ledger._schema import Action

__all__ = [
    "LedgerCounts",
    "LedgerRecordOutput",
    "LedgerShowOutput",
    "LedgerValidateOutput",
    "RecordedTransition",
    "RevisionStateRow",
    "StateOutput",
]

#: ``rollout_state`` values (:class:`analysis.ledger.model.RevisionState`).
ROLLOUT_STATE_PATTERN = r"^(live|rolled_back|stopped|superseded|not_deployed|canary [0-9.]+%)$"
_ROLLOUT_STATE = (
    "How the revision is served: live, 'canary N%' (an arm of a running experiment that is not "
    "the live revision; its share of the current allocation), rolled_back, stopped, superseded "
    "or not_deployed; derived from the ledger's transitions."
)
_ISO_Z = ISO_TIME + " with a trailing Z"


class LedgerCounts(Row):
    """How many entries of each kind the ledger holds."""

    prompts: int = Field(ge=0, description="Number of prompts.")
    revisions: int = Field(ge=0, description="Number of revisions, over every prompt.")
    experiments: int = Field(ge=0, description="Number of experiments.")
    consumers: int = Field(ge=0, description="Number of downstream consumers.")
    transitions: int = Field(ge=0, description="Number of transitions.")


class LedgerValidateOutput(Output):
    """``promptstate ledger validate LEDGER --format json``: the ledger is valid (exit 0).

    An invalid ledger prints nothing on stdout: one line on stderr and exit 2.
    """

    ledger: str = Field(description="The ledger file, as given on the command line.")
    valid: Literal[True] = Field(description="Always true: an invalid ledger exits 2 instead.")
    counts: LedgerCounts = Field(description="Entries of each kind in the ledger.")


class RecordedTransition(Row):
    """One ledger transition entry, as written into the ledger file (absent keys omitted)."""

    at: str = Field(description="When it took effect: " + _ISO_Z + ".")
    action: Action = Field(description="The transition's action.")
    prompt: str | Omitted = omittable("Prompt id (deploy, prompt-level rollback).")
    revision: str | Omitted = omittable("Revision deployed (deploy).")
    experiment: str | Omitted = omittable("Experiment id (start, ramp, promote, stop, rollback).")
    allocation: dict[str, float] | Omitted = omittable(
        "Arm → share of units, summing to 1 (start, ramp)."
    )
    to: str | Omitted = omittable("Revision restored (rollback).")
    arm: str | Omitted = omittable("Arm whose revision becomes live (promote).")
    reason: str | Omitted = omittable("Why (free text).")
    actor: str | Omitted = omittable("Who did it (free text).")


class LedgerRecordOutput(Output):
    """``promptstate ledger record ACTION --ledger L --format json``: the transition recorded.

    ``record revision`` and ``record consumer NAME`` declare without a transition: ``index``
    and ``transition`` are null, ``declared`` names what was declared (empty, and ``written``
    false, when it was declared already with the same fields).
    """

    ledger: str = Field(description="The ledger file, as given with --ledger.")
    written: bool = Field(description="Whether the file was replaced (false with --dry-run).")
    dry_run: bool = Field(description="Whether this was a --dry-run (nothing written).")
    index: int | None = Field(
        ge=0, description="Position of the new entry in `transitions` (null: a declaration)."
    )
    transition: RecordedTransition | None = Field(
        description="The entry as written in the file (null: `record revision`/`consumer`)."
    )
    declared: list[str] = Field(
        description="Header entries declared in the same write, e.g. "
        "'prompts.support-assistant.revisions.r43', 'experiments.exp-18' or "
        "'consumers.ticket-router' (empty when only the transition was appended, or the "
        "declaration existed already)."
    )
    diff: str | Omitted = omittable(
        "With --dry-run only: the change to the file as a unified diff."
    )


class PromptRow(Row):
    """One prompt of the ledger at the instant read."""

    prompt: str = Field(description="Prompt id.")
    live_revision: str | None = Field(description="Revision served to everyone, if any.")
    running_experiment: str | None = Field(description="Experiment running on it, if any.")
    revisions: list[str] = Field(description="Its revisions, in the ledger's order.")


class PhaseRow(Row):
    """One phase of an experiment: 0 before the start, 1..k exposure, k+1 after the end."""

    phase: int = Field(ge=0, description="Phase number.")
    kind: Literal["pre", "exposure", "after_end"] = Field(description="Kind of phase.")
    start: str | None = Field(description="Start (inclusive), " + _ISO_Z + "; null for pre.")
    end: str | None = Field(description="End (exclusive), " + _ISO_Z + "; null for after_end.")
    allocation: dict[str, float] = Field(
        description="Arm → share of units during the phase (empty outside exposure)."
    )
    start_action: Action | None = Field(description="Transition that starts the phase.")
    end_action: Action | None = Field(description="Transition that ends the phase.")
    served_after_end: str | None = Field(
        description="after_end: the revision everyone is served after the end; else null."
    )


class ExperimentRow(Row):
    """One experiment and its phases."""

    experiment: str = Field(description="Experiment id.")
    prompt: str = Field(description="Its prompt.")
    arms: dict[str, str] = Field(description="Arm → revision served in that arm.")
    control: str = Field(description="The control arm.")
    phases: list[PhaseRow] = Field(description="Its phases, in time order.")


class RevisionStateRow(Row):
    """The state tuple of one revision: (text, rollout_state, baseline_id, cohort_id, contract)."""

    revision: str = Field(description="Revision id.")
    prompt: str = Field(description="Its prompt.")
    text_sha256: str | None = Field(
        description="SHA-256 of its text (null when the ledger does not record it)."
    )
    rollout_state: str = Field(pattern=ROLLOUT_STATE_PATTERN, description=_ROLLOUT_STATE)
    baseline_id: str | None = Field(
        description="Reference eval baseline anchored to it, '<suite>/<version>' (null without "
        "a baseline store, or when none is anchored to it)."
    )
    cohort_id: str | None = Field(
        description="'<experiment>/<arm>' of the units it was served to, if any."
    )
    contract_version: str | None = Field(description="Output-schema version it emits.")
    experiment: str | None = Field(
        description="The running experiment serving it, or the last one that did."
    )
    arm: str | None = Field(description="Its arm in that experiment.")


class LedgerShowOutput(Output):
    """``promptstate ledger show [LEDGER] --format json``: phases and state tuples."""

    ledger: str | None = Field(description="The ledger file read.")
    at: str | None = Field(
        description="The instant read (--at), " + _ISO_Z + "; null: after the last transition."
    )
    counts: LedgerCounts = Field(description="Entries of each kind in the ledger.")
    prompts: list[PromptRow] = Field(description="Every prompt: live revision, experiment.")
    experiments: list[ExperimentRow] = Field(description="Every experiment and its phases.")
    revisions: list[RevisionStateRow] = Field(description="Every revision's state tuple.")


class StateOutput(Output):
    """``promptstate state REVISION --format json``: one revision's state tuple."""

    revision: str = Field(description="Revision id.")
    prompt: str = Field(description="Its prompt.")
    at: str = Field(description="The instant the state is read at, " + _ISO_Z + ".")
    text_sha256: str | None = Field(
        description="SHA-256 of its text (null when the ledger does not record it)."
    )
    rollout_state: str = Field(pattern=ROLLOUT_STATE_PATTERN, description=_ROLLOUT_STATE)
    baseline_id: str | None = Field(
        description="Reference eval baseline anchored to it, '<suite>/<version>' (null when "
        "no store is found or none is anchored to it)."
    )
    cohort_id: str | None = Field(
        description="'<experiment>/<arm>' of the units it was served to, if any."
    )
    contract_version: str | None = Field(description="Output-schema version it emits.")
    experiment: str | None = Field(
        description="The running experiment serving it, or the last one that did."
    )
    arm: str | None = Field(description="Its arm in that experiment.")
