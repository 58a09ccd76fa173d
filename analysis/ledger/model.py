"""The rollout ledger: prompts, revisions, experiments, consumers and the ordered transitions.

A ledger is one YAML or JSON file (schema and every rule: ``docs/ledger.md``).
:func:`~analysis.ledger.loading.load_ledger` validates it strictly with pydantic plus the
cross-entry rules below, and returns a frozen :class:`Ledger` whose derived views answer the
questions every other part asks:

* :meth:`Ledger.phases` — the phases of an experiment (``pre``, the exposure phases, ``after_end``);
* :meth:`Ledger.live_revision` — the prompt's live revision at any instant;
* :meth:`Ledger.reverts` — every revision a rollback reverted, and what it restored;
* :func:`~analysis.ledger.state.revision_state` — the state tuple of one revision at one instant.

Validation rules (each error names the file, the entry such as ``transitions[3]`` and the fix):
prompt, revision, experiment, arm and consumer ids follow :data:`ID_RULE` (they become file
and directory names); times are timezone-aware and non-decreasing; every reference resolves;
allocations cover only
the experiment's arms and sum to 1; no transition on an experiment that has not started or has
already ended; one live revision per prompt at a time (no ``deploy`` while an experiment of that
prompt runs, and at most one running experiment per prompt). The rules are enforced in
:mod:`analysis.ledger.loading`; this module holds the typed values and their derived views.

The derived views are answered from timelines built once per ledger in one pass
(:mod:`analysis.ledger._index`): each answer is a look-up and a binary search, so asking once
per transition costs O(n log n) over a ledger of n transitions, not O(n^2).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from analysis.errors import LedgerError
from analysis.ledger._index import ENDING, LedgerIndex, _Running

__all__ = [
    "ACTIONS",
    "ID_RULE",
    "TRANSITION_COLUMNS",
    "Consumer",
    "Experiment",
    "Ledger",
    "Phase",
    "Prompt",
    "Revert",
    "Revision",
    "RevisionState",
    "Transition",
    "valid_id",
]

ACTIONS: tuple[str, ...] = ("deploy", "start", "ramp", "rollback", "promote", "stop")
#: Columns of :meth:`Ledger.transition_rows` / :meth:`Ledger.to_pandas`, in order.
TRANSITION_COLUMNS: tuple[str, ...] = (
    "index",
    "at",
    "action",
    "prompt",
    "revision",
    "experiment",
    "allocation",
    "to",
    "arm",
    "reason",
    "actor",
)
_ENDING = ENDING

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: The rule every prompt, revision, experiment, arm and consumer id follows (as suite names do).
ID_RULE = (
    "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, without '..' "
    "(ids become file and directory names)"
)


def valid_id(name: object) -> bool:
    """Whether ``name`` is a safe id: ``[A-Za-z0-9][A-Za-z0-9._-]{0,99}`` without ``..``.

    Such an id cannot be a path (no separator, not ``.`` or ``..``, no leading dot), so it is
    safe as a file or directory name.

    >>> valid_id("exp-17"), valid_id("../x"), valid_id("a/b"), valid_id(".hidden")
    (True, False, False, False)
    """
    return isinstance(name, str) and _ID.fullmatch(name) is not None and ".." not in name


@dataclass(frozen=True)
class Revision:
    """One prompt text and the legs of its state that are typed in.

    Attributes:
        id: Revision id, unique across the ledger (events refer to it in ``revision_id``).
        prompt: The prompt it is a revision of.
        parent: The revision it was derived from, if any.
        contract: Output-schema version it emits (``contract_version`` in events).
        text_sha256: SHA-256 of the prompt text's UTF-8 bytes (given, or computed from
            ``text`` or ``text_file``): the same whether the text is inline or in a file.
        text_file: Path of the prompt text, relative to the ledger file, if given.
        cache_prefix: Id of its cacheable prefix; defaults to ``prefix-`` + 12 hex digits of the
            text hash, or ``prefix-<id>`` when no text hash is known.
        text: The prompt text written inline in the ledger, if given (never with
            ``text_file``).
        cache_prefix_declared: Whether the ledger declares ``cache_prefix`` (``False``: the
            default above was derived; :meth:`Ledger.to_dict` then leaves it out).
    """

    id: str
    prompt: str
    parent: str | None = None
    contract: str | None = None
    text_sha256: str | None = None
    text_file: str | None = None
    cache_prefix: str = ""
    text: str | None = field(default=None, repr=False)
    cache_prefix_declared: bool = field(default=False, repr=False)


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
class Ledger:
    """A validated rollout ledger; build it with :func:`~analysis.ledger.loading.load_ledger`.

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

    @functools.cached_property
    def _index(self) -> LedgerIndex:
        """The derived timelines, built in one pass on first use (see ``_index.py``)."""
        return LedgerIndex(self)

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
        return tuple(self._index.by_experiment[experiment_id])

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
        return self._index.live[prompt].at(None if at is None else _utc(at))

    def live_history(self, prompt: str) -> tuple[tuple[datetime, str | None], ...]:
        """``(from, revision)`` each time the prompt's live revision changed, in order."""
        self._prompt(prompt)
        return self._index.live_history[prompt]

    def prompt_transitions(self, prompt: str) -> tuple[Transition, ...]:
        """The transitions of one prompt (deploys, its experiments' transitions), in order."""
        self._prompt(prompt)
        return tuple(self._index.by_prompt[prompt])

    def running_experiment(self, prompt: str, at: datetime | None = None) -> str | None:
        """The experiment of ``prompt`` running at ``at`` (default: now, after the ledger)."""
        state = self._running(prompt, at)
        return None if state is None else state.experiment

    def _running(self, prompt: str, at: datetime | None) -> _Running | None:
        line = self._index.running.get(prompt)
        return None if line is None else line.at(None if at is None else _utc(at))

    # -- reverts ---------------------------------------------------------------------------

    def reverts(self, prompt: str | None = None) -> tuple[Revert, ...]:
        """Every revision reverted by a rollback, with the revision it restored.

        An experiment rollback reverts each arm's revision other than ``to``; a prompt-level
        rollback reverts the revision that was live just before it.
        """
        if prompt is None:
            return self._reverts
        return self._reverts_by_prompt.get(prompt, ())

    @functools.cached_property
    def _reverts(self) -> tuple[Revert, ...]:
        return tuple(Revert(*fields) for fields in self._index.reverts)

    @functools.cached_property
    def _reverts_by_prompt(self) -> dict[str, tuple[Revert, ...]]:
        out: dict[str, list[Revert]] = {}
        for revert in self._reverts:
            out.setdefault(revert.prompt, []).append(revert)
        return {p: tuple(rs) for p, rs in out.items()}

    def served_revisions(self, prompt: str) -> frozenset[str]:
        """Revisions of ``prompt`` that served traffic at some point (live or as an arm)."""
        return frozenset(self._index.served.get(prompt, ()))

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

    # -- notebook views --------------------------------------------------------------------

    def transition_rows(self) -> list[dict[str, Any]]:
        """One row per transition, in file order, every column present (allocation as text).

        Columns: :data:`TRANSITION_COLUMNS`; ``prompt`` is always filled (resolved through the
        experiment for experiment transitions); ``allocation`` reads ``control=0.9,
        treatment=0.1``.
        """
        rows = []
        for t in self.transitions:
            row = {c: getattr(t, c) for c in TRANSITION_COLUMNS}
            if t.allocation is not None:
                row["allocation"] = ",".join(f"{a}={s:g}" for a, s in t.allocation.items())
            rows.append(row)
        return rows

    def to_polars(self) -> Any:
        """The transitions as a polars DataFrame, one row per transition (``at`` in UTC)."""
        import polars as pl

        schema: dict[str, pl.DataType] = dict.fromkeys(TRANSITION_COLUMNS, pl.String())
        schema.update(index=pl.Int64(), at=pl.Datetime("us", "UTC"))
        return pl.DataFrame(self.transition_rows(), schema=schema)

    def to_pandas(self) -> Any:
        """The transitions as a pandas DataFrame, one row per transition (``at`` in UTC)."""
        return self.to_polars().to_pandas()

    def _head(self) -> str:
        return (
            f"Ledger {self._where()}: {len(self.prompts)} prompt(s), {len(self.revisions)} "
            f"revision(s), {len(self.experiments)} experiment(s), {len(self.consumers)} "
            f"consumer(s), {len(self.transitions)} transition(s)"
        )

    def __repr__(self) -> str:
        from analysis import _render

        return self._head() + "\n\n" + _render.to_text(self.transition_rows(), TRANSITION_COLUMNS)

    def _repr_html_(self) -> str:
        import html

        from analysis import _render

        table = _render.to_html(self.transition_rows(), TRANSITION_COLUMNS)
        return f"<div><strong>{html.escape(self._head())}</strong>{table}</div>"

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
                                ("text", r.text),
                                ("text_file", r.text_file),
                                ("cache_prefix", r.cache_prefix_declared and r.cache_prefix),
                            )
                            if v is not None and v is not False
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


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise LedgerError(
            f"time {at.isoformat()} has no timezone; pass an aware datetime (e.g. with tzinfo=UTC)"
        )
    return at.astimezone(UTC)
