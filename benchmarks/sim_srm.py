"""Simulation: the SRM and crossover checks of ramped experiments (issue 15).

Each run draws the newly enrolled units of every exposure phase, gives each a uniform hash
bucket and the arm its bucket falls in under the phase's allocation (contiguous bucket ranges
laid out so that a ramp moves units only out of the shrinking arm: a minimal-movement bucket
ramp), lets each unit come back in every later phase with probability ``returning`` (its arm
there is again read off its bucket: ramp moves happen), and hands the counts — the aggregate
:func:`analysis.metrics._assignment.assignment_plan` would collect — to the real
:func:`analysis.metrics._assignment.assignment_checks`. Departures from a working assignment
service, each switched on by a scenario field:

* ``lost``: a fraction of one arm's newly enrolled units of one phase is lost from logging
  (a true sample-ratio mismatch);
* ``back``: at the ramp, this share of the growing arm's returning units moves back into the
  shrinking arm (stray moves);
* ``over``: the ramp moves this multiple of the share it allows;
* ``noise``: this share of units carries two arms within one of its phases (device switching),
  and 30% of those mixed in their enrollment phase are first seen with the other arm.

Figures: rates with Monte-Carlo standard errors, and the analytic power of the chi-square test
(:func:`analysis.stats.srm.srm_power`) next to the simulated one. ``tests/stats/test_srm.py``
runs the same functions at ``PROMPTSTATE_SIM_SCALE`` of the sizes here.

Usage::

    python benchmarks/sim_srm.py [--scale 1.0] [--seed 15]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.ledger.model import Phase
from analysis.metrics._assignment import ASSIGNMENT, assignment_checks, pattern_column
from analysis.stats.srm import lost_shares, srm_power, srm_test

#: Pattern codes of the simulated units.
_ABSENT, _MIXED = -1, -2


@dataclass(frozen=True)
class Scenario:
    """One simulated experiment design.

    Attributes:
        name: Label in the output.
        order: Arms in the order of their bucket ranges (a shrinking arm between growing arms,
            or at one end of a two-arm layout, gives a minimal-movement ramp).
        allocations: Allocation of each exposure phase (phase ids 1, 2, ...).
        new_units: Newly enrolled units per phase (before any loss).
        returning: Probability that a unit is active again in each later phase.
        lost: ``(phase id, arm, fraction)`` of newly enrolled units lost from logging.
        back: Share of the growing arm's returning units moved back at the ramp into phase 2.
        over: The ramp into phase 2 moves this multiple of its allowed share.
        noise: Share of units with two arms within one of their phases.
    """

    name: str
    order: tuple[str, ...]
    allocations: tuple[dict[str, float], ...]
    new_units: tuple[int, ...]
    returning: float = 0.6
    lost: tuple[int, str, float] | None = None
    back: float = 0.0
    over: float = 1.0
    noise: float = 0.0

    def phases(self) -> list[Phase]:
        """The exposure phases as the ledger would give them."""
        return [
            Phase(id=k + 1, kind="exposure", start=None, end=None, allocation=a)
            for k, a in enumerate(self.allocations)
        ]


def _arms_of(buckets: np.ndarray, order: Sequence[str], allocation: dict[str, float]) -> Any:
    edges = np.cumsum([allocation[a] for a in order])[:-1]
    return np.searchsorted(edges, buckets, side="right")


def simulate_counts(sc: Scenario, rng: np.random.Generator) -> list[dict[str, Any]]:
    """One run: the collected assignment aggregate (enrollment phase, first arm, pattern, n)."""
    k_phases = len(sc.allocations)
    enroll = np.repeat(np.arange(k_phases), sc.new_units)
    n = enroll.size
    u = rng.random(n)
    first = np.empty(n, dtype=np.int64)
    pattern = np.full((n, k_phases), _ABSENT, dtype=np.int64)
    for k, alloc in enumerate(sc.allocations):
        arm_k = _arms_of(u, sc.order, alloc)
        present = (enroll == k) | ((enroll < k) & (rng.random(n) < sc.returning))
        pattern[present, k] = arm_k[present]
        first[enroll == k] = arm_k[enroll == k]
    if k_phases > 1 and (sc.back > 0 or sc.over != 1.0):
        _perturb_ramp(sc, pattern, enroll, rng)
    if sc.noise > 0:
        _mix(sc, pattern, first, enroll, rng)
    keep = np.ones(n, dtype=bool)
    if sc.lost is not None:
        phase_id, arm, fraction = sc.lost
        hit = (enroll == phase_id - 1) & (first == sc.order.index(arm))
        keep &= ~(hit & (rng.random(n) < fraction))
    table = np.column_stack([enroll, first, pattern])[keep] - _MIXED  # codes >= 0
    base = max(k_phases, len(sc.order)) - _MIXED
    weights = base ** np.arange(table.shape[1], dtype=np.int64)
    codes, counts = np.unique(table @ weights, return_counts=True)
    combos = (codes[:, None] // weights[None, :]) % base + _MIXED
    names = [*sc.order]
    rows: list[dict[str, Any]] = []
    for combo, c in zip(combos.tolist(), counts.tolist(), strict=True):
        row: dict[str, Any] = {"phase": combo[0] + 1, "first_arm": names[combo[1]], "n": c}
        for k, v in enumerate(combo[2:]):
            row[pattern_column(k + 1)] = None if v == _ABSENT else "*" if v == _MIXED else names[v]
        rows.append(row)
    return rows


def _perturb_ramp(
    sc: Scenario, pattern: np.ndarray, enroll: np.ndarray, rng: np.random.Generator
) -> None:
    """Apply ``back`` and ``over`` to the returning units of phase 1 seen again in phase 2."""
    old, new = sc.allocations[0], sc.allocations[1]
    shrinking = [i for i, a in enumerate(sc.order) if new[a] < old[a]]
    growing = [i for i, a in enumerate(sc.order) if new[a] > old[a]]
    both = (pattern[:, 0] >= 0) & (pattern[:, 1] >= 0)
    r = rng.random(pattern.shape[0])
    if sc.back > 0:
        from_growing = both & np.isin(pattern[:, 0], growing) & (pattern[:, 1] == pattern[:, 0])
        pattern[from_growing & (r < sc.back), 1] = shrinking[0]
    if sc.over != 1.0:
        for x in shrinking:
            a = sc.order[x]
            cap = (old[a] - new[a]) / old[a]
            extra = (sc.over - 1.0) * cap / (1.0 - cap)
            stayed = both & (pattern[:, 0] == x) & (pattern[:, 1] == x)
            pattern[stayed & (r < extra), 1] = growing[0]


def _mix(
    sc: Scenario,
    pattern: np.ndarray,
    first: np.ndarray,
    enroll: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Make ``noise`` of the units mixed in one of their phases (device switching)."""
    n, k_phases = pattern.shape
    switch = np.flatnonzero(rng.random(n) < sc.noise)
    for i in switch.tolist():
        seen = np.flatnonzero(pattern[i] != _ABSENT)
        k = int(seen[rng.integers(seen.size)])
        pattern[i, k] = _MIXED
        if k == enroll[i] and rng.random() < 0.3:
            others = [a for a in range(len(sc.order)) if a != first[i]]
            first[i] = others[rng.integers(len(others))]
    assert k_phases == len(sc.allocations)


@dataclass(frozen=True)
class Rates:
    """Outcomes of ``runs`` runs of one scenario.

    Attributes:
        runs: Runs.
        srm: Per phase id: runs with a sample-ratio mismatch flagged in it.
        srm_old: Per phase id: runs the old rule (crossover units left out) flags.
        crossover: Runs with a crossover alert.
        ramp_tests: Ramp-move groups tested (over all runs).
        ramp_alerts: Of them, groups judged unexpected.
    """

    runs: int
    srm: dict[int, int]
    srm_old: dict[int, int]
    crossover: int
    ramp_tests: int
    ramp_alerts: int


def run(sc: Scenario, runs: int, seed: int) -> Rates:
    """``runs`` seeded runs of ``sc`` through :func:`assignment_checks`."""
    rng = np.random.default_rng(seed)
    phases = sc.phases()
    srm = dict.fromkeys(range(1, len(phases) + 1), 0)
    old = dict(srm)
    crossover = ramp_tests = ramp_alerts = 0
    cols = [pattern_column(p.id) for p in phases]
    for _ in range(runs):
        rows = simulate_counts(sc, rng)
        res = assignment_checks({ASSIGNMENT: rows}, phases)
        for p in {r.phase for r in res.srm if r.mismatch}:
            srm[p] += 1
        crossover += any(r.verdict == "unexpected" for r in res.crossover)
        groups = {(r.from_phase, r.to_phase, r.from_arm) for r in res.crossover if r.kind == "ramp"}
        bad = {
            (r.from_phase, r.to_phase, r.from_arm)
            for r in res.crossover
            if r.kind == "ramp" and r.verdict == "unexpected"
        }
        ramp_tests += len(groups)
        ramp_alerts += len(bad)
        for p in phases:  # the old rule: units with two arms left out of the SRM counts
            observed: dict[str, int] = {}
            for r in rows:
                arms = {r[c] for c in cols} - {None}
                if r["phase"] == p.id and len(arms) == 1 and "*" not in arms:
                    observed[r["first_arm"]] = observed.get(r["first_arm"], 0) + r["n"]
            old[p.id] += srm_test(observed, p.allocation).mismatch
    return Rates(runs, srm, old, crossover, ramp_tests, ramp_alerts)


def rate(k: int, n: int) -> tuple[float, float]:
    """``k / n`` and its binomial Monte-Carlo standard error."""
    p = k / n if n else math.nan
    return p, math.sqrt(p * (1 - p) / n) if n else math.nan


# -- the scenarios of issue 15 -------------------------------------------------------------------

C, T = "control", "treatment"
RAMP_80_50 = ({C: 0.8, T: 0.2}, {C: 0.5, T: 0.5})
RAMP_90_75 = ({C: 0.9, T: 0.1}, {C: 0.75, T: 0.25})

#: Ramped experiments with a working assignment service (false alarms).
NULL_SCENARIOS = (
    Scenario("2 arms, 0.8/0.2 -> 0.5/0.5", (C, T), RAMP_80_50, (8000, 8000)),
    Scenario(
        "2 arms, 0.9/0.1 -> 0.75/0.25 -> 0.5/0.5",
        (C, T),
        (*RAMP_90_75, {C: 0.5, T: 0.5}),
        (5000, 5000, 5000),
    ),
    Scenario(
        "3 arms, 0.25/0.5/0.25 -> 1/3 each",
        ("t1", C, "t2"),
        ({"t1": 0.25, C: 0.5, "t2": 0.25}, {"t1": 1 / 3, C: 1 / 3, "t2": 1 / 3}),
        (6000, 6000),
    ),
)


def srm_power_scenarios() -> list[tuple[Scenario, int, dict[str, float], dict[str, float], int]]:
    """``(scenario, phase id, allocation, true shares, logged units)`` of the power runs."""
    out = []
    for arm in (T,):  # 50/50 is symmetric
        sc = Scenario(
            f"lose 10% of {arm} at 50/50", (C, T), RAMP_80_50, (8000, 8000), lost=(2, arm, 0.1)
        )
        out.append((sc, 2, RAMP_80_50[1], lost_shares(RAMP_80_50[1], arm, 0.1), 7600))
    for arm, logged in ((C, 7360), (T, 7840)):
        sc = Scenario(
            f"lose 10% of {arm} at 0.8/0.2", (C, T), RAMP_80_50, (8000, 8000), lost=(1, arm, 0.1)
        )
        out.append((sc, 1, RAMP_80_50[0], lost_shares(RAMP_80_50[0], arm, 0.1), logged))
    sc = Scenario(
        f"lose 10% of {T} at 50/50, 8,000 logged",
        (C, T),
        RAMP_80_50,
        (8000, 8421),
        lost=(2, T, 0.1),
    )
    out.append((sc, 2, RAMP_80_50[1], lost_shares(RAMP_80_50[1], T, 0.1), 8000))
    return out


def crossover_power_scenarios() -> list[Scenario]:
    """Ramps with stray moves (``back``) and with too many moves (``over``)."""
    out = []
    for ramp, label, n in (
        (RAMP_80_50, "0.8/0.2 -> 0.5/0.5", 8000),
        (RAMP_90_75, "0.9/0.1 -> 0.75/0.25", 8000),
    ):
        out.append(Scenario(f"{label}: 5% of growing arm back", (C, T), ramp, (n, n), back=0.05))
        out.append(Scenario(f"{label}: 1.5x allowed moves", (C, T), ramp, (n, n), over=1.5))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--scale", type=float, default=1.0, help="size factor (1.0: full size)")
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args(argv)
    s = args.scale
    t0 = time.perf_counter()

    print("== SRM and crossover false alarms: ramped experiments, working assignment")
    phases = srm_alarm = old_alarm = runs_total = xalarm = tests = ramp_bad = 0
    for i, sc in enumerate(NULL_SCENARIOS):
        for noise in (0.0, 0.01):
            scn = Scenario(sc.name, sc.order, sc.allocations, sc.new_units, noise=noise)
            r = run(scn, max(1, round(4000 * s)), args.seed + 10 * i + int(noise * 100))
            fa = sum(r.srm.values())
            n_ph = r.runs * len(sc.allocations)
            label = f"{sc.name}, {noise:.0%} mixed units"
            print(
                f"  {label}: {r.runs} runs; SRM {fmt(fa, n_ph)} of phases "
                f"(old rule: {fmt(sum(r.srm_old.values()), n_ph)}; phase 1 {fmt(r.srm_old[1], r.runs)}); "
                f"crossover alert {fmt(r.crossover, r.runs)} of runs, "
                f"ramp tests {fmt(r.ramp_alerts, r.ramp_tests)}"
            )
            if noise == 0.0:
                phases += n_ph
                srm_alarm += fa
                old_alarm += sum(r.srm_old.values())
                runs_total += r.runs
                xalarm += r.crossover
                tests += r.ramp_tests
                ramp_bad += r.ramp_alerts
    print(
        f"  all, no noise: SRM {fmt(srm_alarm, phases)} of {phases} phases "
        f"(old rule {fmt(old_alarm, phases)}); crossover alert {fmt(xalarm, runs_total)} of "
        f"{runs_total} runs; ramp tests {fmt(ramp_bad, tests)} of {tests}"
    )

    print("== SRM power: 10% of one arm's newly enrolled units lost from logging (threshold 0.001)")
    for j, (sc, phase_id, alloc, shares, logged) in enumerate(srm_power_scenarios()):
        full = 20000 if j == 0 else 10000
        r = run(sc, max(1, round(full * s)), args.seed + 100 + j)
        analytic = srm_power(alloc, shares, logged)
        print(
            f"  {sc.name} ({sc.new_units[phase_id - 1]:,} enrolled, ~{logged:,} logged): "
            f"power {fmt(r.srm[phase_id], r.runs)}; analytic {analytic:.2%}"
        )

    print("== Crossover power (threshold 0.001, tolerance 2%)")
    for j, sc in enumerate(crossover_power_scenarios()):
        r = run(sc, max(1, round(2000 * s)), args.seed + 200 + j)
        print(f"  {sc.name}: alert {fmt(r.crossover, r.runs)} of runs")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


def fmt(k: int, n: int) -> str:
    """``k/n`` as a percentage with its Monte-Carlo standard error."""
    p, se = rate(k, n)
    return f"{p:.3%} ± {se:.3%}"


if __name__ == "__main__":
    sys.exit(main())
