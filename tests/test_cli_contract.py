"""The exit-code contract of ``promptstate`` (docs/cli.md), checked through ``main(argv)``.

0 ok · 1 a check found a problem · 2 bad input (one line, nothing changed) · 3 stale or invalid
baseline (gate, baseline verify, baseline sync only) · 4 internal error (one line; the traceback
with ``--debug``); where several apply, 4 > 2 > 3 > 1.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis._paths import check_outputs, safe_join, safe_name
from analysis.cli import main
from analysis.cli._main import STALE_BASELINE_COMMANDS, run_command
from analysis.errors import (
    EventsError,
    InvalidBaselineError,
    PromptstateError,
    RollbackError,
    StaleBaselineError,
    worst_exit,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"
EVENTS = SAMPLES / "events.parquet"
LEDGER = SAMPLES / "ledger.yaml"


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------ the precedence


def test_worst_exit_is_the_precedence_4_2_3_1_0() -> None:
    rank = {4: 0, 2: 1, 3: 2, 1: 3, 0: 4}  # written out independently of analysis.errors
    for size in range(6):
        for codes in itertools.product(range(5), repeat=size):
            expected = min(codes, key=rank.__getitem__) if codes else 0
            assert worst_exit(*codes) == expected, codes
    with pytest.raises(ValueError, match="unknown exit code"):
        worst_exit(0, 7)


# ------------------------------------------------------------------ main: how it exits


def _fake(command: str, outcome: Any, sub: str | None = None) -> argparse.Namespace:
    def func(_: argparse.Namespace) -> int:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    ns = argparse.Namespace(command=command, func=func)
    if sub is not None:
        setattr(ns, f"{command}_command", sub)
    return ns


@pytest.mark.parametrize(
    ("command", "sub", "outcome", "code"),
    [
        ("split", None, 0, 0),
        ("analyze", None, 1, 1),
        ("split", None, EventsError("events.csv: line 3 has 2 field(s)"), 2),
        ("report", None, StaleBaselineError("stale"), 2),  # 3 only from the baseline checks
        ("rollback", "plan", InvalidBaselineError("journal.jsonl: tampered"), 2),
        ("gate", None, StaleBaselineError("stale"), 3),
        ("baseline", "verify", InvalidBaselineError("tampered"), 3),
        ("baseline", "sync", 3, 3),
        ("baseline", "pin", StaleBaselineError("stale"), 2),
        ("report", None, 3, 2),
        ("split", None, KeyboardInterrupt(), 130),
        ("split", None, BrokenPipeError(errno.EPIPE, "Broken pipe"), 141),
    ],
)
def test_outcomes_map_onto_the_contract(
    command: str, sub: str | None, outcome: Any, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command(_fake(command, outcome, sub)) == code
    err = capsys.readouterr().err
    if isinstance(outcome, PromptstateError):
        assert _one_error_line(err) == f"promptstate: error: {outcome}"


def test_the_commands_allowed_to_exit_3() -> None:
    assert {"gate", "baseline verify", "baseline sync"} == STALE_BASELINE_COMMANDS


@pytest.mark.parametrize(
    "outcome",
    [ZeroDivisionError("division by zero"), KeyError("phase"), RuntimeError("a\nb"), 4, 7, None],
)
def test_a_crash_is_exit_4_with_one_line(outcome: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(_fake("analyze", outcome)) == 4
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("promptstate: internal error: ")
    assert line.endswith("(run with --debug for the traceback; please report it)")
    if isinstance(outcome, BaseException):
        assert f": {type(outcome).__name__}: " in line


def test_debug_prints_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(_fake("analyze", ZeroDivisionError("boom")), debug=True) == 4
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == (
        "promptstate: internal error: ZeroDivisionError: boom (please report it)"
    )


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_debug_flag_anywhere(
    where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import analysis.cli.split as split_cmd

    def boom(_: argparse.Namespace) -> int:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(split_cmd, "run", boom)
    argv = {"before": ["--debug", "split"], "after": ["split", "--debug"], "env": ["split"]}[where]
    if where == "env":
        monkeypatch.setenv("PROMPTSTATE_DEBUG", "1")
    assert main(argv) == 4
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.delenv("PROMPTSTATE_DEBUG", raising=False)
    assert main(["split"]) == 4
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("err_no", "code"),
    [(errno.ENOENT, 2), (errno.EACCES, 2), (errno.EISDIR, 2), (errno.ENOSPC, 2), (errno.EIO, 4)],
)
def test_os_errors_on_user_paths_are_bad_input(
    err_no: int, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    exc = OSError(err_no, "message", "/some/where.parquet")
    assert run_command(_fake("split", exc)) == code
    line = _one_error_line(capsys.readouterr().err)
    if code == 2:
        assert line.startswith("promptstate: error: /some/where.parquet: ")
    # an OSError without a path is not a user path: an internal error
    assert run_command(_fake("split", OSError(err_no, "message"))) == 4


def test_usage_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["nope"], ["split", "--nope"], ["rollback", "plan", "--open-hours", "x"]):
        assert main(argv) == 2
        assert ": error: " in _one_error_line(capsys.readouterr().err)
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert main(["--version"]) == 0


# ------------------------------------------------------------------ numeric options


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-1", "1e400", "x", ""])
@pytest.mark.parametrize(
    "argv",
    [
        ["rollback", "plan", "--open-hours"],
        ["rollback", "plan", "--holdout-days"],
        ["rollback", "plan", "--idle-minutes"],
        ["rollback", "apply", "--dry-run", "--open-hours"],
        ["report", "--alpha"],
        ["report", "--crossover-threshold"],
    ],
)
def test_numeric_options_refuse_nan_and_out_of_range(
    argv: list[str], value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*argv, value]) == 2
    assert list(tmp_path.iterdir()) == []  # nothing written (no report directory)


@pytest.mark.parametrize(
    ("option", "bad", "good"),
    [
        ("--alpha", ["0", "1", "1.5"], ["0.01", "0.5"]),
        ("--crossover-threshold", ["1.01", "-0.1"], ["0", "1"]),
    ],
)
def test_report_option_ranges(option: str, bad: list[str], good: list[str]) -> None:
    from analysis.cli._main import build_parser

    parser = build_parser()
    for value in good:
        assert parser.parse_args(["report", option, value]) is not None
    for value in bad:
        assert main(["report", option, value]) == 2


def test_rollback_option_ranges_agree_with_the_api() -> None:
    from analysis.cli.rollback import OPTION_RANGES as CLI
    from analysis.rollback.planning import OPTION_RANGES as API

    assert CLI == API


@pytest.mark.parametrize(
    "options",
    [
        {"open_hours": float("nan")},
        {"open_hours": -1.0},
        {"holdout_days": float("inf")},
        {"idle_minutes": 0.0},
        {"idle_minutes": float("nan")},
    ],
)
def test_rollback_plan_api_refuses_bad_options(options: dict[str, Any]) -> None:
    from analysis.rollback.planning import rollback_plan

    name = next(iter(options))
    with pytest.raises(RollbackError, match=name):
        rollback_plan(SAMPLES / "rollback" / "ledger.yaml", at=datetime(2026, 11, 3, tzinfo=UTC),
                      **options)  # fmt: skip


# ------------------------------------------------------------------------- safe paths


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=40))
def test_safe_join_stays_under_its_root(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.getbasetemp() / "root"
    path = safe_join(root, name)
    assert path.parent == root
    assert path.resolve().is_relative_to(root.resolve())
    assert path.name not in ("", ".", "..")
    assert not path.name.startswith(".")
    assert "/" not in path.name
    assert "\x00" not in path.name


@given(a=st.text(max_size=12), b=st.text(max_size=12))
def test_safe_names_of_different_names_differ(a: str, b: str) -> None:
    if a != b:
        assert safe_name(a) != safe_name(b)
    assert safe_name("support-assistant") == "support-assistant"


def test_safe_join_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(PromptstateError, match="resolves outside"):
        safe_join(root, "escape")


def test_default_export_directory_stays_next_to_the_ledger(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from analysis.rollback.applying import _default_out

    ledger = tmp_path / "ledgers" / "ledger.yaml"
    at = datetime(2026, 11, 3, 8, 15, tzinfo=UTC)
    for prompt in ("/../../../../tmp/x", "../x", "..", "a/b", "support-assistant"):
        out = _default_out(ledger, SimpleNamespace(prompt=prompt, at=at))  # type: ignore[arg-type]
        assert out.parent == ledger.parent, prompt
        assert out.name.startswith("rollback-")
        assert "/" not in out.name


# ------------------------------------------------------------- outputs never overwrite inputs


def test_check_outputs(tmp_path: Path) -> None:
    data = tmp_path / "export"
    data.mkdir()
    (data / "a.parquet").write_bytes(b"x")
    single = tmp_path / "events.csv"
    single.write_text("x")
    cases: list[tuple[Path, list[object]]] = [
        (single, [single]),
        (tmp_path / "." / "events.csv", [str(single)]),
        (data / "new.parquet", [data]),
        (data / "sub" / "x.csv", [data]),
        (data / "b.parquet", [str(data / "*.parquet")]),
    ]
    for out, inputs in cases:
        with pytest.raises(PromptstateError, match="would overwrite what this command reads"):
            check_outputs([out], inputs)
    check_outputs([tmp_path / "labelled.parquet"], [single, data, None, object()])


def test_split_out_equal_to_the_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.parquet"
    shutil.copy(EVENTS, events)
    before = events.read_bytes()
    assert main(["split", str(events), "--ledger", str(LEDGER), "--out", str(events)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"--out {events}" in line
    assert events.read_bytes() == before
    ledger = tmp_path / "ledger.yaml"
    shutil.copy(LEDGER, ledger)
    assert main(["split", str(events), "--ledger", str(ledger), "--out", str(ledger)]) == 2
    assert ledger.read_bytes() == LEDGER.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet", "ledger.yaml"]


def test_report_out_into_the_input_directory_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(EVENTS, export / "part-0.parquet")
    code = main(["report", str(export), "--ledger", str(LEDGER), "--out", str(export)])
    assert code == 2
    assert [p.name for p in export.iterdir()] == ["part-0.parquet"]


def test_split_unwritable_out_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "labelled.parquet"  # a path under a regular file
    assert main(["split", str(EVENTS), "--ledger", str(LEDGER), "--out", str(out)]) == 2
    assert f"--out {out}" in _one_error_line(capsys.readouterr().err)


def test_split_nested_column_to_csv_is_bad_input(tmp_path: Path) -> None:
    import polars as pl

    events = tmp_path / "events.parquet"
    pl.read_parquet(EVENTS).head(300).with_columns(tags=pl.concat_list("arm")).write_parquet(events)
    out = tmp_path / "labelled.csv"
    assert main(["split", str(events), "--ledger", str(LEDGER), "--out", str(out)]) == 2
    assert not out.exists()
    parquet = str(out.with_suffix(".parquet"))
    assert main(["split", str(events), "--ledger", str(LEDGER), "--out", parquet]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["split", "--out", str(SAMPLES / "labelled.parquet")],
        ["report", "--out", str(SAMPLES / "report")],
    ],
)
def test_the_shipped_sample_is_never_written_into(argv: list[str]) -> None:
    before = sorted(p.name for p in SAMPLES.iterdir())
    assert main(argv) == 2
    assert sorted(p.name for p in SAMPLES.iterdir()) == before
