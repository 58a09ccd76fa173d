"""The inputs of ``split``, ``analyze`` and ``report`` (``analysis.cli._common``): a user's export
is analysed with its own (inferred or given) metrics — never the sample's — metrics are checked
against the export's schema before anything is scanned, EVENTS/--events/--ledger/--out/--format
behave the same on every command, and every argument of every command has help text."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.cli import main
from analysis.cli._main import build_parser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _generators import RampSpec, generate, ledger_file

#: A boolean is inferred as a per-turn rate (a ratio), numbers as per-turn means.
INFERRED = ("Ratio('resolved')", "Ratio('score')", "Ratio('tokens')")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A user's export with its own columns: a boolean, a float, an integer, a text column and
    two id columns (one text, one integer) — none of the sample's metric columns."""
    root = tmp_path_factory.mktemp("user-export")
    frame = generate(RampSpec(n_units=300, seed=3))
    rng = np.random.default_rng(7)
    n = frame.height
    frame = frame.rename({"helpfulness": "score"}).with_columns(
        pl.Series("resolved", rng.random(n) < 0.3),
        pl.Series("tokens", rng.integers(50, 400, n)),
        pl.Series("session_id", [f"s{i // 3}" for i in range(n)]),
        pl.Series("account_id", rng.integers(0, 10_000, n)),
        pl.Series("country", rng.choice(["de", "fr", "us"], n)),
    )
    path = root / "events.parquet"
    frame.write_parquet(path)
    return path, ledger_file(root)


def _corrupt(path: Path, out: Path) -> Path:
    """A copy of a Parquet file with its data pages overwritten: the footer (schema) is intact,
    any scan fails."""
    raw = bytearray(path.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little") + 8
    end = len(raw) - footer
    raw[4:end] = b"\xff" * (end - 4)
    out.write_bytes(bytes(raw))
    pl.read_parquet_schema(out)  # the schema reads
    with pytest.raises(Exception):  # any engine error: the data pages are garbage
        pl.read_parquet(out)
    return out


# ------------------------------------------------------------------- metrics of a user's export


def test_analyze_a_user_export_infers_metrics_and_says_so(
    export: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger = export
    argv = ["analyze", str(events), "--ledger", str(ledger), "--format", "json", "--no-explain"]
    code, out, err = _run(argv, capsys)
    assert code in (0, 1), err
    notes = [line for line in err.splitlines() if line.startswith("promptstate: note: ")]
    assert len(notes) == 1, err
    note = notes[0]
    for name in INFERRED:
        assert name in note
    assert "session_id, account_id (id column)" in note
    assert "country (String, not numeric or boolean)" in note
    assert "--metrics FILE" in note
    for sample_metric in ("cost_usd", "thumbs_up", "helpfulness", "latency_ms"):
        assert sample_metric not in err  # never the sample's metrics
    data = json.loads(out)
    assert next(iter(data)) == "schema_version"
    assert data["schema_version"] == 1
    assert {r["metric"] for r in data["effects"]} == {"resolved", "score", "tokens"}


def test_events_alias_gives_the_same_result(
    export: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger = export
    tail = ["--ledger", str(ledger), "--format", "json", "--no-explain"]
    code1, out1, _ = _run(["analyze", str(events), *tail], capsys)
    code2, out2, err2 = _run(["analyze", "--events", str(events), *tail], capsys)
    assert code1 == code2
    rows1, rows2 = json.loads(out1)["effects"], json.loads(out2)["effects"]
    assert len(rows1) == len(rows2), err2
    for r1, r2 in zip(rows1, rows2, strict=True):  # equal up to float summation order
        assert r1.keys() == r2.keys()
        for key, v1 in r1.items():
            if isinstance(v1, float):
                assert v1 == pytest.approx(r2[key], rel=1e-9, abs=1e-12, nan_ok=True), key
            else:
                assert v1 == r2[key], key
    code3, _, _ = _run(["analyze", str(events), "--events", str(events), *tail], capsys)
    assert code3 == code1  # the same export twice is fine
    code4, _, err4 = _run(["analyze", str(events), "--events", "other.parquet", *tail], capsys)
    assert code4 == 2
    assert "give the event export once" in err4


def test_a_metrics_file_naming_a_missing_column_fails_before_any_scan(
    export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger = export
    broken = _corrupt(events, tmp_path / "broken.parquet")
    metrics = tmp_path / "metrics.yaml"
    metrics.write_text(
        "metrics:\n"
        "  - {type: ratio, numerator: score}\n"
        "  - {type: mean, column: cost_usd, direction: lower}\n"
    )
    for command in ("analyze", "report"):
        argv = [command, str(broken), "--ledger", str(ledger), "--metrics", str(metrics)]
        argv += ["--out", str(tmp_path / command)]
        code, _, err = _run(argv, capsys)
        assert code == 2, err
        (line,) = err.strip().splitlines()
        assert line.startswith(f"promptstate: error: {metrics}: metric 'cost_usd' reads column")
        assert "--metrics FILE" in line
        assert not (tmp_path / command).exists()
    # the same file with a valid metrics file does reach the scan, and fails there
    good = tmp_path / "good.yaml"
    good.write_text("metrics:\n  - {type: ratio, numerator: score}\n")
    code, _, err = _run(["analyze", str(broken), "--ledger", str(ledger), "--metrics", str(good)], capsys)  # fmt: skip
    assert code in (2, 4)
    assert "cost_usd" not in err


def test_an_export_without_metric_columns_fails_before_any_scan_naming_metrics(
    export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger = export
    path = tmp_path / "ids-only.parquet"
    pl.read_parquet(events).select(
        "event_id", "ts", "user_id", "experiment_id", "arm", "session_id", "account_id"
    ).write_parquet(path)
    broken = _corrupt(path, tmp_path / "broken.parquet")
    code, _, err = _run(["analyze", str(broken), "--ledger", str(ledger)], capsys)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "no column can be a metric" in line
    assert "--metrics FILE" in line
    assert "session_id (id column)" in line


def test_a_metric_over_a_mapped_unit_is_refused(
    export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--column user_id=account`` the account column is the unit: never inferred, and a
    metrics file reading it is refused before the scan."""
    events, ledger = export
    path = tmp_path / "mapped.parquet"
    pl.read_parquet(events).with_columns(
        pl.col("user_id").rank("dense").cast(pl.Int64).alias("account")
    ).drop("user_id").write_parquet(path)
    argv = ["analyze", str(path), "--ledger", str(ledger), "--column", "user_id=account"]
    code, _, err = _run([*argv, "--format", "json", "--no-explain"], capsys)
    assert code in (0, 1), err
    assert "account" not in err.split("left out:")[0]
    metrics = tmp_path / "m.yaml"
    metrics.write_text("metrics:\n  - {type: mean, column: user_id}\n")
    code, _, err = _run([*argv, "--metrics", str(metrics)], capsys)
    assert code == 2
    assert "an id or a column of the split" in err


# ------------------------------------------------------------------- --column: pairs or lists


def test_column_takes_a_comma_separated_list_as_its_hint_shows(
    export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--column user_id=account,ts=time`` (one flag) maps the same as one pair per flag, on
    split and on rollback plan; a malformed item or one name mapped twice is exit 2."""
    events, ledger = export
    path = tmp_path / "renamed.parquet"
    pl.read_parquet(events).rename({"user_id": "account", "ts": "time"}).write_parquet(path)
    base = ["split", str(path), "--ledger", str(ledger), "--format", "json"]
    code, listed, err = _run([*base, "--column", "user_id=account,ts=time"], capsys)
    assert code == 0, err
    code, pairs, err = _run([*base, "--column", "user_id=account", "--column", "ts=time"], capsys)
    assert code == 0, err
    assert json.loads(listed) == json.loads(pairs)
    assert json.loads(listed)["load"]["renamed"] == {"user_id": "account", "ts": "time"}
    # spaces around the items are allowed, as in a YAML map
    code, spaced, err = _run([*base, "--column", "user_id = account, ts = time"], capsys)
    assert code == 0, err
    assert json.loads(spaced) == json.loads(listed)
    plan = ["rollback", "plan", str(path), "--ledger", str(ledger), "--no-recovery"]
    code, _, err = _run([*plan, "--column", "user_id=account,ts=time", "--format", "json"], capsys)
    assert code == 0, err
    for bad, words in (
        ("user_id=account,ts", "expected CANONICAL=YOURS pairs"),
        ("user_id=account,,ts=time", "expected CANONICAL=YOURS pairs"),
        ("ts=time,ts=when", "'ts' is mapped twice"),
    ):
        code, out, err = _run([*base, "--column", bad], capsys)
        assert code == 2, bad
        assert words in err
        assert "--column user_id=account,ts=time" in err or "mapped twice" in err
        assert out == ""


def test_column_help_shows_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["split", "--help"], ["rollback", "plan", "--help"]):
        assert main(argv) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "repeat the flag or give a comma-" in text
        assert "(user_id=account,ts=time)" in text


# ---------------------------------------------------------------- EVENTS and --ledger together


@pytest.mark.parametrize("command", ["split", "analyze", "report"])
def test_events_without_ledger_and_ledger_without_events_are_bad_input(
    command: str, export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger = export
    out = tmp_path / "out"
    code, stdout, err = _run([command, str(events), "--out", str(out)], capsys)
    assert code == 2
    assert "--ledger FILE" in err
    code, stdout, err = _run([command, "--ledger", str(ledger), "--out", str(out)], capsys)
    assert code == 2
    assert "pass the event export too" in err
    assert "EVENTS" in err
    assert stdout == ""
    assert not out.exists()


def test_split_json_is_versioned_and_out_writes_the_labelled_events(
    export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger = export
    out = tmp_path / "labelled.parquet"
    argv = ["split", "--events", str(events), "--ledger", str(ledger), "--out", str(out)]
    code, stdout, err = _run([*argv, "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(stdout)
    assert list(data) == ["schema_version", "experiment", "phases", "load", "summary"]
    labelled = pl.read_parquet(out)
    assert labelled.height == pl.read_parquet(events).height
    assert {"phase", "served_revision", "contamination"} <= set(labelled.columns)


def test_analyze_out_writes_what_would_be_printed(
    export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger = export
    out = tmp_path / "effects.md"
    argv = ["analyze", str(events), "--ledger", str(ledger), "--no-explain"]
    code, stdout, err = _run([*argv, "--format", "markdown", "--out", str(out)], capsys)
    assert code in (0, 1), err
    assert stdout == ""
    text = out.read_text()
    assert "score" in text
    assert "|" in text  # a Markdown table
    code, _, err = _run([*argv, "--out", str(events)], capsys)
    assert code == 2
    assert "would overwrite" in err


def test_report_on_a_user_export_prints_a_summary_in_each_format(
    export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger = export
    store = tmp_path / "store"
    store.mkdir()
    out = tmp_path / "report"
    argv = ["report", str(events), "--ledger", str(ledger), "--store", str(store)]
    code, stdout, err = _run([*argv, "--out", str(out), "--format", "json"], capsys)
    assert code in (0, 1), err
    assert sum(line.startswith("promptstate: note: inferred metrics") for line in err.splitlines()) == 1  # fmt: skip
    data = json.loads(stdout)
    assert list(data) == [
        "schema_version", "experiments", "headline", "ok", "exit_code", "attention", "notes",
        "files",
    ]  # fmt: skip
    assert data["schema_version"] == 1
    assert data["exit_code"] == code
    assert data["ok"] == (code == 0)
    assert [Path(f).name for f in data["files"]] == ["report.html", "report.md", "report.json"]
    report = json.loads((out / "report.json").read_text())
    # the report's metrics are the export's, never the sample's (cost_usd, thumbs_up, ...)
    assert sorted(report["metrics"]) == ["resolved", "score", "tokens"]
    assert {e["metric"] for e in report["effects"]} == {"resolved", "score", "tokens"}
    assert [a["kind"] for a in data["attention"]] == [a["kind"] for a in report["attention"]]


# ------------------------------------------------------------------------------ help text


def _parsers(parser: argparse.ArgumentParser, prog: str = "promptstate"):  # type: ignore[no-untyped-def]
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prog} {name}")


def test_every_argument_of_every_command_has_help_text() -> None:
    missing = []
    commands = list(_parsers(build_parser()))
    assert len(commands) > 8
    for prog, parser in commands:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = action.help
            if text is None or not str(text).strip():
                missing.append(f"{prog}: {action.option_strings or action.dest}")
    assert not missing, "arguments without help text:\n" + "\n".join(missing)


@pytest.mark.parametrize("command", ["split", "analyze", "report"])
def test_the_shared_inputs_are_the_same_on_split_analyze_report(command: str) -> None:
    parser = dict(_parsers(build_parser()))[f"promptstate {command}"]
    options = {s for a in parser._actions for s in a.option_strings}
    assert {"--events", "--ledger", "--experiment", "--column", "--columns", "--format"} <= options
    assert {"--out", "--progress"} <= options
    assert ("--metrics" in options) == (command != "split")
    (positional,) = [a for a in parser._actions if not a.option_strings]
    assert positional.metavar == "EVENTS"


@pytest.mark.parametrize(
    "argv",
    [["split", "--help"], ["analyze", "--help"], ["report", "--help"], ["--help"]],
)
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert "EVENTS" in capsys.readouterr().out or argv == ["--help"]


def test_folder_and_csv_exports(
    export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hive folder's partition key is no metric; a CSV export's metrics file is checked
    against its header before the scan too."""
    events, ledger = export
    frame = pl.read_parquet(events)
    root = tmp_path / "export"
    for day, part in enumerate(frame.partition_by("arm", include_key=True), start=1):
        (root / f"day={day}").mkdir(parents=True)
        part.write_parquet(root / f"day={day}" / "part.parquet")
    argv = ["analyze", str(root), "--ledger", str(ledger), "--format", "json", "--no-explain"]
    code, out, err = _run(argv, capsys)
    assert code in (0, 1), err
    assert "day (partition column)" in err
    assert {r["metric"] for r in json.loads(out)["effects"]} == {"resolved", "score", "tokens"}
    csv = tmp_path / "events.csv"
    frame.write_csv(csv)
    metrics = tmp_path / "m.yaml"
    metrics.write_text("metrics:\n  - {type: proportion, column: thumbs_up}\n")
    code, _, err = _run(["analyze", str(csv), "--ledger", str(ledger), "--metrics", str(metrics)], capsys)  # fmt: skip
    assert code == 2
    assert f"{metrics}: metric 'thumbs_up' reads column(s) thumbs_up" in err
