"""The building blocks of the output models in :mod:`analysis.cli._schemas`.

Every JSON output of ``promptstate`` is described by a pydantic model deriving from
:class:`Output`: its first field is ``schema_version`` (the constant
:data:`analysis.errors.SCHEMA_VERSION`), and its keys are strict (``extra="forbid"``), so that a
key added to an output without its schema makes the validating test fail. Nested objects whose
keys are fixed derive from :class:`Row` (strict as well); objects whose keys are data (arms,
metrics, leg findings) are typed ``dict[str, ...]``.

Conventions of the models (they become the JSON Schemas users read):

- every field has a ``description``;
- a field that is always present is required, ``| None`` where the output can be ``null``;
- a key that is present only in some outputs is declared with :func:`omittable` (not required,
  and never ``null`` when present).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from analysis.errors import SCHEMA_VERSION

__all__ = ["ISO_TIME", "Omitted", "Output", "Row", "SchemaVersion", "omittable", "version_field"]

if TYPE_CHECKING:
    SchemaVersion = Literal[1]
else:  # generated from the constant, so a new version changes every schema at once
    SchemaVersion = Literal[SCHEMA_VERSION]

#: Description suffix of time fields.
ISO_TIME = "ISO 8601 time in UTC"


class Row(BaseModel):
    """A nested object with fixed keys (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def version_field() -> Any:
    """The ``schema_version`` field (first key of every JSON object a command prints)."""
    return Field(
        description=(
            "Version of this output's shape; always the first key. Bumped when a key is "
            "renamed, removed or changes meaning (new keys may be added within a version only "
            "together with this schema)."
        )
    )


class Output(Row):
    """A whole JSON output: ``schema_version`` first, then the command's keys."""

    schema_version: SchemaVersion = version_field()


def omittable(description: str) -> Any:
    """A field present only in some outputs: not required, never ``null`` when present.

    Declare it as ``name: T | SkipJsonSchema[None] = omittable("...")``.
    """
    return Field(default=None, description=description, json_schema_extra=_drop_default)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# Re-exported for the model modules: ``T | Omitted`` is a key that may be absent.
Omitted = SkipJsonSchema[None]
