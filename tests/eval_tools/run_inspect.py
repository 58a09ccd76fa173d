"""Produce the Inspect AI logs of tests/test_eval_formats.py with the real Inspect, offline.

Usage: ``python tests/eval_tools/run_inspect.py OUT_DIR``. One process runs every variant of the
task in ``inspect_qa.py`` (``mockllm/model``, 80 samples × 2 epochs) and writes

* ``r41.eval``, ``r42.eval`` (the default ``.eval`` zip), ``r43.json`` (``--log-format json``,
  the same answers as r41), ``r43-worse.eval`` (each quality score 0.1 lower) and
  ``r43-judge-b.json`` (graded by another judge model).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Literal

from inspect_ai import eval as inspect_eval

sys.path.insert(0, str(Path(__file__).parent))
from inspect_qa import qa

VARIANTS: dict[Literal["eval", "json"], dict[str, dict[str, Any]]] = {
    "eval": {
        "r41": {"revision": "r41"},
        "r42": {"revision": "r42"},
        "r43-worse": {"revision": "r43", "worse": True},
    },
    "json": {
        "r43": {"revision": "r43"},
        "r43-judge-b": {"revision": "r43", "judge": "mockllm/judge-b"},
    },
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for fmt, variants in VARIANTS.items():
        logs = inspect_eval(
            [qa(**args) for args in variants.values()],
            model="mockllm/model",
            epochs=2,
            log_dir=str(out / f"raw-{fmt}"),
            log_format=fmt,
            display="none",
            max_tasks=len(variants),
        )
        for name, log in zip(variants, logs, strict=True):
            if log.status != "success":
                raise SystemExit(f"inspect run {name} ended {log.status}: {log.error}")
            shutil.copyfile(log.location, out / f"{name}.{fmt}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
