"""Reading a ledger file: text parsing, schema validation and building the typed ledger.

:func:`load_ledger` reads YAML or JSON through the one loader (:mod:`analysis._yaml`: bounded
read, UTF-8, duplicate keys refused, one-line syntax errors), :func:`parse_ledger` validates the
parsed mapping against the raw schema (:mod:`analysis.ledger._schema`), and :class:`_Builder`
applies the cross-entry rules (see :mod:`analysis.ledger.model` and ``docs/ledger.md``) while it
builds the frozen :class:`~analysis.ledger.model.Ledger`, in one pass over the transitions.
Every error names the file, the entry and the fix.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from analysis import _yaml
from analysis.errors import LedgerError
from analysis.ledger._schema import _kind, _LedgerIn, _RevisionIn, _TransitionIn
from analysis.ledger.model import (
    ID_RULE,
    Consumer,
    Experiment,
    Ledger,
    Prompt,
    Revision,
    Transition,
    valid_id,
)

__all__ = ["load_ledger", "parse_ledger"]

_ALLOCATION_TOLERANCE = 1e-6


def load_ledger(path: str | Path) -> Ledger:
    """Read and validate a ledger file (YAML, or JSON with the same schema).

    Raises:
        LedgerError: naming the file, the entry (e.g. ``transitions[3]``) and the fix; also for
            a file that is missing, a directory, larger than :data:`analysis._yaml.MAX_BYTES`,
            not UTF-8, not valid YAML/JSON or repeating a mapping key (with its line).
    """
    path = Path(path)
    data = _yaml.load(path, what="ledger", error=LedgerError)
    return parse_ledger(data, path=path)


def parse_ledger(data: Any, *, path: Path | None = None) -> Ledger:
    """Validate an already-parsed ledger mapping (see :func:`load_ledger`)."""
    where = str(path) if path is not None else "ledger"
    if data is None:  # an empty YAML file
        raise LedgerError(
            f"{where}: the ledger is empty; delete it and create it with `promptstate ledger "
            "init`, which writes a valid empty ledger"
        )
    if not isinstance(data, dict):
        raise LedgerError(f"{where}: the ledger must be a mapping with version, prompts, ...")
    try:
        raw = _LedgerIn.model_validate(data)
    except ValidationError as exc:
        raise LedgerError(_format_validation(where, exc)) from None
    return _Builder(raw, where, path).build()


def _format_validation(where: str, exc: ValidationError) -> str:
    errors = exc.errors()
    messages = [f"{_loc(err['loc'])}: {_message(err)}" for err in errors[:5]]
    more = len(errors) - 5
    tail = f" (and {more} more)" if more > 0 else ""
    return f"{where}: " + "; ".join(messages) + tail


#: What an entry that is too short must hold, by the last key of its location.
_TOO_SHORT = {
    "revisions": "a prompt holds at least one revision; declare one (`promptstate ledger record "
    "revision --prompt P --revision R --text-file FILE`) or remove the prompt",
    "arms": "an experiment has at least two arms (arm: revision), e.g. {control: r41, "
    "treatment: r42}; add the missing arm",
    "accepts": "a consumer accepts at least one contract version, e.g. accepts: [v3]",
}


def _message(err: Any) -> str:
    """One refusal in the ledger's words: what is wrong with the value and what to do (never
    pydantic's own phrasing)."""
    kind, value, loc = err["type"], err.get("input"), err["loc"]
    got = f"{_kind(value)} {_short(value)}"
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing; add it"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "string_type":
        hint = ""
        if isinstance(value, bool | int | float):
            hint = "; quote it if you mean the text"
        return f"expected text, not {got}{hint}"
    if kind in ("float_type", "float_parsing", "int_type"):
        hint = "; write the number without quotes" if isinstance(value, str) else ""
        if isinstance(value, bool):
            hint = "; a share is a number in [0, 1], e.g. 0.9"
        return f"expected a number, not {got}{hint}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (key: value, ...), not {got}"
    if kind == "list_type":
        example = ", e.g. [v3, v4]" if loc and loc[-1] == "accepts" else ""
        return f"expected a list{example}, not {got}"
    if kind == "literal_error" and loc and loc[-1] == "action":
        return (
            f"{_short(value)} is not an action; use one of deploy, start, ramp, rollback, "
            "promote or stop"
        )
    if kind == "literal_error" and loc == ("version",):
        return f"expected 1 (the only schema version), not {got}"
    if kind == "literal_error":
        return f"expected {err.get('ctx', {}).get('expected', 'another value')}, not {got}"
    if kind == "too_short":
        return _TOO_SHORT.get(str(loc[-1]) if loc else "", "must not be empty")
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "text_sha256":
        return (
            f"expected 64 lowercase hex digits (the SHA-256 of the text), not {got}; or remove "
            "it (a `text` or `text_file` is hashed for you)"
        )
    return f"{err['msg']} (got {got})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _real(path: Path) -> Path:
    """The file a path names, symbolic links resolved (as the writer resolves them)."""
    import os

    return Path(os.path.realpath(path))


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

    def check_id(self, entry: str, kind: str, name: str) -> None:
        """Refuse an id that does not follow :data:`~analysis.ledger.model.ID_RULE`."""
        if not valid_id(name):
            raise self.fail(entry, f"{kind} id {name!r} is not allowed: {ID_RULE}; rename it")

    def build(self) -> Ledger:
        revisions: dict[str, Revision] = {}
        prompts: dict[str, Prompt] = {}
        for pname, p in self.raw.prompts.items():
            self.check_id("prompts", "prompt", pname)
            revs: dict[str, Revision] = {}
            for rid, r in p.revisions.items():
                self.check_id(f"prompts.{pname}.revisions", "revision", rid)
                entry = f"prompts.{pname}.revisions.{rid}"
                if rid in revisions:
                    raise self.fail(
                        entry,
                        f"revision id {rid!r} is also used by prompt {revisions[rid].prompt!r}; "
                        "revision ids must be unique across the ledger",
                    )
                sha = self._text_hash(entry, r)
                prefix = r.cache_prefix or (f"prefix-{sha[:12]}" if sha else f"prefix-{rid}")
                revs[rid] = Revision(
                    rid,
                    pname,
                    r.parent,
                    r.contract,
                    sha,
                    r.text_file,
                    prefix,
                    r.text,
                    cache_prefix_declared=r.cache_prefix is not None,
                )
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
            self.check_id("experiments", "experiment", eid)
            entry = f"experiments.{eid}"
            for arm in e.arms:
                self.check_id(f"{entry}.arms", "arm", arm)
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
            self.check_id("consumers", "consumer", cname)
            if c.prompt not in prompts:
                raise self.fail(f"consumers.{cname}", f"prompt {c.prompt!r} is not defined")
            consumers[cname] = Consumer(cname, c.prompt, tuple(c.accepts))

        transitions = self._transitions(prompts, experiments)
        return Ledger(prompts, revisions, experiments, consumers, transitions, self.path)

    def _text_hash(self, entry: str, r: _RevisionIn) -> str | None:
        """SHA-256 of the revision's text: of the UTF-8 bytes of ``text``, or of the bytes of
        ``text_file`` (so the same text hashes the same inline or in a file); else the given
        ``text_sha256``. A given ``text_sha256`` must match the text."""
        if r.text is not None:
            if r.text_file is not None:
                raise self.fail(
                    entry,
                    "both `text` and `text_file` are given; a revision's text is written inline "
                    "or in a file — keep one of them",
                )
            digest = hashlib.sha256(r.text.encode("utf-8")).hexdigest()
            if r.text_sha256 is not None and r.text_sha256 != digest:
                raise self.fail(
                    f"{entry}.text_sha256",
                    f"does not match the hash of the inline text ({digest}); the text changed "
                    "— record it as a new revision",
                )
            return digest
        if r.text_file is None:
            return r.text_sha256
        # relative to the real ledger file: the same text whether the ledger is read through a
        # symbolic link or at its target
        base = _real(self.path).parent if self.path is not None else Path.cwd()
        text_path = base / r.text_file
        try:
            data = _yaml.read_bytes(text_path, what="prompt text", error=LedgerError)
        except LedgerError as exc:
            raise self.fail(
                f"{entry}.text_file", f"{exc} (the path is relative to the ledger file)"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
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
        declaring = (
            "or let `promptstate ledger record deploy` declare it: give it the revision's text "
            "with --text-file FILE or --text TEXT"
        )
        if t.prompt not in prompts:
            raise self.fail(
                entry,
                f"prompt {t.prompt!r} is not defined under prompts; declare it with its first "
                f"revision, {declaring}",
            )
        if t.revision not in prompts[t.prompt].revisions:
            raise self.fail(
                entry,
                f"revision {t.revision!r} is not a revision of prompt {t.prompt!r}; declare it "
                f"under prompts.{t.prompt}.revisions first, {declaring}",
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
                raise self.fail(
                    entry,
                    f"experiment {t.experiment!r} has already started; ramp it, or declare and "
                    "start a new experiment",
                )
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
