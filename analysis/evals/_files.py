"""Low-level file machinery of the baseline store: names, lock, journal lines, hashes, repair.

Crash and concurrency model (documented in docs/baselines.md):

* Every mutation of a suite runs under an exclusive lock on ``<suite>/.lock``
  (:func:`analysis._io.file_lock`, a portable :mod:`filelock` lock: ``flock`` on Linux/macOS,
  ``msvcrt.locking`` on Windows — the latter untested here). The operating system releases it
  when the holder dies, so a writer killed with SIGKILL never leaves a stale lock. On NFS a lock
  is only as good as the server's lock support.
* Readers take no lock. Every file is either written once through a temporary file + fsync +
  rename (scores, metadata, reference pointer, suite config) or appended to with a single
  ``write`` of complete lines followed by fsync (journal).
* The journal is the commit log: a version exists when a journal line names it. A journal line
  is committed when it parses — also a last line without its newline (an editor's save): the
  next writer adds the newline before appending. A last line that does not parse is the torn
  append of a writer that died: readers ignore it, the next writer moves it to
  ``<suite>/quarantine/`` and reports it. Any other line that does not parse is corruption
  (:class:`~analysis.errors.InvalidBaselineError`).
* A repair touches the journal only after checking, under the lock and on the descriptor it
  read, that the file is still the one it read (same inode, same size): a journal replaced
  meanwhile (``git checkout``, an editor) is never truncated or extended.
* A version directory no journal line names (a writer died before its journal line) is
  uncommitted: the next writer deletes it when it holds no ``meta.json`` (its scores were not
  complete) and moves it to ``<suite>/quarantine/`` otherwise. A directory a journal line names
  is never touched. Temporary files of killed writers (``.*.tmp``) are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from analysis._io import atomic_write_bytes, file_lock, stray_temp_files
from analysis.errors import BaselineError, InvalidBaselineError

__all__ = [
    "JournalText",
    "Repair",
    "append_lines",
    "check_suite_name",
    "file_sha256",
    "iso",
    "locked",
    "parse_iso",
    "parse_journal",
    "read_journal",
    "repair_journal",
    "resolve_actor",
    "sweep_versions",
    "to_json",
]

_SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
VERSION_NAME = re.compile(r"v[0-9]{4,}")
QUARANTINE = "quarantine"


def check_suite_name(name: str) -> str:
    """Return ``name`` when it is a safe suite name, else raise :class:`BaselineError`.

    Allowed: letters, digits, ``.``, ``_``, ``-``; starting with a letter or digit; no ``..``;
    at most 100 characters. This refuses ``../x``, absolute paths and any path separator, so a
    suite directory always stays inside the store.
    """
    if not isinstance(name, str) or not _SUITE_NAME.fullmatch(name) or ".." in name:
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
    """Parse a timestamp written by :func:`iso` (timezone-aware, else ``ValueError``)."""
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 timestamp, not {text!r}")
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return at


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
    """Hold the suite's exclusive write lock (``<suite>/.lock``)."""
    suite_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(suite_dir / ".lock"):
        yield


# ----------------------------------------------------------------------------- journal


class JournalText(NamedTuple):
    """A journal as read.

    Attributes:
        records: The committed lines, parsed, oldest first.
        committed_bytes: Length of the committed prefix (the whole file unless a tail is torn).
        size: Length of the file read.
        missing_newline: The last committed line lacks its newline (an editor's save).
        torn: The bytes after the committed prefix (a writer's torn append), else ``b""``.
    """

    records: tuple[dict[str, Any], ...]
    committed_bytes: int
    size: int
    missing_newline: bool
    torn: bytes


def parse_journal(raw: bytes, path: Path) -> JournalText:
    """Split journal bytes into committed records and a torn tail (see the module docstring).

    Raises:
        InvalidBaselineError: A line other than the last does not parse as a JSON object.
    """
    records: list[dict[str, Any]] = []
    lines = raw.split(b"\n")
    offset = 0
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        if last and not line:
            break  # the file ends with a newline (or is empty)
        if line.strip():
            try:
                rec = json.loads(line)
            except ValueError as exc:
                if last:
                    return JournalText(tuple(records), offset, len(raw), False, line)
                raise InvalidBaselineError(
                    f"{path}: line {number} is not a valid journal entry ({exc}); the journal is "
                    f"append-only — restore it from git (`git checkout -- {path}`)"
                ) from exc
            if not isinstance(rec, dict):
                if last:
                    return JournalText(tuple(records), offset, len(raw), False, line)
                raise InvalidBaselineError(
                    f"{path}: line {number} is not a journal entry (a JSON object); restore the "
                    f"journal from git (`git checkout -- {path}`)"
                )
            records.append(rec)
        if last:
            return JournalText(tuple(records), len(raw), len(raw), True, b"")
        offset += len(line) + 1
    return JournalText(tuple(records), len(raw), len(raw), False, b"")


def read_journal(path: Path) -> JournalText:
    """Read and split the journal (an absent journal is empty)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return JournalText((), 0, 0, False, b"")
    return parse_journal(raw, path)


def append_lines(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Append JSON lines with a single ``write`` and fsync them (call under the lock).

    Each record is self-contained: a crash in the middle of the write commits the complete lines
    before the torn one, and the torn one is quarantined by the next writer.
    """
    if not records:
        return
    data = "".join(to_json(r, indent=None) + "\n" for r in records).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # regular files write fully; loop for the letter of the API
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


class Repair(NamedTuple):
    """What a writer repaired before writing (empty when the suite was clean).

    Attributes:
        newline_added: The journal's last committed line got its missing newline.
        quarantined: Files and directories moved to ``<suite>/quarantine/``: a torn journal
            tail, uncommitted version directories holding metadata.
        removed: Deleted leftovers: uncommitted version directories without metadata, temporary
            files of killed writers.
    """

    newline_added: bool = False
    quarantined: tuple[Path, ...] = ()
    removed: tuple[Path, ...] = ()

    def __bool__(self) -> bool:
        return self.newline_added or bool(self.quarantined) or bool(self.removed)

    def merge(self, other: Repair) -> Repair:
        """Both repairs."""
        return Repair(
            self.newline_added or other.newline_added,
            self.quarantined + other.quarantined,
            self.removed + other.removed,
        )

    def messages(self, journal: Path) -> list[str]:
        """One line per repair, for warnings and the CLI's stderr."""
        out = []
        if self.newline_added:
            out.append(f"{journal}: the last journal line lacked its newline; added it")
        out.extend(
            f"{p}: quarantined (a torn journal append or an uncommitted version of a writer that "
            "died; nothing committed refers to it — inspect, then delete it)"
            for p in self.quarantined
        )
        out.extend(f"{p}: removed (leftover of a writer that died)" for p in self.removed)
        return out


def _stamp() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{os.getpid()}"


def repair_journal(path: Path, quarantine: Path) -> tuple[JournalText, Repair]:
    """Under the lock: make the journal end with a committed, newline-terminated line.

    A torn tail is copied to ``quarantine/journal-<time>.torn`` and then cut off; a committed
    last line without its newline gets one. Both happen on the descriptor the journal was read
    from, and only after checking that the path still names that file and that its size is the
    size read — so a journal replaced meanwhile is never truncated or extended.

    Returns:
        The journal as it is after the repair, and what was repaired.

    Raises:
        InvalidBaselineError: The journal has a corrupt line other than the last.
        BaselineError: The journal changed under the lock three times in a row (another
            program is writing it); nothing was changed.
    """
    for _attempt in range(3):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return JournalText((), 0, 0, False, b""), Repair()
        try:
            before = os.fstat(fd)
            chunks = []
            while block := os.read(fd, 1 << 20):
                chunks.append(block)
            raw = b"".join(chunks)
            text = parse_journal(raw, path)
            if not text.torn and not text.missing_newline:
                return text, Repair()
            if not _same_file(path, fd, before, len(raw)):
                continue
            if text.torn:
                target = quarantine / f"journal-{_stamp()}.torn"
                atomic_write_bytes(target, text.torn)
                if not _same_file(path, fd, before, len(raw)):
                    target.unlink()  # the file it came from is gone: not a repair after all
                    continue
                os.ftruncate(fd, text.committed_bytes)  # the committed prefix ends with "\n"
                os.fsync(fd)
                size = text.committed_bytes
                return text._replace(size=size, torn=b""), Repair(quarantined=(target,))
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, b"\n")
            os.fsync(fd)
            size = len(raw) + 1
            return text._replace(committed_bytes=size, size=size, missing_newline=False), Repair(
                newline_added=True
            )
        finally:
            os.close(fd)
    raise BaselineError(
        f"{path}: the journal kept changing while it was being repaired (another program is "
        "writing it); nothing was changed — re-run when it is done"
    )


def _same_file(path: Path, fd: int, before: os.stat_result, size: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` and it still has ``size`` bytes."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino) == (
        opened.st_dev,
        opened.st_ino,
    ) and opened.st_size == size


def sweep_versions(suite_dir: Path, named: Iterable[str]) -> Repair:
    """Under the lock: clear leftovers of killed writers (see the module docstring).

    Args:
        suite_dir: The suite directory.
        named: Every version id a journal line names (never touched).
    """
    keep = set(named)
    quarantined: list[Path] = []
    removed: list[Path] = list(stray_temp_files(suite_dir))
    vdir = suite_dir / "versions"
    removed.extend(stray_temp_files(vdir))
    if vdir.is_dir():
        for child in sorted(vdir.iterdir()):
            if child.name in keep:
                removed.extend(stray_temp_files(child))
            elif child.is_dir() and VERSION_NAME.fullmatch(child.name):
                if (child / "meta.json").is_file():
                    target = suite_dir / QUARANTINE / f"{child.name}-{_stamp()}"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(child, target)
                    quarantined.append(target)
                else:
                    shutil.rmtree(child)
                    removed.append(child)
    for path in removed:
        if path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return Repair(False, tuple(quarantined), tuple(removed))
