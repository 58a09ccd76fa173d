"""Regenerate the embedded sample: ``python data_samples/generate.py`` (seeded, deterministic).

The generator itself is :mod:`analysis.sample` (documented there); this script only writes its
output next to itself. For a large export for benchmarks:
``python -m analysis.sample --users 700000 --out benchmarks/data --no-truth``.
"""

from __future__ import annotations

from pathlib import Path

from analysis.sample import SampleSpec, write_sample

if __name__ == "__main__":
    sample = write_sample(Path(__file__).resolve().parent, SampleSpec())
    print(f"wrote {sample.events.height} rows ({sample.info['n_events']} events)")
