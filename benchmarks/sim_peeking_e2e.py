"""End-to-end peeking simulation of ``--sequential`` (issue 22, item 2): the real pipeline, 28 looks.

Each replicate is one generated 7-day canary **under the null** (no revision changes any metric)
looked at every 6 hours (28 looks, at the boundaries of the default 6-hour time blocks). At look
``k`` the export is what the warehouse held then: the events with ``ts < boundary_k`` — minus the
*late data*: 10% of the events (drawn per event) reach the warehouse 6 hours after their
timestamp, so at each look about 10% of the last 6 hours' events are missing; they appear at
later looks. The real public API runs on it, as ``promptstate analyze --sequential
--planned-units N`` would at that time: :func:`analysis.events.labelling.split`, then
:func:`analysis.analyze` with ``sequential=True``, ``planned_units=N``, ``until=now=boundary_k``
(so the default 2-hour late-data cutoff applies) and explain / recovery / completeness off, then
:func:`analysis.decisions.evaluate_guardrails`.

Design (a small generator of its own: ``tests/_generators.py`` is fixed to a 3-day canary with a
rollback): ``--units`` units arrive over the 7 days with a daily cycle (``1 + 0.5 sin``), each
active for an exponential time (mean 24 h) with Poisson turns (rate gamma-distributed across
units, mean 0.25 per hour); a hash bucket against the allocation assigns them: 0.9/0.1
(control/treatment) for 48 h, then a bucket-moving ramp to 0.5/0.5 (control units with buckets
in [0.1, 0.5) move to treatment and are kept, each phase in its arm). Half of the units have
untagged pre-period turns in the week before (regression adjustment). Metrics:

* ``helpfulness`` — :class:`~analysis.metrics.definitions.Ratio` per turn (higher is better):
  ``3.5 + unit effect (sd 0.6) + trend 0.05/day + noise (sd 1)``;
* ``cost_usd`` — :class:`~analysis.metrics.definitions.Mean` per unit (lower is better), each
  turn log-normal (mean 0.02, skewness 6.2), also a **guardrail** with a margin of ``10%``.

``N`` (``planned_units``) is the expected number of units with an exposure turn in the 7 days,
fixed from the design before the first look (a seeded Monte-Carlo of the generator's units).

Decisions counted at every look — what sets the exit code of ``analyze --sequential``:

* ``regression`` — ``result.regressions`` (always-valid Holm p-values of the clean combined
  rows, after the burn-in);
* ``guardrail`` — a ``breach`` verdict of :func:`~analysis.decisions.evaluate_guardrails`
  (combined or latest phase);
* ``srm`` — a sequential SRM mismatch in ``result.srm``;
* ``any`` — the first of the three: a false alarm (everything is null).

The fixed-horizon decisions on the same looks come from the same result: its fixed columns
(``significant``/``better`` from ``pvalue_adjusted``; the guardrail verdicts of
``evaluate_guardrails`` on the result with ``options["sequential"]`` off; the Pearson SRM test
of :func:`analysis.stats.srm.srm_test` on the ``srm`` rows' counts) — what ``analyze`` without
``sequential`` decides (``tests/test_sim_peeking_e2e.py`` checks the equality). Other alerts
(crossover, missing values) are not governed by ``--sequential``; they are counted apart.

One JSONL row per seed (the first look, 1–28, of each cause, sequential and fixed; ``null``:
never) appended under a lock to ``benchmarks/results/sim_peeking_e2e.jsonl``; re-running
resumes (a seed already there at the same size is skipped).

Usage::

    nice -n 10 python benchmarks/sim_peeking_e2e.py --seeds 0:200 --units 2500 --workers 1
    python benchmarks/sim_peeking_e2e.py --time 2          # seconds per analysis, 2 replicates
    python benchmarks/sim_peeking_e2e.py --summary         # the docs' table
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_moved import append_rows, parse_seeds, read_rows

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "sim_peeking_e2e.jsonl"

ALPHA = 0.05
SRM_THRESHOLD = 0.001
DAYS = 7
BLOCK_HOURS = 6
LOOKS = DAYS * 24 // BLOCK_HOURS  # 28
RAMP_HOUR = 48
SHARES = (0.1, 0.5)  # treatment share before / after the ramp
LATE_SHARE, LATE_HOURS = 0.1, 6
PRE_SHARE, PRE_DAYS = 0.5, 7.0
TURNS_PER_HOUR, ACTIVE_HOURS = 0.25, 24.0
COST_SIGMA = 1.0  # log-normal shape of a turn's cost (skewness 6.2)
GUARDRAIL = "10%"
CAUSES = ("regression", "guardrail", "srm", "any")
KINDS = ("seq", "fixed", "fixedb")

START = datetime(2026, 3, 2, tzinfo=UTC)
_US = 1_000_000
_H = 3600 * _US

LEDGER = f"""
version: 1
prompts:
  assistant:
    revisions:
      r1: {{contract: v1}}
      r2: {{parent: r1, contract: v1}}
experiments:
  exp-peek: {{prompt: assistant, unit: user_id, arms: {{control: r1, treatment: r2}}}}
transitions:
  - {{at: {(START - timedelta(days=30)).isoformat()}, action: deploy, prompt: assistant, revision: r1}}
  - {{at: {START.isoformat()}, action: start, experiment: exp-peek, allocation: {{control: 0.9, treatment: 0.1}}}}
  - {{at: {(START + timedelta(hours=RAMP_HOUR)).isoformat()}, action: ramp, experiment: exp-peek, allocation: {{control: 0.5, treatment: 0.5}}}}
"""


def metrics() -> list[Any]:
    """The two metrics of every look (``cost_usd`` is also a guardrail)."""
    from analysis.metrics.definitions import Mean, Ratio

    return [
        Ratio("helpfulness", direction="higher"),
        Mean("cost_usd", direction="lower", guardrail=GUARDRAIL),
    ]


def boundaries() -> list[datetime]:
    """The 28 look times: the ends of the 6-hour blocks since the start."""
    return [START + timedelta(hours=BLOCK_HOURS * k) for k in range(1, LOOKS + 1)]


# ---------------------------------------------------------------------------- generation


def _units(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """Per unit: arrival, departure (µs), turn rate and the number of exposure turns."""
    s0 = int(START.timestamp() * _US)
    hours = DAYS * 24
    h = np.arange(hours)
    w = 1.0 + 0.5 * np.sin(2 * math.pi * (h - 8) / 24)
    hour = rng.choice(hours, size=n, p=w / w.sum())
    arrive = s0 + ((hour + rng.random(n)) * _H).astype(np.int64)
    leave = np.minimum(
        arrive + (rng.exponential(ACTIVE_HOURS, n) * _H).astype(np.int64), s0 + hours * _H
    )
    rate = rng.gamma(2.0, TURNS_PER_HOUR / 2.0, n)
    k = rng.poisson(rate * (leave - arrive) / _H)
    return {"arrive": arrive, "leave": leave, "rate": rate, "k": k}


def planned_units(units: int) -> int:
    """Expected units with an exposure turn in the 7 days (fixed before the first look: a
    seeded Monte-Carlo of 200,000 units of the generator)."""
    u = _units(np.random.default_rng(20_261_207), 200_000)
    return round(units * float((u["k"] > 0).mean()))


def generate(units: int, seed: int) -> Any:
    """One canary's full export (a polars DataFrame, one row per turn) with an ``arrival``
    column: when the row reaches the warehouse (its ``ts``, or 6 h later for late rows)."""
    import polars as pl

    rng = np.random.default_rng([seed, 22])
    n = units
    s0 = int(START.timestamp() * _US)
    u = _units(rng, n)
    bucket = rng.random(n)
    level = rng.normal(0.0, 0.6, n)
    unit = np.repeat(np.arange(n), u["k"])
    span = (u["leave"] - u["arrive"])[unit]
    ts = u["arrive"][unit] + (rng.random(unit.size) * span).astype(np.int64)
    has_pre = rng.random(n) < PRE_SHARE
    pre_len = int(PRE_DAYS * 24 * _H)
    k_pre = np.where(has_pre, rng.poisson(u["rate"] * PRE_DAYS * 24 * 0.05), 0)
    unit_pre = np.repeat(np.arange(n), k_pre)
    ts_pre = s0 - pre_len + (rng.random(unit_pre.size) * pre_len).astype(np.int64)
    unit = np.concatenate([unit_pre, unit])
    ts = np.concatenate([ts_pre, ts])
    order = np.lexsort((ts, unit))
    unit, ts = unit[order], ts[order]
    m = ts.size
    exposed = ts >= s0
    share = np.where(ts < s0 + RAMP_HOUR * _H, SHARES[0], SHARES[1])
    treat = exposed & (bucket[unit] < share)
    served = np.where(treat, 2, 1)
    conv = (ts - s0 + 10 * 24 * _H) // (2 * _H)  # conversations: 2-hour windows of a unit
    first = np.r_[True, (unit[1:] != unit[:-1]) | (conv[1:] != conv[:-1])]
    cid = np.cumsum(first) - 1
    days = (ts - s0) / (24 * _H)
    helpfulness = 3.5 + level[unit] + 0.05 * days + rng.normal(0.0, 1.0, m)
    cost = 0.02 * np.exp(COST_SIGMA * rng.standard_normal(m) - COST_SIGMA**2 / 2)
    late = rng.random(m) < LATE_SHARE
    arrival = ts + np.where(late, LATE_HOURS * _H, 0)
    return pl.DataFrame(
        {
            "event_id": np.arange(m),
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "arrival": pl.Series(arrival).cast(pl.Datetime("us", "UTC")),
            "user_id": unit,
            "exposed": exposed,
            "treat": treat,
            "conversation_id": cid,
            "served": served,
            "helpfulness": helpfulness,
            "cost_usd": cost,
        }
    ).select(
        pl.col("event_id").cast(pl.String),
        "ts",
        "arrival",
        pl.col("user_id").cast(pl.String),
        pl.when("exposed").then(pl.lit("exp-peek")).alias("experiment_id"),
        pl.when("exposed")
        .then(pl.when("treat").then(pl.lit("treatment")).otherwise(pl.lit("control")))
        .alias("arm"),
        pl.col("conversation_id").cast(pl.String),
        pl.format("r{}", "served").alias("revision_id"),
        pl.format("r{}", "served").alias("response_revision_id"),
        "helpfulness",
        "cost_usd",
    )


def export_at(full: Any, boundary: datetime) -> Any:
    """The export as the warehouse held it at ``boundary``: rows arrived before it."""
    import polars as pl

    return full.filter(pl.col("arrival") < boundary).drop("arrival")


# ------------------------------------------------------------------------------- decisions


def decisions(result: Any, ms: Sequence[Any]) -> dict[str, dict[str, bool]]:
    """The causes that exit 1 at one look: ``seq`` (what ``analyze --sequential`` decides) and
    ``fixed`` (the fixed-horizon decisions from the same result's fixed columns: what
    ``analyze`` without ``sequential`` decides), ``fixedb`` (the same after the sequential
    burn-in: one full block and 100 units per arm; SRM: 100 expected per arm of the phase), and
    ``other``: ``alert`` (alerts ``--sequential`` does not govern: crossover, missing values)
    and ``error`` (:func:`~analysis.decisions.evaluate_guardrails` raised a
    :class:`~analysis.errors.PromptstateError`, an exit 2 of the CLI: a relative margin while
    the clean control value is not yet defined; that look has no guardrail verdict)."""
    from analysis.decisions import evaluate_guardrails
    from analysis.errors import PromptstateError
    from analysis.metrics.analyzing import BURN_IN_UNITS
    from analysis.stats.srm import srm_test

    errors: list[str] = []

    def breach(res: Any) -> bool:
        try:
            rows: list[Any] = list(evaluate_guardrails(res, ms).rows)
        except PromptstateError as exc:  # the CLI exits 2 on it: recorded, no verdict
            errors.append(str(exc))
            return False
        return any(r.verdict == "breach" for r in rows)

    fixed = dataclasses.replace(result, options={**result.options, "sequential": False})
    phases: dict[int, list[Any]] = {}
    for r in result.srm.rows:
        phases.setdefault(r.phase, []).append(r)
    srm_fixed = any(
        srm_test(
            {r.arm: r.observed for r in rows},
            {r.arm: r.allocation for r in rows},
            threshold=float(result.options.get("srm_threshold", SRM_THRESHOLD)),
        ).mismatch
        for rows in phases.values()
    )
    srm_alerts = [a for a in result.alerts if a.startswith("sample ratio mismatch")]
    out = {
        "seq": {
            "regression": bool(result.regressions),
            "guardrail": breach(result),
            "srm": any(r.mismatch for r in result.srm.rows),
        },
        "fixed": {
            "regression": bool(fixed.regressions),
            "guardrail": breach(fixed),
            "srm": srm_fixed,
        },
    }
    # the fixed-horizon decisions after the same burn-in as the sequential ones
    combined = [r for r in result.effects.rows if (r.analysis, r.phase) == ("clean", "combined")]
    burned = bool(result.options.get("sequential_ready")) and all(
        min(r.n_control, r.n_arm) >= BURN_IN_UNITS for r in combined
    )
    srm_burned = any(
        min(r.expected for r in rows) >= BURN_IN_UNITS
        and srm_test(
            {r.arm: r.observed for r in rows},
            {r.arm: r.allocation for r in rows},
            threshold=float(result.options.get("srm_threshold", SRM_THRESHOLD)),
        ).mismatch
        for rows in phases.values()
    )
    out["fixedb"] = {
        "regression": burned and out["fixed"]["regression"],
        "guardrail": burned and out["fixed"]["guardrail"],
        "srm": srm_burned,
    }
    for d in out.values():
        d["any"] = d["regression"] or d["guardrail"] or d["srm"]
    out["other"] = {"alert": len(result.alerts) > len(srm_alerts), "error": bool(errors)}
    return out


def analyze_look(full: Any, ledger: Any, boundary: datetime, planned: int, **kw: Any) -> Any:
    """The real ``split`` + ``analyze`` of the export as it was at ``boundary``."""
    from analysis.events.labelling import split
    from analysis.metrics import analyze

    options: dict[str, Any] = {"sequential": True, "planned_units": planned} | kw
    return analyze(
        split(export_at(full, boundary), ledger),
        metrics=metrics(),
        alpha=ALPHA,
        srm_threshold=SRM_THRESHOLD,
        explain=False,
        recovery=False,
        completeness=False,
        block_hours=BLOCK_HOURS,
        until=boundary,
        now=boundary,
        **options,
    )


def ledger() -> Any:
    """The canary's ledger (loaded from a temporary file, as a user's would be)."""
    from analysis import load_ledger

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ledger.yaml"
        path.write_text(LEDGER)
        return load_ledger(path)


def simulate(seed: int, units: int, looks: int = LOOKS) -> dict[str, Any]:
    """One replicate: the first look (1-based; ``None``: never) of each cause, ``seq`` and
    ``fixed``, over the first ``looks`` looks."""
    t0, w0 = time.process_time(), time.perf_counter()
    full = generate(units, seed)
    led = ledger()
    ms = metrics()
    planned = planned_units(units)
    first: dict[str, int | None] = {f"{k}_{c}": None for k in KINDS for c in CAUSES}
    first["other_alert"] = first["other_error"] = None
    exposed: list[int] = []
    errors = 0
    for k, b in enumerate(boundaries()[:looks], start=1):
        res = analyze_look(full, led, b, planned)
        exposed.append(int(sum(r.observed for r in res.srm.rows)))
        found = decisions(res, ms)
        errors += found["other"]["error"]
        for kind, d in found.items():
            for cause, hit in d.items():
                key = f"{kind}_{cause}"
                if hit and first[key] is None:
                    first[key] = k
    return {
        "seed": seed,
        "units": units,
        "looks": looks,
        "planned_units": planned,
        "events": int(full.height),
        "units_at_look": exposed,
        "first": first,
        "error_looks": errors,
        "cpu_seconds": round(time.process_time() - t0, 2),
        "wall_seconds": round(time.perf_counter() - w0, 2),
    }


# -------------------------------------------------------------------------------- running


def _key(row: dict[str, Any]) -> tuple[int, int, int]:
    return (int(row["seed"]), int(row["units"]), int(row["looks"]))


def run(out: Path, seeds: Iterable[int], units: int, looks: int = LOOKS, workers: int = 1) -> int:
    """Run the missing seeds (one row each); returns how many were run."""
    done = {_key(r) for r in read_rows(out)}
    todo = [s for s in seeds if (s, units, looks) not in done]
    count = 0
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for row in pool.map(simulate, todo, [units] * len(todo), [looks] * len(todo)):
                append_rows(out, [row])
                count += 1
        return count
    for seed in todo:
        row = simulate(seed, units, looks)
        append_rows(out, [row])
        count += 1
        print(f"# seed {seed}: {row['cpu_seconds']} CPU s", flush=True)
    return count


# -------------------------------------------------------------------------------- summary


def summarise(rows: Iterable[dict[str, Any]], units: int | None = None) -> dict[str, Any]:
    """False-alarm rates over all looks (first copy of each seed kept), with MC SEs."""
    seen: set[tuple[int, int, int]] = set()
    kept: list[dict[str, Any]] = []
    for r in rows:
        if (units is not None and int(r["units"]) != units) or _key(r) in seen:
            continue
        seen.add(_key(r))
        kept.append(r)
    n = len(kept)
    out: dict[str, Any] = {"reps": n, "cpu_seconds": sum(r["cpu_seconds"] for r in kept)}
    for key in (*(f"{k}_{c}" for k in KINDS for c in CAUSES), "other_alert", "other_error"):
        hits = sum(r["first"][key] is not None for r in kept)
        p = hits / n if n else math.nan
        out[key] = (p, math.sqrt(p * (1 - p) / n) if n else math.nan, hits)
        out[f"{key}_looks"] = sorted(r["first"][key] for r in kept if r["first"][key] is not None)
    out["bound"] = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n) if n else math.nan
    if kept:
        out["units"] = int(kept[0]["units"])
        out["planned_units"] = int(kept[0]["planned_units"])
        out["looks"] = int(kept[0]["looks"])
        out["mean_units_last_look"] = float(np.mean([r["units_at_look"][-1] for r in kept]))
        out["mean_events"] = float(np.mean([r["events"] for r in kept]))
    return out


def check(summary: dict[str, Any]) -> list[str]:
    """Failures of the acceptance criterion (empty: it holds)."""
    p, se, _ = summary["seq_any"]
    if not summary["reps"]:
        return ["no replicates"]
    if p > summary["bound"]:
        return [f"sequential any-cause false-alarm rate {_pct(p, se)} > α + 3 MC SE"]
    return []


def _pct(p: float, se: float) -> str:
    return f"{100 * p:.2f}% ± {100 * se:.2f}"


def markdown(s: dict[str, Any]) -> str:
    """The docs' table."""
    if not s["reps"]:
        return "(no replicates)"
    lines = [
        "| decisions over 28 looks | replicates | any cause | regression | guardrail breach "
        "| SRM | bound α + 3 MC SE |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    bound = f"{100 * s['bound']:.2f}%"
    for kind, label in (
        ("seq", "`--sequential`"),
        ("fixed", "fixed-horizon, same looks"),
        ("fixedb", "fixed-horizon, same looks after the burn-in"),
    ):
        order = ("any", "regression", "guardrail", "srm")
        cells = " | ".join(_pct(*s[f"{kind}_{c}"][:2]) for c in order)
        lines.append(f"| {label} | {s['reps']:,} | {cells} | {bound if kind == 'seq' else ''} |")
    per = s["cpu_seconds"] / (s["reps"] * s["looks"])
    lines += [
        "",
        f"{s['units']:,} units generated per canary ({s['mean_units_last_look']:,.0f} enrolled "
        f"by the last look on average; planned units {s['planned_units']:,}), "
        f"{s['mean_events']:,.0f} events; {per:.2f} CPU s per look (split + analyze + "
        "guardrails). Replicates with a look that exits 2 (a relative guardrail margin before "
        f"the control value exists): {s['other_error'][2]}; with another alert (crossover, "
        f"missing values): {s['other_alert'][2]}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run seeds (resumable), time the analyses, or print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seeds", type=parse_seeds, default=range(200))
    ap.add_argument("--units", type=int, default=2500, help="units generated per canary")
    ap.add_argument("--looks", type=int, default=LOOKS, help="looks per replicate (default 28)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--time", type=int, default=0, metavar="R",
                    help="time R replicates (nothing written) and print CPU s per analysis")  # fmt: skip
    ap.add_argument("--summary", action="store_true", help="print the Markdown table")
    args = ap.parse_args(argv)
    if args.time:
        rows = [simulate(10_000 + s, args.units, args.looks) for s in range(args.time)]
        per = sum(r["cpu_seconds"] for r in rows) / (args.time * args.looks)
        print(f"{per:.3f} CPU s per analysis ({rows[0]['events']} events, planned "
              f"{rows[0]['planned_units']} units)")  # fmt: skip
        return 0
    if not args.summary:
        n = run(args.out, args.seeds, args.units, args.looks, args.workers)
        print(f"# {n} rows appended to {args.out}", file=sys.stderr)
    s = summarise(read_rows(args.out), args.units)
    print(markdown(s))
    failures = check(s)
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
