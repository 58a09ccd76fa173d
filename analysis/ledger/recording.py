"""Record one transition in a ledger file as it happens (``promptstate ledger record``).

:func:`record_transition` builds the ledger entry of one action (``deploy``, ``start``,
``ramp``, ``promote``, ``stop``, ``rollback``) from keyword arguments and appends it with the
one ledger writer (:func:`analysis.ledger.writer.append_transition`, the writer ``rollback
apply`` uses): under the ledger's lock, validated against the whole ledger (times not
decreasing, references resolving, allocations summing to 1, one live revision per prompt —
every rule of ``docs/ledger.md``) before an atomic rename; comments and formatting of the
existing file are kept. A transition that breaks a rule raises :class:`LedgerError` and leaves
the file byte for byte as it was.

Revisions, experiments and consumers are *declared* in the ledger's header (``prompts``,
``experiments``, ``consumers``). A record declares what it names, in the same write, when the
header does not have it yet: a ``deploy`` given the new revision's ``text`` or ``text_file``
(``contract``, ``parent``) declares the revision — and its prompt, when that is new too; a
``start`` given ``arms`` (``control``, ``unit``) declares the experiment, and the arms'
revisions that ``declare_revisions`` describes. :mod:`analysis.ledger.declaring` declares a
revision or a consumer alone, and creates an empty ledger, so a ledger can be kept by commands
only, from nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analysis import _yaml
from analysis.errors import SCHEMA_VERSION, LedgerError
from analysis.ledger.loading import parse_ledger
from analysis.ledger.model import ACTIONS, ID_RULE, Ledger, Transition, valid_id
from analysis.ledger.writer import (
    append_transition,
    declare_and_append,
    ledger_lock,
)

__all__ = ["RecordResult", "build_entry", "record_transition"]

#: Order of the keys of a recorded entry (the order the sample ledger writes them in).
ENTRY_KEYS: tuple[str, ...] = (
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


@dataclass(frozen=True)
class RecordResult:
    """What :func:`record_transition` recorded.

    Attributes:
        path: The ledger file.
        entry: The entry as written in the file (ledger form; ``at`` as ISO text in UTC).
        transition: The validated transition (``index`` is its position in ``transitions``).
        written: Whether the file was replaced (``False`` on a dry run).
        ledger: The validated ledger with the new transition.
        diff: A unified diff of the change to the file.
        declared: The header entries the record declared, e.g.
            ``("prompts.support-assistant.revisions.r43",)`` or ``("experiments.exp-18",)``
            (empty when it only appended the transition).
    """

    path: Path
    entry: Mapping[str, Any]
    transition: Transition
    written: bool
    ledger: Ledger
    diff: str
    declared: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON shape: ``{"schema_version": 1, "ledger": path, "written": bool, "dry_run":
        bool, "index": int, "transition": {entry as written}, "declared": [header entries
        declared, e.g. "experiments.exp-18"]}``.
        """
        return {
            "schema_version": SCHEMA_VERSION,
            "ledger": str(self.path),
            "written": self.written,
            "dry_run": not self.written,
            "index": self.transition.index,
            "transition": dict(self.entry),
            "declared": list(self.declared),
        }


def record_transition(
    ledger: str | Path,
    action: str,
    *,
    at: datetime | str | None = None,
    prompt: str | None = None,
    revision: str | None = None,
    experiment: str | None = None,
    allocation: Mapping[str, float] | None = None,
    to: str | None = None,
    arm: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
    text_file: str | Path | None = None,
    text: str | None = None,
    contract: str | None = None,
    parent: str | None = None,
    arms: Mapping[str, str] | None = None,
    control: str | None = None,
    unit: str | None = None,
    declare_revisions: Mapping[str, Mapping[str, Any]] | None = None,
    dry_run: bool = False,
) -> RecordResult:
    """Append one transition to a ledger file, validated against the whole ledger.

    Which fields each action needs is the ledger's rule (``docs/ledger.md``): ``deploy`` needs
    ``prompt`` and ``revision``; ``start`` and ``ramp`` need ``experiment`` and ``allocation``;
    ``promote`` needs ``experiment`` and ``arm``; ``stop`` needs ``experiment``; ``rollback``
    needs ``experiment`` (``to`` defaults to the control arm's revision) or ``prompt`` and
    ``to``. The revisions and experiments named must be declared in the ledger's header — but
    a ``deploy`` given ``text``, ``text_file``, ``contract`` or ``parent`` declares its revision
    under ``prompts.<prompt>.revisions`` in the same write when the header does not have it yet
    (``text`` inline, or ``text_file`` stored relative to the ledger, either with its
    ``text_sha256``; the prompt too when it is new), and when it does,
    checks that they agree with the declaration (a changed text is a new revision). Likewise a
    ``start`` given ``arms`` (``control``, ``unit``) declares its experiment under
    ``experiments`` (its prompt: ``prompt``, else the arms' revisions' prompt), or checks them
    against the declaration; ``declare_revisions`` declares arm revisions the header lacks.

    Args:
        ledger: The ledger file (YAML or JSON); it must exist (``promptstate ledger init``
            creates an empty one), so a mistyped path never starts a second ledger. A symbolic
            link is followed: the target is written and the link stays.
        action: ``deploy``, ``start``, ``ramp``, ``promote``, ``stop`` or ``rollback``.
        at: When it took effect: an aware ``datetime`` or ISO 8601 text with a zone. Default:
            now in UTC, rounded up to the whole second — read under the ledger's lock, so
            concurrent recorders append in time order.
        prompt: The prompt (``deploy``, prompt rollbacks; optional elsewhere).
        revision: The revision deployed (``deploy``).
        experiment: The experiment (``start``, ``ramp``, ``promote``, ``stop``, experiment
            rollbacks).
        allocation: Arm → share (``start``, ``ramp``); the shares sum to 1.
        to: The revision restored (``rollback``).
        arm: The arm whose revision becomes live (``promote``).
        actor: Who did it (free text).
        reason: Why (free text).
        text_file: ``deploy`` only: the prompt text of the revision (a path relative to the
            working directory, or absolute).
        text: ``deploy`` only: the prompt text of the revision itself, written inline in the
            ledger (non-empty; not with ``text_file``). Its hash is that of its UTF-8 bytes,
            the hash of a file holding the same text.
        contract: ``deploy`` only: the output-schema version the revision emits.
        parent: ``deploy`` only: the revision it was derived from.
        arms: ``start`` only: the experiment's arm → revision map.
        control: ``start`` only: its control arm (default ``control``, else the first arm).
        unit: ``start`` only: its randomisation unit column (default ``user_id``).
        declare_revisions: ``start`` only: revision id → its fields (``text`` or
            ``text_file``, ``contract``, ``parent``) for revisions of ``arms`` the header does
            not declare yet; declared under the experiment's prompt in the same write.
        dry_run: Validate and render, but write nothing.

    Returns:
        A :class:`RecordResult`.

    Raises:
        LedgerError: an argument is malformed, the ledger cannot be read, or the ledger with the
            new transition breaks a rule; the message names the file, the entry
            (``transitions[N]``) and what to do, and the file is unchanged.
    """
    path = Path(ledger)
    fields = {
        "prompt": prompt,
        "revision": revision,
        "experiment": experiment,
        "allocation": allocation,
        "to": to,
        "arm": arm,
        "reason": reason,
        "actor": actor,
    }
    when = None if at is None else _aware(path, action, at)
    # checked before the lock, so a malformed request creates no lock file either
    build_entry(path, action, datetime.now(UTC) if when is None else when, **fields)
    declaring = {"text_file": text_file, "text": text, "contract": contract, "parent": parent}
    wanted = _declaration_fields(path, action, prompt, revision, declaring)
    design = {"arms": arms, "control": control, "unit": unit}
    wanted_exp = _experiment_fields(path, action, experiment, design)
    arm_revisions = _arm_revision_fields(path, action, arms, declare_revisions)
    require_ledger(path)
    with ledger_lock(path) as real:
        # `now` is read under the lock: a concurrent recorder that took the lock first wrote an
        # earlier or equal time, so time order holds for both
        entry = build_entry(path, action, _now() if when is None else when, **fields)
        new = _Declared()
        if wanted is not None and prompt is not None and revision is not None:  # deploy
            _deployed_revision(load_current(path, real), path, prompt, revision, wanted, new)
        if wanted_exp is not None and experiment is not None:  # start
            current = load_current(path, real)
            _new_experiment(current, path, experiment, prompt, wanted_exp, arm_revisions, new)
        if not new.names:
            result = append_transition(path, entry, dry_run=dry_run, locked=True, resolved=real)
        else:
            result = declare_and_append(
                path,
                entry,
                revisions=new.revisions,
                experiments=new.experiments,
                prompts=new.prompts,
                dry_run=dry_run,
                locked=True,
                resolved=real,
            )
    return RecordResult(
        path=path,
        entry=result.transition,
        transition=result.ledger.transitions[-1],
        written=result.written,
        ledger=result.ledger,
        diff=unified_diff(path, result.before, result.after),
        declared=tuple(new.names),
    )


@dataclass
class _Declared:
    """What one record declares in the header (filled while the request is checked)."""

    revisions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def revision(self, prompt: str, revision: str, fields: Mapping[str, Any], *, new: bool) -> None:
        if new and prompt not in self.prompts:
            self.prompts.append(prompt)
            self.names.append(f"prompts.{prompt}")
        self.revisions.setdefault(prompt, {})[revision] = dict(fields)
        self.names.append(f"prompts.{prompt}.revisions.{revision}")


def load_current(path: Path, real: Path) -> Ledger:
    """The ledger at ``real`` (the resolved ``path``), validated; messages name ``path``."""
    text = _yaml.read_text(real, what="ledger", error=LedgerError)
    is_json = real.suffix.lower() == ".json"
    data = _yaml.parse(text, where=str(path), is_json=is_json, error=LedgerError)
    return parse_ledger(data, path=path)


def require_ledger(path: Path) -> None:
    """Refuse a ledger path that is not an existing file, naming ``ledger init``.

    A record never creates the ledger: a mistyped path must not start a second one.
    """
    if path.is_file():
        return
    if path.is_dir():
        raise LedgerError(
            f"{path}: cannot record in the ledger: it is a directory; pass the ledger file "
            "(nothing was written)"
        )
    raise LedgerError(
        f"{path}: cannot record in the ledger: file not found; check the path, or create the "
        f"ledger with `promptstate ledger init {path}` (nothing was written)"
    )


def unified_diff(path: Path, before: str, after: str) -> str:
    """A unified diff of a ledger's text, named by the path as given."""
    import difflib

    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path} (after)",
        )
    )


def _declaration_fields(
    path: Path,
    action: str,
    prompt: str | None,
    revision: str | None,
    declaring: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The fields of a revision declaration asked for (``None``: none); checked, text hashed."""
    given = {k: v for k, v in declaring.items() if v is not None}
    if not given:
        return None
    where = f"{path}: new {action} transition"
    options = ", ".join(f"`{k}`" for k in given)
    if action != "deploy":
        raise LedgerError(
            f"{where}: {options} declare(s) a revision and apply to deploy only; remove it "
            "(nothing was written)"
        )
    if prompt is None or revision is None:
        raise LedgerError(f"{where}: deploy needs `prompt` and `revision`; nothing was written")
    return revision_fields(path, where, given)


def revision_fields(path: Path, where: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """A revision's declared fields from ``text``/``text_file``/``contract``/``parent``
    (``None`` values left out): checked, the text hashed, ``text_file`` made relative to the
    real ledger's folder. ``where`` starts every message."""
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - {"text", "text_file", "contract", "parent"})
    if unknown:
        raise LedgerError(
            f"{where}: unknown revision field(s) {', '.join(unknown)}; a revision is declared "
            "with text or text_file, contract and parent (nothing was written)"
        )
    out: dict[str, Any] = {}
    if "parent" in given:
        if not valid_id(given["parent"]):
            raise LedgerError(
                f"{where}: `parent` {given['parent']!r} is not a valid id: {ID_RULE}; nothing "
                "was written"
            )
        out["parent"] = given["parent"]
    if "contract" in given:
        if not isinstance(given["contract"], str) or not given["contract"]:
            raise LedgerError(f"{where}: `contract` must be non-empty text; nothing was written")
        out["contract"] = given["contract"]
    if "text" in given and "text_file" in given:
        raise LedgerError(
            f"{where}: `text` and `text_file` are both given; give the revision's text inline or "
            "in a file, not both (nothing was written)"
        )
    if "text" in given:
        if not isinstance(given["text"], str) or not given["text"]:
            raise LedgerError(
                f"{where}: `text` must be non-empty text (the prompt text); nothing was written"
            )
        try:
            data = given["text"].encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LedgerError(
                f"{where}: `text` is not UTF-8 text ({exc.reason} at character {exc.start}); "
                "nothing was written"
            ) from None
        out["text_sha256"] = hashlib.sha256(data).hexdigest()
        out["text"] = given["text"]  # last: a long text, as a block, after the short fields
    if "text_file" in given:
        text = Path(given["text_file"])
        data = _yaml.read_bytes(text, what="prompt text", error=LedgerError)
        # relative to the real ledger (read through a link, the ledger is at its target)
        relative = os.path.relpath(text.absolute(), Path(os.path.realpath(path)).parent)
        out["text_file"] = Path(relative).as_posix()
        out["text_sha256"] = hashlib.sha256(data).hexdigest()
    return out


def _deployed_revision(
    ledger: Ledger,
    path: Path,
    prompt: str,
    revision: str,
    wanted: Mapping[str, Any],
    new: _Declared,
) -> None:
    """Declare the deployed revision (and its prompt, when new too) when the ledger lacks it;
    else check ``wanted`` against its declaration (the caller holds the lock)."""
    if revision not in ledger.revisions:
        new.revision(prompt, revision, wanted, new=prompt not in ledger.prompts)
        return
    check_declared_revision(ledger, path, revision, wanted)


def check_declared_revision(
    ledger: Ledger, path: Path, revision: str, wanted: Mapping[str, Any]
) -> None:
    """Refuse ``wanted`` fields that differ from the declared revision's (a changed text or
    contract is a new revision)."""
    declared = ledger.revisions[revision]
    have = {
        "parent": declared.parent,
        "contract": declared.contract,
        "text_sha256": declared.text_sha256,
    }
    for key in ("parent", "contract", "text_sha256"):
        if key in wanted and wanted[key] != have[key]:
            what = "text" if key == "text_sha256" else key
            raise LedgerError(
                f"{path}: prompts.{declared.prompt}.revisions.{revision}: already declared with "
                f"{key} {have[key]!r}, not {wanted[key]!r}; a changed {what} is a new revision — "
                "deploy it under a new revision id (nothing was written)"
            )


def build_entry(
    path: str | Path,
    action: str,
    at: datetime,
    **fields: Any,
) -> dict[str, Any]:
    """The ledger entry of one transition, keys in :data:`ENTRY_KEYS` order, ``None`` left out.

    Checks what can be checked without the ledger (the action, the ids, the time zone, the
    allocation's shares); the ledger's rules are checked by the writer.

    Raises:
        LedgerError: naming the file, the new entry and the argument to fix.
    """
    where = f"{path}: new {action} transition"
    if action not in ACTIONS:
        raise LedgerError(
            f"{path}: action {action!r} is not one of {', '.join(ACTIONS)}; nothing was written"
        )
    unknown = sorted(set(fields) - set(ENTRY_KEYS))
    if unknown:
        raise TypeError(f"unknown transition field(s): {', '.join(unknown)}")
    entry: dict[str, Any] = {"at": _iso(_aware(path, action, at)), "action": action}
    for key in ENTRY_KEYS[2:]:
        value = fields.get(key)
        if value is None:
            continue
        if key == "allocation":
            entry[key] = _allocation(where, value)
        elif key in ("reason", "actor"):
            if not isinstance(value, str):
                raise LedgerError(f"{where}: `{key}` must be text; nothing was written")
            entry[key] = value
        else:
            if not valid_id(value):
                raise LedgerError(
                    f"{where}: `{key}` {value!r} is not a valid id: {ID_RULE}; nothing was written"
                )
            entry[key] = value
    return entry


def _experiment_fields(
    path: Path, action: str, experiment: str | None, design: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The fields of an experiment declaration asked for (``None``: none); checked."""
    given = {k: v for k, v in design.items() if v is not None}
    if not given:
        return None
    where = f"{path}: new {action} transition"
    if action != "start":
        options = ", ".join(f"`{k}`" for k in given)
        raise LedgerError(
            f"{where}: {options} declare(s) an experiment and apply to start only; remove it "
            "(nothing was written)"
        )
    if experiment is None:
        raise LedgerError(f"{where}: start needs `experiment`; nothing was written")
    out: dict[str, Any] = {}
    arms = given.get("arms")
    if arms is not None:
        if not isinstance(arms, Mapping) or len(arms) < 2:
            raise LedgerError(
                f"{where}: `arms` must map at least two arms to revisions, e.g. control=r41 "
                "treatment=r42; nothing was written"
            )
        for arm, rev in arms.items():
            for kind, name in (("arm", arm), ("revision", rev)):
                if not valid_id(name):
                    raise LedgerError(
                        f"{where}: {kind} {name!r} in `arms` is not a valid id: {ID_RULE}; "
                        "nothing was written"
                    )
        out["arms"] = {str(a): str(r) for a, r in arms.items()}
    if "control" in given:
        if not valid_id(given["control"]):
            raise LedgerError(
                f"{where}: `control` {given['control']!r} is not a valid id: {ID_RULE}; nothing "
                "was written"
            )
        out["control"] = given["control"]
    if "unit" in given:
        if not isinstance(given["unit"], str) or not given["unit"].strip():
            raise LedgerError(f"{where}: `unit` must be a column name; nothing was written")
        out["unit"] = given["unit"]
    return out


def _arm_revision_fields(
    path: Path,
    action: str,
    arms: Mapping[str, str] | None,
    declare: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]]:
    """Checked fields of the arm revisions to declare with a ``start`` (revision -> fields)."""
    if not declare:
        return {}
    where = f"{path}: new {action} transition"
    if action != "start" or arms is None:
        raise LedgerError(
            f"{where}: revision declarations (--revision-text, --revision-text-file, "
            "--revision-contract, --revision-parent) apply to a start that declares its "
            "experiment with --arms; remove them (nothing was written)"
        )
    out: dict[str, dict[str, Any]] = {}
    for revision, fields in declare.items():
        if revision not in arms.values():
            raise LedgerError(
                f"{where}: revision {revision!r} is declared but no arm serves it (arms: "
                f"{', '.join(f'{a}={r}' for a, r in arms.items())}); name it in --arms or drop "
                "its declaration (nothing was written)"
            )
        out[revision] = revision_fields(path, f"{where}: revision {revision!r}", fields)
    return out


def _new_experiment(
    ledger: Ledger,
    path: Path,
    experiment: str,
    prompt: str | None,
    wanted: Mapping[str, Any],
    arm_revisions: Mapping[str, Mapping[str, Any]],
    new: _Declared,
) -> None:
    """Declare the experiment when the ledger lacks it (with the arm revisions it lacks and
    ``arm_revisions`` describes); else check ``wanted`` against its declaration (the caller
    holds the lock)."""
    declared = ledger.experiments.get(experiment)
    if declared is not None:
        have = {"arms": dict(declared.arms), "control": declared.control, "unit": declared.unit}
        for key in ("arms", "control", "unit"):
            if key in wanted and wanted[key] != have[key]:
                raise LedgerError(
                    f"{path}: experiments.{experiment}: already declared with {key} "
                    f"{have[key]!r}, not {wanted[key]!r}; a different design is a new "
                    "experiment — start it under a new experiment id (nothing was written)"
                )
        for revision, described in arm_revisions.items():
            check_declared_revision(ledger, path, revision, described)
        return
    arms: Mapping[str, str] | None = wanted.get("arms")
    if arms is None:
        raise LedgerError(
            f"{path}: new start transition: experiment {experiment!r} is not declared; give its "
            "`arms` (ARM=REVISION ...) to declare it, or declare it under experiments (nothing "
            "was written)"
        )
    where = f"{path}: new start transition: experiments.{experiment}"
    known = [ledger.revisions[r] for r in arms.values() if r in ledger.revisions]
    if prompt is None:
        if not known:
            raise LedgerError(
                f"{where}: none of the arms' revisions is declared, so the experiment's prompt "
                "is unknown; name it with --prompt (nothing was written)"
            )
        prompt = known[0].prompt
    for arm, revision in arms.items():
        if revision in ledger.revisions:
            if revision in arm_revisions:
                check_declared_revision(ledger, path, revision, arm_revisions[revision])
            continue
        if revision not in arm_revisions:
            raise LedgerError(
                f"{where}.arms.{arm}: revision {revision!r} is not declared; declare it in this "
                f"command with --revision-text-file {revision}=FILE (or --revision-text "
                f"{revision}=TEXT; --revision-contract {revision}=VERSION optional), or first "
                f"with `promptstate ledger record revision --prompt {prompt} --revision "
                f"{revision} --text-file FILE` (nothing was written)"
            )
        if revision not in new.revisions.get(prompt, {}):
            fresh = prompt not in ledger.prompts
            new.revision(prompt, revision, arm_revisions[revision], new=fresh)
    fields: dict[str, Any] = {"prompt": prompt}
    fields.update((k, wanted[k]) for k in ("unit", "arms", "control") if k in wanted)
    new.experiments[experiment] = fields
    new.names.append(f"experiments.{experiment}")


def _allocation(where: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping) or not value:
        raise LedgerError(
            f"{where}: `allocation` must map arms to shares, e.g. control=0.9 treatment=0.1; "
            "nothing was written"
        )
    out: dict[str, float] = {}
    for arm, share in value.items():
        if not valid_id(arm):
            raise LedgerError(
                f"{where}: allocation arm {arm!r} is not a valid id: {ID_RULE}; nothing was written"
            )
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise LedgerError(
                f"{where}: allocation share of {arm!r} must be a number in [0, 1], not "
                f"{share!r}; nothing was written"
            )
        number = float(share)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise LedgerError(
                f"{where}: allocation share of {arm!r} is {share!r}; shares lie in [0, 1] and "
                "sum to 1 — fix the share; nothing was written"
            )
        out[str(arm)] = number
    return out


def _aware(path: str | Path, action: str, at: datetime | str) -> datetime:
    if isinstance(at, str):
        try:
            parsed = datetime.fromisoformat(at)
        except ValueError:
            raise LedgerError(
                f"{path}: new {action} transition: time {at!r} is not ISO 8601, e.g. "
                "2026-11-03T08:15:00Z; nothing was written"
            ) from None
        at = parsed
    if not isinstance(at, datetime):
        raise LedgerError(
            f"{path}: new {action} transition: `at` must be a time, not {type(at).__name__}"
        )
    if at.tzinfo is None or at.utcoffset() is None:
        raise LedgerError(
            f"{path}: new {action} transition: time {at.isoformat()} has no timezone; write it "
            "in UTC with a trailing Z, e.g. 2026-11-03T08:15:00Z; nothing was written"
        )
    return at.astimezone(UTC)


def _now() -> datetime:
    """Now in UTC, rounded up to the whole second (never before the true now)."""
    now = datetime.now(UTC)
    if now.microsecond:
        now = now.replace(microsecond=0) + timedelta(seconds=1)
    return now


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
