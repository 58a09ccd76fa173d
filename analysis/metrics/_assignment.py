"""Assignment checks of one experiment: sample-ratio mismatch and ramp-aware crossover.

Two halves, which do not mix:

* data — :func:`assignment_plan` builds one lazy narwhals aggregate (engine-neutral, nothing is
  collected) from the labelled events: one row per (enrollment phase, first arm, arm pattern)
  with its number of units;
* statistics — :func:`assignment_checks` turns the collected rows into the SRM rows (Pearson
  chi-square per exposure phase on *every* newly enrolled unit, counted in the arm of its first
  exposure, :mod:`analysis.stats.srm`), the crossover rows (arm changes judged against what the
  ledger's ramps allow, :mod:`analysis.stats.crossover`) and the alert lines.

Which events count: those tagged with the experiment and an arm, in an exposure phase, labelled
anything but ``outside_window`` and ``after_end`` (so ``crossover``, ``served_mismatch``,
``stale_cache`` and ``carryover`` events count: a unit's assignment does not depend on how its
turns were served).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import narwhals as nw

from analysis.metrics.results import SRMRow
from analysis.stats.crossover import MIXED, CrossoverCheck, CrossoverRow, crossover_check
from analysis.stats.srm import srm_test

if TYPE_CHECKING:  # pragma: no cover
    from analysis.ledger import Phase

__all__ = [
    "ASSIGNMENT",
    "ASSIGNMENT_LOOKS",
    "AssignmentChecks",
    "assignment_checks",
    "assignment_plan",
    "pattern_column",
    "srm_first_looks",
]

#: Key of the aggregate in the plan returned by :func:`assignment_plan`.
ASSIGNMENT = "assignment"
#: Key of the newly enrolled units by the stratum of their first exposure (sequential looks).
ASSIGNMENT_LOOKS = "assignment_looks"

#: Labels whose events say nothing about the unit's assignment during the experiment.
_NOT_EXPOSED = ("outside_window", "after_end")


def pattern_column(phase: int) -> str:
    """Column of the aggregate holding the units' arm in exposure phase ``phase``."""
    return f"arm_{phase}"


# -- data ---------------------------------------------------------------------------------------


def assignment_plan(
    frame: nw.LazyFrame[Any],
    *,
    unit: str,
    experiment_id: str,
    exposure_phases: Iterable[int],
    arms: Iterable[str],
    starts: Sequence[datetime] | None = None,
) -> dict[str, nw.LazyFrame[Any]]:
    """The lazy aggregate the assignment checks read, on ``frame``'s engine.

    Per unit with a tagged exposure (see the module docstring): its enrollment phase (the phase
    of its first exposure), its first arm (the arm of its earliest event; ties go to the
    smallest arm) and its arm pattern (per exposure phase its single arm, ``"*"`` with two arms
    within the phase, null without an exposure in it). The units are then counted per distinct
    combination, a table of at most a few hundred rows.

    Args:
        frame: The labelled (keyed) events: columns ``unit``, ``ts``, ``experiment_id``,
            ``arm``, ``phase``, ``contamination``.
        unit: The unit key column.
        experiment_id: The experiment.
        exposure_phases: Its exposure phase ids.
        arms: Its arms (every arm tag of the experiment is one of them).
        starts: The time strata's starts (a sequential analysis): also ``ASSIGNMENT_LOOKS``,
            the newly enrolled units per ``phase`` × ``first_arm`` × ``stratum`` of the first
            exposure.

    Returns:
        ``{ASSIGNMENT: lazy frame}`` with columns ``phase`` (enrollment), ``first_arm``,
        ``arm_<p>`` for each exposure phase ``p`` (:func:`pattern_column`) and ``n``.
    """
    phases = sorted(set(exposure_phases))
    arm_list = sorted(set(arms))
    if not phases or not arm_list:
        raise ValueError("assignment_plan needs at least one exposure phase and one arm")
    ts_cols = [f"__ts{i}" for i in range(len(arm_list))]
    events = frame.filter(
        (nw.col("experiment_id") == experiment_id)
        & ~nw.col("arm").is_null()
        & nw.col("phase").is_in(phases)
        & ~nw.col("contamination").is_in(list(_NOT_EXPOSED))
    ).select(
        nw.col(unit),
        nw.col("phase"),
        *[
            nw.when(nw.col("arm") == a).then(nw.col("ts")).alias(c)
            for a, c in zip(arm_list, ts_cols, strict=True)
        ],
        *[nw.when(nw.col("phase") == p).then(nw.col("arm")).alias(f"__a{p}") for p in phases],
    )
    per_unit = events.group_by(unit).agg(
        nw.col("phase").min(),
        *[nw.col(c).min() for c in ts_cols],
        *[nw.col(f"__a{p}").min().alias(f"__lo{p}") for p in phases],
        *[nw.col(f"__a{p}").max().alias(f"__hi{p}") for p in phases],
    )
    first_ts = nw.min_horizontal(*[nw.col(c) for c in ts_cols])
    first_arm: Any = None
    for a, c in zip(arm_list, ts_cols, strict=True):  # smallest arm first: it wins ties
        cond = nw.col(c) == first_ts
        first_arm = (nw.when(cond) if first_arm is None else first_arm.when(cond)).then(nw.lit(a))
    patterns = [
        nw.when(nw.col(f"__lo{p}") == nw.col(f"__hi{p}"))
        .then(nw.col(f"__lo{p}"))
        .otherwise(nw.when(~nw.col(f"__lo{p}").is_null()).then(nw.lit(MIXED)))
        .alias(pattern_column(p))
        for p in phases
    ]
    keys = ["phase", "first_arm", *[pattern_column(p) for p in phases]]
    table = per_unit.select(nw.col("phase"), first_arm.alias("first_arm"), *patterns)
    out = {ASSIGNMENT: table.group_by(*keys).agg(nw.len().alias("n"))}
    if starts is not None:
        from analysis.metrics.aggregation import stratum_expr

        # the newly enrolled units by the time stratum of their first exposure: the SRM at
        # each look of a sequential analysis
        looks = per_unit.with_columns(first_ts.alias("__first")).select(
            nw.col("phase"),
            first_arm.alias("first_arm"),
            stratum_expr(starts, "__first").alias("stratum"),
        )
        out[ASSIGNMENT_LOOKS] = looks.group_by("phase", "first_arm", "stratum").agg(
            nw.len().alias("n")
        )
    return out


# -- statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssignmentChecks:
    """The sample-ratio and crossover checks of one experiment.

    Attributes:
        srm: Per exposure phase × arm: every unit first enrolled in the phase, in the arm of its
            first exposure, against the phase's allocation.
        crossover: Arm changes between (and within) exposure phases with their verdicts
            (:class:`~analysis.stats.crossover.CrossoverRow`).
        ramped: Whether the allocation changed between exposure phases (ramp-aware crossover
            check); otherwise the flat share rule decided.
        crossed_units: Units tagged with more than one arm across the exposure phases.
        enrolled_units: Units with a tagged exposure.
        alerts: One line per sample-ratio mismatch and per unexpected crossover group.
    """

    srm: tuple[SRMRow, ...]
    crossover: tuple[CrossoverRow, ...]
    ramped: bool
    crossed_units: int
    enrolled_units: int
    alerts: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether no check raised an alert."""
        return not self.alerts


def assignment_checks(
    collected: Mapping[str, Sequence[Mapping[str, Any]]],
    phases: Sequence[Phase],
    *,
    srm_threshold: float = 0.001,
    crossover_threshold: float = 0.02,
    sequential: bool = False,
    burn_in: int = 100,
) -> AssignmentChecks:
    """SRM and crossover checks from the collected :func:`assignment_plan` aggregate.

    Args:
        collected: ``{ASSIGNMENT: rows}`` (other keys are ignored), rows as dicts.
        phases: The experiment's phases (only the exposure phases are read).
        srm_threshold: Sample-ratio mismatch, and an unexpected crossover group, at
            ``p < srm_threshold``.
        crossover_threshold: With ramps, the tolerated share of units with a move no ramp
            explains (per phase pair and arm) or with two arms within a phase; without ramps,
            the largest share of crossover units among enrolled units.
        sequential: The SRM p-value of each phase is the always-valid one of the sequential
            Dirichlet-multinomial test (:func:`analysis.stats.srm_sequential.srm_sequential`,
            Lindon & Malek 2022) at this look — valid however often the check is repeated —
            and a phase decides only once ``burn_in`` units per arm were expected in it (the
            ``statistic`` column stays the chi-square, for reference).
        burn_in: See ``sequential``.
    """
    exposure = [p for p in phases if p.kind == "exposure"]
    rows = collected[ASSIGNMENT]
    srm = _srm_rows(rows, exposure, srm_threshold, sequential=sequential, burn_in=burn_in)
    patterns = _patterns(rows, [p.id for p in exposure])
    check = crossover_check(
        patterns,
        {p.id: p.allocation for p in exposure},
        threshold=srm_threshold,
        tolerance=crossover_threshold,
    )
    alerts = _srm_alerts(srm, srm_threshold) + _crossover_alerts(
        check, {p.id: p for p in exposure}, srm_threshold, crossover_threshold
    )
    return AssignmentChecks(
        srm=tuple(srm),
        crossover=tuple(check.rows),
        ramped=check.ramped,
        crossed_units=check.crossed,
        enrolled_units=check.enrolled,
        alerts=tuple(alerts),
    )


def _arm(value: Any) -> str | None:
    """A collected pattern value: an arm, ``"*"`` or ``None`` (also pandas' NaN)."""
    return value if isinstance(value, str) else None


def _patterns(
    rows: Sequence[Mapping[str, Any]], phase_ids: Sequence[int]
) -> dict[tuple[str | None, ...], int]:
    out: dict[tuple[str | None, ...], int] = {}
    for r in rows:
        key = tuple(_arm(r[pattern_column(p)]) for p in phase_ids)
        out[key] = out.get(key, 0) + int(r["n"])
    return out


def _srm_rows(
    rows: Sequence[Mapping[str, Any]],
    exposure: Sequence[Phase],
    threshold: float,
    *,
    sequential: bool = False,
    burn_in: int = 100,
) -> list[SRMRow]:
    out: list[SRMRow] = []
    for p in exposure:
        observed: dict[str, int] = {}
        for r in rows:
            arm = _arm(r["first_arm"])
            if arm is not None and int(r["phase"]) == p.id:
                observed[arm] = observed.get(arm, 0) + int(r["n"])
        t = srm_test(observed, p.allocation, threshold=threshold)
        if sequential:
            t = _sequential_srm(t, threshold, burn_in)
        out.extend(
            SRMRow(
                p.id,
                a,
                float(p.allocation.get(a, 0.0)),
                t.observed[a],
                t.expected[a],
                t.statistic,
                t.pvalue,
                t.mismatch,
            )
            for a in t.observed
        )
    return out


def srm_first_looks(
    rows: Sequence[Mapping[str, Any]],
    exposure: Sequence[Phase],
    threshold: float,
    looks: int,
    *,
    burn_in: int = 100,
) -> dict[int, int]:
    """Phase id -> the first look (0-based stratum index) at which its sequential SRM test
    (:func:`_sequential_srm` on the units newly enrolled up to the look) reports a mismatch.

    Args:
        rows: The collected ``ASSIGNMENT_LOOKS`` aggregate (``phase``, ``first_arm``,
            ``stratum``, ``n``).
        exposure: The exposure phases.
        threshold: The SRM threshold.
        looks: Number of looks (strata).
        burn_in: Expected units per arm before a phase may decide.
    """
    out: dict[int, int] = {}
    for p in exposure:
        mine = [r for r in rows if int(r["phase"]) == p.id and _arm(r["first_arm"]) is not None]
        for k in range(looks):
            observed: dict[str, int] = {}
            for r in mine:
                if r["stratum"] is not None and int(r["stratum"]) <= k:
                    arm = str(_arm(r["first_arm"]))
                    observed[arm] = observed.get(arm, 0) + int(r["n"])
            if not observed:
                continue
            t = srm_test(observed, p.allocation, threshold=threshold)
            if _sequential_srm(t, threshold, burn_in).mismatch:
                out[p.id] = k
                break
    return out


def _sequential_srm(t: Any, threshold: float, burn_in: int) -> Any:
    """``t`` with the always-valid p-value of the sequential test at this look (one look: the
    e-value of the counts so far); no mismatch before ``burn_in`` expected units per arm."""
    import numpy as np

    from analysis.stats.srm_sequential import srm_sequential

    arms = list(t.observed)
    total = sum(t.observed.values())
    if sum(1 for a in arms if t.expected[a] > 0) < 2 or total <= 0:
        return t
    counts = np.array([[t.observed[a] for a in arms]], dtype=float)
    shares = np.array([t.expected[a] / total for a in arms], dtype=float)
    seq = srm_sequential(counts, shares / shares.sum(), alpha=threshold)
    p = float(seq.pvalues[-1])
    ready = min(t.expected[a] for a in arms if t.expected[a] > 0) >= burn_in
    return t._replace(pvalue=p, mismatch=bool(ready and p < threshold))


def _srm_alerts(srm: Sequence[SRMRow], threshold: float) -> list[str]:
    out: list[str] = []
    seen: set[int] = set()
    for r in srm:
        if r.mismatch and r.phase not in seen:
            seen.add(r.phase)
            obs = ", ".join(f"{x.arm}={x.observed}" for x in srm if x.phase == r.phase)
            out.append(
                f"sample ratio mismatch in phase {r.phase}: newly enrolled {obs} "
                f"(p={r.pvalue:.2g} < {threshold})"
            )
    return out


def _crossover_alerts(
    check: CrossoverCheck, phases: Mapping[int, Phase], threshold: float, tolerance: float
) -> list[str]:
    fix = "check the assignment service"
    if not check.ramped:
        if not check.alert:
            return []
        return [
            f"crossover units are {check.share:.1%} of enrolled units "
            f"(threshold {tolerance:.1%}): {fix}"
        ]
    out: list[str] = []
    groups: dict[tuple[int, int, str, str], list[CrossoverRow]] = {}
    for r in check.rows:
        if r.verdict == "unexpected":
            groups.setdefault((r.from_phase, r.to_phase, r.from_arm, r.kind), []).append(r)
    for (p, q, x, kind), rs in groups.items():
        r = rs[0]
        share = r.group_moved / r.eligible
        test = f"p={r.pvalue:.2g} < {threshold}"
        if kind == "mixed":
            out.append(
                f"crossover within phase {p}: {r.group_moved:,} of {r.eligible:,} units "
                f"({share:.1%}) carry two arms (tolerance {tolerance:.1%}, {test}): {fix}"
            )
            continue
        to = ", ".join(f"{s.to_arm} ({s.moved:,})" for s in rs if s.moved)
        head = (
            f"crossover from phase {p} to {q}: {r.group_moved:,} of {r.eligible:,} {x} units "
            f"({share:.1%}) moved to {to}"
        )
        old, new = phases[p].allocation.get(x, 0.0), phases[q].allocation.get(x, 0.0)
        if kind == "ramp":
            out.append(
                f"{head}; the ramp of {x} from {old:g} to {new:g} moves at most "
                f"{r.max_share:.1%} of its units ({test}): {fix}; the moved units are still "
                "kept in the clean estimates, which may be biased"
            )
        else:
            out.append(
                f"{head}; the ledger's allocations ({x} {old:g} -> {new:g}) allow moves only "
                f"from an arm whose share shrinks to one whose share grows (tolerance "
                f"{tolerance:.1%}, {test}): {fix}"
            )
    return out
