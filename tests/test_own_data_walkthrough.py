"""The README's "On your own data" walk-through, run as a new user would, on a generated export.

Nothing here comes from the sample: the ledger is built by commands only (``ledger init``, then
``ledger record``), the unit column is ``account``, the export is a generated bucket-moving canary
→ ramp → rollback (tests/_generators.py), and the eval store is made with ``baseline init``.
Each step goes through ``main(argv)`` and is checked on its exit code, its output and the files
it wrote.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from _generators import END, RAMP, START, RampSpec, generate

from analysis.cli import main


def _iso(t: object) -> str:
    return t.isoformat().replace("+00:00", "Z")  # type: ignore[attr-defined]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("walk") / "export"
    folder.mkdir()
    events = generate(RampSpec(n_units=1500, seed=11)).rename({"user_id": "account"})
    events.write_parquet(folder / "events.parquet")
    return folder


def test_the_readme_walk_through_on_a_users_own_export(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger.yaml"
    rec = ("ledger", "record")

    # A ledger from nothing, by commands only.
    code, _, err = _run(capsys, *rec, "deploy", "--ledger", str(ledger), "--prompt", "assistant",
                        "--revision", "r1", "--text", "x", "--at", _iso(START))  # fmt: skip
    assert code == 2
    assert "ledger init" in err
    assert not ledger.exists()
    assert _run(capsys, "ledger", "init", str(ledger))[0] == 0
    steps = [
        ("deploy", "--prompt", "assistant", "--revision", "r1", "--text", "You help.",
         "--contract", "v1", "--at", _iso(START - timedelta(days=30))),
        ("start", "--experiment", "exp-ramp", "--prompt", "assistant", "--arms", "control=r1",
         "treatment=r2", "--control", "control", "--unit", "account", "--revision-text",
         "r2=You help, briefly.", "--revision-contract", "r2=v1", "--revision-parent", "r2=r1",
         "--allocation", "control=0.8", "treatment=0.2", "--at", _iso(START)),
        ("ramp", "--experiment", "exp-ramp", "--allocation", "control=0.5", "treatment=0.5",
         "--at", _iso(RAMP)),
        ("rollback", "--experiment", "exp-ramp", "--to", "r1", "--at", _iso(END)),
        ("consumer", "etl", "--prompt", "assistant", "--accepts", "v1"),
        ("revision", "--prompt", "assistant", "--revision", "r3", "--text", "You help, kindly.",
         "--contract", "v1", "--parent", "r1"),
    ]  # fmt: skip
    for step in steps:
        code, _, err = _run(capsys, *rec, *step, "--ledger", str(ledger))
        assert code == 0, (step, err)
    code, _, err = _run(capsys, "ledger", "validate", str(ledger))
    assert code == 0, err

    # analyze: the ledger's unit (account) is used without --experiment or a column map.
    code, out, err = _run(capsys, "analyze", str(export), "--ledger", str(ledger),
                          "--format", "json")  # fmt: skip
    assert code in (0, 1), err
    doc = json.loads(out)
    assert "user_id" not in err
    assert "exp-ramp" in json.dumps(doc)

    # report with --since, written to a folder of the user's.
    reports = tmp_path / "reports" / "today"
    code, _, err = _run(capsys, "report", str(export), "--ledger", str(ledger),
                        "--since", _iso(START - timedelta(days=1)), "--out", str(reports))  # fmt: skip
    assert code in (0, 1), err
    assert {"report.html", "report.md", "report.json"} <= {p.name for p in reports.iterdir()}
    headline = json.loads((reports / "report.json").read_text())["headline"]
    assert headline.strip()
    assert "[, ]" not in headline

    # rollback plan: the rollback is recorded, so it plans that one (r2 -> r1), no --to needed.
    code, out, err = _run(capsys, "rollback", "plan", str(export), "--ledger", str(ledger),
                          "--prompt", "assistant", "--format", "json")  # fmt: skip
    assert code in (0, 1), err
    plan = json.loads(out)
    assert (plan["from"], plan["to"]) == (["r2"], "r1") or (plan["from"], plan["to"]) == (
        "r2",
        "r1",
    )
    assert plan["legs"]["cohort"]["findings"]["units"] > 0

    # An eval store of the user's: init, anchor the live revision, gate a candidate.
    store = tmp_path / "evals"
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "prompt: assistant\ngrader: judge-1\non_revert: pin\n"
        "metrics:\n  correct: {kind: binary, direction: higher, margin: 0.05}\n"
    )
    ids = [f"q{i:04d}" for i in range(600)]
    ref = pl.DataFrame({"example_id": ids, "correct": [int(i % 5 != 0) for i in range(600)]})
    ref.write_csv(tmp_path / "r1.csv")
    ref.write_csv(tmp_path / "r3.csv")
    code, _, err = _run(capsys, "baseline", "init", "qa", "--config", str(suite),
                        "--store", str(store), "--ledger", str(ledger))  # fmt: skip
    assert code == 0, err
    code, _, err = _run(capsys, "baseline", "anchor", "qa", "--revision", "r1", "--results",
                        str(tmp_path / "r1.csv"), "--store", str(store))  # fmt: skip
    assert code == 0, err
    code, out, err = _run(capsys, "gate", "qa", "--candidate", str(tmp_path / "r3.csv"),
                          "--revision", "r3", "--ledger", str(ledger), "--store", str(store),
                          "--format", "json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["verdict"].lower() == "pass"
