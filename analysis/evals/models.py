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

from analysis.errors import BaselineError
from analysis.evals._files import iso, parse_iso

__all__ = [
    "BaselineVersion",
    "JournalEntry",
    "MetricSpec",
    "Policy",
    "Reference",
    "SuiteConfig",
    "SyncItem",
    "SyncReport",
]

Policy = Literal["pin", "reanchor"]

# ----------------------------------------------------------------------------- config


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
    """

    prompt: str
    grader: str
    on_revert: Policy
    metrics: tuple[MetricSpec, ...]
    primary: str

    @classmethod
    def from_mapping(cls, data: Any, *, where: str = "suite config") -> SuiteConfig:
        """Validate a parsed ``suite.yaml``; errors name the file and the entry."""
        if not isinstance(data, Mapping):
            raise BaselineError(f"{where}: expected a mapping with prompt, grader, metrics")
        unknown = set(data) - {"prompt", "grader", "on_revert", "metrics", "primary"}
        if unknown:
            raise BaselineError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        for key in ("prompt", "grader"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise BaselineError(f"{where}: '{key}' is required and must be a non-empty string")
        on_revert = data.get("on_revert", "pin")
        if on_revert not in ("pin", "reanchor"):
            raise BaselineError(
                f"{where}: on_revert must be 'pin' or 'reanchor', not {on_revert!r}"
            )
        raw = data.get("metrics")
        if not isinstance(raw, Mapping) or not raw:
            raise BaselineError(f"{where}: 'metrics' must map metric names to their settings")
        metrics: list[MetricSpec] = []
        for name, spec in raw.items():
            entry = f"{where}: metrics.{name}"
            if not isinstance(name, str) or name in ("example_id", "sample", "grader"):
                raise BaselineError(f"{entry}: invalid metric name")
            if not isinstance(spec, Mapping):
                raise BaselineError(f"{entry}: expected {{kind, direction, margin}}")
            extra = set(spec) - {"kind", "direction", "margin"}
            if extra:
                raise BaselineError(f"{entry}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
            kind = spec.get("kind", "continuous")
            direction = spec.get("direction", "higher")
            margin = spec.get("margin")
            if kind not in ("binary", "continuous"):
                raise BaselineError(f"{entry}: kind must be binary or continuous, not {kind!r}")
            if direction not in ("higher", "lower"):
                raise BaselineError(
                    f"{entry}: direction must be higher or lower, not {direction!r}"
                )
            if isinstance(margin, bool) or not isinstance(margin, int | float) or margin <= 0:
                raise BaselineError(f"{entry}: margin must be a positive number, not {margin!r}")
            metrics.append(MetricSpec(name, kind, direction, float(margin)))
        primary = data.get("primary", metrics[0].name)
        if primary not in {m.name for m in metrics}:
            raise BaselineError(f"{where}: primary {primary!r} is not one of the metrics")
        return cls(data["prompt"], data["grader"], on_revert, tuple(metrics), primary)

    @classmethod
    def load(cls, path: str | Path) -> SuiteConfig:
        """Read and validate a suite YAML file."""
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BaselineError(f"{p}: suite config not found") from None
        except yaml.YAMLError as exc:
            raise BaselineError(f"{p}: not valid YAML: {exc}") from exc
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

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the content of ``meta.json``)."""
        return {
            "version": self.id,
            "seq": self.seq,
            "suite": self.suite,
            "revision": self.revision,
            "eval_set_sha256": self.eval_set_sha256,
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
        """Parse ``meta.json``."""
        return cls(
            id=data["version"],
            seq=int(data["seq"]),
            suite=data["suite"],
            revision=data["revision"],
            eval_set_sha256=data["eval_set_sha256"],
            grader=data["grader"],
            parent=data.get("parent"),
            created_at=parse_iso(data["created_at"]),
            actor=data.get("actor", ""),
            reason=data.get("reason", ""),
            scores_sha256=data["scores_sha256"],
            n_examples=int(data["n_examples"]),
            n_rows=int(data["n_rows"]),
            max_samples=int(data.get("max_samples", 1)),
            summary={k: float(v) for k, v in data.get("summary", {}).items()},
            source=data.get("source", ""),
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
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JournalEntry:
        """Parse one journal line."""
        return cls(
            seq=int(data["seq"]),
            at=parse_iso(data["at"]),
            actor=data.get("actor", ""),
            action=data["action"],
            reason=data.get("reason", ""),
            reference=Reference.from_dict(data.get("reference")),
            version=data.get("version"),
            revision=data.get("revision"),
            created=bool(data.get("created", False)),
            scores_sha256=data.get("scores_sha256"),
            ledger_key=data.get("ledger_key"),
            reverted=data.get("reverted"),
            restored=data.get("restored"),
            policy=data.get("policy"),
        )


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
        """JSON form."""
        return {"items": [i.to_dict() for i in self.items], "pending": len(self.pending)}

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
