"""Issue 21's simulations: the generator's structure (fast) and a reduced acceptance run (slow).

The generator is ``benchmarks/_gen_moved.py`` and the runner ``benchmarks/sim_moved.py`` (full
figures: ``python benchmarks/sim_moved.py --seeds 0:1000`` then ``--summary``). The fast tests
check what the generator promises — the ramp moves exactly the buckets it should, the activity
correlation, the trend, the truth turn by turn — and the runner's file handling (resume, torn
lines, summary arithmetic). The slow test is the subset ``.ci/run`` runs: the clean default
estimate on two configurations (activity–rating correlation 0.6, a ramp that grows and one that
shrinks treatment, memory off), per phase and combined.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _load(name: str, filename: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / filename)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen = _load("_gen_moved", "_gen_moved.py")
US = 1_000_000
S0 = int(gen.START.timestamp() * US)
RAMP = int(gen.RAMP.timestamp() * US)
END = int(gen.END.timestamp() * US)


@functools.lru_cache(maxsize=16)
def _gen(**fields: Any) -> Any:
    """A generated experiment, shared by the tests that ask for the same one."""
    return gen.generate(gen.MovedSpec(**fields))


def _sim() -> ModuleType:
    return _load("promptstate_sim_moved", "sim_moved.py")


@pytest.fixture(scope="module")
def grow() -> Any:
    return _gen(n_units=20_000, seed=7, ramp="grow")


@pytest.fixture(scope="module")
def shrink() -> Any:
    return _gen(n_units=20_000, seed=7, ramp="shrink")


def _arms_by_phase(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit: set of arms (bit 1 control, bit 2 treatment) in phase 1 and phase 2."""
    ev = data.events
    t = data.turns
    n = data.units["bucket"].size
    arm = ev["arm"].to_numpy()
    exposed = (t["ts"] >= S0) & (t["ts"] < END)
    code = np.where(arm == "treatment", 2, np.where(arm == "control", 1, 0))
    p1, p2 = np.zeros(n, np.int64), np.zeros(n, np.int64)
    w1, w2 = exposed & (t["ts"] < RAMP), exposed & (t["ts"] >= RAMP)
    np.bitwise_or.at(p1, t["unit"][w1], code[w1])
    np.bitwise_or.at(p2, t["unit"][w2], code[w2])
    return p1, p2, data.units["bucket"]


@pytest.mark.parametrize(("ramp", "before", "after"), [("grow", 1, 2), ("shrink", 2, 1)])
def test_ramp_moves_exactly_the_buckets_between_the_shares(
    grow: Any, shrink: Any, ramp: str, before: int, after: int
) -> None:
    data = grow if ramp == "grow" else shrink
    p1, p2, bucket = _arms_by_phase(data)
    # one arm per unit inside each phase
    assert set(np.unique(p1)) <= {0, 1, 2}
    assert set(np.unique(p2)) <= {0, 1, 2}
    both = (p1 > 0) & (p2 > 0)
    moved = both & (p1 != p2)
    in_band = (bucket >= 0.2) & (bucket < 0.5)
    # moved ⇔ active on both sides with a bucket in [0.2, 0.5), and only out of the shrinking arm
    assert np.array_equal(moved, both & in_band)
    assert np.all(p1[moved] == before)
    assert np.all(p2[moved] == after)
    assert moved.sum() > 0.03 * bucket.size  # enough moved units to matter
    # the arm is the bucket against the share in force
    s1, s2 = gen.SHARES[ramp]
    assert np.array_equal(p1[p1 > 0] == 2, bucket[p1 > 0] < s1)
    assert np.array_equal(p2[p2 > 0] == 2, bucket[p2 > 0] < s2)


def test_conversations_span_the_start_and_the_ramp(grow: Any) -> None:
    t = grow.turns
    conv, ts = t["conv"], t["ts"]
    first = np.full(conv.max() + 1, np.iinfo(np.int64).max)
    last = np.full(conv.max() + 1, np.iinfo(np.int64).min)
    np.minimum.at(first, conv, ts)
    np.maximum.at(last, conv, ts)
    assert ((first < S0) & (last >= S0)).sum() > 50
    assert ((first < RAMP) & (last >= RAMP)).sum() > 50
    # conversation length correlates with the conversation's rating
    length = np.bincount(conv).astype(float)
    mean = np.bincount(conv, weights=t["rating"]) / length
    assert np.corrcoef(length, mean)[0, 1] > 0.05


@pytest.mark.parametrize("corr", [0.0, 0.2, 0.6])
def test_activity_correlation_near_target(corr: float) -> None:
    data = _gen(n_units=20_000, seed=11, corr=corr)
    latent, realised = gen.achieved_correlation(data)
    # sd of a correlation estimate at n = 20,000 is below 0.007
    assert abs(latent - corr) < 0.03, (corr, latent)
    assert -1 < realised < 1
    if corr > 0:
        base = gen.achieved_correlation(_gen(n_units=20_000, seed=11, corr=0.0))[1]
        assert realised > base + corr / 4  # heavier units rate higher in the export too


def test_activity_predicts_being_moved() -> None:
    """With corr 0.6 the moved units are heavier and rate higher: the source of the bias."""
    data = _gen(n_units=20_000, seed=11, corr=0.6)
    p1, p2, _ = _arms_by_phase(data)
    both = (p1 > 0) & (p2 > 0)
    level = data.units["level"]
    assert level[both].mean() - level[(p1 > 0) & ~both].mean() > 0.1


def test_trend_present() -> None:
    data = gen.generate(gen.MovedSpec(n_units=10_000, seed=5, corr=0.0, effect=0.0))
    t = data.turns
    level = data.units["level"][t["unit"]]
    days = (t["ts"] - S0) / (24 * 3600 * US)
    slope = np.polyfit(days, t["rating"] - level, 1)[0]
    assert abs(slope - 0.15) < 0.02, slope


def test_truth_by_construction_turn_by_turn() -> None:
    """Same seed, effect −0.30 vs 0: the ratings differ by −0.30 on treatment-served turns only."""
    spec = gen.MovedSpec(n_units=5_000, seed=21, ramp="shrink")
    with_effect = gen.generate(spec)
    without = gen.generate(gen.MovedSpec(n_units=5_000, seed=21, ramp="shrink", effect=0.0))
    a, b = with_effect.events, without.events
    assert a.drop("rating").equals(b.drop("rating"))
    diff = a["rating"].to_numpy() - b["rating"].to_numpy()
    served2 = a["revision_id"].to_numpy() == "r2"
    np.testing.assert_allclose(diff, -0.30 * served2, atol=1e-12)
    # treatment-served ⇔ tagged treatment inside the exposure window
    t = with_effect.turns
    inside = (t["ts"] >= S0) & (t["ts"] < END)
    assert np.array_equal(served2, inside & (a["arm"].to_numpy() == "treatment"))
    # so every 6-hour block's per-turn contrast of potential outcomes is −0.30
    block = (t["ts"][inside] - S0) // (6 * 3600 * US)
    per_block = np.bincount(block, weights=diff[inside] * served2[inside]) / np.bincount(
        block, weights=served2[inside].astype(float)
    )
    np.testing.assert_allclose(per_block, -0.30, atol=1e-12)


def test_memory_shifts_later_turns_of_units_treated_in_phase_1() -> None:
    off = gen.generate(gen.MovedSpec(n_units=5_000, seed=4, ramp="shrink"))
    on = gen.generate(gen.MovedSpec(n_units=5_000, seed=4, ramp="shrink", delta=-0.2))
    diff = on.events["rating"].to_numpy() - off.events["rating"].to_numpy()
    t = on.turns
    treated1 = np.zeros(5_000, bool)
    treated1[t["unit"][t["served2"] & (t["ts"] < RAMP)]] = True
    expected = -0.2 * (treated1[t["unit"]] & (t["ts"] >= RAMP))
    np.testing.assert_allclose(diff, expected, atol=1e-12)
    # moved units (treatment → control) carry the shift into control
    moved_control = (t["ts"] >= RAMP) & (t["ts"] < END) & ~t["treat"] & treated1[t["unit"]]
    assert moved_control.sum() > 100
    assert np.all(diff[moved_control] == pytest.approx(-0.2))


def test_return_rate_setting_lowers_treated_activity() -> None:
    base = _gen(n_units=10_000, seed=9)
    drop = _gen(n_units=10_000, seed=9, return_drop=0.3)

    def phase2_turns(data: Any, treated_first: bool) -> int:
        t = data.turns
        bucket = data.units["bucket"][t["unit"]]
        group = bucket < 0.2 if treated_first else bucket >= 0.5  # never moved by the ramp
        return int((group & (t["ts"] >= RAMP) & (t["ts"] < END)).sum())

    # units first exposed in treatment come back less; the others do not
    assert phase2_turns(drop, True) < 0.85 * phase2_turns(base, True)
    assert phase2_turns(drop, False) == pytest.approx(phase2_turns(base, False), rel=0.03)


def test_ledger_loads_and_ends_as_asked(tmp_path: Path) -> None:
    import analysis as ps

    for rollback in (True, False):
        data = _gen(n_units=500, seed=1, ramp="shrink", rollback=rollback)
        ledger = ps.load_ledger(data.write_ledger(tmp_path))
        kinds = [p.kind for p in ledger.phases(gen.EXPERIMENT)]
        assert kinds.count("exposure") == 2
        ts = data.turns["ts"]
        assert (ts.max() >= END) == rollback


def test_generates_20000_units_fast() -> None:
    gen.generate(gen.MovedSpec(n_units=2_000, seed=0))  # imports
    t0 = time.process_time()
    data = gen.generate(gen.MovedSpec(n_units=20_000, seed=0))
    # about 0.5 s of CPU on the reference machine; the bound only catches a non-vectorised loop
    assert time.process_time() - t0 < 5.0
    assert data.events.height > 200_000
    assert data.events.columns == [
        "event_id",
        "ts",
        "user_id",
        "experiment_id",
        "arm",
        "conversation_id",
        "revision_id",
        "rating",
    ]


# ------------------------------------------------------------------------- the runner's file


def test_runner_resumes_and_skips_torn_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = _sim()
    out = tmp_path / "rows.jsonl"
    meta = {"config": "c0.6-grow-off", "units": 20_000, "estimator": "meta", "note_fired": {}}
    for seed in (0, 1):
        sim.append_rows(out, [meta | {"seed": seed, "modes": ["keep"]}])
    with out.open("a") as fh:  # a killed writer
        fh.write('{"config": "c0.6-grow-off", "seed": 2, "uni')
    before = out.read_text()
    argv = ["--seeds", "0:2", "--configs", "c0.6-grow-off", "--modes", "keep", "--out", str(out)]
    assert sim.main(argv) == 0
    assert "0 replicates to run (2 already" in capsys.readouterr().out
    assert out.read_text() == before  # nothing run, nothing written
    sim.append_rows(out, [meta | {"seed": 2, "modes": ["today"]}])
    lines = out.read_text().splitlines()
    assert json.loads(lines[-1])["seed"] == 2  # the torn line was closed first
    done = sim.done_keys(out)
    assert set(done) == {("c0.6-grow-off", s, 20_000) for s in (0, 1, 2)}
    # a replicate run by today's code only is not done for the new modes
    assert done[("c0.6-grow-off", 2, 20_000)] == {"today"}


def test_summary_arithmetic(tmp_path: Path) -> None:
    sim = _sim()
    out = tmp_path / "rows.jsonl"
    est = [-0.31, -0.29, -0.33, -0.27]
    for seed, e in enumerate(est):
        key = {"config": "c0-grow-off", "seed": seed, "units": 100}
        rows = [
            key
            | {
                "moved_units": "keep",
                "estimator": "default",
                "phase": "combined",
                "estimate": e,
                "se": 0.02,
                "lo": e - 0.02,
                "hi": e + 0.02,
            },
            key
            | {
                "estimator": "meta",
                "note_fired": {"keep": seed == 0},
                "latent_corr": 0.0,
                "realised_corr": 0.1,
                "seconds": 1.0,
            },
        ]
        sim.append_rows(out, rows)
    sim.append_rows(out, rows)  # a duplicate replicate counts once
    s = sim.summarise(sim.load(out))["stats"]
    assert len(s) == 1
    row = s[0]
    assert row["n"] == 4
    assert row["bias"] == pytest.approx(np.mean(est) + 0.30)
    assert row["bias_mcse"] == pytest.approx(np.std(est, ddof=1) / 2)
    assert row["coverage"] == pytest.approx(0.5)  # −0.33 and −0.27 miss −0.30
    assert row["se_sd"] == pytest.approx(0.02 / np.std(est, ddof=1))
    text = sim.markdown(sim.summarise(sim.load(out)))
    assert "| c0-grow-off | 100 | keep | combined | 4 |" in text


# ------------------------------------------------------------------------ reduced acceptance


def _scale() -> float:
    return float(os.environ.get("PROMPTSTATE_SIM_SCALE", "1.0"))


@pytest.mark.slow
def test_default_estimate_unbiased_when_ramps_move_heavy_units() -> None:
    """Correlation 0.6, ramp grows / shrinks, memory off: bias and coverage per phase.

    Expected to FAIL on the estimator before issue 21 (moved units left out as crossover): on
    that code phase 1 and phase 2 are biased by about ±0.04 in opposite directions
    (``docs/_draft_moved_figures.md``, "before"). 5,000 units, ``160 × PROMPTSTATE_SIM_SCALE``
    replicates (40 per configuration in CI, about 0.9 s of CPU each: about 70 s in all).
    """
    sim = _sim()
    reps = max(30, round(160 * _scale()))
    run_modes = ("keep",) if "keep" in sim.modes() else ("today",)
    for config in sim.CI_CONFIGS:
        rows = [
            r
            for seed in range(reps)
            for r in sim.run_one(config, 5000 + seed, 5_000, run_modes)
            if r["estimator"] == "default"
        ]
        for phase in ("1", "2", "combined"):
            est = np.array([r["estimate"] for r in rows if r["phase"] == phase])
            lo = np.array([r["lo"] for r in rows if r["phase"] == phase])
            hi = np.array([r["hi"] for r in rows if r["phase"] == phase])
            mcse = est.std(ddof=1) / math.sqrt(reps)
            bias = est.mean() - sim.TRUE
            assert abs(bias) < 0.005 + 3 * mcse, (config, phase, bias, mcse)
            coverage = ((lo <= sim.TRUE) & (hi >= sim.TRUE)).mean()
            assert abs(coverage - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / reps), (
                config,
                phase,
                coverage,
            )
