"""One engine's run for ``bench_engines.py`` (run in a fresh process per measurement).

Usage::

    python benchmarks/_engine_child.py ENGINE EVENTS LEDGER [--spark-driver-memory 4g]

``ENGINE`` is ``polars`` (the export's path handed to ``split``, read by polars), ``duckdb``
(a DuckDB relation over the Parquet files) or ``spark`` (a PySpark DataFrame, ``local[2]``).
Runs ``split`` + ``contamination_summary``, then ``analyze`` with the default metrics (explain
and recovery on), timing each step inside the process. Prints one JSON object::

    {"engine", "start_s", "split_s", "analyze_s", "n_events",
     "tagged": {"label|arm": events}, "effect": clean combined helpfulness effect}

``start_s`` is the engine's start-up (the Spark session; 0 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _source(engine: str, events: Path, driver_memory: str) -> tuple[Any, float]:
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
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        path = str(events)
        df = spark.read.parquet(path)
        return df, time.perf_counter() - t0
    raise SystemExit(f"unknown engine {engine!r}: use polars, duckdb or spark")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=("polars", "duckdb", "spark"), help="engine")
    parser.add_argument("events", type=Path, help="event export directory (or Parquet file)")
    parser.add_argument("ledger", type=Path, help="rollout ledger")
    parser.add_argument(
        "--spark-driver-memory", default="4g", help="spark.driver.memory (default: 4g)"
    )
    args = parser.parse_args(argv)
    from analysis import analyze, contamination_summary, split

    source, start_s = _source(args.engine, args.events, args.spark_driver_memory)
    t0 = time.perf_counter()
    res = split(source, args.ledger)
    summary = contamination_summary(res)
    t1 = time.perf_counter()
    out = analyze(res)
    t2 = time.perf_counter()
    e = out.effect("helpfulness")
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
                "effect": e.effect,
                "backend": res.keyed.implementation.name.lower(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
