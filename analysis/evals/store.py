"""The eval-baseline store: suites, immutable versions, an append-only journal, the reference.

Layout of a store (default ``baselines/``; git-friendly, no database)::

    baselines/
      <suite>/
        suite.yaml              the suite config (prompt, grader, on_revert, metrics)
        journal.jsonl           append-only: one JSON object per action, in order
        reference.json          the pointer a gate grades against (copy of the journal's last)
        versions/
          v0001/
            scores.parquet      per-example (per-sample) scores: example_id, sample, metrics
            meta.json           revision, eval-set hash, grader, parent, created, summary, hash
        .lock                   flock target of writers (not committed)

A *version* is immutable once its journal line exists; its ``scores.parquet`` is checked against
the SHA-256 recorded in ``meta.json`` and in the journal every time it is read, so a file altered
after anchoring is reported instead of being graded against. The *reference* names one version
and whether it is *pinned*; a pinned reference does not move when new versions are anchored.

Journal actions: ``init``, ``anchor`` (first reference), ``reanchor`` (a new version becomes the
reference, replacing another), ``pin``, ``unpin``, ``revert`` (a revision was reverted: policy
``pin`` makes the restored revision's last version the pinned reference, policy ``reanchor``
anchors fresh results of the restored revision). Entries written by ``sync`` carry the ledger's
``ledger_key`` (``"<transition index>:<reverted revision>"``) so that sync is idempotent.

See :mod:`analysis.evals._files` for the locking and crash model.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis._io import atomic_path, atomic_write_text
from analysis.errors import BaselineError, ResultsError
from analysis.evals._files import (
    append_line,
    check_suite_name,
    file_sha256,
    locked,
    read_journal_lines,
    resolve_actor,
    to_json,
)
from analysis.evals.models import (
    BaselineVersion,
    JournalEntry,
    MetricSpec,
    Policy,
    Reference,
    SuiteConfig,
    SyncItem,
    SyncReport,
)

if TYPE_CHECKING:
    import polars as pl

    from analysis.evals.results import EvalResults
    from analysis.ledger import Ledger

__all__ = [
    "DEFAULT_STORE",
    "BaselineStore",
    "BaselineVersion",
    "JournalEntry",
    "MetricSpec",
    "Reference",
    "Suite",
    "SuiteConfig",
    "SyncItem",
    "SyncReport",
]

DEFAULT_STORE = "baselines"


# ----------------------------------------------------------------------------- store


class BaselineStore:
    """A directory of suites (default ``baselines/``).

    Args:
        root: The store directory.

    Examples:
        >>> import tempfile
        >>> store = BaselineStore(tempfile.mkdtemp())
        >>> cfg = SuiteConfig.from_mapping({"prompt": "p", "grader": "g",
        ...     "metrics": {"correct": {"kind": "binary", "margin": 0.02}}})
        >>> store.init("qa", cfg, actor="me").reference()
        Reference(version=None, revision=None, pinned=False)
    """

    def __init__(self, root: str | Path = DEFAULT_STORE) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BaselineStore({str(self.root)!r})"

    def suite_names(self) -> tuple[str, ...]:
        """Names of the suites in the store (directories holding a ``suite.yaml``)."""
        if not self.root.is_dir():
            return ()
        return tuple(sorted(p.name for p in self.root.iterdir() if (p / "suite.yaml").is_file()))

    def suite(self, name: str) -> Suite:
        """Open an existing suite; the error lists the suites the store holds."""
        check_suite_name(name)
        path = self.root / name
        if not (path / "suite.yaml").is_file():
            known = ", ".join(self.suite_names()) or "none"
            raise BaselineError(
                f"{path}: no suite {name!r} in store {self.root} (suites: {known}); create it "
                f"with `promptstate baseline init {name} --config suite.yaml --store {self.root}`"
            )
        return Suite(self, name)

    def init(
        self,
        name: str,
        config: SuiteConfig,
        *,
        actor: str | None = None,
        reason: str = "",
        at: datetime | None = None,
    ) -> Suite:
        """Create a suite (idempotent when the config is identical)."""
        check_suite_name(name)
        path = self.root / name
        with locked(path):
            cfg_path = path / "suite.yaml"
            if cfg_path.is_file():
                existing = SuiteConfig.load(cfg_path)
                if existing == config:
                    return Suite(self, name)
                raise BaselineError(
                    f"{cfg_path}: suite {name!r} already exists with a different config; edit "
                    "the file (config changes are not versioned) or choose another name"
                )
            import yaml

            atomic_write_text(cfg_path, yaml.safe_dump(config.to_mapping(), sort_keys=False))
            suite = Suite(self, name)
            suite._append(
                action="init", actor=actor, reason=reason, at=at, reference=Reference(None, None)
            )
            return suite

    def sync(
        self,
        ledger: Ledger,
        suites: Sequence[str] | None = None,
        *,
        actor: str | None = None,
        at: datetime | None = None,
    ) -> SyncReport:
        """Apply the ledger's reverts to the named suites (default: every suite)."""
        names = list(suites) if suites else list(self.suite_names())
        items: list[SyncItem] = []
        for name in names:
            items.extend(self.suite(name).sync(ledger, actor=actor, at=at).items)
        return SyncReport(tuple(items))

    def store_option(self) -> str:
        """``--store DIR`` for commands printed to the user (empty for the default store)."""
        return (
            ""
            if str(self.root) in (DEFAULT_STORE, f"{DEFAULT_STORE}/")
            else (f" --store {self.root}")
        )


@dataclass(frozen=True)
class _State:
    entries: tuple[JournalEntry, ...]
    versions: Mapping[str, JournalEntry]  # version id -> creating entry
    valid_bytes: int


class Suite:
    """One suite of a :class:`BaselineStore`; every mutation takes the suite's lock."""

    def __init__(self, store: BaselineStore, name: str) -> None:
        self.store = store
        self.name = check_suite_name(name)
        self.path = store.root / name

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, store={str(self.store.root)!r})"

    # -- reading ---------------------------------------------------------------------------

    @property
    def config(self) -> SuiteConfig:
        """The suite's config (re-read each time)."""
        return SuiteConfig.load(self.path / "suite.yaml")

    @property
    def journal_path(self) -> Path:
        """``journal.jsonl``."""
        return self.path / "journal.jsonl"

    def _state(self) -> _State:
        records, valid = read_journal_lines(self.journal_path)
        entries: list[JournalEntry] = []
        for i, rec in enumerate(records, start=1):
            try:
                entries.append(JournalEntry.from_dict(rec))
            except (KeyError, ValueError, TypeError) as exc:
                raise BaselineError(
                    f"{self.journal_path}: entry {i} is malformed ({exc!r}); restore the journal "
                    "from git"
                ) from exc
        versions = {e.version: e for e in entries if e.created and e.version is not None}
        return _State(tuple(entries), versions, valid)

    def journal(self) -> tuple[JournalEntry, ...]:
        """Every journal entry, oldest first."""
        return self._state().entries

    def reference(self) -> Reference:
        """The current reference (from the journal's last entry, the commit log)."""
        entries = self._state().entries
        return entries[-1].reference if entries else Reference(None, None)

    def versions(self) -> tuple[BaselineVersion, ...]:
        """Every committed version, oldest first."""
        state = self._state()
        return tuple(self._read_meta(v, state) for v in state.versions)

    def version(self, version: str) -> BaselineVersion:
        """One committed version; the error lists the known ones."""
        return self._read_meta(version, self._state())

    def _read_meta(self, version: str, state: _State) -> BaselineVersion:
        if version not in state.versions:
            known = ", ".join(state.versions) or "none"
            raise BaselineError(
                f"{self.path}: suite {self.name!r} has no version {version!r} (versions: {known})"
            )
        meta_path = self.path / "versions" / version / "meta.json"
        import json

        try:
            meta = BaselineVersion.from_dict(json.loads(meta_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise BaselineError(
                f"{meta_path}: metadata of committed version {version} is missing; restore it "
                "from git"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise BaselineError(
                f"{meta_path}: malformed metadata ({exc!r}); restore it from git"
            ) from exc
        created = state.versions[version]
        if meta.scores_sha256 != created.scores_sha256:
            raise BaselineError(
                f"{meta_path}: scores hash differs from the journal's entry {created.seq}; the "
                "metadata was altered after anchoring — restore it from git"
            )
        return meta

    def scores(self, version: str) -> EvalResults:
        """The scores of a version, verified against the recorded content hash."""
        from analysis.evals.results import load_results

        meta = self.version(version)
        path = self.path / "versions" / version / "scores.parquet"
        if not path.is_file():
            raise BaselineError(
                f"{path}: scores of version {version} are missing; restore them from git"
            )
        digest = file_sha256(path)
        if digest != meta.scores_sha256:
            raise BaselineError(
                f"{path}: content hash mismatch (recorded {meta.scores_sha256[:12]}…, file "
                f"{digest[:12]}…): the scores were altered after anchoring; restore them "
                f"(`git checkout -- {path}`) or anchor a new version"
            )
        try:
            return load_results(path)
        except ResultsError as exc:  # pragma: no cover - hash matched, so only if written badly
            raise BaselineError(f"{path}: stored scores unreadable: {exc}") from exc

    def latest_version(self, revision: str, *, after: datetime | None = None) -> str | None:
        """The newest version anchored to ``revision`` (optionally created after ``after``)."""
        found: str | None = None
        for meta in self.versions():
            if meta.revision == revision and (after is None or meta.created_at > after):
                found = meta.id
        return found

    # -- writing ---------------------------------------------------------------------------

    def _recover(self) -> _State:
        """Under the lock: drop a torn journal tail, orphan version dirs, stale reference.json."""
        state = self._state()
        jp = self.journal_path
        if jp.exists() and jp.stat().st_size != state.valid_bytes:
            with open(jp, "r+b") as fh:
                fh.truncate(state.valid_bytes)
        vdir = self.path / "versions"
        if vdir.is_dir():
            for child in vdir.iterdir():
                if child.name not in state.versions:
                    shutil.rmtree(child, ignore_errors=True)
        return state

    def _write_reference(self, ref: Reference, seq: int) -> None:
        data = {"suite": self.name, **ref.to_dict(), "journal_seq": seq}
        atomic_write_text(self.path / "reference.json", to_json(data) + "\n")

    def _append(
        self,
        *,
        action: str,
        actor: str | None,
        reason: str,
        at: datetime | None,
        reference: Reference,
        state: _State | None = None,
        **extra: Any,
    ) -> JournalEntry:
        st = state if state is not None else self._state()
        entry = JournalEntry(
            seq=len(st.entries) + 1,
            at=at or datetime.now(UTC),
            actor=resolve_actor(actor),
            action=action,
            reason=reason,
            reference=reference,
            **extra,
        )
        append_line(self.journal_path, entry.to_dict())
        self._write_reference(reference, entry.seq)
        return entry

    def _prepare_results(
        self, results: EvalResults | pl.DataFrame | str | Path, grader: str | None
    ) -> EvalResults:
        from analysis.evals.results import EvalResults, load_results

        cfg = self.config
        res = results if isinstance(results, EvalResults) else load_results(results)
        res.check_metrics(
            [m.name for m in cfg.metrics], [m.name for m in cfg.metrics if m.kind == "binary"]
        )
        got = grader or res.grader
        if got is not None and got != cfg.grader:
            raise ResultsError(
                f"{res.source}: graded by {got!r} but suite {self.name!r} uses grader "
                f"{cfg.grader!r}; scores of different graders are not comparable"
            )
        keep = ["example_id", "sample", *(m.name for m in cfg.metrics)]
        return EvalResults(res.source, res.table.select(keep), tuple(keep[2:]), cfg.grader)

    def _create_version(
        self,
        state: _State,
        revision: str,
        res: EvalResults,
        *,
        actor: str,
        reason: str,
        at: datetime,
        parent: str | None,
    ) -> BaselineVersion:
        seq = 1 + max((int(v[1:]) for v in state.versions), default=0)
        vid = f"v{seq:04d}"
        vdir = self.path / "versions" / vid
        vdir.mkdir(parents=True, exist_ok=True)
        scores = vdir / "scores.parquet"
        with atomic_path(scores) as tmp:
            res.table.write_parquet(tmp, compression="zstd", statistics=False)
            digest = file_sha256(tmp)
        meta = BaselineVersion(
            id=vid,
            seq=seq,
            suite=self.name,
            revision=revision,
            eval_set_sha256=res.eval_set_sha256,
            grader=self.config.grader,
            parent=parent,
            created_at=at,
            actor=actor,
            reason=reason,
            scores_sha256=digest,
            n_examples=res.n_examples,
            n_rows=res.n_rows,
            max_samples=res.max_samples,
            summary={k: round(v, 6) for k, v in res.summary().items()},
            source=res.source,
        )
        atomic_write_text(vdir / "meta.json", to_json(meta.to_dict()) + "\n")
        return meta

    def anchor(
        self,
        revision: str,
        results: EvalResults | pl.DataFrame | str | Path,
        *,
        actor: str | None = None,
        reason: str = "",
        grader: str | None = None,
        at: datetime | None = None,
        expect_reference: str | None = None,
    ) -> tuple[BaselineVersion, Reference]:
        """Anchor a new version from eval results of ``revision``.

        The new version becomes the reference (journal action ``anchor`` for the first one,
        ``reanchor`` afterwards) unless the reference is pinned: then the version is stored and
        the reference stays (the journal entry records that).

        Args:
            revision: The revision that produced the results.
            results: Eval results (file or :class:`~analysis.evals.results.EvalResults`).
            actor: Who (default ``$PROMPTSTATE_ACTOR``, then ``$USER``).
            reason: Why (journal).
            grader: Grader of the results when the file has no ``grader`` column.
            at: Creation time (default now).
            expect_reference: Refuse (``BaselineError``) unless the reference is still this
                version — compare-and-swap for ``gate --anchor-on-pass``.

        Returns:
            The new version and the reference after the action.
        """
        if not revision:
            raise BaselineError("anchor: --revision is required (the revision that was evaluated)")
        res = self._prepare_results(results, grader)
        who = resolve_actor(actor)
        when = at or datetime.now(UTC)
        with locked(self.path):
            state = self._recover()
            current = state.entries[-1].reference if state.entries else Reference(None, None)
            if expect_reference is not None and current.version != expect_reference:
                raise BaselineError(
                    f"{self.path}: the reference moved to {current.version} while the gate ran "
                    f"against {expect_reference}; re-run the gate"
                )
            meta = self._create_version(
                state, revision, res, actor=who, reason=reason, at=when, parent=current.version
            )
            if current.pinned:
                ref = current
                action = "anchor"
            else:
                ref = Reference(meta.id, revision, False)
                action = "anchor" if current.version is None else "reanchor"
            self._append(
                action=action,
                actor=who,
                reason=reason,
                at=when,
                reference=ref,
                state=state,
                version=meta.id,
                revision=revision,
                created=True,
                scores_sha256=meta.scores_sha256,
            )
            return meta, ref

    def pin(
        self,
        version: str | None = None,
        *,
        actor: str | None = None,
        reason: str = "",
        at: datetime | None = None,
    ) -> Reference:
        """Pin the reference (to ``version``, default the current reference)."""
        with locked(self.path):
            state = self._recover()
            current = state.entries[-1].reference if state.entries else Reference(None, None)
            target = version or current.version
            if target is None:
                raise BaselineError(
                    f"{self.path}: suite {self.name!r} has no reference to pin; anchor one first"
                )
            meta = self._read_meta(target, state)
            ref = Reference(meta.id, meta.revision, True)
            self._append(
                action="pin",
                actor=actor,
                reason=reason,
                at=at,
                reference=ref,
                state=state,
                version=meta.id,
                revision=meta.revision,
            )
            return ref

    def unpin(
        self, *, actor: str | None = None, reason: str = "", at: datetime | None = None
    ) -> Reference:
        """Unpin the reference (it stays where it is; the next anchor moves it)."""
        with locked(self.path):
            state = self._recover()
            current = state.entries[-1].reference if state.entries else Reference(None, None)
            ref = Reference(current.version, current.revision, False)
            self._append(
                action="unpin",
                actor=actor,
                reason=reason,
                at=at,
                reference=ref,
                state=state,
                version=current.version,
                revision=current.revision,
            )
            return ref

    def revert(
        self,
        reverted: str,
        restored: str,
        *,
        policy: Policy | None = None,
        results: EvalResults | pl.DataFrame | str | Path | None = None,
        ledger_key: str | None = None,
        actor: str | None = None,
        reason: str = "",
        grader: str | None = None,
        at: datetime | None = None,
    ) -> Reference:
        """Record that ``reverted`` was reverted to ``restored`` and move the reference.

        Policy ``pin`` (default: the suite's ``on_revert``): the newest version anchored to
        ``restored`` becomes the pinned reference. Policy ``reanchor``: ``results`` (fresh eval
        results of ``restored``) are anchored as a new version that becomes the reference.
        """
        pol: Policy = policy or self.config.on_revert
        opt = self.store.store_option()
        if pol == "reanchor" and results is None:
            raise BaselineError(
                f"revert {self.name}: policy reanchor needs fresh results of {restored}; run "
                f"`promptstate baseline revert {self.name} --reverted {reverted} --restored "
                f"{restored} --policy reanchor --results FILE{opt}`"
            )
        res = self._prepare_results(results, grader) if results is not None else None
        who = resolve_actor(actor)
        when = at or datetime.now(UTC)
        with locked(self.path):
            state = self._recover()
            if ledger_key is not None and any(e.ledger_key == ledger_key for e in state.entries):
                raise BaselineError(
                    f"{self.journal_path}: ledger revert {ledger_key} was already applied"
                )
            current = state.entries[-1].reference if state.entries else Reference(None, None)
            common: dict[str, Any] = {
                "ledger_key": ledger_key,
                "reverted": reverted,
                "restored": restored,
                "policy": pol,
            }
            if pol == "pin":
                target = None
                for vid in state.versions:
                    if self._read_meta(vid, state).revision == restored:
                        target = vid
                if target is None:
                    raise BaselineError(
                        f"{self.path}: suite {self.name!r} has no baseline of {restored} to pin; "
                        f"re-evaluate it and run `promptstate baseline revert {self.name} "
                        f"--reverted {reverted} --restored {restored} --policy reanchor "
                        f"--results FILE{opt}`"
                    )
                ref = Reference(target, restored, True)
                self._append(
                    action="revert",
                    actor=who,
                    reason=reason,
                    at=when,
                    reference=ref,
                    state=state,
                    version=target,
                    revision=restored,
                    **common,
                )
                return ref
            assert res is not None
            meta = self._create_version(
                state,
                restored,
                res,
                actor=who,
                reason=reason or f"re-anchor after revert of {reverted}",
                at=when,
                parent=current.version,
            )
            ref = Reference(meta.id, restored, False)
            self._append(
                action="revert",
                actor=who,
                reason=reason,
                at=when,
                reference=ref,
                state=state,
                version=meta.id,
                revision=restored,
                created=True,
                scores_sha256=meta.scores_sha256,
                **common,
            )
            return ref

    def sync(
        self, ledger: Ledger, *, actor: str | None = None, at: datetime | None = None
    ) -> SyncReport:
        """Apply every revert of the suite's prompt the ledger records and the store has not.

        Idempotent: each applied revert is journaled with its ``ledger_key``. When the reference
        is not the reverted revision's, a ``revert`` entry is still recorded (reference
        unchanged, status ``noop``). Policy ``reanchor`` is applied only when a version of the
        restored revision anchored after the rollback exists; otherwise the item is ``pending``
        with the exact command to run.
        """
        cfg = self.config
        opt = self.store.store_option()
        items: list[SyncItem] = []
        for rv in ledger.reverts(prompt=cfg.prompt):
            key = f"{rv.transition_index}:{rv.reverted}"
            base: dict[str, Any] = {
                "suite": self.name,
                "ledger_key": key,
                "at": rv.at,
                "reverted": rv.reverted,
                "restored": rv.restored,
                "policy": cfg.on_revert,
            }
            with locked(self.path):
                state = self._recover()
                current = state.entries[-1].reference if state.entries else Reference(None, None)
                if any(e.ledger_key == key for e in state.entries):
                    items.append(
                        SyncItem(
                            **base,
                            status="already",
                            version=current.version,
                            message="applied before",
                        )
                    )
                    continue
                reason = (
                    f"{ledger.path or 'ledger'}: transition {rv.transition_index} rolled "
                    f"back {rv.reverted} to {rv.restored}"
                )
                common = {
                    "ledger_key": key,
                    "reverted": rv.reverted,
                    "restored": rv.restored,
                    "policy": cfg.on_revert,
                }
                if current.revision != rv.reverted:
                    self._append(
                        action="revert",
                        actor=actor,
                        reason=reason + "; reference "
                        "not anchored to the reverted revision, unchanged",
                        at=at,
                        reference=current,
                        state=state,
                        version=current.version,
                        revision=current.revision,
                        **common,
                    )
                    items.append(
                        SyncItem(
                            **base,
                            status="noop",
                            version=current.version,
                            message=f"reference {current.version} ({current.revision}) is not a "
                            f"baseline of {rv.reverted}; unchanged",
                        )
                    )
                    continue
                after = rv.at if cfg.on_revert == "reanchor" else None
                target = None
                for vid in state.versions:
                    meta = self._read_meta(vid, state)
                    if meta.revision == rv.restored and (after is None or meta.created_at > after):
                        target = vid
                if target is None:
                    cmd = (
                        f"promptstate baseline revert {self.name} --reverted {rv.reverted} "
                        f"--restored {rv.restored} --policy reanchor --results FILE "
                        f"--ledger-transition {rv.transition_index}{opt}"
                    )
                    why = (
                        "on_revert is reanchor"
                        if cfg.on_revert == "reanchor"
                        else f"no baseline of {rv.restored} to pin"
                    )
                    items.append(
                        SyncItem(
                            **base,
                            status="pending",
                            version=current.version,
                            message=f"{why}: evaluate {rv.restored} and run the command",
                            command=cmd,
                        )
                    )
                    continue
                ref = Reference(target, rv.restored, cfg.on_revert == "pin")
                self._append(
                    action="revert",
                    actor=actor,
                    reason=reason,
                    at=at,
                    reference=ref,
                    state=state,
                    version=target,
                    revision=rv.restored,
                    **common,
                )
                items.append(
                    SyncItem(
                        **base,
                        status="applied",
                        version=target,
                        message=f"reference {current.version} ({rv.reverted}) -> {target} "
                        f"({rv.restored}){', pinned' if ref.pinned else ''}",
                    )
                )
        return SyncReport(tuple(items))
