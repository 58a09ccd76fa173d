"""What the report cannot show, and why: arms, phases or windows without events.

An export that holds one arm only, a window after the experiment ended, or a window inside one
phase must still give a report (exit 1 with its findings, never a crash or an empty sentence).
This module says, from the report's own counts, which arm or phase has no events, so that

* the headline says why a number is missing (:func:`missing_reason`);
* each plot that needs both arms (the effects forest plot, the recovery curve) is replaced by a
  line naming the arm without events (:func:`plot_gaps`), and the other plots by a line when
  they have nothing to draw;
* the prompt-cache panels say once which optional columns would fill them
  (:func:`cache_gap`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.reporting._data import ContaminationRow
    from analysis.reporting.batch import Report

__all__ = ["arm_events", "cache_gap", "missing_reason", "plot_gaps"]

#: The optional columns of the prompt-cache panels and what each one unlocks.
CACHE_COLUMNS: Mapping[str, str] = {
    "cache_hit": "a boolean per event, for the hit rate",
    "cost_usd": "a number per event, for the cost per event",
}


def arm_events(
    counts: Sequence[ContaminationRow], arms: Sequence[str], *, label: str | None = None
) -> dict[str, int]:
    """Events tagged with each arm in the exposure phases of the window (``label``: only
    those with that contamination label, e.g. ``clean``)."""
    out = dict.fromkeys(arms, 0)
    for r in counts:
        if r.arm in out and r.phase_kind == "exposure" and (label is None or r.label == label):
            out[r.arm] += r.n_events
    return out


def _iso(at: datetime) -> str:
    return at.isoformat()


def _exposure(phases: Sequence[Any]) -> tuple[datetime | None, datetime | None]:
    """Start of the first exposure phase and end of the last (``None``: still open)."""
    exposure = [p for p in phases if p.kind == "exposure"]
    if not exposure:
        return None, None
    return exposure[0].start, exposure[-1].end


def missing_reason(
    counts: Sequence[ContaminationRow],
    arms: Sequence[str],
    phases: Sequence[Any],
    since: datetime | None,
    until: datetime | None,
) -> str:
    """Why the clean arm − control comparison has no number, in a few words.

    In order: the window lies after the experiment ended or before it started; no events at
    all in the exposure phases of the window; an arm without events (named); an arm without
    clean events (named); otherwise too few units for an estimate.
    """
    start, end = _exposure(phases)
    if end is not None and since is not None and since >= end:
        return f"the experiment ended at {_iso(end)}, before the window starts at {_iso(since)}"
    if start is not None and until is not None and until <= start:
        return f"the window ends at {_iso(until)}, before the experiment started at {_iso(start)}"
    tagged = arm_events(counts, arms)
    if not any(tagged.values()):
        return "no events of the experiment's exposure phases in the window"
    empty = [a for a in arms if tagged[a] == 0]
    if empty:
        return f"{_arms(empty)} {'has' if len(empty) == 1 else 'have'} no events in the window"
    clean = arm_events(counts, arms, label="clean")
    unclean = [a for a in arms if clean[a] == 0]
    if unclean:
        return (
            f"{_arms(unclean)} {'has' if len(unclean) == 1 else 'have'} no clean events in the "
            "window (every event is contaminated)"
        )
    return "too few units per arm for an estimate"


def _arms(arms: Sequence[str]) -> str:
    return ("arm " if len(arms) == 1 else "arms ") + ", ".join(arms)


def plot_gaps(rep: Report) -> dict[str, str]:
    """Plot name → the line shown instead of that plot (plots not named are drawn).

    The effects plot needs both arms' exposure events; the recovery plot needs exposed and
    never-exposed units after the rollback; the others need any events to draw.
    """
    out: dict[str, str] = {}
    tagged = arm_events(rep.contamination, rep.arms)
    empty = [a for a in rep.arms if tagged[a] == 0]
    effects = [
        r for r in rep.analysis.effects.rows if math.isfinite(getattr(r, "rel_effect", math.nan))
    ]
    if empty or not effects:
        since, until = _window(rep)
        why = missing_reason(rep.contamination, rep.arms, rep.phases, since, until)
        out["effects"] = f"No effects plot: {why}; nothing to compare."
    if not rep.timeseries:
        out["metric_by_time"] = "No metrics-over-time plot: no metric values in the window."
    if not any(r.arm is not None for r in rep.contamination):
        out["contamination"] = (
            "No contamination plot: no event in the window is tagged with the experiment."
        )
    recovery: list[Any] = [
        r for r in rep.analysis.recovery.rows if getattr(r, "bin", None) is not None
    ]
    if rolled_back(rep.phases) and not recovery:
        out["recovery"] = (
            "No recovery plot: no unit served the rolled-back revision has events after the "
            "rollback in the window."
        )
    elif recovery and not any(math.isfinite(r.effect) for r in recovery):
        if all(r.n_reference == 0 for r in recovery):
            who = "no never-exposed units after the rollback"
            if empty:
                who += f" ({_arms(empty)} has no events)"
        else:
            who = "too few units per bin after the rollback"
        out["recovery"] = f"No recovery plot: {who}; nothing to compare the exposed units with."
    days = [
        r
        for r in rep.analysis.by_exposure_day.rows
        if getattr(r, "metric", None) == rep.exposure_metric
        and math.isfinite(getattr(r, "effect", math.nan))
    ]
    if not days:
        out["exposure_days"] = (
            "No effect-by-exposure-day plot: no fresh units with clean turns on both arms"
            + (f" ({_arms(empty)} has no events)" if empty else "")
            + "."
        )
    gap = cache_gap(rep)
    if gap and not rep.cache:
        out["cache"] = gap
    return out


def rolled_back(phases: Sequence[Any]) -> bool:
    """Whether the experiment ended with a rollback (so a recovery analysis is expected)."""
    return bool(phases) and phases[-1].kind == "after_end" and phases[-1].start_action == "rollback"


def _window(rep: Report) -> tuple[datetime | None, datetime | None]:
    def parse(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    return parse(rep.inputs.get("since")), parse(rep.inputs.get("until"))


def cache_gap(rep: Report) -> str:
    """One line about the prompt-cache panels when something keeps them (partly) empty: the
    optional columns the export lacks and what each would unlock, or the lack of events near
    the boundaries ("" when every panel can be drawn)."""
    lacking = [c for c in CACHE_COLUMNS if c not in rep.columns] if rep.columns else []
    if lacking:
        unlock = "; ".join(f"{c}: {CACHE_COLUMNS[c]}" for c in lacking)
        if len(lacking) == len(CACHE_COLUMNS):
            return (
                f"No prompt-cache panels: the export has no {' or '.join(lacking)} column "
                f"(optional columns; add them to see the panels — {unlock})."
            )
        return (
            f"The export has no {lacking[0]} column, so its panels are left empty (optional; "
            f"add it — {unlock})."
        )
    if not rep.cache:
        return "No prompt-cache panels: no events within 2 hours of a boundary in the window."
    return ""
