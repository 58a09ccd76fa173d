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
        quarantine/             torn journal tails and uncommitted versions of killed writers
        .lock                   lock file of writers (not committed)

A *version* is immutable once a journal line names it. Every read cross-checks its
``meta.json`` against the journal entry that created it (revision, scores hash) and its
``scores.parquet`` against both recorded hashes, so a file altered after anchoring is reported
(:class:`~analysis.errors.InvalidBaselineError`, exit code 3) instead of being graded against;
:meth:`BaselineStore.verify` checks everything at once. The *reference* names one version and
whether it is *pinned*; a pinned reference does not move when new versions are anchored.

Journal actions: ``init``, ``anchor`` (first reference), ``reanchor`` (a new version becomes the
reference, replacing another), ``pin``, ``unpin``, ``revert`` (a revision was reverted: policy
``pin`` makes the restored revision's last version the pinned reference, policy ``reanchor``
anchors fresh results of the restored revision). Entries written by ``sync`` carry the ledger's
``ledger_key`` (``"<transition index>:<reverted revision>"``) so that sync is idempotent.

Errors: a request that cannot be carried out as given (a suite config, a suite or version name,
a missing option) is a :class:`~analysis.errors.BaselineError` (bad input, exit code 2, nothing
changed); a stored baseline that is invalid (files disagreeing with the journal, a corrupt
journal, a committed file missing) is an :class:`~analysis.errors.InvalidBaselineError` (exit
code 3).

See :mod:`analysis.evals._files` for the locking and crash model.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis._io import atomic_path, atomic_write_text
from analysis.errors import BaselineError, ResultsError
from analysis.evals._files import (
    QUARANTINE,
    VERSION_NAME,
    append_lines,
    check_suite_name,
    file_sha256,
    locked,
    repair_journal,
    resolve_actor,
    sweep_versions,
    to_json,
)
from analysis.evals._inputs import check_revert_request
from analysis.evals._integrity import meta_record, verify_suite
from analysis.evals._suite import State, SuiteReader
from analysis.evals._sync import SyncIndex, plan_sync
from analysis.evals.models import (
    BaselineVersion,
    Finding,
    JournalEntry,
    MetricSpec,
    Policy,
    Reference,
    SuiteCheck,
    SuiteConfig,
    SyncItem,
    SyncReport,
    VerifyReport,
)

if TYPE_CHECKING:
    import polars as pl

    from analysis.evals.results import EvalResults
    from analysis.ledger import Ledger

__all__ = [
    "DEFAULT_STORE",
    "BaselineStore",
    "BaselineVersion",
    "Finding",
    "JournalEntry",
    "MetricSpec",
    "Reference",
    "ReferenceKeptWarning",
    "RepairWarning",
    "Suite",
    "SuiteConfig",
    "SyncItem",
    "SyncReport",
    "VerifyReport",
]

DEFAULT_STORE = "baselines"


class RepairWarning(UserWarning):
    """A writer repaired leftovers of a writer that died (the message says what and where)."""


class ReferenceKeptWarning(UserWarning):
    """An anchored version did not become the reference: the ledger rolled its revision back
    (the message says which transition, and the ``baseline pin`` command to use it anyway)."""


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
        """Names of the suites in the store (directories holding a ``suite.yaml``).

        Raises:
            BaselineError: the store is not a folder (a file, or nothing at that path): exit
                code 2, never an empty list that looks like an empty store.
        """
        self._check_folder()
        return tuple(sorted(p.name for p in self.root.iterdir() if (p / "suite.yaml").is_file()))

    def _check_folder(self, *, may_create: bool = False) -> None:
        """Refuse a store path that is not a folder (see :func:`check_store_dir`)."""
        from analysis.evals._discovery import StoreLocation, check_store_dir

        check_store_dir(StoreLocation(self.root, ""), "baseline store", may_create=may_create)

    def check_writable(self, command: str) -> None:
        """Refuse to write to promptstate's read-only sample store (exit code 2).

        Every writer calls it first; a caller that writes elsewhere before it reaches the store
        (``rollback apply``) calls it up front, so that nothing is written at all.

        Raises:
            BaselineError: this is (inside) the sample store; the message names ``command``
                and how to make a store of one's own.
        """
        from analysis.evals._discovery import StoreLocation, check_writable

        check_writable(StoreLocation(self.root, ""), command)

    @property
    def is_sample(self) -> bool:
        """Whether this is promptstate's bundled, read-only sample store."""
        from analysis.evals._discovery import is_sample_store

        return is_sample_store(self.root)

    def suite(self, name: str) -> Suite:
        """Open an existing suite; the error lists the suites the store holds."""
        check_suite_name(name)
        path = self.root / name
        if not (path / "suite.yaml").is_file():
            known = ", ".join(self.suite_names()) or "none"  # a store that is no folder: refused
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
        """Create a suite (idempotent when the config is identical).

        Raises:
            BaselineError: a bad name; the store path is a file; the store is promptstate's
                read-only sample; a suite of that name with another config (exit code 2).
        """
        check_suite_name(name)
        self._check_folder(may_create=True)
        self.check_writable("baseline init")
        path = self.root / name
        cfg_path = path / "suite.yaml"
        if cfg_path.is_file():  # checked before the lock too: a refusal creates nothing
            self._check_same_config(cfg_path, name, config)
            return Suite(self, name)
        with locked(path):
            if cfg_path.is_file():
                self._check_same_config(cfg_path, name, config)
                return Suite(self, name)
            import yaml

            atomic_write_text(cfg_path, yaml.safe_dump(config.to_mapping(), sort_keys=False))
            suite = Suite(self, name)
            state = suite._recover()
            suite._commit(
                state,
                [{"action": "init", "reason": reason, "reference": Reference(None, None)}],
                actor=actor,
                at=at,
            )
            return suite

    @staticmethod
    def _check_same_config(cfg_path: Path, name: str, config: SuiteConfig) -> None:
        if SuiteConfig.load(cfg_path) != config:
            raise BaselineError(
                f"{cfg_path}: suite {name!r} already exists with a different config; edit "
                "the file (config changes are not versioned) or choose another name"
            )

    def sync(
        self,
        ledger: Ledger,
        suites: Sequence[str] | None = None,
        *,
        actor: str | None = None,
        at: datetime | None = None,
    ) -> SyncReport:
        """Apply the ledger's reverts to the named suites (default: every suite)."""
        self.check_writable("baseline sync")
        names = list(suites) if suites else list(self.suite_names())
        opened = [self.suite(name) for name in names]  # every name checked before any write
        items: list[SyncItem] = []
        for suite in opened:
            items.extend(suite.sync(ledger, actor=actor, at=at).items)
        return SyncReport(tuple(items))

    def verify(self, suites: Sequence[str] | None = None) -> VerifyReport:
        """Check every stored file of the named suites (default: every suite); read-only.

        See :func:`analysis.evals._integrity.verify_suite` for what is checked. The report's
        ``exit_code()`` is 3 when a stored baseline is invalid, 2 when a suite config is.
        """
        names = list(suites) if suites else list(self.suite_names())
        opened = [self.suite(name) for name in names]
        checked: list[SuiteCheck] = []
        findings: list[Finding] = []
        for suite in opened:
            check, found = verify_suite(suite.name, suite.path)
            checked.append(check)
            findings.extend(found)
        return VerifyReport(tuple(checked), tuple(findings))

    def store_option(self) -> str:
        """`` --store DIR`` (shell-quoted) for commands printed to the user (empty for the
        relative default ``baselines``).

        For promptstate's read-only sample store it is `` --store PATH``: advice never names
        the sample (following it would rewrite the shipped files); :meth:`advice` says how to
        make a store of one's own.
        """
        import shlex

        if self.is_sample:
            return " --store PATH"
        return (
            ""
            if str(self.root) in (DEFAULT_STORE, f"{DEFAULT_STORE}/")
            else f" --store {shlex.quote(str(self.root))}"
        )

    def advice(self) -> str:
        """``""``, or for the read-only sample store the sentence saying how to make a store of
        one's own (``baseline init SUITE --store PATH``) to append to advice."""
        from analysis.evals._discovery import SAMPLE_ADVICE

        if not self.is_sample:
            return ""
        return f" (this is promptstate's read-only sample store: {SAMPLE_ADVICE})"


class Suite(SuiteReader):
    """One suite of a :class:`BaselineStore`; every mutation takes the suite's lock.

    The reading methods (``journal``, ``reference``, ``versions``, ``version``, ``scores``,
    ``latest_version``, ``verify``) are :class:`~analysis.evals._suite.SuiteReader`'s.
    """

    def __init__(self, store: BaselineStore, name: str) -> None:
        super().__init__(store.root, name)
        self.store = store

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, store={str(self.store.root)!r})"

    # -- writing ---------------------------------------------------------------------------

    def _recover(self) -> State:
        """Under the lock: repair leftovers of writers that died, read the state, check it.

        The journal's torn tail is quarantined and a missing final newline added (both only
        if the file is still the one read, see :func:`~analysis.evals._files.repair_journal`);
        uncommitted version directories and temporary files are cleared; the reference is
        checked against the journal, its metadata and its scores
        (:class:`~analysis.errors.InvalidBaselineError` when tampered); a ``reference.json``
        that does not mirror the journal is rewritten. Never touches a version a journal entry
        names. Repairs are reported as a :class:`RepairWarning`.
        """
        text, repair = repair_journal(self.journal_path, self.path / QUARANTINE)
        state = self._state(text)
        repair = repair.merge(sweep_versions(self.path, state.named))
        if repair:
            for message in repair.messages(self.journal_path):
                warnings.warn(message, RepairWarning, stacklevel=3)
        # every writer grades or moves from the reference: refuse a tampered one, before
        # rewriting a pointer that would copy the tampering
        self._check_reference(state.reference, state, scores=True)
        if state.entries and not self._pointer_ok(state):
            self._write_reference(state.reference, len(state.entries))
        return state

    def _pointer_ok(self, state: State) -> bool:
        try:
            data = json.loads((self.path / "reference.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        want = {"suite": self.name, **state.reference.to_dict(), "journal_seq": len(state.entries)}
        return bool(data == want)

    def _write_reference(self, ref: Reference, seq: int) -> None:
        data = {"suite": self.name, **ref.to_dict(), "journal_seq": seq}
        atomic_write_text(self.path / "reference.json", to_json(data) + "\n")

    def _commit(
        self,
        state: State,
        records: Sequence[dict[str, Any]],
        *,
        actor: str | None,
        at: datetime | None,
    ) -> list[JournalEntry]:
        """Append entries (one write + fsync: the commit point), then the pointer."""
        if not records:
            return []
        who = resolve_actor(actor)
        when = at or datetime.now(UTC)
        entries = [
            JournalEntry(seq=len(state.entries) + i, at=when, actor=who, **rec)
            for i, rec in enumerate(records, start=1)
        ]
        append_lines(self.journal_path, [e.to_dict() for e in entries])
        self._write_reference(entries[-1].reference, entries[-1].seq)
        return entries

    def _prepare_results(
        self,
        results: EvalResults | pl.DataFrame | str | Path,
        grader: str | None,
        results_format: str = "auto",
        *,
        revision: str | None = None,
    ) -> EvalResults:
        import dataclasses

        from analysis.evals.results import EvalResults, load_results

        cfg = self.config
        res = (
            results
            if isinstance(results, EvalResults)
            else load_results(results, results_format=results_format)
        )
        res.check_metrics(
            [m.name for m in cfg.metrics], [m.name for m in cfg.metrics if m.kind == "binary"]
        )
        res.check_revision(revision)
        got = grader or res.grader
        if got is not None and got != cfg.grader:
            raise ResultsError(
                f"{res.source}: graded by {got!r} but suite {self.name!r} uses grader "
                f"{cfg.grader!r}; scores of different graders are not comparable"
            )
        keep = ["example_id", "sample", *(m.name for m in cfg.metrics)]
        return dataclasses.replace(
            res, table=res.table.select(keep), metrics=tuple(keep[2:]), grader=cfg.grader
        )

    def _next_version(self, state: State) -> str:
        taken = set(state.named)
        vdir = self.path / "versions"
        if vdir.is_dir():
            taken |= {p.name for p in vdir.iterdir() if VERSION_NAME.fullmatch(p.name)}
        return (
            f"v{1 + max((int(v[1:]) for v in taken if VERSION_NAME.fullmatch(v)), default=0):04d}"
        )

    def _create_version(
        self,
        state: State,
        revision: str,
        res: EvalResults,
        *,
        actor: str,
        reason: str,
        at: datetime,
        parent: str | None,
    ) -> BaselineVersion:
        """Write a version's files (not yet committed: its journal line commits it).

        Everything that can fail on the results is computed before the directory exists; a
        failure while writing removes the directory, so no orphan is left behind.
        """
        from analysis.evals.results import EVAL_SET_HASH_SCHEME

        summary = {k: round(v, 6) for k, v in res.summary().items()}
        eval_set = res.eval_set_hash(EVAL_SET_HASH_SCHEME)
        grader = self.config.grader
        vid = self._next_version(state)
        vdir = self.path / "versions" / vid
        vdir.mkdir(parents=True, exist_ok=False)
        try:
            with atomic_path(vdir / "scores.parquet") as tmp:
                res.table.write_parquet(tmp, compression="zstd", statistics=False)
                digest = file_sha256(tmp)
            meta = BaselineVersion(
                id=vid,
                seq=int(vid[1:]),
                suite=self.name,
                revision=revision,
                eval_set_sha256=eval_set,
                grader=grader,
                parent=parent,
                created_at=at,
                actor=actor,
                reason=reason,
                scores_sha256=digest,
                n_examples=res.n_examples,
                n_rows=res.n_rows,
                max_samples=res.max_samples,
                summary=summary,
                source=res.source,
                eval_set_hash_scheme=EVAL_SET_HASH_SCHEME,
            )
            atomic_write_text(vdir / "meta.json", to_json(meta.to_dict()) + "\n")
        except BaseException:
            shutil.rmtree(vdir, ignore_errors=True)
            raise
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
        ledger: Ledger | str | Path | None = None,
        results_format: str = "auto",
    ) -> tuple[BaselineVersion, Reference]:
        """Anchor a new version from eval results of ``revision``.

        The new version becomes the reference (journal action ``anchor`` for the first one,
        ``reanchor`` afterwards) unless the reference is pinned, or the ledger records that
        ``revision`` was rolled back and it is not live again: then the version is stored and
        the reference stays (the journal entry records that; for a rolled-back revision a
        :class:`ReferenceKeptWarning` says why and how to pin it anyway).

        Args:
            revision: The revision that produced the results.
            results: Eval results (file or :class:`~analysis.evals.results.EvalResults`).
            actor: Who (default ``$PROMPTSTATE_ACTOR``, then ``$USER``).
            reason: Why (journal).
            grader: Grader of the results when the file has no ``grader`` column.
            at: Creation time (default now).
            expect_reference: Refuse (``BaselineError``) unless the reference is still this
                version — compare-and-swap for ``gate --anchor-on-pass``.
            ledger: Rollout ledger (object or path) telling whether ``revision`` was rolled
                back (default: the ledger recorded in the suite's ``suite.yaml``, when it
                exists; with none the revision is not checked).
            results_format: Format of a results file: ``auto``, ``table``, ``promptfoo`` or
                ``inspect`` (see :func:`~analysis.evals.results.load_results`).

        Returns:
            The new version and the reference after the action.
        """
        if not revision:
            raise BaselineError("anchor: --revision is required (the revision that was evaluated)")
        self.store.check_writable("baseline anchor")
        res = self._prepare_results(results, grader, results_format, revision=revision)
        rolled_back = self._rolled_back(revision, ledger)
        who = resolve_actor(actor)
        when = at or datetime.now(UTC)
        with locked(self.path):
            state = self._recover()
            current = state.reference
            if expect_reference is not None and current.version != expect_reference:
                raise BaselineError(
                    f"{self.path}: the reference moved to {current.version} while the gate ran "
                    f"against {expect_reference}; re-run the gate"
                )
            meta = self._create_version(
                state, revision, res, actor=who, reason=reason, at=when, parent=current.version
            )
            if current.pinned or rolled_back:
                ref, action = current, "anchor"
            else:
                ref = Reference(meta.id, revision, False)
                action = "anchor" if current.version is None else "reanchor"
            record = {
                "action": action,
                "reason": reason,
                "reference": ref,
                "version": meta.id,
                "revision": revision,
                "created": True,
                "scores_sha256": meta.scores_sha256,
                "meta": meta_record(meta),
            }
            self._commit(state, [record], actor=who, at=when)
        if rolled_back and not current.pinned:
            warnings.warn(
                f"{self.name}: {meta.id} stored, but the reference stays "
                f"{current.version or 'unset'}: {rolled_back}; a rolled-back revision's baseline "
                f"never becomes the reference by anchoring — to grade against it anyway, run "
                f"`promptstate baseline pin {self.name} --version {meta.id}"
                f"{self.store.store_option()}` (the gate then refuses it as stale unless "
                "--no-stale-check)",
                ReferenceKeptWarning,
                stacklevel=2,
            )
        return meta, ref

    def _rolled_back(self, revision: str, ledger: Ledger | str | Path | None) -> str:
        """Why ``revision`` must not become the reference: the ledger rolled it back and it is
        not live (``""`` when it may, or when no ledger is given or recorded)."""
        from analysis.evals._staleness import rollback_of

        return rollback_of(self, revision, ledger)

    def pin(
        self,
        version: str | None = None,
        *,
        actor: str | None = None,
        reason: str = "",
        at: datetime | None = None,
    ) -> Reference:
        """Pin the reference (to ``version``, default the current reference), verified first."""
        self.store.check_writable("baseline pin")
        with locked(self.path):
            state = self._recover()
            current = state.reference
            target = version or current.version
            if target is None:
                raise BaselineError(
                    f"{self.path}: suite {self.name!r} has no reference to pin; anchor one first"
                )
            if target not in state.versions:
                known = ", ".join(state.versions) or "none"
                raise BaselineError(
                    f"{self.path}: suite {self.name!r} has no version {target!r} (versions: "
                    f"{known})"
                )
            meta = self._verified(target, state)
            ref = Reference(meta.id, meta.revision, True)
            record = {
                "action": "pin",
                "reason": reason,
                "reference": ref,
                "version": meta.id,
                "revision": meta.revision,
            }
            self._commit(state, [record], actor=actor, at=at)
            return ref

    def unpin(
        self, *, actor: str | None = None, reason: str = "", at: datetime | None = None
    ) -> Reference:
        """Unpin the reference (it stays where it is; the next anchor moves it)."""
        self.store.check_writable("baseline unpin")
        with locked(self.path):
            state = self._recover()
            current = state.reference
            ref = Reference(current.version, current.revision, False)
            record = {
                "action": "unpin",
                "reason": reason,
                "reference": ref,
                "version": current.version,
                "revision": current.revision,
            }
            self._commit(state, [record], actor=actor, at=at)
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

        Raises:
            BaselineError: ``reverted`` and ``restored`` are the same revision; ``ledger_key``
                is not ``"<transition index ≥ 0>:<reverted>"``; the policy cannot be applied
                (exit code 2, nothing written).
        """
        self.store.check_writable("baseline revert")
        check_revert_request(self.name, reverted, restored, ledger_key)
        pol: Policy = policy or self.config.on_revert
        opt = self.store.store_option()
        if pol == "reanchor" and results is None:
            raise BaselineError(
                f"revert {self.name}: policy reanchor needs fresh results of {restored}; run "
                f"`promptstate baseline revert {self.name} --reverted {reverted} --restored "
                f"{restored} --policy reanchor --results FILE{opt}`"
            )
        res = (
            self._prepare_results(results, grader, revision=restored)
            if results is not None
            else None
        )
        who = resolve_actor(actor)
        when = at or datetime.now(UTC)
        with locked(self.path):
            state = self._recover()
            if ledger_key is not None and any(e.ledger_key == ledger_key for e in state.entries):
                raise BaselineError(
                    f"{self.journal_path}: ledger revert {ledger_key} was already applied"
                )
            current = state.reference
            common: dict[str, Any] = {
                "action": "revert",
                "reason": reason,
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
                self._verified(target, state)
                ref = Reference(target, restored, True)
                record = {**common, "reference": ref, "version": target, "revision": restored}
                self._commit(state, [record], actor=who, at=when)
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
            record = {
                **common,
                "reference": ref,
                "version": meta.id,
                "revision": restored,
                "created": True,
                "scores_sha256": meta.scores_sha256,
                "meta": meta_record(meta),
            }
            self._commit(state, [record], actor=who, at=when)
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

        One lock, one read of the journal and of each version's metadata (cross-checked with the
        journal; the scores of every version the sync pins are verified), one append of every
        new entry: linear in the number of transitions.
        """
        self.store.check_writable("baseline sync")
        cfg = self.config
        reverts = ledger.reverts(prompt=cfg.prompt)
        with locked(self.path):
            state = self._recover()
            metas = [self._read_meta(vid, state) for vid in state.versions]
            index = SyncIndex.build(
                state.reference,
                (e.ledger_key for e in state.entries),
                ((m.id, m.revision, m.created_at) for m in metas),
            )
            records, items = plan_sync(
                self.name,
                cfg,
                reverts,
                index,
                ledger_name=str(ledger.path or "ledger"),
                store_option=self.store.store_option(),
            )
            checked: set[str] = set()
            for rec in records:
                target = rec["reference"].version
                if rec["reference"] != state.reference and target not in checked:
                    self._verified(target, state)
                    checked.add(target)
            self._commit(state, [{"action": "revert", **r} for r in records], actor=actor, at=at)
        return SyncReport(tuple(items))
