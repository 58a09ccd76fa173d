"""Alerts that do not page every hour (issue 22 item 3): ``--state`` of analyze and report."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _generators import RampSpec, generate, ledger_file

from analysis.cli import main
from analysis.decisions import AlertItem, update_state
from analysis.decisions.alert_state import STATE_SCHEMA_VERSION, read_state
from analysis.errors import PromptstateError

BREACH = "  - {type: ratio, numerator: helpfulness, direction: higher, guardrail: {margin: 0.05}}\n"
QUIET = "  - {type: ratio, numerator: helpfulness}\n"  # no direction: nothing to alert on


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("state")
    generate(RampSpec(n_units=1200, seed=11)).write_parquet(d / "events.parquet")
    ledger_file(d)
    (d / "breach.yaml").write_text("metrics:\n" + BREACH)
    (d / "quiet.yaml").write_text("metrics:\n" + QUIET)
    return {"dir": d, "events": d / "events.parquet", "ledger": d / "ledger.yaml"}


def _analyze(data: dict[str, Path], metrics: str, state: Path, *extra: str) -> list[str]:
    return [
        "analyze", str(data["events"]), "--ledger", str(data["ledger"]), "--metrics",
        str(data["dir"] / metrics), "--no-explain", "--no-completeness", "--state", str(state),
        *extra,
    ]  # fmt: skip


def test_raised_then_known_then_cleared_once(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "alerts" / "state.json"
    t1, t2, t3, t4 = (f"2026-01-09T0{h}:00:00Z" for h in (1, 2, 3, 4))

    # 1. raised: exit 1, alerts on stderr, the state written
    assert main(_analyze(data, "breach.yaml", state, "--now", t1)) == 1
    err = capsys.readouterr().err
    assert "promptstate: alert: regression: helpfulness" in err
    assert "promptstate: alert: guardrail breach: helpfulness" in err
    saved = json.loads(state.read_text())
    assert saved["schema_version"] == STATE_SCHEMA_VERSION
    keys = set(saved["alerts"])
    assert "regression|exp-ramp|helpfulness|treatment" in keys
    assert "guardrail_breach|exp-ramp|helpfulness|treatment|combined" in keys

    # 2. the same alerts: exit 0, reported as known (JSON says so too)
    assert main(_analyze(data, "breach.yaml", state, "--now", t2, "--format", "json")) == 0
    out, err = capsys.readouterr()
    assert "promptstate: alert (known since 2026-01-09T01:00:00Z): regression" in err
    assert "promptstate: alert: " not in err
    payload = json.loads(out)
    assert payload["exit_code"] == 0
    assert payload["alert_state"]["new"] == []
    assert {k["key"] for k in payload["alert_state"]["known"]} == keys
    # --repeat-alerts: known alerts exit 1 again
    assert main(_analyze(data, "breach.yaml", state, "--now", t2, "--repeat-alerts")) == 1
    capsys.readouterr()

    # 3. the alerts are gone: reported once as cleared, exit 0
    assert main(_analyze(data, "quiet.yaml", state, "--now", t3)) == 0
    err = capsys.readouterr().err
    assert err.count("promptstate: cleared: ") == len(keys)
    assert "regression helpfulness|treatment of exp-ramp cleared since 2026-01-09T03:00:00Z" in err
    assert json.loads(state.read_text())["alerts"] == {}

    # 4. and not again
    assert main(_analyze(data, "quiet.yaml", state, "--now", t4)) == 0
    assert "cleared" not in capsys.readouterr().err


def test_report_state(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    argv = ["report", str(data["events"]), "--ledger", str(data["ledger"]), "--metrics",
            str(data["dir"] / "breach.yaml"), "--state", str(state)]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "r1")]) == 1
    assert "promptstate: alert: guardrail breach" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "r2")]) == 0
    err = capsys.readouterr().err
    assert "alert (known since" in err
    assert "promptstate: alert: " not in err


@pytest.mark.parametrize(
    "text",
    ["{not json", "[]", '{"schema_version": 99, "alerts": {}}', '{"schema_version": 1}',
     '{"schema_version": 1, "alerts": {"k": {"kind": 1}}}'],
)  # fmt: skip
def test_a_corrupt_state_is_exit_2_naming_it_and_nothing_written(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    state = tmp_path / "state.json"
    state.write_text(text)
    out = tmp_path / "out.txt"
    assert main([*_analyze(data, "breach.yaml", state), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--state {state}" in err
    assert "delete it" in err
    assert not out.exists()
    assert state.read_text() == text  # left as it was


def _item(kind: str, exp: str, subject: str, message: str) -> AlertItem:
    return AlertItem(kind, exp, subject, message)


def test_keys_are_stable_across_numbers_and_scoped_by_experiment(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    a = _item("regression", "e1", "m|treatment", "regression: m -0.31 [-0.4, -0.2]")
    b = _item("srm", "e2", "1", "sample ratio mismatch in phase 1: 480 vs 520")
    assert update_state(state, [a, b], experiments=["e1", "e2"], now=now).new == (a, b)
    a2 = a._replace(message="regression: m -0.35 [-0.45, -0.25]")
    upd = update_state(state, [a2], experiments=["e1"], now=now)  # e2 not analysed this run
    assert upd.new == ()
    assert [k.item for k in upd.known] == [a2]
    assert upd.cleared == ()
    assert set(read_state(state)) == {a.key, b.key}  # e2's alert kept, not cleared


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                item = _item("regression", f"e{i}", f"m{j}|t", f"run {j}")
                done = [_item("regression", f"e{i}", f"m{k}|t", "x") for k in range(j + 1)]
                update_state(state, [*done[:-1], item], experiments=[f"e{i}"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    alerts = read_state(state)
    assert len(alerts) == 6 * 5
    assert {v["experiment"] for v in alerts.values()} == {f"e{i}" for i in range(6)}


def test_unwritable_state_is_bad_input(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    with pytest.raises(PromptstateError, match="--state"):
        update_state(folder, [], experiments=[])
