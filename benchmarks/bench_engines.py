"""Benchmark across engines: the same export through polars, DuckDB and PySpark (split + analyze).

Usage::

    python benchmarks/bench_engines.py --events 20000000                     # generates once
    python benchmarks/bench_engines.py --events /tmp/bench/e20m --engines polars,duckdb,spark
    python benchmarks/bench_engines.py --events 200000 --repeat 3            # a quick run

``--events`` is either a number of events (an export of that size is generated once with
``python -m analysis.sample --events N`` under ``--data``, default ``/tmp/bench``) or the path
of an existing export. Each engine runs in a fresh process (:mod:`_engine_child`): the export
handed to ``split`` as the engine's own object (a path read by polars; a DuckDB relation over
the Parquet files; a PySpark ``local[2]`` DataFrame), then ``contamination_summary`` and
``analyze`` (``--metrics``, default ``engines_metrics.yaml``: helpfulness per turn with its
pre-period adjustment, a proportion, p95 latency and a guardrail; ``--segment consumer``;
explain and recovery on). Reported per engine: the steps' times measured inside the process, the process wall time (interpreter and engine start-up
included), its CPU time (user + system of the processes it waited for: the JVM's CPU is not
included for Spark) and the peak RSS of the process tree (Python + the JVM for Spark;
:mod:`_measure`).
Spark's jobs are counted per step (a job group; ``--spark-aqe false`` turns adaptive execution
off). The engines must agree on the tagged events per label × arm (a row that does not is
marked), and every effect, SE, interval and p-value is compared with the first engine's (the
largest absolute difference is shown).

Prints a Markdown table (and the commit it measured).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import Measured, measure

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LEDGER = ROOT / "data_samples" / "ledger.yaml"
METRICS = HERE / "engines_metrics.yaml"
ENGINES = ("polars", "duckdb", "spark")


def _export(spec: str, data: Path) -> Path:
    """The export ``spec`` names: an existing path, or N events generated once under ``data``."""
    if not spec.isdigit():
        path = Path(spec)
        if not path.exists():
            raise SystemExit(f"--events {spec}: no such export; give a path or a number")
        return path
    n = int(spec)
    path = data / f"e{n}"
    if not path.exists():
        tmp = data / f"e{n}.partial"
        subprocess.run(
            [sys.executable, "-m", "analysis.sample", "--events", str(n), "--out", str(tmp)],
            check=True,
            cwd=ROOT,
        )
        tmp.rename(path)
    return path


def _row(engine: str, runs: list[Measured], parsed: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [p for p in parsed if p]
    med = (lambda k: statistics.median(p[k] for p in ok)) if ok else (lambda k: float("nan"))
    return {
        "engine": engine,
        "wall": statistics.median(m.wall_s for m in runs),
        "cpu": statistics.median(m.cpu_s for m in runs),
        "peak": max(m.peak_gb for m in runs),
        "start": med("start_s"),
        "split": med("split_s"),
        "analyze": med("analyze_s"),
        "code": max(m.code for m in runs),
        "parsed": ok[0] if ok else None,
        "err": runs[-1].err,
    }


def _difference(reference: dict[str, float], other: dict[str, float]) -> str:
    """The largest absolute difference over the numbers both runs report (effects, SEs,
    p-values, intervals of the effects and segment rows), and the keys only one has."""
    shared = reference.keys() & other.keys()
    only = len(reference.keys() ^ other.keys())
    if not shared:
        return "nothing to compare"
    worst = max(abs(reference[k] - other[k]) for k in shared)
    text = f"{worst:.1e} over {len(shared)} numbers"
    return text + (f"; **{only} only in one**" if only else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        required=True,
        help="number of events to generate (once), or the path of an existing export",
    )
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help="comma-separated engines to run, in order (default: polars,duckdb,spark)",
    )
    parser.add_argument("--ledger", type=Path, default=LEDGER, help="rollout ledger (the sample's)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine (median)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("/tmp/bench"),
        help="where generated exports are kept (default: /tmp/bench)",
    )
    parser.add_argument(
        "--spark-driver-memory", default="4g", help="spark.driver.memory (default: 4g)"
    )
    parser.add_argument(
        "--pythonpath",
        type=Path,
        help="import the package from this directory (e.g. a snapshot of an older commit)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds before a run is killed (default 900)"
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        default=METRICS,
        help="metrics file (default: benchmarks/engines_metrics.yaml, the issue's configuration)",
    )
    parser.add_argument(
        "--segment", default="consumer", help="segment column ('' for none; default: consumer)"
    )
    parser.add_argument(
        "--spark-aqe", default="true", help="spark.sql.adaptive.enabled (default: true)"
    )
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"--engines: unknown {', '.join(unknown)}; use {', '.join(ENGINES)}")
    args.data.mkdir(parents=True, exist_ok=True)
    events = _export(args.events, args.data)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    env = {"PYTHONPATH": str(args.pythonpath.resolve())} if args.pythonpath else {}
    rows = []
    for engine in engines:
        runs: list[Measured] = []
        parsed: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            cmd = [sys.executable, str(HERE / "_engine_child.py"), engine, str(events),
                   str(args.ledger), "--spark-driver-memory", args.spark_driver_memory,
                   "--metrics", str(args.metrics), "--spark-aqe", args.spark_aqe]  # fmt: skip
            if args.segment:
                cmd += ["--segment", args.segment]
            m = measure(cmd, cwd=ROOT, env=env, timeout=args.timeout)
            runs.append(m)
            rec = json.loads(m.out.strip().splitlines()[-1]) if m.code == 0 and m.out else {}
            parsed.append(rec)
            print(
                f"{engine:7s} {m.wall_s:7.1f} s  cpu {m.cpu_s:7.1f} s  peak {m.peak_gb:5.2f} GB  "
                f"exit {m.code}",
                file=sys.stderr,
                flush=True,
            )
        rows.append(_row(engine, runs, parsed))
    reference = next((r["parsed"]["tagged"] for r in rows if r["parsed"]), None)
    numbers = next((r["parsed"]["numbers"] for r in rows if r["parsed"]), {})
    n = next((r["parsed"]["n_events"] for r in rows if r["parsed"]), None)
    where = f" (package from {args.pythonpath})" if args.pythonpath else ""
    load = os.getloadavg()[0]
    print(
        f"commit {commit}{where}; {n or '?'} events ({events}); median of {args.repeat}; "
        f"load average at the end {load:.1f}\n"
    )
    print(
        "| engine | backend used | start-up | split + summary | analyze | process wall "
        "| process CPU | peak RSS (tree) | Spark jobs (split / analyze) | agrees "
        "| largest difference from the first engine |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["parsed"]
        if p is None:
            last = r["err"].strip().splitlines()[-1:] or ["?"]
            print(f"| {r['engine']} | failed (exit {r['code']}): {last[0][:120]} "
                  f"| | | | {r['wall']:.1f} s | {r['cpu']:.1f} s | {r['peak']:.2f} GB | | | |")  # fmt: skip
            continue
        agrees = "yes" if p["tagged"] == reference else "**no**"
        jobs = p.get("spark_jobs")
        njobs = f"{jobs['split']} / {jobs['analyze']}" if jobs else "—"
        print(
            f"| {r['engine']} | {p['backend']} | {r['start']:.1f} s | {r['split']:.1f} s "
            f"| {r['analyze']:.1f} s | {r['wall']:.1f} s | {r['cpu']:.1f} s | {r['peak']:.2f} GB "
            f"| {njobs} | {agrees} | {_difference(numbers, p.get('numbers', {}))} |"
        )
    return 0 if all(r["parsed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
