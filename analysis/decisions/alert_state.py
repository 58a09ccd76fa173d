"""Alerts that do not page every hour: the ``--state`` file of ``analyze`` and ``report``.

A scheduled run that finds the same regression every hour should page once. The state file
remembers the alerts already raised, by a **stable key** — kind, experiment and subject (the
metric and arm, the phase, the suite or consumer; never the message's numbers) — and each run
sorts its alerts into

* ``new`` — not in the state: reported as alerts, exit code 1;
* ``known`` — raised by an earlier run: reported as known (with the time first raised), no exit
  code 1 by itself unless ``--repeat-alerts``;
* ``cleared`` — in the state but not raised now, for an experiment this run analysed: reported
  once ("cleared since <time>") and dropped from the state.

The file is JSON ``{"schema_version": 1, "alerts": {key: {kind, experiment, subject, message,
first_seen, last_seen}}}``, read and rewritten under an exclusive lock
(``.promptstate/<name>.lock`` next to it, as the ledger's) and written atomically (a temporary
file renamed over it), so concurrent runs never corrupt it. A state file that is not such JSON
is bad input (exit code 2, naming it); nothing is written then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis.errors import PromptstateError

if TYPE_CHECKING:
    from analysis._table import Table
    from analysis.metrics import AnalysisResult

__all__ = [
    "STATE_SCHEMA_VERSION",
    "AlertItem",
    "StateUpdate",
    "alert_key",
    "result_alerts",
    "update_state",
]

STATE_SCHEMA_VERSION = 1
_NUMBER = re.compile(r"[-+−]?\d[\d.,:eE%+\-−]*")


class AlertItem(NamedTuple):
    """One alert of a run.

    Attributes:
        kind: ``regression``, ``guardrail_breach``, ``srm``, ``crossover``, ``missing_values``,
            ``completeness``, ``stale_baseline``, ...
        experiment: The experiment it is about.
        subject: What within the experiment (metric/arm, phase, suite...); no numbers.
        message: The alert's text (numbers included).
    """

    kind: str
    experiment: str
    subject: str
    message: str

    @property
    def key(self) -> str:
        """The stable key of the alert."""
        return alert_key(self.kind, self.experiment, self.subject)


def alert_key(kind: str, experiment: str, subject: str) -> str:
    """``kind|experiment|subject``: what makes two runs' alerts the same alert."""
    return f"{kind}|{experiment}|{subject}"


def _subject(kind: str, message: str) -> str:
    """A number-free subject of an alert text (its fixed opening, then the names it gives)."""
    patterns = {
        "srm": r"phase (\S+?):",
        "missing_values": r"missing values: (.+?) has ",
        "stale_baseline": r"suite (\S+?):",
        "invalid_baseline": r"suite (\S+?):",
        "contract_risk": r"consumer (\S+) ",
    }
    pattern = patterns.get(kind)
    match = re.search(pattern, message) if pattern else None
    if match:
        return match.group(1)
    if kind == "crossover":
        return ""
    return _NUMBER.sub("#", message)[:200]


def alert_kind(message: str) -> str:
    """The kind of one of :attr:`AnalysisResult.alerts` by its fixed opening."""
    for opening, kind in (
        ("sample ratio mismatch", "srm"),
        ("crossover", "crossover"),
        ("missing values", "missing_values"),
    ):
        if message.startswith(opening):
            return kind
    return "alert"


def result_alerts(
    result: AnalysisResult, guardrails: Table | None = None, *, extra: Iterable[AlertItem] = ()
) -> list[AlertItem]:
    """Every alert of one analysis with its stable key: completeness findings, SRM, crossover
    and missing values, regressions (metric × arm), guardrail breaches (metric × arm × combined
    or latest phase), then ``extra`` (a report's baseline and contract findings)."""
    exp = result.experiment
    out: list[AlertItem] = []
    for r in result.completeness.rows:
        d: Any = r
        subject = f"{d.kind}|{d.arm or ''}|{d.phase if d.phase is not None else ''}"
        out.append(AlertItem("completeness", exp, subject, str(d.detail)))
    for a in result.alerts:
        kind = alert_kind(a)
        out.append(AlertItem(kind, exp, _subject(kind, a), a))
    for row, message in zip(result.regressions, result.regression_messages, strict=True):
        out.append(AlertItem("regression", exp, f"{row.metric}|{row.arm}", message))
    if guardrails is not None:
        for g in guardrails.rows:
            e: Any = g
            if e.verdict != "breach":
                continue
            which = "combined" if e.phase == "combined" else "latest"
            out.append(
                AlertItem("guardrail_breach", exp, f"{e.metric}|{e.arm}|{which}", breach_message(e))
            )
    out.extend(extra)
    return list({a.key: a for a in out}.values())


def breach_message(row: Any) -> str:
    """One line for a breaching guardrail row."""
    return (
        f"guardrail breach: {row.metric} ({row.arm}, phase {row.phase}) harm {row.harm:+.4g}, "
        f"one-sided upper bound {row.bound:+.4g}, beyond the margin {row.margin:.4g} "
        f"({row.margin_text}; adjusted p={row.p_breach:.2g}, {row.direction} is better)"
    )


def generic_alert(kind: str, experiment: str, message: str) -> AlertItem:
    """An alert known only by its kind and text (e.g. a report's stale baseline)."""
    return AlertItem(kind, experiment, _subject(kind, message), message)


class KnownAlert(NamedTuple):
    """An alert raised again: the item and when it was first raised."""

    item: AlertItem
    first_seen: str


class ClearedAlert(NamedTuple):
    """An alert of an earlier run that this run did not raise."""

    kind: str
    experiment: str
    subject: str
    message: str
    last_seen: str
    cleared_at: str

    def line(self) -> str:
        """``<kind> <subject> of <experiment> cleared since <time> (last: <message>)``."""
        what = f" {self.subject}" if self.subject else ""
        return (
            f"{self.kind}{what} of {self.experiment} cleared since {self.cleared_at} (last "
            f"raised {self.last_seen}: {self.message})"
        )


@dataclass(frozen=True)
class StateUpdate:
    """How one run's alerts compare with the state file.

    Attributes:
        path: The state file.
        new: Alerts not raised before.
        known: Alerts raised by an earlier run.
        cleared: Alerts of earlier runs not raised now (reported once, dropped).
    """

    path: Path
    new: tuple[AlertItem, ...]
    known: tuple[KnownAlert, ...]
    cleared: tuple[ClearedAlert, ...]

    def exit_code(self, *, repeat: bool = False) -> int:
        """1 when there is a new alert (or any alert with ``repeat``), else 0."""
        return 1 if self.new or (repeat and self.known) else 0

    def stderr_lines(self) -> list[str]:
        """What the CLI prints on stderr (``promptstate: `` prefixed by the caller)."""
        out = [f"alert: {a.message}" for a in self.new]
        out += [f"alert (known since {k.first_seen}): {k.item.message}" for k in self.known]
        out += [f"cleared: {c.line()}" for c in self.cleared]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON: ``{"path", "new", "known", "cleared"}`` (lists of objects)."""
        return {
            "path": str(self.path),
            "new": [{**a._asdict(), "key": a.key} for a in self.new],
            "known": [
                {**k.item._asdict(), "key": k.item.key, "first_seen": k.first_seen}
                for k in self.known
            ],
            "cleared": [c._asdict() for c in self.cleared],
        }


def _now_text(now: datetime | None) -> str:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def read_state(path: Path) -> dict[str, dict[str, Any]]:
    """The alerts of a state file (empty when it does not exist).

    Raises:
        PromptstateError: the file is not a state file (naming it and what to do).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptstateError(f"--state {path}: cannot read the alert state ({exc})") from None
    fix = "delete it to start afresh (every alert is then reported as new once)"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptstateError(
            f"--state {path}: not a promptstate alert state (invalid JSON at line {exc.lineno}); "
            f"{fix}"
        ) from None
    if not isinstance(data, dict) or data.get("schema_version") != STATE_SCHEMA_VERSION:
        raise PromptstateError(
            f"--state {path}: not a promptstate alert state (expected a JSON object with "
            f"schema_version {STATE_SCHEMA_VERSION}); {fix}"
        )
    alerts = data.get("alerts")
    if not isinstance(alerts, dict) or not all(
        isinstance(v, dict)
        and all(isinstance(v.get(k), str) for k in ("kind", "experiment", "first_seen"))
        for v in alerts.values()
    ):
        raise PromptstateError(
            f"--state {path}: 'alerts' must map keys to objects with kind, experiment and "
            f"first_seen; {fix}"
        )
    return alerts


def update_state(
    path: str | Path,
    alerts: Sequence[AlertItem],
    *,
    experiments: Iterable[str],
    now: datetime | None = None,
    write: bool = True,
) -> StateUpdate:
    """Compare this run's alerts with the state file and rewrite it (under its lock).

    Args:
        path: The state file (created when missing, with its folder).
        alerts: This run's alerts.
        experiments: The experiments this run analysed: only their alerts can clear.
        now: The run time (default: the clock).
        write: Rewrite the file (``False``: compare only).

    Raises:
        PromptstateError: the state file is corrupt, or cannot be written (exit code 2).
    """
    from analysis._io import atomic_write_text, file_lock
    from analysis.ledger.writer import lock_path

    path = Path(path)
    stamp = _now_text(now)
    scope = set(experiments)
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PromptstateError(
            f"--state {path}: cannot create the lock folder {lock.parent} ({exc.strerror or exc})"
        ) from None
    with file_lock(lock):
        stored = read_state(path)
        new: list[AlertItem] = []
        known: list[KnownAlert] = []
        fresh: dict[str, dict[str, Any]] = {}
        for a in alerts:
            old = stored.get(a.key)
            first = str(old["first_seen"]) if old else stamp
            if old:
                known.append(KnownAlert(a, first))
            else:
                new.append(a)
            fresh[a.key] = {
                "kind": a.kind,
                "experiment": a.experiment,
                "subject": a.subject,
                "message": a.message,
                "first_seen": first,
                "last_seen": stamp,
            }
        cleared = [
            ClearedAlert(
                str(v["kind"]),
                str(v["experiment"]),
                str(v.get("subject", "")),
                str(v.get("message", "")),
                str(v.get("last_seen", v["first_seen"])),
                stamp,
            )
            for k, v in stored.items()
            if k not in fresh and v["experiment"] in scope
        ]
        kept = {k: v for k, v in stored.items() if k not in fresh and v["experiment"] not in scope}
        if write:
            body: dict[str, Any] = {"schema_version": STATE_SCHEMA_VERSION, "updated": stamp}
            body["alerts"] = {**kept, **fresh}
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(body, indent=2, sort_keys=True) + "\n")
            except OSError as exc:
                raise PromptstateError(
                    f"--state {path}: cannot write the alert state ({exc.strerror or exc}); "
                    "choose a writable path"
                ) from None
    return StateUpdate(path, tuple(new), tuple(known), tuple(cleared))
