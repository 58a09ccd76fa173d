"""Inspect AI logs (``.eval`` zip or ``--log-format json``) read into the results table.

The mapping (docs/eval-tools.md):

* one row per sample and epoch (``samples[]``; in a ``.eval`` zip the ``samples/*.json``
  entries); ``example_id`` is the sample ``id``, ``sample`` its ``epoch``;
* one metric per scorer (the keys of ``scores``): a number or boolean as is, ``C``/``I``/``P``/
  ``N`` as 1/0/0.5/0, ``yes``/``true`` 1 and ``no``/``false`` 0, numeric text as its number —
  Inspect's own ``value_to_float``; a dict value gives one metric per key (``scorer.key``);
  anything else is an error naming the sample, the epoch and the scorer (Inspect would count
  it 0 with a warning);
* ``grader``: each scorer with its model (``quality(openai/gpt-4o)``), joined with ``+``, from
  the log's ``eval.scorers`` (else ``results.scores[].params``), plus a ``grader`` model role;
* revision: the task argument or ``eval.metadata`` entry ``revision`` (or
  ``prompt_revision``).

A log whose status is not ``success`` (an error, a cancelled or unfinished run) is refused.
The ``.eval`` entries are deflated or zstd-compressed (Inspect 0.3.1xx and later); zstd needs
Python 3.14 or the ``zstandard`` package, which inspect-ai installs.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

from analysis.errors import ResultsError
from analysis.evals._formats import ToolTable, read_json

__all__ = ["read_inspect", "score_to_float"]

_ZSTD = 93
_LETTERS = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}


def score_to_float(value: Any) -> float | None:
    """A score value as Inspect's ``value_to_float`` reads it; ``None`` when it is not a score.

    >>> [score_to_float(v) for v in ("C", "I", "P", "N", "yes", "0.25", 3, True)]
    [1.0, 0.0, 0.5, 0.0, 1.0, 0.25, 3.0, 1.0]
    >>> score_to_float("maybe") is None
    True
    """
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in _LETTERS:
            return _LETTERS[value]
        low = value.lower()
        if low in ("yes", "true"):
            return 1.0
        if low in ("no", "false"):
            return 0.0
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


class _Zip:
    """Entries of a ``.eval`` zip, zstd-compressed ones included."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ResultsError(f"{path}: not a readable Inspect .eval log ({exc})") from exc
        self.names = self.zf.namelist()

    def json(self, name: str) -> Any:
        info = self.zf.getinfo(name)
        try:
            data = self._zstd(info) if info.compress_type == _ZSTD else self.zf.read(name)
            return json.loads(data)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
            raise ResultsError(
                f"{self.path}: entry {name} is unreadable ({type(exc).__name__}: {exc}); pass the "
                "log Inspect wrote, unmodified"
            ) from exc

    def _zstd(self, info: zipfile.ZipInfo) -> bytes:
        try:
            return self.zf.read(info)  # Python 3.14+ reads zstd entries itself
        except NotImplementedError:
            pass
        try:
            import zstandard  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ResultsError(
                f"{self.path}: the log's entries are zstd-compressed; install the `zstandard` "
                "package (inspect-ai installs it) or write the log with --log-format json"
            ) from None
        with self.path.open("rb") as fh:
            fh.seek(info.header_offset)
            header = fh.read(30)
            if header[:4] != b"PK\x03\x04":
                raise ValueError(f"no local header for {info.filename}")
            skip = int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
            fh.seek(info.header_offset + 30 + skip)
            raw = fh.read(info.compress_size)
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(raw), read_across_frames=True
        )
        return bytes(reader.read())


def _log_parts(path: Path, parsed: Any) -> tuple[dict[str, Any], list[Any]]:
    """``(header, samples)`` of a ``.eval`` zip or a parsed ``.json`` log."""
    if parsed is None and zipfile.is_zipfile(path):
        z = _Zip(path)
        if "header.json" not in z.names:
            raise ResultsError(
                f"{path}: the .eval log has no header.json — the eval did not finish (crashed or "
                "still running); re-run it, or read it with `inspect log` once it completes"
            )
        header = z.json("header.json")
        names = sorted(n for n in z.names if n.startswith("samples/") and n.endswith(".json"))
        return header, [z.json(n) for n in names]
    obj = parsed if parsed is not None else read_json(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("eval"), dict):
        raise ResultsError(
            f"{path}: not an Inspect AI log (no eval object); write it with `inspect eval "
            "--log-format json` or pass the .eval file"
        )
    samples = obj.get("samples")
    return obj, samples if isinstance(samples, list) else []


def _grader(header: dict[str, Any]) -> str | None:
    ev = header.get("eval") or {}
    found: list[str] = []
    scorers = ev.get("scorers")
    if isinstance(scorers, list) and scorers:
        items = [(s.get("name"), s.get("options")) for s in scorers if isinstance(s, dict)]
    else:
        scores = (header.get("results") or {}).get("scores") or []
        items = [
            (s.get("scorer") or s.get("name"), s.get("params"))
            for s in scores
            if isinstance(s, dict)
        ]
    for name, options in items:
        if not isinstance(name, str) or not name:
            continue
        opts = options if isinstance(options, dict) else {}
        model = opts.get("model", opts.get("grader_model"))
        if isinstance(model, list):
            model = ",".join(str(m) for m in model)
        entry = f"{name}({model})" if isinstance(model, str) and model else name
        if entry not in found:
            found.append(entry)
    roles = ev.get("model_roles")
    if isinstance(roles, dict) and isinstance(roles.get("grader"), dict):
        model = roles["grader"].get("model")
        if isinstance(model, str) and model:
            found.append(f"grader-role({model})")
    return "+".join(found) or None


def _revision(header: dict[str, Any]) -> str | None:
    ev = header.get("eval") or {}
    for where in ("task_args", "metadata"):
        values = ev.get(where)
        if isinstance(values, dict):
            for key in ("revision", "prompt_revision"):
                if values.get(key) not in (None, ""):
                    return str(values[key])
    return None


def read_inspect(path: Path, parsed: Any = None) -> ToolTable:
    """Rows of the Inspect AI log at ``path`` (``parsed``: its JSON when already parsed).

    Raises:
        ResultsError: An unfinished or failed run, no samples, a sample without an id or epoch,
            a duplicated (id, epoch), a score value that is not a score.
    """
    import polars as pl

    name = str(path)
    header, samples = _log_parts(path, parsed)
    status = header.get("status")
    if status != "success":
        error = header.get("error")
        why = (
            f" ({error.get('message')})" if isinstance(error, dict) and error.get("message") else ""
        )
        raise ResultsError(
            f"{name}: the Inspect run's status is {status!r}{why}, not 'success'; only a "
            "completed eval can be gated — re-run it (or `inspect eval-retry` the log)"
        )
    if not samples:
        raise ResultsError(
            f"{name}: the log holds no samples; run the eval with samples logged (not "
            "--no-log-samples)"
        )
    ids: list[str] = []
    epochs: list[int] = []
    columns: dict[str, list[float | None]] = {}
    missing: dict[str, str] = {}
    seen: set[tuple[str, int]] = set()
    for i, s in enumerate(samples):
        where = f"samples[{i}]"
        if not isinstance(s, dict):
            raise ResultsError(f"{name}: {where} is not an object")
        sid = s.get("id")
        if isinstance(sid, bool) or not isinstance(sid, str | int) or str(sid).strip() == "":
            raise ResultsError(
                f"{name}: {where}: field id is {sid!r}; every sample needs an id (give the "
                "dataset's samples ids)"
            )
        epoch = s.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise ResultsError(f"{name}: sample {sid!r}: field epoch is {epoch!r}, not an integer")
        where = f"sample {sid!r} epoch {epoch}"
        if (str(sid), epoch) in seen:
            raise ResultsError(
                f"{name}: {where} appears twice (duplicated id); sample ids must be unique in "
                "the dataset"
            )
        seen.add((str(sid), epoch))
        row = len(ids)
        ids.append(str(sid))
        epochs.append(epoch)
        scores = s.get("scores")
        for scorer, score in (scores if isinstance(scores, dict) else {}).items():
            value = score.get("value") if isinstance(score, dict) else None
            parts = value.items() if isinstance(value, dict) else [(None, value)]
            for key, v in parts:
                col = str(scorer) if key is None else f"{scorer}.{key}"
                number = score_to_float(v)
                if number is None:
                    field = f"scores.{scorer}.value" + ("" if key is None else f".{key}")
                    if isinstance(v, list | dict) or v is None:
                        missing.setdefault(col, f"{where} (field {field} is {type(v).__name__})")
                    else:
                        raise ResultsError(
                            f"{name}: {where}: field {field} is {v!r}, not a score (a number, "
                            "C/I/P/N, yes/no or true/false)"
                        )
                if col not in columns:
                    columns[col] = [None] * row
                    if row:
                        missing.setdefault(col, f"{_where(samples[0])} (field scores.{scorer})")
                columns[col].append(number)
        for col, values in columns.items():
            if len(values) == row:
                values.append(None)
                missing.setdefault(col, f"{where} (field scores.{col.split('.')[0]})")
    grader = _grader(header)
    table = pl.DataFrame(
        {
            "example_id": ids,
            "sample": epochs,
            **{c: pl.Series(c, v, dtype=pl.Float64) for c, v in columns.items()},
            "grader": pl.Series("grader", [grader] * len(ids), dtype=pl.String),
        }
    )
    return ToolTable(table=table, revision=_revision(header), first_missing=missing)


def _where(sample: Any) -> str:
    if isinstance(sample, dict):
        return f"sample {sample.get('id')!r} epoch {sample.get('epoch')}"
    return "samples[0]"
