"""Benchmark: reading 100,000 promptfoo results (issue 25: at most 5 s).

Writes a synthetic promptfoo output file (``promptfoo eval -o out.json`` shape, version 0.118:
``results.results[]`` entries with ``vars``, ``testCase``, ``prompt``, ``provider``,
``response``, ``namedScores``, ``gradingResult.componentResults``; three assertions, two of
them with a ``metric:``) of ``--results`` entries (``--tests`` tests × the repeats), then times
:func:`analysis.evals.results.load_results` on it ``--repeat`` times in this process and reports
the median wall and CPU time, the machine's load (1-minute load average over its CPUs: above
1 the wall time includes waiting for a CPU) and whether the floor holds (median wall ≤ 5 s).
``--plain`` times the reading without the fast decoding (``json`` and the plain loop), as on a
machine without msgspec. Data go to ``benchmarks/data/`` (ignored by git).

Usage::

    python benchmarks/bench_eval_formats.py [--results 100000] [--repeat 3] [--plain] [--check]

``--check`` exits 1 when the median wall time exceeds the target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
TARGET_S = 5.0
QUALITY_JS = "const s = 0.3 + 0.1 * Number(context.vars.level); return {pass: s >= 0.5, score: s};"
CORRECT_JS = "return {pass: true, score: 1};"


def _entry(i: int, test: int, repeat: int, n_tests: int) -> dict[str, Any]:
    level = test % 7
    quality = round(0.3 + 0.1 * level, 2)
    ok = level != 6
    tvars = {"q": f"What is item {test}? Answer in one sentence.", "level": level}
    raw = f"Q: {tvars['q']} (level {level})"
    assertions = [
        {"type": "javascript", "value": QUALITY_JS, "metric": "quality", "provider": "judge-a"},
        {"type": "javascript", "value": CORRECT_JS, "metric": "correct"},
        {"type": "contains", "value": "Q:"},
    ]
    # as promptfoo 0.118 writes them: a javascript assertion returning a result object has no
    # `assertion` in its component result
    comps = [
        {"pass": quality >= 0.5, "score": quality, "reason": f"quality {quality}"},
        {"pass": ok, "score": 1 if ok else 0, "reason": "right" if ok else "wrong"},
        {"pass": True, "score": 1, "reason": "Assertion passed", "assertion": assertions[2]},
    ]
    score = round((quality + (1 if ok else 0) + 1) / 3, 6)
    test_case: dict[str, Any] = {
        "vars": tvars,
        "assert": assertions,
        "options": {},
        "metadata": {"id": f"t{test:06d}"} if test % 3 == 0 else {},
    }
    if test % 3 == 1:
        test_case["description"] = f"case-{test:06d}"
    entry: dict[str, Any] = {
        "cost": 0,
        "gradingResult": {
            "pass": quality >= 0.5 and ok,
            "score": score,
            "reason": "All assertions passed" if quality >= 0.5 and ok else "failed",
            "namedScores": {"quality": quality, "correct": 1 if ok else 0},
            "tokensUsed": {"total": 0, "prompt": 0, "completion": 0, "cached": 0},
            "componentResults": comps,
            "assertion": None,
        },
        "id": f"{i:08x}-0000-4000-8000-000000000000",
        "latencyMs": 1,
        "namedScores": {"quality": quality, "correct": 1 if ok else 0},
        "prompt": {"raw": raw, "label": "r41"},
        "promptId": "5f1e2d",
        "promptIdx": 0,
        "provider": {"id": "echo", "label": ""},
        "response": {
            "output": raw,
            "raw": raw,
            "cost": 0,
            "cached": False,
            "tokenUsage": {"total": 0, "prompt": 0, "completion": 0},
            "isRefusal": False,
            "metadata": {},
        },
        "score": score,
        "success": quality >= 0.5 and ok,
        "testCase": test_case,
        "testIdx": test + repeat * n_tests,
        "vars": tvars,
        "metadata": {**test_case["metadata"], "_promptfooFileMetadata": {}},
        "failureReason": 0 if quality >= 0.5 and ok else 1,
    }
    if not entry["success"]:
        entry["error"] = entry["gradingResult"]["reason"]
    return entry


def write_file(path: Path, n_results: int, repeats: int = 2) -> Path:
    """A promptfoo output file of ``n_results`` entries (``n_results / repeats`` tests)."""
    n_tests = n_results // repeats
    results = [
        _entry(r * n_tests + t, t, r, n_tests) for r in range(repeats) for t in range(n_tests)
    ]
    obj = {
        "evalId": "eval-bench",
        "results": {
            "version": 3,
            "timestamp": "2026-12-07T00:00:00.000Z",
            "prompts": [{"raw": "Q: {{q}} (level {{level}})", "label": "r41", "provider": "echo"}],
            "results": results,
            "stats": {"successes": 0, "failures": 0, "errors": 0},
        },
        "config": {"description": "bench"},
        "shareableUrl": None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--plain", action="store_true", help="without the fast decoding")
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    from analysis.evals import _formats
    from analysis.evals.results import load_results

    if args.plain:
        _formats.decode_promptfoo = lambda data: None
    path = DATA / f"promptfoo-{args.results}.json"
    if not path.exists():
        write_file(path, args.results)
    walls, cpus, loads = [], [], []
    for _ in range(args.repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        res = load_results(path)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        loads.append(os.getloadavg()[0] / (os.cpu_count() or 1))
        assert res.n_rows == args.results, res.n_rows
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    size_mb = path.stat().st_size / 1e6
    holds = wall <= TARGET_S
    print(
        f"read {args.results:,} promptfoo results ({size_mb:.0f} MB, {res.n_examples:,} tests, "
        f"{len(res.metrics)} metrics{', plain reading' if args.plain else ''}): median of "
        f"{args.repeat} wall {wall:.2f} s, CPU {cpu:.2f} s — runs (wall/CPU): "
        + ", ".join(f"{w:.2f}/{c:.2f}" for w, c in zip(walls, cpus, strict=True))
    )
    print(
        f"machine load: {statistics.median(loads):.1f} runnable per CPU ({os.cpu_count()} CPUs; "
        "above 1 the wall time includes waiting for a CPU)"
    )
    print(
        f"floor (median wall <= {TARGET_S:.0f} s): {'holds' if holds else 'NOT met'}"
        + (
            ""
            if holds or cpu > TARGET_S
            else f" (CPU {cpu:.2f} s <= {TARGET_S:.0f} s: the rest is waiting for a CPU)"
        )
    )
    return 1 if args.check and not holds else 0


if __name__ == "__main__":
    sys.exit(main())
