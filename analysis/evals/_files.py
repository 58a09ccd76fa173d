"""Low-level file machinery of the baseline store: names, lock, journal lines, hashes.

Crash and concurrency model (documented in docs/baselines.md):

* Every mutation of a suite runs under an exclusive ``fcntl.flock`` on ``<suite>/.lock``
  (advisory, per open file description, released by the kernel when the process dies — so a
  writer killed with SIGKILL never leaves a stale lock). Local filesystems on Linux/macOS; on
  NFS ``flock`` is only as good as the server's lock support.
* Readers take no lock. Every file is either written once through a temporary file + fsync +
  rename (scores, metadata, reference pointer, suite config) or appended to with a single
  ``write`` of one complete line followed by fsync (journal).
* The journal is the commit log: a version exists when its journal line exists. A version
  directory without a journal line (a writer died before appending) is ignored by readers and
  removed by the next writer; a torn last journal line is ignored by readers and truncated by
  the next writer; ``reference.json`` is a readable copy of the last journal entry's pointer and
  is rewritten by the next writer when a crash left it behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analysis._io import file_lock
from analysis.errors import BaselineError

__all__ = [
    "append_line",
    "check_suite_name",
    "file_sha256",
    "iso",
    "locked",
    "parse_iso",
    "read_journal_lines",
    "resolve_actor",
    "to_json",
]

_SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_suite_name(name: str) -> str:
    """Return ``name`` when it is a safe suite name, else raise :class:`BaselineError`.

    Allowed: letters, digits, ``.``, ``_``, ``-``; starting with a letter or digit; no ``..``;
    at most 100 characters. This refuses ``../x``, absolute paths and any path separator, so a
    suite directory always stays inside the store.
    """
    if not isinstance(name, str) or not _SUITE_NAME.match(name) or ".." in name:
        raise BaselineError(
            f"invalid suite name {name!r}: use letters, digits, '.', '_' and '-' (starting with a "
            "letter or digit, no '..', no path separators)"
        )
    return name


def iso(at: datetime) -> str:
    """UTC ISO-8601 with a ``Z`` suffix (microseconds dropped when zero)."""
    if at.tzinfo is None:
        raise ValueError("timestamps of the baseline store must be timezone-aware")
    text = at.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """Parse a timestamp written by :func:`iso`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def resolve_actor(actor: str | None) -> str:
    """The actor of a journal entry: explicit, else ``$PROMPTSTATE_ACTOR``, else ``$USER``."""
    if actor:
        return actor
    return os.environ.get("PROMPTSTATE_ACTOR") or os.environ.get("USER") or "unknown"


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """Deterministic JSON (sorted keys) for git-friendly diffs."""
    return json.dumps(data, indent=indent, sort_keys=True, ensure_ascii=False)


@contextlib.contextmanager
def locked(suite_dir: Path) -> Iterator[None]:
    """Hold the suite's exclusive write lock (``fcntl.flock`` on ``<suite>/.lock``)."""
    suite_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(suite_dir / ".lock"):
        yield


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single ``write`` and fsync it (call under the lock)."""
    data = (to_json(record, indent=None) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover - regular files write fully
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Read the journal; return the records and the byte length of its valid prefix.

    A last line that is incomplete (no newline) or not valid JSON is a torn append of a writer
    that died: it is not part of the journal. Any other invalid line is corruption.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    records: list[dict[str, Any]] = []
    valid = 0
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        if is_last:
            break  # text after the last newline: empty, or a torn append
        if not line.strip():
            valid += len(line) + 1
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise BaselineError(
                f"{path}: line {number} is not a valid journal entry ({exc}); the journal is "
                "append-only — restore it from git (`git checkout -- "
                f"{path}`)"
            ) from exc
        records.append(rec)
        valid += len(line) + 1
    return records, valid
