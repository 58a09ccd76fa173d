"""Reading a suite of the baseline store, every read cross-checked against the journal.

:class:`SuiteReader` is the reading half of :class:`~analysis.evals.store.Suite`: the journal
(the commit log), the reference, the versions and their scores. Every read of a version compares
its ``meta.json`` with the journal entry that created it and its ``scores.parquet`` with both
recorded hashes (:mod:`analysis.evals._integrity`); a disagreement is an
:class:`~analysis.errors.InvalidBaselineError` (exit code 3).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.errors import BaselineError, InvalidBaselineError, ResultsError
from analysis.evals._files import JournalText, check_suite_name, read_journal
from analysis.evals._integrity import meta_mismatches, verify_suite
from analysis.evals.models import (
    BaselineVersion,
    JournalEntry,
    Reference,
    SuiteConfig,
    VerifyReport,
)

if TYPE_CHECKING:
    from analysis.evals.results import EvalResults

__all__ = ["State", "SuiteReader"]


@dataclass(frozen=True)
class State:
    """A suite's committed journal, indexed."""

    entries: tuple[JournalEntry, ...]
    versions: Mapping[str, JournalEntry]  # version id -> creating entry
    named: frozenset[str]  # every version id an entry names

    @property
    def reference(self) -> Reference:
        """The reference after the last entry (none before the first anchor)."""
        return self.entries[-1].reference if self.entries else Reference(None, None)


class SuiteReader:
    """The reading half of :class:`~analysis.evals.store.Suite` (no lock: readers take none).

    Args:
        root: The store directory.
        name: The suite name.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.name = check_suite_name(name)
        self.path = root / name

    @property
    def config(self) -> SuiteConfig:
        """The suite's config (re-read each time)."""
        return SuiteConfig.load(self.path / "suite.yaml")

    @property
    def journal_path(self) -> Path:
        """``journal.jsonl``."""
        return self.path / "journal.jsonl"

    def _state(self, text: JournalText | None = None) -> State:
        text = text if text is not None else read_journal(self.journal_path)
        entries: list[JournalEntry] = []
        versions: dict[str, JournalEntry] = {}
        for i, rec in enumerate(text.records, start=1):
            try:
                entry = JournalEntry.from_dict(rec)
            except (KeyError, ValueError, TypeError) as exc:
                raise InvalidBaselineError(
                    f"{self.journal_path}: entry {i} is malformed ({exc!r}); restore the journal "
                    f"from git (`git checkout -- {self.journal_path}`)"
                ) from exc
            if entry.seq != i:
                raise InvalidBaselineError(
                    f"{self.journal_path}: entry {i} is numbered {entry.seq} (lines removed, "
                    f"reordered or duplicated); restore the journal from git"
                )
            if entry.created and entry.version is not None:
                if entry.version in versions:
                    raise InvalidBaselineError(
                        f"{self.journal_path}: entry {i} creates {entry.version} again (entry "
                        f"{versions[entry.version].seq} created it); restore the journal from git"
                    )
                versions[entry.version] = entry
            entries.append(entry)
        named = {e.version for e in entries if e.version is not None}
        named |= {e.reference.version for e in entries if e.reference.version is not None}
        return State(tuple(entries), versions, frozenset(named | set(versions)))

    def journal(self) -> tuple[JournalEntry, ...]:
        """Every committed journal entry, oldest first."""
        return self._state().entries

    def reference(self) -> Reference:
        """The current reference (the journal's last entry), checked against its version.

        Raises:
            InvalidBaselineError: The reference names a version no entry created, or with
                another revision than the version's, or the version's metadata disagrees with
                the journal.
        """
        state = self._state()
        ref = state.reference
        self._check_reference(ref, state)
        return ref

    def _check_reference(self, ref: Reference, state: State, *, scores: bool = False) -> None:
        """Raise :class:`InvalidBaselineError` unless ``ref`` agrees with the journal and the
        metadata of its version (and, with ``scores``, with its scores' bytes)."""
        if ref.version is None:
            return
        origin = state.versions.get(ref.version)
        if origin is None or origin.revision != ref.revision:
            made = "no entry created it" if origin is None else f"it is {origin.revision}'s"
            raise InvalidBaselineError(
                f"{self.journal_path}: the reference is {ref.version} as a baseline of "
                f"{ref.revision}, but {made}; the journal was altered — restore it from git"
            )
        meta = self._read_meta(ref.version, state)
        if scores:
            self._scores_bytes(ref.version, meta)

    def versions(self) -> tuple[BaselineVersion, ...]:
        """Every committed version, oldest first, each verified (metadata and scores)."""
        state = self._state()
        return tuple(self._verified(v, state) for v in state.versions)

    def version(self, version: str) -> BaselineVersion:
        """One committed version, verified: its metadata against the journal entry that created
        it, its scores against both recorded hashes.

        Raises:
            BaselineError: No such version (bad input; the message lists the known ones).
            InvalidBaselineError: The version's files disagree with the journal or are missing.
        """
        state = self._state()
        if version not in state.versions:
            known = ", ".join(state.versions) or "none"
            raise BaselineError(
                f"{self.path}: suite {self.name!r} has no version {version!r} (versions: {known})"
            )
        return self._verified(version, state)

    def _verified(self, version: str, state: State) -> BaselineVersion:
        meta = self._read_meta(version, state)
        self._scores_bytes(version, meta)
        return meta

    def _read_meta(self, version: str, state: State) -> BaselineVersion:
        """The metadata of a committed version, cross-checked with its journal entry."""
        created = state.versions.get(version)
        if created is None:
            raise InvalidBaselineError(
                f"{self.journal_path}: names version {version!r}, which no entry created; "
                "restore the journal from git"
            )
        meta_path = self.path / "versions" / version / "meta.json"
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
            meta = BaselineVersion.from_dict(raw)
        except FileNotFoundError:
            raise InvalidBaselineError(
                f"{meta_path}: metadata of committed version {version} is missing; restore it "
                f"from git (`git checkout -- {meta_path}`)"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidBaselineError(
                f"{meta_path}: malformed metadata ({exc!r}); restore it from git"
            ) from exc
        problems = meta_mismatches(meta, version, self.name, created, raw)
        if problems:
            raise InvalidBaselineError(
                f"{meta_path}: {'; '.join(problems)}: the metadata differs from the journal — "
                f"it was altered after anchoring; restore it from git (`git checkout -- "
                f"{meta_path}`)"
            )
        return meta

    def _scores_bytes(self, version: str, meta: BaselineVersion) -> bytes:
        path = self.path / "versions" / version / "scores.parquet"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InvalidBaselineError(
                f"{path}: scores of version {version} are missing; restore them from git"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != meta.scores_sha256:
            raise InvalidBaselineError(
                f"{path}: content hash mismatch (recorded {meta.scores_sha256[:12]}…, file "
                f"{digest[:12]}…): the scores were altered after anchoring; restore them "
                f"(`git checkout -- {path}`) or anchor a new version"
            )
        return data

    def scores(self, version: str) -> EvalResults:
        """The scores of a version, verified (see :meth:`version`); the bytes hashed are the
        bytes read."""
        import polars as pl

        from analysis.evals.results import load_results, pl_errors

        state = self._state()
        if version not in state.versions:
            self.version(version)  # raises the error listing the known versions
        data = self._scores_bytes(version, self._read_meta(version, state))
        path = self.path / "versions" / version / "scores.parquet"
        unreadable: tuple[type[BaseException], ...] = (ResultsError, *pl_errors())
        try:
            res = load_results(pl.read_parquet(io.BytesIO(data)), strict_ids=False)
        except unreadable as exc:  # pragma: no cover - the hash matched what was written
            raise InvalidBaselineError(f"{path}: stored scores unreadable: {exc}") from exc
        return replace(res, source=str(path))

    def latest_version(self, revision: str, *, after: datetime | None = None) -> str | None:
        """The newest version anchored to ``revision`` (optionally created after ``after``)."""
        found: str | None = None
        for meta in self.versions():
            if meta.revision == revision and (after is None or meta.created_at > after):
                found = meta.id
        return found

    def verify(self) -> VerifyReport:
        """Check every stored file of this suite (see :meth:`BaselineStore.verify`)."""
        check, found = verify_suite(self.name, self.path)
        return VerifyReport((check,), tuple(found))
