"""Completeness and freshness of an export against the ledger, before any statistics.

Three checks on the events tagged with the experiment in its exposure phases, each phase checked
over its *window* ``[max(start, since), min(end, cutoff))`` with ``cutoff = until − late_hours``
on a fresh window, else ``until`` (``until`` defaults to the newest event of the export):

- **coverage / gap** — hourly event counts (whole clock hours inside the window), overall and
  per arm with a positive allocation. A run of at least ``gap_hours`` empty hours is a finding
  when units arriving as a Poisson process at the series' average rate of active units per hour
  over the window would leave that many hours empty with probability below ``alpha`` divided by
  the window's hours (Bonferroni over where the run could start): ``exp(−rate × hours) <
  alpha / n_hours``. Units, not events: a unit's turns come in bursts, and counting events
  would make a thin arm's quiet hour look impossible. So a sparse arm's quiet night is not an
  alert, a busy arm's silent hour is. A run touching the window's start or end
  is ``coverage`` (the export starts late or stops early), one inside it a ``gap``. An arm's run
  inside an overall gap is not repeated.
- **volume** (lost logging of one arm) — per exposure phase × UTC day, the newly enrolled units
  (a unit counts once, in the arm of its first tagged exposure event, like the SRM check). With
  ``n_a`` units of arm ``a`` (allocation ``p_a``) and ``n_rest`` units of the other arms, the
  other arms and the allocation imply ``p_a / (1 − p_a) × n_rest`` units of ``a``. The cell is a
  finding when ``n_a`` falls more than ``drop_threshold`` below that *and* the shortfall is
  significant: the exact one-sided binomial test of ``n_a ~ Bin(n_a + n_rest, p_a)`` gives
  ``P(X ≤ n_a) < alpha / m``, with ``m`` the number of phase × day × arm cells tested
  (Bonferroni: at most ``alpha`` false volume alarms per experiment and run). The estimand is
  the arm's share of new units against its allocation.
- **late data** — when the window is *fresh* (its end ``until`` lies within ``fresh_hours``,
  default 24, of the run time ``now``), events at or after ``cutoff`` are left out of everything
  (they may still be arriving) and the count left out is noted. A window that ended longer ago
  is complete: nothing is cut (``cutoff = until``), and a note says so. The run time is the
  clock unless given (``now=``, ``--now``, or a :func:`run_clock` block).

An experiment whose exposure ended at or before ``since`` has nothing in the window: no
``coverage`` finding, a note that it is shown as ended (:attr:`Window.ended`).

Data work (lazy narwhals aggregates: counts per phase × hour × arm, per phase × day × first arm)
is in :func:`completeness_frames`; the statistics run on the collected rows in
:func:`completeness_rows` (numpy/scipy only).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis.errors import PromptstateError

if TYPE_CHECKING:  # pragma: no cover
    import narwhals as nw

    from analysis.events.labelling import SplitResult
    from analysis.ledger import Phase

__all__ = [
    "COMPLETENESS_KINDS",
    "DEFAULT_FRESH_HOURS",
    "CompletenessRow",
    "RunClock",
    "Window",
    "check_completeness_options",
    "check_fresh_hours",
    "completeness_frames",
    "completeness_rows",
    "effective_clock",
    "is_fresh",
    "parse_time",
    "resolve_window",
    "run_clock",
]

#: Default of ``fresh_hours``: late data is left out only when the window ends this close to now.
DEFAULT_FRESH_HOURS = 24.0

#: The kinds of completeness findings.
COMPLETENESS_KINDS = ("coverage", "gap", "volume")

_HOUR = timedelta(hours=1)


class CompletenessRow(NamedTuple):
    """One completeness finding (each is an alert: exit code 1).

    Attributes:
        kind: ``coverage`` (the export starts late or stops early in a phase's window), ``gap``
            (empty hours inside it) or ``volume`` (an arm's newly enrolled units fall short of
            what the allocation and the other arms imply).
        phase: Exposure phase id.
        start: Start of the affected window (UTC).
        end: End of the affected window (exclusive).
        arm: The arm, or ``None`` for all arms together.
        detail: What was found, in one sentence naming the window and the arm.
    """

    kind: str
    phase: int
    start: datetime
    end: datetime
    arm: str | None
    detail: str


@dataclass(frozen=True)
class Window:
    """The time window an analysis reads, and the late data it leaves out.

    Attributes:
        since: Events before it are left out (``None``: from the start).
        until: The window's end (exclusive) as asked, or just after the newest event of the
            export (+1 µs).
        cutoff: ``until − late_hours`` when the window is fresh, else ``until``: events at or
            after it are left out.
        late_hours: Hours before ``until`` left out as possibly incomplete (when fresh).
        late_events: Events of the export in ``[cutoff, until)``.
        until_given: Whether ``until`` was given (else: the newest event).
        fresh_hours: The window is *fresh* when ``until`` lies within this many hours of the
            run time ``now``; only then is late data left out.
        now: The run time freshness was judged at (``None``: not judged, an empty export).
        trimmed: Whether late data was left out (``late_hours > 0`` and the window is fresh).
        ended: When the experiment's last exposure phase ended, if that is at or before
            ``since`` (nothing of the experiment in the window: it is shown as ended, no alert).
    """

    since: datetime | None
    until: datetime | None
    cutoff: datetime | None
    late_hours: float
    late_events: int
    until_given: bool
    fresh_hours: float = DEFAULT_FRESH_HOURS
    now: datetime | None = None
    trimmed: bool = True
    ended: datetime | None = None

    @property
    def age_hours(self) -> float | None:
        """Hours from the window's end to the run time (``None`` when either is unknown)."""
        if self.until is None or self.now is None:
            return None
        return (self.now - self.until) / _HOUR

    def notes(self) -> list[str]:
        """What the reader should know about the window."""
        if self.cutoff is None or self.until is None:
            return []
        source = "" if self.until_given else " (the newest event)"
        if self.late_hours > 0 and self.trimmed:
            first = (
                f"late data: {self.late_events} event(s) in the last {self.late_hours:g} h "
                f"before {self.until.isoformat()}{source} left out (from "
                f"{self.cutoff.isoformat()}; set late_hours / --late-hours to change)"
            )
        elif self.late_hours > 0:
            age = self.age_hours
            first = (
                f"late data: nothing left out: the window's end {self.until.isoformat()}{source} "
                f"is {age if age is not None else float('nan'):.3g} h before the run time "
                f"{self.now.isoformat() if self.now else '?'}, more than fresh_hours="
                f"{self.fresh_hours:g}, so no more events are expected (late_hours applies to "
                "fresh windows only; set --fresh-hours / --now to change)"
            )
        else:
            first = f"events up to {self.until.isoformat()}{source} analysed (no late-data margin)"
        out = [first]
        if self.since is not None:
            out.append(f"events before {self.since.isoformat()} left out (since)")
        if self.ended is not None and self.since is not None:
            out.append(
                f"the experiment ended at {self.ended.isoformat()}, before since "
                f"{self.since.isoformat()}: nothing of it is in the window; shown as ended "
                "(no completeness alert)"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (times as ISO-8601 text)."""
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "cutoff": None if self.cutoff is None else self.cutoff.isoformat(),
            "late_hours": self.late_hours,
            "late_events": self.late_events,
            "fresh_hours": self.fresh_hours,
            "now": None if self.now is None else self.now.isoformat(),
            "trimmed": self.trimmed,
            "ended": None if self.ended is None else self.ended.isoformat(),
        }


class RunClock(NamedTuple):
    """The run time and freshness horizon an analysis judges late data by (:func:`run_clock`).

    Attributes:
        fresh_hours: A window ending within this many hours of ``now`` is fresh.
        now: The run time (``None``: the clock, read when a window is resolved; a
            :func:`run_clock` block reads it once, on entry).
    """

    fresh_hours: float = DEFAULT_FRESH_HOURS
    now: datetime | None = None


_CLOCK: ContextVar[RunClock | None] = ContextVar("promptstate_run_clock", default=None)


@contextmanager
def run_clock(
    fresh_hours: float = DEFAULT_FRESH_HOURS, now: datetime | str | None = None
) -> Iterator[RunClock]:
    """Judge late data by ``fresh_hours`` and the run time ``now`` inside the block.

    The default for every :func:`resolve_window` in the block that is not given ``fresh_hours``
    / ``now`` itself (``promptstate analyze/report --fresh-hours H --now T`` set it around the
    whole run, so that the one- and the several-experiment paths see the same run time).

    Raises:
        PromptstateError: ``fresh_hours`` is not a number of hours >= 0, or ``now`` is not
            ISO-8601.
    """
    check_fresh_hours(fresh_hours)
    # the clock is read once, here: every window of the block is judged at the same instant
    clock = RunClock(fresh_hours, parse_time(now, "now") or datetime.now(UTC))
    token = _CLOCK.set(clock)
    try:
        yield clock
    finally:
        _CLOCK.reset(token)


def check_fresh_hours(fresh_hours: float) -> None:
    """Raise :class:`PromptstateError` unless ``fresh_hours`` is a number of hours >= 0."""
    if not (fresh_hours >= 0 and math.isfinite(fresh_hours)):
        raise PromptstateError(
            f"fresh_hours={fresh_hours}: must be a number of hours >= 0, e.g. 24 (late data is "
            "left out only when the window ends within this many hours of the run time)"
        )


def is_fresh(until: datetime, fresh_hours: float, now: datetime) -> bool:
    """Whether a window ending at ``until`` may still receive events at run time ``now``: it
    ends within ``fresh_hours`` of ``now`` (or after it)."""
    return now - until <= timedelta(hours=fresh_hours)


def effective_clock(
    fresh_hours: float | None = None, now: datetime | str | None = None
) -> RunClock:
    """``fresh_hours`` and ``now`` as given, else the :func:`run_clock` block's, else 24 h and
    the clock (UTC)."""
    ambient = _CLOCK.get() or RunClock()
    hours = ambient.fresh_hours if fresh_hours is None else fresh_hours
    check_fresh_hours(hours)
    at = parse_time(now, "now") if now is not None else ambient.now
    return RunClock(hours, at if at is not None else datetime.now(UTC))


def parse_time(value: datetime | str | None, name: str) -> datetime | None:
    """An ISO-8601 time (text or datetime; naive read as UTC), or ``None``.

    Raises:
        PromptstateError: not an ISO-8601 time.
    """
    if value is None or isinstance(value, datetime):
        out = value
    else:
        try:
            out = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise PromptstateError(
                f"{name}={value!r}: not an ISO-8601 time, e.g. 2026-11-03T00:00:00Z"
            ) from None
    if out is not None and out.tzinfo is None:
        out = out.replace(tzinfo=UTC)
    return out


def check_completeness_options(
    late_hours: float, gap_hours: float, drop_threshold: float, alpha: float
) -> None:
    """Raise :class:`PromptstateError` naming the first invalid completeness option."""
    if not (late_hours >= 0 and math.isfinite(late_hours)):
        raise PromptstateError(f"late_hours={late_hours}: must be a number of hours >= 0, e.g. 2")
    if not (gap_hours > 0 and math.isfinite(gap_hours)):
        raise PromptstateError(f"gap_hours={gap_hours}: must be a positive number of hours")
    if not 0 < drop_threshold < 1:
        raise PromptstateError(f"drop_threshold={drop_threshold}: must lie in (0, 1), e.g. 0.3")
    if not 0 < alpha < 1:
        raise PromptstateError(f"completeness_alpha={alpha}: must lie in (0, 1), e.g. 0.001")


def resolve_window(
    res: SplitResult,
    since: datetime | str | None,
    until: datetime | str | None,
    late_hours: float,
    *,
    fresh_hours: float | None = None,
    now: datetime | str | None = None,
) -> Window:
    """The window of one analysis: ``until`` (default: the newest event), its late-data cutoff
    and the count of events left out as late (one or two small collects of ``ts`` only).

    Late data is left out only when the window is fresh: ``until`` within ``fresh_hours``
    (default: the :func:`run_clock` block's, else 24) of the run time ``now`` (default: the
    block's, else the clock). A finished export's newest hours are complete: nothing is cut,
    and a note says why.

    Raises:
        PromptstateError: a time is not ISO-8601, ``until`` is not after ``since``, or
            ``fresh_hours`` is negative.
    """
    import narwhals as nw

    start = parse_time(since, "since")
    stop = parse_time(until, "until")
    if start is not None and stop is not None and stop <= start:
        raise PromptstateError(
            f"until ({stop.isoformat()}) must be after since ({start.isoformat()})"
        )
    clock = effective_clock(fresh_hours, now)
    ended = _ended_before(res.phases, start)
    ts = res.frame.select("ts")
    given = stop is not None
    if stop is None:
        newest = ts.select(nw.col("ts").max()).collect().rows()[0][0]
        # just after the newest event, so that the window [since, until) includes it
        stop = None if newest is None else _aware(newest) + timedelta(microseconds=1)
    if stop is None:  # an empty export: nothing to cut
        return Window(start, None, None, late_hours, 0, given, clock.fresh_hours, clock.now,
                      False, ended)  # fmt: skip
    assert clock.now is not None
    trimmed = late_hours > 0 and is_fresh(stop, clock.fresh_hours, clock.now)
    cutoff = stop - timedelta(hours=late_hours) if trimmed else stop
    late = 0
    if trimmed:
        cond = (nw.col("ts") >= nw.lit(cutoff)) & (nw.col("ts") < nw.lit(stop))
        late = int(ts.filter(cond).select(nw.len()).collect().rows()[0][0] or 0)
    return Window(
        start, stop, cutoff, late_hours, late, given, clock.fresh_hours, clock.now, trimmed, ended
    )


def _ended_before(phases: Sequence[Phase], since: datetime | None) -> datetime | None:
    """The end of the last exposure phase when every exposure phase ended at or before
    ``since`` (``None`` otherwise, or without ``since``)."""
    exposure = [p for p in phases if p.kind == "exposure" and p.start is not None]
    if since is None or not exposure or any(p.end is None or p.end > since for p in exposure):
        return None
    return max(p.end for p in exposure if p.end is not None)


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):  # pragma: no cover - engines return datetimes
        raise TypeError(f"ts: expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def apply_window(res: SplitResult, window: Window) -> SplitResult:
    """The split restricted to ``[since, cutoff)`` (labels keep using the whole export)."""
    import narwhals as nw

    from analysis.events.labelling import with_frames

    if window.since is None and window.cutoff is None:
        return res
    cond = nw.lit(value=True)
    if window.since is not None:
        cond = cond & (nw.col("ts") >= nw.lit(window.since))
    if window.cutoff is not None:
        cond = cond & (nw.col("ts") < nw.lit(window.cutoff))
    return with_frames(res, lambda f: f.filter(cond))


# -- data work: two small lazy aggregates ----------------------------------------------------


def completeness_frames(res: SplitResult) -> dict[str, nw.LazyFrame[Any]]:
    """Lazy aggregates of the (windowed) split: ``hourly`` (phase, hour, arm, n events, distinct
    units) and ``enrolled``
    (phase, day, arm, n: units by the arm of their first tagged exposure event)."""
    import narwhals as nw

    exposure = [p.id for p in res.phases if p.kind == "exposure"]
    unit = res.unit_key
    tagged = res.keyed.select("ts", unit, "experiment_id", "arm", "phase").filter(
        (nw.col("experiment_id") == res.experiment.id)
        & ~nw.col("arm").is_null()
        & nw.col("phase").is_in(exposure)
    )
    hourly = (
        tagged.with_columns(nw.col("ts").dt.truncate("1h").alias("hour"))
        .group_by("phase", "hour", "arm")
        .agg(nw.len().alias("n"), nw.col(unit).n_unique().alias("units"))
    )
    per_arm = tagged.group_by(unit, "arm").agg(nw.col("ts").min().alias("first_ts"))
    first = per_arm.group_by(unit).agg(nw.col("first_ts").min().alias("first_ts"))
    phased = tagged.group_by(unit).agg(nw.col("phase").min().alias("phase"))
    enrolled = (
        per_arm.join(first, on=[unit, "first_ts"], how="inner")
        .join(phased, on=unit, how="inner")
        .with_columns(nw.col("first_ts").dt.truncate("1d").alias("day"))
        .group_by("phase", "day", "arm")
        .agg(nw.len().alias("n"))
    )
    return {"hourly": hourly, "enrolled": enrolled}


# -- statistics on the collected rows --------------------------------------------------------


def completeness_rows(
    phases: Sequence[Phase],
    hourly: Sequence[Mapping[str, Any]],
    enrolled: Sequence[Mapping[str, Any]],
    window: Window,
    *,
    gap_hours: float = 1.0,
    drop_threshold: float = 0.3,
    alpha: float = 0.001,
) -> list[CompletenessRow]:
    """The findings of the coverage, gap and volume checks (see the module doc for estimands).

    Args:
        phases: The experiment's phases.
        hourly: Collected ``hourly`` rows of :func:`completeness_frames`.
        enrolled: Collected ``enrolled`` rows.
        window: The analysis window.
        gap_hours: Shortest run of empty hours that can be a finding.
        drop_threshold: Shortfall of an arm's new units (share of the implied count).
        alpha: Significance level of each gap test, and of the volume tests together
            (Bonferroni over the cells).

    Returns:
        The findings, sorted by phase, start, kind and arm.
    """
    out: list[CompletenessRow] = []
    tested = sum(
        len({r["day"] for r in enrolled if r["phase"] == p.id})
        * sum(1 for share in p.allocation.values() if 0 < share < 1)
        for p in phases
        if p.kind == "exposure"
    )
    cell_alpha = alpha / max(tested, 1)
    covered = False
    for p in phases:
        if p.kind != "exposure" or p.start is None:
            continue
        lo = max(p.start, window.since) if window.since is not None else p.start
        his = [t for t in (p.end, window.cutoff) if t is not None]
        if not his:
            continue
        hi = min(his)
        if hi <= lo:
            continue
        covered = True
        out += _gap_rows(p, lo, hi, [r for r in hourly if r["phase"] == p.id], gap_hours, alpha)
        cells = [r for r in enrolled if r["phase"] == p.id]
        out += _volume_rows(p, cells, drop_threshold, cell_alpha)
    exposure = [p for p in phases if p.kind == "exposure" and p.start is not None]
    if exposure and not covered and window.cutoff is not None and window.ended is None:
        out.append(_nothing_in_window(exposure, window))
    return sorted(out, key=lambda r: (r.phase, r.start, r.kind, r.arm or ""))


def _nothing_in_window(exposure: Sequence[Phase], window: Window) -> CompletenessRow:
    """The finding when the analysed window holds no exposure at all (nothing was compared)."""
    assert window.cutoff is not None
    start = window.since if window.since is not None else window.cutoff
    first, last = exposure[0], exposure[-1]
    spans = f"{first.start.isoformat() if first.start else '…'} to " + (
        last.end.isoformat() if last.end is not None else "open"
    )
    return CompletenessRow(
        "coverage",
        first.id,
        min(start, window.cutoff),
        window.cutoff,
        None,
        f"coverage: all arms: the analysed window "
        f"[{window.since.isoformat() if window.since is not None else '…'}, "
        f"{window.cutoff.isoformat()}) holds none of the experiment's exposure ({spans}); nothing "
        "was compared — widen since/until or lower late_hours",
    )


def _gap_rows(
    phase: Phase,
    lo: datetime,
    hi: datetime,
    rows: Sequence[Mapping[str, Any]],
    gap_hours: float,
    alpha: float,
) -> list[CompletenessRow]:
    """Runs of empty whole clock hours in ``[lo, hi)``, overall then per arm."""
    first = _ceil_hour(lo)
    n_bins = int((hi - first) / _HOUR)  # whole hours only
    if n_bins <= 0:
        return []
    min_run = max(1, math.ceil(gap_hours - 1e-9))
    arms = sorted(a for a, share in phase.allocation.items() if share > 0)
    counts: dict[str | None, list[int]] = {a: [0] * n_bins for a in [None, *arms]}
    units: dict[str | None, int] = dict.fromkeys([None, *arms], 0)
    for r in rows:
        i = int((_aware(r["hour"]) - first) / _HOUR)
        if 0 <= i < n_bins:
            for key in (None, r["arm"]) if r["arm"] in counts else (None,):
                counts[key][i] += int(r["n"])
                units[key] += int(r.get("units", r["n"]))
    out: list[CompletenessRow] = []
    overall: list[tuple[int, int]] = []
    for arm, series in counts.items():
        rate = units[arm] / n_bins  # active units per hour
        for i, j in _empty_runs(series, min_run):
            if arm is not None and any(a <= i and j <= b for a, b in overall):
                continue  # inside an overall gap: said once
            hours = j - i
            if rate > 0 and math.exp(-rate * hours) >= alpha / n_bins:
                continue  # a sparse series: this many empty hours are not unusual
            if arm is None:
                overall.append((i, j))
            start, end = first + i * _HOUR, first + j * _HOUR
            kind = "coverage" if i == 0 or j == n_bins else "gap"
            who = "all arms" if arm is None else f"arm {arm}"
            what = (
                "no events at all"
                if hours == n_bins
                else "the export starts late"
                if i == 0
                else _stops_early(phase, arm, hi)
                if kind == "coverage"
                else f"{hours} empty hour(s)"
            )
            out.append(
                CompletenessRow(
                    kind,
                    phase.id,
                    start,
                    end,
                    arm,
                    f"{kind}: {who}, phase {phase.id}: no events in "
                    f"[{start.isoformat()}, {end.isoformat()}) ({what}; {rate:.3g} active units/h "
                    f"on average in the window [{lo.isoformat()}, {hi.isoformat()})); check "
                    "the logging and the export",
                )
            )
    return out


def _stops_early(phase: Phase, arm: str | None, hi: datetime) -> str:
    """Why a phase's events stop before its window's end: the export, or — while the ledger
    says the phase still runs at ``hi`` — just as likely an unrecorded rollback or stop."""
    if phase.end is not None and phase.end < hi:  # pragma: no cover - hi is min(end, cutoff)
        return "the export stops early"
    if arm is None:
        return (
            "the export stops early, or the experiment was rolled back or stopped without a "
            "ledger entry (its arm tags stop while the ledger says it runs): check the export's "
            "newest events, and record a rollback with `promptstate ledger record rollback`"
        )
    return (
        f"arm {arm}'s tags stop while the ledger says the phase runs: an unrecorded rollback "
        "(events served by the control revision only) or the arm's logging stopping, more "
        "likely than the export stopping early; record a rollback with `promptstate ledger "
        "record rollback`, or fix the logging"
    )


def _empty_runs(series: Sequence[int], min_run: int) -> list[tuple[int, int]]:
    """``[i, j)`` index runs of zeros at least ``min_run`` long."""
    runs, i = [], None
    for k, v in enumerate([*series, 1]):
        if v == 0 and i is None:
            i = k
        elif v != 0 and i is not None:
            if k - i >= min_run:
                runs.append((i, k))
            i = None
    return runs


def _ceil_hour(at: datetime) -> datetime:
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + _HOUR


def _volume_rows(
    phase: Phase, rows: Sequence[Mapping[str, Any]], drop_threshold: float, alpha: float
) -> list[CompletenessRow]:
    """Per UTC day: an arm's newly enrolled units against what the others and the allocation
    imply (shortfall above ``drop_threshold`` and one-sided binomial ``p < alpha``, ``alpha``
    already divided by the number of cells)."""
    from scipy import stats

    days: dict[datetime, dict[str, int]] = {}
    for r in rows:
        days.setdefault(_aware(r["day"]), {})[r["arm"]] = int(r["n"])
    out: list[CompletenessRow] = []
    for day in sorted(days):
        cell = days[day]
        total = sum(cell.values())
        for arm, share in sorted(phase.allocation.items()):
            if not 0 < share < 1:
                continue
            n_arm = cell.get(arm, 0)
            rest = total - n_arm
            implied = share / (1 - share) * rest
            if implied <= 0 or n_arm >= (1 - drop_threshold) * implied:
                continue
            pvalue = float(stats.binom.cdf(n_arm, total, share))
            if pvalue >= alpha:
                continue
            start = max(day, phase.start) if phase.start is not None else day
            end = day + timedelta(days=1)
            end = min(end, phase.end) if phase.end is not None else end
            out.append(
                CompletenessRow(
                    "volume",
                    phase.id,
                    start,
                    end,
                    arm,
                    f"volume: arm {arm}, phase {phase.id}, [{start.isoformat()}, "
                    f"{end.isoformat()}): {n_arm} newly enrolled units, "
                    f"{1 - n_arm / implied:.0%} below the {implied:.0f} that allocation "
                    f"{share:g} and the other arms' {rest} imply (binomial p={pvalue:.2g}); "
                    "check the arm's logging",
                )
            )
    return out
