"""Seeded simulations of the gate's margin tests, with known truth; the figures of docs/baselines.md.

Scenarios (one metric each, the margin ``m`` in the metric's units):

* ``sparse binary`` — reference 99% ones, one sample per example, ``m = 0.01``; the candidate
  only loses examples (every other pair ties): the all-ties case of the issue.
* ``tied Likert`` — scores 1–5 (P = .02/.03/.10/.25/.60), one sample, ``m = 0.1``; the candidate
  drops one step on some examples and ties elsewhere.
* ``several-sample binary`` — 3 samples per example, per-example success probability
  ``Beta(4, 0.4)`` (mean 0.91, samples of one example correlated), ``m = 0.02``; the candidate's
  probabilities are scaled down.
* ``normal`` — reference ``N(3.5, 0.6)``, paired difference ``N(delta, 0.8)``, ``m = 0.1``.

``alpha`` = 0.05 is the two-sided level (the gate's convention): each one-sided decision is a
test at ``alpha / 2`` = 0.025, the lower bound of the two-sided 95% interval against ``−m``.
For each, at ``n`` = 500 and 3,000 examples: the false-pass rate at ``delta = −m`` (must be at most
``alpha / 2`` = 0.025 up to Monte Carlo error), the false-regression rate there, the power to flag a
regression at ``delta = −2m`` and the pass rate of an unchanged candidate (``delta = 0``). Also:
the exact size of Tango's test by enumeration of the multinomial; the Wald test of the old gate
on the issue's example; the skewness rule on skewed continuous differences; the sample-size
table; a two-metric suite of 2,500 examples like the sample's.

Usage::

    python benchmarks/sim_gate.py [--reps 4000] [--seed 1]
        [--only acceptance,exact,wald,skew,sizes,suite]

``tests/test_gate_simulation.py`` runs the same scenarios at a reduced size (marker ``slow``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.evals.gating import compare_metrics  # noqa: E402
from analysis.evals.store import MetricSpec  # noqa: E402
from analysis.stats import noninferiority as ni  # noqa: E402
from analysis.stats.margin import required_examples_score, tango_sds  # noqa: E402
from analysis.stats.noninferiority import ScoreSupport  # noqa: E402

FloatArray = npt.NDArray[np.float64]
Pairs = tuple[FloatArray, FloatArray]
ALPHA = 0.05
LIKERT_P = np.array([0.02, 0.03, 0.10, 0.25, 0.60])


class Scenario(NamedTuple):
    """A data-generating process with known mean paired difference ``delta``."""

    name: str
    spec: MetricSpec
    generate: Callable[[np.random.Generator, int, float], Pairs]
    single_sample: bool
    support: ScoreSupport | None


def sparse_binary(rng: np.random.Generator, n: int, delta: float) -> Pairs:
    """Reference 99% ones; the candidate loses ``−delta`` of the pairs (1→0), wins none."""
    ref = (rng.random(n) < 0.99).astype(np.float64)
    lose = rng.random(n) < max(-delta, 0.0) / 0.99
    win = rng.random(n) < max(delta, 0.0) / 0.01
    cand = np.where((ref == 1) & lose, 0.0, np.where((ref == 0) & win, 1.0, ref))
    return ref, cand


def tied_likert(rng: np.random.Generator, n: int, delta: float) -> Pairs:
    """Likert 1–5; the candidate drops (or gains) one step on some examples, ties elsewhere."""
    ref = rng.choice(np.arange(1.0, 6.0), p=LIKERT_P, size=n)
    down = rng.random(n) < max(-delta, 0.0) / (1 - LIKERT_P[0])
    up = rng.random(n) < max(delta, 0.0) / (1 - LIKERT_P[-1])
    cand = ref - ((ref > 1) & down) + ((ref < 5) & up)
    return ref, cand


def several_sample_binary(rng: np.random.Generator, n: int, delta: float, k: int = 3) -> Pairs:
    """``k`` samples per example; shared per-example probability; candidate scaled by ``1 + c``."""
    a, b = 4.0, 0.4
    p = rng.beta(a, b, n)
    scale = 1.0 + delta / (a / (a + b))
    q = np.clip(p * scale, 0.0, 1.0)
    ref = (rng.random((n, k)) < p[:, None]).mean(axis=1)
    cand = (rng.random((n, k)) < q[:, None]).mean(axis=1)
    return ref, cand


def normal_scores(rng: np.random.Generator, n: int, delta: float) -> Pairs:
    """Reference ``N(3.5, 0.6)``; paired difference ``N(delta, 0.8)``."""
    ref = rng.normal(3.5, 0.6, n)
    return ref, ref + rng.normal(delta, 0.8, n)


SCENARIOS = (
    Scenario(
        "sparse binary",
        MetricSpec("m", "binary", "higher", 0.01),
        sparse_binary,
        True,
        ScoreSupport(0.0, 1.0, 1.0),
    ),
    Scenario(
        "tied Likert",
        MetricSpec("m", "continuous", "higher", 0.1),
        tied_likert,
        True,
        ScoreSupport(1.0, 5.0, 1.0),
    ),
    Scenario(
        "several-sample binary",
        MetricSpec("m", "binary", "higher", 0.02),
        several_sample_binary,
        False,
        ScoreSupport(0.0, 1.0, 1.0 / 3.0),
    ),
    Scenario(
        "normal",
        MetricSpec("m", "continuous", "higher", 0.1),
        normal_scores,
        True,
        None,
    ),
)


def verdicts(scenario: Scenario, n: int, delta: float, reps: int, seed: int) -> list[str]:
    """Verdicts of the gate (``compare_metrics``) on ``reps`` generated suites."""
    rng = np.random.default_rng(seed)
    supports = None if scenario.support is None else {"m": scenario.support}
    out: list[str] = []
    for _ in range(reps):
        ref, cand = scenario.generate(rng, n, delta)
        (res,) = compare_metrics(
            {"m": ref},
            {"m": cand},
            [scenario.spec],
            alpha=ALPHA,
            binary_single_sample=scenario.single_sample,
            supports=supports,
        )
        out.append(res.verdict)
    return out


def rate(values: Sequence[str], what: str) -> tuple[float, float]:
    """Share of ``what`` and its Monte Carlo standard error."""
    p = sum(v == what for v in values) / len(values)
    return p, math.sqrt(max(p * (1 - p), 1e-12) / len(values))


class Row(NamedTuple):
    """Acceptance figures of one scenario at one size."""

    scenario: str
    n: int
    reps: int
    false_pass: float
    false_pass_se: float
    false_regression: float
    power_2m: float
    pass_at_0: float


def acceptance(reps: int, seed: int, sizes: Sequence[int] = (500, 3000)) -> list[Row]:
    """False pass / false regression at ``−m``, power at ``−2m``, pass rate at 0."""
    rows = []
    for i, sc in enumerate(SCENARIOS):
        m = sc.spec.margin
        for j, n in enumerate(sizes):
            base = seed + 100 * i + 10 * j
            at_margin = verdicts(sc, n, -m, reps, base)
            at_2m = verdicts(sc, n, -2 * m, reps, base + 1)
            at_0 = verdicts(sc, n, 0.0, reps, base + 2)
            fp, se = rate(at_margin, "pass")
            rows.append(
                Row(
                    sc.name,
                    n,
                    reps,
                    fp,
                    se,
                    rate(at_margin, "regression")[0],
                    rate(at_2m, "regression")[0],
                    rate(at_0, "pass")[0],
                )
            )
    return rows


# ---------------------------------------------------------------- a suite like the sample's

RECOMMENDED_N = 2500
SUITE_SPECS = (
    MetricSpec("correct", "binary", "higher", 0.02),
    MetricSpec("rubric", "continuous", "higher", 0.1),
)


def suite_binary(rng: np.random.Generator, n: int, delta: float, discord: float = 0.10) -> Pairs:
    """Paired 0/1 outcomes with P(discordant) = discord and P(cand) − P(ref) = delta."""
    b, c = (discord - delta) / 2, (discord + delta) / 2
    u = rng.random(n)
    base = (rng.random(n) < 0.75).astype(float)
    ref = np.where(u < b, 1.0, np.where(u < b + c, 0.0, base))
    cand = np.where(u < b, 0.0, np.where(u < b + c, 1.0, base))
    return ref, cand


def suite_rubric(rng: np.random.Generator, n: int, delta: float, samples: int = 3) -> Pairs:
    """Example-level means of ``samples`` correlated samples (shared example effect)."""
    example = rng.normal(3.5, 0.6, n)
    ref = example[:, None] + rng.normal(0, 1.0, (n, samples))
    cand = example[:, None] + delta + rng.normal(0, 1.0, (n, samples))
    return ref.mean(axis=1), cand.mean(axis=1)


def suite_run(
    reps: int, delta_correct: float, delta_rubric: float, seed: int
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """Per-metric and overall verdicts of a two-metric suite of 2,500 examples."""
    rng = np.random.default_rng(seed)
    per_metric = np.empty((reps, 2), dtype=object)
    overall = np.empty(reps, dtype=object)
    for i in range(reps):
        rc, cc = suite_binary(rng, RECOMMENDED_N, delta_correct)
        rr, cr = suite_rubric(rng, RECOMMENDED_N, delta_rubric)
        out = compare_metrics(
            {"correct": rc, "rubric": rr}, {"correct": cc, "rubric": cr}, SUITE_SPECS, alpha=ALPHA
        )
        v = [m.verdict for m in out]
        per_metric[i] = v
        overall[i] = (
            "regression" if "regression" in v else "pass" if all(x == "pass" for x in v) else
            "inconclusive"
        )  # fmt: skip
    return per_metric, overall


def suite_table(reps: int) -> list[str]:
    """The figures of the 2,500-example table (seeds as in tests/test_gate_simulation.py)."""

    def share(values: npt.NDArray[np.object_], what: str) -> float:
        return float(np.mean(values == what))

    out = []
    pm, ov = suite_run(reps, 0.0, 0.0, seed=1)
    out.append(f"| no difference | {share(ov, 'regression'):.3f} | {share(ov, 'pass'):.3f} | — |")
    pm, ov = suite_run(reps, -0.02, -0.1, seed=2)
    c, r = pm[:, 0], pm[:, 1]
    out.append(
        f"| exactly −margin on both metrics | {share(ov, 'regression'):.3f} (correct "
        f"{share(c, 'regression'):.3f}, rubric {share(r, 'regression'):.3f}) | correct "
        f"{share(c, 'pass'):.3f}, rubric {share(r, 'pass'):.3f} | — |"
    )
    pm, _ = suite_run(reps, -0.04, 0.0, seed=3)
    out.append(f"| correct −2×margin | — | — | {share(pm[:, 0], 'regression'):.3f} |")
    pm, _ = suite_run(reps, 0.0, -0.2, seed=3)
    out.append(f"| rubric −2×margin | — | — | {share(pm[:, 1], 'regression'):.3f} |")
    return out


# ---------------------------------------------------------------- exact size (binary, one sample)


def exact_size(
    n: int, margin: float, p_wins: Sequence[float], alpha: float = ALPHA, *, side: str = "pass"
) -> list[tuple[float, float]]:
    """Exact ``P(pass)`` of Tango's test at ``p_loss − p_win = margin``, for each ``p_win``.

    Sums the multinomial probability of every ``(wins, losses)`` whose Tango statistic passes
    (``side="regression"``: is flagged as a regression, the other one-sided error there).
    """
    from scipy.special import gammaln, ndtri

    z = float(ndtri(1 - alpha / 2))
    w, l_ = np.meshgrid(np.arange(n + 1.0), np.arange(n + 1.0), indexing="ij")
    keep = w + l_ <= n
    w, l_ = w[keep], l_[keep]
    d0 = -margin
    a = 2.0 * n
    b = -w - l_ + (2.0 * n - w + l_) * d0
    c = -l_ * d0 * (1 - d0)
    q = (np.sqrt(b * b - 4 * a * c) - b) / (2 * a)
    stat = (w - l_ - n * d0) / np.sqrt(n * (2 * q + d0 - d0 * d0))
    passes = stat > z if side == "pass" else stat < -z
    logc = gammaln(n + 1) - gammaln(w + 1) - gammaln(l_ + 1) - gammaln(n - w - l_ + 1)
    out = []
    for pw in p_wins:
        pl = pw + margin
        with np.errstate(divide="ignore", invalid="ignore"):
            lw = np.where(w > 0, w * np.log(pw) if pw > 0 else -np.inf, 0.0)
            lp = logc + lw + l_ * np.log(pl) + (n - w - l_) * np.log(1 - pw - pl)
        out.append((pw, float(np.exp(lp[passes]).sum())))
    return out


def wald_false_pass(n: int, margin: float, discordant_losses: float, reps: int, seed: int) -> float:
    """False-pass rate of the old gate (paired t / Wald on the observed sd) at ``delta = −m``.

    The candidate loses ``discordant_losses`` of the pairs and wins ``discordant_losses − m``.
    """
    from analysis.stats import paired

    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        u = rng.random(n)
        d = np.where(u < discordant_losses, -1.0, 0.0)
        d = np.where((u >= discordant_losses) & (u < 2 * discordant_losses - margin), 1.0, d)
        t = paired.paired_t(d)
        hits += paired.margin_pvalues(t.mean, t.se, t.df, margin).p_noninferior < ALPHA / 2
    return hits / reps


# ---------------------------------------------------------------- skewness rule


def _lognormal(sigma: float) -> Callable[[np.random.Generator, int], FloatArray]:
    mu = math.exp(sigma * sigma / 2)
    return lambda rng, n: -(rng.lognormal(0.0, sigma, n) - mu) * 0.3


def _catastrophic(share: float) -> Callable[[np.random.Generator, int], FloatArray]:
    def gen(rng: np.random.Generator, n: int) -> FloatArray:
        d = np.where(rng.random(n) < share, -3.0, rng.normal(0.0, 0.1, n))
        return d + 3.0 * share

    return gen


SKEWED = {
    "gamma(0.1), skewness −6.3": lambda rng, n: -(rng.gamma(0.1, 1.5, n) - 0.15),
    "lognormal(σ=1), skewness −6.2": _lognormal(1.0),
    "lognormal(σ=1.5), skewness −33": _lognormal(1.5),
    "1% catastrophic drops": _catastrophic(0.01),
}


def skew_rates(
    gen: Callable[[np.random.Generator, int], FloatArray],
    n: int,
    delta: float,
    reps: int,
    seed: int,
) -> tuple[float, float, float]:
    """``(paired t, restricted score without the rule, gate with the rule)`` pass rates."""
    from analysis.stats import paired
    from analysis.stats.margin import margin_test

    rng = np.random.default_rng(seed)
    m = 0.1
    t_pass = s_pass = g_pass = 0
    for _ in range(reps):
        d = gen(rng, n) + delta
        ref = rng.normal(3.0, 0.5, n)
        cand = ref + d
        width = float(max(ref.max(), cand.max()) - min(ref.min(), cand.min()))
        t = paired.paired_t(d)
        t_pass += paired.margin_pvalues(t.mean, t.se, t.df, m).p_noninferior < ALPHA / 2
        s = ni.score_test(d, m, lower=-width, upper=width)
        s_pass += s.p_noninferior < ALPHA / 2
        g = margin_test(ref, cand, binary=False, sign=1, margin=m, alpha=ALPHA)
        g_pass += g.p_noninferior < ALPHA / 2 and g.blocked not in ("pass", "both")
    return t_pass / reps, s_pass / reps, g_pass / reps


# ---------------------------------------------------------------- sample sizes


def sample_sizes(alpha: float = ALPHA, power: float = 0.8) -> list[list[str]]:
    """Examples for both goals (regression of 2m flagged, unchanged candidate passes).

    ``alpha`` is two-sided: the regression test runs at ``alpha / (2k)`` (Holm worst case), the
    non-inferiority test at ``alpha / 2``.
    """
    rows = []
    for k in (1, 2, 5):
        cells = [str(k)]
        for m, discordances in ((0.02, (0.05, 0.10, 0.20)), (0.05, (0.10, 0.20, 0.30))):
            parts = []
            for disc in discordances:
                s0, s1 = tango_sds(disc, -2 * m, -m)
                n_reg = required_examples_score(s0, s1, m, alpha=alpha / (2 * k), power=power)
                s0, s1 = tango_sds(disc, 0.0, -m)
                n_pass = required_examples_score(s0, s1, m, alpha=alpha / 2, power=power)
                parts.append(f"{max(n_reg, n_pass):,}")
            cells.append(" / ".join(parts))
        parts = []
        for sd in (0.5, 0.8, 1.2):
            n_reg = required_examples_score(sd, sd, 0.1, alpha=alpha / (2 * k), power=power)
            n_pass = required_examples_score(sd, sd, 0.1, alpha=alpha / 2, power=power)
            parts.append(f"{max(n_reg, n_pass):,}")
        cells.append(" / ".join(parts))
        rows.append(cells)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Print every table as Markdown."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="acceptance,exact,wald,skew,sizes,suite")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    start = time.perf_counter()
    if "acceptance" in parts:
        print(
            f"## Acceptance ({args.reps:,} replications each, alpha = {ALPHA} two-sided, "
            f"decisions at {ALPHA / 2})\n"
        )
        print(
            "| scenario | n | false pass at −m (MC SE) | false regression at −m "
            "| regression caught at −2m | pass at 0 |"
        )
        print("|---|---|---|---|---|---|")
        for r in acceptance(args.reps, args.seed):
            print(
                f"| {r.scenario} | {r.n:,} | {r.false_pass:.4f} ({r.false_pass_se:.4f}) | "
                f"{r.false_regression:.4f} | {r.power_2m:.3f} | {r.pass_at_0:.3f} |"
            )
        print()
    if "exact" in parts:
        print("## Exact size of Tango's test (sup over p_win on a grid of 41 values)\n")
        print("| n | margin | sup P(pass) at −m | at p_win | sup P(regression) at −m |")
        print("|---|---|---|---|---|")
        grid = [0.0, *np.geomspace(1e-4, 0.2, 40)]
        for n in (200, 500, 3000):
            for m in (0.005, 0.01, 0.02):
                size = exact_size(n, m, grid)
                pw, worst = max(size, key=lambda x: x[1])
                reg = max(p for _, p in exact_size(n, m, grid, side="regression"))
                print(f"| {n:,} | {m} | {worst:.4f} | {pw:.4g} | {reg:.4f} |")
        print()
    if "wald" in parts:
        print("## The old gate (Wald / paired t on the observed sd), the issue's example\n")
        for losses in (0.005, 0.01):
            fp = wald_false_pass(200, 0.005, losses, args.reps, args.seed)
            print(f"- n = 200, margin 0.005, losses {losses:.1%}: false pass {fp:.4f}")
        print()
    if "skew" in parts:
        print(f"## Skewed continuous differences, margin 0.1 ({args.reps:,} replications)\n")
        print("| differences | n | pass at −m: t / score / gate | pass at 0: t / score / gate |")
        print("|---|---|---|---|")
        for i, (name, gen) in enumerate(SKEWED.items()):
            for j, n in enumerate((100, 200, 500, 1000)):
                seed = args.seed + 1000 + 10 * i + j
                a = skew_rates(gen, n, -0.1, args.reps, seed)
                b = skew_rates(gen, n, 0.0, args.reps, seed + 5)
                print(
                    f"| {name} | {n:,} | {a[0]:.3f} / {a[1]:.3f} / {a[2]:.3f} | "
                    f"{b[0]:.3f} / {b[1]:.3f} / {b[2]:.3f} |"
                )
        print()
    if "sizes" in parts:
        print("## Examples needed (max of: regression of 2m flagged, unchanged passes; 80%)\n")
        print(
            "| metrics k | binary, margin 0.02, discordance 5% / 10% / 20% | binary, margin "
            "0.05, 10% / 20% / 30% | continuous, margin 0.1, sd 0.5 / 0.8 / 1.2 |"
        )
        print("|---|---|---|---|")
        for row in sample_sizes():
            print("| " + " | ".join(row) + " |")
        print()
    if "suite" in parts:
        print(
            f"## A suite like the sample's: {RECOMMENDED_N:,} examples ({args.reps:,} replications)\n"
        )
        print("| truth | false regression (overall) | pass | regression caught |")
        print("|---|---|---|---|")
        print("\n".join(suite_table(args.reps)))
        print()
    print(f"_{time.perf_counter() - start:.0f} s_", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
