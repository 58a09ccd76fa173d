"""The apply journal and the run of configured actions (private; used by ``rollback apply``).

**Journal.** ``<ledger name>.apply-journal.jsonl`` next to the ledger: one JSON line per action
run, appended and fsynced after the action, written only under the ledger's lock::

    {"schema_version": 1, "apply_id": "...", "key": "<apply_id>#caches.0", "action": "caches[0]",
     "kind": "redis", "target": "...", "fingerprint": "...", "status": "done" | "failed",
     "detail": "...", "time": "2026-11-03T08:15:02Z"}

No secret reaches it (targets and details are redacted). A torn last line (a process killed
while writing it) is ignored.

**Guarantees.** An action whose key and fingerprint have a ``done`` line is not run again; a
``failed`` one is retried. Delivery is at least once: a process killed between an action and its
journal line re-sends it on the next apply, with the same ``Idempotency-Key`` (the key does not
depend on the attempt). Apply holds the ledger's lock while it runs actions, so two concurrent
applies never run one action twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from analysis.errors import SCHEMA_VERSION, RollbackError
from analysis.rollback._actions import Action, ActionsConfig
from analysis.rollback._kinds import ActionContext, ActionFailed

__all__ = ["ActionResult", "Journal", "check_reachable", "journal_path", "run_actions"]

ResultStatus = Literal["done", "unchanged", "would-run", "failed"]


def journal_path(ledger: str | Path) -> Path:
    """The apply journal of a ledger: ``<ledger name>.apply-journal.jsonl`` next to it.

    A symlinked ledger's journal sits next to the file the link resolves to (as the ledger's
    own lock and writes do), so every path to one ledger shares one journal and an action done
    through one path is never run again through another.
    """
    path = Path(os.path.realpath(ledger))
    return path.with_name(f"{path.name}.apply-journal.jsonl")


@dataclass(frozen=True)
class ActionResult:
    """What happened to one configured action.

    Attributes:
        action: ``<leg>[<index>]``.
        kind: The kind.
        target: The resolved target (secrets redacted).
        key: The ``Idempotency-Key``.
        status: ``done`` (ran now), ``unchanged`` (done by an earlier apply), ``would-run``
            (dry run) or ``failed``.
        detail: What was done, or why it failed (secrets redacted).
    """

    action: str
    kind: str
    target: str
    key: str
    status: ResultStatus
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"action", "kind", "target", "key", "status", "detail"}``."""
        return {
            "action": self.action,
            "kind": self.kind,
            "target": self.target,
            "key": self.key,
            "status": self.status,
            "detail": self.detail,
        }


class Journal:
    """The append-only apply journal of one ledger (call only under the ledger's lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, Any]]:
        """Every complete line, oldest first."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RollbackError(
                f"{self.path}: cannot read the apply journal ({exc.strerror or exc})"
            ) from None
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line of a killed apply: its action is simply not done
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def done(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The last ``done`` entry of ``key`` with this fingerprint, unless a later entry failed."""
        last = None
        for entry in self.entries():
            if entry.get("key") == key and entry.get("fingerprint") == fingerprint:
                last = entry
        return last if last is not None and last.get("status") == "done" else None

    def record(self, entry: Mapping[str, Any]) -> None:
        """Append one line and fsync it."""
        line = json.dumps({"schema_version": SCHEMA_VERSION, **entry}, default=str) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise RollbackError(
                f"{self.path}: cannot write the apply journal ({exc.strerror or exc}); the "
                "ledger's directory must be writable"
            ) from None


def _key(apply: str, action: Action) -> str:
    return f"{apply}#{action.leg}.{action.index}"


def check_reachable(
    config: ActionsConfig, actions: Sequence[Action], context: Callable[[Action], ActionContext]
) -> None:
    """Check every action's target before any runs.

    Raises:
        RollbackError: exit code 2, naming the action and why (nothing was changed).
    """
    for action in actions:
        try:
            action.handler.check(action.config, context(action))
        except ActionFailed as exc:
            where = f"{config.path}: " if config.path is not None else ""
            raise RollbackError(
                f"{where}{action.name} ({action.kind}) is not reachable: "
                f"{config.redact(str(exc))}; nothing was changed — fix the target and re-run"
            ) from None


def run_actions(
    config: ActionsConfig,
    actions: Sequence[Action],
    journal: Journal,
    *,
    apply: str,
    context: Callable[[Action], ActionContext],
    dry_run: bool,
) -> list[ActionResult]:
    """Run ``actions`` in order, each once: skip those journalled done, journal each result.

    A failure does not stop the others; the caller turns failures into exit code 1.
    """
    results = []
    for action in actions:
        key = _key(apply, action)
        if journal.done(key, action.fingerprint) is not None:
            results.append(
                ActionResult(
                    action.name, action.kind, action.target, key, "unchanged", "done before"
                )
            )
            continue
        if dry_run:
            results.append(
                ActionResult(action.name, action.kind, action.target, key, "would-run", "")
            )
            continue
        status: ResultStatus
        try:
            detail = config.redact(action.handler.run(action.config, context(action)))
            status = "done"
        except ActionFailed as exc:
            detail, status = config.redact(str(exc)), "failed"
        except Exception as exc:  # a plugin's bug must not lose the other results
            detail = config.redact(f"{type(exc).__name__}: {exc}")
            status = "failed"
        journal.record(
            {
                "apply_id": apply,
                "key": key,
                "action": action.name,
                "kind": action.kind,
                "target": action.target,
                "fingerprint": action.fingerprint,
                "status": status,
                "detail": detail,
                "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
        )
        results.append(ActionResult(action.name, action.kind, action.target, key, status, detail))
    return results
