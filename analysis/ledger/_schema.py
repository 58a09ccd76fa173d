"""The raw ledger schema (pydantic): shape and types only.

Private to :mod:`analysis.ledger`. :func:`analysis.ledger.loading.parse_ledger` validates a
parsed file against :class:`_LedgerIn`; cross-references, time order and allocations are
checked afterwards, when the typed :class:`~analysis.ledger.model.Ledger` is built.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Action",
    "_ConsumerIn",
    "_ExperimentIn",
    "_LedgerIn",
    "_PromptIn",
    "_RevisionIn",
    "_Strict",
    "_TransitionIn",
]

Action = Literal["deploy", "start", "ramp", "rollback", "promote", "stop"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RevisionIn(_Strict):
    # `text` and `text_file` are mutually exclusive: the builder refuses both (naming the
    # revision); the JSON Schema says so too, for editors
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "not": {
                "required": ["text", "text_file"],
                "properties": {"text": {"type": "string"}, "text_file": {"type": "string"}},
            }
        },
    )

    parent: str | None = None
    contract: str | None = None
    text_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    text: Annotated[str, Field(min_length=1)] | None = None
    text_file: str | None = None
    cache_prefix: str | None = None
    description: str | None = None

    @field_validator("text", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if value == "":
            raise ValueError("the inline text is empty; write the prompt text, or remove `text`")
        return value


class _PromptIn(_Strict):
    revisions: dict[str, _RevisionIn] = Field(min_length=1)
    description: str | None = None


class _ExperimentIn(_Strict):
    prompt: str
    unit: str = "user_id"
    arms: dict[str, str] = Field(min_length=2)
    control: str | None = None
    description: str | None = None


class _ConsumerIn(_Strict):
    prompt: str
    accepts: list[str] = Field(min_length=1)
    description: str | None = None


class _TransitionIn(_Strict):
    at: datetime
    action: Action
    prompt: str | None = None
    revision: str | None = None
    experiment: str | None = None
    allocation: dict[str, float] | None = None
    to: str | None = None
    arm: str | None = None
    reason: str | None = None
    actor: str | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "time has no timezone; write it in UTC with a trailing Z, e.g. 2026-11-02T09:00:00Z"
            )
        return value.astimezone(UTC)


class _LedgerIn(_Strict):
    version: Literal[1]
    prompts: dict[str, _PromptIn] = Field(min_length=1)
    experiments: dict[str, _ExperimentIn] = Field(default_factory=dict)
    consumers: dict[str, _ConsumerIn] = Field(default_factory=dict)
    transitions: list[_TransitionIn] = Field(default_factory=list)
