"""Acceptance simulation of the clean estimates on bucket-moving canary → ramp → rollback runs.

Each replicate generates an experiment with ``tests/_generators.py`` (units arriving over three
days, a hash-bucket ramp 0.8/0.2 → 0.5/0.5 that moves control units into treatment, a linear
time trend, a pre-period, stale tags, cache hits, carryover; true effect −0.30 per turn), runs
the real ``split()`` and ``analyze()`` on it and records the clean estimates of helpfulness per
turn: per phase and combined, regression-adjusted (the default) and unadjusted, with 6-hour
blocks (the default) and with whole phases as strata (``block_hours=None``).

    python benchmarks/sim_combined.py --reps 1000 --units 5000            # one size
    python benchmarks/sim_combined.py --full                              # the docs' table

``--full`` runs 1 000 replicates at 5 000 and at 20 000 units, 200 at 80 000 (whole-phase
strata too at 5 000 and 80 000) and one run at 1.3 million units, and prints the table of ``docs/metrics.md`` (bias with its Monte-Carlo SE,
coverage of the 95% CI, mean SE / sd of the estimates, variance reduction from adjustment).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _generators import RampSpec, generate, ledger_file  # noqa: E402

from analysis import load_ledger  # noqa: E402
from analysis.events.labelling import split  # noqa: E402
from analysis.metrics import analyze  # noqa: E402
from analysis.metrics.definitions import Ratio  # noqa: E402

TRUE = -0.30
KEYS = ("1", "2", "combined")


def run(reps: int, units: int, seed0: int = 0, *, phases: bool = True) -> dict[str, np.ndarray]:
    """Per replicate: estimate, SE and CI of each scope, adjusted and not, blocks and phases."""
    ledger = load_ledger(ledger_file(Path(tempfile.mkdtemp())))
    metric = [Ratio("helpfulness", direction="higher")]
    out: dict[str, list[float]] = {}
    for r in range(reps):
        res = split(generate(RampSpec(n_units=units, seed=seed0 + r)), ledger)
        variants = [("blocks", 6.0)] + ([("phases", None)] if phases else [])
        for name, hours in variants:
            a = analyze(res, metrics=metric, explain=False, recovery=False, block_hours=hours)
            for key in KEYS:
                e = a.effect("helpfulness", phase=key)
                z = (e.effect_ci_upper - e.effect_ci_lower) / (2 * e.se)
                se_u = (e.effect_unadjusted_ci_upper - e.effect_unadjusted_ci_lower) / (2 * z)
                for tag, est, lo, hi, se in (
                    ("adj", e.effect, e.effect_ci_lower, e.effect_ci_upper, e.se),
                    (
                        "raw",
                        e.effect_unadjusted,
                        e.effect_unadjusted_ci_lower,
                        e.effect_unadjusted_ci_upper,
                        se_u,
                    ),
                ):
                    k = f"{name}|{key}|{tag}"
                    out.setdefault(f"{k}|est", []).append(est)
                    out.setdefault(f"{k}|se", []).append(se)
                    out.setdefault(f"{k}|cov", []).append(float(lo <= TRUE <= hi))
    return {k: np.array(v) for k, v in out.items()}


def summarise(sim: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
    """Bias, its MC SE, coverage, its MC SE, mean SE / sd and sd of one estimate."""
    est, se, cov = sim[f"{prefix}|est"], sim[f"{prefix}|se"], sim[f"{prefix}|cov"]
    n = est.size
    sd = float(est.std(ddof=1)) if n > 1 else math.nan
    return {
        "n": n,
        "bias": float(est.mean() - TRUE),
        "bias_mcse": sd / math.sqrt(n) if n > 1 else math.nan,
        "coverage": float(cov.mean()),
        "cov_mcse": math.sqrt(0.95 * 0.05 / n),
        "se_sd": float(se.mean()) / sd if n > 1 else math.nan,
        "sd": sd,
        "se": float(se.mean()),
    }


def table(sim: dict[str, np.ndarray], units: int, variants: tuple[str, ...]) -> list[str]:
    """Markdown rows for one size."""
    rows = []
    for name in variants:
        for key in KEYS:
            for tag in ("adj", "raw"):
                s = summarise(sim, f"{name}|{key}|{tag}")
                rows.append(
                    f"| {units:,} | {s['n']} | {name} | {key} | {'yes' if tag == 'adj' else 'no'} "
                    f"| {s['bias']:+.4f} ± {s['bias_mcse']:.4f} | {s['coverage']:.3f} "
                    f"± {s['cov_mcse']:.3f} | {s['se_sd']:.3f} | {s['sd']:.4f} |"
                )
    return rows


HEADER = [
    "| units | replicates | strata | phase | adjusted | bias ± MC SE | coverage ± MC SE "
    "| mean SE / sd | sd |",
    "|---|---|---|---|---|---|---|---|---|",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="the docs' full acceptance table")
    args = parser.parse_args()
    plans = (
        [(1000, 5000, True), (1000, 20000, False), (200, 80000, True)]
        if args.full
        else [(args.reps, args.units, True)]
    )
    lines = list(HEADER)
    for reps, units, phases in plans:
        t0 = time.perf_counter()
        sim = run(reps, units, args.seed, phases=phases)
        variants = ("blocks", "phases") if phases else ("blocks",)
        lines += table(sim, units, variants)
        print("\n".join(lines[-len(variants) * 6 :]), flush=True)
        adj = summarise(sim, "blocks|combined|adj")["sd"] ** 2
        raw = summarise(sim, "blocks|combined|raw")["sd"] ** 2
        print(
            f"# {reps} x {units:,} units: {time.perf_counter() - t0:.0f} s; variance of the "
            f"combined estimate with adjustment / without: {adj / raw:.3f} "
            f"(reduction {1 - adj / raw:.1%})",
            flush=True,
        )
    if args.full:
        t0 = time.perf_counter()
        ledger = load_ledger(ledger_file(Path(tempfile.mkdtemp())))
        res = split(generate(RampSpec(n_units=1_300_000, seed=args.seed + 99)), ledger)
        a = analyze(
            res,
            metrics=[Ratio("helpfulness", direction="higher")],
            explain=False,
            recovery=False,
        )
        e = a.effect("helpfulness")
        print(
            f"# 1,300,000 units, one run ({time.perf_counter() - t0:.0f} s): combined "
            f"{e.effect:+.4f} [{e.effect_ci_lower:+.4f}, {e.effect_ci_upper:+.4f}] "
            f"(covers {TRUE}: {e.effect_ci_lower <= TRUE <= e.effect_ci_upper}); unadjusted "
            f"{e.effect_unadjusted:+.4f} [{e.effect_unadjusted_ci_lower:+.4f}, "
            f"{e.effect_unadjusted_ci_upper:+.4f}]; units {e.n_control:,} + {e.n_arm:,}",
            flush=True,
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
