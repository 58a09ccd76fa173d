"""Validity simulation of ``--sequential`` monitoring (issue 22, item 2), on sufficient statistics.

Each replicate is a 7-day canary looked at every hour (168 looks). Units arrive as Poisson
counts per hour with a daily cycle (``1 + 0.5 sin``; ``--units`` expected in all, default
20,000) and are assigned by the phase's allocation: ``fixed`` 0.9/0.1 (control/treatment) all
week, or ``ramp`` 0.9/0.1 for 48 h then 0.5/0.5. Each unit carries two metrics drawn from a
shared latent normal pair (correlation 0.5):

* ``cost`` = ``exp(Z₁)`` (lognormal, skewness 6.2; lower is better) — the regression metric that
  the harm scenarios raise by ``harm × MDE`` (MDE at the planned size, two-sided α = 0.05,
  power 0.8);
* ``converted`` = ``1{Z₂ < Φ⁻¹(0.1)}`` (higher is better) — also a guardrail with a margin of one
  MDE.

With ``late`` on, 10% of each hour's units reach the warehouse 6 hours late (they are missing
from the looks in between). The per-(hour, arm, late) sums of ``n``, ``x`` and ``x²`` are all a
look needs: the effect per exposure phase is the Welch difference of the available units, phases
are combined with design weights (phase sizes, as ``analyze`` does for moment metrics), a phase
enters once it has ≥ 100 units per arm, and no look decides before ≥ 100 units per arm (the
burn-in; the first full block is the first hour).

Decisions counted at every look, ``seq`` (what ``--sequential`` does, with
:mod:`analysis.stats.sequential` and :mod:`analysis.stats.srm_sequential`) against ``fixed`` (the
same decisions with fixed-horizon tests repeated at every look):

* ``regression``: Holm across the two metrics (always-valid two-sided p-values, running
  minimum / z-test p-values) at α = 0.05, in the harmful direction;
* ``guardrail``: breach of ``converted`` (``H0: harm ≤ margin`` rejected one-sided at α/2);
* ``srm``: sequential Dirichlet-multinomial SRM test per phase / Pearson chi-square per phase, at
  0.001 (the fixed-horizon check's threshold);
* ``any``: the first of the three — the false-alarm rate under the null.

Under harm: the first look at which ``cost`` is flagged (detection delay in hours) and the power
of one fixed-horizon test at the end (168 h).

Each ``(scenario, seed)`` runs ``--reps-per-seed`` replicates (default 500) vectorised over
replicates and appends one JSONL row (histograms of the first look of each decision) to
``benchmarks/results/sim_sequential.jsonl``; re-running resumes, disjoint ``--seeds`` may run in
parallel processes. ``tests/stats/test_sequential.py`` runs the same code at a reduced size.

Usage::

    python benchmarks/sim_sequential.py --seeds 0:20            # 10,000 canaries per scenario
    python benchmarks/sim_sequential.py --seeds 0:2 --scenarios 'null-*'
    python benchmarks/sim_sequential.py --summary
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from analysis.stats.multiplicity import adjust_pvalues
from analysis.stats.sequential import first_look, pvalue_at_look, running_pvalues
from analysis.stats.srm_sequential import dirichlet_multinomial_log_bf

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "sim_sequential.jsonl"

HOURS = 168
ALPHA = 0.05
ALPHA_SRM = 0.001
POWER = 0.8
MIN_UNITS = 100  # burn-in: units per arm (and per phase before it enters the combination)
LATE_SHARE, LATE_HOURS = 0.1, 6
RAMP_HOUR = 48
SIGMA = 1.0  # cost = exp(SIGMA * Z1)
P_CONV = 0.1
RHO = 0.5
CHUNK = 250  # replicates generated at once (memory)
DECISIONS = ("regression", "guardrail", "srm", "any", "cost")

F = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Scenario:
    """One simulated design.

    Attributes:
        name: Label.
        ramp: ``False``: 0.9/0.1 all week; ``True``: 0.9/0.1 for 48 h, then 0.5/0.5.
        harm: Increase of ``cost`` in the treatment arm, in MDEs at the planned size.
        late: 10% of each hour's units arrive 6 h late.
    """

    name: str
    ramp: bool
    harm: float
    late: bool


def _scenarios() -> dict[str, Scenario]:
    out: dict[str, Scenario] = {}
    for harm in (0.0, 1.0, 2.0):
        for ramp in (False, True):
            for late in (False, True):
                if harm and ramp:
                    continue
                name = f"{'null' if not harm else f'harm{harm:g}'}-{'ramp' if ramp else 'fixed'}"
                name += "-late" if late else ""
                out[name] = Scenario(name, ramp, harm, late)
    return out


SCENARIOS = _scenarios()


def treatment_share(sc: Scenario) -> F:
    """Treatment share of the newly enrolled units of each hour."""
    p = np.full(HOURS, 0.1)
    if sc.ramp:
        p[RAMP_HOUR:] = 0.5
    return p


def phase_of_hour(sc: Scenario) -> npt.NDArray[np.int64]:
    """Exposure phase (0, 1) of each hour."""
    ph = np.zeros(HOURS, dtype=np.int64)
    if sc.ramp:
        ph[RAMP_HOUR:] = 1
    return ph


def hourly_rate(units: float) -> F:
    """Expected new units per hour (daily cycle, peak mid-afternoon)."""
    h = np.arange(HOURS)
    w = 1.0 + 0.5 * np.sin(2 * math.pi * (h - 8) / 24)
    out: F = units * w / w.sum()
    return out


def metric_moments() -> tuple[float, float, float]:
    """Mean and variance of ``cost`` and variance of ``converted`` per unit."""
    s2 = SIGMA * SIGMA
    return math.exp(s2 / 2), (math.exp(s2) - 1) * math.exp(s2), P_CONV * (1 - P_CONV)


def planned_ses(sc: Scenario, units: float) -> tuple[float, float]:
    """SE of the design-weighted effect at the planned size (7 days), per metric."""
    rate, share, phase = hourly_rate(units), treatment_share(sc), phase_of_hour(sc)
    _, v_cost, v_conv = metric_moments()
    out = []
    for v in (v_cost, v_conv):
        var = 0.0
        for p in np.unique(phase):
            n_t = float((rate * share)[phase == p].sum())
            n_c = float((rate * (1 - share))[phase == p].sum())
            w = (n_t + n_c) / units
            var += w * w * v * (1 / n_c + 1 / n_t)
        out.append(math.sqrt(var))
    return out[0], out[1]


def mde(se: float) -> float:
    """Minimum detectable effect at two-sided ``ALPHA`` and ``POWER``."""
    return float((stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)) * se)


# ---------------------------------------------------------------------------- generation


def _cell_sums(sc: Scenario, reps: int, units: float, rng: np.random.Generator) -> dict[str, F]:
    """Sums per (rep, hour, arm, late): ``n``, cost ``s1``/``q1``, converted ``s2``."""
    n_hour = rng.poisson(hourly_rate(units), size=(reps, HOURS))
    n_t = rng.binomial(n_hour, treatment_share(sc))
    arms = np.stack([n_hour - n_t, n_t], axis=-1)  # (R, H, 2)
    late = rng.binomial(arms, LATE_SHARE) if sc.late else np.zeros_like(arms)
    cells = np.stack([arms - late, late], axis=-1)  # (R, H, 2, 2)
    flat = cells.ravel()
    idx = np.repeat(np.arange(flat.size), flat)
    z1 = rng.standard_normal(idx.size)
    z2 = RHO * z1 + math.sqrt(1 - RHO * RHO) * rng.standard_normal(idx.size)
    cost = np.exp(SIGMA * z1)
    if sc.harm:
        is_t = ((idx // 2) % 2) == 1  # the arm axis is second to last
        cost += is_t * sc.harm * mde(planned_ses(sc, units)[0])
    conv = (z2 < stats.norm.ppf(P_CONV)).astype(np.float64)
    shape = cells.shape
    return {
        "n": cells.astype(np.float64),
        "s1": np.bincount(idx, cost, flat.size).astype(np.float64).reshape(shape),
        "q1": np.bincount(idx, cost * cost, flat.size).astype(np.float64).reshape(shape),
        "s2": np.bincount(idx, conv, flat.size).astype(np.float64).reshape(shape),
    }


def _available(sums: dict[str, F], sc: Scenario) -> dict[str, F]:
    """Cumulative sums per (rep, phase, look, arm) of the units that have arrived by each look."""
    phase = phase_of_hour(sc)
    n_phases = int(phase.max()) + 1
    out: dict[str, F] = {}
    for key, a in sums.items():
        per_phase = np.stack(
            [np.where((phase == p)[None, :, None, None], a, 0.0) for p in range(n_phases)], axis=1
        )  # (R, P, H, 2, 2)
        on = np.cumsum(per_phase[..., 0], axis=2)
        lt = np.cumsum(per_phase[..., 1], axis=2)
        shifted = np.zeros_like(lt)
        shifted[:, :, LATE_HOURS:] = lt[:, :, :-LATE_HOURS]
        out[key] = on + shifted
    return out


def _effects(av: dict[str, F], s_key: str, q_key: str | None) -> tuple[F, F]:
    """Design-weighted effect and SE per (rep, look) (NaN where no phase is usable)."""
    n = av["n"]
    s = av[s_key]
    q = av[q_key] if q_key else s  # binary: x² = x
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = (q - s * s / n) / (n - 1)
        d = mean[..., 1] - mean[..., 0]
        v = var[..., 1] / n[..., 1] + var[..., 0] / n[..., 0]
        usable = (n.min(axis=-1) >= MIN_UNITS) & np.isfinite(d) & np.isfinite(v)
        w = np.where(usable, n.sum(axis=-1), 0.0)
        w = w / w.sum(axis=1, keepdims=True)
        est = np.where(usable, w * d, 0.0).sum(axis=1)
        se = np.sqrt(np.where(usable, w * w * v, 0.0).sum(axis=1))
    ok = usable.any(axis=1)
    return np.where(ok, est, np.nan), np.where(ok, se, np.nan)


def _holm_first(p: F, harmful: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], ...]:
    """First look per replicate at which Holm (``adjust_pvalues``) at ``ALPHA`` flags a
    regression: any metric, and the first metric (``cost``). ``p``: (metrics, R, looks)."""
    m, reps, _ = p.shape
    cand = p.min(axis=0) <= ALPHA / m  # Holm rejects nothing at a look without this
    first_any = np.full(reps, -1, dtype=np.int64)
    first_cost = np.full(reps, -1, dtype=np.int64)
    for r in np.flatnonzero(cand.any(axis=1)):
        for t in np.flatnonzero(cand[r]):
            adj = adjust_pvalues(p[:, r, t].tolist(), "holm")
            hit = [adj[j] <= ALPHA and bool(harmful[j, r, t]) for j in range(m)]
            if any(hit) and first_any[r] < 0:
                first_any[r] = t
            if hit[0]:
                first_cost[r] = t
                break
    return first_any, first_cost


def simulate(sc: Scenario, reps: int, units: float, seed: int) -> dict[str, Any]:
    """``reps`` replicates: histograms (index = look, last = never) of each decision's first look
    for ``seq`` and ``fixed``, and the end-only fixed-horizon detections of ``cost``."""
    ss = np.random.SeedSequence([seed, zlib.crc32(sc.name.encode())])
    rng = np.random.default_rng(ss)
    se_cost, se_conv = planned_ses(sc, units)
    margin = mde(se_conv)
    hist = {
        f"{k}_{d}": np.zeros(HOURS + 1, dtype=np.int64) for k in ("seq", "fixed") for d in DECISIONS
    }
    end_power = 0
    done = 0
    alloc = np.stack([1 - treatment_share(sc), treatment_share(sc)], axis=-1)
    phase = phase_of_hour(sc)
    phase_alloc = np.stack([alloc[np.argmax(phase == p)] for p in range(int(phase.max()) + 1)])
    z_crit = stats.norm.ppf(1 - ALPHA / 4)  # one-sided alpha/2
    while done < reps:
        r = min(CHUNK, reps - done)
        av = _available(_cell_sums(sc, r, units, rng), sc)
        est1, se1 = _effects(av, "s1", "q1")
        est2, se2 = _effects(av, "s2", None)
        counts = av["n"]  # (R, P, L, arms)
        eligible = counts.sum(axis=1).min(axis=-1) >= MIN_UNITS  # (R, L)
        harmful = np.stack([est1 > 0, est2 < 0])
        # sequential
        p_seq = np.stack(
            [
                running_pvalues(
                    pvalue_at_look(est1, se1, planned_se=se_cost, alpha=ALPHA), eligible=eligible
                ),
                running_pvalues(
                    pvalue_at_look(est2, se2, planned_se=se_conv, alpha=ALPHA), eligible=eligible
                ),
            ]
        )
        reg_seq, cost_seq = _holm_first(p_seq, harmful)
        g_seq = running_pvalues(
            pvalue_at_look(
                -est2, se2, null=margin, planned_se=se_conv, alternative="greater", alpha=ALPHA / 2
            ),
            eligible=eligible,
        )
        guard_seq = first_look(g_seq <= ALPHA / 2)
        log_bf = dirichlet_multinomial_log_bf(
            np.moveaxis(counts, 1, 2), phase_alloc[None, None]
        ).sum(axis=-1)
        with np.errstate(over="ignore"):
            srm_p = running_pvalues(np.exp(-np.maximum(log_bf, 0.0)), eligible=eligible)
        srm_seq = first_look(srm_p <= ALPHA_SRM)
        # fixed horizon at every look
        with np.errstate(invalid="ignore"):
            z1, z2 = est1 / se1, est2 / se2
            p_fix = np.stack([2 * stats.norm.sf(np.abs(z1)), 2 * stats.norm.sf(np.abs(z2))])
            p_fix = np.where(np.isnan(p_fix) | ~eligible[None], 1.0, p_fix)
            reg_fix, cost_fix = _holm_first(p_fix, harmful)
            guard_fix = first_look(eligible & ((-est2 - margin) / se2 > z_crit))
            expected = counts.sum(axis=-1, keepdims=True) * phase_alloc[None, :, None, :]
            chi = np.where(expected > 0, (counts - expected) ** 2 / expected, 0.0).sum(-1)
            srm_pp = np.where(counts.sum(-1) > 0, stats.chi2.sf(chi, 1), 1.0)  # (R, P, L)
        srm_fix = first_look(eligible & (srm_pp.min(axis=1) < ALPHA_SRM))
        end = _holm_first(p_fix[:, :, -1:], harmful[:, :, -1:])[1]
        end_power += int((end >= 0).sum())
        for kind, firsts in (
            ("seq", (reg_seq, guard_seq, srm_seq, cost_seq)),
            ("fixed", (reg_fix, guard_fix, srm_fix, cost_fix)),
        ):
            reg, guard, srm, cost = firsts
            stacked = np.stack([np.where(f < 0, HOURS, f) for f in (reg, guard, srm)])
            any_ = stacked.min(axis=0)
            for name, f in (
                ("regression", reg),
                ("guardrail", guard),
                ("srm", srm),
                ("cost", cost),
            ):
                hist[f"{kind}_{name}"] += np.bincount(
                    np.where(f < 0, HOURS, f), minlength=HOURS + 1
                )
            hist[f"{kind}_any"] += np.bincount(any_, minlength=HOURS + 1)
        done += r
    return {
        "hist": {k: v.tolist() for k, v in hist.items()},
        "end_power": end_power,
        "planned_se": [se_cost, se_conv],
    }


# -------------------------------------------------------------------------------- running


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file (torn lines skipped)."""
    if not path.exists():
        return
    with path.open() as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                yield row


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row under a lock shared by all writers."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"), path.open("a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
        fh.write((json.dumps(row, sort_keys=True) + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _key(row: dict[str, Any]) -> tuple[str, int, int, float]:
    return (row["scenario"], int(row["seed"]), int(row["reps"]), float(row["units"]))


def run(out: Path, names: Sequence[str], seeds: Iterable[int], reps: int, units: float) -> int:
    """Run the missing ``(scenario, seed)`` rows; returns how many were run."""
    done = {_key(r) for r in read_rows(out)}
    count = 0
    for seed in seeds:
        for name in names:
            if (name, seed, reps, float(units)) in done:
                continue
            t0 = time.perf_counter()
            res = simulate(SCENARIOS[name], reps, units, seed)
            row = {
                "scenario": name,
                "seed": seed,
                "reps": reps,
                "units": float(units),
                **res,
                "seconds": round(time.perf_counter() - t0, 2),
            }
            append_row(out, row)
            count += 1
            print(f"# {name} seed {seed}: {row['seconds']} s", flush=True)
    return count


# -------------------------------------------------------------------------------- summary


def _median_hours(
    hist: npt.NDArray[np.int64], *, detected_only: bool = False, boot: int = 400, seed: int = 7
) -> tuple[float, float]:
    """Median detection delay in hours (look index + 1; ``inf`` when at most half of the
    replicates detect) and its bootstrap SE (multinomial resampling of the histogram);
    ``detected_only``: among the replicates that detect."""
    h0 = hist[:-1] if detected_only else hist
    n = int(h0.sum())
    if n == 0:
        return math.inf, math.nan

    def med(h: npt.NDArray[np.int64]) -> float:
        k = int(np.searchsorted(np.cumsum(h), (n + 1) / 2))
        return math.inf if k >= HOURS else float(k + 1)

    m = med(h0)
    rng = np.random.default_rng(seed)
    draws = [med(rng.multinomial(n, h0 / n)) for _ in range(boot)]
    finite = [d for d in draws if math.isfinite(d)]
    se = float(np.std(finite)) if len(finite) == len(draws) else math.nan
    return m, se


def _delay(hist: npt.NDArray[np.int64]) -> str:
    m, se = _median_hours(hist)
    if math.isfinite(m):
        return f"{m:g} ± {se:.1f}"
    md, sed = _median_hours(hist, detected_only=True)
    return f"> {HOURS} (detected: {md:g} ± {sed:.1f})"


def summarise(rows: Iterable[dict[str, Any]], units: float | None = None) -> dict[str, Any]:
    """Pooled histograms per scenario (first copy of each key kept)."""
    seen: set[tuple[str, int, int, float]] = set()
    pooled: dict[str, dict[str, Any]] = {}
    for r in rows:
        if units is not None and float(r["units"]) != float(units):
            continue
        k = _key(r)
        if k in seen:
            continue
        seen.add(k)
        p = pooled.setdefault(
            r["scenario"], {"reps": 0, "end_power": 0, "hist": {}, "units": float(r["units"])}
        )
        p["reps"] += int(r["reps"])
        p["end_power"] += int(r["end_power"])
        for name, h in r["hist"].items():
            p["hist"][name] = p["hist"].get(name, np.zeros(HOURS + 1, dtype=np.int64)) + np.array(
                h, dtype=np.int64
            )
    return pooled


def rate(hist: npt.NDArray[np.int64]) -> tuple[float, float]:
    """Share of replicates with the decision at some look, and its MC SE."""
    n = int(hist.sum())
    p = 1.0 - hist[-1] / n
    return p, math.sqrt(p * (1 - p) / n)


def _pct(p: float, se: float) -> str:
    return f"{100 * p:.2f}% ± {100 * se:.2f}"


def markdown(pooled: dict[str, Any]) -> str:
    """The two tables: false alarms under the null, detection under harm."""
    lines = [
        "| null scenario | canaries | seq: any cause | regression | guardrail | SRM "
        "| fixed-horizon every look: any cause | regression | SRM | bound α + 3 MC SE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SCENARIOS:
        if name not in pooled or SCENARIOS[name].harm:
            continue
        p = pooled[name]
        h = p["hist"]
        n = p["reps"]
        cells = [
            _pct(*rate(h["seq_any"])),
            _pct(*rate(h["seq_regression"])),
            _pct(*rate(h["seq_guardrail"])),
            _pct(*rate(h["seq_srm"])),
            _pct(*rate(h["fixed_any"])),
            _pct(*rate(h["fixed_regression"])),
            _pct(*rate(h["fixed_srm"])),
        ]
        bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n)
        lines.append(f"| {name} | {n:,} | " + " | ".join(cells) + f" | {100 * bound:.2f}% |")
    lines += [
        "",
        "| harm scenario | canaries | seq: detected by 168 h | median delay (h) "
        "| fixed every look: detected | median delay (h) | one fixed test at 168 h |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in SCENARIOS:
        if name not in pooled or not SCENARIOS[name].harm:
            continue
        p = pooled[name]
        h = p["hist"]
        n = p["reps"]
        pw = p["end_power"] / n
        lines.append(
            f"| {name} | {n:,} | {_pct(*rate(h['seq_cost']))} | {_delay(h['seq_cost'])} "
            f"| {_pct(*rate(h['fixed_cost']))} | {_delay(h['fixed_cost'])} "
            f"| {_pct(pw, math.sqrt(pw * (1 - pw) / n))} |"
        )
    return "\n".join(lines)


def parse_seeds(text: str) -> range:
    """``A:B`` → seeds A..B−1 (``N`` alone: seed N)."""
    a, sep, b = text.partition(":")
    start, stop = (int(a), int(b)) if sep else (int(a), int(a) + 1)
    if stop <= start or start < 0:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: give A:B with 0 <= A < B")
    return range(start, stop)


def select(text: str | None) -> list[str]:
    """Scenario names from a comma list of names or shell patterns (default: all)."""
    if not text:
        return list(SCENARIOS)
    out: list[str] = []
    for pat in text.split(","):
        hits = [s for s in SCENARIOS if fnmatch.fnmatchcase(s, pat.strip())]
        if not hits:
            raise SystemExit(f"--scenarios: {pat!r} matches none of {', '.join(SCENARIOS)}")
        out += [h for h in hits if h not in out]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run seeds (resumable) or print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seeds", type=parse_seeds, default=range(20))
    ap.add_argument("--scenarios", default=None, help="comma list of names or patterns")
    ap.add_argument("--reps-per-seed", type=int, default=500)
    ap.add_argument("--units", type=float, default=20_000.0, help="expected units per canary")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--summary", action="store_true", help="print the Markdown tables")
    args = ap.parse_args(argv)
    if args.summary:
        pooled = summarise(read_rows(args.out), args.units)
        pooled = {k: v for k, v in pooled.items() if k in select(args.scenarios)}
        print(markdown(pooled))
        return 0
    n = run(args.out, select(args.scenarios), args.seeds, args.reps_per_seed, args.units)
    print(f"# {n} rows appended to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
