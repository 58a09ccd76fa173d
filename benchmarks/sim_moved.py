"""Acceptance simulation of issue 21: ramps that move units, activity that predicts the metric.

Each replicate generates an experiment with ``benchmarks/_gen_moved.py`` (hash-bucket ramp that
grows or shrinks treatment, pre-period, time trend +0.15/day, activity correlated with the
unit's mean rating, conversations whose length correlates with the rating and that span the
start and the ramp, true effect −0.30 per treatment-served turn, optional memory), runs the
public ``split()`` and ``analyze()`` on it (``Ratio("rating")``, explain, recovery and the
completeness checks off, no late-data margin) and appends one JSONL row per
(config, seed, estimator, phase) to the output file:

* ``default``: the clean estimate, per phase and combined, once per ``moved_units`` mode the
  installed ``analyze`` offers (``keep`` and ``exclude``; on code without the keyword, one run
  recorded as ``moved_units: "today"``);
* ``fresh``: ``effect_fresh`` and its CI when the result has them (from the ``keep`` run);
* ``phase_equality``: the rows of ``res.phase_equality`` when it exists;
* ``meta``: achieved correlation, counts, the note that the default and the fresh-cohort
  estimates differ, seconds; it closes the replicate's block (a replicate counts as done only
  when its ``meta`` row is in the file).

Usage::

    python benchmarks/sim_moved.py --seeds 0:1000                    # every configuration
    python benchmarks/sim_moved.py --seeds 0:50 --configs c0.6-grow-off,c0.6-shrink-off
    python benchmarks/sim_moved.py --seeds 1000:2000 &               # another process, disjoint
    python benchmarks/sim_moved.py --summary --markdown benchmarks/results/sim_moved_summary.md
    python benchmarks/sim_moved.py --big                             # one 1.3M-unit run each

Re-running the same command resumes: replicates already in the output are skipped. Several
processes may append to one file (a lock serialises the writes); give them disjoint seeds.
Each worker process runs polars on one thread (``POLARS_MAX_THREADS=1``); ``--workers``
defaults to 1 (the machine is shared).
"""

from __future__ import annotations

import argparse
import fnmatch
import inspect
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _gen_moved import MovedSpec, achieved_correlation, generate  # noqa: E402

TRUE = -0.30
DELTA = -0.20  # memory: shift of later turns of units served the treatment in phase 1
ALPHA_EQ = 0.01  # level of the phase-equality test
PHASES = ("1", "2", "combined")
NOTE_MARK = "respond differently"
RESULTS = HERE / "results"
DEFAULT_OUT = RESULTS / "sim_moved.jsonl"
BIG_OUT = RESULTS / "sim_moved_big.jsonl"
BIG_UNITS = 1_300_000


def _configs() -> dict[str, dict[str, Any]]:
    """The configurations: name → :class:`MovedSpec` fields (``n_units`` fixes the size)."""
    out: dict[str, dict[str, Any]] = {}
    for corr in (0.0, 0.2, 0.6):
        for ramp in ("grow", "shrink"):
            for memory, delta in (("off", 0.0), ("on", DELTA)):
                out[f"c{corr:g}-{ramp}-{memory}"] = {"corr": corr, "ramp": ramp, "delta": delta}
    # treatment lowers the return rate (report only)
    out["c0.6-grow-return"] = {"corr": 0.6, "ramp": "grow", "return_drop": 0.3}
    out["c0.6-shrink-return"] = {"corr": 0.6, "ramp": "shrink", "return_drop": 0.3}
    # phase equality: size with a constant effect, power with phases 0.15 apart, 8,000 units
    out["eq-size-8k"] = {"corr": 0.2, "ramp": "grow", "n_units": 8000}
    out["eq-power-8k"] = {"corr": 0.2, "ramp": "grow", "n_units": 8000, "effect_phase2": -0.45}
    return out


CONFIGS = _configs()
BIG_CONFIGS = ("c0-grow-off", "c0.2-grow-off", "c0.6-grow-off")
#: The reduced subset CI runs (tests/test_sim_moved.py).
CI_CONFIGS = ("c0.6-grow-off", "c0.6-shrink-off")


def truth(config: str, phase: str) -> float | None:
    """The true effect of a configuration's phase (``None``: no single number)."""
    fields = CONFIGS[config]
    effect2 = fields.get("effect_phase2")
    if effect2 is None:
        return TRUE
    return {"1": TRUE, "2": float(effect2)}.get(phase)


def spec_for(config: str, seed: int, units: int) -> MovedSpec:
    """The generator's parameters of one replicate."""
    fields = dict(CONFIGS[config])
    fields.setdefault("n_units", units)
    return MovedSpec(seed=seed, **fields)


def modes() -> tuple[str, ...]:
    """``moved_units`` values the installed ``analyze`` accepts (``("today",)``: no keyword)."""
    import analysis as ps

    return (
        ("keep", "exclude")
        if "moved_units" in inspect.signature(ps.analyze).parameters
        else ("today",)
    )


def _row_se(row: Any) -> float:
    return float(row.se)


def _fresh(row: Any) -> tuple[float, float, float, float] | None:
    """``effect_fresh``, its CI and SE from an effect row (``None`` when absent)."""
    est = getattr(row, "effect_fresh", None)
    if est is None:
        return None
    lo = float(row.effect_fresh_ci_lower)
    hi = float(row.effect_fresh_ci_upper)
    se = getattr(row, "effect_fresh_se", None)
    if se is None:
        z = (float(row.effect_ci_upper) - float(row.effect_ci_lower)) / (2 * _row_se(row))
        se = (hi - lo) / (2 * z) if z > 0 else math.nan
    return float(est), lo, hi, float(se)


def _json_value(v: Any) -> Any:
    """A table cell as JSON: text, a number, or a list of numbers."""
    if isinstance(v, str) or v is None:
        return v
    if isinstance(v, (tuple, list, np.ndarray)):
        return [_json_value(x) for x in v]
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _phase_equality(res: Any) -> list[dict[str, Any]]:
    """Rows of ``res.phase_equality`` for the metric (none on code without the test)."""
    table = getattr(res, "phase_equality", None)
    if table is None:
        return []
    rows = table.to_pandas().to_dict("records")
    return [
        {k: _json_value(v) for k, v in r.items() if k != "metric"}
        for r in rows
        if r.get("metric", "rating") == "rating"
    ]


def run_one(
    config: str, seed: int, units: int, run_modes: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Generate, split and analyse one replicate; its JSONL rows (the ``meta`` row last)."""
    import analysis as ps

    t0, c0 = time.perf_counter(), time.process_time()
    spec = spec_for(config, seed, units)
    data = generate(spec)
    latent, realised = achieved_correlation(data)
    data.turns.clear()  # the per-turn truth is not needed any more (1.3M units: ~1 GB)
    key = {"config": config, "seed": seed, "units": spec.n_units}
    rows: list[dict[str, Any]] = []
    notes_fired: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ledger = ps.load_ledger(data.write_ledger(Path(tmp)))
        res = ps.split(data.events, ledger)
        for mode in run_modes or modes():
            kwargs: dict[str, Any] = {} if mode == "today" else {"moved_units": mode}
            a = ps.analyze(
                res,
                metrics=[ps.Ratio("rating")],
                explain=False,
                recovery=False,
                completeness=False,
                late_hours=0.0,
                **kwargs,
            )
            notes_fired[mode] = any(NOTE_MARK in n for n in (*a.notes, *a.alerts))
            for phase in PHASES:
                e = a.effect("rating", phase=phase)
                rows.append(
                    key
                    | {
                        "moved_units": mode,
                        "estimator": "default",
                        "phase": phase,
                        "estimate": float(e.effect),
                        "se": _row_se(e),
                        "lo": float(e.effect_ci_lower),
                        "hi": float(e.effect_ci_upper),
                        "n_control": int(e.n_control),
                        "n_arm": int(e.n_arm),
                    }
                )
                fresh = _fresh(e)
                if fresh is not None:
                    est, lo, hi, se = fresh
                    rows.append(
                        key
                        | {
                            "moved_units": mode,
                            "estimator": "fresh",
                            "phase": phase,
                            "estimate": est,
                            "se": se,
                            "lo": lo,
                            "hi": hi,
                        }
                    )
            for r in _phase_equality(a):
                rows.append(
                    key | {"moved_units": mode, "estimator": "phase_equality", "phase": "all"} | r
                )
    rows.append(
        key
        | {
            "estimator": "meta",
            "modes": list(notes_fired),
            "note_fired": notes_fired,
            "latent_corr": latent,
            "realised_corr": realised,
            "n_events": int(data.events.height),
            "analysis": str(Path(ps.__file__).parent),
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
        }
    )
    return rows


def _worker_init() -> None:
    """Worker processes: polars on one thread (set before polars is imported)."""
    os.environ["POLARS_MAX_THREADS"] = "1"


def _task(args: tuple[str, int, int, tuple[str, ...]]) -> list[dict[str, Any]]:
    return run_one(*args)


# ---------------------------------------------------------------------------------- the file


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL output; a torn last line (a killed writer) is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                yield row


def done_keys(path: Path) -> dict[tuple[str, int, int], set[str]]:
    """(config, seed, units) of every complete replicate in ``path`` → the modes it ran."""
    out: dict[tuple[str, int, int], set[str]] = {}
    for r in read_rows(path):
        if r.get("estimator") == "meta":
            key = (r["config"], int(r["seed"]), int(r["units"]))
            out.setdefault(key, set()).update(r.get("modes") or ())
    return out


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append one replicate's rows in one write, under a lock shared by all writers."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    with FileLock(str(path) + ".lock"), path.open("a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:  # a torn last line from a killed writer: start on a new line
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
        fh.write(text.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def parse_seeds(text: str) -> range:
    """``A:B`` → seeds A..B−1 (``N`` alone: seed N)."""
    a, sep, b = text.partition(":")
    start, stop = (int(a), int(b)) if sep else (int(a), int(a) + 1)
    if stop <= start or start < 0:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: give A:B with 0 <= A < B")
    return range(start, stop)


def select_configs(text: str | None, default: Iterable[str]) -> list[str]:
    """Configuration names from a comma list of names or shell patterns."""
    if not text:
        return list(default)
    out: list[str] = []
    for pat in text.split(","):
        hits = [c for c in CONFIGS if fnmatch.fnmatchcase(c, pat.strip())]
        if not hits:
            raise SystemExit(f"--configs: {pat!r} matches none of {', '.join(CONFIGS)}")
        out += [c for c in hits if c not in out]
    return out


def run(
    out: Path,
    configs: Sequence[str],
    seeds: range,
    units: int,
    workers: int = 1,
    run_modes: tuple[str, ...] | None = None,
) -> int:
    """Run the missing replicates of ``configs × seeds``; returns how many were run."""
    done = done_keys(out)
    wanted = run_modes or modes()
    todo: list[tuple[str, int, int, tuple[str, ...]]] = []
    for s in seeds:
        for c in configs:
            key = (c, s, spec_for(c, s, units).n_units)
            missing = tuple(m for m in wanted if m not in done.get(key, ()))
            if missing:
                todo.append((*key, missing))
    print(f"# {len(todo)} replicates to run ({len(done)} already in {out})", flush=True)
    if not todo:
        return 0
    ctx = get_context("spawn")
    t0, count = time.perf_counter(), 0
    # A fresh pool per chunk of tasks: fresh workers now and then (no slow growth of memory)
    # without ``max_tasks_per_child``, which deadlocks Python 3.11's pool once a worker retires.
    chunk = 100 * max(workers, 1)
    for lo in range(0, len(todo), chunk):
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_worker_init
        ) as pool:
            futures = {pool.submit(_task, t): t for t in todo[lo : lo + chunk]}
            for fut in as_completed(futures):
                c, s, n, _ = futures[fut]
                try:
                    rows = fut.result()
                except BrokenProcessPool as exc:  # a worker died (out of memory, killed)
                    print(
                        f"# worker died at {c} seed {s}: {exc!r}; re-run to resume", file=sys.stderr
                    )
                    for f in futures:
                        f.cancel()
                    return count
                except Exception as exc:  # one bad replicate must not stop a long run
                    print(f"# {c} seed {s} ({n:,} units) failed: {exc!r}", file=sys.stderr)
                    continue
                append_rows(out, rows)
                count += 1
                if count % 10 == 0 or count == len(todo):
                    rate = (time.perf_counter() - t0) / count
                    print(f"# {count}/{len(todo)} done, {rate:.1f} s per replicate", flush=True)
    return count


# ------------------------------------------------------------------------------- the summary


def _bootstrap_ratio(est: np.ndarray, se: np.ndarray, reps: int = 400, seed: int = 21) -> float:
    """Bootstrap (over replicates) standard error of mean SE / sd."""
    if est.size < 3:
        return math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, est.size, (reps, est.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = se[idx].mean(axis=1) / est[idx].std(axis=1, ddof=1)
    ratios = ratios[np.isfinite(ratios)]
    return float(np.std(ratios, ddof=1)) if ratios.size > 2 else math.nan


def _bootstrap_var_ratio(a: np.ndarray, b: np.ndarray, reps: int = 400, seed: int = 21) -> float:
    if a.size < 3:
        return math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, (reps, a.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = a[idx].var(axis=1, ddof=1) / b[idx].var(axis=1, ddof=1)
    ratios = ratios[np.isfinite(ratios)]
    return float(np.std(ratios, ddof=1)) if ratios.size > 2 else math.nan


def load(path: Path) -> dict[tuple[str, int, int], list[dict[str, Any]]]:
    """Complete replicates by (config, seed, units), duplicates removed (first copy kept)."""
    blocks: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    seen: set[tuple[Any, ...]] = set()
    for r in read_rows(path):
        key = (r["config"], int(r["seed"]), int(r["units"]))
        ident = (
            *key,
            r.get("moved_units"),
            r["estimator"],
            r.get("phase"),
            r.get("arm"),
            tuple(r.get("modes") or ()),
        )
        if ident in seen:
            continue
        seen.add(ident)
        blocks.setdefault(key, []).append(r)
    return {k: v for k, v in blocks.items() if any(r["estimator"] == "meta" for r in v)}


def label(row: dict[str, Any]) -> str:
    """Estimator label of a row: ``keep``, ``exclude``, ``today``, ``fresh`` (of the ``keep``
    run) or ``fresh (exclude)``."""
    mode = str(row["moved_units"])
    if row["estimator"] == "fresh":
        return "fresh" if mode in ("keep", "today") else f"fresh ({mode})"
    return mode


def summarise(blocks: dict[tuple[str, int, int], list[dict[str, Any]]]) -> dict[str, Any]:
    """Per configuration × units × estimator × phase statistics, and per-replicate extras."""
    groups: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {}
    eq: dict[tuple[str, int, str], list[float]] = {}
    meta: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for (config, seed, units), rows in sorted(blocks.items()):
        for r in rows:
            if r["estimator"] in ("default", "fresh"):
                groups.setdefault((config, units, label(r), r["phase"]), []).append(r)
            elif r["estimator"] == "phase_equality":
                eq.setdefault((config, units, str(r["moved_units"])), []).append(float(r["pvalue"]))
            elif r["estimator"] == "meta":  # one per seed; notes merged over the runs' modes
                per_seed = meta.setdefault((config, units), {})
                merged = {**per_seed.get(seed, {}).get("note_fired", {}), **r["note_fired"]}
                per_seed[seed] = r | {"note_fired": merged}
    stats: list[dict[str, Any]] = []
    for (config, units, est_label, phase), rows in sorted(groups.items()):
        est = np.array([r["estimate"] for r in rows], dtype=float)
        se = np.array([r["se"] for r in rows], dtype=float)
        lo = np.array([r["lo"] for r in rows], dtype=float)
        hi = np.array([r["hi"] for r in rows], dtype=float)
        n = est.size
        sd = float(est.std(ddof=1)) if n > 1 else math.nan
        t = truth(config, phase) if config in CONFIGS else None
        row: dict[str, Any] = {
            "config": config,
            "units": units,
            "estimator": est_label,
            "phase": phase,
            "n": n,
            "mean": float(est.mean()),
            "sd": sd,
            "mean_se": float(se.mean()),
            "se_sd": float(se.mean()) / sd if n > 1 else math.nan,
            "se_sd_mcse": _bootstrap_ratio(est, se),
            "truth": t,
        }
        if t is not None:
            cov = float(((lo <= t) & (t <= hi)).mean())
            row |= {
                "bias": float(est.mean()) - t,
                "bias_mcse": sd / math.sqrt(n) if n > 1 else math.nan,
                "coverage": cov,
                "cov_mcse": math.sqrt(max(cov * (1 - cov), 0.95 * 0.05) / n),
            }
        stats.append(row)
    equality = []
    for (config, units, mode), p in sorted(eq.items()):
        arr = np.array(p)
        rate = float((arr < ALPHA_EQ).mean())
        equality.append(
            {
                "config": config,
                "units": units,
                "moved_units": mode,
                "n": arr.size,
                "rejection": rate,
                "mcse": math.sqrt(max(rate * (1 - rate), 0.01 * 0.99) / arr.size),
            }
        )
    extras = []
    for (config, units), by_seed_meta in sorted(meta.items()):
        rows = list(by_seed_meta.values())
        fired = [
            bool(r["note_fired"].get("keep", False)) for r in rows if "keep" in r["note_fired"]
        ]
        extras.append(
            {
                "config": config,
                "units": units,
                "n": len(rows),
                "latent_corr": float(np.mean([r["latent_corr"] for r in rows])),
                "realised_corr": float(np.mean([r["realised_corr"] for r in rows])),
                "note_rate": float(np.mean(fired)) if fired else math.nan,
                "seconds": float(np.mean([r["seconds"] for r in rows])),
                "cpu_seconds": float(np.mean([r.get("cpu_seconds", math.nan) for r in rows])),
            }
        )
    variance = []
    by_seed: dict[tuple[str, int, str, str], dict[int, float]] = {}
    for (config, seed, units), rows in blocks.items():
        for r in rows:
            if r["estimator"] == "default":
                by_seed.setdefault((config, units, r["phase"], str(r["moved_units"])), {})[seed] = (
                    float(r["estimate"])
                )
    for (config, units, phase, mode), keep in sorted(by_seed.items()):
        if mode != "keep" or (config, units, phase, "exclude") not in by_seed:
            continue
        excl = by_seed[(config, units, phase, "exclude")]
        common = sorted(set(keep) & set(excl))
        if len(common) < 3:
            continue
        a = np.array([keep[s] for s in common])
        b = np.array([excl[s] for s in common])
        variance.append(
            {
                "config": config,
                "units": units,
                "phase": phase,
                "n": len(common),
                "ratio": float(a.var(ddof=1) / b.var(ddof=1)),
                "mcse": _bootstrap_var_ratio(a, b),
            }
        )
    return {"stats": stats, "equality": equality, "extras": extras, "variance": variance}


def _pm(value: float | None, err: float | None, digits: int = 4, sign: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    text = fmt.format(value).replace("-", "−")
    if err is None or math.isnan(err):
        return text
    return f"{text} ± {err:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown tables (ready for docs/metrics.md)."""
    lines = [
        "| configuration | units | estimator | phase | replicates | mean | bias ± MC SE "
        "| coverage ± MC SE | mean SE / sd ± MC SE | sd |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary["stats"]:
        lines.append(
            f"| {s['config']} | {s['units']:,} | {s['estimator']} | {s['phase']} | {s['n']} "
            f"| {_pm(s['mean'], None)} | {_pm(s.get('bias'), s.get('bias_mcse'))} "
            f"| {_pm(s.get('coverage'), s.get('cov_mcse'), 3, False)} "
            f"| {_pm(s['se_sd'], s['se_sd_mcse'], 3, False)} | {_pm(s['sd'], None, 4, False)} |"
        )
    if summary["equality"]:
        lines += [
            "",
            f"Phase-equality test at α = {ALPHA_EQ}: rejection rate ± MC SE.",
            "",
            "| configuration | units | moved_units | replicates | rejection rate ± MC SE |",
            "|---|---|---|---|---|",
        ]
        for e in summary["equality"]:
            lines.append(
                f"| {e['config']} | {e['units']:,} | {e['moved_units']} | {e['n']} "
                f"| {_pm(e['rejection'], e['mcse'], 4, False)} |"
            )
    if summary["variance"]:
        lines += [
            "",
            'Variance of the default (`keep`) over `moved_units="exclude"` (same seeds; '
            "bootstrap MC SE).",
            "",
            "| configuration | units | phase | replicates | var keep / var exclude |",
            "|---|---|---|---|---|",
        ]
        for v in summary["variance"]:
            lines.append(
                f"| {v['config']} | {v['units']:,} | {v['phase']} | {v['n']} "
                f"| {_pm(v['ratio'], v['mcse'], 3, False)} |"
            )
    lines += [
        "",
        "| configuration | units | replicates | correlation (latent) | correlation (realised) "
        "| note fired (keep) | wall / CPU seconds per replicate |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in summary["extras"]:
        lines.append(
            f"| {x['config']} | {x['units']:,} | {x['n']} | {x['latent_corr']:.3f} "
            f"| {x['realised_corr']:.3f} | {_pm(x['note_rate'], None, 3, False)} "
            f"| {x['seconds']:.1f} / {x['cpu_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def big_lines(blocks: dict[tuple[str, int, int], list[dict[str, Any]]]) -> list[str]:
    """One line per large run: estimate, CI and distance to the truth in SEs."""
    lines = []
    for (config, seed, units), rows in sorted(blocks.items()):
        for r in rows:
            if r["estimator"] not in ("default", "fresh"):
                continue
            t = truth(config, r["phase"])
            z = (r["estimate"] - t) / r["se"] if t is not None and r["se"] > 0 else math.nan
            lines.append(
                f"| {config} | {units:,} | {seed} | {label(r)} | {r['phase']} "
                f"| {_pm(r['estimate'], None)} [{_pm(r['lo'], None)}, {_pm(r['hi'], None)}] "
                f"| {_pm(z, None, 2)} |"
            )
    if not lines:
        return []
    return [
        "| configuration | units | seed | estimator | phase | estimate [95% CI] "
        "| (estimate − truth) / SE |",
        "|---|---|---|---|---|---|---|",
        *lines,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=parse_seeds, default=None, help="A:B (default 0:1000)")
    parser.add_argument("--configs", default=None, help="comma list of names or patterns")
    parser.add_argument("--units", type=int, default=20_000, help="units per replicate")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="JSONL output")
    parser.add_argument("--summary", action="store_true", help="summarise the output and exit")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the summary here")
    parser.add_argument("--big", action="store_true", help=f"one {BIG_UNITS:,}-unit run each")
    parser.add_argument(
        "--modes",
        default=None,
        help="moved_units modes to run, e.g. keep (default: keep,exclude when analyze has the "
        "keyword, else today's code once)",
    )
    parser.add_argument("--list", action="store_true", help="list the configurations")
    args = parser.parse_args(argv)
    if args.list:
        for name, fields in CONFIGS.items():
            print(name, fields)
        return 0
    out = args.out or (BIG_OUT if args.big else DEFAULT_OUT)
    os.environ["POLARS_MAX_THREADS"] = "1"  # before polars is imported (modes() imports it)
    if args.summary:
        blocks = load(out)
        text = markdown(summarise(blocks))
        big = big_lines(load(BIG_OUT)) if out != BIG_OUT and BIG_OUT.exists() else []
        if big:
            text += "\n" + "\n".join(big) + "\n"
        print(text, end="")
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(text, encoding="utf-8")
        return 0
    run_modes = tuple(m.strip() for m in args.modes.split(",")) if args.modes else None
    if args.big:
        configs = select_configs(args.configs, BIG_CONFIGS)
        run(out, configs, args.seeds or range(1), BIG_UNITS, args.workers, run_modes)
        return 0
    configs = select_configs(args.configs, CONFIGS)
    run(out, configs, args.seeds or range(1000), args.units, args.workers, run_modes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
