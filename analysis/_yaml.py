"""The one reader of YAML and JSON inputs: ledgers, metrics files, suite configs, column maps.

Every YAML or JSON file promptstate reads goes through :func:`load` (or :func:`read_text` /
:func:`parse` for the two halves), so every input gets the same rules:

* **bounded reads** — at most :data:`MAX_BYTES` (64 MiB) are read; a larger file, a device
  such as ``/dev/zero`` or a directory is refused before anything is parsed;
* **UTF-8 only** — a byte that is not UTF-8 is reported with its line and column (a leading
  byte-order mark is allowed and dropped);
* **no duplicate keys** — a mapping that repeats a key is refused with the line of the repeat
  (YAML and JSON parsers otherwise keep the later value silently);
* **one-line errors** — syntax errors read ``FILE:LINE:COL: not valid YAML: <problem>``;
* **timestamps stay text** — ``2026-11-02T09:00:00Z`` is returned as written, so each schema
  parses times strictly (a naive time is an error there, not silently UTC);
* **no bombs** — recursive aliases, more than :data:`MAX_NODES` values once aliases are
  expanded, and nesting deeper than the parser allows are refused.

YAML is read with PyYAML's safe loader (its libyaml-backed ``CSafeLoader`` where available:
about 8x faster than the pure-Python parsers, which matters for ledgers with thousands of
transitions), so the YAML 1.1 rules apply (``yes``/``no``/``on``/``off`` are booleans; quote
them to mean text). ``ruamel.yaml`` is used only by the ledger writer, for comment-preserving
edits. JSON (a ``.json`` suffix) is read with :mod:`json`; ``NaN`` and ``Infinity`` are refused.

Errors are raised as the caller's :class:`~analysis.errors.PromptstateError` subclass (exit
code 2 in the CLI) and name the file.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analysis.errors import PromptstateError

__all__ = ["MAX_BYTES", "MAX_NODES", "load", "parse", "read_bytes", "read_text"]

#: The most bytes read from one input file (64 MiB); larger inputs are refused.
MAX_BYTES = 64 * 1024 * 1024
#: The most values (scalars, lists, mappings) one YAML document may hold, aliases expanded.
MAX_NODES = 10_000_000

ErrorType = Callable[[str], PromptstateError]


def read_bytes(
    path: str | Path,
    *,
    what: str = "file",
    error: ErrorType = PromptstateError,
    max_bytes: int | None = None,
) -> bytes:
    """Read at most ``max_bytes`` (default :data:`MAX_BYTES`) of a file, or raise ``error``.

    Args:
        path: The file.
        what: What the file is, for messages (``ledger``, ``metrics file``...).
        error: The exception type raised (a :class:`PromptstateError` subclass).
        max_bytes: The cap; a file with more bytes is refused.

    Raises:
        PromptstateError: (as ``error``) the file is missing, a directory, unreadable or larger
            than the cap.
    """
    path = Path(path)
    cap = MAX_BYTES if max_bytes is None else max_bytes
    try:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
    except FileNotFoundError:
        raise error(f"{path}: cannot read the {what}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: cannot read the {what}: it is a directory; pass the file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise error(
            f"{path}: the {what} is larger than {_size(cap)} (or endless, like a device); "
            "pass a regular file"
        )
    return data


def read_text(
    path: str | Path,
    *,
    what: str = "file",
    error: ErrorType = PromptstateError,
    max_bytes: int | None = None,
) -> str:
    """Read a UTF-8 text file with :func:`read_bytes`'s bounds; a leading BOM is dropped.

    Raises:
        PromptstateError: (as ``error``) see :func:`read_bytes`, or the bytes are not UTF-8
            (the message gives the line and column of the first bad byte).
    """
    data = read_bytes(path, what=what, error=error, max_bytes=max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[: exc.start]
        line = head.count(b"\n") + 1
        col = exc.start - (head.rfind(b"\n") + 1) + 1
        raise error(
            f"{path}:{line}:{col}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save it as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def load(
    path: str | Path,
    *,
    what: str = "file",
    error: ErrorType = PromptstateError,
    max_bytes: int | None = None,
) -> Any:
    """Read and parse a YAML file, or a JSON file when its suffix is ``.json``.

    Args:
        path: The file.
        what: What the file is, for messages.
        error: The exception type raised (a :class:`PromptstateError` subclass).
        max_bytes: The read cap (default :data:`MAX_BYTES`).

    Returns:
        The parsed document: dicts, lists, str, int, float, bool and None (timestamps as text);
        ``None`` for an empty YAML file.

    Raises:
        PromptstateError: (as ``error``) see :func:`read_text` and :func:`parse`.
    """
    path = Path(path)
    text = read_text(path, what=what, error=error, max_bytes=max_bytes)
    return parse(text, where=str(path), is_json=path.suffix.lower() == ".json", error=error)


def parse(
    text: str,
    *,
    where: str = "<text>",
    is_json: bool = False,
    error: ErrorType = PromptstateError,
) -> Any:
    """Parse YAML (or JSON) text with the rules of this module.

    Args:
        text: The document.
        where: The name used in messages (a path).
        is_json: Parse as JSON instead of YAML.
        error: The exception type raised.

    Raises:
        PromptstateError: (as ``error``) a syntax error, a duplicate key, a recursive alias,
            too many values or too deep a nesting; one line naming ``where``, line and column.
    """
    if is_json:
        return _parse_json(text, where, error)
    data = _parse_yaml(text, where, error)
    if "*" in text:  # without an alias no value is shared: the size is bounded by the text
        _check_size(data, where, error)
    return data


# ------------------------------------------------------------------------------------- YAML


@functools.cache
def _loader_class() -> type:
    """A PyYAML safe loader (libyaml-backed where available) that keeps timestamps as text and
    refuses duplicate keys. Built once."""
    import yaml

    base: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    timestamp = "tag:yaml.org,2002:timestamp"
    merge = "tag:yaml.org,2002:merge"
    text = "tag:yaml.org,2002:str"

    class _Loader(base):
        """Safe loader: timestamps stay text; a repeated mapping key is an error."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if key_node.tag == merge:
                        continue
                    if key_node.tag == text and isinstance(key_node, yaml.ScalarNode):
                        key = key_node.value  # the common case: no need to construct it
                    else:
                        key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: the base class reports it
                        continue
                    if first is not None:
                        raise _Duplicate(key, key_node.start_mark, first.start_mark)
                    seen[key] = key_node
            return super().construct_mapping(node, deep=deep)

    _Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != timestamp]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    return _Loader


class _Duplicate(Exception):
    def __init__(self, key: Any, mark: Any, first: Any) -> None:
        super().__init__(key)
        self.key = key
        self.mark = mark
        self.first = first


def _parse_yaml(text: str, where: str, error: ErrorType) -> Any:
    import yaml

    loader = _loader_class()
    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader subclass
    except _Duplicate as dup:
        raise error(
            f"{where}:{dup.mark.line + 1}:{dup.mark.column + 1}: duplicate key {dup.key!r} "
            f"(first at line {dup.first.line + 1}); a mapping holds each key once — remove "
            "one of them"
        ) from None
    except yaml.reader.ReaderError as exc:
        head = text[: exc.position]
        line, col = head.count("\n") + 1, exc.position - (head.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise error(
            f"{where}:{line}:{col}: not valid YAML: unacceptable character #x{ord(char):04x} "
            f"({exc.reason})"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        context = exc.context if exc.problem and exc.context else None
        tail = f" ({' '.join(str(context).split())})" if context else ""
        raise error(f"{where}{pos}: not valid YAML: {problem}{tail}") from None
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise error(f"{where}: not valid YAML: nested too deeply") from None


# ------------------------------------------------------------------------------------- JSON


class _JsonDuplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonDuplicate(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _parse_json(text: str, where: str, error: ErrorType) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _JsonDuplicate as dup:
        line, col = _json_duplicate_position(text, dup.key)
        raise error(
            f"{where}:{line}:{col}: duplicate key {dup.key!r}; a JSON object holds each key "
            "once — remove one of them"
        ) from None
    except json.JSONDecodeError as exc:
        raise error(f"{where}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    except ValueError as exc:  # parse_constant
        raise error(
            f"{where}: not valid JSON: {exc} is not a JSON number; write a number or null"
        ) from None
    except RecursionError:
        raise error(f"{where}: not valid JSON: nested too deeply") from None


def _json_duplicate_position(text: str, key: str) -> tuple[int, int]:
    """Line and column of the repeated key: the object whose pairs repeat it, found with the
    pure-Python scanner (which passes positions), only on this error path."""
    from json import decoder, scanner

    found: list[int] = []

    def _pairs(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        return pairs

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> Any:
        start = s_and_end[1]
        strict, scan_once, _hook, _pairs_hook, memo = args
        parse: Any = decoder.JSONObject  # type: ignore[attr-defined]
        pairs, end = parse(s_and_end, strict, scan_once, None, _pairs, memo)
        keys = [k for k, _ in pairs]
        if not found and key in keys and keys.count(key) > 1:
            found.append(_second_key_offset(text, start, end, key))
        return dict(pairs), end

    dec = json.JSONDecoder()
    setattr(dec, "parse_object", parse_object)  # noqa: B010 - the scanner reads it
    setattr(dec, "scan_once", getattr(scanner, "py_make_scanner")(dec))  # noqa: B009, B010
    with contextlib.suppress(ValueError, RecursionError):
        dec.decode(text)
    offset = found[0] if found else 0
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


_COLON = re.compile(r"\s*:")


def _second_key_offset(text: str, start: int, end: int, key: str) -> int:
    """Offset of the second ``"key":`` at the object's own level within ``text[start:end]``."""
    target = json.dumps(key)
    depth, i, hits = 0, start, 0
    while i < end:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < end and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if depth == 0 and text[i : j + 1] == target and _COLON.match(text, j + 1):
                hits += 1
                if hits == 2:
                    return i
            i = j + 1
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        i += 1
    return max(start - 1, 0)


# --------------------------------------------------------------------------------- size check


def _check_size(data: Any, where: str, error: ErrorType) -> None:
    """Refuse recursive aliases and documents of more than :data:`MAX_NODES` expanded values.

    YAML aliases share one Python object, so a small file can stand for a huge (or cyclic)
    tree that hangs or crashes whoever walks it. The walk is iterative and visits each shared
    object once (its expanded size is memoised), so it is linear in the file.
    """
    if not isinstance(data, dict | list):
        return
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        ident = id(node)
        if done:
            on_path.discard(ident)
            children = node.values() if isinstance(node, dict) else node
            total = 1
            for child in children:
                total += sizes.get(id(child), 1) if isinstance(child, dict | list) else 1
            sizes[ident] = total
            if total > MAX_NODES:
                raise error(
                    f"{where}: the document holds more than {MAX_NODES:,} values once its "
                    "aliases are expanded; write it out without aliases, or split it"
                )
            continue
        if ident in sizes:
            continue
        if ident in on_path:
            raise error(f"{where}: a YAML alias refers to itself (a recursive structure)")
        on_path.add(ident)
        stack.append((node, True))
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                child_id = id(child)
                if child_id in on_path:
                    raise error(f"{where}: a YAML alias refers to itself (a recursive structure)")
                if child_id not in sizes:
                    stack.append((child, False))


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    return f"{n:,} bytes"
