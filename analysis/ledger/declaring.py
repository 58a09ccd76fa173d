"""Keeping a ledger by commands only: create an empty ledger, declare revisions and consumers.

:func:`init_ledger` (``promptstate ledger init``) creates a valid ledger with no prompts and no
transitions, atomically, and never over an existing file. :func:`declare_revision`
(``promptstate ledger record revision``) declares one revision — and its prompt, when that is
new — and :func:`declare_consumer` (``promptstate ledger record consumer``) one downstream
consumer, each through the one ledger writer (:mod:`analysis.ledger.writer`): under the
ledger's lock, at the real file behind a symbolic link, validated against the whole ledger
before an atomic rename, comments and layout kept. With ``ledger record deploy`` and ``ledger
record start`` (which declare what they name, see :mod:`analysis.ledger.recording`), a team
keeps its ledger without editing it by hand.

Recording never changes or removes a declaration: declaring what is declared already with the
same fields writes nothing (exit 0), with other fields it is refused (a changed text or
contract is a new revision; a consumer's accepted contracts are edited by hand).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.errors import SCHEMA_VERSION, LedgerError
from analysis.ledger.loading import load_ledger
from analysis.ledger.model import ID_RULE, Ledger, valid_id
from analysis.ledger.recording import (
    check_declared_revision,
    load_current,
    require_ledger,
    revision_fields,
    unified_diff,
)
from analysis.ledger.writer import declare_and_append, ledger_lock, real_path

__all__ = [
    "EMPTY_LEDGER_YAML",
    "DeclareResult",
    "declare_consumer",
    "declare_revision",
    "init_ledger",
]

#: The text ``ledger init`` writes for a YAML ledger.
EMPTY_LEDGER_YAML = """\
# promptstate rollout ledger (docs/ledger.md). Keep it with `promptstate ledger record`:
# `record deploy --text-file` / `record revision` declare prompts and revisions,
# `record start --arms` experiments, `record consumer` consumers.
version: 1
prompts: {}
experiments: {}
consumers: {}
transitions: []
"""

#: The document ``ledger init`` writes for a JSON ledger (``.json``).
EMPTY_LEDGER_JSON: dict[str, Any] = {
    "version": 1,
    "prompts": {},
    "experiments": {},
    "consumers": {},
    "transitions": [],
}


@dataclass(frozen=True)
class DeclareResult:
    """What :func:`declare_revision`, :func:`declare_consumer` or :func:`init_ledger` did.

    Attributes:
        path: The ledger file, as given.
        written: Whether the file was written (``False`` on a dry run, or when everything
            was declared already).
        dry_run: Whether this was a dry run.
        declared: The header entries declared, e.g. ``("prompts.support-assistant",
            "prompts.support-assistant.revisions.r41")``; empty when they were declared
            already with the same fields.
        ledger: The validated ledger after the change.
        diff: A unified diff of the change (empty when nothing changed).
    """

    path: Path
    written: bool
    dry_run: bool
    declared: tuple[str, ...]
    ledger: Ledger
    diff: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: the shape of ``ledger record`` with ``index`` and ``transition`` null."""
        return {
            "schema_version": SCHEMA_VERSION,
            "ledger": str(self.path),
            "written": self.written,
            "dry_run": self.dry_run,
            "index": None,
            "transition": None,
            "declared": list(self.declared),
        }


def init_ledger(path: str | Path) -> DeclareResult:
    """Create an empty, valid ledger: no prompts, no transitions (``promptstate ledger init``).

    YAML (:data:`EMPTY_LEDGER_YAML`), or JSON when the name ends in ``.json``. The file is
    written to a temporary file in the target's folder and linked into place, which fails when
    the name exists: an existing file (even an empty one) is never overwritten, and a concurrent
    ``init`` of the same path leaves one ledger. A symbolic link that points nowhere yet
    creates its target.

    Raises:
        LedgerError: the path exists (naming what to do), or its folder does not exist or is
            not writable; nothing was written.
    """
    given = Path(path)
    real = real_path(given)
    if os.path.lexists(real):
        what = "an empty file" if real.is_file() and real.stat().st_size == 0 else "a file"
        if real.is_dir():
            what = "a directory"
        raise LedgerError(
            f"{given}: already exists ({what}); `ledger init` never overwrites — record in the "
            "existing ledger with `promptstate ledger record`, or remove it first (nothing was "
            "written)"
        )
    if not real.parent.is_dir():
        raise LedgerError(
            f"{given}: the folder {real.parent} does not exist; create it first, or check the "
            "path (nothing was written)"
        )
    if real.suffix.lower() == ".json":
        text = json.dumps(EMPTY_LEDGER_JSON, indent=2) + "\n"
    else:
        text = EMPTY_LEDGER_YAML
    _create_exclusively(given, real, text.encode("utf-8"))
    ledger = load_ledger(real)
    return DeclareResult(given, True, False, (), ledger)


def _create_exclusively(given: Path, real: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``real``: complete or absent, never over an existing file."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    except OSError as exc:
        raise LedgerError(
            f"{given}: cannot write in {real.parent} ({exc.strerror}); the folder must be "
            "writable (nothing was written)"
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        try:
            os.link(tmp, real)  # atomic, and fails when the name exists
        except FileExistsError:
            raise LedgerError(
                f"{given}: already exists (created meanwhile); `ledger init` never overwrites "
                "(nothing was written)"
            ) from None
        except OSError:  # a filesystem without hard links: create exclusively, then write
            try:
                out = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                raise LedgerError(
                    f"{given}: already exists (created meanwhile); `ledger init` never "
                    "overwrites (nothing was written)"
                ) from None
            with os.fdopen(out, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def declare_revision(
    ledger: str | Path,
    prompt: str,
    revision: str,
    *,
    text: str | None = None,
    text_file: str | Path | None = None,
    contract: str | None = None,
    parent: str | None = None,
    dry_run: bool = False,
) -> DeclareResult:
    """Declare a revision of ``prompt`` (and the prompt, when new) without a transition.

    For a revision served first by an experiment (``ledger record start --arms``) rather than
    deployed. ``text`` (inline) or ``text_file`` (stored relative to the ledger), each with its
    ``text_sha256``; ``contract`` and ``parent`` optional.

    Returns:
        A :class:`DeclareResult`; ``declared`` is empty (nothing written) when the revision is
        declared already with the same fields.

    Raises:
        LedgerError: a malformed argument, a missing ledger (naming ``ledger init``), a
            revision declared with other fields or under another prompt, or a ledger that the
            declaration would make invalid; the file is unchanged.
    """
    path = Path(ledger)
    where = f"{path}: prompts.{prompt}.revisions.{revision}"
    for kind, name in (("prompt", prompt), ("revision", revision)):
        if not isinstance(name, str) or not valid_id(name):
            raise LedgerError(
                f"{path}: {kind} id {name!r} is not valid: {ID_RULE} (nothing was written)"
            )
    given = {"text": text, "text_file": text_file, "contract": contract, "parent": parent}
    fields = revision_fields(path, where, given)
    require_ledger(path)
    with ledger_lock(path) as real:
        current = load_current(path, real)
        declared = current.revisions.get(revision)
        if declared is not None:
            if declared.prompt != prompt:
                raise LedgerError(
                    f"{where}: revision id {revision!r} is declared already under prompt "
                    f"{declared.prompt!r}; revision ids are unique across the ledger — choose "
                    "another id (nothing was written)"
                )
            check_declared_revision(current, path, revision, fields)
            return DeclareResult(path, False, dry_run, (), current)
        names: tuple[str, ...] = (f"prompts.{prompt}.revisions.{revision}",)
        fresh = prompt not in current.prompts
        if fresh:
            names = (f"prompts.{prompt}", *names)
        result = declare_and_append(
            path,
            None,
            revisions={prompt: {revision: fields}},
            prompts=(prompt,) if fresh else (),
            dry_run=dry_run,
            locked=True,
            resolved=real,
        )
    diff = unified_diff(path, result.before, result.after)
    return DeclareResult(path, result.written, dry_run, names, result.ledger, diff)


def declare_consumer(
    ledger: str | Path,
    name: str,
    *,
    prompt: str,
    accepts: Sequence[str],
    description: str | None = None,
    dry_run: bool = False,
) -> DeclareResult:
    """Declare a downstream consumer of ``prompt``'s output that reads the ``accepts`` contracts.

    Returns:
        A :class:`DeclareResult`; ``declared`` is empty (nothing written) when the consumer is
        declared already with the same prompt and contracts.

    Raises:
        LedgerError: a malformed argument, a missing ledger, an undeclared prompt, or a consumer
            declared with another prompt or other contracts (edit those by hand); the file is
            unchanged.
    """
    path = Path(ledger)
    where = f"{path}: consumers.{name}"
    if not isinstance(name, str) or not valid_id(name):
        raise LedgerError(
            f"{path}: consumer id {name!r} is not valid: {ID_RULE} (nothing was written)"
        )
    contracts = list(accepts)
    if not contracts:
        raise LedgerError(
            f"{where}: a consumer accepts at least one contract version; give --accepts VERSION "
            "(nothing was written)"
        )
    for version in contracts:
        if not isinstance(version, str) or not version.strip():
            raise LedgerError(
                f"{where}: accepted contract {version!r} must be non-empty text (nothing was "
                "written)"
            )
    if len(set(contracts)) != len(contracts):
        raise LedgerError(
            f"{where}: a contract is accepted twice; give each once (nothing was written)"
        )
    fields: dict[str, Any] = {"prompt": prompt, "accepts": contracts}
    if description is not None:
        fields["description"] = description
    require_ledger(path)
    with ledger_lock(path) as real:
        current = load_current(path, real)
        if prompt not in current.prompts:
            known = ", ".join(sorted(current.prompts)) or "none yet"
            raise LedgerError(
                f"{where}: prompt {prompt!r} is not declared (declared: {known}); declare it with "
                f"its first revision (`promptstate ledger record revision --prompt {prompt} "
                "--revision R --text-file FILE`) (nothing was written)"
            )
        existing = current.consumers.get(name)
        if existing is not None:
            if existing.prompt != prompt or list(existing.accepts) != contracts:
                raise LedgerError(
                    f"{where}: already declared (prompt {existing.prompt!r}, accepts "
                    f"{list(existing.accepts)}); recording never changes a declaration — edit "
                    "it in the ledger by hand and check it with `promptstate ledger validate` "
                    "(nothing was written)"
                )
            return DeclareResult(path, False, dry_run, (), current)
        result = declare_and_append(
            path, None, consumers={name: fields}, dry_run=dry_run, locked=True, resolved=real
        )
    diff = unified_diff(path, result.before, result.after)
    names = (f"consumers.{name}",)
    return DeclareResult(path, result.written, dry_run, names, result.ledger, diff)
