"""Benchmark: ``promptstate report`` vs ``promptstate analyze`` on the same export.

Each command runs in a fresh subprocess (wall time and peak resident memory of that process),
with the same metrics file, ledger and export; the report must take at most 1.3× the analysis
(its plots and extra aggregates must not dominate).

    python benchmarks/bench_report.py --events /tmp/big/e20m         # an existing export
    python benchmarks/bench_report.py --generate 20000000            # generate one first
    python benchmarks/bench_report.py --events data_samples/events.parquet --metrics \\
        data_samples/metrics.yaml                                    # the sample

A 20M-event export is generated with ``python -m analysis.sample --events 20000000 --out DIR``
(about 1.5 minutes). Results are printed and appended as JSON lines to
``benchmarks/data/bench_report.jsonl`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "data_samples" / "ledger.yaml"
METRICS = """\
metrics:
  - {type: ratio, numerator: helpfulness, direction: higher}
  - {type: proportion, column: thumbs_up, direction: higher}
  - {type: mean, column: cost_usd, cuped: true, direction: lower}
"""


def _run(cmd: list[str]) -> tuple[float, float, int]:
    """Run ``cmd``; return wall seconds, peak RSS of the child in GB, and the exit code."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "wall = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024\n"
        "print(json.dumps([wall, rss, code]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True
    )
    wall, rss, code = json.loads(out.stdout.strip().splitlines()[-1])
    return float(wall), float(rss), int(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, help="export (file, directory or glob)")
    parser.add_argument("--generate", type=int, metavar="N", help="generate N events first")
    parser.add_argument("--ledger", type=Path, default=LEDGER)
    parser.add_argument("--metrics", type=Path, help="metrics file (default: 3 metrics, CUPED)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    events = args.events
    if args.generate:
        events = tmp / "events"
        subprocess.run(
            [sys.executable, "-m", "analysis.sample", "--events", str(args.generate),
             "--out", str(events)],
            check=True,
        )  # fmt: skip
    if events is None:
        parser.error("give --events or --generate")
    metrics = args.metrics
    if metrics is None:
        metrics = tmp / "metrics.yaml"
        metrics.write_text(METRICS)
    exe = [sys.executable, "-m", "analysis.cli"]
    common = [str(events), "--ledger", str(args.ledger), "--metrics", str(metrics)]
    commands = {
        "analyze": [*exe, "analyze", *common, "--format", "json"],
        "report": [*exe, "report", *common, "--store", str(ROOT / "baselines"),
                   "--out", str(tmp / "report")],
    }  # fmt: skip
    results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in commands}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            results[name].append(_run(cmd))
            wall, rss, code = results[name][-1]
            print(f"{name:8s} {wall:8.1f}s  peak RSS {rss:5.2f} GB  exit {code}", flush=True)
    best = {k: min(v) for k, v in results.items()}
    ratio = best["report"][0] / best["analyze"][0]
    html = tmp / "report" / "report.html"
    size = html.stat().st_size if html.exists() else 0
    print(f"report / analyze = {ratio:.2f} (limit 1.3); report.html {size / 1e6:.2f} MB")
    record = {
        "events": str(events),
        "analyze_s": best["analyze"][0],
        "analyze_rss_gb": best["analyze"][1],
        "report_s": best["report"][0],
        "report_rss_gb": best["report"][1],
        "ratio": ratio,
        "html_bytes": size,
        "cpus": os.cpu_count(),
        "maxrss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    out = ROOT / "benchmarks" / "data" / "bench_report.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
