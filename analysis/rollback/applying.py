"""Apply a rollback plan: :func:`rollback_apply`.

**Apply** (:func:`rollback_apply`) holds the ledger's lock for its whole run. It first checks
everything — nothing is written until every check has passed:

1. if the ledger already ends the prompt's history with this rollback (same ``to``, and same
   ``at`` when given), it plans it again against the ledger *before* that transition — nothing is
   appended (idempotent; the rest still runs so that an interrupted apply completes);
2. refuses (:class:`~analysis.errors.RollbackRefusedError`, exit 1) while a consumer needs
   confirmation;
3. computes the exports in memory, and refuses an output directory that would overwrite an input
   (the ledger, the events, the baseline store). The default directory is
   ``rollback-<prompt>-<at>/`` next to the ledger, the prompt id made a safe path component
   (:func:`analysis._paths.safe_join`): a prompt named ``../../x`` cannot write elsewhere.

Then the actions, in order:

4. writes the exports into ``out_dir``, each atomically and only when its content changes:
   ``cohort_units.csv``, ``cohort_conversations.csv``, ``semantic_cache_expiry.txt`` (one key per
   line) and ``plan.json``;
5. appends the transition (:mod:`analysis.ledger.writer`: validated, atomic, comments kept) —
   the commit point;
6. runs the baseline revert actions (:meth:`analysis.evals.store.BaselineStore.sync`, idempotent
   through its ledger key); re-anchors that need fresh results are reported as pending;
7. with an actions file (``actions=``, :mod:`analysis.rollback._actions`), runs its actions in
   leg order ``text``, ``caches``, ``cohort``, ``contracts``, ``any``, each recorded in the apply
   journal next to the ledger (:mod:`analysis.rollback._journal`): a re-run repeats no action
   recorded as done and retries the failed ones. Every action's target is checked for
   reachability among the checks above (exit 2 before anything changes). While apply refuses
   for a missing confirmation, the ``contracts`` actions are sent as notices (once per state of
   the contracts findings) so that the owners learn they must confirm.

The apply id is ``<prompt>:<from>:<to>:<transition time>``; an action's ``Idempotency-Key`` is
``<apply id>#<leg>.<index>``.

A failure before the first change keeps its own error (bad input: exit 2). A failure after an
action has changed something raises :class:`~analysis.errors.RollbackIncompleteError` (exit 1)
naming the steps done and the step that failed: re-running the same command completes the rest.

``dry_run=True`` does all the checks and reports what would change without writing anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import narwhals as nw

from analysis import _render
from analysis._paths import check_outputs, safe_join
from analysis.errors import (
    PromptstateError,
    RollbackError,
    RollbackIncompleteError,
    RollbackRefusedError,
    worst_exit,
)
from analysis.ledger import Ledger, load_ledger
from analysis.rollback._actions import apply_id
from analysis.rollback._journal import Journal, check_reachable, journal_path, run_actions
from analysis.rollback._legs import (
    cohort_conversations,
    cohort_units,
    contracts_leg,
    served_frame,
)
from analysis.rollback._running import contexts, notify_contracts, raise_on_failures
from analysis.rollback.planning import (
    RollbackPlan,
    _prompt,
    _store,
    _with_actions,
    recorded_rollback,
    rollback_plan,
    without_transition,
)

if TYPE_CHECKING:
    from analysis.evals.store import BaselineStore
    from analysis.metrics.definitions import Metric
    from analysis.rollback._actions import Action
    from analysis.rollback._journal import ActionResult

__all__ = ["ApplyResult", "ApplyStep", "StepStatus", "rollback_apply"]


_T = TypeVar("_T")

StepStatus = Literal["applied", "unchanged", "would-apply", "pending", "skipped"]


@dataclass(frozen=True)
class ApplyStep:
    """One step of :func:`rollback_apply`.

    Attributes:
        name: ``ledger``, ``baseline:<suite>``, ``cohort_units``, ``cohort_conversations``,
            ``semantic_cache_expiry``, ``plan``, ``stale-temporaries`` (temporary files of a
            killed apply removed from the output directory).
        status: ``applied`` (changed now), ``unchanged`` (already in place), ``would-apply``
            (dry run), ``pending`` (needs a person: see ``detail``) or ``skipped``.
        detail: What was (or would be) done.
        path: The file written, if any.
    """

    name: str
    status: StepStatus
    detail: str
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "path": self.path}


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`rollback_apply` did.

    Attributes:
        plan: The plan that was applied.
        steps: Each step and its status.
        dry_run: Whether nothing was written.
        already_recorded: Whether the ledger already held the rollback.
        ledger_diff: Unified diff of the ledger change (empty when unchanged).
        refused: Consumers whose confirmation is missing (only on a dry run; a real apply
            raises instead).
        apply_id: ``<prompt>:<from>:<to>:<transition time>``.
        actions: The result of each configured action (empty without an actions file).
        journal: The apply journal file (``None`` without an actions file).
    """

    plan: RollbackPlan
    steps: tuple[ApplyStep, ...]
    dry_run: bool
    already_recorded: bool
    ledger_diff: str = ""
    refused: tuple[str, ...] = ()
    apply_id: str = ""
    actions: tuple[ActionResult, ...] = ()
    journal: str | None = None

    @property
    def exit_code(self) -> int:
        """1 when a dry run shows apply would refuse or a step is pending (a re-anchor needs
        fresh results), else 0."""
        return worst_exit(*(1 for _ in self.refused), *(1 for _ in self.pending))

    @property
    def changed(self) -> bool:
        """Whether anything was (or, on a dry run, would be) written."""
        return any(s.status in ("applied", "would-apply") for s in self.steps) or any(
            a.status in ("done", "would-run") for a in self.actions
        )

    @property
    def pending(self) -> tuple[ApplyStep, ...]:
        """Steps that need a person."""
        return tuple(s for s in self.steps if s.status == "pending")

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"schema_version": 1, "apply_id", "dry_run", "changed",
        "already_recorded", "refused", "steps": [{name, status, detail, path}], "actions":
        [{action, kind, target, key, status, detail}], "journal", "ledger_diff", "plan"}``."""
        from analysis.errors import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "apply_id": self.apply_id,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "already_recorded": self.already_recorded,
            "refused": list(self.refused),
            "steps": [s.to_dict() for s in self.steps],
            "actions": [a.to_dict() for a in self.actions],
            "journal": self.journal,
            "ledger_diff": self.ledger_diff,
            "plan": self.plan.to_dict(),
        }

    def _summary(self) -> str:
        if self.refused:
            return "dry run: apply would refuse until confirmed: " + ", ".join(self.refused)
        if self.dry_run:
            return "dry run: nothing was written" + (
                "" if self.changed else " (and nothing would change)"
            )
        if not self.changed:
            return "nothing changed: the rollback was already applied"
        return "rollback applied" + (
            f"; {len(self.pending)} step(s) pending" if self.pending else ""
        )

    def _rows(self) -> list[dict[str, Any]]:
        rows = [s.to_dict() for s in self.steps]
        rows += [
            {"name": f"{a.action}:{a.kind}", "status": a.status,
             "detail": f"{a.target}" + (f" — {a.detail}" if a.detail else "")}
            for a in self.actions
        ]  # fmt: skip
        return rows

    def __str__(self) -> str:
        rows = self._rows()
        table = _render.to_text(rows, ["name", "status", "detail"])
        diff = f"\n\n{self.ledger_diff.rstrip()}" if self.ledger_diff else ""
        return f"{self.plan._title()}\n\n{table}{diff}\n\n{self._summary()}"

    def to_markdown(self) -> str:
        """A Markdown rendering."""
        rows = self._rows()
        table = _render.to_markdown(rows, ["name", "status", "detail"])
        fence = "`" * max([3, *(len(r) + 1 for r in re.findall(r"`+", self.ledger_diff or ""))])
        diff = f"\n\n{fence}diff\n{self.ledger_diff.rstrip()}\n{fence}" if self.ledger_diff else ""
        title, summary = _render.md_text(self.plan._title()), _render.md_text(self._summary())
        return f"**{title}**\n\n{table}{diff}\n\n{summary}"


def _run(
    ledger: str | Path,
    prompt: str | None,
    *,
    to: str | None,
    revision: str | None,
    at: datetime | None,
    confirm: Sequence[str],
    dry_run: bool,
    out_dir: str | Path | None,
    baselines: BaselineStore | str | Path | None,
    options: Mapping[str, Any],
    reason: str | None,
    actor: str | None,
) -> ApplyResult:
    """The body of :func:`rollback_apply`: every check first, then the actions in order."""
    from analysis.ledger.writer import ledger_lock

    path = Path(ledger)
    # a dry run only reads: it takes no lock (and leaves no lock file behind)
    with contextlib.nullcontext() if dry_run else ledger_lock(path):
        current = load_ledger(path)
        name = _prompt(current, prompt)
        recorded = recorded_rollback(current, name, to, at)
        if recorded is not None:
            before = without_transition(current, recorded)
            plan = rollback_plan(
                before, name, to=recorded.to, at=recorded.at, confirm=confirm, reason=None,
                actor=None, **options,
            )  # fmt: skip
            plan = _as_confirmed(plan, before)
        else:
            plan = rollback_plan(
                current, name, to=to, revision=revision, at=at, confirm=confirm, reason=reason,
                actor=actor, **options,
            )  # fmt: skip
            missing = plan.needs_confirmation
            if missing and not dry_run:
                flags = " ".join(f"--confirm {m}" for m in missing)
                told = notify_contracts(path, plan)
                raise RollbackRefusedError(
                    f"{path}: not applied — consumer(s) {', '.join(missing)} do not accept "
                    f"{plan.to}'s contract; confirm they can take it ({flags}) and re-run{told}"
                )
        refused = plan.needs_confirmation if recorded is None else ()
        out = Path(out_dir) if out_dir is not None else _default_out(path, plan)
        exports = _render_exports(plan)
        store = _store(baselines)
        if store is not None and not dry_run:
            store.check_writable("rollback apply")
        check_outputs(
            [out / filename for _, filename, _ in exports],
            [path, options.get("events"), None if store is None else store.root],
        )
        config = plan._actions
        ident = apply_id(plan.prompt, plan.reverted, plan.to, plan.at)
        journal = Journal(journal_path(path)) if config is not None else None
        pending: list[Action] = []
        context = contexts(plan, config, ident, out, exports) if config is not None else None
        if config is not None and journal is not None and context is not None:
            pending = [
                a for a in config.actions
                if journal.done(f"{ident}#{a.leg}.{a.index}", a.fingerprint) is None
            ]  # fmt: skip
            if not dry_run:
                check_reachable(config, pending, context)
        steps = [
            ApplyStep(f"confirm:{m}", "pending", f"apply refuses until {m} is confirmed "
                      f"(--confirm {m})")
            for m in refused
        ]  # fmt: skip
        # -- the actions: from here on a failure is reported with what is done (exit 1)
        # temporaries of a killed apply: under the ledger's lock no live apply holds one
        steps.extend(_remove_stale_temporaries(out, dry_run=dry_run))
        progress = _Progress()
        keep_plan = recorded is not None
        for step_name, filename, data in exports:
            keep = keep_plan and step_name == "plan"
            write = functools.partial(
                _write_export, step_name, out / filename, data, dry_run=dry_run, keep=keep
            )
            steps.append(progress.run(step_name, write))
        diff = ""
        if recorded is not None:
            steps.append(
                ApplyStep("ledger", "unchanged", f"transition {recorded.index} already records "
                          "this rollback", str(path))
            )  # fmt: skip
            ledger_after = current
        else:
            res = progress.run("ledger", lambda: _append(path, plan, dry_run=dry_run))
            diff = res.diff()
            status: StepStatus = "would-apply" if dry_run else "applied"
            steps.append(
                ApplyStep(
                    "ledger", status, f"append {json.dumps(dict(plan.transition))}", str(path)
                )
            )
            if not dry_run:
                progress.changed("ledger")
            ledger_after = res.ledger
        steps.extend(
            progress.run(
                "baseline",
                lambda: _baseline_steps(plan, ledger_after, store, dry_run=dry_run, actor=actor),
            )
        )
        results: list[ActionResult] = []
        if config is not None and journal is not None and context is not None:
            run = functools.partial(
                run_actions, config, config.actions, journal, apply=ident, context=context,
                dry_run=dry_run,
            )  # fmt: skip
            results = progress.run("actions", run)
            raise_on_failures(results, progress.done, journal)
    return ApplyResult(
        plan, tuple(steps), dry_run, recorded is not None, diff, refused, ident,
        tuple(results), None if journal is None else str(journal.path),
    )  # fmt: skip


class _Progress:
    """The actions run so far; turns a failure after the first change into an exit-1 error."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def changed(self, name: str) -> None:
        """Record that step ``name`` changed something."""
        if name not in self.done:
            self.done.append(name)

    def run(self, name: str, action: Callable[[], _T]) -> _T:
        """Run one action; a failure after an earlier change becomes ``RollbackIncompleteError``."""
        try:
            result = action()
        except (PromptstateError, OSError) as exc:
            if not self.done:  # nothing has changed yet: the error keeps its own exit code
                raise
            reason = str(exc) if isinstance(exc, PromptstateError) else _os_reason(exc)
            raise RollbackIncompleteError(
                f"rollback apply stopped at step {name!r}: {reason}. Done before it: "
                f"{', '.join(self.done)}. Fix the cause and re-run the same command: apply is "
                "idempotent and completes the steps that are missing",
                done=tuple(self.done),
                failed=name,
            ) from exc
        steps = result if isinstance(result, list) else [result]
        for step in steps:
            if isinstance(step, ApplyStep) and step.status == "applied":
                self.changed(step.name)
        return result


def _os_reason(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return f"{where}{exc.strerror or exc}"


def _append(path: Path, plan: RollbackPlan, *, dry_run: bool) -> Any:
    from analysis.ledger.writer import append_transition

    return append_transition(path, plan.transition, dry_run=dry_run, locked=True)


# ---------------------------------------------------------------------------------- helpers


def rollback_apply(
    ledger: str | Path,
    prompt: str | None = None,
    *,
    to: str | None = None,
    revision: str | None = None,
    events: Any = None,
    baselines: BaselineStore | str | Path | None = None,
    at: datetime | None = None,
    confirm: Sequence[str] = (),
    dry_run: bool = False,
    out_dir: str | Path | None = None,
    columns: Mapping[str, str] | None = None,
    open_hours: float = 4.0,
    holdout_days: float = 14.0,
    idle_minutes: float = 60.0,
    recovery: bool = True,
    reason: str | None = None,
    actor: str | None = None,
    metrics: Sequence[Metric] | None = None,
    actions: str | Path | Mapping[str, Any] | None = None,
) -> ApplyResult:
    """Apply a rollback: exports, the ledger transition, the baseline revert actions, and the
    actions of an actions file.

    Takes the arguments of :func:`rollback_plan` (``ledger`` must be a file path) plus:

    Args:
        ledger: The ledger file; the transition is appended to it.
        prompt: See :func:`rollback_plan`.
        to: See :func:`rollback_plan`.
        revision: See :func:`rollback_plan`.
        events: See :func:`rollback_plan`.
        baselines: See :func:`rollback_plan`.
        at: See :func:`rollback_plan`.
        confirm: Consumers confirmed to take the restored revision's contract; apply refuses
            while one is missing.
        dry_run: Check everything and report what would change; write nothing.
        out_dir: Where the exports go (default ``rollback-<prompt>-<at>/`` next to the ledger).
        columns: See :func:`rollback_plan`.
        open_hours: See :func:`rollback_plan`.
        holdout_days: See :func:`rollback_plan`.
        idle_minutes: See :func:`rollback_plan`.
        recovery: See :func:`rollback_plan`.
        reason: See :func:`rollback_plan`.
        actor: See :func:`rollback_plan`.
        metrics: See :func:`rollback_plan`.
        actions: An actions file (see the module docstring and ``docs/rollback.md``).

    Returns:
        An :class:`ApplyResult`; a second apply reports every step ``unchanged``.

    Raises:
        RollbackRefusedError: a consumer's confirmation is missing (``exit_code`` 1).
        RollbackIncompleteError: an action failed after an earlier one changed something, or a
            configured action failed (``exit_code`` 1); re-run to complete.
        RollbackError: the plan is refused (see :func:`rollback_plan`); ``--out`` would
            overwrite an input.
        LedgerError, EventsError, BaselineError: bad inputs (nothing was written).
    """
    options: dict[str, Any] = {
        "events": events, "baselines": baselines, "columns": columns, "open_hours": open_hours,
        "holdout_days": holdout_days, "idle_minutes": idle_minutes, "recovery": recovery,
        "metrics": metrics, "actions": actions,
    }  # fmt: skip
    return _run(
        ledger, prompt, to=to, revision=revision, at=at, confirm=confirm, dry_run=dry_run,
        out_dir=out_dir, baselines=baselines, options=options, reason=reason, actor=actor,
    )  # fmt: skip


def _as_confirmed(plan: RollbackPlan, ledger: Ledger) -> RollbackPlan:
    """A recorded rollback was confirmed when it was applied: mark its consumers confirmed."""
    missing = plan.needs_confirmation
    if not missing or plan._target is None:
        return plan
    confirmed = (*plan.confirmed, *missing)
    leg = contracts_leg(ledger, plan._target, plan._events, confirmed)
    if plan._actions is not None:
        leg = _with_actions(leg, plan._actions)
    legs = tuple(leg if old.name == "contracts" else old for old in plan.legs)
    return dataclasses.replace(plan, legs=legs, confirmed=confirmed)


def _default_out(path: Path, plan: RollbackPlan) -> Path:
    """``rollback-<prompt>-<at>/`` next to the ledger; the prompt id is made a safe name."""
    stamp = plan.at.strftime("%Y%m%dT%H%M%SZ")
    return safe_join(path.parent, f"rollback-{plan.prompt}-{stamp}")


def _render_exports(plan: RollbackPlan) -> list[tuple[str, str, bytes]]:
    """The exports as ``(step name, file name, content)``, computed before anything is written."""
    target, events = plan._target, plan._events
    assert target is not None
    files: list[tuple[str, str, bytes]] = []
    if events is not None:
        frame = served_frame(events, target.candidate, target)
        names = frame.collect_schema().names()
        files.append(("cohort_units", "cohort_units.csv", _csv(cohort_units(frame, target))))
        if "conversation_id" in names:
            open_hours = float(plan.leg("cohort").findings.get("open_hours", 4.0))
            convs = cohort_conversations(frame, target, open_hours)
            files.append(("cohort_conversations", "cohort_conversations.csv", _csv(convs)))
        if plan.leg("caches").findings.get("semantic_cache_keys") is not None:
            from analysis.rollback.cache import semantic_cache_writes

            keys = semantic_cache_writes(frame, target.reverted, served="served_revision")
            text = "".join(f"{k}\n" for k in keys.select("cache_key").collect()["cache_key"])
            files.append(("semantic_cache_expiry", "semantic_cache_expiry.txt", text.encode()))
    files.append(("plan", "plan.json", (plan.to_json() + "\n").encode()))
    return files


#: The files apply writes into its output directory (their temporaries are its own).
_EXPORT_FILES = (
    "cohort_units.csv",
    "cohort_conversations.csv",
    "semantic_cache_expiry.txt",
    "plan.json",
)


def _remove_stale_temporaries(out: Path, *, dry_run: bool) -> list[ApplyStep]:
    """Remove the temporary files of the exports that a killed apply left in ``out``.

    Only names :func:`analysis._io.atomic_path` gives the temporaries of apply's own exports
    (``.cohort_units.csv.<8 random>.tmp``, ...) are touched, and only by a real apply: it holds
    the ledger's lock, which every apply writing into ``out`` holds while it writes, so none of
    them belongs to a live writer. A dry run (which takes no lock) only lists them.
    """
    import re

    from analysis._io import stray_temp_files

    own = re.compile(
        r"^\.(?:" + "|".join(re.escape(n) for n in _EXPORT_FILES) + r")\.[a-z0-9_]{8}\.tmp$"
    )
    stale = [p for p in stray_temp_files(out) if own.match(p.name)]
    if not stale:
        return []
    names = ", ".join(p.name for p in stale)
    if dry_run:
        return [
            ApplyStep(
                "stale-temporaries",
                "would-apply",
                f"remove {len(stale)} temporary file(s) of a killed apply from {out}: {names}",
                str(out),
            )
        ]
    failed: list[str] = []
    for tmp in stale:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            failed.append(f"{tmp.name} ({exc.strerror or exc})")
    detail = f"removed {len(stale) - len(failed)} temporary file(s) a killed apply left in {out}"
    detail += f": {names}" + (f"; could not remove {', '.join(failed)}" if failed else "")
    return [ApplyStep("stale-temporaries", "applied", detail, str(out))]


def _write_export(name: str, dest: Path, data: bytes, *, dry_run: bool, keep: bool) -> ApplyStep:
    """Write one export atomically when its content changes; with ``keep`` an existing file
    (``plan.json``: the plan as first applied) is kept although the plan has since moved on."""
    from analysis._io import atomic_write_bytes

    if dest.is_file() and (keep or dest.read_bytes() == data):
        return ApplyStep(name, "unchanged", f"{dest} is up to date", str(dest))
    if dry_run:
        return ApplyStep(name, "would-apply", f"write {dest}", str(dest))
    try:
        atomic_write_bytes(dest, data)
    except OSError as exc:
        raise RollbackError(
            f"{dest}: cannot write ({exc.strerror or exc}); pass a writable --out directory"
        ) from None
    return ApplyStep(name, "applied", f"wrote {dest}", str(dest))


def _csv(frame: nw.LazyFrame[Any]) -> bytes:
    """Collect an export (streamed by the engine) and render it as CSV bytes."""
    import io

    buf = io.BytesIO()
    frame.collect().write_csv(buf)
    return buf.getvalue()


def _baseline_steps(
    plan: RollbackPlan,
    ledger_after: Ledger,
    store: BaselineStore | None,
    *,
    dry_run: bool,
    actor: str | None = None,
) -> list[ApplyStep]:
    leg = plan.leg("baseline")
    suites = [s for s in leg.findings.get("suites", []) if s.get("action") not in (None, "none")]
    if store is None:
        return []
    if dry_run:
        return [
            ApplyStep(
                f"baseline:{s['suite']}",
                "would-apply" if s["action"] == "pin" else "pending",
                f"pin {s['target']} ({plan.to})"
                if s["action"] == "pin"
                else f"re-anchor needs fresh results: {s.get('command')}",
            )
            for s in suites
        ]
    names = [s["suite"] for s in leg.findings.get("suites", [])]
    if not names:
        return []
    report = store.sync(ledger_after, names, actor=actor)
    keys = {f"{i.transition_index}:{i.reverted}" for i in ledger_after.reverts(plan.prompt)
            if i.at == plan.at}  # fmt: skip
    steps = []
    for item in report.items:
        if item.ledger_key not in keys:
            continue
        mapping: dict[str, StepStatus] = {
            "applied": "applied",
            "noop": "applied",
            "already": "unchanged",
            "pending": "pending",
        }
        status = mapping[item.status]  # fmt: skip
        detail = item.message + (f"; run: {item.command}" if item.command else "")
        steps.append(ApplyStep(f"baseline:{item.suite}", status, detail))
    return steps
