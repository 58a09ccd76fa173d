"""Seeded simulations with known truth: error rates and power of the gate's decisions.

Sizes scale with ``PROMPTSTATE_SIM_SCALE`` (CI: 0.25); tolerances are 3 binomial standard
errors at the size actually run. The recommended sample size is the one docs/baselines.md
states for a suite like the sample's (binary margin 0.02 with at most 10% discordant examples,
continuous margin 0.1 with paired sd 0.8): 2,200 examples.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from analysis.evals.gating import compare_metrics
from analysis.evals.store import MetricSpec

RECOMMENDED_N = 2200
ALPHA = 0.05
SPECS = [
    MetricSpec("correct", "binary", "higher", 0.02),
    MetricSpec("rubric", "continuous", "higher", 0.1),
]


def _reps(base: int) -> int:
    return max(50, int(base * float(os.environ.get("PROMPTSTATE_SIM_SCALE", "1.0"))))


def _tol(p: float, reps: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / reps)


def _binary_pairs(
    rng: np.random.Generator, n: int, delta: float, discord: float = 0.10
) -> tuple[np.ndarray, np.ndarray]:
    """Paired 0/1 outcomes with P(discordant) = discord and P(cand) − P(ref) = delta."""
    b, c = (discord - delta) / 2, (discord + delta) / 2
    u = rng.random(n)
    base = (rng.random(n) < 0.75).astype(float)
    ref = np.where(u < b, 1.0, np.where(u < b + c, 0.0, base))
    cand = np.where(u < b, 0.0, np.where(u < b + c, 1.0, base))
    return ref, cand


def _rubric(
    rng: np.random.Generator, n: int, delta: float, samples: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Example-level means of ``samples`` correlated samples (shared example effect)."""
    example = rng.normal(3.5, 0.6, n)
    ref = example[:, None] + rng.normal(0, 1.0, (n, samples))
    cand = example[:, None] + delta + rng.normal(0, 1.0, (n, samples))
    return ref.mean(axis=1), cand.mean(axis=1)


def _run(
    reps: int, delta_correct: float, delta_rubric: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_metric = np.empty((reps, 2), dtype=object)
    overall = np.empty(reps, dtype=object)
    for i in range(reps):
        rc, cc = _binary_pairs(rng, RECOMMENDED_N, delta_correct)
        rr, cr = _rubric(rng, RECOMMENDED_N, delta_rubric)
        out = compare_metrics(
            {"correct": rc, "rubric": rr}, {"correct": cc, "rubric": cr}, SPECS, alpha=ALPHA
        )
        per_metric[i] = [m.verdict for m in out]
        v = [m.verdict for m in out]
        overall[i] = (
            "regression"
            if "regression" in v
            else "pass"
            if all(x == "pass" for x in v)
            else "inconclusive"
        )
    return per_metric, overall


@pytest.mark.slow
def test_no_true_difference_false_regressions_at_most_alpha() -> None:
    reps = _reps(2000)
    _, overall = _run(reps, 0.0, 0.0, seed=1)
    rate = float(np.mean(overall == "regression"))
    assert rate <= ALPHA + _tol(ALPHA, reps)
    # and an unchanged candidate passes with at least the design power
    pass_rate = float(np.mean(overall == "pass"))
    assert pass_rate >= 0.8 - _tol(0.8, reps)


@pytest.mark.slow
def test_at_the_margin_error_rates_are_at_most_alpha() -> None:
    """True difference exactly −margin: the boundary of both one-sided hypotheses."""
    reps = _reps(2000)
    per_metric, _ = _run(reps, -0.02, -0.1, seed=2)
    for j in range(2):
        verdicts = np.array([row[j] for row in per_metric])
        false_regression = float(np.mean(verdicts == "regression"))
        false_pass = float(np.mean(verdicts == "pass"))
        assert false_regression <= ALPHA + _tol(ALPHA, reps)
        assert false_pass <= ALPHA + _tol(ALPHA, reps)


@pytest.mark.slow
@pytest.mark.parametrize(("metric", "deltas"), [("correct", (-0.04, 0.0)), ("rubric", (0.0, -0.2))])
def test_power_at_twice_the_margin(metric: str, deltas: tuple[float, float]) -> None:
    reps = _reps(2000)
    per_metric, overall = _run(reps, *deltas, seed=3)
    j = 0 if metric == "correct" else 1
    caught = float(np.mean(np.array([row[j] for row in per_metric]) == "regression"))
    assert caught >= 0.8 - _tol(0.8, reps)
    assert float(np.mean(overall == "regression")) >= caught


@pytest.mark.slow
def test_sample_level_pairs_would_inflate_errors_but_example_means_do_not() -> None:
    """Why cluster by example: treating correlated samples as pairs breaks the error rate."""
    reps = _reps(1000)
    rng = np.random.default_rng(4)
    n, k = 300, 5
    spec = [MetricSpec("rubric", "continuous", "higher", 0.1)]
    clustered = naive = 0
    for _ in range(reps):
        # example-level disagreement between revisions (not shared by samples of one example)
        ex_diff = rng.normal(-0.1, 0.8, n)
        ref = rng.normal(0, 0.3, (n, k))
        cand = ref * 0 + ex_diff[:, None] + rng.normal(0, 0.3, (n, k))
        (m,) = compare_metrics({"rubric": ref.mean(1)}, {"rubric": cand.mean(1)}, spec)
        clustered += m.verdict == "regression"
        (s,) = compare_metrics({"rubric": ref.ravel()}, {"rubric": cand.ravel()}, spec)
        naive += s.verdict == "regression"
    assert clustered / reps <= ALPHA + _tol(ALPHA, reps)
    assert naive / reps > 2 * ALPHA
