"""Start-up time: ``import analysis`` and ``promptstate --help`` (floors: 0.1 s and 0.5 s).

Each is run in a fresh interpreter ``--repeat`` times; the median and the worst are printed.

    python benchmarks/bench_import.py --repeat 20
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def _time(cmd: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    baseline = _time([sys.executable, "-c", "pass"], args.repeat)
    rows = [("python -c pass (interpreter start)", baseline)]
    rows.append(("import analysis", _time([sys.executable, "-c", "import analysis"], args.repeat)))
    exe = shutil.which("promptstate")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "analysis.cli._main", "--help"]
    rows.append(("promptstate --help", _time(cmd, args.repeat)))
    for name, ts in rows:
        print(f"{name:40s} median {statistics.median(ts):.3f} s  max {max(ts):.3f} s")
    extra = statistics.median(rows[1][1]) - statistics.median(baseline)
    print(f"import analysis beyond interpreter start: {extra:.3f} s")


if __name__ == "__main__":
    main()
