"""Issue 22 item 6's acceptance simulation (``benchmarks/sim_plan.py``): a reduced run (slow) and
the runner's arithmetic (fast).

The full figures: ``python benchmarks/sim_plan.py --seeds 0:100 --experiments 10`` then
``--summary`` (1,000 experiments on 100 plans). The slow test here is the subset ``.ci/run``
runs: a few histories, each planned by the real ``plan_test``, and a few experiments per plan
run at its design with the effect the plan detects at 80% and read by the real ``analyze``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import sim_scale

ROOT = Path(__file__).resolve().parent.parent


def _sim() -> ModuleType:
    if "promptstate_sim_plan" in sys.modules:
        return sys.modules["promptstate_sim_plan"]
    spec = importlib.util.spec_from_file_location(
        "promptstate_sim_plan", ROOT / "benchmarks" / "sim_plan.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["promptstate_sim_plan"] = module
    spec.loader.exec_module(module)
    return module


def _row(seed: int, j: int, detected: bool, **kw: Any) -> dict[str, Any]:
    base = {
        "seed": seed, "experiment": j, "detected": detected, "effect": 0.1, "delta": 0.1,
        "se": 0.04, "se_plan": 0.04, "target": 0.11, "plan_power": 0.85, "days": 4.0, "extrapolated": False,
        "units_per_arm": {"control": 1000, "treatment": 1000}, "cpu_plan_s": 1.0,
        "cpu_experiment_s": 0.5,
    }  # fmt: skip
    return {**base, **kw}


def test_summary_arithmetic_and_the_criterion_can_fail() -> None:
    sim = _sim()
    # 2 histories × 5 experiments: 8 detections
    rows = [_row(s, j, not (s == 1 and j < 2)) for s in range(2) for j in range(5)]
    got = sim.summarise(rows)
    assert got["replicates"] == 10
    assert got["histories"] == 2
    assert got["power"] == pytest.approx(0.8)
    assert got["mc_se_binomial"] == pytest.approx(math.sqrt(0.8 * 0.2 / 10))
    # clustered (ratio estimator): residuals 5 − 4 and 3 − 4 → sqrt(2/1 · 2)/10
    assert got["mc_se"] == pytest.approx(max(math.sqrt(4) / 10, got["mc_se_binomial"]))
    assert got["cpu_s_per_replicate"] == pytest.approx(0.5 + 1.0 / 5)
    assert sim.check(got) == []
    # far from 80% with a small MC SE: a failure naming the miss
    low = [_row(s, j, j < 6) for s in range(100) for j in range(10)]
    failures = sim.check(sim.summarise(low))
    assert len(failures) == 1
    assert "realised power 60.0%" in failures[0]
    assert sim.check(sim.summarise([])) == ["no replicates"]
    table = sim.breakdown([*rows, _row(9, 0, True, days=6.5, extrapolated=True)])
    assert "| 4 | 2 | 10 | 80.0% ± 12.6 | 1.000 | 85.0% |" in table
    assert table.splitlines()[-1].startswith("| extrapolated | 1 | 1 | 100.0% ± 0.0 |")


def test_population_process_and_tags() -> None:
    """The experiment's tags start at ``start``; treatment turns (only) carry the effect."""
    sim = _sim()
    spec = sim.PopSpec(arrivals_per_day=200.0)
    start = sim.T0 + timedelta(days=2)
    base = sim.events(spec, (7, 1), 4.0, effect=0.0, start=start)
    moved = sim.events(spec, (7, 1), 4.0, effect=0.5, start=start)
    assert base["ts"].min() >= sim.T0
    assert base["ts"].max() < sim.T0 + timedelta(days=4)
    before = base.filter(base["ts"] < start)
    assert before["arm"].null_count() == before.height
    assert before["experiment_id"].null_count() == before.height
    after = base.filter(base["ts"] >= start)
    assert after["arm"].null_count() == 0
    assert set(after["arm"].unique()) == {"control", "treatment"}
    # one arm per unit; the effect exactly on the treatment turns
    assert after.group_by("user_id").agg(pl.col("arm").n_unique())["arm"].max() == 1
    diff = (moved["helpfulness"] - base["helpfulness"]).to_numpy()
    on = (moved["arm"] == "treatment").fill_null(False).to_numpy()
    assert np.allclose(diff[on], 0.5)
    assert np.allclose(diff[~on], 0.0)
    # a history: nothing tagged
    hist = sim.events(spec, (7, 0), 3.0)
    assert hist["arm"].null_count() == hist.height


@pytest.mark.slow
def test_realised_power_of_plans(tmp_path: Path) -> None:
    """Reduced acceptance: realised power at 80% within ±2 points + 3 MC SE, and the realised
    SE of the experiments against the plan's replay SE (the sharper check at this size)."""
    sim = _sim()
    histories = max(4, round(24 * sim_scale()))
    out = tmp_path / "sim_plan.jsonl"
    assert sim.run(out, range(histories), 4) == histories
    rows = list(sim.read_rows(out))
    assert len(rows) == 4 * histories
    summary = sim.summarise(rows)
    assert sim.check(summary) == [], sim.markdown(summary)
    # the plan's design: a whole replay day when the replay reaches the target (else
    # extrapolated past it), with at least 80% power at the design
    assert all(r["extrapolated"] or r["days"] == int(r["days"]) for r in rows)
    assert all(r["days"] >= 1 for r in rows)
    assert all(r["plan_power"] >= sim.POWER - 1e-12 for r in rows)
    assert all(r["covariate"] == "pre_period" for r in rows)
    # the experiment's SE is the one the A/A replay predicted (clustered by history: few plans)
    assert summary["se_ratio_mean"] == pytest.approx(1.0, abs=0.08)
    assert 0.6 < summary["z_sd"] < 1.4
    # resumable: a second run adds nothing
    assert sim.run(out, range(histories), 4) == 0
    assert len(list(sim.read_rows(out))) == len(rows)
    # the table the docs show
    table = sim.markdown(summary)
    assert f"| {len(rows):,} ({histories} × 4) |" in table
    json.dumps(summary)
