"""Benchmark: ``promptstate gate`` over 100,000 examples x 5 metrics, and ``promptstate --help``.

Targets (issue 4): the gate finishes in under 2 s of process wall time including interpreter
start-up; ``promptstate --help`` in under 0.5 s. Each figure is the median of ``--repeat`` runs
of a fresh subprocess (``python -c 'from analysis.cli import main; main()'``, what the
``promptstate`` console script runs). Data go to ``benchmarks/data/`` (ignored by
git).

Usage::

    python benchmarks/bench_gate.py [--examples 100000] [--repeat 5] [--check]

``--check`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
METRICS = {
    "correct": {"kind": "binary", "direction": "higher", "margin": 0.02},
    "refused": {"kind": "binary", "direction": "lower", "margin": 0.01},
    "rubric": {"kind": "continuous", "direction": "higher", "margin": 0.1},
    "faithfulness": {"kind": "continuous", "direction": "higher", "margin": 0.02},
    "latency_ms": {"kind": "continuous", "direction": "lower", "margin": 25.0},
}
LEDGER = """version: 1
prompts:
  bench-prompt:
    revisions:
      b1: {}
transitions:
  - {at: 2026-11-01T00:00:00Z, action: deploy, prompt: bench-prompt, revision: b1}
"""


def _results(n: int, seed: int, shift: float) -> pl.DataFrame:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "example_id": [f"ex{i:06d}" for i in range(n)],
            "grader": "bench-grader",
            "correct": (rng.random(n) < 0.8 + shift).astype(np.int8),
            "refused": (rng.random(n) < 0.05).astype(np.int8),
            "rubric": rng.normal(3.5 + shift, 0.7, n),
            "faithfulness": rng.beta(8, 2, n),
            "latency_ms": rng.gamma(9.0, 100.0, n),
        }
    )


def prepare(n: int) -> tuple[Path, Path, Path]:
    """Write the store, the ledger and the candidate; return their paths."""
    sys.path.insert(0, str(ROOT))
    from analysis.evals.store import BaselineStore, SuiteConfig

    if DATA.exists():
        shutil.rmtree(DATA)
    DATA.mkdir(parents=True)
    ref, cand = _results(n, 1, 0.0), _results(n, 2, 0.0)
    cand_path = DATA / "candidate.parquet"
    cand.write_parquet(cand_path)
    ledger = DATA / "ledger.yaml"
    ledger.write_text(LEDGER)
    store = BaselineStore(DATA / "baselines")
    cfg = SuiteConfig.from_mapping(
        {"prompt": "bench-prompt", "grader": "bench-grader", "metrics": METRICS}
    )
    store.init("bench", cfg, actor="bench")
    store.suite("bench").anchor(
        "b1",
        ref,
        actor="bench",
        at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return store.root, ledger, cand_path


def _time(cmd: list[str], repeat: int, ok: tuple[int, ...] = (0, 1)) -> list[float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    store, ledger, cand = prepare(args.examples)
    cli = [sys.executable, "-c", "import sys; from analysis.cli import main; sys.exit(main())"]
    help_times = _time([*cli, "--help"], args.repeat, ok=(0,))
    gate_cmd = [
        *cli,
        "gate",
        "bench",
        "--candidate",
        str(cand),
        "--revision",
        "b2",
        "--ledger",
        str(ledger),
        "--store",
        str(store),
        "--allow-inconclusive",
    ]
    gate_times = _time(gate_cmd, args.repeat)
    h, g = statistics.median(help_times), statistics.median(gate_times)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"promptstate --help: median {h:.3f} s (min {min(help_times):.3f}) target < 0.5 s")
    print(
        f"gate {args.examples:,} examples x {len(METRICS)} metrics: median {g:.3f} s "
        f"(min {min(gate_times):.3f}) target < 2 s"
    )
    missed = h >= 0.5 or (args.examples >= 100_000 and g >= 2.0)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
