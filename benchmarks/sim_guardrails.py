"""Acceptance simulation of the guardrail verdicts (issue 22 item 1), seeded, with known truth.

Two parts:

* **Sufficient statistics (numpy), many replicates.** Each replicate draws ``--units`` units per
  arm of a skewed per-unit cost (log-normal, mean 1, sd about 1.3; treatment shifted by the true
  harm), reduces them to the arms' sums and sums of squares, and forms what ``analyze`` reports
  for an unadjusted mean: the difference of means and its Welch standard error. The **real**
  verdict functions judge it (:func:`analysis.stats.guardrail.guardrail_test` and
  :func:`~analysis.stats.guardrail.guardrail_verdicts`, Holm across the family), with the
  margin absolute or relative (``10%`` or ``2%`` of the *estimated* control mean, with the
  margin's variance added as :mod:`analysis.decisions.guardrails` does).
* **End to end (``--e2e-reps``, a few).** The generator of ``tests/_generators.py`` (true effect
  −0.30 per turn, higher is better, so the true harm is 0.30), the real ``split``, ``analyze``
  and :func:`analysis.decisions.evaluate_guardrails` with the margin at the true harm.

Scenarios (true harm against the margin ``m``): ``at_margin`` (harm = m: a false ``breach`` and a
false ``ok`` must each stay ≤ α/2 + 3 MC SE), ``at_margin_rel`` (the same with a relative
margin of 10%; ``at_margin_rel2``: of 2%), ``family3_at_margin`` (three independent guardrails at their margins, Holm: any false
breach, any false ok), ``twice_margin`` (harm = 2m: power of ``breach``), ``zero`` (harm = 0:
power of ``ok``).

    python benchmarks/sim_guardrails.py --seeds 0-9 --reps 2000     # 20 000 per scenario
    python benchmarks/sim_guardrails.py --e2e-reps 20                # end to end, 20 runs
    python benchmarks/sim_guardrails.py --summary                    # the docs' table

Rows go to ``benchmarks/results/sim_guardrails.jsonl`` (one per scenario × seed, appended under
a lock); re-running resumes (a (scenario, seed) already there is skipped).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from analysis.stats.guardrail import guardrail_test, guardrail_verdicts  # noqa: E402

DEFAULT_OUT = HERE / "results" / "sim_guardrails.jsonl"
ALPHA = 0.05
MARGIN = 0.10  # absolute, in the cost's unit (about 2.4 standard errors at 2 000 units per arm)
REL = 0.10  # relative margin: 10% of the control mean (1.0)
SIGMA = 1.0  # log-normal shape: mean 1, sd sqrt(e - 1) ≈ 1.31
#: scenario → (true harm in units of the margin, relative margin or None, guardrails in family)
SCENARIOS: dict[str, tuple[float, float | None, int]] = {
    "at_margin": (1.0, None, 1),
    "at_margin_rel": (1.0, REL, 1),
    "at_margin_rel2": (1.0, 0.02, 1),
    "family3_at_margin": (1.0, None, 3),
    "twice_margin": (2.0, None, 1),
    "zero": (0.0, None, 1),
}


def _arm_stats(rng: np.random.Generator, reps: int, units: int, shift: float) -> tuple[Any, Any]:
    """Per replicate: the mean and the variance of the mean of one arm's per-unit cost."""
    mu = -(SIGMA**2) / 2  # mean exp(mu + σ²/2) = 1
    x = rng.lognormal(mu, SIGMA, size=(reps, units)) + shift
    s1, s2 = x.sum(axis=1), (x * x).sum(axis=1)  # the sufficient statistics
    mean = s1 / units
    var = (s2 - units * mean**2) / (units - 1)
    return mean, var / units


def simulate(scenario: str, seed: int, reps: int, units: int) -> dict[str, Any]:
    """One (scenario, seed) row: verdict counts over ``reps`` replicates."""
    factor, relative, family = SCENARIOS[scenario]
    rng = np.random.default_rng([seed, list(SCENARIOS).index(scenario)])
    true_margin = MARGIN if relative is None else relative * 1.0  # the control mean is 1
    harm = factor * true_margin
    counts = {"breach": 0, "ok": 0, "inconclusive": 0, "any_breach": 0, "any_ok": 0}
    chunk = 250
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        tests: list[list[Any]] = [[] for _ in range(n)]
        for _ in range(family):
            c_mean, c_var = _arm_stats(rng, n, units, 0.0)
            t_mean, t_var = _arm_stats(rng, n, units, harm)  # lower is better: harm = effect
            effect, se = t_mean - c_mean, np.sqrt(c_var + t_var)
            if relative is not None:  # as analysis.decisions.guardrails: an estimated margin
                margin = relative * np.abs(c_mean)
                v_c = se * se / 2  # the control's share of the variance, equal arms
                se = np.sqrt(se * se + (2 * relative + relative**2) * v_c)
            else:
                margin = np.full(n, MARGIN)
            for i in range(n):
                tests[i].append(
                    guardrail_test(float(effect[i]), float(se[i]), float(margin[i]), alpha=ALPHA)
                )
        for row in tests:
            verdicts = [v for v, _, _ in guardrail_verdicts(row, alpha=ALPHA)]
            counts[verdicts[0]] += 1
            counts["any_breach"] += "breach" in verdicts
            counts["any_ok"] += "ok" in verdicts
    return {"part": "numpy", "scenario": scenario, "seed": seed, "reps": reps, "units": units,
            **counts}  # fmt: skip


def simulate_e2e(seed: int, units: int) -> dict[str, Any]:
    """One end-to-end replicate: the real analysis, the margin at the true harm (0.30)."""
    from _generators import RampSpec, generate, ledger_file

    from analysis import load_ledger
    from analysis.decisions import evaluate_guardrails
    from analysis.events.labelling import split
    from analysis.metrics import analyze
    from analysis.metrics.definitions import Ratio

    ledger = load_ledger(ledger_file(Path(tempfile.mkdtemp())))
    metrics = [Ratio("helpfulness", direction="higher", guardrail=0.30)]
    res = analyze(
        split(generate(RampSpec(n_units=units, seed=10_000 + seed)), ledger),
        metrics=metrics,
        explain=False,
        recovery=False,
        completeness=False,
    )
    table = {g.phase: g for g in evaluate_guardrails(res, metrics).rows}
    combined = table["combined"].verdict
    return {"part": "e2e", "scenario": "e2e_at_margin", "seed": seed, "reps": 1,
            "units": units, "breach": int(combined == "breach"), "ok": int(combined == "ok"),
            "inconclusive": int(combined == "inconclusive"), "any_breach": 0,
            "any_ok": 0, "harm": table["combined"].harm,
            "se": table["combined"].se}  # fmt: skip


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows already written (none when the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row under a lock shared by all writers."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"), path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")


def run(
    out: Path,
    seeds: Iterable[int],
    reps: int,
    units: int,
    scenarios: Sequence[str],
    e2e_reps: int = 0,
    e2e_units: int = 1500,
) -> list[dict[str, Any]]:
    """Simulate every missing (scenario, seed) row and append it; return every row."""
    done = {(r["scenario"], r["seed"], r["units"]) for r in read_rows(out)}
    for seed in seeds:
        for sc in scenarios:
            if (sc, seed, units) not in done:
                append_row(out, simulate(sc, seed, reps, units))
    for seed in range(e2e_reps):
        if ("e2e_at_margin", seed, e2e_units) not in done:
            append_row(out, simulate_e2e(seed, e2e_units))
    return read_rows(out)


def summarise(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Pooled rates per scenario with their Monte-Carlo SEs."""
    pooled: dict[str, dict[str, float]] = {}
    for r in rows:
        p = pooled.setdefault(r["scenario"], {"reps": 0, "breach": 0, "ok": 0,
                                              "any_breach": 0, "any_ok": 0})  # fmt: skip
        for k in p:
            p[k] += r[k]
    out: dict[str, dict[str, float]] = {}
    for sc, p in pooled.items():
        n = p["reps"]
        rates: dict[str, float] = {"reps": n}
        for k in ("breach", "ok", "any_breach", "any_ok"):
            rate = p[k] / n if n else math.nan
            rates[k] = rate
            rates[f"{k}_se"] = math.sqrt(rate * (1 - rate) / n) if n else math.nan
        out[sc] = rates
    return out


def _pct(p: float, se: float) -> str:
    return f"{100 * p:.2f}% ± {100 * se:.2f}"


def check(summary: dict[str, dict[str, float]]) -> list[str]:
    """Failures of the acceptance criteria (empty: all hold)."""
    limit = ALPHA / 2
    out = []
    for sc in ("at_margin", "at_margin_rel", "at_margin_rel2", "e2e_at_margin"):
        s = summary.get(sc)
        if s is None:
            continue
        for k in ("breach", "ok"):
            if s[k] > limit + 3 * s[f"{k}_se"] + (1e-12 if s[f"{k}_se"] == 0 else 0):
                out.append(f"{sc}: false {k} {_pct(s[k], s[f'{k}_se'])} > α/2 + 3 MC SE")
    s = summary.get("family3_at_margin")
    if s is not None:
        for k in ("any_breach", "any_ok"):
            if s[k] > limit + 3 * s[f"{k}_se"]:
                out.append(f"family3_at_margin: {k} {_pct(s[k], s[f'{k}_se'])} > α/2 + 3 MC SE")
    return out


def markdown(summary: dict[str, dict[str, float]]) -> str:
    """The docs' table."""
    lines = [
        "| scenario | replicates | `breach` | `ok` | criterion |",
        "|---|---:|---:|---:|---|",
    ]
    notes = {
        "at_margin": "harm = margin: each ≤ 2.5% + 3 MC SE",
        "at_margin_rel": "harm = 10% of control (relative margin): each ≤ 2.5% + 3 MC SE",
        "at_margin_rel2": "harm = 2% of control (relative margin): each ≤ 2.5% + 3 MC SE",
        "family3_at_margin": "3 guardrails at their margins, Holm: any false verdict",
        "twice_margin": "harm = 2 × margin: power of `breach`",
        "zero": "harm = 0: power of `ok`",
        "e2e_at_margin": "real analyze, harm = margin = 0.30 per turn",
    }
    for sc in (*SCENARIOS, "e2e_at_margin"):
        s = summary.get(sc)
        if s is None:
            continue
        b, o = ("any_breach", "any_ok") if sc.startswith("family") else ("breach", "ok")
        lines.append(
            f"| {sc} | {int(s['reps']):,} | {_pct(s[b], s[f'{b}_se'])} | "
            f"{_pct(s[o], s[f'{o}_se'])} | {notes[sc]} |"
        )
    return "\n".join(lines)


def parse_seeds(text: str) -> range:
    """``"0-9"`` → seeds 0..9; ``"3"`` → seed 3."""
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", default="0-9", help="seed range, e.g. 0-9 (default)")
    ap.add_argument("--reps", type=int, default=2000, help="replicates per scenario and seed")
    ap.add_argument("--units", type=int, default=2000, help="units per arm")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    ap.add_argument("--e2e-reps", type=int, default=0, help="end-to-end replicates")
    ap.add_argument("--e2e-units", type=int, default=1500, help="units of each e2e run")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--summary", action="store_true", help="print the Markdown table only")
    args = ap.parse_args(argv)
    if not args.summary:
        scenarios = [s for s in args.scenarios.split(",") if s]
        unknown = set(scenarios) - set(SCENARIOS)
        if unknown:
            ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
        run(args.out, parse_seeds(args.seeds), args.reps, args.units, scenarios,
            args.e2e_reps, args.e2e_units)  # fmt: skip
    summary = summarise(read_rows(args.out))
    print(markdown(summary))
    failures = check(summary)
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
