"""Generate the sample eval results of suite ``support-qa`` and (optionally) its baseline store.

Seeded and deterministic. The story (see README.md next to this file and docs/baselines.md):

* ``r41`` is the live revision of ``support-assistant``; its eval results were anchored as the
  first baseline (``v0001``).
* ``r42`` looked better on the eval set (+4 points of ``correct``, +0.3 of ``rubric``) and was
  re-anchored as the reference (``v0002``) before its canary; the ledger then rolled it back
  (``data_samples/ledger.yaml``: rollback of exp-17 to r41 at 2026-11-03T08:15Z).
* ``r43`` — a new child of ``r41``, not in the ledger yet — is about as good as ``r41``.
  Graded against the stale ``r42`` baseline it looks like a regression; graded against ``r41``
  (after ``promptstate baseline sync``) it passes.

Usage::

    python data_samples/evals/generate.py                 # rewrite the CSVs
    python data_samples/evals/generate.py --store baselines  # also rebuild baselines/support-qa
"""

from __future__ import annotations

import argparse
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
SEED = 20261103
N_EXAMPLES = 1500
N_SAMPLES = 2
GRADER = "judge-2026-10"
# revision -> (logit shift of P(correct), shift of the rubric mean)
EFFECTS = {"r41": (0.0, 0.0), "r42": (0.75, 0.30), "r43": (0.05, 0.02)}


def _results(rng_master: np.random.Generator) -> dict[str, pl.DataFrame]:
    ids = [f"q{i:04d}" for i in range(1, N_EXAMPLES + 1)]
    # example difficulty: mostly easy or hard (correctness is strongly tied to the example)
    p = rng_master.beta(0.35, 0.12, size=N_EXAMPLES).clip(1e-4, 1 - 1e-4)
    logit = np.log(p / (1 - p))
    mu = rng_master.normal(3.6, 0.7, size=N_EXAMPLES)
    out: dict[str, pl.DataFrame] = {}
    for k, (rev, (shift, rubric_shift)) in enumerate(EFFECTS.items()):
        rng = np.random.default_rng(SEED + 1 + k)
        pr = 1 / (1 + np.exp(-(logit + shift)))
        ex = np.repeat(np.arange(N_EXAMPLES), N_SAMPLES)
        correct = (rng.random(ex.size) < pr[ex]).astype(np.int64)
        rubric = np.clip(mu[ex] + rubric_shift + rng.normal(0, 0.5, ex.size), 1, 5).round(2)
        out[rev] = pl.DataFrame(
            {
                "example_id": [ids[i] for i in ex],
                "sample": np.tile(np.arange(N_SAMPLES), N_EXAMPLES),
                "grader": GRADER,
                "correct": correct,
                "rubric": rubric,
            }
        )
    return out


def _store(store: Path) -> None:
    from analysis.evals.store import BaselineStore, SuiteConfig

    suite_dir = store / "support-qa"
    if suite_dir.exists():
        shutil.rmtree(suite_dir)
    bs = BaselineStore(store)
    cfg = SuiteConfig.load(HERE / "support-qa.suite.yaml")
    s = bs.init(
        "support-qa",
        cfg,
        actor="ml-platform",
        reason="sample suite",
        at=datetime(2026, 10, 20, 9, 0, tzinfo=UTC),
    )
    s.anchor(
        "r41",
        HERE / "support-qa" / "r41.csv",
        actor="ml-platform",
        reason="baseline of the live revision r41",
        at=datetime(2026, 10, 28, 14, 0, tzinfo=UTC),
    )
    s.anchor(
        "r42",
        HERE / "support-qa" / "r42.csv",
        actor="dana",
        reason="r42 scores better on the eval set; re-anchor before the canary",
        at=datetime(2026, 11, 1, 16, 30, tzinfo=UTC),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="also rebuild <store>/support-qa (the state before sync)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    (HERE / "support-qa").mkdir(exist_ok=True)
    for rev, df in _results(rng).items():
        df.write_csv(HERE / "support-qa" / f"{rev}.csv")
    if args.store is not None:
        _store(args.store)


if __name__ == "__main__":
    main()
