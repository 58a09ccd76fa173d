"""Integrity of a stored suite: the cross-checks every read makes, and ``baseline verify``.

A version is described three times: by the journal line that created it (its revision, the
SHA-256 of its scores and — since journal entries record it — the metadata that matters: grader,
eval-set hash, parent, counts, metric means, and the SHA-256 of the whole ``meta.json``,
:func:`meta_record`), by its ``meta.json`` and by its ``scores.parquet``. Tampering with one of
them — a ``meta.json`` edited to name another revision or grader, scores replaced — makes them
disagree. Every read of a version compares the metadata with the journal entry
(:func:`meta_mismatches`); reads of the scores compare their bytes with both hashes; ``baseline
verify`` (:func:`verify_suite`) checks every version and the journal itself.

Versions whose journal entry predates the metadata record (the shipped sample's, for one) are
checked by ``verify`` against what can be derived instead: the parent from the journal, the
counts, means and eval-set hash from the scores, and the grader from the suite's config.

These checks detect an edit of one file, not a forger who rewrites the journal line, the
metadata and the scores consistently: that needs signatures, which the store does not have.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from analysis._io import stray_temp_files
from analysis.errors import BaselineError, InvalidBaselineError, PromptstateError
from analysis.evals._files import QUARANTINE, VERSION_NAME, read_journal
from analysis.evals.models import (
    BaselineVersion,
    Finding,
    JournalEntry,
    SuiteCheck,
    SuiteConfig,
)

__all__ = ["RECORDED_FIELDS", "meta_digest", "meta_mismatches", "meta_record", "verify_suite"]

#: ``meta.json`` fields a creating journal entry records (revision and scores hash aside).
RECORDED_FIELDS = (
    "grader",
    "eval_set_sha256",
    "eval_set_hash_scheme",
    "parent",
    "n_examples",
    "n_rows",
    "max_samples",
    "summary",
)


def meta_digest(data: Mapping[str, Any]) -> str:
    """SHA-256 of a ``meta.json`` object in canonical JSON (sorted keys, no spaces): layout
    changes do not count, any changed value does."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def meta_record(meta: BaselineVersion) -> dict[str, Any]:
    """What a creating journal entry records of its version's metadata (``entry.meta``)."""
    data = meta.to_dict()
    return {**{k: data[k] for k in RECORDED_FIELDS}, "sha256": meta_digest(data)}


#: ``add(kind, path, problem)``: records one finding.
_Add = Callable[[str, Path, str], None]


def meta_mismatches(
    meta: BaselineVersion,
    version: str,
    suite: str,
    entry: JournalEntry,
    raw: Mapping[str, Any] | None = None,
) -> list[str]:
    """How ``meta.json`` of ``version`` disagrees with the journal entry that created it.

    Args:
        meta: The parsed metadata.
        version: The version's directory name.
        suite: The suite it is stored in.
        entry: The journal entry that created it.
        raw: The JSON object read from ``meta.json`` (default: ``meta.to_dict()``), whose
            canonical hash is compared with the one the entry recorded.
    """
    out = []
    if meta.id != version:
        out.append(f"its metadata says version {meta.id!r}, its directory is {version!r}")
    if meta.suite != suite:
        out.append(f"its metadata says suite {meta.suite!r}, it is stored in suite {suite!r}")
    if meta.revision != entry.revision:
        out.append(
            f"its metadata says revision {meta.revision!r}, the journal entry {entry.seq} that "
            f"created it says {entry.revision!r}"
        )
    if meta.scores_sha256 != entry.scores_sha256:
        out.append(
            f"its metadata records scores sha256 {meta.scores_sha256[:12]}…, the journal entry "
            f"{entry.seq} that created it {str(entry.scores_sha256)[:12]}…"
        )
    if entry.meta is None:
        return out
    data = dict(raw) if raw is not None else meta.to_dict()
    changed = False
    for key in RECORDED_FIELDS:
        if key in entry.meta and data.get(key) != entry.meta[key]:
            changed = True
            out.append(
                f"its metadata says {key} {_short(data.get(key))}, the journal entry {entry.seq} "
                f"that created it says {_short(entry.meta[key])}"
            )
    recorded = entry.meta.get("sha256")
    digest = meta_digest(data)
    if not changed and recorded is not None and digest != recorded:
        out.append(
            f"its metadata was edited (content sha256 {digest[:12]}…, the journal entry "
            f"{entry.seq} that created it recorded {str(recorded)[:12]}…); the fields the entry "
            f"records agree, so one of the others ({', '.join(_unrecorded(data))}) changed"
        )
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _unrecorded(data: Mapping[str, Any]) -> list[str]:
    skip = {*RECORDED_FIELDS, "revision", "scores_sha256"}
    return sorted(k for k in data if k not in skip)


def verify_suite(name: str, path: Path) -> tuple[SuiteCheck, list[Finding]]:
    """Check everything stored for one suite; never raises for what it finds.

    Checks: the suite config; the journal (every line parses, entries numbered 1, 2, ..., each
    version created once, every version and reference an entry names was created, with the
    revision it was created for); every created version (``meta.json`` present, parseable and
    agreeing with its journal entry; ``scores.parquet`` present and matching both recorded
    hashes; the eval-set hash, example and row counts recomputed from the scores); and notes
    leftovers of killed writers (torn journal tail, uncommitted version directories, temporary
    files, quarantined files, a stale ``reference.json``).
    """
    findings: list[Finding] = []

    def add(kind: str, where: Path, problem: str) -> None:
        findings.append(Finding(name, kind, str(where), problem))  # type: ignore[arg-type]

    grader: str | None = None
    try:
        grader = SuiteConfig.load(path / "suite.yaml").grader
    except BaselineError as exc:
        add("config", path / "suite.yaml", str(exc))
    jp = path / "journal.jsonl"
    try:
        text = read_journal(jp)
    except InvalidBaselineError as exc:
        add("invalid", jp, str(exc))
        return SuiteCheck(name, 0, 0), findings
    if text.torn:
        add(
            "note",
            jp,
            f"the last {len(text.torn)} byte(s) are a torn append (no newline, not JSON): not "
            "committed; the next writer moves them to quarantine/",
        )
    if text.missing_newline:
        add("note", jp, "the last line lacks its newline; it is committed, the next writer adds it")
    entries: list[JournalEntry] = []
    for i, rec in enumerate(text.records, start=1):
        try:
            entry = JournalEntry.from_dict(rec)
        except (KeyError, ValueError, TypeError) as exc:
            add("invalid", jp, f"entry {i} is malformed ({exc!r}); restore the journal from git")
            continue
        if entry.seq != i:
            add(
                "invalid",
                jp,
                f"entry {i} is numbered {entry.seq}: lines were removed, reordered or duplicated; "
                "restore the journal from git",
            )
        entries.append(entry)
    created: dict[str, JournalEntry] = {}
    for e in entries:
        if e.created and e.version is not None:
            if e.version in created:
                add(
                    "invalid",
                    jp,
                    f"entry {e.seq} creates {e.version} again (entry {created[e.version].seq} "
                    "created it); restore the journal from git",
                )
                continue
            created[e.version] = e
    _check_names(entries, created, jp, add)
    before = {e.seq: p.reference.version for p, e in itertools.pairwise(entries)}
    for vid, entry in created.items():
        derived = _Derived(before.get(entry.seq), grader)
        _check_version(name, path / "versions" / vid, vid, entry, derived, add)
    _notes(path, entries, created, add)
    return SuiteCheck(name, len(entries), len(created)), findings


def _check_names(
    entries: list[JournalEntry], created: dict[str, JournalEntry], jp: Path, add: _Add
) -> None:
    for e in entries:
        named = [(e.version, e.revision, "names")]
        named.append((e.reference.version, e.reference.revision, "makes the reference"))
        for version, revision, what in named:
            if version is None:
                continue
            origin = created.get(version)
            if origin is None or origin.seq > e.seq:
                add(
                    "invalid",
                    jp,
                    f"entry {e.seq} {what} {version}, which no earlier entry created; restore "
                    "the journal from git",
                )
            elif revision != origin.revision:
                add(
                    "invalid",
                    jp,
                    f"entry {e.seq} {what} {version} as a baseline of {revision!r}, but entry "
                    f"{origin.seq} created it for {origin.revision!r}; restore the journal from "
                    "git",
                )


class _Derived(NamedTuple):
    """What a version's metadata must say that the journal and the suite config imply."""

    parent: str | None  # the reference before the entry that created the version
    grader: str | None  # the suite config's grader (None when the config is invalid)


def _check_version(
    suite: str, vdir: Path, vid: str, entry: JournalEntry, derived: _Derived, add: _Add
) -> None:
    meta_path = vdir / "meta.json"
    fix = f"restore it from git (`git checkout -- {vdir}`)"
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
        meta = BaselineVersion.from_dict(raw)
    except FileNotFoundError:
        add("invalid", meta_path, f"metadata of committed version {vid} is missing; {fix}")
        return
    except (ValueError, KeyError, TypeError) as exc:
        add("invalid", meta_path, f"malformed metadata of {vid} ({exc!r}); {fix}")
        return
    for problem in meta_mismatches(meta, vid, suite, entry, raw):
        add("invalid", meta_path, f"{vid}: {problem}; {fix}")
    if entry.meta is None:
        _check_unrecorded(meta, vid, entry, derived, meta_path, fix, add)
    scores = vdir / "scores.parquet"
    try:
        data = scores.read_bytes()
    except FileNotFoundError:
        add("invalid", scores, f"scores of committed version {vid} are missing; {fix}")
        return
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.scores_sha256:
        add(
            "invalid",
            scores,
            f"content hash mismatch: the file's sha256 is {digest[:12]}…, journal entry "
            f"{entry.seq} recorded {str(entry.scores_sha256)[:12]}…: the scores were altered "
            f"after anchoring; {fix}",
        )
        return
    _check_eval_set(scores, data, meta, vid, add, means=entry.meta is None)


def _check_unrecorded(
    meta: BaselineVersion,
    vid: str,
    entry: JournalEntry,
    derived: _Derived,
    meta_path: Path,
    fix: str,
    add: _Add,
) -> None:
    """Checks of a version whose journal entry records no metadata (written before it did)."""
    older = f"journal entry {entry.seq} predates recorded metadata"
    if meta.parent != derived.parent:
        add(
            "invalid",
            meta_path,
            f"{vid}: its metadata says parent {meta.parent!r}, but the reference before journal "
            f"entry {entry.seq} that created it was {derived.parent!r}; {fix}",
        )
    if derived.grader is not None and meta.grader != derived.grader:
        add(
            "invalid",
            meta_path,
            f"{vid}: its metadata says grader {meta.grader!r}, the suite's suite.yaml says "
            f"{derived.grader!r} ({older}, so the suite's grader is what it is checked "
            f"against); {fix} — or, if the suite's grader was changed on purpose, its old "
            "versions cannot be graded against: anchor new ones",
        )


def _check_eval_set(
    scores: Path, data: bytes, meta: BaselineVersion, vid: str, add: _Add, *, means: bool = False
) -> None:
    import polars as pl

    from analysis.evals.results import load_results, pl_errors

    unreadable: tuple[type[BaseException], ...] = (PromptstateError, *pl_errors())
    try:
        res = load_results(pl.read_parquet(io.BytesIO(data)), strict_ids=False)
    except unreadable as exc:
        add("invalid", scores, f"stored scores of {vid} cannot be read ({exc})")
        return
    recomputed = res.eval_set_hash(meta.eval_set_hash_scheme)
    if recomputed != meta.eval_set_sha256:
        add(
            "invalid",
            scores.parent / "meta.json",
            f"{vid}: eval_set_sha256 {meta.eval_set_sha256[:12]}… (scheme "
            f"{meta.eval_set_hash_scheme}) is not the hash of the scores' example ids "
            f"({recomputed[:12]}…); restore it from git",
        )
    if (res.n_examples, res.n_rows) != (meta.n_examples, meta.n_rows):
        add(
            "invalid",
            scores.parent / "meta.json",
            f"{vid}: records {meta.n_examples} examples / {meta.n_rows} rows, the scores hold "
            f"{res.n_examples} / {res.n_rows}; restore it from git",
        )
    if not means:  # recorded in the journal: compared there
        return
    if res.max_samples != meta.max_samples:
        add(
            "invalid",
            scores.parent / "meta.json",
            f"{vid}: its metadata says max_samples {meta.max_samples}, the scores hold up to "
            f"{res.max_samples} samples of one example; restore it from git",
        )
    actual = {k: round(v, 6) for k, v in res.summary().items()}
    wrong = sorted(
        k
        for k in set(actual) | set(meta.summary)
        if k not in actual
        or k not in meta.summary
        or not math.isclose(actual[k], meta.summary[k], rel_tol=0, abs_tol=2e-6)
    )
    if wrong:
        add(
            "invalid",
            scores.parent / "meta.json",
            f"{vid}: its metadata's summary (metric means) disagrees with the scores for "
            f"{', '.join(wrong)} (metadata {_short({k: meta.summary.get(k) for k in wrong})}, "
            f"scores {_short({k: actual.get(k) for k in wrong})}); restore it from git",
        )


def _notes(
    path: Path, entries: list[JournalEntry], created: dict[str, JournalEntry], add: _Add
) -> None:
    named = set(created) | {e.version for e in entries if e.version is not None}
    vdir = path / "versions"
    if vdir.is_dir():
        for child in sorted(vdir.iterdir()):
            if child.is_dir() and VERSION_NAME.fullmatch(child.name) and child.name not in named:
                add(
                    "note",
                    child,
                    "no journal entry names this version directory (a writer died before "
                    "committing it); the next writer removes or quarantines it",
                )
            if child.is_dir():
                for tmp in stray_temp_files(child):
                    add(
                        "note",
                        tmp,
                        "temporary file of a writer that died; the next writer removes it",
                    )
    for tmp in [*stray_temp_files(path), *stray_temp_files(vdir)]:
        add("note", tmp, "temporary file of a writer that died; the next writer removes it")
    quarantine = path / QUARANTINE
    if quarantine.is_dir():
        for item in sorted(quarantine.iterdir()):
            add(
                "note",
                item,
                "quarantined by a writer (a torn journal append or an uncommitted version); "
                "nothing committed refers to it — inspect it, then delete it",
            )
    if entries:
        pointer = path / "reference.json"
        last = entries[-1]
        try:
            data = json.loads(pointer.read_text(encoding="utf-8"))
            ok = isinstance(data, dict) and (
                data.get("version"),
                data.get("revision"),
                data.get("pinned"),
                data.get("journal_seq"),
            ) == (last.reference.version, last.reference.revision, last.reference.pinned, last.seq)
        except (OSError, ValueError):
            ok = False
        if not ok:
            add(
                "note",
                pointer,
                f"does not mirror the journal's last entry ({last.seq}); the journal is the "
                "commit log — the next writer rewrites this file",
            )
