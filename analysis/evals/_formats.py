"""Which reader a results file needs, and what the eval-tool readers hand back.

:func:`detect_format` looks at the content: a zip with ``header.json`` or ``_journal/`` entries is
an Inspect AI ``.eval`` log; a JSON object with ``eval`` and ``samples`` (or ``status``) is an
Inspect AI ``.json`` log; a JSON object whose ``results.results`` is a list is promptfoo output;
anything else is a table read by its suffix. The readers (:mod:`analysis.evals._promptfoo`,
:mod:`analysis.evals._inspect`, which import this module, never the other way round) return a
:class:`ToolTable` that :func:`analysis.evals.results.load_results` validates like any table.

Speed (100,000 promptfoo results, a 285 MB file, in under 5 s): a promptfoo file is decoded
with ``msgspec`` into typed structs that hold only the fields the reader uses — the texts
(responses, prompts, reasons, assertion code) are skipped, the test case is kept as its raw JSON
and decoded once per distinct test — and the garbage collector is paused while the decoded
objects are built (they hold no reference cycles; with it running, building them costs about
twice as much). A file that does not fit those types (an entry that is not an object, a
component result that is a string, …) or is not valid JSON for msgspec (``NaN``), or a machine
without msgspec, is read by the standard library's ``json`` into plain objects, which the reader
handles with the same results and the same errors.
"""

from __future__ import annotations

import gc
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.errors import ResultsError

try:
    import msgspec
except ImportError:  # pragma: no cover - a dependency; without it promptfoo files read slower
    msgspec = None  # type: ignore[assignment,unused-ignore]

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "NO_TEST",
    "UNSET",
    "PromptfooDoc",
    "ToolTable",
    "decode_json",
    "decode_promptfoo",
    "decode_test",
    "detect_format",
    "is_promptfoo",
    "no_gc",
    "read_json",
    "read_promptfoo_json",
]

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


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are built.

    Decoding a large JSON document allocates millions of containers; every 700 of them the
    collector walks the young ones, and the full collections walk them all again — about half
    the time of ``json.loads`` on a 285 MB promptfoo file. Decoded JSON holds no cycles, so
    nothing is left for the collector; it is switched back on (if it was on) afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc


def _loads(path: Path, data: bytes) -> Any:
    try:
        with no_gc():
            return json.loads(data)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ResultsError(
            f"{path}: not valid JSON ({exc}); pass the file the eval tool wrote, unmodified"
        ) from exc


def read_json(path: Path) -> Any:
    """Parse a JSON file; a :class:`ResultsError` names the file and where it is malformed."""
    return _loads(path, _read_bytes(path))


def decode_json(data: bytes) -> Any:
    """A small JSON text (one test case, one assertion) as plain objects, as ``json.loads``
    reads it; msgspec decodes it when it can (faster), ``json`` otherwise (``1e400``)."""
    if msgspec is not None:
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError:
            pass
    return json.loads(data)


# ---------------------------------------------------------------------- promptfoo, decoded fast

#: The value of a struct field that the JSON object does not have.
UNSET: Any = msgspec.UNSET if msgspec is not None else object()
#: The test case of a result without one (a ``PfTest`` with no fields).
NO_TEST: Any = None

if msgspec is not None:
    _RAW_ABSENT = msgspec.Raw()

    class PfComp(msgspec.Struct, gc=False):
        """One entry of ``gradingResult.componentResults``: an assertion's result."""

        score: Any = None
        passed: Any = msgspec.field(default=None, name="pass")
        assertion: msgspec.Raw = _RAW_ABSENT

    class PfGrading(msgspec.Struct, gc=False):
        """A result's ``gradingResult``."""

        score: Any = None
        passed: Any = msgspec.field(default=None, name="pass")
        componentResults: list[PfComp] | None = None

    class PfTest(msgspec.Struct, gc=False):
        """A result's ``testCase``: what the example id, the duplicate check and the grader use
        (decoded by :func:`decode_test` once per distinct test)."""

        vars: msgspec.Raw = _RAW_ABSENT
        assert_: msgspec.Raw = msgspec.field(default=_RAW_ABSENT, name="assert")
        options: msgspec.Raw = _RAW_ABSENT
        metadata: msgspec.Raw = _RAW_ABSENT
        description: msgspec.Raw = _RAW_ABSENT

    class PfResult(msgspec.Struct, gc=False):
        """One entry of ``results.results[]``; ``score``/``success`` are UNSET when absent."""

        testCase: msgspec.Raw = _RAW_ABSENT  # a PfTest; repeats of a test share its text
        vars: msgspec.Raw = _RAW_ABSENT
        prompt: msgspec.Raw = _RAW_ABSENT
        promptId: Any = None
        provider: msgspec.Raw = _RAW_ABSENT
        testIdx: Any = None
        failureReason: Any = None
        score: Any = msgspec.UNSET
        success: Any = msgspec.UNSET
        gradingResult: PfGrading | None = None

    class _PfResults(msgspec.Struct, gc=False):
        results: list[PfResult]

    class _PfFile(msgspec.Struct, gc=False):
        results: _PfResults

    NO_TEST = PfTest()
    _test_decoder = msgspec.json.Decoder(PfTest)


@dataclass
class PromptfooDoc:
    """A promptfoo output file decoded into the fields its reader uses (:func:`decode_promptfoo`).

    Attributes:
        results: ``results.results[]`` as ``PfResult`` structs: the test case, vars, prompt and
            provider are their raw JSON (decoded when needed), the texts are not read at all.
    """

    results: list[Any]


def decode_promptfoo(data: bytes) -> PromptfooDoc | None:
    """The promptfoo file ``data`` decoded fast, or ``None`` when it does not fit the types.

    ``None`` (read it with :func:`read_json` instead) for anything but an object whose
    ``results.results`` is a list of objects with the types promptfoo writes, for JSON that
    msgspec refuses where ``json`` may not (``NaN``, a lone surrogate escape), and when msgspec
    is not installed.
    """
    if msgspec is None:
        return None
    try:
        with no_gc():
            decoded = msgspec.json.decode(data, type=_PfFile)
    except msgspec.DecodeError:  # ValidationError included
        return None
    return PromptfooDoc(decoded.results.results)


def decode_test(raw: bytes) -> Any:
    """The raw JSON of a ``testCase`` as a ``PfTest``; an empty one when it is not an object
    (or absent: ``b""``). Only called on text that :func:`decode_promptfoo` has checked."""
    if not raw:
        return NO_TEST
    try:
        return _test_decoder.decode(raw)
    except msgspec.ValidationError:  # not an object: the test has no fields
        return NO_TEST


def read_promptfoo_json(path: Path) -> Any:
    """A promptfoo file decoded fast (a :class:`PromptfooDoc`), else parsed by ``json``."""
    data = _read_bytes(path)
    doc = decode_promptfoo(data)
    return doc if doc is not None else _loads(path, data)


def _is_inspect_json(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("eval"), dict)
        and ("samples" in obj or "status" in obj)
    )


def is_promptfoo(obj: Any) -> bool:
    """Whether a parsed JSON document has promptfoo's output shape (``results.results[]``)."""
    return isinstance(obj, PromptfooDoc) or (
        isinstance(obj, dict)
        and isinstance(obj.get("results"), dict)
        and isinstance(obj["results"].get("results"), list)
    )


def detect_format(path: Path) -> tuple[str, Any]:
    """``(format, parsed JSON or None)`` of a results file, detected from its content.

    A promptfoo file comes back decoded by :func:`decode_promptfoo` when it fits its types.

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
        data = _read_bytes(path)
        doc = decode_promptfoo(data)
        if doc is not None:
            return "promptfoo", doc
        obj = _loads(path, data)
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
