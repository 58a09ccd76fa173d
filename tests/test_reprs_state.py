"""Notebook reprs of splits and ledgers, the full state tuple, ``promptstate state``/``ledger``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import narwhals as nw
import polars as pl
import pytest
import yaml

from analysis.cli import main
from analysis.cli.ledger import schema_text
from analysis.evals.state import anchored_baselines, revision_state
from analysis.events.labelling import LABELS, SplitResult, split, with_frames
from analysis.ledger import load_ledger
from analysis.ledger import revision_state as ledger_state

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def result(events_path: Path, ledger_path: Path) -> SplitResult:
    return split(events_path, ledger_path)


def _exploding(res: SplitResult) -> SplitResult:
    """The split with a column whose computation fails: any collect raises."""

    def boom(s: pl.Series) -> pl.Series:
        raise RuntimeError("collected")

    def change(frame: Any) -> Any:
        native = frame.to_native().with_columns(
            pl.col("phase").map_batches(boom, return_dtype=pl.Int32)
        )
        return nw.from_native(native)

    return with_frames(res, change)


def test_split_repr_shows_schema_and_phases_without_collecting(result: SplitResult) -> None:
    res = _exploding(result)
    with pytest.raises(Exception, match="collected"):
        res.frame.collect()
    text, page = repr(res), res._repr_html_()
    for name in ("event_id", "phase", "served_revision", "contamination"):
        assert name in text
        assert name in page
    assert "exp-17" in text
    assert "after_end" in text
    assert "call .summary()" in text
    assert "<table>" in page
    assert "LazyFrame" not in text


def test_split_repr_shows_label_counts_once_summarised(
    result: SplitResult, events_path: Path, ledger_path: Path
) -> None:
    res = split(events_path, ledger_path)
    res.summary()
    # independent reference: count the labels of the collected events
    counts = Counter(res.to_polars()["contamination"].to_list())
    text, page = repr(res), res._repr_html_()
    for label in LABELS:
        line = next(row for row in text.splitlines() if row.startswith(label + " "))
        assert int(line.split()[1]) == counts[label]
        assert f"<td>{label}</td><td>{counts[label]}</td>" in page
    assert "call .summary()" not in text
    # the summary is computed once, then reused
    assert res.summary() is res.summary()


def test_split_to_frames_collect_the_labelled_events(result: SplitResult) -> None:
    pdf, plf = result.to_pandas(), result.to_polars()
    assert len(pdf) == plf.height == result.load_report.n_events
    assert list(pdf.columns) == plf.columns == result.frame.collect_schema().names()


def test_ledger_frames_one_row_per_transition(ledger_path: Path) -> None:
    ledger = load_ledger(ledger_path)
    raw = yaml.safe_load(ledger_path.read_text())["transitions"]
    pdf, plf = ledger.to_pandas(), ledger.to_polars()
    assert len(pdf) == plf.height == len(raw) == len(ledger.transitions)
    for row, entry in zip(plf.iter_rows(named=True), raw, strict=True):
        assert row["action"] == entry["action"]
        assert row["at"] == entry["at"]  # YAML reads the aware timestamp itself
        for key in ("revision", "experiment", "to", "arm", "reason"):
            assert row[key] == entry.get(key)
        alloc = entry.get("allocation")
        assert row["allocation"] == (
            None if alloc is None else ",".join(f"{a}={s:g}" for a, s in alloc.items())
        )
    assert str(pdf["at"].dtype) == "datetime64[us, UTC]"
    text, page = repr(ledger), ledger._repr_html_()
    assert f"{len(raw)} transition(s)" in text
    assert text.count("exp-17") >= 3
    assert page.count("<tr>") == len(raw) + 1


@pytest.fixture
def store(tmp_path: Path) -> Path:
    dest = tmp_path / "baselines"
    shutil.copytree(REPO / "baselines", dest)
    return dest


def _reference_by_hand(store: Path, at: datetime | None) -> dict[str, Any]:
    """The reference after the last journal line at or before ``at`` (raw JSON)."""
    ref: dict[str, Any] = {"version": None, "revision": None}
    for line in (store / "support-qa" / "journal.jsonl").read_text().splitlines():
        entry = json.loads(line)
        when = datetime.fromisoformat(entry["at"])
        if at is None or when <= at:
            ref = entry["reference"]
    return ref


@pytest.mark.parametrize("at", [None, datetime(2026, 10, 30, tzinfo=UTC)])
@pytest.mark.parametrize("revision", ["r41", "r42"])
def test_baseline_id_from_store(
    store: Path, ledger_path: Path, revision: str, at: datetime | None
) -> None:
    ledger = load_ledger(ledger_path)
    ref = _reference_by_hand(store, at)
    expected = f"support-qa/{ref['version']}" if ref["revision"] == revision else None
    state = revision_state(ledger, revision, at, store=store)
    assert state.baseline_id == expected
    assert revision_state(ledger, revision, at).baseline_id is None
    # every other field is the ledger's
    assert state == dataclasses.replace(ledger_state(ledger, revision, at), baseline_id=expected)


def test_baseline_id_needs_the_revisions_prompt(store: Path) -> None:
    cfg = store / "support-qa" / "suite.yaml"
    prompt = yaml.safe_load(cfg.read_text())["prompt"]
    ref = json.loads((store / "support-qa" / "reference.json").read_text())
    assert anchored_baselines(store, prompt, ref["revision"]) == (f"support-qa/{ref['version']}",)
    assert anchored_baselines(store, "another-prompt", ref["revision"]) == ()
    assert anchored_baselines(store, prompt, ref["revision"] + "x") == ()


def test_state_command(
    store: Path,
    ledger_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = json.loads((store / "support-qa" / "reference.json").read_text())
    argv = ["state", ref["revision"], "--ledger", str(ledger_path), "--store", str(store)]
    assert main([*argv, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline_id"] == f"support-qa/{ref['version']}"
    assert out["rollout_state"] == "rolled_back"
    assert out["cohort_id"] == "exp-17/treatment"
    assert set(out) >= {"text_sha256", "rollout_state", "baseline_id", "cohort_id"}
    assert main(argv) == 0
    assert "contract_version" in capsys.readouterr().out
    assert main([*argv, "--format", "markdown"]) == 0
    assert "| baseline_id |" in capsys.readouterr().out
    # with a ledger and no store found (none of the four ways), no baseline is looked up
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    (store.parent / "elsewhere").mkdir()
    monkeypatch.chdir(store.parent / "elsewhere")
    assert main(["state", "r42", "--ledger", str(ledger_path), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["baseline_id"] is None
    assert "baseline_id is empty: no baseline store found" in captured.err
    # ... and with ./baselines in the working directory, that store is used and named
    monkeypatch.chdir(store.parent)
    assert main(["state", "r42", "--ledger", str(ledger_path), "--format", "json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert next(iter(out)) == "schema_version"
    assert out["baseline_id"] == f"support-qa/{ref['version']}"
    assert captured.err == f"promptstate: store {store} (from ./baselines)\n"
    # bad input: unknown revision, naive time, missing store
    assert main(["state", "r99", "--ledger", str(ledger_path)]) == 2
    assert "r99" in capsys.readouterr().err
    assert main([*argv, "--at", "2026-11-03T00:00:00"]) == 2
    assert main([*argv, "--store", str(store / "nope")]) == 2
    assert main(["state", "r41", "--at", "2026-10-30T00:00:00Z", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rollout_state"] == "not_deployed"


def test_committed_schema_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.ledger._schema import _LedgerIn

    committed = (REPO / "docs" / "schemas" / "ledger.schema.json").read_text()
    assert committed == schema_text(), "regenerate: promptstate ledger schema > docs/schemas/..."
    assert main(["ledger", "schema"]) == 0
    assert capsys.readouterr().out == committed
    schema = json.loads(committed)
    assert schema["properties"] == _LedgerIn.model_json_schema()["properties"]
    assert set(schema["required"]) == {"version", "prompts"}


def test_schema_accepts_the_sample_and_rejects_a_typo(ledger_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "schemas" / "ledger.schema.json").read_text())
    data = json.loads(json.dumps(yaml.safe_load(ledger_path.read_text()), default=str))
    jsonschema.validate(data, schema)
    data["transitions"][0]["acton"] = data["transitions"][0].pop("action")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_ledger_validate(
    ledger_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "validate", str(ledger_path)]) == 0
    assert "valid" in capsys.readouterr().out
    data = yaml.safe_load(ledger_path.read_text())
    data["transitions"][1]["allocation"] = {"control": 0.5, "treatment": 0.1}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["ledger", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "transitions[1]" in err
    assert main(["ledger", "validate", str(tmp_path / "missing.yaml")]) == 2
    assert main(["ledger"]) == 2
