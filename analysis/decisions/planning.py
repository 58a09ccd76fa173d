"""Plan the next test from history: :func:`plan_test` and ``promptstate plan`` (issue 22, item 6).

"How long must the re-test of the fixed revision run?" The answer needs the standard error of
the estimator that will be used — its time strata, the clustering by unit, the pre-period
adjustment — on this product's traffic, which no textbook formula has. So the plan **replays
the real estimator on history** (an A/A test): every unit of a historical export (a pre-period,
or a finished experiment whose tags are ignored) is hashed into the planned arms, the events of
the first ``pre_days`` stay untagged (the pre-period the adjustment reads), and from then on
every event carries the arm of its unit under the planned allocation or ramp schedule. The
public :func:`~analysis.metrics.analyze` then runs on the first 1, 2, …, D days of that replay.
With no treatment, each day's clean combined estimate has the standard error the real test
will have after as many days — and the units it counts are the units that will have arrived.

Estimand of the plan: for each metric, ``days`` is the first replay day ``d`` whose minimum
detectable effect ``MDE(d) = (z_{1−α/2} + z_{power}) · SE(d)`` (two-sided test at ``α``; with
``sequential=True`` the always-valid test's :func:`~analysis.stats.sequential.sequential_mde`)
is at most the target ``mde`` (absolute, or a share of the replay's control value);
``units_per_arm`` are the units each arm holds then. When the history is too short, the last
replay day's SE is extrapolated with ``SE ∝ 1/√units`` and units growing at the rate of the
replay's second half (said in a note). With a ramp schedule (``"0.1:2d,0.5"``: treatment at 10%
for two days, then 50%) the replay follows the schedule, and the power at the end of each step
is ``Φ(mde/SE(d) − z_{1−α/2})``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis._table import Table
from analysis.errors import PromptstateError

if TYPE_CHECKING:
    from analysis.metrics.definitions import Metric

__all__ = ["PlanRow", "ReplayRow", "StepRow", "TestPlan", "parse_schedule", "plan_test"]

#: The replay's experiment id, prompt and arm revisions (never the user's).
_EXPERIMENT = "aa-replay"
_SALT = 20_221
_BUCKET = "__plan_bucket"
_DAY = timedelta(days=1)


class ReplayRow(NamedTuple):
    """One metric after ``day`` days of the A/A replay.

    Attributes:
        metric: Metric name.
        day: Days of the replay.
        units: Distinct units active in the replay so far (a ramp-moved unit once).
        units_per_arm: The smallest arm's units with clean events (a ramp-moved unit counts in
            each arm it was in).
        control_mean: The control arm's value.
        se: Standard error of the clean combined effect (treatment − control).
        mde: The effect detectable at ``power`` (two-sided ``α``; always-valid when sequential).
        effect: The A/A estimate (truth 0: a check, not a number to read).
    """

    metric: str
    day: int
    units: int
    units_per_arm: int
    control_mean: float
    se: float
    mde: float
    effect: float


class PlanRow(NamedTuple):
    """What one metric needs.

    Attributes:
        metric: Metric name.
        target: The minimum detectable effect asked for, in the metric's unit.
        target_text: As given (``"5%"`` of the control value, or the number).
        days: Days to reach it (fractional when extrapolated).
        units: Units then, all arms.
        extrapolated: Whether ``days`` lies beyond the replay.
    """

    metric: str
    target: float
    target_text: str
    days: float
    units: float
    extrapolated: bool


class StepRow(NamedTuple):
    """Power at the end of one ramp step.

    Attributes:
        step: Step number (1, 2, …).
        share: Treatment's share during the step.
        end_day: Day the step ends (the last step: the planned ``days``).
        metric: Metric name.
        power: Power to detect the target at the step's end.
    """

    step: int
    share: float
    end_day: float
    metric: str
    power: float


@dataclass(frozen=True)
class TestPlan:
    """The result of :func:`plan_test`.

    Attributes:
        days: Days the test must run so that every metric reaches its target (the largest).
        units_per_arm: Units per arm then.
        metrics: One :class:`PlanRow` per metric.
        replay: The A/A replay, one :class:`ReplayRow` per metric × day.
        steps: Power at the end of each ramp step (without a schedule: one step, the whole
            test at the planned allocation).
        options: What the plan was made with (alpha, power, allocation, schedule, pre_days).
        notes: What the reader should know (extrapolation, the replay's window).
    """

    __test__ = False  # not a pytest class

    days: float
    units_per_arm: Mapping[str, int]
    metrics: Table
    replay: Table
    steps: Table
    options: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: ``schema_version``, ``days``, ``units_per_arm``, the tables."""
        from analysis.errors import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "days": self.days,
            "units_per_arm": dict(self.units_per_arm),
            "metrics": self.metrics.to_records(),
            "steps": self.steps.to_records(),
            "replay": self.replay.to_records(),
            "options": dict(self.options),
            "notes": list(self.notes),
        }

    def _head(self) -> str:
        units = ", ".join(f"{a}: {n:,}" for a, n in self.units_per_arm.items())
        return f"run {self.days:.1f} days ({units} units)"

    def __str__(self) -> str:
        parts = [self._head(), str(self.metrics)]
        if len(self.steps):
            parts.append(str(self.steps))
        parts.append(str(self.replay))
        parts += [f"note: {n}" for n in self.notes]
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        """Markdown: the answer, the per-metric table, the steps, the replay, the notes."""
        from analysis._render import md_text

        parts = [f"**{md_text(self._head())}**", self.metrics.to_markdown()]
        if len(self.steps):
            parts.append(self.steps.to_markdown())
        parts.append(self.replay.to_markdown())
        parts += [f"- note: {md_text(n)}" for n in self.notes]
        return "\n\n".join(parts)

    def _repr_html_(self) -> str:
        import html

        body = "".join(t._repr_html_() for t in (self.metrics, self.steps, self.replay) if len(t))
        return f"<div><h4>{html.escape(self._head())}</h4>{body}</div>"


_STEP = re.compile(r"^\s*(\d*\.?\d+)\s*(?::\s*(\d*\.?\d+)\s*([dh]))?\s*$")


def parse_schedule(text: str) -> list[tuple[float, float | None]]:
    """``"0.1:2d,0.5"`` → ``[(0.1, 2.0), (0.5, None)]``: treatment shares and step lengths in
    days (``h`` for hours); the last step has no length (it runs until the end).

    Raises:
        PromptstateError: a malformed step, a share outside (0, 1), or a length on the last
            step missing elsewhere.
    """
    steps: list[tuple[float, float | None]] = []
    parts = text.split(",")
    for k, part in enumerate(parts):
        m = _STEP.match(part)
        if m is None:
            raise PromptstateError(
                f"--schedule {text!r}: step {k + 1} ({part.strip()!r}) is not SHARE[:LENGTH(d|h)], "
                "e.g. '0.1:2d,0.5' (10% for two days, then 50%)"
            )
        share = float(m.group(1))
        if not 0 < share < 1:
            raise PromptstateError(f"--schedule {text!r}: share {share} must lie in (0, 1)")
        length = None
        if m.group(2) is not None:
            length = float(m.group(2)) / (24.0 if m.group(3) == "h" else 1.0)
            if length <= 0:
                raise PromptstateError(f"--schedule {text!r}: step {k + 1} has no length")
        last = k == len(parts) - 1
        if last and length is not None:
            raise PromptstateError(
                f"--schedule {text!r}: the last step runs until the end; give it no length"
            )
        if not last and length is None:
            raise PromptstateError(f"--schedule {text!r}: step {k + 1} needs a length, e.g. 2d")
        steps.append((share, length))
    return steps


def _allocation(
    allocation: Mapping[str, float] | None, schedule: Sequence[tuple[float, float | None]]
) -> dict[str, float]:
    """The final allocation (arm → share), checked."""
    if allocation and schedule:
        raise PromptstateError("give --allocation or --schedule, not both")
    if schedule:
        share = schedule[-1][0]
        return {"control": 1 - share, "treatment": share}
    alloc = dict(allocation or {"control": 0.5, "treatment": 0.5})
    if len(alloc) < 2:
        raise PromptstateError(
            "--allocation: give at least two arms, e.g. control=0.5 treatment=0.5"
        )
    bad = [a for a, s in alloc.items() if not (isinstance(s, (int, float)) and 0 < s < 1)]
    if bad:
        raise PromptstateError(f"--allocation {bad[0]}={alloc[bad[0]]!r}: a share in (0, 1)")
    if abs(sum(alloc.values()) - 1) > 1e-9:
        raise PromptstateError(
            f"--allocation: shares sum to {sum(alloc.values()):g}; they must sum to 1"
        )
    return alloc


def _ledger_text(
    unit: str,
    arms: Sequence[str],
    start: datetime,
    phases: Sequence[tuple[datetime, dict[str, float]]],
) -> str:
    """The replay's ledger: one prompt, one revision per arm, the start and each ramp."""
    import json

    revisions: dict[str, dict[str, Any]] = {f"rev-{i}": {} for i in range(len(arms))}
    exp = {
        "prompt": "aa-replay",
        "unit": unit,
        "arms": {a: f"rev-{i}" for i, a in enumerate(arms)},
        "control": arms[0],
    }
    transitions: list[dict[str, Any]] = [
        {"at": (start - timedelta(days=365)).isoformat(), "action": "deploy",
         "prompt": "aa-replay", "revision": "rev-0"},
    ]  # fmt: skip
    for k, (at, alloc) in enumerate(phases):
        transitions.append(
            {"at": at.isoformat(), "action": "start" if k == 0 else "ramp",
             "experiment": _EXPERIMENT, "allocation": alloc}
        )  # fmt: skip
    doc = {
        "version": 1,
        "prompts": {"aa-replay": {"revisions": revisions}},
        "experiments": {_EXPERIMENT: exp},
        "transitions": transitions,
    }
    return json.dumps(doc)


def _z(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def plan_test(
    events: Any,
    ledger: Any = None,
    *,
    metrics: Sequence[Metric],
    mde: float | str,
    alpha: float = 0.05,
    power: float = 0.8,
    allocation: Mapping[str, float] | None = None,
    schedule: str | None = None,
    pre_days: float | None = None,
    sequential: bool = False,
    columns: Mapping[str, str] | None = None,
    block_hours: float | None = 6.0,
) -> TestPlan:
    """Size the next test by replaying the real estimator on history (see the module doc).

    Args:
        events: A historical export (anything :func:`~analysis.events.loading.load_events`
            reads); its experiment and arm tags are ignored.
        ledger: The ledger (path or object) naming the unit column (optional: ``user_id``).
        metrics: The metrics the test will read (with their adjustment).
        mde: The effect to detect: absolute (``0.05``) or relative to the control value
            (``"5%"``), for every metric.
        alpha: Two-sided level.
        power: Power wanted.
        allocation: Arm → share (the first arm is the control; default 50/50).
        schedule: Treatment's ramp, ``"0.1:2d,0.5"`` (two arms: control and treatment).
        pre_days: Days at the start of the history kept as the pre-period (default: a third of
            the history, at most 7).
        sequential: Size for always-valid monitoring (``analyze --sequential``).
        columns: Column map for loading ``events``.
        block_hours: The analysis' time strata (as ``analyze``).

    Returns:
        A :class:`TestPlan`.

    Raises:
        PromptstateError: bad options, a history too short for one replay day, no metric.
    """
    import narwhals as nw

    from analysis.decisions.recommendation import check_mde
    from analysis.events import _engines
    from analysis.events.labelling import materialized, split
    from analysis.events.loading import default_unit, load_events
    from analysis.ledger import load_ledger
    from analysis.ledger.model import Ledger
    from analysis.metrics import analyze
    from analysis.metrics.definitions import Quantile, parse_margin

    if not 0 < alpha < 1 or not 0 < power < 1:
        raise PromptstateError(f"alpha={alpha}, power={power}: each must lie in (0, 1)")
    if not metrics:
        raise PromptstateError("plan: give at least one metric (--metrics FILE)")
    quantiles = [m.label for m in metrics if isinstance(m, Quantile)]
    metrics = [m for m in metrics if not isinstance(m, Quantile)]
    if not metrics:
        raise PromptstateError(
            f"plan: {', '.join(quantiles)}: quantile metrics are not planned (their SE has no "
            "1/√units law to extrapolate); give a moment metric (mean, ratio, proportion)"
        )
    check_mde(mde)
    target_value, relative = parse_margin(mde, where="--mde")
    steps = parse_schedule(schedule) if schedule else []
    alloc = _allocation(allocation, steps)
    arms = list(alloc)
    led = ledger if isinstance(ledger, Ledger) or ledger is None else load_ledger(ledger)
    unit = default_unit(led) if led is not None else "user_id"
    loaded = load_events(events, columns=columns, unit=unit)
    frame = loaded.frame
    span = _engines.collect_all(
        [frame.select(nw.col("ts").min().alias("t0"), nw.col("ts").max().alias("t1"))]
    )[0][0]
    t_first, t_last = _utc(span["t0"]), _utc(span["t1"])
    history = (t_last - t_first) / _DAY
    pre = min(7.0, history / 3) if pre_days is None else float(pre_days)
    if pre < 0 or not math.isfinite(pre):
        raise PromptstateError(f"pre_days={pre_days}: a number of days >= 0")
    start = t_first + timedelta(days=pre)
    replay_days = int((t_last - start) / _DAY)
    if replay_days < 1:
        raise PromptstateError(
            f"{loaded.report.source}: the history spans {history:.2f} days; with a {pre:g}-day "
            "pre-period it leaves less than one day to replay (give a longer export or "
            "--pre-days 0)"
        )
    # the allocation in force from each instant (a ramp schedule: one phase per step)
    phases: list[tuple[datetime, dict[str, float]]] = []
    at = start
    for share, length in steps or [(alloc[arms[-1]], None)]:
        phase_alloc = {"control": 1 - share, "treatment": share} if steps else alloc
        phases.append((at, phase_alloc))
        if length is not None:
            at = at + timedelta(days=length)
    end = start + timedelta(days=replay_days)
    tagged = _replay_frame(frame, unit, arms, phases, start, end, _engines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "aa-replay.json"
        path.write_text(
            _ledger_text(unit, arms, start, [p for p in phases if p[0] < end]), encoding="utf-8"
        )
        res = split(tagged, load_ledger(path), _EXPERIMENT)
        arrived = _arrived(frame, unit, start, replay_days, _engines)
        rows = _replay(res, metrics, alpha, power, sequential, start, replay_days, block_hours,
                       analyze, materialized, arrived)  # fmt: skip
    plan = _plan(rows, metrics, target_value, relative, str(mde), alpha, power, sequential,
                 alloc, steps, replay_days, pre,
                 {"schedule": schedule, "pre_days": pre, "start": start.isoformat()})  # fmt: skip
    if quantiles:
        left = f"{', '.join(quantiles)}: quantile metric(s) left out (not planned)"
        return dataclasses.replace(plan, notes=(*plan.notes, left))
    return plan


def _utc(value: Any) -> datetime:
    out = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return out.replace(tzinfo=UTC) if out.tzinfo is None else out.astimezone(UTC)


def _replay_frame(
    frame: Any,
    unit: str,
    arms: Sequence[str],
    phases: Sequence[tuple[datetime, dict[str, float]]],
    start: datetime,
    end: datetime,
    engines: Any,
) -> Any:
    """The history with the replay's tags: before ``start`` untagged, in ``[start, end)`` each
    event tagged with its unit's arm under the allocation in force (bucket layout: a ramp moves
    units only from the shrinking control into the growing treatment), after ``end`` dropped.
    The export's own tags and revision columns are replaced or left out."""
    import narwhals as nw

    drop = [
        c
        for c in ("experiment_id", "arm", "revision_id", "response_revision_id")
        if c in frame.collect_schema().names()
    ]
    base = frame.filter(nw.col("ts") < end).drop(*drop)
    with_bucket = nw.from_native(engines.with_unit_bucket(base, unit, _BUCKET, _SALT))
    # arms laid out on [0, 1) with the control last: a growing treatment share takes buckets
    # from the control only (a minimal-movement ramp, as a hash-bucket assignment service does)
    order = [*arms[1:], arms[0]]
    arm_expr: Any = None
    for k, (at, alloc) in enumerate(phases):
        until = phases[k + 1][0] if k + 1 < len(phases) else end
        in_phase = (nw.col("ts") >= at) & (nw.col("ts") < until)
        edge = 0.0
        for a in order:
            edge = 1.0 if a == order[-1] else edge + float(alloc.get(a, 0.0))
            cond = in_phase & (nw.col(_BUCKET) < edge)
            arm_expr = (nw.when(cond) if arm_expr is None else arm_expr.when(cond)).then(nw.lit(a))
    tagged_window = nw.col("ts") >= start
    return with_bucket.with_columns(
        nw.when(tagged_window).then(nw.lit(_EXPERIMENT)).alias("experiment_id"),
        nw.when(tagged_window).then(arm_expr).alias("arm"),
    ).drop(_BUCKET)


def _arrived(frame: Any, unit: str, start: datetime, days: int, engines: Any) -> list[int]:
    """Distinct units active in the first 1, 2, …, ``days`` days from ``start`` (a unit counts
    once, on the day of its first event: one small aggregate)."""
    import narwhals as nw

    end = start + timedelta(days=days)
    first = (
        frame.filter((nw.col("ts") >= start) & (nw.col("ts") < end))
        .group_by(unit)
        .agg(nw.col("ts").min().alias("__first"))
    )
    binned = engines.with_bins_since(first, "__first", start, _DAY, "__day")
    counts = engines.collect_all([binned.group_by("__day").agg(nw.len().alias("n"))])[0]
    per_day = {int(r["__day"]): int(r["n"]) for r in counts}
    out, total = [], 0
    for d in range(days):
        total += per_day.get(d, 0)
        out.append(total)
    return out


def _replay(
    res: Any,
    metrics: Sequence[Metric],
    alpha: float,
    power: float,
    sequential: bool,
    start: datetime,
    days: int,
    block_hours: float | None,
    analyze: Any,
    materialized: Any,
    arrived: Sequence[int],
) -> list[ReplayRow]:
    """The clean combined row of every metric after 1, 2, …, ``days`` days of the replay
    (``arrived``: the distinct units active by the end of each day)."""
    from analysis.stats.sequential import sequential_mde

    z = _z(1 - alpha / 2) + _z(power)
    out: list[ReplayRow] = []
    with materialized(res) as stored:
        for d in range(1, days + 1):
            result = analyze(
                stored,
                metrics=list(metrics),
                alpha=alpha,
                power=power,
                explain=False,
                recovery=False,
                completeness=False,
                late_hours=0.0,
                until=start + timedelta(days=d),
                block_hours=block_hours,
                materialize=False,
            )
            for m in metrics:
                e = result.effect(m.label)
                se = float(e.se)
                mde = (
                    sequential_mde(se, alpha=alpha, power=power)
                    if sequential and math.isfinite(se) and se > 0
                    else z * se
                )
                out.append(
                    ReplayRow(
                        metric=m.label,
                        day=d,
                        units=int(arrived[d - 1]),
                        units_per_arm=int(min(e.n_control, e.n_arm)),
                        control_mean=float(e.control_mean),
                        se=se,
                        mde=mde,
                        effect=float(e.effect),
                    )
                )
    return out


def _arrivals(curve: Sequence[ReplayRow]) -> float:
    """New units per day over the replay's second half (arrivals slow as the same units come
    back: the late rate extrapolates conservatively); one replay day: its average."""
    last = curve[-1]
    half = curve[(len(curve) - 1) // 2]
    rate = (last.units - half.units) / (last.day - half.day) if last.day > half.day else 0.0
    return rate if rate > 0 else last.units / last.day


def _plan(
    rows: list[ReplayRow],
    metrics: Sequence[Metric],
    target_value: float,
    relative: bool,
    target_text: str,
    alpha: float,
    power: float,
    sequential: bool,
    alloc: Mapping[str, float],
    steps: Sequence[tuple[float, float | None]],
    days: int,
    pre: float,
    extra: Mapping[str, Any],
) -> TestPlan:
    """Days and units per metric from the replay (extrapolated past its end)."""
    from scipy.special import ndtr

    from analysis.stats.sequential import sequential_mde

    z_alpha = _z(1 - alpha / 2)
    plan_rows: list[PlanRow] = []
    step_rows: list[StepRow] = []
    notes: list[str] = [
        f"A/A replay of the real estimator: {pre:.2f} days of pre-period, then {days} day(s) with "
        "units hashed into the planned arms"
    ]
    curves: dict[str, tuple[list[ReplayRow], float]] = {}
    for m in metrics:
        curve = [r for r in rows if r.metric == m.label]
        last = curve[-1]
        target = target_value * abs(last.control_mean) if relative else target_value
        if not (math.isfinite(target) and target > 0):
            raise PromptstateError(
                f"--mde {target_text}: {m.label}'s control value in the replay is "
                f"{last.control_mean!r}; give an absolute --mde"
            )
        curves[m.label] = (curve, target)
        hit = next((r for r in curve if math.isfinite(r.mde) and r.mde <= target), None)
        if hit is not None:
            plan_rows.append(
                PlanRow(m.label, target, target_text, float(hit.day), hit.units, False)
            )
            continue
        # extrapolate: SE ∝ 1/sqrt(units), units growing at the replay's late arrival rate
        ratio_mde = last.mde / last.se if last.se > 0 else math.nan
        need_se = target / ratio_mde
        need_units = last.units * (last.se / need_se) ** 2
        rate = _arrivals(curve)
        extra_days = (need_units - last.units) / rate if rate > 0 else math.inf
        plan_rows.append(
            PlanRow(m.label, target, target_text, last.day + extra_days, need_units, True)
        )
        notes.append(
            f"{m.label}: the target needs more than the history's {days} replay day(s); "
            f"extrapolated with SE ∝ 1/√units and {rate:,.0f} new units per day"
        )
    worst = max(plan_rows, key=lambda r: r.days)
    total = worst.units
    units_per_arm = {a: round(total * s) for a, s in alloc.items()}

    def se_at(curve: list[ReplayRow], day: float) -> float:
        within = [r for r in curve if r.day <= day]
        if within and abs(within[-1].day - day) < 1e-9:
            return within[-1].se
        last = curve[-1]
        rate = _arrivals(curve)
        if day <= last.day:  # between replay days: the day before (conservative)
            return (within[-1] if within else curve[0]).se
        units = last.units + rate * (day - last.day)
        return last.se * math.sqrt(last.units / units)

    # without a schedule the test is one step at the planned allocation: its power at the
    # planned days (with whole days, at least the power asked for)
    treatment = [a for a in alloc if a != next(iter(alloc))]
    one = [(float(alloc[treatment[-1]]), None)] if treatment else []
    if steps or one:
        day = 0.0
        for k, (share, length) in enumerate(steps or one, 1):
            day = day + length if length is not None else max(worst.days, day)
            for label, (curve, target) in curves.items():
                se = se_at(curve, day)
                if sequential:
                    b = sequential_mde(se, alpha=alpha, power=0.5) / se  # the boundary
                    pw = float(ndtr(target / se - b))
                else:
                    pw = float(ndtr(target / se - z_alpha))
                step_rows.append(StepRow(k, share, day, label, pw))
    if sequential:
        notes.append(
            "sized for always-valid monitoring (analyze --sequential): detectable effects from "
            "sequential_mde; a fixed-horizon test needs about half the units"
        )
    return TestPlan(
        days=float(worst.days),
        units_per_arm=units_per_arm,
        metrics=Table(tuple(plan_rows), PlanRow._fields, title="what each metric needs"),
        replay=Table(tuple(rows), ReplayRow._fields, title="A/A replay of the estimator"),
        steps=Table(tuple(step_rows), StepRow._fields, title="power at the end of each ramp step"),
        options={
            "alpha": alpha,
            "power": power,
            "allocation": dict(alloc),
            "sequential": sequential,
            **extra,
        },
        notes=tuple(notes),
    )
