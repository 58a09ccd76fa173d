"""Eval-results input: formats, validation errors, eval-set hash, example-level means."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from analysis.errors import ResultsError
from analysis.evals.results import eval_set_hash, load_results

ROWS = {
    "example_id": ["a", "a", "b", "b", "c", "c"],
    "sample": [0, 1, 0, 1, 0, 1],
    "correct": [1, 0, 1, 1, 0, 0],
    "rubric": [4.0, 3.0, 5.0, 4.5, 2.0, 2.5],
}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_formats_load_the_same(tmp_path: Path, fmt: str) -> None:
    df = pl.DataFrame(ROWS)
    path = tmp_path / f"r.{fmt}"
    if fmt == "csv":
        df.write_csv(path)
    elif fmt == "parquet":
        df.write_parquet(path)
    else:
        df.write_ndjson(path)
    res = load_results(path)
    assert res.metrics == ("correct", "rubric")
    assert res.n_rows == 6
    assert res.n_examples == 3
    assert res.max_samples == 2
    means = res.example_means()
    assert means.get_column("correct").to_list() == [0.5, 1.0, 0.0]
    assert means.get_column("rubric").to_list() == [3.5, 4.75, 2.25]
    assert res.summary() == pytest.approx({"correct": 0.5, "rubric": 3.5})


def test_eval_set_hash_ignores_order_and_samples() -> None:
    a = load_results(pl.DataFrame(ROWS))
    b = load_results(pl.DataFrame(ROWS).reverse())
    assert a.eval_set_sha256 == b.eval_set_sha256 == eval_set_hash(["c", "b", "a"])
    # scheme 2 (current): SHA-256 of the compact JSON array of the sorted ids
    assert eval_set_hash(["c", "a", "b"]) == hashlib.sha256(b'["a","b","c"]').hexdigest()
    # scheme 1 (versions anchored before): the ids joined by newlines
    assert eval_set_hash(["a", "b", "c"], scheme=1) == hashlib.sha256(b"a\nb\nc").hexdigest()
    assert a.eval_set_hash(1) == hashlib.sha256(b"a\nb\nc").hexdigest()
    with pytest.raises(ValueError, match="scheme"):
        eval_set_hash(["a"], scheme=3)


def test_eval_set_hash_scheme_2_has_no_newline_collision() -> None:
    # scheme 1 cannot tell the single id "a\nb" from the two ids a and b; scheme 2 can
    assert eval_set_hash(["a\nb"], scheme=1) == eval_set_hash(["a", "b"], scheme=1)
    assert eval_set_hash(["a\nb"]) != eval_set_hash(["a", "b"])
    assert eval_set_hash(['a","b']) != eval_set_hash(["a", "b"])
    # non-ASCII ids are escaped (ASCII JSON), sorted by code point as polars sorts
    ids = ["é", "z", "a", "\u00e9x", "日本"]
    res = load_results(pl.DataFrame({"example_id": ids, "s": [1.0] * 5}))
    expected = hashlib.sha256(json.dumps(sorted(ids), separators=(",", ":")).encode()).hexdigest()
    assert res.eval_set_sha256 == eval_set_hash(ids) == expected


@pytest.mark.parametrize("bad", ["a\nb", "tab\there", "nul\x00", "del\x7f", "c1\x85", "cr\r"])
def test_ids_with_control_characters_are_refused(tmp_path: Path, bad: str) -> None:
    df = pl.DataFrame({"example_id": ["ok", bad], "s": [1.0, 0.0]})
    with pytest.raises(ResultsError, match=r"1 example id\(s\) contain control characters \(row 2"):
        load_results(df)
    path = tmp_path / "r.parquet"
    df.write_parquet(path)
    with pytest.raises(ResultsError, match=f"{path}: .*control characters"):
        load_results(path)
    assert load_results(df, strict_ids=False).n_examples == 2  # stored scores of old versions


def test_results_without_rows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("example_id,correct\n")
    with pytest.raises(ResultsError, match=f"{path}: no rows"):
        load_results(path)
    with pytest.raises(ResultsError, match="<memory>: no rows"):
        load_results(
            pl.DataFrame(
                {"example_id": [], "s": []}, schema={"example_id": pl.String, "s": pl.Float64}
            )
        )


def test_numeric_ids_and_booleans() -> None:
    res = load_results(pl.DataFrame({"example_id": [1, 2], "ok": [True, False]}))
    assert res.table.get_column("example_id").to_list() == ["1", "2"]
    assert res.table.get_column("ok").to_list() == [1.0, 0.0]
    assert res.max_samples == 1


def test_grader_column(tmp_path: Path) -> None:
    res = load_results(pl.DataFrame({**ROWS, "grader": ["g"] * 6}))
    assert res.grader == "g"
    with pytest.raises(ResultsError, match="several graders"):
        load_results(pl.DataFrame({**ROWS, "grader": ["g"] * 5 + ["h"]}))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"id": ["a"], "x": [1.0]}, "no 'example_id' column"),
        ({"example_id": ["a", None], "x": [1.0, 2.0]}, "without an example_id"),
        ({"example_id": ["a", " "], "x": [1.0, 2.0]}, r"rows 2\)"),
        ({"example_id": ["a", "a"], "x": [1.0, 2.0]}, "add a 'sample' column"),
        ({"example_id": ["a", "a"], "sample": [1, 1], "x": [1.0, 2.0]}, "duplicated"),
        ({"example_id": ["a", "b"], "x": ["good", "bad"]}, r"no metric columns.*'x' is String"),
        ({"example_id": ["a", "b"], "x": [1.0, float("nan")]}, "missing/NaN"),
        ({"example_id": ["a", "b"], "x": [1.0, None]}, "missing/NaN"),
        ({"example_id": ["a", "b"], "x": [1.0, float("inf")]}, "infinite"),
        ({"example_id": ["a"]}, "no metric columns"),
        ({"example_id": ["a"], "sample": [0.5], "x": [1.0]}, "'sample' must be"),
    ],
)
def test_validation_errors(frame: dict[str, list[object]], message: str) -> None:
    with pytest.raises(ResultsError, match=message):
        load_results(pl.DataFrame(frame, strict=False))


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cand.csv"
    path.write_text("example_id,x\na,1\na,2\n")
    with pytest.raises(ResultsError, match=r"cand\.csv: 1 duplicated example id\(s\) \(e\.g\. a\)"):
        load_results(path)
    with pytest.raises(ResultsError, match="unknown results format"):
        load_results(tmp_path / "cand.xlsx")
    with pytest.raises(ResultsError, match="not found"):
        load_results(tmp_path / "missing.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="cannot read"):
        load_results(bad)


def test_metric_selection_and_checks() -> None:
    res = load_results(pl.DataFrame(ROWS), metrics=["rubric"])
    assert res.metrics == ("rubric",)
    with pytest.raises(ResultsError, match="missing metric column"):
        load_results(pl.DataFrame(ROWS), metrics=["nope"])
    full = load_results(pl.DataFrame(ROWS))
    full.check_metrics(["correct"], ["correct"])
    with pytest.raises(ResultsError, match="binary in the suite"):
        full.check_metrics(["rubric"], ["rubric"])
    with pytest.raises(ResultsError, match="missing metric column"):
        full.check_metrics(["latency"])


def test_text_columns_are_ignored_with_a_note_unless_named(tmp_path: Path) -> None:
    """Issue 19/25: a question-text column, as eval tools write, is not a metric."""
    path = tmp_path / "cand.csv"
    pl.DataFrame({**ROWS, "question": [f"q {i}?" for i in range(6)]}).write_csv(path)
    res = load_results(path)
    assert res.metrics == ("correct", "rubric")
    assert any("'question' is String, not a score" in n for n in res.notes)
    assert res.notes[0].startswith(str(path))
    with pytest.raises(ResultsError, match=r"cand\.csv: metric column 'question' is String"):
        load_results(path, metrics=["correct", "question"])
    # a suite metric that the file carries only as text: the reason is in the error
    with pytest.raises(ResultsError, match=r"missing metric column\(s\) question.*is String"):
        res.check_metrics(["question"])


def test_results_format_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="results format 'xml' is unknown"):
        load_results(pl.DataFrame(ROWS), results_format="xml")
    with pytest.raises(ResultsError, match="needs a file"):
        load_results(pl.DataFrame(ROWS), results_format="promptfoo")
    path = tmp_path / "r.csv"
    pl.DataFrame(ROWS).write_csv(path)
    assert load_results(path, results_format="table").n_rows == 6
    assert load_results(path, results_format="auto").n_rows == 6
    with pytest.raises(ResultsError, match=r"r\.csv: not valid JSON"):
        load_results(path, results_format="promptfoo")
    odd = tmp_path / "odd.json"
    odd.write_text('{"rows": []}')
    with pytest.raises(ResultsError, match=r"odd\.json: JSON that is neither promptfoo"):
        load_results(odd)
    with pytest.raises(ResultsError, match=r"gone\.json: results file not found"):
        load_results(tmp_path / "gone.json")
