"""Values of the baseline store: suite config, versions, journal entries, sync results.

Frozen dataclasses with ``to_dict``/``from_dict`` for their JSON/YAML files; the operations live
in :mod:`analysis.evals.store`, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analysis.errors import SCHEMA_VERSION, BaselineError, worst_exit
from analysis.evals._files import iso, parse_iso

__all__ = [
    "BaselineVersion",
    "Finding",
    "JournalEntry",
    "MetricSpec",
    "Policy",
    "Reference",
    "SuiteCheck",
    "SuiteConfig",
    "SyncItem",
    "SyncReport",
    "VerifyReport",
]

Policy = Literal["pin", "reanchor"]
#: Journal actions.
ACTIONS = ("init", "anchor", "reanchor", "pin", "unpin", "revert")


def _str(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default) if default is not None else data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, not {value!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} must be a string or null, not {value!r}")
    return value


def _int(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default) if default is not None else data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer, not {value!r}")
    return value


# ----------------------------------------------------------------------------- config


RESERVED_COLUMNS = ("example_id", "sample", "grader")

#: What each key of a suite config must be (the start of its error message).
_HINTS = {
    "prompt": "'prompt' is required and must be a non-empty string (the ledger's prompt name)",
    "grader": "'grader' is required and must be a non-empty string (the grader id)",
    "on_revert": "on_revert must be 'pin' or 'reanchor'",
    "metrics": "'metrics' must map metric names to their settings {kind, direction, margin}",
    "kind": "kind must be binary or continuous",
    "direction": "direction must be higher or lower",
    "margin": "margin must be a finite number > 0 (the largest acceptable degradation, in the "
    "metric's units)",
    "primary": "primary must be the name of one of the metrics",
    "ledger": "ledger must be a non-empty string: the rollout ledger's path, relative to the "
    "store's directory",
}


class _MetricModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["binary", "continuous"] = "continuous"
    direction: Literal["higher", "lower"] = "higher"
    margin: float = Field(gt=0, allow_inf_nan=False)


class _SuiteModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prompt: str = Field(min_length=1)
    grader: str = Field(min_length=1)
    on_revert: Literal["pin", "reanchor"] = "pin"
    metrics: dict[str, _MetricModel] = Field(min_length=1)
    primary: str | None = None
    ledger: str | None = Field(default=None, min_length=1)


def _config_message(exc: ValidationError) -> str:
    """The first validation error of a suite config as ``entry: what it must be, not VALUE``."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    entry = ".".join(loc)
    given = err.get("input")
    if err["type"] == "extra_forbidden":
        where = ".".join(loc[:-1])
        allowed = "kind, direction, margin" if where else ", ".join(_SuiteModel.model_fields)
        return f"{entry}: unknown key (allowed{' in ' + where if where else ''}: {allowed})"
    if loc and loc[-1] == "[key]":
        return f"{'.'.join(loc[:-2])}: metric name {loc[-2]} must be text"
    if len(loc) == 2 and loc[0] == "metrics":
        return f"{entry}: expected {{kind, direction, margin}}, not {given!r}"
    hint = _HINTS.get(loc[-1] if loc else "", err["msg"])
    if err["type"] == "missing":
        return f"{entry}: {hint}"
    return f"{entry}: {hint}, not {given!r}"


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a suite.

    Attributes:
        name: Column name in the eval results.
        kind: ``binary`` (0/1 scores; exact McNemar reported) or ``continuous``.
        direction: ``higher`` or ``lower`` is better.
        margin: Non-inferiority margin, absolute, in the metric's units (> 0).
    """

    name: str
    kind: Literal["binary", "continuous"]
    direction: Literal["higher", "lower"]
    margin: float

    @property
    def sign(self) -> int:
        """+1 when higher is better, −1 when lower is better (orients differences)."""
        return 1 if self.direction == "higher" else -1


@dataclass(frozen=True)
class SuiteConfig:
    """A suite's configuration (``suite.yaml``).

    Attributes:
        prompt: The prompt (ledger name) the suite evaluates.
        grader: Grader id; results graded by another grader are not comparable.
        on_revert: ``pin`` or ``reanchor`` — what ``sync`` does when the ledger reverts the
            reference's revision.
        metrics: The metrics, in order.
        primary: The metric ``--anchor-on-pass`` looks at (default: the first).
        ledger: The rollout ledger the gate checks the reference's staleness against, as
            written in ``suite.yaml`` (a relative path is relative to the store's directory;
            ``None`` when the suite records none — the gate then needs ``--ledger`` or
            ``--no-stale-check``).
    """

    prompt: str
    grader: str
    on_revert: Policy
    metrics: tuple[MetricSpec, ...]
    primary: str
    ledger: str | None = None

    def _repr_html_(self) -> str:
        from analysis._render import to_html

        rows = [
            {"metric": m.name, "kind": m.kind, "direction": m.direction, "margin": m.margin,
             "primary": m.name == self.primary}
            for m in self.metrics
        ]  # fmt: skip
        title = f"suite of {self.prompt} (grader {self.grader}, on revert: {self.on_revert}"
        title += f", ledger {self.ledger})" if self.ledger is not None else ")"
        return to_html(rows, list(rows[0]) if rows else ["metric"], title=title)

    @classmethod
    def from_mapping(cls, data: Any, *, where: str = "suite config") -> SuiteConfig:
        """Validate a parsed ``suite.yaml``; errors name the file, the entry and the fix.

        Raises:
            BaselineError: The config is not valid (bad input, exit code 2): a missing or empty
                ``prompt``/``grader``, an unknown key, a ``kind``/``direction``/``on_revert``
                outside its choices, a ``margin`` that is not a finite number > 0 (NaN, inf,
                negative, text, a boolean), an unknown ``primary``.
        """
        from pydantic import ValidationError

        if not isinstance(data, Mapping):
            raise BaselineError(
                f"{where}: expected a mapping with prompt, grader, metrics (got "
                f"{type(data).__name__})"
            )
        try:
            model = _SuiteModel.model_validate(dict(data))
        except ValidationError as exc:
            raise BaselineError(f"{where}: {_config_message(exc)}") from None
        metrics: list[MetricSpec] = []
        for name, spec in model.metrics.items():
            if not name or name in RESERVED_COLUMNS:
                raise BaselineError(
                    f"{where}: metrics.{name}: invalid metric name (it is a results column name "
                    f"or empty: {', '.join(RESERVED_COLUMNS)} are reserved)"
                )
            metrics.append(MetricSpec(name, spec.kind, spec.direction, float(spec.margin)))
        primary = model.primary if model.primary is not None else metrics[0].name
        if primary not in {m.name for m in metrics}:
            raise BaselineError(
                f"{where}: primary {primary!r} is not one of the metrics "
                f"({', '.join(m.name for m in metrics)})"
            )
        return cls(
            model.prompt, model.grader, model.on_revert, tuple(metrics), primary, model.ledger
        )

    @classmethod
    def load(cls, path: str | Path) -> SuiteConfig:
        """Read and validate a suite YAML file (errors are :class:`BaselineError`, exit 2).

        Read through :func:`analysis._yaml.load`: bounded, UTF-8 only, duplicate keys refused.
        """
        from analysis import _yaml

        p = Path(path)
        data = _yaml.load(p, what="suite config", error=BaselineError)
        return cls.from_mapping(data, where=str(p))

    def to_mapping(self) -> dict[str, Any]:
        """The config in its file schema."""
        out: dict[str, Any] = {
            "prompt": self.prompt,
            "grader": self.grader,
            "on_revert": self.on_revert,
            "metrics": {
                m.name: {"kind": m.kind, "direction": m.direction, "margin": m.margin}
                for m in self.metrics
            },
        }
        if self.primary != self.metrics[0].name:
            out["primary"] = self.primary
        if self.ledger is not None:
            out["ledger"] = self.ledger
        return out

    def metric(self, name: str) -> MetricSpec:
        """The spec of one metric."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Reference:
    """The pointer a gate grades against.

    Attributes:
        version: Version id, or ``None`` before the first anchor.
        revision: Revision the version is anchored to.
        pinned: Whether anchoring new versions leaves it in place.
    """

    version: str | None
    revision: str | None
    pinned: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"version": self.version, "revision": self.revision, "pinned": self.pinned}

    def _repr_html_(self) -> str:
        from analysis._render import to_html

        return to_html([self.to_dict()], ["version", "revision", "pinned"], title="reference")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Reference:
        """Parse the JSON form."""
        if not data:
            return cls(None, None, False)
        return cls(data.get("version"), data.get("revision"), bool(data.get("pinned", False)))


@dataclass(frozen=True)
class BaselineVersion:
    """One immutable baseline version (``versions/<id>/meta.json``).

    Attributes:
        id: Version id (``v0001``, ...).
        seq: Its number.
        suite: Suite name.
        revision: Revision the scores were produced by.
        eval_set_sha256: Hash of the distinct example ids.
        grader: Grader id of the scores.
        parent: The reference version when it was created (``None`` for the first).
        created_at: Creation time (UTC).
        actor: Who anchored it.
        reason: Why.
        scores_sha256: SHA-256 of ``scores.parquet``.
        n_examples: Distinct examples.
        n_rows: Scored samples.
        max_samples: Largest number of samples of one example.
        summary: Metric → mean over examples.
        source: The results file it was anchored from.
        eval_set_hash_scheme: How ``eval_set_sha256`` was computed
            (:func:`~analysis.evals.results.eval_set_hash`; 1 when ``meta.json`` does not say).
    """

    id: str
    seq: int
    suite: str
    revision: str
    eval_set_sha256: str
    grader: str
    parent: str | None
    created_at: datetime
    actor: str
    reason: str
    scores_sha256: str
    n_examples: int
    n_rows: int
    max_samples: int
    summary: Mapping[str, float]
    source: str = ""
    eval_set_hash_scheme: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the content of ``meta.json``)."""
        return {
            "version": self.id,
            "seq": self.seq,
            "suite": self.suite,
            "revision": self.revision,
            "eval_set_sha256": self.eval_set_sha256,
            "eval_set_hash_scheme": self.eval_set_hash_scheme,
            "grader": self.grader,
            "parent": self.parent,
            "created_at": iso(self.created_at),
            "actor": self.actor,
            "reason": self.reason,
            "scores_file": "scores.parquet",
            "scores_sha256": self.scores_sha256,
            "n_examples": self.n_examples,
            "n_rows": self.n_rows,
            "max_samples": self.max_samples,
            "summary": dict(self.summary),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineVersion:
        """Parse ``meta.json`` (``ValueError``/``KeyError``/``TypeError`` when malformed)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a JSON object, not {type(data).__name__}")
        scheme = _int(data, "eval_set_hash_scheme", 1)
        if scheme not in (1, 2):
            raise ValueError(f"unknown eval_set_hash_scheme {scheme}")
        summary = data.get("summary", {})
        if not isinstance(summary, Mapping):
            raise TypeError("summary must be an object")
        return cls(
            id=_str(data, "version"),
            seq=_int(data, "seq"),
            suite=_str(data, "suite"),
            revision=_str(data, "revision"),
            eval_set_sha256=_str(data, "eval_set_sha256"),
            grader=_str(data, "grader"),
            parent=_opt_str(data, "parent"),
            created_at=parse_iso(data["created_at"]),
            actor=_str(data, "actor", ""),
            reason=_str(data, "reason", ""),
            scores_sha256=_str(data, "scores_sha256"),
            n_examples=_int(data, "n_examples"),
            n_rows=_int(data, "n_rows"),
            max_samples=_int(data, "max_samples", 1),
            summary={str(k): float(v) for k, v in summary.items()},
            source=_str(data, "source", ""),
            eval_set_hash_scheme=scheme,
        )


@dataclass(frozen=True)
class JournalEntry:
    """One line of ``journal.jsonl``.

    Attributes:
        seq: 1-based position in the journal.
        at: When (UTC).
        actor: Who (``--actor``, ``$PROMPTSTATE_ACTOR`` or ``$USER``).
        action: ``init``, ``anchor``, ``reanchor``, ``pin``, ``unpin`` or ``revert``.
        reason: Free text.
        reference: The reference after the action.
        version: The version created or targeted (if any).
        revision: Its revision.
        created: Whether the action created ``version``.
        scores_sha256: Hash of the created version's scores.
        ledger_key: ``"<transition index>:<reverted>"`` for reverts that follow the ledger.
        reverted: Reverted revision (``revert``).
        restored: Restored revision (``revert``).
        policy: ``pin`` or ``reanchor`` (``revert``).
        meta: For an entry that creates a version: the ``meta.json`` fields that matter
            (grader, eval-set hash and scheme, parent, counts, metric means) and the SHA-256 of
            the whole metadata (``sha256``), so that ``baseline verify`` notices any edit
            (``None`` in entries written before this was recorded).
    """

    seq: int
    at: datetime
    actor: str
    action: str
    reason: str
    reference: Reference
    version: str | None = None
    revision: str | None = None
    created: bool = False
    scores_sha256: str | None = None
    ledger_key: str | None = None
    reverted: str | None = None
    restored: str | None = None
    policy: str | None = None
    meta: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``None`` fields left out)."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "reason": self.reason,
            "reference": self.reference.to_dict(),
        }
        for key in (
            "version",
            "revision",
            "scores_sha256",
            "ledger_key",
            "reverted",
            "restored",
            "policy",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.created:
            out["created"] = True
        if self.meta is not None:
            out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JournalEntry:
        """Parse one journal line (``ValueError``/``KeyError``/``TypeError`` when malformed)."""
        action = _str(data, "action")
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
        ref = data.get("reference")
        if ref is not None and not isinstance(ref, Mapping):
            raise TypeError("reference must be an object")
        created = data.get("created", False)
        if not isinstance(created, bool):
            raise TypeError("created must be true or false")
        meta = data.get("meta")
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError("meta must be an object")
        entry = cls(
            seq=_int(data, "seq"),
            at=parse_iso(data["at"]),
            actor=_str(data, "actor", ""),
            action=action,
            reason=_str(data, "reason", ""),
            reference=Reference(
                _opt_str(ref or {}, "version"),
                _opt_str(ref or {}, "revision"),
                bool((ref or {}).get("pinned", False)),
            ),
            version=_opt_str(data, "version"),
            revision=_opt_str(data, "revision"),
            created=created,
            scores_sha256=_opt_str(data, "scores_sha256"),
            ledger_key=_opt_str(data, "ledger_key"),
            reverted=_opt_str(data, "reverted"),
            restored=_opt_str(data, "restored"),
            policy=_opt_str(data, "policy"),
            meta=meta,
        )
        if created and (entry.version is None or entry.scores_sha256 is None):
            raise ValueError("an entry that creates a version must name it and its scores_sha256")
        return entry


@dataclass(frozen=True)
class SyncItem:
    """What ``sync`` did (or could not do) for one ledger revert of one suite.

    Attributes:
        suite: Suite name.
        ledger_key: ``"<transition index>:<reverted>"``.
        at: Time of the rollback.
        reverted: Reverted revision.
        restored: Restored revision.
        policy: The suite's ``on_revert``.
        status: ``applied`` (reference changed), ``noop`` (the reference was not the reverted
            revision's; recorded), ``already`` (applied before) or ``pending`` (needs fresh
            results; see ``command``).
        version: Reference version after the action.
        message: Human-readable explanation.
        command: The command to run when ``pending``.
    """

    suite: str
    ledger_key: str
    at: datetime
    reverted: str
    restored: str
    policy: str
    status: Literal["applied", "noop", "already", "pending"]
    version: str | None
    message: str
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "suite": self.suite,
            "ledger_key": self.ledger_key,
            "at": iso(self.at),
            "reverted": self.reverted,
            "restored": self.restored,
            "policy": self.policy,
            "status": self.status,
            "version": self.version,
            "message": self.message,
            "command": self.command,
        }


@dataclass(frozen=True)
class SyncReport:
    """Result of :meth:`BaselineStore.sync`.

    Attributes:
        items: One item per (suite, ledger revert).
    """

    items: tuple[SyncItem, ...] = field(default_factory=tuple)

    @property
    def pending(self) -> tuple[SyncItem, ...]:
        """Reverts that still need action (fresh results for a re-anchor)."""
        return tuple(i for i in self.items if i.status == "pending")

    @property
    def applied(self) -> tuple[SyncItem, ...]:
        """Reverts applied by this sync (reference changed or no-op recorded)."""
        return tuple(i for i in self.items if i.status in ("applied", "noop"))

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"schema_version": 1, "items": [...], "pending": N}``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "items": [i.to_dict() for i in self.items],
            "pending": len(self.pending),
        }

    def _repr_html_(self) -> str:
        from analysis._render import to_html

        columns = ["suite", "rollback", "reverted", "restored", "policy", "status", "reference"]
        return to_html(self.rows(), columns, title="baseline sync with the ledger")

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows for tables."""
        return [
            {
                "suite": i.suite,
                "rollback": iso(i.at),
                "reverted": i.reverted,
                "restored": i.restored,
                "policy": i.policy,
                "status": i.status,
                "reference": i.version,
            }
            for i in self.items
        ]


# ----------------------------------------------------------------------------- verify

#: Exit code of each kind of finding: an invalid stored baseline (3), an invalid suite config
#: (bad input, 2), a note about leftovers the next writer repairs (0).
FINDING_EXIT = {"invalid": 3, "config": 2, "note": 0}


@dataclass(frozen=True)
class Finding:
    """One thing ``baseline verify`` found.

    Attributes:
        suite: Suite name.
        kind: ``invalid`` (a stored baseline disagrees with itself: exit 3), ``config`` (the
            suite config is not valid: exit 2) or ``note`` (a leftover of a writer that died,
            repaired by the next writer, or a quarantined file to inspect: exit 0).
        path: The file or directory concerned.
        problem: What is wrong and what to do.
    """

    suite: str
    kind: Literal["invalid", "config", "note"]
    path: str
    problem: str

    @property
    def exit_code(self) -> int:
        """3, 2 or 0 (see ``kind``)."""
        return FINDING_EXIT[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"suite": self.suite, "kind": self.kind, "path": self.path, "problem": self.problem}


@dataclass(frozen=True)
class SuiteCheck:
    """What ``baseline verify`` checked in one suite.

    Attributes:
        suite: Suite name.
        entries: Committed journal entries read.
        versions: Versions the journal created (each cross-checked: metadata against the
            journal entry, scores against both hashes, eval-set hash against the scores).
    """

    suite: str
    entries: int
    versions: int


@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`BaselineStore.verify`.

    Attributes:
        checked: One item per suite verified.
        findings: Every finding, suite by suite.
    """

    checked: tuple[SuiteCheck, ...] = ()
    findings: tuple[Finding, ...] = ()

    def exit_code(self) -> int:
        """3 when a stored baseline is invalid, 2 when a suite config is (2 wins), else 0."""
        return worst_exit(0, *(f.exit_code for f in self.findings))

    def status(self, suite: str) -> str:
        """``ok``, or the worst finding's kind of ``suite``."""
        kinds = {f.kind for f in self.findings if f.suite == suite}
        for kind in ("config", "invalid"):
            if kind in kinds:
                return kind
        return "ok"

    def _repr_html_(self) -> str:
        from analysis._render import to_html

        return to_html(self.rows(), ["suite", "status", "path", "detail"], title="baseline verify")

    def rows(self) -> list[dict[str, Any]]:
        """One row per suite checked, then one per finding."""
        out: list[dict[str, Any]] = [
            {
                "suite": c.suite,
                "status": self.status(c.suite),
                "path": "",
                "detail": f"{c.entries} journal entries, {c.versions} versions checked",
            }
            for c in self.checked
        ]
        out.extend(
            {"suite": f.suite, "status": f.kind, "path": f.path, "detail": f.problem}
            for f in self.findings
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"schema_version": 1, "exit_code", "suites": [{suite, status, entries,
        versions}], "findings": [...]}``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "exit_code": self.exit_code(),
            "suites": [
                {
                    "suite": c.suite,
                    "status": self.status(c.suite),
                    "entries": c.entries,
                    "versions": c.versions,
                }
                for c in self.checked
            ],
            "findings": [f.to_dict() for f in self.findings],
        }
