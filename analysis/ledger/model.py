"""The rollout ledger: prompts, revisions, experiments, consumers and the ordered transitions.

A ledger is one YAML or JSON file (schema in ``DESIGN.md``). :func:`load_ledger` validates it
strictly with pydantic plus the cross-entry rules below, and returns a frozen :class:`Ledger`
whose derived views answer the questions every other part asks:

* :meth:`Ledger.phases` — the phases of an experiment (``pre``, the exposure phases, ``after_end``);
* :meth:`Ledger.live_revision` — the prompt's live revision at any instant;
* :meth:`Ledger.reverts` — every revision a rollback reverted, and what it restored;
* :func:`revision_state` — the state tuple of one revision at one instant.

Validation rules (each error names the file, the entry such as ``transitions[3]`` and the fix):
times are timezone-aware and non-decreasing; every reference resolves; allocations cover only
the experiment's arms and sum to 1; no transition on an experiment that has not started or has
already ended; one live revision per prompt at a time (no ``deploy`` while an experiment of that
prompt runs, and at most one running experiment per prompt).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.errors import LedgerError

__all__ = [
    "ACTIONS",
    "Consumer",
    "Experiment",
    "Ledger",
    "Phase",
    "Prompt",
    "Revert",
    "Revision",
    "RevisionState",
    "Transition",
    "load_ledger",
    "parse_ledger",
    "revision_state",
]

Action = Literal["deploy", "start", "ramp", "rollback", "promote", "stop"]
ACTIONS: tuple[str, ...] = ("deploy", "start", "ramp", "rollback", "promote", "stop")
_ENDING = frozenset({"rollback", "promote", "stop"})
_ALLOCATION_TOLERANCE = 1e-6


# --------------------------------------------------------------------------------------------
# Raw schema (pydantic): shape and types only; cross-references are checked afterwards.
# --------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RevisionIn(_Strict):
    parent: str | None = None
    contract: str | None = None
    text_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    text_file: str | None = None
    cache_prefix: str | None = None
    description: str | None = None


class _PromptIn(_Strict):
    revisions: dict[str, _RevisionIn] = Field(min_length=1)
    description: str | None = None


class _ExperimentIn(_Strict):
    prompt: str
    unit: str = "user_id"
    arms: dict[str, str] = Field(min_length=2)
    control: str | None = None
    description: str | None = None


class _ConsumerIn(_Strict):
    prompt: str
    accepts: list[str] = Field(min_length=1)
    description: str | None = None


class _TransitionIn(_Strict):
    at: datetime
    action: Action
    prompt: str | None = None
    revision: str | None = None
    experiment: str | None = None
    allocation: dict[str, float] | None = None
    to: str | None = None
    arm: str | None = None
    reason: str | None = None
    actor: str | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "time has no timezone; write it in UTC with a trailing Z, e.g. 2026-11-02T09:00:00Z"
            )
        return value.astimezone(UTC)


class _LedgerIn(_Strict):
    version: Literal[1]
    prompts: dict[str, _PromptIn] = Field(min_length=1)
    experiments: dict[str, _ExperimentIn] = Field(default_factory=dict)
    consumers: dict[str, _ConsumerIn] = Field(default_factory=dict)
    transitions: list[_TransitionIn] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Public typed values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """One prompt text and the legs of its state that are typed in.

    Attributes:
        id: Revision id, unique across the ledger (events refer to it in ``revision_id``).
        prompt: The prompt it is a revision of.
        parent: The revision it was derived from, if any.
        contract: Output-schema version it emits (``contract_version`` in events).
        text_sha256: SHA-256 of the prompt text (given, or computed from ``text_file``).
        text_file: Path of the prompt text, relative to the ledger file, if given.
        cache_prefix: Id of its cacheable prefix; defaults to ``prefix-`` + 12 hex digits of the
            text hash, or ``prefix-<id>`` when no text hash is known.
    """

    id: str
    prompt: str
    parent: str | None = None
    contract: str | None = None
    text_sha256: str | None = None
    text_file: str | None = None
    cache_prefix: str = ""


@dataclass(frozen=True)
class Prompt:
    """A prompt and its revisions (in ledger order)."""

    name: str
    revisions: Mapping[str, Revision]


@dataclass(frozen=True)
class Experiment:
    """A sticky, randomized exposure of revisions (a canary is an experiment).

    Attributes:
        id: Experiment id (the ``experiment_id`` events carry).
        prompt: The prompt whose revisions the arms serve.
        unit: The randomization unit column of the event export (default ``user_id``).
        arms: Arm name → revision id.
        control: The control arm: ``control`` when given, else the arm named ``control``, else
            the first arm.
    """

    id: str
    prompt: str
    unit: str
    arms: Mapping[str, str]
    control: str

    @property
    def treatment_arms(self) -> tuple[str, ...]:
        """Every arm but the control, in ledger order."""
        return tuple(a for a in self.arms if a != self.control)


@dataclass(frozen=True)
class Consumer:
    """A downstream consumer of a prompt's output and the contract versions it accepts."""

    name: str
    prompt: str
    accepts: tuple[str, ...]


@dataclass(frozen=True)
class Transition:
    """One time-stamped entry of the rollout ledger (``index`` is its position in the file)."""

    index: int
    at: datetime
    action: str
    prompt: str
    revision: str | None = None
    experiment: str | None = None
    allocation: Mapping[str, float] | None = None
    to: str | None = None
    arm: str | None = None
    reason: str | None = None
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The transition as it would be written in the ledger (empty fields left out)."""
        out: dict[str, Any] = {"at": self.at.isoformat().replace("+00:00", "Z")}
        out["action"] = self.action
        for key in ("experiment", "revision", "to", "arm", "reason", "actor"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.experiment is None:
            out["prompt"] = self.prompt
        if self.allocation is not None:
            out["allocation"] = dict(self.allocation)
        return out


@dataclass(frozen=True)
class Phase:
    """An interval of an experiment with a fixed allocation and arm → revision map.

    Phase ``0`` is ``pre`` (before the start), ``1..k`` are the exposure phases, and ``k+1`` is
    ``after_end`` when the experiment ended. Intervals are half-open: ``start <= ts < end``;
    ``None`` means unbounded.

    Attributes:
        id: Phase number.
        kind: ``pre``, ``exposure`` or ``after_end``.
        start: First instant of the phase (``None`` for ``pre``).
        end: First instant after the phase (``None`` while open).
        allocation: Arm → share during the phase (empty outside exposure).
        arms: Arm → revision served during the phase (empty outside exposure).
        start_action: The transition action that opened the phase (``None`` for ``pre``).
        end_action: The transition action that closed it (``None`` while open).
        served_after_end: For ``after_end``, the revision every unit is served once the
            experiment ended (the rollback target, the promoted revision, or the live revision).
    """

    id: int
    kind: Literal["pre", "exposure", "after_end"]
    start: datetime | None
    end: datetime | None
    allocation: Mapping[str, float] = field(default_factory=dict)
    arms: Mapping[str, str] = field(default_factory=dict)
    start_action: str | None = None
    end_action: str | None = None
    served_after_end: str | None = None

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` lies in ``[start, end)``."""
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view of the phase."""
        return {
            "phase": self.id,
            "kind": self.kind,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "allocation": dict(self.allocation),
            "arms": dict(self.arms),
            "start_action": self.start_action,
            "end_action": self.end_action,
        }


@dataclass(frozen=True)
class Revert:
    """A revision reverted by a ``rollback`` transition and the revision it restored."""

    at: datetime
    prompt: str
    reverted: str
    restored: str
    transition_index: int
    experiment: str | None = None


@dataclass(frozen=True)
class RevisionState:
    """The state tuple ``(text, rollout_state, baseline_id, cohort_id, contract_version)``.

    Attributes:
        revision: Revision id.
        prompt: Its prompt.
        at: The instant the state is read at.
        text_sha256: Hash of its text (``None`` when the ledger does not record it).
        rollout_state: ``live``, ``canary 10%`` (an arm of a running experiment that is not the
            live revision; the share of the current allocation), ``rolled_back`` (reverted by a
            rollback and not served since), ``stopped`` (only ever an arm of experiments that
            stopped), ``superseded`` (was live, replaced by a deploy or a promotion) or
            ``not_deployed``.
        experiment: The running experiment serving it, or the last one that did.
        arm: Its arm in that experiment.
        cohort_id: Cohort id ``<experiment>/<arm>`` of the units it was served to, if any.
        contract_version: Output-schema version it emits.
        baseline_id: Reference eval baseline anchored to it, when a baseline store is consulted
            (filled by the baseline store, ``None`` from the ledger alone).
    """

    revision: str
    prompt: str
    at: datetime
    text_sha256: str | None
    rollout_state: str
    experiment: str | None
    arm: str | None
    cohort_id: str | None
    contract_version: str | None
    baseline_id: str | None = None


@dataclass(frozen=True)
class _Running:
    experiment: str
    allocation: Mapping[str, float]


@dataclass(frozen=True)
class Ledger:
    """A validated rollout ledger; build it with :func:`load_ledger`.

    Attributes:
        prompts: Prompt name → :class:`Prompt`.
        revisions: Revision id → :class:`Revision` (ids are unique across prompts).
        experiments: Experiment id → :class:`Experiment`.
        consumers: Consumer name → :class:`Consumer`.
        transitions: The ordered transitions.
        path: The file it was read from (``None`` when parsed from a mapping).
    """

    prompts: Mapping[str, Prompt]
    revisions: Mapping[str, Revision]
    experiments: Mapping[str, Experiment]
    consumers: Mapping[str, Consumer]
    transitions: tuple[Transition, ...]
    path: Path | None = None

    # -- experiments -----------------------------------------------------------------------

    def experiment(self, experiment_id: str) -> Experiment:
        """Return an experiment, or raise :class:`LedgerError` listing the known ones."""
        try:
            return self.experiments[experiment_id]
        except KeyError:
            known = ", ".join(sorted(self.experiments)) or "none"
            raise LedgerError(
                f"{self._where()}: experiment {experiment_id!r} is not defined "
                f"(the ledger defines: {known})"
            ) from None

    def experiment_transitions(self, experiment_id: str) -> tuple[Transition, ...]:
        """The transitions of one experiment, in order."""
        self.experiment(experiment_id)
        return tuple(t for t in self.transitions if t.experiment == experiment_id)

    def window(self, experiment_id: str) -> tuple[datetime | None, datetime | None]:
        """``(start, end)`` of an experiment; ``None`` when it has not started / not ended."""
        trs = self.experiment_transitions(experiment_id)
        start = next((t.at for t in trs if t.action == "start"), None)
        end = next((t.at for t in trs if t.action in _ENDING), None)
        return start, end

    def phases(self, experiment_id: str) -> tuple[Phase, ...]:
        """The phases of an experiment: ``pre``, one per allocation, and ``after_end``.

        An experiment that has not started has only the ``pre`` phase.
        """
        exp = self.experiment(experiment_id)
        trs = self.experiment_transitions(experiment_id)
        if not trs:
            return (Phase(id=0, kind="pre", start=None, end=None),)
        phases: list[Phase] = [
            Phase(id=0, kind="pre", start=None, end=trs[0].at, end_action=trs[0].action)
        ]
        for i, t in enumerate(trs):
            if t.action in _ENDING:
                phases.append(
                    Phase(
                        id=len(phases),
                        kind="after_end",
                        start=t.at,
                        end=None,
                        start_action=t.action,
                        served_after_end=self._served_after_end(exp, t),
                    )
                )
                break
            nxt = trs[i + 1] if i + 1 < len(trs) else None
            phases.append(
                Phase(
                    id=len(phases),
                    kind="exposure",
                    start=t.at,
                    end=None if nxt is None else nxt.at,
                    allocation=dict(t.allocation or {}),
                    arms=dict(exp.arms),
                    start_action=t.action,
                    end_action=None if nxt is None else nxt.action,
                )
            )
        return tuple(phases)

    def _served_after_end(self, exp: Experiment, end: Transition) -> str | None:
        if end.action == "rollback":
            return end.to
        if end.action == "promote":
            return exp.arms[end.arm] if end.arm is not None else None
        return self.live_revision(exp.prompt, end.at)

    def phase_at(self, experiment_id: str, at: datetime) -> Phase:
        """The phase of an experiment that contains ``at``."""
        at = _utc(at)
        for phase in self.phases(experiment_id):
            if phase.contains(at):
                return phase
        raise AssertionError("phases cover the whole time line")  # pragma: no cover

    # -- live revisions --------------------------------------------------------------------

    def live_revision(self, prompt: str, at: datetime | None = None) -> str | None:
        """The prompt's live revision at ``at`` (default: after the last transition).

        A transition takes effect at its own instant. During an experiment the live revision is
        the one that was live when it started (the control normally); ``promote`` makes the
        promoted arm's revision live, ``rollback`` makes ``to`` live.
        """
        self._prompt(prompt)
        live: str | None = None
        for t, after in self._live_timeline(prompt):
            if at is not None and t.at > _utc(at):
                break
            live = after
        return live

    def live_history(self, prompt: str) -> tuple[tuple[datetime, str | None], ...]:
        """``(from, revision)`` each time the prompt's live revision changed, in order."""
        self._prompt(prompt)
        out: list[tuple[datetime, str | None]] = []
        for t, after in self._live_timeline(prompt):
            if not out or out[-1][1] != after:
                out.append((t.at, after))
        return tuple(out)

    def _live_timeline(self, prompt: str) -> list[tuple[Transition, str | None]]:
        live: str | None = None
        out: list[tuple[Transition, str | None]] = []
        for t in self.transitions:
            if t.prompt != prompt:
                continue
            if t.action == "deploy" or (t.action == "rollback" and t.to is not None):
                live = t.revision if t.action == "deploy" else t.to
            elif t.action == "promote" and t.experiment is not None and t.arm is not None:
                live = self.experiments[t.experiment].arms[t.arm]
            out.append((t, live))
        return out

    def running_experiment(self, prompt: str, at: datetime | None = None) -> str | None:
        """The experiment of ``prompt`` running at ``at`` (default: now, after the ledger)."""
        state = self._running(prompt, at)
        return None if state is None else state.experiment

    def _running(self, prompt: str, at: datetime | None) -> _Running | None:
        running: _Running | None = None
        for t in self.transitions:
            if t.prompt != prompt or t.experiment is None:
                continue
            if at is not None and t.at > _utc(at):
                break
            if t.action in ("start", "ramp"):
                running = _Running(t.experiment, dict(t.allocation or {}))
            elif t.action in _ENDING:
                running = None
        return running

    # -- reverts ---------------------------------------------------------------------------

    def reverts(self, prompt: str | None = None) -> tuple[Revert, ...]:
        """Every revision reverted by a rollback, with the revision it restored.

        An experiment rollback reverts each arm's revision other than ``to``; a prompt-level
        rollback reverts the revision that was live just before it.
        """
        out: list[Revert] = []
        live: dict[str, str | None] = {}
        for t in self.transitions:
            if t.action == "rollback" and t.to is not None and (prompt in (None, t.prompt)):
                if t.experiment is not None:
                    exp = self.experiments[t.experiment]
                    reverted = [r for r in dict.fromkeys(exp.arms.values()) if r != t.to]
                else:
                    before = live.get(t.prompt)
                    reverted = [before] if before is not None and before != t.to else []
                out.extend(Revert(t.at, t.prompt, r, t.to, t.index, t.experiment) for r in reverted)
            if t.action == "deploy":
                live[t.prompt] = t.revision
            elif t.action == "rollback" and t.to is not None:
                live[t.prompt] = t.to
            elif t.action == "promote" and t.experiment is not None and t.arm is not None:
                live[t.prompt] = self.experiments[t.experiment].arms[t.arm]
        return tuple(out)

    def served_revisions(self, prompt: str) -> frozenset[str]:
        """Revisions of ``prompt`` that served traffic at some point (live or as an arm)."""
        served: set[str] = set()
        for t in self.transitions:
            if t.prompt != prompt:
                continue
            if t.action == "deploy" and t.revision is not None:
                served.add(t.revision)
            elif t.action in ("start", "ramp") and t.experiment is not None:
                exp = self.experiments[t.experiment]
                served.update(exp.arms[a] for a, s in (t.allocation or {}).items() if s > 0)
            elif t.action == "rollback" and t.to is not None:
                served.add(t.to)
        return frozenset(served)

    # -- helpers ---------------------------------------------------------------------------

    def _prompt(self, prompt: str) -> Prompt:
        try:
            return self.prompts[prompt]
        except KeyError:
            known = ", ".join(sorted(self.prompts))
            raise LedgerError(
                f"{self._where()}: prompt {prompt!r} is not defined (the ledger defines: {known})"
            ) from None

    def revision(self, revision_id: str) -> Revision:
        """Return a revision, or raise :class:`LedgerError` naming the known ones."""
        try:
            return self.revisions[revision_id]
        except KeyError:
            known = ", ".join(sorted(self.revisions))
            raise LedgerError(
                f"{self._where()}: revision {revision_id!r} is not defined "
                f"(the ledger defines: {known})"
            ) from None

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "ledger"

    def to_dict(self) -> dict[str, Any]:
        """The ledger in its file schema (JSON-friendly)."""
        return {
            "version": 1,
            "prompts": {
                p.name: {
                    "revisions": {
                        r.id: {
                            k: v
                            for k, v in (
                                ("parent", r.parent),
                                ("contract", r.contract),
                                ("text_sha256", r.text_sha256),
                                ("text_file", r.text_file),
                                ("cache_prefix", r.cache_prefix),
                            )
                            if v is not None
                        }
                        for r in p.revisions.values()
                    }
                }
                for p in self.prompts.values()
            },
            "experiments": {
                e.id: {
                    "prompt": e.prompt,
                    "unit": e.unit,
                    "arms": dict(e.arms),
                    "control": e.control,
                }
                for e in self.experiments.values()
            },
            "consumers": {
                c.name: {"prompt": c.prompt, "accepts": list(c.accepts)}
                for c in self.consumers.values()
            },
            "transitions": [t.to_dict() for t in self.transitions],
        }


def revision_state(ledger: Ledger, revision_id: str, at: datetime | None = None) -> RevisionState:
    """Return the state tuple of a revision at an instant (default: after the last transition).

    ``rollout_state`` is derived from the transitions, never typed in; see
    :class:`RevisionState` for its values. ``baseline_id`` stays ``None`` here; the baseline
    store fills it.
    """
    rev = ledger.revision(revision_id)
    moment = _utc(at) if at is not None else None
    relevant = [t for t in ledger.transitions if moment is None or t.at <= moment]
    live = ledger.live_revision(rev.prompt, moment)
    running = ledger._running(rev.prompt, moment)

    experiment: str | None = None
    arm: str | None = None
    # last experiment whose arms include the revision and that started by `at`
    for t in relevant:
        if t.action == "start" and t.experiment is not None:
            exp = ledger.experiments[t.experiment]
            arms = [a for a, r in exp.arms.items() if r == revision_id]
            if arms:
                experiment, arm = exp.id, arms[0]

    if running is not None and experiment == running.experiment and revision_id != live:
        share = sum(
            s
            for a, s in running.allocation.items()
            if ledger.experiments[running.experiment].arms[a] == revision_id
        )
        state = f"canary {_percent(share)}"
    elif revision_id == live:
        state = "live"
    else:
        state = _past_state(ledger, rev, relevant)
    cohort = f"{experiment}/{arm}" if experiment is not None and arm is not None else None
    return RevisionState(
        revision=revision_id,
        prompt=rev.prompt,
        at=moment if moment is not None else (relevant[-1].at if relevant else datetime.now(UTC)),
        text_sha256=rev.text_sha256,
        rollout_state=state,
        experiment=experiment,
        arm=arm,
        cohort_id=cohort,
        contract_version=rev.contract,
    )


def _past_state(ledger: Ledger, rev: Revision, relevant: list[Transition]) -> str:
    """State of a revision that is neither live nor an arm of a running experiment."""
    last: str = "not_deployed"
    live: str | None = None
    for t in relevant:
        if t.prompt != rev.prompt:
            continue
        was_live = live == rev.id
        if t.action == "deploy":
            live = t.revision
            if was_live and live != rev.id:
                last = "superseded"
        elif t.action == "promote" and t.experiment is not None and t.arm is not None:
            live = ledger.experiments[t.experiment].arms[t.arm]
            if was_live and live != rev.id:
                last = "superseded"
            elif rev.id in ledger.experiments[t.experiment].arms.values() and live != rev.id:
                last = "stopped"
        elif t.action == "rollback":
            in_exp = (
                t.experiment is not None
                and rev.id in ledger.experiments[t.experiment].arms.values()
            )
            if (in_exp or was_live) and t.to != rev.id:
                last = "rolled_back"
            live = t.to if t.to is not None else live
        elif t.action == "stop" and t.experiment is not None:
            exp = ledger.experiments[t.experiment]
            if rev.id in exp.arms.values() and last == "not_deployed":
                last = "stopped"
    return last


def _percent(share: float) -> str:
    pct = share * 100
    return f"{pct:.0f}%" if math.isclose(pct, round(pct), abs_tol=1e-9) else f"{pct:.1f}%"


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise LedgerError(
            f"time {at.isoformat()} has no timezone; pass an aware datetime (e.g. with tzinfo=UTC)"
        )
    return at.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def load_ledger(path: str | Path) -> Ledger:
    """Read and validate a ledger file (YAML, or JSON with the same schema).

    Raises:
        LedgerError: naming the file, the entry (e.g. ``transitions[3]``) and the fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LedgerError(f"{path}: ledger file not found; pass --ledger PATH") from None
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the ledger ({exc.strerror})") from None
    data = _parse_text(path, text)
    return parse_ledger(data, path=path)


def _parse_text(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise LedgerError(
                f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
    import yaml

    class _Loader(yaml.SafeLoader):
        """SafeLoader that keeps timestamps as strings (pydantic parses them strictly)."""

    _Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LedgerError(f"{path}: not valid YAML{where}: {exc}") from None


def parse_ledger(data: Any, *, path: Path | None = None) -> Ledger:
    """Validate an already-parsed ledger mapping (see :func:`load_ledger`)."""
    where = str(path) if path is not None else "ledger"
    if not isinstance(data, dict):
        raise LedgerError(f"{where}: the ledger must be a mapping with version, prompts, ...")
    try:
        raw = _LedgerIn.model_validate(data)
    except ValidationError as exc:
        raise LedgerError(_format_validation(where, exc)) from None
    return _Builder(raw, where, path).build()


def _format_validation(where: str, exc: ValidationError) -> str:
    messages = []
    for err in exc.errors()[:5]:
        loc = _loc(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required field is missing"
        messages.append(f"{loc}: {msg}")
    more = len(exc.errors()) - 5
    tail = f" (and {more} more)" if more > 0 else ""
    return f"{where}: " + "; ".join(messages) + tail


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


class _Builder:
    """Cross-entry validation and construction of the typed :class:`Ledger`."""

    def __init__(self, raw: _LedgerIn, where: str, path: Path | None) -> None:
        self.raw = raw
        self.where = where
        self.path = path

    def fail(self, entry: str, message: str) -> LedgerError:
        return LedgerError(f"{self.where}: {entry}: {message}")

    def build(self) -> Ledger:
        revisions: dict[str, Revision] = {}
        prompts: dict[str, Prompt] = {}
        for pname, p in self.raw.prompts.items():
            revs: dict[str, Revision] = {}
            for rid, r in p.revisions.items():
                entry = f"prompts.{pname}.revisions.{rid}"
                if rid in revisions:
                    raise self.fail(
                        entry,
                        f"revision id {rid!r} is also used by prompt {revisions[rid].prompt!r}; "
                        "revision ids must be unique across the ledger",
                    )
                sha = self._text_hash(entry, r)
                prefix = r.cache_prefix or (f"prefix-{sha[:12]}" if sha else f"prefix-{rid}")
                revs[rid] = Revision(rid, pname, r.parent, r.contract, sha, r.text_file, prefix)
                revisions[rid] = revs[rid]
            prompts[pname] = Prompt(pname, revs)
        for rev in revisions.values():
            if rev.parent is not None and rev.parent not in prompts[rev.prompt].revisions:
                raise self.fail(
                    f"prompts.{rev.prompt}.revisions.{rev.id}.parent",
                    f"parent {rev.parent!r} is not a revision of prompt {rev.prompt!r}",
                )

        experiments: dict[str, Experiment] = {}
        for eid, e in self.raw.experiments.items():
            entry = f"experiments.{eid}"
            if e.prompt not in prompts:
                raise self.fail(entry, f"prompt {e.prompt!r} is not defined under prompts")
            for arm, rid in e.arms.items():
                if rid not in prompts[e.prompt].revisions:
                    raise self.fail(
                        f"{entry}.arms.{arm}",
                        f"revision {rid!r} is not a revision of prompt {e.prompt!r}",
                    )
            control = e.control
            if control is None:
                control = "control" if "control" in e.arms else next(iter(e.arms))
            elif control not in e.arms:
                raise self.fail(f"{entry}.control", f"arm {control!r} is not one of its arms")
            experiments[eid] = Experiment(eid, e.prompt, e.unit, dict(e.arms), control)

        consumers: dict[str, Consumer] = {}
        for cname, c in self.raw.consumers.items():
            if c.prompt not in prompts:
                raise self.fail(f"consumers.{cname}", f"prompt {c.prompt!r} is not defined")
            consumers[cname] = Consumer(cname, c.prompt, tuple(c.accepts))

        transitions = self._transitions(prompts, experiments)
        return Ledger(prompts, revisions, experiments, consumers, transitions, self.path)

    def _text_hash(self, entry: str, r: _RevisionIn) -> str | None:
        if r.text_file is None:
            return r.text_sha256
        base = self.path.parent if self.path is not None else Path.cwd()
        text_path = base / r.text_file
        try:
            digest = hashlib.sha256(text_path.read_bytes()).hexdigest()
        except OSError:
            raise self.fail(
                f"{entry}.text_file",
                f"cannot read {text_path}; the path is relative to the ledger file",
            ) from None
        if r.text_sha256 is not None and r.text_sha256 != digest:
            raise self.fail(
                f"{entry}.text_sha256",
                f"does not match the hash of {r.text_file} ({digest}); the text changed — "
                "record it as a new revision",
            )
        return digest

    def _transitions(
        self, prompts: Mapping[str, Prompt], experiments: Mapping[str, Experiment]
    ) -> tuple[Transition, ...]:
        out: list[Transition] = []
        started: set[str] = set()
        ended: set[str] = set()
        running: dict[str, str] = {}  # prompt -> running experiment
        live: dict[str, str] = {}
        previous: datetime | None = None
        for i, t in enumerate(self.raw.transitions):
            entry = f"transitions[{i}] ({t.action} at {t.at.isoformat()})"
            if previous is not None and t.at < previous:
                raise self.fail(
                    entry,
                    f"time goes backwards (the previous transition is at {previous.isoformat()}); "
                    "transitions must be in time order",
                )
            previous = t.at
            if t.action == "deploy":
                prompt = self._deploy(entry, t, prompts, running)
            else:
                prompt = self._experiment_action(
                    entry, t, prompts, experiments, started, ended, running, live
                )
            if t.action == "deploy" and t.revision is not None:
                live[prompt] = t.revision
            elif t.action == "rollback" and t.to is not None:
                live[prompt] = t.to
            elif t.action == "promote" and t.experiment is not None and t.arm is not None:
                live[prompt] = experiments[t.experiment].arms[t.arm]
            to = t.to
            if t.action == "rollback" and to is None and t.experiment is not None:
                exp = experiments[t.experiment]
                to = exp.arms[exp.control]
            allocation = None
            if t.allocation is not None and t.experiment is not None:
                arms = experiments[t.experiment].arms
                allocation = {a: float(t.allocation.get(a, 0.0)) for a in arms}
            out.append(
                Transition(
                    index=i,
                    at=t.at,
                    action=t.action,
                    prompt=prompt,
                    revision=t.revision,
                    experiment=t.experiment,
                    allocation=allocation,
                    to=to,
                    arm=t.arm,
                    reason=t.reason,
                    actor=t.actor,
                )
            )
        return tuple(out)

    def _deploy(
        self,
        entry: str,
        t: _TransitionIn,
        prompts: Mapping[str, Prompt],
        running: Mapping[str, str],
    ) -> str:
        self._forbid(entry, t, ("experiment", "allocation", "to", "arm"))
        if t.prompt is None or t.revision is None:
            raise self.fail(entry, "deploy needs `prompt` and `revision`")
        if t.prompt not in prompts:
            raise self.fail(entry, f"prompt {t.prompt!r} is not defined under prompts")
        if t.revision not in prompts[t.prompt].revisions:
            raise self.fail(
                entry, f"revision {t.revision!r} is not a revision of prompt {t.prompt!r}"
            )
        if t.prompt in running:
            raise self.fail(
                entry,
                f"experiment {running[t.prompt]!r} of prompt {t.prompt!r} is still running; a "
                "prompt has one live revision at a time — end the experiment (rollback, promote "
                "or stop) before deploying",
            )
        return t.prompt

    def _experiment_action(
        self,
        entry: str,
        t: _TransitionIn,
        prompts: Mapping[str, Prompt],
        experiments: Mapping[str, Experiment],
        started: set[str],
        ended: set[str],
        running: dict[str, str],
        live: Mapping[str, str],
    ) -> str:
        if t.experiment is None:
            if t.action != "rollback":
                raise self.fail(entry, f"{t.action} needs `experiment`")
            return self._prompt_rollback(entry, t, prompts, running, live)
        self._forbid(entry, t, ("revision",))
        exp = experiments.get(t.experiment)
        if exp is None:
            known = ", ".join(sorted(experiments)) or "none"
            raise self.fail(entry, f"experiment {t.experiment!r} is not defined (defined: {known})")
        if t.prompt is not None and t.prompt != exp.prompt:
            raise self.fail(
                entry, f"prompt {t.prompt!r} differs from the experiment's prompt {exp.prompt!r}"
            )
        if t.experiment in ended:
            raise self.fail(
                entry, f"experiment {t.experiment!r} has already ended; start a new experiment"
            )
        if t.action == "start":
            if t.experiment in started:
                raise self.fail(entry, f"experiment {t.experiment!r} has already started")
            if exp.prompt in running:
                raise self.fail(
                    entry,
                    f"experiment {running[exp.prompt]!r} of prompt {exp.prompt!r} is still "
                    "running; a prompt runs one experiment at a time",
                )
            started.add(t.experiment)
            running[exp.prompt] = t.experiment
        elif t.experiment not in started:
            raise self.fail(
                entry, f"experiment {t.experiment!r} has not started; add a `start` before it"
            )
        if t.action in ("start", "ramp"):
            self._forbid(entry, t, ("to", "arm"))
            self._allocation(entry, t, exp)
        else:
            if t.allocation is not None:
                raise self.fail(entry, f"{t.action} takes no `allocation`")
            ended.add(t.experiment)
            running.pop(exp.prompt, None)
        if t.action == "rollback":
            self._forbid(entry, t, ("arm",))
            if t.to is not None and t.to not in prompts[exp.prompt].revisions:
                raise self.fail(entry, f"`to` {t.to!r} is not a revision of prompt {exp.prompt!r}")
        elif t.action == "promote":
            self._forbid(entry, t, ("to",))
            if t.arm is None or t.arm not in exp.arms:
                arms = ", ".join(exp.arms)
                raise self.fail(entry, f"promote needs `arm`, one of: {arms}")
        elif t.action == "stop":
            self._forbid(entry, t, ("to", "arm"))
        return exp.prompt

    def _prompt_rollback(
        self,
        entry: str,
        t: _TransitionIn,
        prompts: Mapping[str, Prompt],
        running: Mapping[str, str],
        live: Mapping[str, str],
    ) -> str:
        self._forbid(entry, t, ("allocation", "arm", "revision"))
        if t.prompt is None or t.to is None:
            raise self.fail(
                entry,
                "a rollback without `experiment` needs `prompt` and `to` (the revision "
                "the prompt reverts to)",
            )
        if t.prompt not in prompts:
            raise self.fail(entry, f"prompt {t.prompt!r} is not defined under prompts")
        if t.to not in prompts[t.prompt].revisions:
            raise self.fail(entry, f"`to` {t.to!r} is not a revision of prompt {t.prompt!r}")
        if t.prompt in running:
            raise self.fail(
                entry,
                f"experiment {running[t.prompt]!r} is running; roll it back with "
                f"`experiment: {running[t.prompt]}`",
            )
        if t.prompt not in live:
            raise self.fail(entry, f"prompt {t.prompt!r} has no live revision to roll back")
        return t.prompt

    def _allocation(self, entry: str, t: _TransitionIn, exp: Experiment) -> None:
        if t.allocation is None:
            raise self.fail(entry, f"{t.action} needs `allocation` (arm: share, summing to 1)")
        unknown = [a for a in t.allocation if a not in exp.arms]
        if unknown:
            raise self.fail(
                f"{entry}.allocation",
                f"arm(s) {', '.join(map(repr, unknown))} not in experiment {exp.id!r} "
                f"(arms: {', '.join(exp.arms)})",
            )
        bad = [a for a, s in t.allocation.items() if not (0.0 <= s <= 1.0) or math.isnan(s)]
        if bad:
            raise self.fail(f"{entry}.allocation", "shares must lie between 0 and 1")
        total = sum(t.allocation.values())
        if abs(total - 1.0) > _ALLOCATION_TOLERANCE:
            raise self.fail(
                f"{entry}.allocation", f"shares sum to {total:g}, not 1; fix the shares"
            )

    def _forbid(self, entry: str, t: _TransitionIn, names: tuple[str, ...]) -> None:
        for name in names:
            if getattr(t, name) is not None:
                raise self.fail(entry, f"`{name}` does not apply to {t.action}; remove it")
