"""Reduced-size run of ``benchmarks/sim_guardrails.py`` (the docs' table is the full size)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import sim_scale
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent


def _sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "sim_guardrails", ROOT / "benchmarks" / "sim_guardrails.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sim_guardrails"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sizes_at_the_margin_and_power_at_twice_the_margin(tmp_path: Path) -> None:
    sim = _sim()
    reps = max(1000, round(8000 * sim_scale()))
    out = tmp_path / "sim.jsonl"
    rows = sim.run(out, range(2), reps // 2, 2000, list(sim.SCENARIOS), e2e_reps=1)
    summary = sim.summarise(rows)
    assert sim.check(summary) == []
    # power at twice the margin against the normal approximation: the log-normal's variance is
    # e − 1 per unit, so se = sqrt(2 (e − 1) / n) and power = Φ(m / se − z_{1−α/2})
    se = math.sqrt(2 * (math.e - 1) / 2000)
    power = stats.norm.cdf(sim.MARGIN / se - stats.norm.ppf(1 - sim.ALPHA / 2))
    got = summary["twice_margin"]
    assert abs(got["breach"] - power) < 4 * got["breach_se"] + 0.01
    assert summary["zero"]["ok"] == pytest.approx(got["breach"], abs=6 * got["breach_se"])
    # resumable: a second run adds nothing
    assert len(sim.run(out, range(2), reps // 2, 2000, list(sim.SCENARIOS), 1)) == len(rows)
