"""Seeded simulation: the clean CI covers the true effect ~95% of the time; naive is biased.

Each replicate generates a full canary story with :func:`analysis.sample.generate` (ramp,
rollback, stale tags, carryover, semantic-cache hits, served mismatches, crossover units; true
per-turn helpfulness effect −0.4), splits it and analyses helpfulness per turn. Size: 400
replicates × 2 500 users at ``PROMPTSTATE_SIM_SCALE=1``; CI runs 0.25 (100 replicates).
The coverage tolerance is three binomial standard errors at the run's size.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from analysis.events.labelling import split
from analysis.ledger import load_ledger
from analysis.metrics import analyze
from analysis.metrics.definitions import Ratio
from analysis.sample import SampleSpec, generate

TRUE_EFFECT = -0.4
SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


def sim_scale() -> float:
    """Size factor (env ``PROMPTSTATE_SIM_SCALE``, default 1.0)."""
    return float(os.environ.get("PROMPTSTATE_SIM_SCALE", "1.0"))


def run_simulation(
    replicates: int, n_users: int = 2500, seed0: int = 1000
) -> dict[str, np.ndarray]:
    """Per replicate: clean estimates and coverage per phase and combined, naive estimate."""
    ledger = load_ledger(SAMPLES / "ledger.yaml")
    out: dict[str, list[float]] = {}
    for r in range(replicates):
        sample = generate(SampleSpec(n_users=n_users, seed=seed0 + r))
        res = analyze(
            split(sample.events, ledger),
            metrics=[Ratio("helpfulness")],
            explain=False,
            recovery=False,
        )
        for phase in ("1", "2", "combined"):
            e = res.effect("helpfulness", phase=phase)
            out.setdefault(f"est_{phase}", []).append(e.effect)
            covered = e.effect_ci_lower <= TRUE_EFFECT <= e.effect_ci_upper
            out.setdefault(f"cov_{phase}", []).append(float(covered))
        n = res.effect("helpfulness", analysis="naive", phase="pooled")
        out.setdefault("est_naive", []).append(n.effect)
        covered = n.effect_ci_lower <= TRUE_EFFECT <= n.effect_ci_upper
        out.setdefault("cov_naive", []).append(float(covered))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.slow
def test_clean_ci_covers_truth_and_naive_is_biased() -> None:
    replicates = max(40, round(400 * sim_scale()))
    sim = run_simulation(replicates)
    tol = 3 * math.sqrt(0.95 * 0.05 / replicates)
    for phase in ("1", "2", "combined"):
        coverage = sim[f"cov_{phase}"].mean()
        assert abs(coverage - 0.95) <= tol, (phase, coverage, tol)
        est = sim[f"est_{phase}"]
        # unbiased within 4 standard errors of the simulation mean
        assert abs(est.mean() - TRUE_EFFECT) < 4 * est.std(ddof=1) / math.sqrt(replicates) + 0.01
    naive = sim["est_naive"]
    assert naive.mean() - TRUE_EFFECT > 0.1  # diluted towards zero by contaminated events
    assert sim["cov_naive"].mean() < 0.5


if __name__ == "__main__":  # full-size figures for docs/metrics.md
    import sys

    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    sim = run_simulation(reps)
    for key in ("1", "2", "combined", "naive"):
        est = sim[f"est_{key}"]
        print(
            f"{key:>9}: coverage {sim[f'cov_{key}'].mean():.3f}  mean {est.mean():+.4f}  "
            f"sd {est.std(ddof=1):.4f}  (replicates {reps})"
        )
