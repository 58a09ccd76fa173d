"""Event files on disk: opening a file, directory or glob lazily, after checking the files.

Private to :mod:`analysis.events.loading`. Before anything is scanned, the files are checked
against each other and themselves, so that a bad export fails at once with the file and the
row named (exit code 2 in the CLI) instead of deep inside an analysis:

* Parquet files of one export must agree on their columns and types (read from the footers);
* CSV files must agree on their header; every row of a CSV file must be UTF-8 and have as many
  fields as the header (polars would otherwise fill a short row with nulls without a word);
* a pattern or directory holds one format only.
"""

from __future__ import annotations

import glob as _glob
from pathlib import Path
from typing import Any

import narwhals as nw

from analysis.errors import EventsError

__all__ = ["FILE_SUFFIXES", "first_line", "is_glob", "open_path"]

FILE_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
}


def is_glob(text: str) -> bool:
    """Whether ``text`` is a glob pattern (holds ``*``, ``?`` or ``[``)."""
    return any(ch in text for ch in "*?[")


def open_path(path: Path | str) -> tuple[nw.LazyFrame[Any], str, str]:
    """Open a file, directory or glob lazily; returns the frame, its description and format.

    Before anything is scanned, the files are checked against each other and themselves:
    Parquet files must agree on their columns and types; CSV files on their header, and every
    row of a CSV file must be UTF-8 with as many fields as its header.
    """
    import polars as pl

    where = str(path)
    if isinstance(path, str):  # glob
        files = [Path(p) for p in sorted(_glob.glob(path, recursive=True)) if Path(p).is_file()]
        if not files:
            raise EventsError(f"{where}: no file matches this pattern")
        fmts = {_format_of(p, str(p)) for p in files}
        if len(fmts) > 1:
            raise EventsError(
                f"{where}: the pattern matches files of several formats "
                f"({', '.join(sorted(fmts))}); narrow it to one, e.g. *.parquet"
            )
        fmt = fmts.pop()
        target: str | list[str] = path
    elif path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in FILE_SUFFIXES]
        if not files:
            raise EventsError(
                f"{where}: the directory holds no .parquet, .csv or .ndjson/.jsonl files"
            )
        fmts = {FILE_SUFFIXES[p.suffix] for p in files}
        if len(fmts) > 1:
            raise EventsError(
                f"{where}: the directory mixes formats ({', '.join(sorted(fmts))}); "
                "point at one format with a glob, e.g. DIR/**/*.parquet"
            )
        fmt = fmts.pop()
        ext = "parquet" if fmt == "parquet" else files[0].suffix.lstrip(".")
        target = str(path / "**" / f"*.{ext}")
    elif path.is_file():
        fmt = _format_of(path, where)
        files = [path]
        target = str(path)
    else:
        raise EventsError(f"{where}: no such file or directory")
    sep = "\t" if str(files[0]).endswith(".tsv") else ","
    if fmt == "parquet":
        _check_parquet_schemas(files, where)
    elif fmt == "csv":
        _check_csv_files(files, where, sep)
    try:
        if fmt == "parquet":
            lf = pl.scan_parquet(target, hive_partitioning=True)
        elif fmt == "csv":
            lf = pl.scan_csv(target, try_parse_dates=True, separator=sep)
        else:
            lf = pl.scan_ndjson(target, infer_schema_length=None)
        lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise EventsError(f"{where}: cannot read as {fmt}: {first_line(exc)}") from None
    return nw.from_native(lf), where, fmt


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (engines write several)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def _check_parquet_schemas(files: list[Path], where: str) -> None:
    """Every Parquet file has the same columns with the same types (read from the footers)."""
    import polars as pl

    if len(files) < 2:
        return
    first: dict[str, Any] | None = None
    for f in files:
        try:
            schema = dict(pl.read_parquet_schema(f))
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise EventsError(f"{f}: cannot read as parquet: {first_line(exc)}") from None
        if first is None:
            first = schema
            continue
        if schema == first:
            continue
        for col in [*first, *(c for c in schema if c not in first)]:
            a, b = first.get(col), schema.get(col)
            if a != b:
                have = "has no such column" if b is None else f"has {col}: {b}"
                base = "has no such column" if a is None else f"has {col}: {a}"
                raise EventsError(
                    f"{where}: the files disagree on column {col!r} — {files[0]} {base}, "
                    f"{f} {have}; export every file with the same columns and types, or point "
                    "at the files that agree"
                )


def _check_csv_files(files: list[Path], where: str, sep: str) -> None:
    """Same header in every CSV file; every row UTF-8 with as many fields as the header."""
    header: list[str] | None = None
    for f in files:
        names = _csv_header(f, sep)
        if header is None:
            header = names
        elif names != header:
            raise EventsError(
                f"{where}: {f} has the header {sep.join(names)!r} but {files[0]} has "
                f"{sep.join(header)!r}; export every file with the same columns in the same order"
            )
        _check_csv_rows(f, len(names), sep)


def _csv_header(path: Path, sep: str) -> list[str]:
    import csv

    try:
        with path.open("rb") as fh:
            raw = fh.readline()
    except OSError as exc:
        raise EventsError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EventsError(
            f"{path}: line 1 (the header) is not UTF-8 (byte {exc.start + 1}); save the file as "
            "UTF-8"
        ) from None
    rows = list(csv.reader([text.rstrip("\r\n")], delimiter=sep))
    return rows[0] if rows else []


def _check_csv_rows(path: Path, width: int, sep: str) -> None:
    """Every row of ``path`` is UTF-8 and has ``width`` fields (one lazy pass over its lines).

    Lines are counted from 1 (the header). Quoted fields are skipped when counting separators;
    a file with a line break inside a quoted field is checked record by record with :mod:`csv`.
    """
    import polars as pl

    quote = '"'
    lines = pl.scan_csv(
        path, has_header=False, separator="\x00", quote_char=None, schema={"line": pl.String},
        truncate_ragged_lines=True, raise_if_empty=False,
    ).with_row_index("n", offset=1)  # fmt: skip
    unquoted = pl.col("line").str.replace_all('"[^"]*"', "")
    fields = unquoted.str.count_matches(sep, literal=True) + 1
    odd = (pl.col("line").str.count_matches(quote, literal=True) % 2) == 1
    blank = pl.col("line").str.strip_chars("\r") == ""
    try:
        found = (
            lines.select(
                odd.any().alias("multiline"),
                pl.col("n").filter((fields != width) & ~blank).first().alias("row"),
                fields.filter((fields != width) & ~blank).first().alias("fields"),
            )
            .collect(engine="streaming")
            .row(0)
        )
    except pl.exceptions.PolarsError as exc:
        if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
            raise EventsError(_not_utf8(path)) from None
        raise EventsError(f"{path}: cannot read as csv: {first_line(exc)}") from None
    multiline, row, n_fields = found
    if multiline:
        row, n_fields = _csv_ragged_records(path, width, sep)
    if row is not None:
        raise EventsError(
            f"{path}: line {row} has {n_fields} field(s) but the header has {width}; fix the "
            "row (a missing or extra separator, an unquoted separator inside a value)"
        )


def _csv_ragged_records(path: Path, width: int, sep: str) -> tuple[int | None, int | None]:
    """The first record whose field count differs from ``width`` (slow path, :mod:`csv`)."""
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        for record in reader:
            if record and len(record) != width:
                return reader.line_num, len(record)
    return None, None


def _not_utf8(path: Path) -> str:
    """Name the first line of ``path`` that is not valid UTF-8 (error path only)."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return (
                    f"{path}: line {number} is not UTF-8 (byte {exc.start + 1} of the line: "
                    f"{raw[exc.start : exc.start + 1]!r}); save the file as UTF-8, e.g. "
                    "iconv -f latin1 -t utf-8"
                )
    return f"{path}: not valid UTF-8; save the file as UTF-8"


def _format_of(path: Path, where: str) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in FILE_SUFFIXES:
        raise EventsError(
            f"{where}: unknown file type {suffix or '(none)'}; "
            "use .parquet, .csv, .ndjson or .jsonl"
        )
    return FILE_SUFFIXES[suffix]
