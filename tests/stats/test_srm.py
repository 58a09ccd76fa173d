"""SRM and crossover statistics against independent references, and the issue-15 simulations.

References: ``scipy.stats.chisquare`` (the SRM statistic), ``scipy.stats.binomtest`` (the
crossover tests), the closed-form two-sided normal power for one degree of freedom and a
vectorised multinomial simulation (the SRM power), a dense grid of hash buckets (what a ramp
moves) and per-unit loops (the transition counts). The ``slow`` tests run
``benchmarks/sim_srm.py``'s simulations at ``PROMPTSTATE_SIM_SCALE`` of their full size.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis.stats.crossover import (
    MIXED,
    count_transitions,
    crossed_units,
    crossover_check,
    excess_pvalue,
    is_ramped,
    ramp_rule,
)
from analysis.stats.srm import lost_shares, srm_power, srm_test

ROOT = Path(__file__).resolve().parents[2]


def sim_scale() -> float:
    """Size factor of the slow simulations (env ``PROMPTSTATE_SIM_SCALE``, default 1.0)."""
    return float(os.environ.get("PROMPTSTATE_SIM_SCALE", "1.0"))


# -- SRM ----------------------------------------------------------------------------------------


def test_srm_three_arms_matches_scipy_chisquare() -> None:
    alloc = {"a": 0.5, "b": 0.3, "c": 0.2}
    obs = {"a": 5120, "b": 2950, "c": 1930}
    res = srm_test(obs, alloc)
    n = sum(obs.values())
    ref = stats.chisquare([5120, 2950, 1930], [n * 0.5, n * 0.3, n * 0.2])
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-10)
    assert res.mismatch == (ref.pvalue < 0.001)


def test_srm_arm_outside_allocation_is_a_mismatch() -> None:
    res = srm_test({"a": 100, "b": 90, "x": 1}, {"a": 0.5, "b": 0.5})
    assert res.mismatch
    assert res.pvalue == 0.0
    assert math.isinf(res.statistic)


def test_lost_shares_by_hand() -> None:
    out = lost_shares({"c": 0.8, "t": 0.2}, "t", 0.1)
    assert out == pytest.approx({"c": 0.8 / 0.98, "t": 0.18 / 0.98}, rel=1e-12)
    with pytest.raises(ValueError, match="not in the allocation"):
        lost_shares({"c": 1.0}, "t", 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        lost_shares({"c": 0.5, "t": 0.5}, "t", 1.0)


@pytest.mark.parametrize(
    ("alloc", "arm", "n"),
    [
        ({"c": 0.5, "t": 0.5}, "t", 7600),
        ({"c": 0.8, "t": 0.2}, "c", 7360),
        ({"c": 0.9, "t": 0.1}, "t", 20000),
    ],
)
def test_srm_power_two_arms_matches_normal_closed_form(
    alloc: dict[str, float], arm: str, n: int
) -> None:
    true = lost_shares(alloc, arm, 0.1)
    # noncentrality = the chi-square statistic of the expected counts under the truth
    lam = stats.chisquare([n * true[a] for a in alloc], [n * alloc[a] for a in alloc]).statistic
    z = stats.norm.isf(0.001 / 2)
    ref = stats.norm.sf(z - math.sqrt(lam)) + stats.norm.cdf(-z - math.sqrt(lam))
    assert srm_power(alloc, true, n) == pytest.approx(ref, rel=1e-9)


def test_srm_power_three_arms_matches_seeded_multinomial() -> None:
    alloc = {"a": 0.5, "b": 0.25, "c": 0.25}
    true = lost_shares(alloc, "b", 0.12)
    n, runs = 6000, 4000
    rng = np.random.default_rng(151)
    counts = rng.multinomial(n, [true[a] for a in alloc], size=runs)
    expected = n * np.array([alloc[a] for a in alloc])
    pvals = stats.chisquare(counts, expected, axis=1).pvalue
    sim = float(np.mean(pvals < 0.001))
    se = math.sqrt(sim * (1 - sim) / runs)
    assert abs(sim - srm_power(alloc, true, n)) < 3 * se + 0.01
    assert math.isnan(srm_power({"a": 1.0}, {"a": 1.0}, 100))


# -- crossover: the pieces ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "share"),
    [(0, 50, 0.1), (1, 50, 0.1), (12, 50, 0.1), (50, 50, 0.3), (410, 1000, 0.375), (37, 480, 0.02)],
)
def test_excess_pvalue_matches_binomtest(k: int, n: int, share: float) -> None:
    ref = stats.binomtest(k, n, share, alternative="greater").pvalue
    assert excess_pvalue(k, n, share) == pytest.approx(ref, rel=1e-9, abs=1e-300)


def test_excess_pvalue_edges() -> None:
    assert excess_pvalue(0, 0, 0.2) == 1.0
    assert excess_pvalue(3, 10, 0.0) == 0.0
    assert excess_pvalue(10, 10, 1.0) == 1.0
    with pytest.raises(ValueError, match="0 <= k <= n"):
        excess_pvalue(11, 10, 0.5)


LAYOUTS: list[tuple[tuple[str, ...], dict[str, float], dict[str, float]]] = [
    (("c", "t"), {"c": 0.8, "t": 0.2}, {"c": 0.5, "t": 0.5}),
    (("c", "t"), {"c": 0.9, "t": 0.1}, {"c": 0.75, "t": 0.25}),
    (("c", "t"), {"c": 0.5, "t": 0.5}, {"c": 0.7, "t": 0.3}),  # ramp down of the treatment
    (("t1", "c", "t2"), {"t1": 0.25, "c": 0.5, "t2": 0.25}, {"t1": 0.3, "c": 0.4, "t2": 0.3}),
]


@pytest.mark.parametrize(("order", "old", "new"), LAYOUTS)
def test_ramp_rule_matches_a_grid_of_hash_buckets(
    order: tuple[str, ...], old: dict[str, float], new: dict[str, float]
) -> None:
    """Contiguous bucket ranges (shrinking arm at an end or between growing arms): the share
    of each arm's buckets that changes arm is the cap, and only towards growing arms."""
    u = (np.arange(200_000) + 0.5) / 200_000
    before = np.searchsorted(np.cumsum([old[a] for a in order])[:-1], u, side="right")
    after = np.searchsorted(np.cumsum([new[a] for a in order])[:-1], u, side="right")
    rule = ramp_rule(old, new)
    for i, a in enumerate(order):
        mine = before == i
        moved = mine & (after != i)
        assert moved.sum() / mine.sum() == pytest.approx(rule.cap[a], abs=1e-4)
        assert {order[j] for j in np.unique(after[moved])} <= rule.growing
    assert rule.growing == {a for a in order if new[a] > old[a]}


def test_is_ramped() -> None:
    assert not is_ramped([{"c": 0.5, "t": 0.5}, {"c": 0.5, "t": 0.5}])
    assert is_ramped([{"c": 0.5, "t": 0.5}, {"c": 0.5, "t": 0.5}, {"c": 0.4, "t": 0.6}])
    assert not is_ramped([{"c": 1.0}])


ARM_OR_ABSENT = st.sampled_from([None, "a", "b", "c", MIXED])


def _brute_transitions(
    patterns: dict[tuple[str | None, ...], int], phases: list[int]
) -> dict[tuple[int, int, str, str], int]:
    """Per unit, every pair of phases p < q it appears in with no appearance in between."""
    out: dict[tuple[int, int, str, str], int] = {}
    for pattern, n in patterns.items():
        for _ in range(n):
            arm = dict(zip(phases, pattern, strict=True))
            for p in phases:
                for q in phases:
                    between = [r for r in phases if p < r < q and arm[r] is not None]
                    if p < q and arm[p] not in (None, MIXED) and arm[q] is not None and not between:
                        key = (p, q, str(arm[p]), str(arm[q]))
                        out[key] = out.get(key, 0) + 1
    return out


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.tuples(ARM_OR_ABSENT, ARM_OR_ABSENT, ARM_OR_ABSENT), st.integers(0, 4)))
def test_count_transitions_matches_per_unit_loop(patterns: dict[Any, int]) -> None:
    phases = [1, 2, 4]
    counts = count_transitions(patterns, phases)
    assert counts.moves == _brute_transitions(patterns, phases)
    for i, p in enumerate(phases):
        assert counts.present[p] == sum(n for pat, n in patterns.items() if pat[i] is not None)
        assert counts.mixed[p] == sum(n for pat, n in patterns.items() if pat[i] == MIXED)
    crossed = 0
    for pat, n in patterns.items():
        tags = [a for a in pat if a is not None]
        crossed += n * (MIXED in tags or len(set(tags)) > 1)
    assert crossed_units(patterns) == crossed


def test_count_transitions_rejects_bad_patterns() -> None:
    with pytest.raises(ValueError, match="2 phases, not 3"):
        count_transitions({("a", "b"): 1}, [1, 2, 3])
    with pytest.raises(ValueError, match="negative"):
        count_transitions({("a",): -1}, [1])


# -- crossover: the verdicts ---------------------------------------------------------------------

RAMP = {1: {"c": 0.8, "t": 0.2}, 2: {"c": 0.5, "t": 0.5}}


def test_expected_ramp_moves_raise_nothing() -> None:
    # 800 control units seen again: 300 moved (exactly the cap 37.5%), 200 treatment units stay
    pats = {("c", "c"): 500, ("c", "t"): 300, ("t", "t"): 200, ("c", None): 1000}
    chk = crossover_check(pats, RAMP, tolerance=0.0)
    assert chk.ramped
    assert not chk.alert
    (row,) = chk.rows
    assert (row.from_arm, row.to_arm, row.kind, row.eligible, row.moved) == (
        "c",
        "t",
        "ramp",
        800,
        300,
    )
    assert row.max_share == pytest.approx(0.375)
    assert row.pvalue == pytest.approx(
        stats.binomtest(300, 800, 0.375, alternative="greater").pvalue
    )
    assert row.verdict == "expected"
    assert chk.crossed == 300
    assert chk.enrolled == 2000


def test_too_many_ramp_moves_are_unexpected() -> None:
    pats = {("c", "c"): 350, ("c", "t"): 450, ("t", "t"): 200}  # 56% moved, 1.5x the cap
    chk = crossover_check(pats, RAMP)
    (row,) = chk.rows
    assert row.verdict == "unexpected"
    assert chk.alert
    assert row.pvalue == pytest.approx(
        stats.binomtest(450, 800, 0.375, alternative="greater").pvalue
    )


def test_moves_in_the_other_direction_are_stray() -> None:
    pats = {("c", "c"): 500, ("c", "t"): 300, ("t", "t"): 190, ("t", "c"): 10}
    strict = crossover_check(pats, RAMP, tolerance=0.0)
    stray = [r for r in strict.rows if r.kind == "stray"]
    assert [(r.from_arm, r.to_arm, r.eligible, r.moved) for r in stray] == [("t", "c", 200, 10)]
    assert stray[0].verdict == "unexpected"
    assert strict.alert
    tolerant = crossover_check(pats, RAMP, tolerance=0.05)  # 5% of 200: within tolerance
    (row,) = [r for r in tolerant.rows if r.kind == "stray"]
    assert row.pvalue == pytest.approx(stats.binomtest(10, 200, 0.05, alternative="greater").pvalue)
    assert row.verdict == "tolerated"
    assert not tolerant.alert
    heavy = {**pats, ("t", "t"): 150, ("t", "c"): 50}  # 25% of the growing arm moved back
    assert crossover_check(heavy, RAMP, tolerance=0.05).alert


def test_mixed_units_judged_against_the_tolerance() -> None:
    pats = {("c", "c"): 800, ("t", "t"): 200, (MIXED, None): 4, ("c", MIXED): 20}
    chk = crossover_check(pats, RAMP, tolerance=0.02)
    mixed = {r.from_phase: r for r in chk.rows if r.kind == "mixed"}
    assert (mixed[1].eligible, mixed[1].moved) == (1024, 4)
    assert (mixed[2].eligible, mixed[2].moved) == (1020, 20)
    assert mixed[2].pvalue == pytest.approx(
        stats.binomtest(20, 1020, 0.02, alternative="greater").pvalue
    )
    assert not chk.alert
    assert crossover_check(pats, RAMP, tolerance=0.0).alert
    # a unit mixed in phase 2 is eligible from phase 1 but not moved
    ramp_row = next(r for r in chk.rows if r.kind == "ramp")
    assert (ramp_row.eligible, ramp_row.moved) == (820, 0)


def test_without_a_ramp_the_flat_share_decides() -> None:
    flat = {1: {"c": 0.5, "t": 0.5}, 2: {"c": 0.5, "t": 0.5}}
    pats = {("c", "c"): 480, ("t", "t"): 490, ("c", "t"): 15, ("t", "c"): 15}
    chk = crossover_check(pats, flat, tolerance=0.02)
    assert not chk.ramped
    assert chk.share == pytest.approx(0.03)
    assert chk.alert
    assert all(r.verdict == "unexpected" and math.isnan(r.pvalue) for r in chk.rows)
    assert {r.kind for r in chk.rows} == {"stray"}
    assert not crossover_check(pats, flat, tolerance=0.05).alert


# -- the issue-15 simulations ---------------------------------------------------------------------


def _sim() -> ModuleType:
    path = ROOT / "benchmarks" / "sim_srm.py"
    spec = importlib.util.spec_from_file_location("sim_srm", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sim_srm", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_ramped_experiments_raise_no_false_alarm() -> None:
    """SRM false alarms per phase and ramp-test false alarms at most 0.1% + 3 MC SE (full size:
    12,000 runs, 28,000 phases); the old rule (crossover units left out) flags phase 1 always."""
    sim = _sim()
    runs = max(50, round(4000 * sim_scale()))
    phases = alarms = tests = ramp_alarms = old_phase1 = total_runs = 0
    for i, sc in enumerate(sim.NULL_SCENARIOS):
        r = sim.run(sc, runs, 1500 + i)
        phases += r.runs * len(sc.allocations)
        alarms += sum(r.srm.values())
        tests += r.ramp_tests
        ramp_alarms += r.ramp_alerts
        old_phase1 += r.srm_old[1]
        total_runs += r.runs
    for k, n in ((alarms, phases), (ramp_alarms, tests)):
        assert k / n <= 0.001 + 3 * math.sqrt(0.001 * 0.999 / n)
    assert old_phase1 == total_runs


@pytest.mark.slow
def test_srm_power_against_a_lost_slice_of_one_arm() -> None:
    """Simulated power equals the noncentral chi-square power (within 3 MC SE), which is at
    least 90% at 50/50 with 8,000 newly enrolled units and 10% of one arm lost."""
    sim = _sim()
    runs = max(100, round(4000 * sim_scale()))
    for j, (sc, phase_id, alloc, shares, logged) in enumerate(sim.srm_power_scenarios()[:2]):
        r = sim.run(sc, runs, 1600 + j)
        power = r.srm[phase_id] / r.runs
        analytic = srm_power(alloc, shares, logged)
        se = math.sqrt(analytic * (1 - analytic) / r.runs)
        assert abs(power - analytic) <= 3 * se + 0.005, sc.name
        if j == 0:
            assert analytic >= 0.90


@pytest.mark.slow
def test_crossover_power_against_stray_and_excess_moves() -> None:
    """At 0.8/0.2 -> 0.5/0.5 with 8,000 units per phase: 5% of the growing arm moved back,
    or 1.5x the allowed share moved, is caught in at least 95% of runs (full size: 97.9%
    and 100%; the 2% tolerance for stray tags costs some power against the first)."""
    sim = _sim()
    runs = max(50, round(800 * sim_scale()))
    for j, sc in enumerate(sim.crossover_power_scenarios()[:2]):
        r = sim.run(sc, runs, 1700 + j)
        assert r.crossover / r.runs >= 0.95, sc.name
