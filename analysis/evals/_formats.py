"""Which reader a results file needs, and what the eval-tool readers hand back.

:func:`detect_format` looks at the content: a zip with ``header.json`` or ``_journal/`` entries is
an Inspect AI ``.eval`` log; a JSON object with ``eval`` and ``samples`` (or ``status``) is an
Inspect AI ``.json`` log; a JSON object whose ``results.results`` is a list is promptfoo output;
anything else is a table read by its suffix. The readers (:mod:`analysis.evals._promptfoo`,
:mod:`analysis.evals._inspect`, which import this module, never the other way round) return a
:class:`ToolTable` that :func:`analysis.evals.results.load_results` validates like any table.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.errors import ResultsError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ToolTable", "detect_format", "is_promptfoo", "read_json"]

_ZIP_MAGIC = b"PK\x03\x04"
_TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson")


@dataclass
class ToolTable:
    """Rows read from an eval tool's output, before validation.

    Attributes:
        table: ``example_id``, ``sample``, one Float64 column per metric, optional ``grader``.
        revision: The prompt revision the file names, or ``None``.
        notes: What was ignored or counted while reading.
        first_missing: Metric → the first test or sample (described: file, test/sample, field)
            that has no score for it; such a metric is ignored unless ``metrics=`` names it.
    """

    table: pl.DataFrame
    revision: str | None = None
    notes: list[str] = field(default_factory=list)
    first_missing: dict[str, str] = field(default_factory=dict)


def read_json(path: Path) -> Any:
    """Parse a JSON file; a :class:`ResultsError` names the file and where it is malformed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    try:
        return json.loads(data)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ResultsError(
            f"{path}: not valid JSON ({exc}); pass the file the eval tool wrote, unmodified"
        ) from exc


def _is_inspect_json(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("eval"), dict)
        and ("samples" in obj or "status" in obj)
    )


def is_promptfoo(obj: Any) -> bool:
    """Whether a parsed JSON document has promptfoo's output shape (``results.results[]``)."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("results"), dict)
        and isinstance(obj["results"].get("results"), list)
    )


def detect_format(path: Path) -> tuple[str, Any]:
    """``(format, parsed JSON or None)`` of a results file, detected from its content.

    Raises:
        ResultsError: The file is missing, or is JSON of no known shape, or a zip that is not an
            Inspect log.
    """
    if not path.is_file():
        if path.suffix.lower() in (".json", ".eval"):
            raise ResultsError(f"{path}: results file not found")
        return "table", None  # the table reader names what is wrong (suffix or missing file)
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == _ZIP_MAGIC:
        if _is_inspect_zip(path):
            return "inspect", None
        raise ResultsError(
            f"{path}: a zip archive without header.json or _journal/ — not an Inspect AI .eval "
            "log; pass an Inspect log, promptfoo output JSON or a Parquet/CSV/JSONL table"
        )
    if path.suffix.lower() in _TABLE_SUFFIXES:
        return "table", None
    if path.suffix.lower() == ".json" or head.lstrip()[:1] in (b"{", b"["):
        obj = read_json(path)
        if is_promptfoo(obj):
            return "promptfoo", obj
        if _is_inspect_json(obj):
            return "inspect", obj
        raise ResultsError(
            f"{path}: JSON that is neither promptfoo output (an object with results.results[]) "
            "nor an Inspect AI log (an object with eval and samples); write the results with "
            "`promptfoo eval -o FILE.json` or `inspect eval --log-format json`, or as a "
            "Parquet/CSV/JSONL table"
        )
    return "table", None


def _is_inspect_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return "header.json" in names or any(n.startswith("_journal/") for n in names)
