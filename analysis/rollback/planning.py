"""Rollback plan over the five legs of a revision's state: :func:`rollback_plan`.

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
   and warm-up of every revision (:func:`analysis.rollback.cache.cache_impact`); the predicted cold
   window of the restored revision (none when it served a turn in the last ``idle_minutes``);
   and the semantic-cache entries written by the reverted revisions (the expiry list).
3. **cohort** — units and conversations exposed to a reverted revision (a turn served by it, or
   answered from a semantic-cache entry it wrote), how many tainted conversations are still open
   (a turn within ``open_hours`` before the rollback), the options (truncate/reset histories,
   hold the cohort out for ``holdout_days``, leave), and — when the export already holds events
   after the rollback instant (replaying or re-checking a rollback) — the measured residual
   effect from the recovery analysis of :func:`analysis.metrics.analyze`.
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

Applying a plan is :func:`analysis.rollback.applying.rollback_apply`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis import _render
from analysis.errors import PromptstateError
from analysis.ledger import Ledger, load_ledger
from analysis.rollback._legs import (
    LEGS,
    Leg,
    LegAction,
    RollbackError,
    Target,
    baseline_leg,
    caches_leg,
    cohort_leg,
    contracts_leg,
    resolve,
    text_leg,
    worst,
)

if TYPE_CHECKING:
    from analysis.evals.store import BaselineStore
    from analysis.events.loading import Events
    from analysis.ledger.model import Transition
    from analysis.metrics.definitions import Metric
    from analysis.rollback._actions import Action, ActionsConfig

__all__ = ["RollbackPlan", "recorded_rollback", "rollback_plan", "without_transition"]


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
        configured: The actions of the actions file (``actions=``), in run order; empty
            without one.
        recorded: The index of the ledger transition that already records this rollback
            (the plan of a recorded rollback: nothing to append), else ``None``.
    """

    prompt: str
    reverted: tuple[str, ...]
    to: str
    at: datetime
    experiment: str | None
    transition: Mapping[str, Any]
    legs: tuple[Leg, ...]
    confirmed: tuple[str, ...] = ()
    configured: tuple[Action, ...] = ()
    recorded: int | None = None
    _target: Target | None = field(default=None, repr=False, compare=False)
    _events: Events | None = field(default=None, repr=False, compare=False)
    _actions: ActionsConfig | None = field(default=None, repr=False, compare=False)

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
        """``{"schema_version": 1, "prompt", "from", "to", "legs": {text, caches, cohort,
        baseline, contracts}, "actions": [...]}``.

        ``from`` is the reverted revision (a list when an experiment reverts several arms).
        ``actions`` lists the actions file's actions in run order, each ``{"name", "leg",
        "index", "kind", "target"}`` (secrets redacted; empty without an actions file).
        """
        from analysis.errors import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "prompt": self.prompt,
            "from": self.reverted[0] if len(self.reverted) == 1 else list(self.reverted),
            "to": self.to,
            "legs": {leg.name: leg.to_dict() for leg in self.legs},
            "actions": [a.to_dict() for a in self.configured],
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
        for c in self.configured:
            if c.leg == "any":
                out.append(
                    {"leg": "any", "status": "action", "action": f"{c.name} {c.kind}: {c.target}",
                     "do": "apply"}
                )  # fmt: skip
        return out

    def _title(self) -> str:
        frm = ", ".join(self.reverted)
        what = f"ends {self.experiment}" if self.experiment else "prompt-level"
        if self.recorded is not None:
            what += f"; recorded in the ledger, transition {self.recorded}"
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
        facts = "\n".join(f"- {_render.md_text(line)}" for line in self._facts())
        return f"**{_render.md_text(self._title())}**\n\n{table}\n\n{facts}"

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
    metrics: Sequence[Metric] | None = None,
    actions: str | Path | Mapping[str, Any] | None = None,
) -> RollbackPlan:
    """Plan the rollback of a prompt's canary or live revision across the five legs.

    When the prompt's last transition is a rollback (matching ``to`` and ``at`` when given, and
    no ``revision`` named), the plan is that recorded rollback's: from the revision(s) it
    reverted to the one it restored, at its time, planned against the ledger before it (the
    ``text`` leg is ``ok``: nothing to append; consumers count as confirmed, as
    :func:`~analysis.rollback.applying.rollback_apply` reads them).

    Args:
        ledger: A :class:`~analysis.ledger.Ledger` or a ledger path.
        prompt: The prompt (default: the ledger's only prompt).
        to: The revision to restore (default: the control arm's, or the previously live one).
        revision: The revision to roll back (default: the canary or live revision); refused when
            it is not live or an arm of the running experiment.
        events: Event export (anything :func:`~analysis.events.loading.load_events` reads),
            optional.
        baselines: A :class:`~analysis.evals.store.BaselineStore` or its directory, optional.
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
        metrics: Metrics of the residual effect (passed to :func:`analysis.metrics.analyze`;
            ``None`` lets it choose: it infers them from the export).
        actions: An actions file (or its content as a mapping; see ``docs/rollback.md``):
            checked now (exit 2 when unusable), listed in ``configured`` and in each leg,
            whose manual steps it takes over are marked automatic.

    Returns:
        A :class:`RollbackPlan`; its JSON is ``plan.to_dict()``.

    Raises:
        RollbackError: nothing to roll back, a target that never served, a revision that is not
            live, an unknown consumer in ``confirm``, an option out of range (NaN, negative).
        LedgerError, EventsError, BaselineError: bad inputs (an invalid store raises
            ``InvalidBaselineError``; the CLI exits 2 for it outside ``gate``/``baseline``).
    """
    _check_options(open_hours=open_hours, holdout_days=holdout_days, idle_minutes=idle_minutes)
    led = ledger if isinstance(ledger, Ledger) else load_ledger(ledger)
    name = _prompt(led, prompt)
    when = _when(at)
    recorded = recorded_rollback(led, name, to, at) if revision is None else None
    if recorded is not None:  # plan the rollback the ledger records, against the ledger before it
        led, when, to = without_transition(led, recorded), recorded.at, recorded.to
        reason, actor = recorded.reason, recorded.actor
    target = resolve(led, name, when, to, revision, reason=reason, actor=actor)
    loaded = _events(events, led, columns, target.unit)
    store = _store(baselines)
    contracts = contracts_leg(led, target, loaded, tuple(confirm))
    if recorded is not None and (missing := _needs_confirmation(contracts)):
        # it was confirmed when it was applied (as rollback_apply reads a recorded rollback)
        confirm = (*confirm, *missing)
        contracts = contracts_leg(led, target, loaded, tuple(confirm))
    legs: tuple[Leg, ...] = (
        text_leg(led, target, None if recorded is None else recorded.index),
        caches_leg(led, target, loaded, idle_minutes=idle_minutes),
        cohort_leg(
            led, target, loaded, open_hours=open_hours, holdout_days=holdout_days,
            recovery=recovery, metrics=metrics,
        ),
        baseline_leg(led, target, store),
        contracts,
    )  # fmt: skip
    assert tuple(leg.name for leg in legs) == LEGS
    config = None
    if actions is not None:
        from analysis.rollback._actions import load_actions

        config = load_actions(
            actions, led, prompt=name, reverted=target.reverted, to=target.to,
            experiment=target.experiment,
        )  # fmt: skip
        legs = tuple(_with_actions(leg, config) for leg in legs)
    return RollbackPlan(
        prompt=name,
        reverted=target.reverted,
        to=target.to,
        at=when,
        experiment=target.experiment,
        transition=dict(target.transition),
        legs=legs,
        confirmed=tuple(confirm),
        configured=config.actions if config is not None else (),
        recorded=None if recorded is None else recorded.index,
        _target=target,
        _events=loaded,
        _actions=config,
    )


#: Manual plan actions that a configured action of the leg takes over.
_HANDED_OVER: dict[str, tuple[str, ...]] = {
    "caches": ("expire-prefix",),
    "cohort": ("hold-out", "truncate-histories"),
    "contracts": ("notify",),
}


def _with_actions(leg: Leg, config: ActionsConfig) -> Leg:
    """The leg with its configured actions listed, and the manual steps they take over marked
    automatic; a leg with no configured action keeps its manual steps (and, for ``text``, says
    that serving the restored text is left to a person)."""
    import dataclasses

    mine = config.leg(leg.name)
    if not mine:
        extra: tuple[LegAction, ...] = ()
        if leg.name == "text":
            extra = (
                LegAction(
                    "serve-text",
                    "serve the restored revision's text (no text action is configured)",
                ),
            )
        return dataclasses.replace(leg, actions=(*leg.actions, *extra))
    names = ", ".join(a.name for a in mine)
    old = tuple(
        dataclasses.replace(a, automatic=True, description=f"{a.description} (by {names})")
        if a.kind in _HANDED_OVER.get(leg.name, ()) and not a.automatic
        else a
        for a in leg.actions
    )
    new = tuple(
        LegAction("run-action", f"{a.name} {a.kind}: {a.target}", automatic=True) for a in mine
    )
    status = "action" if leg.status == "ok" else leg.status
    return dataclasses.replace(leg, status=status, actions=(*old, *new))


#: Option → (lowest, highest, lowest excluded); the options of :func:`rollback_plan`.
OPTION_RANGES: dict[str, tuple[float, float, bool]] = {
    "open_hours": (0.0, 24.0 * 366, False),
    "holdout_days": (0.0, 3660.0, False),
    "idle_minutes": (0.0, 60.0 * 24 * 366, True),
}


def _check_options(**values: float) -> None:
    """Refuse NaN, infinities and out-of-range values of the numeric options."""
    import math

    for name, value in values.items():
        low, high, low_open = OPTION_RANGES[name]
        ok = isinstance(value, int | float) and math.isfinite(value)
        ok = ok and (value > low if low_open else value >= low) and value <= high
        if not ok:
            span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise RollbackError(
                f"{name}={value!r}: must be a finite number in {span} (--{name.replace('_', '-')})"
            )


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


def recorded_rollback(
    ledger: Ledger, prompt: str, to: str | None, at: datetime | None
) -> Transition | None:
    """The prompt's last transition when it is a rollback (with ``to`` and ``at`` when given),
    else ``None``: a rollback the ledger already records."""
    mine = [t for t in ledger.transitions if t.prompt == prompt]
    if not mine or mine[-1].action != "rollback":
        return None
    last = mine[-1]
    if to is not None and last.to != to:
        return None
    if at is not None and last.at != at.astimezone(UTC):
        return None
    return last


def without_transition(ledger: Ledger, transition: Transition) -> Ledger:
    """The ledger without ``transition`` (the state just before a recorded rollback)."""
    from analysis.ledger import parse_ledger

    data = ledger.to_dict()
    data["transitions"] = [t.to_dict() for t in ledger.transitions if t.index != transition.index]
    return parse_ledger(data, path=ledger.path)


def _needs_confirmation(leg: Leg) -> tuple[str, ...]:
    consumers = leg.findings.get("consumers", [])
    return tuple(c["name"] for c in consumers if c["status"] == "needs-confirmation")


def _events(
    events: Any, ledger: Ledger, columns: Mapping[str, str] | None, unit: str
) -> Events | None:
    """The export loaded with the rollback's unit column (the experiment's, or the prompt's);
    an already loaded one must hold it (else exit 2 naming the column and the fix)."""
    if events is None:
        return None
    from analysis.errors import EventsError
    from analysis.events.loading import Events, load_events

    loaded = load_events(events, columns=columns, ledger=ledger, unit=unit)
    if isinstance(events, Events) and unit not in loaded.columns:
        raise EventsError(
            f"{loaded.report.source}: the rollback's unit column {unit!r} (the experiment's "
            f"unit in the ledger) is missing; the events have: {', '.join(loaded.columns)}. "
            f"Load them with unit={unit!r} or map it (--column {unit}=<your column>)"
        )
    return loaded


def _store(baselines: BaselineStore | str | Path | None) -> BaselineStore | None:
    if baselines is None:
        return None
    from analysis.evals.store import BaselineStore

    if isinstance(baselines, BaselineStore):
        return baselines
    return BaselineStore(baselines)
