"""Append one transition to a ledger file: atomic, lock-protected, comment-preserving.

The only writer of ledger files. The model:

* **the real file** — the ledger's path is resolved once (symbolic links followed) and every
  step happens at the real file: the lock, the read, the temporary file and the rename, which
  replaces the target, never the link. A writer given the link and one given the target
  serialize on the same lock, and the link stays a link.
* **lock** — every writer holds the lock ``.promptstate/<ledger name>.lock`` in the real
  ledger's folder (one hidden folder, whatever the number of ledgers; not the ledger itself, so
  the lock survives the rename) for the whole read-check-write cycle; callers that must decide
  *whether* to write from the ledger's content (idempotency) take the lock with
  :func:`ledger_lock` and call :func:`append_transition` with ``locked=True``. Lock files are
  never deleted (a writer may hold one at any time; the operating system releases it when the
  holder exits). A ``.<ledger name>.lock`` left next to the ledger by an older version is
  taken too while it exists, so an older writer still serializes with this one.
* **line endings** — a ledger written with CRLF line endings keeps them: added lines get the
  file's line ending.
* **format** — in the usual layout (``transitions`` is the last top-level key and holds at
  least one entry) the new entry is appended *as text* after the last transition, in its style
  (flow ``- {...}`` or block) and indentation: no existing byte changes, comments included,
  and nothing is round-tripped (one parse of the result, which the validation reuses; linear
  in the file's size). The text is accepted only if the result ends with the new entry as the
  last transition. Otherwise
  YAML is rewritten through ``ruamel.yaml``'s round-trip mode, so comments, key order, flow
  style and quoting of every existing entry are kept; the indentation is detected by trying the
  usual settings until a plain round trip reproduces the file byte for byte. JSON ledgers are
  parsed and rewritten with the detected indentation (JSON has no comments). Values are quoted
  as the reader (:mod:`analysis._yaml`, YAML 1.1 rules) needs: a reason ``yes`` stays text.
* **validation** — the new text is written to a temporary file next to the ledger, read back
  and validated (:func:`analysis.ledger.parse_ledger`) *before* it replaces the ledger, so an
  invalid transition never reaches the file and the bytes that land are exactly the bytes
  validated. A dry run validates the rendered text and writes nothing (no temporary file).
* **atomicity** — the temporary file is fsynced and renamed over the ledger
  (:func:`analysis._io.atomic_path`): a reader, or a process killed at any instant, sees the
  old file or the new file, never a mix. A killed writer may leave a ``.<name>.*.tmp`` file
  behind; it is harmless and removed by the next append (under the lock).
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from analysis import _yaml
from analysis._io import atomic_path, file_lock
from analysis.errors import LedgerError, PromptstateError
from analysis.ledger.loading import parse_ledger
from analysis.ledger.model import Ledger

__all__ = [
    "LOCK_DIR",
    "AppendResult",
    "append_transition",
    "declare_and_append",
    "ledger_lock",
    "lock_path",
    "real_path",
    "render_append",
]

#: The hidden folder, next to the real ledger, that holds the ledgers' lock files.
LOCK_DIR = ".promptstate"

#: New revisions to declare: prompt -> revision id -> its fields (``text_file``, ``contract``...).
Declarations = Mapping[str, Mapping[str, Mapping[str, Any]]]

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


def real_path(path: str | Path) -> Path:
    """The file a ledger path names: symbolic links resolved, absolute.

    Every write resolves the path once and works at the result, so a ledger reached through a
    link is written at its target and the link stays a link.
    """
    return Path(os.path.realpath(path))


def lock_path(path: str | Path) -> Path:
    """The lock file of a ledger: ``.promptstate/<name>.lock`` in the real ledger's folder."""
    real = real_path(path)
    return real.parent / LOCK_DIR / f"{real.name}.lock"


def _legacy_lock_path(real: Path) -> Path:
    """Where versions before the ``.promptstate`` folder kept the lock: next to the ledger."""
    return real.with_name(f".{real.name}.lock")


@contextlib.contextmanager
def ledger_lock(path: str | Path) -> Iterator[Path]:
    """Hold the exclusive write lock of a ledger file (blocks until it is free).

    The path is resolved once (symbolic links followed); the lock is that of the real file, so
    writers given a link and its target exclude each other.

    Yields:
        The real path of the ledger: write it, not ``path`` (see :func:`append_transition`).
    """
    real = real_path(path)
    with _lock_real(path, real):
        yield real


@contextlib.contextmanager
def _lock_real(path: str | Path, real: Path) -> Iterator[None]:
    target = real.parent / LOCK_DIR / f"{real.name}.lock"
    with contextlib.ExitStack() as stack:
        try:
            target.parent.mkdir(exist_ok=True)
            stack.enter_context(file_lock(target))
            legacy = _legacy_lock_path(real)
            if legacy.is_file():  # an older version's writer takes this one: exclude it too
                stack.enter_context(file_lock(legacy))
        except OSError as exc:
            raise LedgerError(
                f"{path}: cannot create the lock file {target} ({exc.strerror}); the ledger's "
                "folder must be writable"
            ) from None
        yield


def render_append(path: Path, text: str, transition: Mapping[str, Any]) -> tuple[str, int]:
    """The ledger text with ``transition`` appended, and the number of reformatted lines."""
    rendered = _render(path, text, transition)
    return rendered.text, rendered.reformatted


def append_transition(
    path: str | Path,
    transition: Mapping[str, Any],
    *,
    dry_run: bool = False,
    locked: bool = False,
    resolved: Path | None = None,
) -> AppendResult:
    """Append ``transition`` (ledger form, e.g. ``Transition.to_dict()``) to a ledger file.

    Args:
        path: The ledger (``.yaml``/``.yml`` or ``.json``).
        transition: The entry to append; ``at`` may be a ``datetime`` or ISO text.
        dry_run: Validate and render, but leave the file untouched.
        locked: The caller already holds :func:`ledger_lock` (otherwise it is taken here).
        resolved: The real path :func:`ledger_lock` yielded, so the path is resolved once for
            the lock and the write (default: ``path`` resolved here); messages name ``path``.

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
    real = resolved if resolved is not None else real_path(path)
    if locked:
        return _append(path, real, entry, dry_run=dry_run)
    with _lock_real(path, real):
        return _append(path, real, entry, dry_run=dry_run)


def declare_and_append(
    path: str | Path,
    transition: Mapping[str, Any] | None,
    *,
    revisions: Declarations | None = None,
    experiments: Mapping[str, Mapping[str, Any]] | None = None,
    consumers: Mapping[str, Mapping[str, Any]] | None = None,
    prompts: Collection[str] = (),
    dry_run: bool = False,
    locked: bool = False,
    resolved: Path | None = None,
) -> AppendResult:
    """Declare new revisions, experiments and consumers in the ledger's header and append
    ``transition`` (``None``: declare only).

    One write, with every guarantee of :func:`append_transition` (lock, validation of the whole
    result before it lands, atomic rename). Revisions are added at the end of their prompt's
    ``revisions``, experiments at the end of ``experiments`` (created before ``transitions``
    when missing), consumers at the end of ``consumers``, a prompt named in ``prompts`` as a
    new entry of ``prompts`` holding its new revisions, through ``ruamel.yaml``'s round trip:
    comments, key order, flow style and quoting kept; a new entry is flow ``{...}`` when the
    entry before it is. JSON is rewritten with its indentation. ``reformatted_lines`` counts
    existing lines whose text changed.

    Args:
        path: The ledger (``.yaml``/``.yml`` or ``.json``).
        transition: The entry to append (ledger form); ``None`` appends none.
        revisions: ``{prompt: {revision id: {field: value}}}``, fields as in the file
            (``text_file``, ``text_sha256``, ``contract``, ``parent``, ...).
        experiments: ``{experiment id: {field: value}}`` (``prompt``, ``arms``, ``unit``,
            ``control``).
        consumers: ``{consumer id: {field: value}}`` (``prompt``, ``accepts``).
        prompts: Prompts to declare (new entries of ``prompts``); each must have revisions in
            ``revisions``. A prompt of ``revisions`` not named here must be declared already.
        dry_run: Validate and render, but leave the file untouched.
        locked: The caller already holds :func:`ledger_lock`.
        resolved: The real path :func:`ledger_lock` yielded (default: ``path`` resolved here).

    Raises:
        LedgerError: the file cannot be read, a prompt is not declared, an id is declared
            already, or the result is invalid (the file is unchanged).
    """
    path = Path(path)
    entry = None if transition is None else dict(transition)
    if entry is not None and isinstance(entry.get("at"), datetime):
        entry["at"] = _iso(entry["at"])
    new = _New(revisions or {}, experiments or {}, consumers or {}, tuple(prompts))
    real = resolved if resolved is not None else real_path(path)
    if locked:
        return _append(path, real, entry, dry_run=dry_run, declarations=new)
    with _lock_real(path, real):
        return _append(path, real, entry, dry_run=dry_run, declarations=new)


@dataclass(frozen=True)
class _New:
    """What :func:`declare_and_append` declares."""

    revisions: Declarations
    experiments: Mapping[str, Mapping[str, Any]]
    consumers: Mapping[str, Mapping[str, Any]]
    prompts: tuple[str, ...] = ()


def _append(
    path: Path,
    real: Path,
    entry: dict[str, Any] | None,
    *,
    dry_run: bool,
    declarations: _New | None = None,
) -> AppendResult:
    """Render, validate and (unless ``dry_run``) write; ``path`` names the ledger in messages,
    ``real`` (its resolved path) is read and replaced."""
    before = _yaml.read_text(real, what="ledger", error=LedgerError)
    if not before.strip():
        raise LedgerError(
            f"{path}: the ledger is empty; delete it and create it with `promptstate ledger "
            "init` (nothing was written)"
        )
    base = before if declarations is None else _declare(path, before, declarations)
    if entry is None:
        rendered = _Rendered(base, _changed_lines(before, base))
    else:
        rendered = _render(path, base, entry)
        if base is not before:
            changed = _changed_lines(before, rendered.text)
            rendered = _Rendered(rendered.text, changed, rendered.data)
    after = rendered.text
    if dry_run:
        data = rendered.data if rendered.data is not None else _parse(path, after)
        ledger = _validate(path, data)
        return AppendResult(path, entry or {}, False, before, after, ledger, rendered.reformatted)
    _remove_stray_temporaries(real)
    mode = real.stat().st_mode & 0o7777
    with atomic_path(real) as tmp:
        # bytes as they are: `write_text` would translate line endings on some platforms
        tmp.write_bytes(after.encode("utf-8"))
        os.chmod(tmp, mode)
        # validate exactly the bytes that will land: read the temporary file back
        landed = _yaml.read_text(tmp, what="ledger", error=LedgerError)
        data = rendered.data if landed == after and rendered.data is not None else None
        ledger = _validate(path, data if data is not None else _parse(path, landed))
    return AppendResult(path, entry or {}, True, before, after, ledger, rendered.reformatted)


@dataclass(frozen=True)
class _Rendered:
    text: str
    reformatted: int
    data: Any = None  # the parsed new text, when the renderer parsed it already


def _render(path: Path, text: str, entry: Mapping[str, Any]) -> _Rendered:
    newline = _newline(text)
    if path.suffix.lower() == ".json":
        after, _ = _render_json(path, _lf(text), entry)
        after = _with_newline(after, newline)
        return _Rendered(after, _changed_lines(text, after))
    appended = _append_as_text(path, text, entry, newline)
    if appended is not None:
        return appended
    after, _ = _render_yaml(path, _lf(text), entry)
    after = _with_newline(after, newline)
    return _Rendered(after, _changed_lines(text, after))


def _newline(text: str) -> str:
    """The line ending of ``text``: CRLF when its last line break is one, else LF."""
    end = text.rfind("\n")
    return "\r\n" if end > 0 and text[end - 1] == "\r" else "\n"


def _lf(text: str) -> str:
    """``text`` with CRLF line breaks as LF (what the round-trip writers read and write)."""
    return text.replace("\r\n", "\n")


def _with_newline(text: str, newline: str) -> str:
    """LF text with ``newline`` line breaks."""
    return text if newline == "\n" else _lf(text).replace("\n", newline)


def _parse(path: Path, text: str) -> Any:
    try:
        return _yaml.parse(
            text, where=str(path), is_json=path.suffix.lower() == ".json", error=LedgerError
        )
    except LedgerError as exc:  # pragma: no cover - the renderers emit valid YAML/JSON
        raise LedgerError(f"{exc} (the ledger was left unchanged)") from None


def _validate(path: Path, data: Any) -> Ledger:
    try:
        return parse_ledger(data, path=path)
    except LedgerError as exc:
        raise LedgerError(f"{exc} (the ledger was left unchanged)") from None


def _remove_stray_temporaries(path: Path) -> None:
    """Remove temporary files a killed writer of this ledger left (the caller holds the lock)."""
    for stray in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            stray.unlink()


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


# ------------------------------------------------------------------------ YAML: text append

#: An ISO time that YAML reads back as the same text without quotes.
_PLAIN_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?")
#: How far back from the end of the file the start of the last transition is looked for.
_MAX_ENTRY_LINES = 200


class _NotPlain(Exception):
    """A value that cannot be written on one line of flow YAML."""


def _append_as_text(
    path: Path, text: str, entry: Mapping[str, Any], newline: str = "\n"
) -> _Rendered | None:
    """Append the entry as new lines at the end of the file, touching no existing byte.

    Applies when the last entry of the file is a transition (``transitions`` is the last
    top-level key, with at least one entry: the usual layout). The new entry copies that
    entry's style (flow ``- {...}`` or block) and indentation. Existing bytes stay as they are
    and the new lines start at the items' column after the end of a valid document, so the
    document can only gain an item; the result is parsed once (the parse also serves the
    validation) and must end with ``transitions`` whose last item is exactly the new entry —
    otherwise ``None`` is returned and the round-trip writer is used instead.
    """
    lines = text.splitlines(keepends=True)
    last = _last_content_line(lines)
    style = _entry_style(lines, last) if last is not None else None
    if last is None or style is None:
        return None
    dash, key, flow = style
    try:
        rendered = _render_entry(entry, dash, key, flow=flow).replace("\n", newline)
    except _NotPlain:
        return None
    # at the very end: text after the last entry (blank lines, comments) keeps its meaning too
    # (a `|+` block scalar keeps its trailing blank lines), and the new line at the items'
    # column closes whatever the last entry left open; in the file's line ending
    after = (text if text.endswith("\n") or not text else text + newline) + rendered
    try:
        new = _yaml.parse(after, where=str(path), error=LedgerError)
    except LedgerError:
        return None
    appended = (
        isinstance(new, dict)
        and list(new)[-1:] == ["transitions"]
        and isinstance(new["transitions"], list)
        and len(new["transitions"]) >= 2
        and new["transitions"][-1] == dict(entry)
    )
    return _Rendered(after, 0, new) if appended else None


def _last_content_line(lines: list[str]) -> int | None:
    """Index of the last line that is neither blank nor a comment."""
    for i in range(len(lines) - 1, -1, -1):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            return None if stripped in ("...", "---") else i
    return None


def _entry_style(lines: list[str], last: int) -> tuple[int, int, bool] | None:
    """``(dash column, key column, flow)`` of the sequence entry that ends at line ``last``."""
    for i in range(last, max(-1, last - _MAX_ENTRY_LINES), -1):
        line = lines[i].rstrip("\r\n")
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        if body.startswith("\t"):
            return None
        indent = len(line) - len(body)
        if body.startswith("- "):
            rest = body[1:]
            value = rest.lstrip(" ")
            key = indent + 1 + len(rest) - len(value)
            return indent, key, value.startswith("{")
        if indent == 0:
            return None  # reached a top-level key: not a sequence entry
    return None


def _render_entry(entry: Mapping[str, Any], dash: int, key: int, *, flow: bool) -> str:
    pairs = [f"{_flow(k)}: {_value(k, v)}" for k, v in entry.items()]
    if flow:
        return " " * dash + "- {" + ", ".join(pairs) + "}\n"
    first = " " * dash + "-" + " " * (key - dash - 1) + pairs[0] + "\n"
    return first + "".join(" " * key + pair + "\n" for pair in pairs[1:])


def _value(key: Any, value: Any) -> str:
    if key == "at" and isinstance(value, str) and _PLAIN_TIME.fullmatch(value):
        return value
    return _flow(value)


def _flow(value: Any) -> str:
    """``value`` as one line of flow YAML, quoted as the reader needs (YAML 1.1 rules)."""
    import yaml

    try:
        out = yaml.safe_dump(
            value, default_flow_style=True, sort_keys=False, width=2**31, allow_unicode=True
        )
    except yaml.YAMLError as exc:
        raise _NotPlain(str(exc)) from None
    out = out.removesuffix("\n...\n").removesuffix("\n")
    if "\n" in out:
        raise _NotPlain(out)
    return out


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

    _yaml.parse(text, where=str(path), error=LedgerError)  # the reader's rules and messages
    yaml = _yaml_engine(text)
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise LedgerError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, CommentedMap):
        raise LedgerError(f"{path}: the ledger must be a mapping with version, prompts, ...")
    transitions = data.get("transitions")
    if transitions is None or (isinstance(transitions, CommentedSeq) and not transitions):
        transitions = CommentedSeq()  # `transitions: []` (a new ledger) grows as a block list
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
    if isinstance(value, list | tuple):
        from ruamel.yaml.comments import CommentedSeq

        items = CommentedSeq(_yaml_value("", item) for item in value)
        items.fa.set_flow_style()
        return items
    if isinstance(value, str) and not _reads_back(value):
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        return DoubleQuotedScalarString(value)
    return value


def _reads_back(text: str) -> bool:
    """Whether ``text`` written plain reads back as the same text (``yes`` would not), in a
    block and in a flow collection (YAML 1.1 refuses a plain ``:x`` there)."""
    try:
        return _yaml.parse(text) == text and _yaml.parse(f"[{text}]") == [text]
    except PromptstateError:
        return False


def _declare(path: Path, text: str, new: _New) -> str:
    """The ledger text with new prompts, revisions, experiments and consumers declared."""
    newline = _newline(text)
    text = _lf(text)
    is_json = path.suffix.lower() == ".json"
    if is_json:
        data = _yaml.parse(text, where=str(path), is_json=True, error=LedgerError)
        mapping: Any = dict
    else:
        from ruamel.yaml.comments import CommentedMap
        from ruamel.yaml.error import YAMLError

        _yaml.parse(text, where=str(path), error=LedgerError)  # the reader's rules and messages
        yaml = _yaml_engine(text)
        try:
            data = yaml.load(text)
        except YAMLError as exc:
            raise LedgerError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
        mapping = CommentedMap
    if not isinstance(data, mapping):
        raise LedgerError(f"{path}: the ledger must be a mapping with version, prompts, ...")
    targets: list[tuple[str, Any, Mapping[str, Mapping[str, Any]]]] = [
        (
            f"prompts.{prompt}.revisions",
            _revisions_of(path, data, prompt, mapping, create=prompt in new.prompts),
            revisions,
        )
        for prompt, revisions in new.revisions.items()
    ]
    for key, entries in (("experiments", new.experiments), ("consumers", new.consumers)):
        if entries:
            targets.append((key, _section(path, data, key, mapping), entries))
    for where, target, entries in targets:
        for name, fields in entries.items():
            if name in target:
                raise LedgerError(
                    f"{path}: {where}.{name}: already declared; record the transition without "
                    "declaring it (nothing was written)"
                )
            target[name] = _declaration(path, target, fields)
    if is_json:
        out = json.dumps(data, indent=_json_indent(text), ensure_ascii=False) + (
            "\n" if text.endswith("\n") else ""
        )
        return _with_newline(out, newline)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return _with_newline(buffer.getvalue(), newline)


def _section(path: Path, data: Any, key: str, mapping: Any) -> Any:
    """The top-level mapping ``key`` (``prompts``, ``experiments``, ``consumers``), created
    before ``transitions`` when missing; an empty one (``{}``, a new ledger's) as a block."""
    if data.get(key) is None or (isinstance(data[key], mapping) and not data[key]):
        if key in data:  # `key:` with no value, or `key: {}`
            data[key] = mapping()
        elif mapping is dict:  # keep `transitions` last
            items = list(data.items())
            at = next((i for i, (k, _) in enumerate(items) if k == "transitions"), len(items))
            items.insert(at, (key, {}))
            data.clear()
            data.update(items)
        else:
            keys = list(data)
            at = keys.index("transitions") if "transitions" in keys else len(keys)
            data.insert(at, key, mapping())
    if not isinstance(data[key], mapping):
        raise LedgerError(f"{path}: `{key}` must be a mapping (id -> entry)")
    return data[key]


def _revisions_of(path: Path, data: Any, prompt: str, mapping: Any, *, create: bool) -> Any:
    """The ``revisions`` mapping of ``prompt``; a new prompt entry when ``create``."""
    prompts: Any = _section(path, data, "prompts", mapping) if create else data.get("prompts")
    entry: Any = prompts.get(prompt) if isinstance(prompts, mapping) else None
    if entry is None and create:
        entry = mapping()
        entry["revisions"] = mapping()
        prompts[prompt] = entry
        return entry["revisions"]
    revisions: Any = entry.get("revisions") if isinstance(entry, mapping) else None
    if not isinstance(revisions, mapping):
        raise LedgerError(
            f"{path}: prompts.{prompt}: the prompt is not declared (with its revisions); "
            "declare it with its first revision (`promptstate ledger record revision --prompt "
            f"{prompt} --revision R --text-file FILE`) (nothing was written)"
        )
    return revisions


#: Texts a literal block scalar holds exactly: printable characters, tabs and line feeds.
_LITERAL_SAFE = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]*")


def _declaration(path: Path, siblings: Any, fields: Mapping[str, Any]) -> Any:
    """A new revision's mapping, in the style of the revision declared before it."""
    if path.suffix.lower() == ".json":
        return dict(fields)
    from ruamel.yaml.comments import CommentedMap

    new = CommentedMap()
    for key, value in fields.items():
        new[key] = _yaml_value(key, value)
    text = fields.get("text")
    if isinstance(text, str) and "\n" in text.rstrip("\n") and _LITERAL_SAFE.fullmatch(text):
        # a multi-line inline text reads best as a literal block (`text: |`), which only a
        # block mapping can hold; other texts stay double-quoted with escapes (a literal block
        # cannot keep a carriage return or a control character), and the emitter itself falls
        # back to a quoted scalar in a flow context
        from ruamel.yaml.scalarstring import LiteralScalarString

        new["text"] = LiteralScalarString(text)
        return new
    last = siblings[list(siblings)[-1]] if len(siblings) else None
    if last is None or (isinstance(last, CommentedMap) and last.fa.flow_style()):
        new.fa.set_flow_style()
    return new


# ------------------------------------------------------------------------------------- JSON


def _render_json(path: Path, text: str, entry: Mapping[str, Any]) -> tuple[str, int]:
    data = _yaml.parse(text, where=str(path), is_json=True, error=LedgerError)
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
