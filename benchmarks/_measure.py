"""Measure one command in its own process tree: wall time and peak resident memory.

Shared by the benchmark scripts. Peak memory is the highest *sum* of the resident set sizes of
the child and all its descendants, sampled every ``interval`` seconds with psutil (a PySpark
run is a Python driver plus a JVM child; ``ru_maxrss`` would report only the larger of the
two). ``ru_maxrss`` of the largest single descendant (``RUSAGE_CHILDREN``) is reported next to
it as a cross-check: for a one-process command the two agree within the sampling interval.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import psutil

__all__ = ["Measured", "measure", "run_python", "self_maxrss_gb"]


class Measured(NamedTuple):
    """One measured run.

    Attributes:
        wall_s: Wall-clock seconds from start to exit.
        peak_gb: Peak of the summed RSS of the process tree (GiB).
        maxrss_gb: ``ru_maxrss`` of the largest single process of the tree (GiB).
        code: Exit code.
        out: The command's standard output.
        err: The last 2,000 characters of its standard error.
        cpu_s: User + system CPU seconds of the process tree (robust to other jobs sharing
            the cores, unlike ``wall_s``).
    """

    wall_s: float
    peak_gb: float
    maxrss_gb: float
    code: int
    out: str
    err: str
    cpu_s: float


GB = 1024**3


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    interval: float = 0.05,
    timeout: float | None = None,
) -> Measured:
    """Run ``cmd`` to completion and measure it (see the module docstring).

    ``ru_maxrss`` of children is cumulative over every child this process ever waited for, so
    each call runs ``cmd`` under a fresh wrapper interpreter that reports its own children's
    figure.
    """
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "r = [u.ru_maxrss, code, u.ru_utime + u.ru_stime]\n"
        "sys.stderr.write('\\n@@MAXRSS ' + json.dumps(r) + '\\n')\n"
    )
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = psutil.Popen(
            [sys.executable, "-c", wrapper, *cmd], stdout=out, stderr=err, env=full_env, cwd=cwd
        )
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc))
            time.sleep(interval)
            if timeout is not None and time.perf_counter() - t0 > timeout:
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
                break
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    maxrss_kb, code = 0, proc.returncode if proc.returncode is not None else -9
    cpu = float("nan")
    marker = stderr.rfind("@@MAXRSS ")
    if marker >= 0:
        maxrss_kb, code, cpu = json.loads(stderr[marker + 9 :].splitlines()[0])
        stderr = stderr[:marker]
    return Measured(
        wall, peak / GB, maxrss_kb * 1024 / GB, int(code), stdout, stderr[-2000:], float(cpu)
    )


def run_python(
    code: str, *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None
) -> Measured:
    """Measure ``python -c code`` (the same interpreter as this one)."""
    return measure([sys.executable, "-c", code], env=env, cwd=cwd)


def self_maxrss_gb() -> float:
    """This process's own ``ru_maxrss`` in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB
