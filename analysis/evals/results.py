"""Eval-results input: per-example (and per-sample) scores of one revision on an eval suite.

A results file is Parquet, CSV or JSONL (``.parquet``/``.pq``, ``.csv``, ``.jsonl``/``.ndjson``)
with one row per scored sample:

=============  ==========  ======================================================================
column         required    meaning
=============  ==========  ======================================================================
``example_id`` yes         id of the eval example (text; numbers are read as text)
``sample``     no          sample index when an example was scored several times
``grader``     no          grader id (one value for the whole file), checked against the suite
metric columns yes         numeric or boolean scores, one column per metric of the suite
other columns  no          ignored with a note (text columns: questions, answers, …)
=============  ==========  ======================================================================

A text column (a question, an answer: what most eval tools write next to the scores) is not a
metric: it is ignored with a note (:attr:`EvalResults.notes`) unless ``metrics=`` names it, which
stays an error. ``results_format`` reads, besides these tables, promptfoo output JSON and Inspect
AI logs (:mod:`analysis.evals._promptfoo`, :mod:`analysis.evals._inspect`; docs/eval-tools.md),
``auto`` telling them apart by their content (:mod:`analysis.evals._formats`).

Validation is strict: no rows, a missing or empty id, an id containing a control character
(U+0000–U+001F, U+007F–U+009F), a duplicated ``(example_id, sample)`` (or a duplicated
``example_id`` without a ``sample`` column), a non-numeric score, a NaN or missing score are
errors (:class:`~analysis.errors.ResultsError`, exit code 2) naming the file, the column and the
first offending rows.

The eval-set hash identifies the set of distinct example ids, whatever the order of the rows or
the number of samples. It is versioned (``eval_set_hash_scheme`` in a version's ``meta.json``):

* scheme 1 (versions anchored before scheme 2; absent from their ``meta.json``): SHA-256 of the
  sorted ids joined by ``\n``. Ambiguous: the id ``"a\nb"`` alone hashes like ``{"a", "b"}``.
* scheme 2 (:data:`EVAL_SET_HASH_SCHEME`, every new version): SHA-256 of the compact ASCII JSON
  array of the sorted ids (``["a","b"]``) — an injective encoding.

Old versions are read and compared with their own scheme; a committed ``meta.json`` is never
rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ResultsError

if TYPE_CHECKING:
    import polars as pl

    from analysis.evals._formats import ToolTable

__all__ = [
    "EVAL_SET_HASH_SCHEME",
    "RESULTS_FORMATS",
    "EvalResults",
    "eval_set_hash",
    "load_results",
]

#: The ``results_format`` values :func:`load_results` takes.
RESULTS_FORMATS = ("auto", "table", "promptfoo", "inspect")

#: The eval-set hash scheme new versions are written with (see the module docstring).
EVAL_SET_HASH_SCHEME = 2
EVAL_SET_HASH_SCHEMES = (1, 2)
#: Control characters (Unicode category Cc), refused in example ids (Rust regex syntax).
_CONTROL = r"[\x00-\x1F\x7F-\x{9F}]"

RESERVED = ("example_id", "sample", "grader")
_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def eval_set_hash(
    example_ids: Iterable[str] | npt.NDArray[np.object_], *, scheme: int = EVAL_SET_HASH_SCHEME
) -> str:
    """SHA-256 (hex) identifying the set of distinct example ids.

    Scheme 2 (default) hashes the compact ASCII JSON array of the sorted distinct ids; scheme 1
    (versions anchored before) their ``\\n``-join. Ids are sorted by code point (bytewise UTF-8
    order, as polars sorts).

    >>> eval_set_hash(["b", "a", "a"]) == eval_set_hash(["a", "b"])
    True
    >>> eval_set_hash(["a\\nb"], scheme=1) == eval_set_hash(["a", "b"], scheme=1)
    True
    >>> eval_set_hash(["a\\nb"]) == eval_set_hash(["a", "b"])
    False
    """
    ids = sorted({str(x) for x in example_ids})
    if scheme == 1:
        payload = "\n".join(ids).encode("utf-8")
    elif scheme == 2:
        payload = json.dumps(ids, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    else:
        raise ValueError(f"unknown eval-set hash scheme {scheme!r} (known: 1, 2)")
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class EvalResults:
    """Validated eval results of one run.

    Attributes:
        source: Where the results were read from (a path, or ``"<memory>"``).
        table: Columns ``example_id`` (str), ``sample`` (int), then one Float64 column per metric,
            sorted by ``example_id, sample``.
        metrics: Names of the metric columns, in file order.
        grader: The grader id carried by the file, or ``None``.
        revision: The prompt revision the file names (a promptfoo prompt label, an Inspect task
            argument or metadata ``revision``), or ``None``; check it against ``--revision``.
        notes: What was ignored or counted while reading (text columns, partial metrics).
        ignored: ``(column, why)`` of the columns not read as metrics; a suite metric among them
            is reported with the reason by :meth:`check_metrics`.
    """

    source: str
    table: pl.DataFrame
    metrics: tuple[str, ...]
    grader: str | None = None
    revision: str | None = None
    notes: tuple[str, ...] = ()
    ignored: tuple[tuple[str, str], ...] = ()

    def check_revision(self, revision: str | None) -> None:
        """Refuse results whose file names another prompt revision than ``revision``.

        Raises:
            ResultsError: the file (a promptfoo prompt label, an Inspect task argument or
                metadata) names a revision and it is not ``revision`` (exit code 2).
        """
        if self.revision is None or revision is None or self.revision == revision:
            return
        raise ResultsError(
            f"{self.source}: the file names revision {self.revision!r} but --revision is "
            f"{revision!r}; pass the results of {revision!r} or correct --revision"
        )

    @property
    def n_rows(self) -> int:
        """Number of scored samples."""
        return int(self.table.height)

    @property
    def n_examples(self) -> int:
        """Number of distinct examples."""
        return int(self.table.get_column("example_id").n_unique())

    @property
    def max_samples(self) -> int:
        """Largest number of samples of one example."""
        if self.table.height == 0:
            return 0
        counts = self.table.group_by("example_id").len()
        return int(counts.get_column("len").max() or 0)  # type: ignore[arg-type]

    @property
    def eval_set_sha256(self) -> str:
        """Hash of the distinct example ids with the current scheme (see :func:`eval_set_hash`)."""
        return self.eval_set_hash(EVAL_SET_HASH_SCHEME)

    def eval_set_hash(self, scheme: int = EVAL_SET_HASH_SCHEME) -> str:
        """Hash of the distinct example ids with ``scheme`` — compare with a stored version's
        ``eval_set_sha256`` using its ``eval_set_hash_scheme``."""
        return eval_set_hash(self.table.get_column("example_id").unique().to_list(), scheme=scheme)

    def example_means(self) -> pl.DataFrame:
        """Example-level means: ``example_id``, ``n_samples`` and one mean column per metric.

        The example-level mean is the unit of analysis of the gate (cluster by example).
        """
        import polars as pl

        return (
            self.table.group_by("example_id")
            .agg(pl.len().alias("n_samples"), *(pl.col(m).mean() for m in self.metrics))
            .sort("example_id")
        )

    def summary(self) -> dict[str, float]:
        """Mean of each metric over examples (example-level means averaged)."""
        means = self.example_means()
        return {m: float(means.get_column(m).mean()) for m in self.metrics}  # type: ignore[arg-type]

    def check_metrics(self, required: Sequence[str], binary: Sequence[str] = ()) -> None:
        """Raise :class:`ResultsError` for a missing metric or a binary one that is not 0/1."""
        missing = [m for m in required if m not in self.metrics]
        if missing:
            why = dict(self.ignored)
            reasons = "".join(f"; {why[m]}" for m in missing if m in why)
            raise ResultsError(
                f"{self.source}: missing metric column(s) {', '.join(missing)} required by the "
                f"suite (file has: {', '.join(self.metrics) or 'none'}){reasons}"
            )
        import polars as pl

        if not binary:
            return
        counts = self.table.select((~pl.col(m).is_in([0.0, 1.0])).sum() for m in binary).row(0)
        for m, count in zip(binary, counts, strict=True):
            if count:
                bad = self.table.filter(~pl.col(m).is_in([0.0, 1.0]))
                first = bad.head(3)
                rows = ", ".join(
                    f"{e}={v:g}" for e, v in zip(first["example_id"], first[m], strict=True)
                )
                raise ResultsError(
                    f"{self.source}: metric {m!r} is binary in the suite but {bad.height} "
                    f"score(s) are not 0/1 (e.g. {rows}); fix the scores or declare it "
                    "kind: continuous"
                )


def _read(path: Path) -> pl.DataFrame:
    import polars as pl

    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ResultsError(
            f"{path}: unknown results format {path.suffix!r}; use .parquet, .csv or .jsonl, "
            "promptfoo output JSON or an Inspect AI log (.eval/.json)"
        )
    if not path.is_file():
        raise ResultsError(f"{path}: results file not found")
    try:
        if kind == "parquet":
            return pl.read_parquet(path)
        if kind == "csv":
            return pl.read_csv(
                path,
                schema_overrides={"example_id": pl.String, "grader": pl.String},
                infer_schema_length=None,
            )
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ResultsError(
            f"{path}: cannot read results ({type(exc).__name__}: {first}); write it as "
            "Parquet, CSV with a header row, or JSON lines with one object per row"
        ) from exc


def load_results(
    source: str | Path | pl.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    strict_ids: bool = True,
    results_format: str = "auto",
) -> EvalResults:
    """Read and validate eval results.

    Args:
        source: A results file (Parquet/CSV/JSONL table, promptfoo output JSON, Inspect AI log
            ``.eval``/``.json``) or a polars DataFrame.
        metrics: Metric columns to keep; default every numeric or boolean column except
            ``example_id``, ``sample`` and ``grader`` (other columns are ignored with a note in
            :attr:`EvalResults.notes`; a column named here must be numeric).
        strict_ids: Refuse ids containing control characters (``False`` only to read stored
            scores anchored before that rule; their content hash is checked instead).
        results_format: ``auto`` (detect from the content), ``table``, ``promptfoo`` or
            ``inspect`` (see docs/eval-tools.md for the mapping of the tools' results).

    Returns:
        The validated results.

    Raises:
        ResultsError: No rows, missing/empty ids, ids with control characters, duplicates,
            non-numeric or missing (null/NaN) scores, several grader ids, unreadable file.
    """
    if results_format not in RESULTS_FORMATS:
        raise ResultsError(
            f"results format {results_format!r} is unknown; use one of {', '.join(RESULTS_FORMATS)}"
        )
    try:
        return _load_results(source, metrics, strict_ids, results_format)
    except pl_errors() as exc:  # a polars operation refused what the checks let through
        where = "<memory>" if not isinstance(source, str | Path) else str(source)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ResultsError(
            f"{where}: cannot use these results ({type(exc).__name__}: {first}); check the "
            "column types: example_id text or integers, sample integers, scores numbers"
        ) from exc


def pl_errors() -> tuple[type[BaseException], ...]:
    """The polars exceptions a malformed input can raise (a panic included)."""
    import polars as pl

    return (pl.exceptions.PolarsError, pl.exceptions.PanicException)


def _read_tool(path: Path, fmt: str, parsed: Any) -> ToolTable:
    """Read ``path`` as promptfoo output or an Inspect log (``fmt``); ``parsed`` is its JSON when
    the format detection already parsed it."""
    from analysis.evals._formats import is_promptfoo, read_promptfoo_json

    if fmt == "promptfoo":
        from analysis.evals._promptfoo import read_promptfoo

        obj = parsed if parsed is not None else read_promptfoo_json(path)
        if not is_promptfoo(obj):
            raise ResultsError(
                f"{path}: not promptfoo output (no results.results[] list); write it with "
                "`promptfoo eval -o FILE.json`"
            )
        return read_promptfoo(obj, str(path))
    from analysis.evals._inspect import read_inspect

    return read_inspect(path, parsed)


def _load_results(
    source: str | Path | pl.DataFrame,
    metrics: Sequence[str] | None,
    strict_ids: bool,
    results_format: str = "auto",
) -> EvalResults:
    import polars as pl

    tool: ToolTable | None = None
    if isinstance(source, pl.DataFrame):
        if results_format not in ("auto", "table"):
            raise ResultsError(
                f"<memory>: results format {results_format!r} needs a file; a DataFrame is a table"
            )
        df, name = source, "<memory>"
    else:
        from analysis.evals._formats import detect_format

        path = Path(source)
        name = str(path)
        if results_format == "table":
            df = _read(path)
        else:
            if results_format == "auto":
                fmt, parsed = detect_format(path)
            elif not path.is_file():
                raise ResultsError(f"{path}: results file not found")
            else:
                fmt, parsed = results_format, None
            if fmt == "table":
                df = _read(path)
            else:
                tool = _read_tool(path, fmt, parsed)
                df = tool.table
    if df.height == 0:
        raise ResultsError(
            f"{name}: no rows; a results file needs one row per scored example (re-run the eval)"
        )
    if "example_id" not in df.columns:
        raise ResultsError(
            f"{name}: no 'example_id' column (columns: {', '.join(df.columns)}); every row needs "
            "the id of its eval example"
        )
    ids = df.get_column("example_id")
    if ids.dtype not in (pl.String, pl.Int64, pl.Int32, pl.UInt32, pl.UInt64, pl.Categorical):
        raise ResultsError(f"{name}: 'example_id' must be text or integers, not {ids.dtype}")
    df = df.with_columns(pl.col("example_id").cast(pl.String))
    empty = df.with_row_index("_row").filter(
        pl.col("example_id").is_null() | (pl.col("example_id").str.strip_chars() == "")
    )
    if empty.height:
        rows = ", ".join(str(r + 1) for r in empty.get_column("_row").head(5).to_list())
        raise ResultsError(f"{name}: {empty.height} row(s) without an example_id (rows {rows})")
    if strict_ids:
        control = df.with_row_index("_row").filter(pl.col("example_id").str.contains(_CONTROL))
        if control.height:
            head = control.head(3)
            rows = ", ".join(
                f"row {r + 1} {e!r}" for r, e in zip(head["_row"], head["example_id"], strict=True)
            )
            raise ResultsError(
                f"{name}: {control.height} example id(s) contain control characters ({rows}); "
                "ids must be printable text — remove newlines, tabs and other control characters"
            )

    if "sample" in df.columns:
        s = df.get_column("sample")
        if not s.dtype.is_integer() or s.null_count():
            raise ResultsError(f"{name}: 'sample' must be a non-null integer column")
        df = df.with_columns(pl.col("sample").cast(pl.Int64))
    else:
        df = df.with_columns(pl.lit(0, dtype=pl.Int64).alias("sample"))

    dup = df.group_by("example_id", "sample").len().filter(pl.col("len") > 1)
    if dup.height:
        first = dup.sort("example_id").head(3).get_column("example_id").to_list()
        hint = (
            "each (example_id, sample) must appear once"
            if "sample" in df.columns and df.get_column("sample").n_unique() > 1
            else "add a 'sample' column when an example was scored several times"
        )
        raise ResultsError(
            f"{name}: {dup.height} duplicated example id(s) (e.g. {', '.join(first)}); {hint}"
        )

    grader: str | None = None
    if "grader" in df.columns:
        graders = df.get_column("grader").cast(pl.String).drop_nulls().unique().to_list()
        if len(graders) > 1:
            raise ResultsError(
                f"{name}: several graders in one results file ({', '.join(sorted(graders))}); "
                "scores of different graders are not comparable — split the file"
            )
        grader = graders[0] if graders else None

    available = [c for c in df.columns if c not in RESERVED]
    ignored: dict[str, str] = {}
    for c in available:
        dtype = df.get_column(c).dtype
        if not (dtype.is_numeric() or dtype in (pl.Boolean, pl.Null)):
            ignored[c] = f"column {c!r} is {dtype}, not a score"
        elif tool is not None and c in tool.first_missing:
            ignored[c] = f"metric {c!r} is not scored on {tool.first_missing[c]}"
    if metrics is None:
        wanted = [c for c in available if c not in ignored]
    else:
        wanted = list(metrics)
        named = [m for m in wanted if m in ignored and tool is not None and m in tool.first_missing]
        if named:
            raise ResultsError(
                f"{name}: {ignored[named[0]]}; re-run the eval so every result "
                "scores it, or leave it out of the suite's metrics"
            )
    notes = list(tool.notes) if tool is not None else []
    unused = [c for c in ignored if c not in wanted]
    if unused:
        notes.append(
            f"{name}: ignored {len(unused)} field(s) that are not gated scores: "
            + "; ".join(ignored[c] for c in unused)
        )
    missing = [m for m in wanted if m not in df.columns]
    if missing:
        raise ResultsError(
            f"{name}: missing metric column(s) {', '.join(missing)} "
            f"(file has: {', '.join(available) or 'none'})"
        )
    if not wanted:
        raise ResultsError(
            f"{name}: no metric columns besides example_id/sample/grader"
            + (f" ({'; '.join(ignored.values())})" if ignored else "")
        )
    for m in wanted:
        col = df.get_column(m)
        if not (col.dtype.is_numeric() or col.dtype in (pl.Boolean, pl.Null)):
            raise ResultsError(
                f"{name}: metric column {m!r} is {col.dtype}, not numeric; scores must be numbers "
                "or booleans"
            )
    df = df.select("example_id", "sample", *(pl.col(m).cast(pl.Float64) for m in wanted)).sort(
        "example_id", "sample"
    )
    bad_counts = df.select(
        (pl.col(m).is_null() | pl.col(m).is_nan() | pl.col(m).is_infinite()).sum() for m in wanted
    ).row(0)
    for m, count in zip(wanted, bad_counts, strict=True):
        if count:
            bad = df.filter(pl.col(m).is_null() | pl.col(m).is_nan() | pl.col(m).is_infinite())
            ex = ", ".join(bad.get_column("example_id").head(3).to_list())
            raise ResultsError(
                f"{name}: metric {m!r} has {bad.height} missing/NaN/infinite score(s) "
                f"(e.g. example {ex}); re-grade or drop those examples"
            )
    return EvalResults(
        source=name,
        table=df,
        metrics=tuple(wanted),
        grader=grader,
        revision=tool.revision if tool is not None else None,
        notes=tuple(notes),
        ignored=tuple(ignored.items()),
    )
