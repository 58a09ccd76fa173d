"""The derived timelines of a ledger, built once in one pass over its transitions.

Private to :mod:`analysis.ledger`. A :class:`~analysis.ledger.model.Ledger` builds its
:class:`LedgerIndex` on first use (and keeps it): the transitions grouped by prompt and by
experiment, and for every prompt the live revision and the running experiment after each of
its transitions, its reverts and served revisions, and for every revision the experiments it
was an arm of and its past rollout state over time. Every question the ledger answers is then
a dictionary look-up plus a binary search on a time-sorted list, so building costs
O(transitions x arms) once and each answer O(log transitions): a caller asking once per
transition (baseline sync, rollback planning) stays O(n log n) instead of O(n^2).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:  # the model imports this module; these names are for annotations only
    from analysis.ledger.model import Ledger, Transition

#: ``(at, prompt, reverted, restored, transition index, experiment)``: the fields of a
#: :class:`~analysis.ledger.model.Revert`, which the model builds from them.
RevertFields = tuple[datetime, str, str, str, int, "str | None"]

__all__ = ["ENDING", "LedgerIndex", "RevertFields", "Timeline", "_Running"]

ENDING = frozenset({"rollback", "promote", "stop"})

V = TypeVar("V")


@dataclass(frozen=True)
class _Running:
    """The experiment of a prompt that is running, and its current allocation."""

    experiment: str
    allocation: Mapping[str, float]


@dataclass
class Timeline(Generic[V]):
    """A step function of time: ``values[i]`` holds from ``times[i]`` (non-decreasing) on."""

    times: list[datetime] = field(default_factory=list)
    values: list[V] = field(default_factory=list)

    def add(self, at: datetime, value: V) -> None:
        """Append a step (``at`` must not precede the last step)."""
        self.times.append(at)
        self.values.append(value)

    def at(self, moment: datetime | None) -> V | None:
        """The value after every step at or before ``moment`` (all steps when ``None``);
        ``None`` before the first step."""
        i = len(self.times) if moment is None else bisect.bisect_right(self.times, moment)
        return self.values[i - 1] if i else None


class LedgerIndex:
    """Every derived view of one ledger, from one pass over its transitions (see the module)."""

    def __init__(self, ledger: Ledger) -> None:
        self.by_prompt: dict[str, list[Transition]] = {p: [] for p in ledger.prompts}
        self.by_experiment: dict[str, list[Transition]] = {e: [] for e in ledger.experiments}
        #: prompt -> live revision after each of its transitions
        self.live: dict[str, Timeline[str | None]] = {p: Timeline() for p in ledger.prompts}
        #: prompt -> running experiment after each of its experiment transitions
        self.running: dict[str, Timeline[_Running | None]] = {p: Timeline() for p in ledger.prompts}
        #: revision -> (experiment, arm) of each experiment start that has it as an arm
        self.starts: dict[str, Timeline[tuple[str, str]]] = {}
        #: revision -> its past rollout state (superseded, stopped, rolled_back) over time
        self.past: dict[str, Timeline[str]] = {}
        self.served: dict[str, set[str]] = {p: set() for p in ledger.prompts}
        self.reverts: list[RevertFields] = []
        self.last_at: datetime | None = ledger.transitions[-1].at if ledger.transitions else None
        self._build(ledger)
        self.live_history: dict[str, tuple[tuple[datetime, str | None], ...]] = {
            p: _changes(line) for p, line in self.live.items()
        }

    def _build(self, ledger: Ledger) -> None:
        experiments = ledger.experiments
        live: dict[str, str | None] = {}
        past: dict[str, str] = {}
        running: dict[str, _Running | None] = {}
        for t in ledger.transitions:
            prompt = t.prompt
            self.by_prompt[prompt].append(t)
            exp = experiments[t.experiment] if t.experiment is not None else None
            if exp is not None:
                self.by_experiment[exp.id].append(t)
            before = live.get(prompt)
            arm_revisions = tuple(dict.fromkeys(exp.arms.values())) if exp is not None else ()

            # reverts: an experiment rollback reverts every arm's revision but `to`; a prompt
            # rollback reverts the revision live just before it
            if t.action == "rollback" and t.to is not None:
                if exp is not None:
                    reverted = [r for r in arm_revisions if r != t.to]
                else:
                    reverted = [before] if before is not None and before != t.to else []
                self.reverts.extend(
                    (t.at, prompt, r, t.to, t.index, t.experiment) for r in reverted
                )

            # the live revision after the transition
            after = before
            if t.action == "deploy":
                after = t.revision
            elif t.action == "rollback" and t.to is not None:
                after = t.to
            elif t.action == "promote" and exp is not None and t.arm is not None:
                after = exp.arms[t.arm]
            live[prompt] = after
            self.live[prompt].add(t.at, after)

            # the running experiment
            if exp is not None:
                if t.action in ("start", "ramp"):
                    running[prompt] = _Running(exp.id, dict(t.allocation or {}))
                elif t.action in ENDING:
                    running[prompt] = None
                self.running[prompt].add(t.at, running.get(prompt))

            # revisions that served traffic
            if t.action == "deploy" and t.revision is not None:
                self.served[prompt].add(t.revision)
            elif t.action in ("start", "ramp") and exp is not None:
                self.served[prompt].update(
                    exp.arms[a] for a, s in (t.allocation or {}).items() if s > 0
                )
            elif t.action == "rollback" and t.to is not None:
                self.served[prompt].add(t.to)

            # experiments each revision is an arm of (the first arm naming it)
            if t.action == "start" and exp is not None:
                for arm_revision in arm_revisions:
                    arm = next(a for a, r in exp.arms.items() if r == arm_revision)
                    self.starts.setdefault(arm_revision, Timeline()).add(t.at, (exp.id, arm))

            # past rollout states (see analysis.ledger.state): only the revision live before
            # and the experiment's arm revisions can change
            for maybe in dict.fromkeys((before, *arm_revisions)):
                if maybe is None:
                    continue
                revision: str = maybe
                old = past.get(revision, "not_deployed")
                new = _past_step(t, revision, old, before, after, revision in arm_revisions)
                if new != old:
                    past[revision] = new
                    self.past.setdefault(revision, Timeline()).add(t.at, new)


def _past_step(
    t: Transition, revision: str, last: str, before: str | None, after: str | None, in_exp: bool
) -> str:
    """The past state of ``revision`` after ``t`` (``last`` before it)."""
    was_live = before == revision
    if t.action == "deploy":
        return "superseded" if was_live and after != revision else last
    if t.action == "promote" and t.experiment is not None and t.arm is not None:
        if was_live and after != revision:
            return "superseded"
        return "stopped" if in_exp and after != revision else last
    if t.action == "rollback":
        return "rolled_back" if (in_exp or was_live) and t.to != revision else last
    if t.action == "stop" and t.experiment is not None:
        return "stopped" if in_exp and last == "not_deployed" else last
    return last


def _changes(line: Timeline[str | None]) -> tuple[tuple[datetime, str | None], ...]:
    out: list[tuple[datetime, str | None]] = []
    for at, value in zip(line.times, line.values, strict=True):
        if not out or out[-1][1] != value:
            out.append((at, value))
    return tuple(out)
