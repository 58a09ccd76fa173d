"""The raw ledger schema (pydantic): shape and types only.

Private to :mod:`analysis.ledger`. :func:`analysis.ledger.loading.parse_ledger` validates a
parsed file against :class:`_LedgerIn`; cross-references, time order and allocations are
checked afterwards, when the typed :class:`~analysis.ledger.model.Ledger` is built.

Types are **strict**, so the loader accepts exactly what the JSON Schema (``promptstate ledger
schema``) says: text is text (never a number, a boolean or bytes), a share is a number (an
integer or a float, never a boolean or quoted text such as ``'0.8'``), ``version`` is the
integer ``1`` (not ``true`` or ``1.0``), and ``at`` is an ISO 8601 time with a zone written as
text — or a ``datetime`` when a caller passes data parsed by a YAML loader that makes
timestamps ``datetime`` objects — never an epoch number (``1793491200`` or ``'1793491200'``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

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


#: The start of an ISO 8601 date-time: a date, ``T`` (or a space), hours and minutes.
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _RevisionIn(_Strict):
    # `text` and `text_file` are mutually exclusive: the builder refuses both (naming the
    # revision); the JSON Schema says so too, for editors
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
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

    @field_validator("at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        """ISO 8601 text (or a ``datetime``); an epoch number, quoted or not, is refused."""
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise ValueError(
                f"expected a time written as ISO 8601 text with a zone, e.g. "
                f"2026-11-02T09:00:00Z, not {_kind(value)} {value!r}"
                + ("; an epoch number is not a time" if _is_number(value) else "")
            )
        if not _ISO_START.match(value.strip()):
            raise ValueError(
                f"{value!r} is not an ISO 8601 time; write it as 2026-11-02T09:00:00Z (UTC) or "
                "with an offset, e.g. 2026-11-02T10:00:00+01:00"
            )
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{value!r} is not a valid ISO 8601 time; write it as 2026-11-02T09:00:00Z"
            ) from None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "time has no timezone; write it in UTC with a trailing Z, e.g. 2026-11-02T09:00:00Z"
            )
        return value.astimezone(UTC)


class _LedgerIn(_Strict):
    version: Literal[1] = Field(json_schema_extra={"type": "integer"})
    prompts: dict[str, _PromptIn]
    experiments: dict[str, _ExperimentIn] = Field(default_factory=dict)
    consumers: dict[str, _ConsumerIn] = Field(default_factory=dict)
    transitions: list[_TransitionIn] = Field(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if type(value) is not int:  # `true` and `1.0` equal 1 in Python; the schema says integer
            raise ValueError(
                f"expected the integer 1 (the only schema version), not {_kind(value)} {value!r}"
            )
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """What a parsed value is, for messages: ``a boolean``, ``text``, ``a number``..."""
    if isinstance(value, bool):
        return "the boolean"
    if _is_number(value):
        return "the number"
    if isinstance(value, str):
        return "the text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    return f"a {type(value).__name__}"
