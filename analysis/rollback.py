"""Rollback plan and apply over the five legs of a revision's state: :func:`rollback_plan`,
:func:`rollback_apply`.

A rollback is more than flipping the text. For the prompt's canary (an arm of the running
experiment) or live revision, the plan walks five legs, in this order, each with a ``status``
(``ok``: nothing to do; ``action``: things to do; ``needs-confirmation``: a person must confirm
before apply proceeds), ``findings`` and ``actions``:

1. **text** — from which revision(s) to which, and the ledger transition to append. With a
   running experiment the rollback ends it (``to`` defaults to the control arm's revision and
   every other arm's revision is reverted); otherwise the prompt's live revision is reverted
   (``to`` defaults to the previously live revision, else its parent if that served). A target
   that never served, or a ``revision`` that is not live or canary, is refused.
2. **caches** — the reverted revisions' prompt-cache prefixes to expire; the observed hit rate
   and warm-up of every revision (:func:`analysis.cache.cache_impact`); the predicted cold
   window of the restored revision (none when it served a turn in the last ``idle_minutes``);
   and the semantic-cache entries written by the reverted revisions (the expiry list).
3. **cohort** — units and conversations exposed to a reverted revision (a turn served by it, or
   answered from a semantic-cache entry it wrote), how many tainted conversations are still open
   (a turn within ``open_hours`` before the rollback), the options (truncate/reset histories,
   hold the cohort out for ``holdout_days``, leave), and — when the export already holds events
   after the rollback instant (replaying or re-checking a rollback) — the measured residual
   effect from the recovery analysis of :func:`analysis.effects.analyze`.
4. **baseline** — every eval suite of the prompt whose reference is anchored to a reverted
   revision, with the suite's ``on_revert`` action: ``pin`` the restored revision's latest
   version (apply runs it), or ``reanchor`` (needs fresh results: the command to run; apply
   reports it as pending).
5. **contracts** — consumers that accept a reverted revision's contract but not the restored
   one's need a confirmation (``confirm=[name]``); observed parse failures per contract version
   × consumer when the export has ``contract_version``, ``consumer``, ``parse_ok``.

**Time.** ``at`` is the instant the rollback takes effect and the time of the appended
transition; default: now (UTC, whole seconds). It must not precede the ledger's last
transition. Every leg reads only events *before* ``at``; events at or after ``at`` are used only
for the measured residual effect (they exist when replaying a recorded story such as the
embedded sample, whose CLI default ``at`` is the rollback time recorded in
``data_samples/ledger.yaml``).

**Apply** (:func:`rollback_apply`) holds the ledger's lock for its whole run and:

1. if the ledger already ends the prompt's history with this rollback (same ``to``, and same
   ``at`` when given), plans it again against the ledger *before* that transition — nothing is
   appended (idempotent; the rest still runs so that an interrupted apply completes);
2. refuses (``RollbackError``, exit 1 in the CLI) while a consumer needs confirmation;
3. writes the exports into ``out_dir`` (default ``rollback-<prompt>-<at>/`` next to the ledger),
   each atomically and only when its content changes: ``cohort_units.csv``,
   ``cohort_conversations.csv``, ``semantic_cache_expiry.txt`` (one key per line) and
   ``plan.json``;
4. appends the transition (:mod:`analysis._ledger_write`: validated, atomic, comments kept) —
   the commit point;
5. runs the baseline revert actions (:meth:`analysis.baselines.BaselineStore.sync`, idempotent
   through its ledger key); re-anchors that need fresh results are reported as pending.

``dry_run=True`` does all the checks and reports what would change without writing anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import narwhals as nw

from analysis import _render
from analysis._rollback_legs import (
    LEGS,
    Leg,
    LegAction,
    RollbackError,
    Target,
    baseline_leg,
    caches_leg,
    cohort_conversations,
    cohort_leg,
    cohort_units,
    contracts_leg,
    resolve,
    served_frame,
    text_leg,
    worst,
)
from analysis.errors import PromptstateError
from analysis.ledger import Ledger, load_ledger, parse_ledger

if TYPE_CHECKING:
    from analysis.baselines import BaselineStore
    from analysis.events import Events

__all__ = [
    "ApplyResult",
    "ApplyStep",
    "Leg",
    "LegAction",
    "RollbackError",
    "RollbackPlan",
    "rollback_apply",
    "rollback_plan",
]


@dataclass(frozen=True)
class RollbackPlan:
    """A rollback plan: the five legs, in order.

    Attributes:
        prompt: The prompt.
        reverted: The revision(s) rolled back (``from``).
        to: The revision every unit is served afterwards.
        at: When the rollback takes effect.
        experiment: The experiment it ends (``None`` for a prompt-level rollback).
        transition: The ledger entry apply appends.
        legs: ``text``, ``caches``, ``cohort``, ``baseline``, ``contracts``.
        confirmed: Consumers confirmed by the caller.
    """

    prompt: str
    reverted: tuple[str, ...]
    to: str
    at: datetime
    experiment: str | None
    transition: Mapping[str, Any]
    legs: tuple[Leg, ...]
    confirmed: tuple[str, ...] = ()
    _target: Target | None = field(default=None, repr=False, compare=False)
    _events: Events | None = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> str:
        """The most demanding status of the legs."""
        return worst([leg.status for leg in self.legs])

    @property
    def needs_confirmation(self) -> tuple[str, ...]:
        """Consumers whose confirmation is missing."""
        consumers = self.leg("contracts").findings.get("consumers", [])
        return tuple(c["name"] for c in consumers if c["status"] == "needs-confirmation")

    @property
    def exit_code(self) -> int:
        """1 while a leg needs confirmation, else 0."""
        return 1 if self.status == "needs-confirmation" else 0

    def leg(self, name: str) -> Leg:
        """One leg by name."""
        for leg in self.legs:
            if leg.name == name:
                return leg
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """``{"prompt", "from", "to", "legs": {text, caches, cohort, baseline, contracts}}``.

        ``from`` is the reverted revision (a list when an experiment reverts several arms).
        """
        return {
            "prompt": self.prompt,
            "from": self.reverted[0] if len(self.reverted) == 1 else list(self.reverted),
            "to": self.to,
            "legs": {leg.name: leg.to_dict() for leg in self.legs},
        }

    def to_json(self) -> str:
        """The JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2, default=str)

    def rows(self) -> list[dict[str, Any]]:
        """One row per action (legs without actions get one row)."""
        out = []
        for leg in self.legs:
            if not leg.actions:
                out.append({"leg": leg.name, "status": leg.status, "action": "", "do": "-"})
            for a in leg.actions:
                how = "apply" if a.automatic else (a.command or "manual")
                out.append(
                    {"leg": leg.name, "status": leg.status, "action": a.description, "do": how}
                )
        return out

    def _title(self) -> str:
        frm = ", ".join(self.reverted)
        what = f"ends {self.experiment}" if self.experiment else "prompt-level"
        at = self.at.isoformat().replace("+00:00", "Z")
        return f"rollback of {self.prompt}: {frm} -> {self.to} at {at} ({what})"

    def _facts(self) -> list[str]:
        c = self.leg("cohort").findings
        k = self.leg("caches").findings
        lines = [
            f"cohort: {c.get('units')} units, {c.get('conversations')} conversations exposed, "
            f"{c.get('open_tainted_conversations')} tainted conversations still open",
        ]
        if k.get("semantic_cache_keys") is not None:
            lines.append(f"semantic cache: {k['semantic_cache_keys']} entries to expire")
        restored = k.get("restored_cache")
        if isinstance(restored, Mapping):
            if restored.get("cold"):
                lines.append(
                    f"restored {self.to}: prefix cache cold, warm-up "
                    f"{_render.fmt(restored.get('warmup_minutes'))} min, extra cost "
                    f"${_render.fmt(restored.get('extra_cost_usd'))}"
                )
            else:
                lines.append(f"restored {self.to}: prefix cache warm")
        residual = c.get("residual_effect")
        if isinstance(residual, Mapping) and residual.get("available"):
            for r in residual["rows"][:3]:
                lines.append(
                    f"residual {r['metric']} ({r['group']} - never exposed): "
                    f"{_render.fmt(r['effect'])} [{_render.fmt(r['ci'][0])}, "
                    f"{_render.fmt(r['ci'][1])}]"
                )
        for cons in self.leg("contracts").findings.get("consumers", []):
            lines.append(f"consumer {cons['name']} (accepts {', '.join(cons['accepts'])}): "
                         f"{cons['status']}")  # fmt: skip
        lines.append(f"status: {self.status}")
        return lines

    def __str__(self) -> str:
        table = _render.to_text(self.rows(), ["leg", "status", "action", "do"])
        return "\n".join([self._title(), "", table, "", *self._facts()])

    def to_markdown(self) -> str:
        """A Markdown rendering."""
        table = _render.to_markdown(self.rows(), ["leg", "status", "action", "do"])
        facts = "\n".join(f"- {line}" for line in self._facts())
        return f"**{self._title()}**\n\n{table}\n\n{facts}"

    def _repr_html_(self) -> str:
        return _render.to_html(self.rows(), ["leg", "status", "action", "do"], title=self._title())


def rollback_plan(
    ledger: Ledger | str | Path,
    prompt: str | None = None,
    *,
    to: str | None = None,
    revision: str | None = None,
    events: Any = None,
    baselines: BaselineStore | str | Path | None = None,
    at: datetime | None = None,
    confirm: Sequence[str] = (),
    columns: Mapping[str, str] | None = None,
    open_hours: float = 4.0,
    holdout_days: float = 14.0,
    idle_minutes: float = 60.0,
    recovery: bool = True,
    reason: str | None = None,
    actor: str | None = None,
) -> RollbackPlan:
    """Plan the rollback of a prompt's canary or live revision across the five legs.

    Args:
        ledger: A :class:`~analysis.ledger.Ledger` or a ledger path.
        prompt: The prompt (default: the ledger's only prompt).
        to: The revision to restore (default: the control arm's, or the previously live one).
        revision: The revision to roll back (default: the canary or live revision); refused when
            it is not live or an arm of the running experiment.
        events: Event export (anything :func:`~analysis.events.load_events` reads), optional.
        baselines: A :class:`~analysis.baselines.BaselineStore` or its directory, optional.
        at: When the rollback takes effect (default now, UTC); events at or after it are used
            only for the residual effect.
        confirm: Consumers confirmed to take the restored revision's contract.
        columns: Column map for ``events``.
        open_hours: A tainted conversation with a turn this recent is open.
        holdout_days: Proposed hold-out of the exposed cohort.
        idle_minutes: A revision idle this long has a cold prefix cache.
        recovery: Measure the residual effect when events after ``at`` exist.
        reason: Free text recorded in the transition.
        actor: Who, recorded in the transition.

    Returns:
        A :class:`RollbackPlan`; its JSON is ``plan.to_dict()``.

    Raises:
        RollbackError: nothing to roll back, a target that never served, a revision that is not
            live, an unknown consumer in ``confirm``.
        LedgerError, EventsError, BaselineError: bad inputs (BaselineError: exit code 3).
    """
    led = ledger if isinstance(ledger, Ledger) else load_ledger(ledger)
    name = _prompt(led, prompt)
    when = _when(at)
    target = resolve(led, name, when, to, revision, reason=reason, actor=actor)
    loaded = _events(events, led, columns)
    store = _store(baselines)
    legs = (
        text_leg(led, target),
        caches_leg(led, target, loaded, idle_minutes=idle_minutes),
        cohort_leg(
            led, target, loaded, open_hours=open_hours, holdout_days=holdout_days,
            recovery=recovery,
        ),
        baseline_leg(led, target, store),
        contracts_leg(led, target, loaded, tuple(confirm)),
    )  # fmt: skip
    assert tuple(leg.name for leg in legs) == LEGS
    return RollbackPlan(
        prompt=name,
        reverted=target.reverted,
        to=target.to,
        at=when,
        experiment=target.experiment,
        transition=dict(target.transition),
        legs=legs,
        confirmed=tuple(confirm),
        _target=target,
        _events=loaded,
    )


# ------------------------------------------------------------------------------------ apply

StepStatus = Literal["applied", "unchanged", "would-apply", "pending", "skipped"]


@dataclass(frozen=True)
class ApplyStep:
    """One step of :func:`rollback_apply`.

    Attributes:
        name: ``ledger``, ``baseline:<suite>``, ``cohort_units``, ``cohort_conversations``,
            ``semantic_cache_expiry``, ``plan``.
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
    """

    plan: RollbackPlan
    steps: tuple[ApplyStep, ...]
    dry_run: bool
    already_recorded: bool
    ledger_diff: str = ""
    refused: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """1 when a dry run shows apply would refuse, else 0."""
        return 1 if self.refused else 0

    @property
    def changed(self) -> bool:
        """Whether anything was (or, on a dry run, would be) written."""
        return any(s.status in ("applied", "would-apply") for s in self.steps)

    @property
    def pending(self) -> tuple[ApplyStep, ...]:
        """Steps that need a person."""
        return tuple(s for s in self.steps if s.status == "pending")

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the plan, the steps, and flags."""
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            "already_recorded": self.already_recorded,
            "refused": list(self.refused),
            "steps": [s.to_dict() for s in self.steps],
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

    def __str__(self) -> str:
        rows = [s.to_dict() for s in self.steps]
        table = _render.to_text(rows, ["name", "status", "detail"])
        diff = f"\n\n{self.ledger_diff.rstrip()}" if self.ledger_diff else ""
        return f"{self.plan._title()}\n\n{table}{diff}\n\n{self._summary()}"

    def to_markdown(self) -> str:
        """A Markdown rendering."""
        rows = [s.to_dict() for s in self.steps]
        table = _render.to_markdown(rows, ["name", "status", "detail"])
        diff = f"\n\n```diff\n{self.ledger_diff.rstrip()}\n```" if self.ledger_diff else ""
        return f"**{self.plan._title()}**\n\n{table}{diff}\n\n{self._summary()}"


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
) -> ApplyResult:
    """Apply a rollback: exports, the ledger transition, the baseline revert actions.

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

    Returns:
        An :class:`ApplyResult`; a second apply reports every step ``unchanged``.

    Raises:
        RollbackError: a consumer's confirmation is missing (``exit_code`` 1), or the plan is
            refused (see :func:`rollback_plan`).
    """
    from analysis._ledger_write import append_transition, ledger_lock

    path = Path(ledger)
    options: dict[str, Any] = {
        "events": events, "baselines": baselines, "columns": columns, "open_hours": open_hours,
        "holdout_days": holdout_days, "idle_minutes": idle_minutes, "recovery": recovery,
    }  # fmt: skip
    # a dry run only reads: it takes no lock (and leaves no lock file behind)
    with contextlib.nullcontext() if dry_run else ledger_lock(path):
        current = load_ledger(path)
        name = _prompt(current, prompt)
        recorded = _recorded_rollback(current, name, to, at)
        if recorded is not None:
            before = _without_last(current, recorded)
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
                err = RollbackError(
                    f"{path}: not applied — consumer(s) {', '.join(missing)} do not accept "
                    f"{plan.to}'s contract; confirm they can take it ({flags}) and re-run"
                )
                err.exit_code = 1
                raise err
        refused = plan.needs_confirmation if recorded is None else ()
        out = Path(out_dir) if out_dir is not None else _default_out(path, plan)
        steps = [
            ApplyStep(f"confirm:{m}", "pending", f"apply refuses until {m} is confirmed "
                      f"(--confirm {m})")
            for m in refused
        ]  # fmt: skip
        steps.extend(_write_exports(plan, out, dry_run=dry_run, keep_plan=recorded is not None))
        diff = ""
        if recorded is not None:
            steps.append(
                ApplyStep("ledger", "unchanged", f"transition {recorded.index} already records "
                          "this rollback", str(path))
            )  # fmt: skip
            ledger_after = current
        else:
            res = append_transition(path, plan.transition, dry_run=dry_run, locked=True)
            diff = res.diff()
            status: StepStatus = "would-apply" if dry_run else "applied"
            steps.append(
                ApplyStep(
                    "ledger", status, f"append {json.dumps(dict(plan.transition))}", str(path)
                )
            )
            ledger_after = res.ledger
        steps.extend(_baseline_steps(plan, ledger_after, baselines, dry_run=dry_run, actor=actor))
    return ApplyResult(plan, tuple(steps), dry_run, recorded is not None, diff, refused)


# ---------------------------------------------------------------------------------- helpers


def _recorded_rollback(ledger: Ledger, prompt: str, to: str | None, at: datetime | None) -> Any:
    """The prompt's last transition when it is a rollback matching ``to``/``at``, else None."""
    mine = [t for t in ledger.transitions if t.prompt == prompt]
    if not mine or mine[-1].action != "rollback":
        return None
    last = mine[-1]
    if to is not None and last.to != to:
        return None
    if at is not None and last.at != at.astimezone(UTC):
        return None
    return last


def _as_confirmed(plan: RollbackPlan, ledger: Ledger) -> RollbackPlan:
    """A recorded rollback was confirmed when it was applied: mark its consumers confirmed."""
    missing = plan.needs_confirmation
    if not missing or plan._target is None:
        return plan
    confirmed = (*plan.confirmed, *missing)
    leg = contracts_leg(ledger, plan._target, plan._events, confirmed)
    legs = tuple(leg if old.name == "contracts" else old for old in plan.legs)
    return dataclasses.replace(plan, legs=legs, confirmed=confirmed)


def _without_last(ledger: Ledger, transition: Any) -> Ledger:
    data = ledger.to_dict()
    data["transitions"] = [t.to_dict() for t in ledger.transitions if t.index != transition.index]
    return parse_ledger(data, path=ledger.path)


def _default_out(path: Path, plan: RollbackPlan) -> Path:
    stamp = plan.at.strftime("%Y%m%dT%H%M%SZ")
    return path.parent / f"rollback-{plan.prompt}-{stamp}"


def _write_exports(
    plan: RollbackPlan, out: Path, *, dry_run: bool, keep_plan: bool = False
) -> list[ApplyStep]:
    """Write the exports; with ``keep_plan`` an existing ``plan.json`` (the plan as first
    applied) is kept although the baseline leg has since been carried out."""
    from analysis._io import atomic_write_bytes

    target, events = plan._target, plan._events
    assert target is not None
    files: list[tuple[str, str, bytes | None]] = []
    if events is not None:
        frame = served_frame(events, target.candidate, target)
        names = frame.collect_schema().names()
        files.append(("cohort_units", "cohort_units.csv", _csv(cohort_units(frame, target))))
        if "conversation_id" in names:
            open_hours = float(plan.leg("cohort").findings.get("open_hours", 4.0))
            convs = cohort_conversations(frame, target, open_hours)
            files.append(("cohort_conversations", "cohort_conversations.csv", _csv(convs)))
        if plan.leg("caches").findings.get("semantic_cache_keys") is not None:
            from analysis.cache import semantic_cache_writes

            keys = semantic_cache_writes(frame, target.reverted, served="served_revision")
            text = "".join(f"{k}\n" for k in keys.select("cache_key").collect()["cache_key"])
            files.append(("semantic_cache_expiry", "semantic_cache_expiry.txt", text.encode()))
    files.append(("plan", "plan.json", (plan.to_json() + "\n").encode()))
    steps = []
    for name, filename, data in files:
        assert data is not None
        dest = out / filename
        same = dest.is_file() and (dest.read_bytes() == data or (keep_plan and name == "plan"))
        if same:
            steps.append(ApplyStep(name, "unchanged", f"{dest} is up to date", str(dest)))
        elif dry_run:
            steps.append(ApplyStep(name, "would-apply", f"write {dest}", str(dest)))
        else:
            atomic_write_bytes(dest, data)
            steps.append(ApplyStep(name, "applied", f"wrote {dest}", str(dest)))
    return steps


def _csv(frame: nw.LazyFrame[Any]) -> bytes:
    """Collect an export (streamed by the engine) and render it as CSV bytes."""
    import io

    buf = io.BytesIO()
    frame.collect().write_csv(buf)
    return buf.getvalue()


def _baseline_steps(
    plan: RollbackPlan,
    ledger_after: Ledger,
    baselines: BaselineStore | str | Path | None,
    *,
    dry_run: bool,
    actor: str | None = None,
) -> list[ApplyStep]:
    store = _store(baselines)
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


def _prompt(ledger: Ledger, prompt: str | None) -> str:
    if prompt is None:
        if len(ledger.prompts) != 1:
            raise RollbackError(
                f"{ledger.path or 'ledger'}: name the prompt (--prompt); the ledger defines: "
                f"{', '.join(sorted(ledger.prompts))}"
            )
        return next(iter(ledger.prompts))
    ledger._prompt(prompt)
    return prompt


def _when(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC).replace(microsecond=0)
    if at.tzinfo is None or at.utcoffset() is None:
        raise PromptstateError(f"at={at.isoformat()}: pass a timezone-aware time (e.g. ...Z)")
    return at.astimezone(UTC)


def _events(events: Any, ledger: Ledger, columns: Mapping[str, str] | None) -> Events | None:
    if events is None:
        return None
    from analysis.events import load_events

    return load_events(events, columns=columns, ledger=ledger)


def _store(baselines: BaselineStore | str | Path | None) -> BaselineStore | None:
    if baselines is None:
        return None
    from analysis.baselines import BaselineStore

    if isinstance(baselines, BaselineStore):
        return baselines
    return BaselineStore(baselines)
