"""Reduced-size run of ``benchmarks/sim_peeking_e2e.py`` (the docs' table is the full size):
the looks are what the warehouse held at each block boundary, the fixed-horizon decisions
derived from a sequential result are those of ``analyze`` without ``sequential``, and on the
same looks the fixed-horizon decisions fire where the sequential ones do not."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl
import pytest
from conftest import sim_scale
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
UNITS = 2000


def _sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "sim_peeking_e2e", ROOT / "benchmarks" / "sim_peeking_e2e.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sim_peeking_e2e"] = module
    spec.loader.exec_module(module)
    return module


def test_looks_are_the_export_as_it_was_at_each_block_boundary() -> None:
    sim = _sim()
    bounds = sim.boundaries()
    assert len(bounds) == 28
    assert bounds[0] == sim.START + timedelta(hours=6)
    assert all(b - a == timedelta(hours=6) for a, b in itertools.pairwise(bounds))
    assert bounds[-1] == sim.START + timedelta(days=7)
    full = sim.generate(UNITS, 5)
    assert full.filter(pl.col("arrival") < pl.col("ts")).height == 0
    previous: set[str] = set()
    for b in bounds[::4]:
        look = sim.export_at(full, b)
        assert "arrival" not in look.columns
        assert look["ts"].max() < b
        ids = set(look["event_id"])
        assert previous <= ids  # nothing that had arrived disappears at a later look
        previous = ids
        # late data: about 10% of the last 6 hours' events are missing at this look
        recent = full.filter((pl.col("ts") >= b - timedelta(hours=6)) & (pl.col("ts") < b))
        missing = recent.height - look.filter(pl.col("ts") >= b - timedelta(hours=6)).height
        lo, hi = stats.binom.interval(0.999, recent.height, sim.LATE_SHARE)
        assert lo <= missing <= hi
    # half of the units have untagged pre-period turns (the regression adjustment's)
    pre = full.filter(pl.col("ts") < sim.START)
    assert pre.height
    assert pre["experiment_id"].null_count() == pre.height
    planned = sim.planned_units(UNITS)
    enrolled = full.filter(pl.col("experiment_id").is_not_null())["user_id"].n_unique()
    assert abs(enrolled - planned) < 4 * planned**0.5  # N is the size the canary reaches


def _fixed_by_analyze(sim: ModuleType, full: Any, led: Any, boundary: Any) -> dict[str, bool]:
    """What ``analyze`` without ``sequential`` decides at a look."""
    from analysis.decisions import evaluate_guardrails

    res = sim.analyze_look(full, led, boundary, sim.planned_units(UNITS), sequential=False)
    verdicts: list[Any] = list(evaluate_guardrails(res, sim.metrics()).rows)
    return {
        "regression": bool(res.regressions),
        "guardrail": any(r.verdict == "breach" for r in verdicts),
        "srm": any(r.mismatch for r in res.srm.rows),
    }


@pytest.mark.slow
def test_fixed_decisions_derived_from_a_sequential_result_equal_a_fixed_analysis() -> None:
    sim = _sim()
    led, ms = sim.ledger(), sim.metrics()
    full = sim.generate(UNITS, 4)
    fired = 0
    for k in (2, 3, 12):  # fixed fires at look 2 (few units); look 12: after the ramp
        b = sim.boundaries()[k - 1]
        seq = sim.analyze_look(full, led, b, sim.planned_units(UNITS))
        derived = sim.decisions(seq, ms)
        fixed = _fixed_by_analyze(sim, full, led, b)
        assert {c: derived["fixed"][c] for c in fixed} == fixed, k
        fired += any(fixed.values())
        # the burn-in: no sequential decision, and no "after burn-in" fixed one, before it
        combined = [r for r in seq.effects.rows if (r.analysis, r.phase) == ("clean", "combined")]
        if min(min(r.n_control, r.n_arm) for r in combined) < 100:
            assert not derived["seq"]["any"]
            assert not derived["fixedb"]["regression"]
    assert fired  # the comparison is not vacuous: a fixed decision fires at one of the looks


@pytest.mark.slow
def test_reduced_peeking_run_fixed_horizon_fires_where_sequential_does_not(
    tmp_path: Path,
) -> None:
    sim = _sim()
    reps = max(2, round(8 * sim_scale()))
    looks = 28 if sim_scale() >= 1 else 6
    out = tmp_path / "sim.jsonl"
    seeds = range(reps)  # seed 0: a fixed-horizon regression at look 4
    assert sim.run(out, seeds, UNITS, looks) == reps
    rows = list(sim.read_rows(out))
    for r in rows:
        f = r["first"]
        assert len(r["units_at_look"]) == looks
        assert r["units_at_look"] == sorted(r["units_at_look"])
        for kind in sim.KINDS:
            causes = [f[f"{kind}_{c}"] for c in ("regression", "guardrail", "srm")]
            hits = [x for x in causes if x is not None]
            assert f[f"{kind}_any"] == (min(hits) if hits else None)
            for c in sim.CAUSES:  # after the burn-in never earlier than without it
                b, a = f[f"fixedb_{c}"], f[f"fixed_{c}"]
                assert b is None or (a is not None and a <= b)
        # look 1 sees 4 hours of data (the 2-hour late cutoff): no sequential decision
        assert f["seq_any"] is None or f["seq_any"] >= 2
    s = sim.summarise(rows, UNITS)
    assert s["reps"] == reps
    assert s["fixed_any"][2] > s["seq_any"][2]  # repeated fixed tests fire more, same looks
    assert sim.check(s) == []
    table = sim.markdown(s)
    assert "`--sequential`" in table
    assert f"| {reps} |" in table
    assert sim.run(out, seeds, UNITS, looks) == 0  # resumable: nothing re-run
