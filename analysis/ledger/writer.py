"""Append one transition to a ledger file: atomic, lock-protected, comment-preserving.

The only writer of ledger files. The model:

* **lock** — every writer holds ``fcntl.flock`` on ``<ledger>.lock`` (a sibling file, not the
  ledger itself, so the lock survives the rename) for the whole read-check-write cycle; callers
  that must decide *whether* to write from the ledger's content (idempotency) take the lock
  with :func:`ledger_lock` and call :func:`append_transition` with ``locked=True``.
* **format** — YAML is rewritten through ``ruamel.yaml``'s round-trip mode, so comments, key
  order, flow style and quoting of every existing entry are kept; the indentation is detected
  by trying the usual settings until a plain round trip reproduces the file byte for byte. The
  new entry is written in the style of the last existing transition (flow or block). JSON
  ledgers are parsed and rewritten with the detected indentation (JSON has no comments).
* **validation** — the new text is written to a temporary file next to the ledger and read back
  with :func:`analysis.ledger.load_ledger` *before* it replaces the ledger, so an invalid
  transition never reaches the file and the bytes that land are exactly the bytes validated.
* **atomicity** — the temporary file is fsynced and renamed over the ledger
  (:func:`analysis._io.atomic_path`): a reader, or a process killed at any instant, sees the
  old file or the new file, never a mix. A killed writer may leave a ``.<name>.*.tmp`` file
  behind; it is harmless and removed by the next successful append.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from analysis._io import atomic_path, file_lock
from analysis.errors import LedgerError
from analysis.ledger.loading import load_ledger
from analysis.ledger.model import Ledger

__all__ = ["AppendResult", "append_transition", "ledger_lock", "render_append"]

_Z = timezone(timedelta(0), "Z")


@dataclass(frozen=True)
class AppendResult:
    """What :func:`append_transition` did.

    Attributes:
        path: The ledger file.
        transition: The transition appended (ledger form).
        written: Whether the file was replaced (``False`` on a dry run).
        before: The file's text before.
        after: The file's text after (what was, or would be, written).
        ledger: The validated ledger with the new transition.
        reformatted_lines: Existing lines whose text changed (0 when only lines were added).
    """

    path: Path
    transition: Mapping[str, Any]
    written: bool
    before: str
    after: str
    ledger: Ledger
    reformatted_lines: int = 0

    def diff(self) -> str:
        """A unified diff of the change."""
        import difflib

        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"{self.path} (before)",
                tofile=f"{self.path} (after)",
            )
        )


def lock_path(path: Path) -> Path:
    """The lock file of a ledger: ``.<name>.lock`` next to it."""
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def ledger_lock(path: str | Path) -> Iterator[None]:
    """Hold the exclusive write lock of a ledger file (blocks until it is free)."""
    target = lock_path(Path(path))
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(target))
        except OSError as exc:
            raise LedgerError(
                f"{path}: cannot create the lock file {target} ({exc.strerror}); the ledger's "
                "directory must be writable"
            ) from None
        yield


def render_append(path: Path, text: str, transition: Mapping[str, Any]) -> tuple[str, int]:
    """The ledger text with ``transition`` appended, and the number of reformatted lines."""
    if path.suffix.lower() == ".json":
        return _render_json(path, text, transition)
    return _render_yaml(path, text, transition)


def append_transition(
    path: str | Path,
    transition: Mapping[str, Any],
    *,
    dry_run: bool = False,
    locked: bool = False,
) -> AppendResult:
    """Append ``transition`` (ledger form, e.g. ``Transition.to_dict()``) to a ledger file.

    Args:
        path: The ledger (``.yaml``/``.yml`` or ``.json``).
        transition: The entry to append; ``at`` may be a ``datetime`` or ISO text.
        dry_run: Validate and render, but leave the file untouched.
        locked: The caller already holds :func:`ledger_lock` (otherwise it is taken here).

    Returns:
        An :class:`AppendResult` with the validated new ledger.

    Raises:
        LedgerError: the file cannot be read, or the ledger with the new transition is invalid
            (the message names the file and the entry, as :func:`load_ledger` does).
    """
    path = Path(path)
    entry = dict(transition)
    if isinstance(entry.get("at"), datetime):
        entry["at"] = _iso(entry["at"])
    if locked:
        return _append(path, entry, dry_run=dry_run)
    with ledger_lock(path):
        return _append(path, entry, dry_run=dry_run)


def _append(path: Path, entry: dict[str, Any], *, dry_run: bool) -> AppendResult:
    try:
        before = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LedgerError(f"{path}: ledger file not found; pass --ledger PATH") from None
    after, reformatted = render_append(path, before, entry)
    if dry_run:
        ledger = _validate_text(path, after)
        return AppendResult(path, entry, False, before, after, ledger, reformatted)
    mode = path.stat().st_mode & 0o7777
    with atomic_path(path) as tmp:
        tmp.write_text(after, encoding="utf-8")
        os.chmod(tmp, mode)
        ledger = _validate_file(path, tmp)
    # the ledger was read through the temporary path; report the real one
    from dataclasses import replace

    return AppendResult(path, entry, True, before, after, replace(ledger, path=path), reformatted)


def _validate_file(path: Path, tmp: Path) -> Ledger:
    try:
        return load_ledger(tmp)
    except LedgerError as exc:
        raise LedgerError(
            str(exc).replace(str(tmp), str(path)) + " (the ledger was left unchanged)"
        ) from None


def _validate_text(path: Path, text: str) -> Ledger:
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.write_text(text, encoding="utf-8")
        ledger = _validate_file(path, tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    from dataclasses import replace

    return replace(ledger, path=path)


def _iso(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise LedgerError(f"transition time {at.isoformat()} has no timezone; pass an aware time")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _changed_lines(before: str, after: str) -> int:
    import difflib

    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    return sum(
        i2 - i1 for tag, i1, i2, _, _ in matcher.get_opcodes() if tag in ("replace", "delete")
    )


# ------------------------------------------------------------------------------------- YAML


def _yaml_engine(text: str) -> Any:
    """A round-trip ``YAML`` whose indentation reproduces ``text`` (best effort)."""
    from ruamel.yaml import YAML

    best: tuple[int, Any] | None = None
    for mapping, sequence, offset in ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 4, 0), (2, 3, 1)):
        yaml = YAML(typ="rt")
        yaml.preserve_quotes = True
        yaml.width = 4096
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        try:
            data = yaml.load(text)
        except Exception:  # ruamel raises many error types; reported by the caller below
            return YAML(typ="rt")
        out = io.StringIO()
        yaml.dump(data, out)
        if out.getvalue() == text:
            return yaml
        changed = _changed_lines(text, out.getvalue())
        if best is None or changed < best[0]:
            best = (changed, yaml)
    assert best is not None
    return best[1]


def _render_yaml(path: Path, text: str, entry: Mapping[str, Any]) -> tuple[str, int]:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import YAMLError

    yaml = _yaml_engine(text)
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise LedgerError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, CommentedMap):
        raise LedgerError(f"{path}: the ledger must be a mapping with version, prompts, ...")
    transitions = data.get("transitions")
    if transitions is None:
        transitions = CommentedSeq()
        data["transitions"] = transitions
    if not isinstance(transitions, CommentedSeq):
        raise LedgerError(f"{path}: `transitions` must be a list")
    flow = True
    if len(transitions) and isinstance(transitions[-1], CommentedMap):
        flow = bool(transitions[-1].fa.flow_style())
    new = CommentedMap()
    for key, value in entry.items():
        new[key] = _yaml_value(key, value)
    if flow:
        new.fa.set_flow_style()
    transitions.append(new)
    out = io.StringIO()
    yaml.dump(data, out)
    after = out.getvalue()
    return after, _changed_lines(text, after)


def _yaml_value(key: str, value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.timestamp import TimeStamp

    if key == "at" and isinstance(value, str):
        at = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        stamp = TimeStamp(
            at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond, tzinfo=_Z
        )
        stamp._yaml = {"t": True, "tz": "Z", "delta": 0}
        return stamp
    if isinstance(value, Mapping):
        inner = CommentedMap(value)
        inner.fa.set_flow_style()
        return inner
    return value


# ------------------------------------------------------------------------------------- JSON


def _render_json(path: Path, text: str, entry: Mapping[str, Any]) -> tuple[str, int]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LedgerError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise LedgerError(f"{path}: the ledger must be a mapping with version, prompts, ...")
    transitions = data.setdefault("transitions", [])
    if not isinstance(transitions, list):
        raise LedgerError(f"{path}: `transitions` must be a list")
    transitions.append(dict(entry))
    indent = _json_indent(text)
    after = json.dumps(data, indent=indent, ensure_ascii=False) + (
        "\n" if text.endswith("\n") else ""
    )
    return after, _changed_lines(text, after)


def _json_indent(text: str) -> int | None:
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped:
            width = len(line) - len(stripped)
            return width or None
    return None
