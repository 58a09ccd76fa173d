"""Results that name their prompt revision are checked against ``--revision``; the notes of what
was ignored while reading reach the gate's output.

The readers of promptfoo and Inspect AI files fill ``EvalResults.revision`` (tests/
test_eval_formats.py); here the checks that use it, on results built in memory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from analysis.errors import ResultsError
from analysis.evals import BaselineStore, gate, load_results
from analysis.evals.models import SuiteConfig

IDS = [f"q{i:03d}" for i in range(400)]


def _results(revision: str | None, *, text: bool = False) -> object:
    frame = pl.DataFrame({"example_id": IDS, "correct": [int(i % 4 != 0) for i in range(400)]})
    if text:
        frame = frame.with_columns(pl.lit("What is 2 + 2?").alias("question"))
    return dataclasses.replace(load_results(frame), revision=revision)


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    st = BaselineStore(tmp_path / "store")
    cfg = SuiteConfig.from_mapping(
        {
            "prompt": "assistant",
            "grader": "judge-1",
            "on_revert": "pin",
            "metrics": {"correct": {"kind": "binary", "direction": "higher", "margin": 0.05}},
        }
    )
    st.init("qa", cfg)
    return st


def test_anchor_refuses_results_of_another_revision(store: BaselineStore) -> None:
    suite = store.suite("qa")
    with pytest.raises(ResultsError, match=r"names revision 'r2' but --revision is 'r1'"):
        suite.anchor("r1", _results("r2"))  # type: ignore[arg-type]
    assert suite.reference().version is None
    version, _ = suite.anchor("r1", _results("r1"))  # type: ignore[arg-type]
    assert version.revision == "r1"


def test_gate_refuses_a_candidate_of_another_revision(store: BaselineStore) -> None:
    store.suite("qa").anchor("r1", _results(None))  # type: ignore[arg-type]
    with pytest.raises(ResultsError, match=r"names revision 'r2' but --revision is 'r3'"):
        gate("qa", _results("r2"), revision="r3", store=store, stale_check=False)  # type: ignore[arg-type]
    res = gate("qa", _results("r3"), revision="r3", store=store, stale_check=False)  # type: ignore[arg-type]
    assert res.verdict == "pass"


def test_gate_shows_what_reading_ignored(store: BaselineStore) -> None:
    store.suite("qa").anchor("r1", _results(None))  # type: ignore[arg-type]
    cand = _results(None, text=True)
    assert any("question" in n for n in cand.notes)  # type: ignore[attr-defined]
    res = gate("qa", cand, revision="r3", store=store, stale_check=False)  # type: ignore[arg-type]
    assert any("question" in n for n in res.notes)
