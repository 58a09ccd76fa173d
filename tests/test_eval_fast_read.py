"""Issue 25: reading promptfoo output fast gives what the plain reading gives.

A promptfoo file is decoded by msgspec into typed structs that hold only the fields the reader
uses (:func:`analysis.evals._formats.decode_promptfoo`); a file that does not fit those types,
or a machine without msgspec, is parsed by ``json`` and read by the plain loop. Both readings
must give the same table, notes, revision and grader, and the same errors — checked here on
hand-made files and on seeded random edits of them, with the fast decoding switched off for
the reference. Also: ``baseline anchor`` prints the reader's notes on stderr.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis.cli import main
from analysis.errors import ResultsError
from analysis.evals import _formats
from analysis.evals.results import EvalResults, load_results

QUALITY = {"type": "javascript", "value": "return 1", "metric": "quality", "provider": "judge-a"}
CORRECT = {"type": "javascript", "value": "return 1", "metric": "correct"}
CONTAINS = {"type": "contains", "value": "Q:"}


def _entry(i: int, test: int, repeat: int, n_tests: int = 6) -> dict[str, Any]:
    """One result as promptfoo 0.118 writes it (javascript component results without their
    ``assertion``, a ``contains`` one with it)."""
    quality = 0.5 + 0.05 * (test % 5)
    ok = test % 4 != 3
    tc: dict[str, Any] = {
        "vars": {"q": f"item {test}", "level": test % 5},
        "assert": [QUALITY, CORRECT, CONTAINS],
        "options": {},
        "metadata": {},
    }
    if test % 3 == 0:
        tc["description"] = f"case-{test}"
    elif test % 3 == 1:
        tc["metadata"] = {"id": f"m-{test}"}
    return {
        "id": f"r{i}",
        "testIdx": test + repeat * n_tests,
        "promptIdx": 0,
        "promptId": "p1",
        "prompt": {"raw": f"Q: item {test}", "label": "r41"},
        "provider": {"id": "echo", "label": ""},
        "response": {"output": f"Q: item {test}"},
        "score": round((quality + ok + 1) / 3, 6),
        "success": ok,
        "failureReason": 0 if ok else 1,
        "namedScores": {"quality": quality, "correct": int(ok)},
        "testCase": tc,
        "vars": tc["vars"],
        "gradingResult": {
            "pass": ok,
            "score": round((quality + ok + 1) / 3, 6),
            "reason": "ok",
            "componentResults": [
                {"pass": quality >= 0.6, "score": quality, "reason": "q"},
                {"pass": ok, "score": int(ok), "reason": "c"},
                {"pass": True, "score": 1, "reason": "passed", "assertion": CONTAINS},
            ],
        },
    }


def _doc(n_tests: int = 6, repeats: int = 2) -> dict[str, Any]:
    results = [
        _entry(r * n_tests + t, t, r, n_tests) for r in range(repeats) for t in range(n_tests)
    ]
    return {"evalId": "e", "results": {"version": 3, "results": results}, "config": {}}


def _read(path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    """``load_results`` with the fast decoding on or off: the results, or the error text."""
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(_formats, "decode_promptfoo", lambda data: None)
        try:
            return load_results(path, **kw)
        except ResultsError as exc:
            return f"ResultsError: {exc}"


def _same(a: Any, b: Any) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert isinstance(a, EvalResults)
    assert isinstance(b, EvalResults)
    assert a.table.equals(b.table)
    assert (a.metrics, a.grader, a.revision, a.notes, a.ignored) == (
        b.metrics,
        b.grader,
        b.revision,
        b.notes,
        b.ignored,
    )


def _write(tmp_path: Path, doc: Any, name: str = "pf.json", indent: int | None = 2) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=indent))
    return path


def test_fast_reading_is_used_and_matches_the_plain_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, _doc())
    assert _formats.decode_promptfoo(path.read_bytes()) is not None  # the fast path applies
    fast = _read(path, True, monkeypatch)
    _same(fast, _read(path, False, monkeypatch))
    assert isinstance(fast, EvalResults)
    assert (fast.n_rows, fast.max_samples) == (12, 2)
    assert set(fast.metrics) >= {"score", "pass", "quality", "correct", "contains"}
    assert fast.grader == "judge-a"
    assert fast.revision == "r41"
    ids = set(fast.table.get_column("example_id").to_list())
    assert {"case-0", "m-1"} <= ids
    assert any(i.startswith("vars:") for i in ids)
    # the explicit format reads the same
    _same(_read(path, True, monkeypatch, results_format="promptfoo"), fast)


def _edits() -> list[tuple[str, Any]]:
    """Named edits of a document (in place); each keeps or breaks it in its own way."""

    def rs(d: Any) -> list[Any]:
        return d["results"]["results"]

    def tc(d: Any, k: int) -> Any:
        return rs(d)[k]["testCase"]

    def comps(d: Any, k: int) -> Any:
        return rs(d)[k]["gradingResult"]["componentResults"]

    return [
        (
            "vars key order differs between repeats",
            lambda d: tc(d, 8).update(vars=dict(reversed(list(tc(d, 8)["vars"].items())))),
        ),
        ("same description, other vars", lambda d: tc(d, 3).update(description="case-0")),
        ("same description, same vars", lambda d: tc(d, 6).update(description="case-0")),
        ("no id at all", lambda d: [tc(d, 2).update(vars={}), rs(d)[2].update(vars={})]),
        ("empty metadata id", lambda d: tc(d, 4).update(metadata={"id": ""})),
        ("integer metadata id", lambda d: tc(d, 4).update(metadata={"id": 7})),
        ("boolean metadata id", lambda d: tc(d, 4).update(metadata={"example_id": True})),
        ("description not text", lambda d: tc(d, 0).update(description=["x"])),
        ("testCase without vars", lambda d: [tc(d, k).pop("vars") for k in (2, 8)]),
        ("testCase null", lambda d: rs(d)[5].update(testCase=None)),
        ("testCase a list", lambda d: rs(d)[5].update(testCase=[1])),
        ("score text", lambda d: rs(d)[7].update(score="high")),
        ("score absent", lambda d: rs(d)[7].pop("score")),
        ("success absent", lambda d: rs(d)[7].pop("success")),
        ("success 1", lambda d: rs(d)[7].update(success=1)),
        ("component score text", lambda d: comps(d, 1)[0].update(score="x")),
        ("component score null", lambda d: comps(d, 1)[0].update(score=None)),
        ("component pass 1", lambda d: comps(d, 1)[0].update({"pass": 1})),
        ("component a string", lambda d: comps(d, 1).append("odd")),
        ("component assertion {}", lambda d: comps(d, 1)[0].update(assertion={})),
        (
            "component assertion without name",
            lambda d: comps(d, 1)[0].update(assertion={"value": "x"}),
        ),
        ("component assertion null", lambda d: comps(d, 1)[2].update(assertion=None)),
        (
            "component assertion other metric",
            lambda d: comps(d, 1)[2].update(
                assertion={"type": "equals", "metric": "eq", "provider": {"id": "judge-z"}}
            ),
        ),
        ("one component fewer", lambda d: comps(d, 1).pop()),
        ("no components", lambda d: rs(d)[1]["gradingResult"].update(componentResults=[])),
        ("grading null", lambda d: rs(d)[1].update(gradingResult=None)),
        ("errored result", lambda d: rs(d)[1].update(failureReason=2, error="timeout")),
        ("reserved metric", lambda d: tc(d, 1)["assert"][1].update(metric="pass")),
        ("metric .pass", lambda d: tc(d, 1)["assert"][1].update(metric="x.pass")),
        ("metric a number", lambda d: tc(d, 1)["assert"][1].update(metric=5)),
        (
            "shared metric name",
            lambda d: [tc(d, k)["assert"][1].update(metric="quality") for k in range(12)],
        ),
        ("options provider", lambda d: tc(d, 3).update(options={"provider": "judge-b"})),
        (
            "options provider object",
            lambda d: [tc(d, k).update(options={"provider": {"id": "judge-a"}}) for k in range(12)],
        ),
        ("options a list", lambda d: tc(d, 3).update(options=[1])),
        ("assert not a list", lambda d: tc(d, 3).update({"assert": {"a": 1}})),
        ("second provider", lambda d: rs(d)[9].update(provider={"id": "other"})),
        ("provider label differs", lambda d: rs(d)[9].update(provider={"id": "echo", "x": 1})),
        (
            "second prompt, no promptId",
            lambda d: [rs(d)[9].pop("promptId"), rs(d)[9].update(prompt={"raw": "other"})],
        ),
        ("no promptIds", lambda d: [r.pop("promptId") for r in rs(d)]),
        ("label from a file", lambda d: [r["prompt"].update(label="file://p.txt") for r in rs(d)]),
        ("entry not an object", lambda d: rs(d).insert(3, "x")),
        ("no results", lambda d: rs(d).clear()),
        ("NaN score", lambda d: rs(d)[2].update(score=float("nan"))),
        ("huge score", lambda d: rs(d)[2].update(score=10**400)),
        ("non-ASCII vars", lambda d: [tc(d, k)["vars"].update(q="é ✓ \u2028") for k in (2, 8)]),
    ]


EDITS = _edits()


@pytest.mark.parametrize("edit", [name for name, _ in EDITS])
def test_each_edit_reads_the_same_both_ways(
    edit: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _doc()
    dict(EDITS)[edit](doc)
    path = _write(tmp_path, doc)
    _same(_read(path, True, monkeypatch), _read(path, False, monkeypatch))


def test_random_edits_read_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeded combinations of up to four edits, compact or indented JSON."""
    rng = random.Random(25)
    base = _doc()
    for n in range(40):
        doc = copy.deepcopy(base)
        picked = rng.sample(EDITS, rng.randint(1, 4))
        for _, edit in picked:
            # an earlier edit may have removed what this one edits
            with contextlib.suppress(IndexError, KeyError, TypeError, AttributeError):
                edit(doc)
        path = _write(tmp_path, doc, f"pf{n}.json", indent=rng.choice([None, 2]))
        fast, plain = _read(path, True, monkeypatch), _read(path, False, monkeypatch)
        try:
            _same(fast, plain)
        except AssertionError:
            pytest.fail(f"edits {[name for name, _ in picked]} read differently: {fast} / {plain}")


def test_gc_is_restored_after_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, _doc())
    assert gc.isenabled()
    load_results(path)
    assert gc.isenabled()
    gc.disable()
    try:
        load_results(path)
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
    bad = _doc()
    bad["results"]["results"][0]["score"] = "high"
    with pytest.raises(ResultsError):
        load_results(_write(tmp_path, bad, "bad.json"))
    assert gc.isenabled()


# ------------------------------------------------------------------ baseline anchor's notes


def _suite(tmp_path: Path, metrics: dict[str, Any], grader: str) -> tuple[Path, Path]:
    cfg = tmp_path / "suite.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "prompt": "support-assistant",
                "grader": grader,
                "on_revert": "pin",
                "metrics": metrics,
            }
        )
    )
    store = tmp_path / "store"
    assert main(["baseline", "init", "qa", "--config", str(cfg), "--store", str(store)]) == 0
    return cfg, store


def test_anchor_prints_the_readers_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc()
    doc["results"]["results"][1].update(failureReason=2, error="timeout")  # errored: a note
    # an assertion result without a name: not read (a note), `contains` then partial (a note)
    doc["results"]["results"][1]["gradingResult"]["componentResults"][2]["assertion"] = {"x": 1}
    pf = _write(tmp_path, doc)
    metric = {"kind": "continuous", "direction": "higher", "margin": 0.05}
    _, store = _suite(tmp_path, {"quality": metric}, "judge-a")
    capsys.readouterr()
    code = main(
        [
            "baseline",
            "anchor",
            "qa",
            "--revision",
            "r41",
            "--results",
            str(pf),
            "--store",
            str(store),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "anchored r41 as qa v0001 (6 examples)" in out
    notes = [line for line in err.splitlines() if line.startswith("promptstate: note: ")]
    assert f"promptstate: note: {pf}: 1 result(s) ended in an error" in "\n".join(notes)
    assert any("1 assertion result(s) without their assertion" in n for n in notes)
    assert any("metric 'contains' is not scored on results.results[1]" in n for n in notes)
    assert "note" not in out


def test_anchor_of_a_table_notes_its_text_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "scores.csv"
    table.write_text(
        "example_id,question,quality\n" + "".join(f"e{i},what is {i}?,0.{i}\n" for i in range(5))
    )
    metric = {"kind": "continuous", "direction": "higher", "margin": 0.05}
    _, store = _suite(tmp_path, {"quality": metric}, "judge-a")
    capsys.readouterr()
    argv = [
        "baseline",
        "anchor",
        "qa",
        "--revision",
        "r41",
        "--results",
        str(table),
        "--store",
        str(store),
        "--grader",
        "judge-a",
    ]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    note = next(line for line in err.splitlines() if line.startswith("promptstate: note: "))
    assert "'question'" in note
    assert "not a score" in note
    # a refused file: exit 2, its error only, nothing stored
    table.write_text("example_id,question,quality\ne1,what?,high\n")
    assert main([a if a != "r41" else "r42" for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "note:" not in err
    assert str(table) in err
    assert sorted(p.name for p in (store / "qa" / "versions").iterdir()) == ["v0001"]
