"""Output models of ``promptstate baseline list|show|history|verify|sync --format json``.

See :mod:`analysis.cli._schemas_base` for the conventions; the shapes are those of
``analysis/cli/baseline.py`` and of :mod:`analysis.evals.models` (``BaselineVersion.to_dict``
is the content of a version's ``meta.json``, ``JournalEntry.to_dict`` a journal line,
``VerifyReport.to_dict``, ``SyncReport.to_dict``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from analysis.cli._schemas_base import ISO_TIME, Omitted, Output, Row, omittable

__all__ = [
    "BaselineHistoryOutput",
    "BaselineListOutput",
    "BaselineShowOutput",
    "BaselineSyncOutput",
    "BaselineVerifyOutput",
    "BaselineVersionOutput",
]

Policy = Literal["pin", "reanchor"]
JournalAction = Literal["init", "anchor", "reanchor", "pin", "unpin", "revert"]
SyncStatus = Literal["applied", "noop", "already", "pending"]
FindingKind = Literal["invalid", "config", "note"]
_SHA = r"^[0-9a-f]{64}$"


class ReferenceRow(Row):
    """The suite's reference: the version a gate grades against."""

    version: str | None = Field(description="Version id, e.g. v0001 (null before any anchor).")
    revision: str | None = Field(description="Revision the version was anchored to.")
    pinned: bool = Field(description="Whether the reference is pinned (sync leaves it alone).")


class SuiteRow(Row):
    """One suite of the store."""

    suite: str = Field(description="Suite name.")
    prompt: str = Field(description="The prompt it evaluates.")
    grader: str = Field(description="Grader id of its scores.")
    on_revert: Policy = Field(
        description="What sync does when the reference's revision is rolled back: pin the "
        "restored revision's version, or reanchor."
    )
    reference: str | None = Field(description="Reference version id.")
    revision: str | None = Field(description="The reference's revision.")
    pinned: bool = Field(description="Whether the reference is pinned.")
    versions: int = Field(ge=0, description="Number of versions.")


class BaselineListOutput(Output):
    """``promptstate baseline list --format json``: the suites and their references."""

    store: str = Field(description="The store directory.")
    suites: list[SuiteRow] = Field(description="One row per suite.")


class MetricSpecRow(Row):
    """One metric of a suite config."""

    kind: Literal["binary", "continuous"] = Field(description="Score kind.")
    direction: Literal["higher", "lower"] = Field(description="Which direction is better.")
    margin: float = Field(description="Non-inferiority margin of the gate.")


class SuiteConfigRow(Row):
    """A suite's config in its file schema (suite.yaml)."""

    prompt: str = Field(description="The prompt it evaluates.")
    grader: str = Field(description="Grader id.")
    on_revert: Policy = Field(description="pin or reanchor.")
    metrics: dict[str, MetricSpecRow] = Field(description="Metric name → its spec.")
    primary: str | Omitted = omittable("Primary metric, when not the first.")
    ledger: str | Omitted = omittable("The ledger, relative to the store, if recorded.")


class VersionFields(Row):
    """The fields of a baseline version (its meta.json)."""

    version: str = Field(description="Version id (v0001, ...).")
    seq: int = Field(ge=1, description="Its number.")
    suite: str = Field(description="Suite name.")
    revision: str = Field(description="Revision the scores were produced by.")
    eval_set_sha256: str = Field(pattern=_SHA, description="Hash of the distinct example ids.")
    eval_set_hash_scheme: Literal[1, 2] = Field(description="How eval_set_sha256 was computed.")
    grader: str = Field(description="Grader id of the scores.")
    parent: str | None = Field(description="The reference version when it was created.")
    created_at: str = Field(description=f"Creation time, {ISO_TIME}.")
    actor: str = Field(description="Who anchored it.")
    reason: str = Field(description="Why.")
    scores_file: Literal["scores.parquet"] = Field(description="The scores file of the version.")
    scores_sha256: str = Field(pattern=_SHA, description="SHA-256 of the scores file.")
    n_examples: int = Field(ge=0, description="Distinct examples.")
    n_rows: int = Field(ge=0, description="Scored samples.")
    max_samples: int = Field(ge=0, description="Largest number of samples of one example.")
    summary: dict[str, float] = Field(description="Metric → mean over examples.")
    source: str = Field(description="The results file it was anchored from.")


class BaselineShowOutput(Output):
    """``promptstate baseline show SUITE --format json``: config, reference, versions."""

    suite: str = Field(description="Suite name.")
    config: SuiteConfigRow = Field(description="The suite's config.")
    reference: ReferenceRow = Field(description="The current reference.")
    versions: list[VersionFields] = Field(description="Every version, oldest first.")


class BaselineVersionOutput(VersionFields, Output):
    """``promptstate baseline show SUITE --version V --format json``: one version's meta.json."""


class RecordedMetaRow(Row):
    """What a creating journal entry records of its version's meta.json."""

    grader: str = Field(description="Grader id of the scores.")
    eval_set_sha256: str = Field(pattern=_SHA, description="Hash of the distinct example ids.")
    eval_set_hash_scheme: Literal[1, 2] = Field(description="How eval_set_sha256 was computed.")
    parent: str | None = Field(description="The reference version when it was created.")
    n_examples: int = Field(ge=0, description="Distinct examples.")
    n_rows: int = Field(ge=0, description="Scored samples.")
    max_samples: int = Field(ge=0, description="Largest number of samples of one example.")
    summary: dict[str, float] = Field(description="Metric → mean over examples.")
    sha256: str = Field(
        pattern=_SHA, description="SHA-256 of the whole meta.json in canonical JSON."
    )


class JournalEntryRow(Row):
    """One line of the suite's journal (absent fields omitted)."""

    seq: int = Field(ge=1, description="1-based position in the journal.")
    at: str = Field(description=f"When, {ISO_TIME}.")
    actor: str = Field(description="Who.")
    action: JournalAction = Field(description="What was done.")
    reason: str = Field(description="Why (free text).")
    reference: ReferenceRow = Field(description="The reference after the action.")
    version: str | Omitted = omittable("The version created or targeted.")
    revision: str | Omitted = omittable("Its revision.")
    scores_sha256: str | Omitted = omittable("Hash of the created version's scores.")
    ledger_key: str | Omitted = omittable(
        "'<transition index>:<reverted>' of a revert that follows the ledger."
    )
    reverted: str | Omitted = omittable("Reverted revision (revert).")
    restored: str | Omitted = omittable("Restored revision (revert).")
    policy: Policy | Omitted = omittable("pin or reanchor (revert).")
    created: Literal[True] | Omitted = omittable("Present (true) when the action created it.")
    meta: RecordedMetaRow | Omitted = omittable(
        "The created version's metadata that matters, for baseline verify (entries written "
        "before it was recorded have none)."
    )


class BaselineHistoryOutput(Output):
    """``promptstate baseline history SUITE --format json``: the journal, oldest first."""

    suite: str = Field(description="Suite name.")
    entries: list[JournalEntryRow] = Field(description="Every journal entry, oldest first.")


class VerifiedSuiteRow(Row):
    """What verify checked in one suite."""

    suite: str = Field(description="Suite name.")
    status: Literal["ok", "invalid", "config"] = Field(
        description="ok, or the worst finding's kind."
    )
    entries: int = Field(ge=0, description="Journal entries checked.")
    versions: int = Field(ge=0, description="Versions checked.")


class FindingRow(Row):
    """One finding of verify."""

    suite: str = Field(description="Suite name.")
    kind: FindingKind = Field(
        description="invalid (a stored baseline disagrees with itself: exit 3), config (the "
        "suite config is invalid: exit 2) or note."
    )
    path: str = Field(description="The file concerned.")
    problem: str = Field(description="What is wrong and what to do.")


class BaselineVerifyOutput(Output):
    """``promptstate baseline verify [SUITE] --format json``: meta vs journal vs scores.

    Exit 3 when a stored baseline is invalid, 2 when a suite config is, else 0.
    """

    exit_code: Literal[0, 2, 3] = Field(description="The command's exit code.")
    suites: list[VerifiedSuiteRow] = Field(description="One row per suite checked.")
    findings: list[FindingRow] = Field(description="Every finding.")


class SyncItemRow(Row):
    """What sync did for one ledger revert of one suite."""

    suite: str = Field(description="Suite name.")
    ledger_key: str = Field(description="'<transition index>:<reverted>'.")
    at: str = Field(description=f"Time of the rollback, {ISO_TIME}.")
    reverted: str = Field(description="Reverted revision.")
    restored: str = Field(description="Restored revision.")
    policy: Policy = Field(description="The suite's on_revert.")
    status: SyncStatus = Field(
        description="applied (reference changed), noop (recorded; the reference was not the "
        "reverted revision's), already (applied before) or pending (needs fresh results: exit 3)."
    )
    version: str | None = Field(description="Reference version after the action.")
    message: str = Field(description="What happened, in words.")
    command: str | None = Field(description="The command to run when pending.")


class BaselineSyncOutput(Output):
    """``promptstate baseline sync [SUITE] --format json``: the ledger's reverts applied.

    Exit 3 when a revert is pending (a re-anchor needs fresh results), else 0.
    """

    items: list[SyncItemRow] = Field(description="One row per suite × ledger revert.")
    pending: int = Field(ge=0, description="Number of pending items.")
