"""The JSON outputs of ``promptstate``: one pydantic model each, and their JSON Schemas.

:data:`OUTPUTS` maps an output's name (``rollback-plan``, ``ledger-show``, ...) to the model
describing it; :func:`schema_text` renders a model as the JSON Schema (draft 2020-12) committed
as ``docs/schemas/<name>.schema.json`` (``promptstate schema --out docs/schemas`` regenerates
them; ``tests/test_output_schemas.py`` checks that the committed files equal what this module
generates and that every command's output validates against its file).

Every output is an object whose first key is ``"schema_version"``
(:data:`analysis.errors.SCHEMA_VERSION`). Its top-level keys are strict (no other key allowed),
so a change to an output's shape that is not reflected here fails the test. The models are in
``_schemas_*.py`` by area; conventions in :mod:`analysis.cli._schemas_base`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from analysis.cli._schemas_baseline import (
    BaselineHistoryOutput,
    BaselineListOutput,
    BaselineShowOutput,
    BaselineSyncOutput,
    BaselineVerifyOutput,
    BaselineVersionOutput,
)
from analysis.cli._schemas_ledger import (
    LedgerRecordOutput,
    LedgerShowOutput,
    LedgerValidateOutput,
    StateOutput,
)
from analysis.cli._schemas_report import ReportFileOutput, ReportMultiFileOutput, ReportOutput
from analysis.cli._schemas_results import (
    AnalyzeMultiOutput,
    AnalyzeOutput,
    GateOutput,
    PlanOutput,
    SplitOutput,
)
from analysis.cli._schemas_rollback import RollbackApplyOutput, RollbackPlanOutput
from analysis.errors import SCHEMA_VERSION

__all__ = ["DRAFT", "OUTPUTS", "SCHEMA_DIR", "file_name", "schema_of", "schema_text", "summary"]

#: The JSON Schema dialect of the generated files.
DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: Where the committed schemas live in the repository (``$id`` of each is ``<dir>/<file>``).
SCHEMA_DIR = "docs/schemas"

#: Output name → the pydantic model of that JSON output (its docstring names the command).
OUTPUTS: dict[str, type[BaseModel]] = {
    "analyze": AnalyzeOutput,
    "analyze-multi": AnalyzeMultiOutput,
    "baseline-history": BaselineHistoryOutput,
    "baseline-list": BaselineListOutput,
    "baseline-show": BaselineShowOutput,
    "baseline-show-version": BaselineVersionOutput,
    "baseline-sync": BaselineSyncOutput,
    "baseline-verify": BaselineVerifyOutput,
    "gate": GateOutput,
    "ledger-record": LedgerRecordOutput,
    "ledger-show": LedgerShowOutput,
    "ledger-validate": LedgerValidateOutput,
    "plan": PlanOutput,
    "rollback-apply": RollbackApplyOutput,
    "rollback-plan": RollbackPlanOutput,
    "report": ReportOutput,
    "report-json": ReportFileOutput,
    "report-json-multi": ReportMultiFileOutput,
    "split": SplitOutput,
    "state": StateOutput,
}


def file_name(name: str) -> str:
    """The schema file of output ``name``: ``<name>.schema.json``."""
    return f"{name}.schema.json"


def schema_of(name: str) -> dict[str, Any]:
    """The JSON Schema of output ``name`` (a key of :data:`OUTPUTS`) as a dictionary.

    Draft 2020-12, with ``$schema``, ``$id`` (``docs/schemas/<name>.schema.json``), ``title``
    (``promptstate <name> output, schema_version N``) and ``description`` (the model's
    docstring: the command that prints it, and when) first.

    Raises:
        KeyError: ``name`` is not an output.
    """
    model = OUTPUTS[name]
    body = model.model_json_schema(by_alias=True, mode="validation")
    body.pop("title", None)
    body.pop("description", None)
    return {
        "$schema": DRAFT,
        "$id": f"{SCHEMA_DIR}/{file_name(name)}",
        "title": f"promptstate {name} output, schema_version {SCHEMA_VERSION}",
        "description": summary(model, whole=True),
        **body,
    }


def summary(model: type[BaseModel], *, whole: bool = False) -> str:
    """The model's docstring on one line (``whole=False``: its first paragraph only)."""
    doc = (model.__doc__ or "").strip()
    if not whole:
        doc = doc.split("\n\n")[0]
    return " ".join(doc.split()).replace("``", "`")


def schema_text(name: str) -> str:
    """The committed text of output ``name``'s schema: indented JSON, trailing newline."""
    return json.dumps(schema_of(name), indent=2, ensure_ascii=False) + "\n"
