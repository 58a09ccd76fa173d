"""One engine's run for ``bench_engines.py`` (run in a fresh process per measurement).

Usage::

    python benchmarks/_engine_child.py ENGINE EVENTS LEDGER [--spark-driver-memory 4g]
        [--metrics FILE] [--segment COLUMN] [--spark-aqe true|false]

``ENGINE`` is ``polars`` (the export's path handed to ``split``, read by polars), ``duckdb``
(a DuckDB relation over the Parquet files) or ``spark`` (a PySpark DataFrame, ``local[2]``).
Runs ``split`` + ``contamination_summary``, then ``analyze`` (``--metrics``, default the CLI's
default metrics; ``--segment``; explain and recovery on), timing each step inside the process.
Prints one JSON object::

    {"engine", "start_s", "split_s", "analyze_s", "n_events",
     "tagged": {"label|arm": events}, "effect": clean combined effect of the first metric,
     "numbers": {"table|key": value}, "spark_jobs": {"split": n, "analyze": n}}

``start_s`` is the engine's start-up (the Spark session; 0 otherwise); ``numbers`` every effect,
SE and p-value of the effects and segment rows (compared across engines by
``bench_engines.py``); ``spark_jobs`` the Spark jobs each step launched (a job group around it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any


def _source(engine: str, events: Path, driver_memory: str, aqe: str = "true") -> tuple[Any, float]:
    """The export as the engine's native object, and the engine's start-up seconds."""
    glob = str(events) if events.suffix == ".parquet" else str(events / "**" / "*.parquet")
    if engine == "polars":
        return str(events), 0.0
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET threads = {os.cpu_count() or 2}")
        return con.read_parquet(glob, hive_partitioning=True), 0.0
    if engine == "spark":
        t0 = time.perf_counter()
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.master("local[2]")
            .appName("promptstate-bench")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", driver_memory)
            .config("spark.driver.maxResultSize", "0")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.adaptive.enabled", aqe)
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        path = str(events)
        df = spark.read.parquet(path)
        return df, time.perf_counter() - t0
    raise SystemExit(f"unknown engine {engine!r}: use polars, duckdb or spark")


def _job_counter(frame: Any) -> Any:
    """A function giving the Spark jobs launched so far by this thread (a job group)."""
    sc = frame.sparkSession.sparkContext
    sc.setJobGroup("promptstate-bench", "bench_engines")
    return lambda: len(sc.statusTracker().getJobIdsForGroup("promptstate-bench"))


def _numbers(out: Any) -> dict[str, float]:
    """Every effect, SE and p-value of the effects and segment rows, by key (the guardrail's
    verdicts are computed from the effects rows)."""
    found: dict[str, float] = {}
    tables = {"effects": out.effects.to_dicts(), "segments": out.segments.to_dicts()}
    for name, rows in tables.items():
        for r in rows:
            key = "|".join(
                str(r.get(k)) for k in ("metric", "arm", "phase", "segment", "segment_value")
            )
            for col in ("effect", "se", "pvalue", "ci_lower", "ci_upper", "effect_fresh"):
                v = r.get(col)
                if isinstance(v, float) and not math.isnan(v):
                    found[f"{name}|{key}|{col}"] = v
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=("polars", "duckdb", "spark"), help="engine")
    parser.add_argument("events", type=Path, help="event export directory (or Parquet file)")
    parser.add_argument("ledger", type=Path, help="rollout ledger")
    parser.add_argument(
        "--spark-driver-memory", default="4g", help="spark.driver.memory (default: 4g)"
    )
    parser.add_argument("--metrics", type=Path, help="metrics file (default: the CLI's defaults)")
    parser.add_argument("--segment", action="append", default=[], help="segment column")
    parser.add_argument(
        "--spark-aqe", default="true", help="spark.sql.adaptive.enabled (default: true)"
    )
    args = parser.parse_args(argv)
    from analysis import analyze, contamination_summary, split
    from analysis.metrics.definitions import load_metrics

    metrics = load_metrics(args.metrics) if args.metrics else None
    source, start_s = _source(args.engine, args.events, args.spark_driver_memory, args.spark_aqe)
    jobs = _job_counter(source) if args.engine == "spark" else None
    t0 = time.perf_counter()
    res = split(source, args.ledger)
    summary = contamination_summary(res)
    t1 = time.perf_counter()
    n_split = jobs() if jobs else 0
    out = analyze(res, metrics=metrics, segments=args.segment or None)
    t2 = time.perf_counter()
    n_analyze = (jobs() - n_split) if jobs else 0
    e = out.effects.to_dicts()[0]
    tagged = {f"{r['label']}|{r['arm']}": int(r["events"]) for r in out.exclusions.to_dicts()}
    print(
        json.dumps(
            {
                "engine": args.engine,
                "start_s": start_s,
                "split_s": t1 - t0,
                "analyze_s": t2 - t1,
                "n_events": summary.n_events,
                "tagged": tagged,
                "effect": e["effect"],
                "numbers": _numbers(out),
                "spark_jobs": {"split": n_split, "analyze": n_analyze} if jobs else None,
                "backend": res.keyed.implementation.name.lower(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
