"""The contamination split on the sample (against the generator's ground truth), across engines,
and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _truth import expected_labels

from analysis import LABELS, EventsError, clean, contamination_summary, split
from analysis.cli import main


def labels_of(result: Any) -> pl.DataFrame:
    native = result.frame.collect().to_polars()
    return native.select("event_id", "phase", "contamination", "served_revision").sort("event_id")


@pytest.fixture(scope="module")
def truth(events_path: Path, ledger: Any, truth: pl.DataFrame) -> pl.DataFrame:
    """The ground truth of this module: the generator's, with ``prior_conversation``."""
    return expected_labels(events_path, ledger, truth)


def test_every_sample_label_equals_ground_truth(
    events_path: Path, ledger: Any, truth: pl.DataFrame
) -> None:
    got = labels_of(split(events_path, ledger))
    assert truth.filter(pl.col("label") == "prior_conversation").height > 0
    joined = truth.join(got, on="event_id", how="full", coalesce=True)
    assert joined.height == truth.height == got.height
    wrong = joined.filter(
        (pl.col("label") != pl.col("contamination"))
        | (pl.col("phase") != pl.col("phase_right"))
        | (pl.col("served_revision") != pl.col("served_revision_right"))
    )
    assert wrong.height == 0, wrong.head(10)
    # the sample exercises every label
    assert set(got["contamination"].unique()) == set(LABELS)


def test_summary_matches_truth_counts(
    events_path: Path, ledger: Any, truth_info: dict[str, Any], truth: pl.DataFrame
) -> None:
    summary = contamination_summary(split(events_path, ledger))
    counts = dict(truth_info["label_counts"])
    prior = truth.filter(pl.col("label") == "prior_conversation").height
    counts["clean"] -= prior
    counts["prior_conversation"] = prior
    assert {t.label: t.n_events for t in summary.totals if t.n_events} == counts
    assert sum(r.n_events for r in summary.rows) == truth_info["n_events"]
    assert summary.n_events == truth_info["n_events"]
    # shares within phase x arm add up to one
    groups: dict[tuple[int, str | None], float] = {}
    for r in summary.rows:
        groups[(r.phase, r.arm)] = groups.get((r.phase, r.arm), 0.0) + r.share
    assert all(abs(v - 1) < 1e-12 for v in groups.values())
    assert summary.total("crossover").n_units == truth_info["crossover_units"]
    assert summary.to_pandas().shape[0] == len(summary.rows)
    assert "after_end" in str(summary)
    assert summary.to_markdown().startswith("### Contamination")
    assert "<table>" in summary._repr_html_()
    assert summary.to_dict()["notes"][0].startswith("30 duplicate event_id row(s) dropped")


def test_clean_keeps_only_clean_events(events_path: Path, ledger: Any, truth: pl.DataFrame) -> None:
    result = split(events_path, ledger)
    ids = clean(result).select("event_id").collect().to_polars()["event_id"]
    expected = truth.filter(pl.col("label") == "clean")["event_id"]
    assert sorted(ids.to_list()) == sorted(expected.to_list())


@pytest.mark.parametrize("kind", ["polars", "polars-lazy", "pandas", "pyarrow", "duckdb"])
def test_same_labels_for_every_engine(
    kind: str, sample_events: pl.DataFrame, ledger: Any, truth: pl.DataFrame
) -> None:
    import duckdb

    source: Any = {
        "polars": lambda: sample_events,
        "polars-lazy": sample_events.lazy,
        "pandas": sample_events.to_pandas,
        "pyarrow": sample_events.to_arrow,
        "duckdb": lambda: duckdb.connect().from_arrow(sample_events.to_arrow()),
    }[kind]()
    result = split(source, ledger)
    got = labels_of(result)
    expected = truth.sort("event_id")
    assert got["event_id"].to_list() == expected["event_id"].to_list()
    assert got["contamination"].to_list() == expected["label"].to_list()
    assert got["phase"].to_list() == expected["phase"].to_list()
    native = result.to_native()
    module = {
        "polars": "polars",
        "polars-lazy": "polars",
        "pandas": "pandas",
        "pyarrow": "pyarrow",
        "duckdb": "duckdb",
    }[kind]
    assert type(native).__module__.split(".")[0] == module
    if kind == "polars-lazy":
        assert isinstance(native, pl.LazyFrame)


def test_inferred_served_revision_when_not_logged(
    sample_events: pl.DataFrame, ledger: Any, truth: pl.DataFrame
) -> None:
    result = split(sample_events.drop("revision_id"), ledger)
    assert result.checks["served_mismatch"] is False
    assert any("served_mismatch not checked" in n for n in result.notes())
    got = labels_of(result)
    assert "served_mismatch" not in got["contamination"].to_list()
    # where the truth is served by the arm's revision, inference agrees
    joined = truth.join(got, on="event_id")
    ok = joined.filter(pl.col("label").is_in(["clean", "crossover", "after_end"]))
    assert (ok["label"] == ok["contamination"]).all()


def test_without_conversations_carryover_is_not_checked(
    sample_events: pl.DataFrame, ledger: Any
) -> None:
    result = split(sample_events.drop("conversation_id"), ledger)
    assert "carryover not checked: the export has no conversation_id" in result.notes()
    assert "carryover" not in labels_of(result)["contamination"].to_list()


def test_split_with_column_map(
    sample_events: pl.DataFrame, ledger: Any, truth: pl.DataFrame
) -> None:
    renamed = sample_events.rename({"user_id": "account", "ts": "event_time"})
    result = split(renamed, ledger, columns={"user_id": "account", "ts": "event_time"})
    got = labels_of(result)
    assert got["contamination"].to_list() == truth.sort("event_id")["label"].to_list()


def test_experiment_without_tagged_events(sample_events: pl.DataFrame, ledger: Any) -> None:
    untagged = sample_events.filter(pl.col("experiment_id") != "exp-17")
    with pytest.raises(
        EventsError,
        match=r"no event is tagged with experiment 'exp-17'; the export holds: exp-09 \(40 events\)",
    ):
        split(untagged, ledger, "exp-17")


# ---------------------------------------------------------------------------------------- CLI


def test_cli_split_on_sample_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["split", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["experiment"] == "exp-17"
    assert payload["load"]["n_duplicates"] == 30
    assert [p["kind"] for p in payload["phases"]] == ["pre", "exposure", "exposure", "after_end"]
    assert {t["label"] for t in payload["summary"]["totals"]} == set(LABELS)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".ndjson"])
def test_cli_split_writes_labelled_events(
    tmp_path: Path,
    events_path: Path,
    ledger_path: Path,
    truth: pl.DataFrame,
    suffix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / f"labelled{suffix}"
    code = main(
        [
            "split",
            str(events_path),
            "--ledger",
            str(ledger_path),
            "--out",
            str(out),
            "--format",
            "markdown",
        ]
    )
    assert code == 0
    assert "| after_end |" in capsys.readouterr().out
    reader = {
        ".parquet": pl.read_parquet,
        ".csv": pl.read_csv,
        ".ndjson": lambda p: pl.read_ndjson(p, infer_schema_length=None),
    }[suffix]
    written = reader(out).select("event_id", "contamination").sort("event_id")
    assert written["contamination"].to_list() == truth.sort("event_id")["label"].to_list()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left behind


def test_cli_bad_input_exit_2_and_writes_nothing(
    tmp_path: Path,
    sample_events: pl.DataFrame,
    ledger_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.parquet"
    sample_events.drop("user_id").write_parquet(bad)
    out = tmp_path / "out.parquet"
    assert main(["split", str(bad), "--ledger", str(ledger_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("promptstate: error: ")
    assert err.count("\n") == 1
    assert "required column(s) user_id missing" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet"]


def test_cli_bad_ledger_exit_2(
    tmp_path: Path, events_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger.yaml"
    ledger.write_text("version: 1\nprompts: {}\n")
    assert main(["split", str(events_path), "--ledger", str(ledger)]) == 2
    assert "prompts" in capsys.readouterr().err


def test_cli_column_option(
    tmp_path: Path,
    sample_events: pl.DataFrame,
    ledger_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "renamed.parquet"
    sample_events.rename({"user_id": "account"}).write_parquet(path)
    assert (
        main(
            [
                "split",
                str(path),
                "--ledger",
                str(ledger_path),
                "--column",
                "user_id=account",
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["load"]["renamed"] == {"user_id": "account"}
    assert main(["split", str(path), "--ledger", str(ledger_path), "--column", "nonsense"]) == 2


def test_experiment_that_never_started_is_bad_input(
    sample_events: pl.DataFrame, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Events tagged with an experiment the ledger defines but never starts: exit 2, one line
    naming the experiment and the fix (it was an internal assertion before)."""
    from analysis.ledger import parse_ledger

    raw = {
        "version": 1,
        "prompts": {"support-assistant": {"revisions": {"r41": {}, "r42": {}}}},
        "experiments": {
            "exp-17": {"prompt": "support-assistant", "arms": {"control": "r41", "treatment": "r42"}}
        },
        "transitions": [
            {"at": "2026-11-01T00:00:00Z", "action": "deploy", "prompt": "support-assistant",
             "revision": "r41"},
        ],
    }  # fmt: skip
    with pytest.raises(EventsError, match=r"tagged with experiment 'exp-17', which never started"):
        split(sample_events, parse_ledger(raw), "exp-17")
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(raw))
    events = tmp_path / "events.parquet"
    sample_events.head(100).write_parquet(events)
    assert main(["split", str(events), "--ledger", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "record its start in the ledger" in err
