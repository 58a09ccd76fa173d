"""Daily runs that keep working (issue 20, items 3, 4, 5, 9 and parts of 11), through
``analysis.cli.main``: a lagging export, experiments that ended before ``--since``, late data
trimmed only from fresh windows (``--fresh-hours``, ``--now``), the inferred-metrics note, the
coverage alert's wording, ``split --out`` saying where it wrote, and exit 2 writing nothing.

Exports come from ``tests/test_completeness.py``'s generator (units arriving as a Poisson stream
over four days from ``T0``; the newest event just before ``HORIZON``). No effect is pinned as a
number: the tests check exit codes, stderr, the files written and the window.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_completeness import HORIZON, RAMP, T0, generate

from analysis.cli import main

ROUTE_START = T0 + timedelta(hours=12)
ROUTE_END = T0 + timedelta(hours=60)
NOW = HORIZON + timedelta(hours=1)  # a run an hour after the export's newest event: fresh


def _ledger(
    tmp: Path,
    *,
    route: tuple[datetime, datetime | None] | None = None,
) -> Path:
    """exp-logs (running since T0, ramped at RAMP) and, when ``route`` is given, exp-route on
    another prompt from ``route[0]`` (rolled back at ``route[1]`` unless ``None``)."""
    transitions = [
        (T0 - timedelta(days=10), "action: deploy, prompt: writer, revision: w1"),
        (T0 - timedelta(days=10), "action: deploy, prompt: router, revision: q1"),
        (T0, "action: start, experiment: exp-logs, allocation: {base: 0.7, variant: 0.3}"),
        (RAMP, "action: ramp, experiment: exp-logs, allocation: {base: 0.5, variant: 0.5}"),
    ]
    experiments = "  exp-logs: {prompt: writer, unit: user_id, arms: {base: w1, variant: w2}}\n"
    if route is not None:
        experiments += (
            "  exp-route: {prompt: router, unit: user_id, arms: {control: q1, treatment: q2}}\n"
        )
        transitions.append(
            (route[0], "action: start, experiment: exp-route, "
             "allocation: {control: 0.5, treatment: 0.5}")
        )  # fmt: skip
        if route[1] is not None:
            transitions.append((route[1], "action: rollback, experiment: exp-route, to: q1"))
    transitions.sort(key=lambda t: t[0])
    lines = "".join(f"  - {{at: {at.isoformat()}, {what}}}\n" for at, what in transitions)
    text = (
        "version: 1\nprompts:\n"
        "  writer:\n    revisions:\n      w1: {contract: v1}\n      w2: {parent: w1, contract: v1}\n"
        "  router:\n    revisions:\n      q1: {contract: v1}\n      q2: {parent: q1, contract: v1}\n"
        f"experiments:\n{experiments}transitions:\n{lines}"
    )
    path = tmp / "ledger.yaml"
    path.write_text(text)
    return path


def _metrics(tmp: Path, direction: str | None = None) -> Path:
    path = tmp / "metrics.yaml"
    extra = f", direction: {direction}" if direction else ""
    path.write_text(f"metrics:\n  - {{type: ratio, numerator: score{extra}}}\n")
    return path


@pytest.fixture(scope="module")
def logs() -> Any:
    return generate(n_units=4000, seed=3)


@pytest.fixture(scope="module")
def with_route(logs: Any) -> Any:
    route = generate(
        n_units=2000,
        seed=4,
        experiment="exp-route",
        start=ROUTE_START,
        ramp=ROUTE_START,
        horizon=ROUTE_END,
        arms=("control", "treatment"),
    )
    return pl.concat([logs, route]).sort("ts")


def _export(tmp: Path, frame: Any, name: str = "events.parquet") -> Path:
    path = tmp / name
    frame.write_parquet(path)
    return path


# -- item 3: a lagging export ---------------------------------------------------------------


def test_experiment_without_events_started_long_ago_is_a_completeness_finding(
    logs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started 10 h before the window's end, no event yet: exit 1 (not 2), --out written, the
    experiment named as a completeness alert."""
    ledger = _ledger(tmp_path, route=(HORIZON - timedelta(hours=10), None))
    out = tmp_path / "analysis.json"
    code = main(
        ["analyze", str(_export(tmp_path, logs)), "--ledger", str(ledger),
         "--metrics", str(_metrics(tmp_path)), "--no-explain", "--now", NOW.isoformat(),
         "--format", "json", "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    assert "promptstate: alert: exp-route: completeness: no event of" in err
    assert "promptstate: error:" not in err
    data = json.loads(out.read_text())
    failed = next(e for e in data["experiments"] if e["experiment"] == "exp-route")
    assert failed["exit_code"] == 1
    assert "completeness" in failed["error"]
    assert [o["exit_code"] for o in data["overview"] if o["experiment"] == "exp-route"] == [1]


def test_experiment_without_events_started_within_late_hours_is_a_note(
    logs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started 1 h before the window's end (late_hours 2): a note, exit 0 for that cause."""
    ledger = _ledger(tmp_path, route=(HORIZON - timedelta(hours=1), None))
    out = tmp_path / "analysis.json"
    code = main(
        ["analyze", str(_export(tmp_path, logs)), "--ledger", str(ledger),
         "--metrics", str(_metrics(tmp_path)), "--no-explain", "--now", NOW.isoformat(),
         "--format", "json", "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    data = json.loads(out.read_text())
    logs_code = next(e["exit_code"] for e in data["experiments"] if e["experiment"] == "exp-logs")
    assert code == logs_code, err  # exp-route adds nothing to the exit code
    assert "promptstate: note: exp-route: no event yet" in err
    assert "within late_hours=2" in err
    assert [e["experiment"] for e in data["experiments"]] == ["exp-logs"]
    assert any(n.startswith("exp-route: no event yet") for n in data["notes"])


def test_report_on_a_lagging_export_is_written_with_exit_1(
    logs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """``report`` without --experiment: exp-route started 10 h before the export's end and has
    no event yet. Exit 1 (not 2), the three files written, the experiment named in the
    headline and as a completeness attention item."""
    monkeypatch.chdir(tmp_path)  # no ./baselines
    ledger = _ledger(tmp_path, route=(HORIZON - timedelta(hours=10), None))
    folder = tmp_path / "report"
    code = main(
        ["report", str(_export(tmp_path, logs)), "--ledger", str(ledger),
         "--metrics", str(_metrics(tmp_path)), "--now", NOW.isoformat(),
         "--out", str(folder), "--format", "json"]
    )  # fmt: skip
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert code == 1, cap.err
    assert "exp-route" in summary["headline"]
    assert any(
        a["kind"] == "completeness" and a["message"].startswith("exp-route: completeness")
        for a in summary["attention"]
    )
    for name in ("report.html", "report.md", "report.json"):
        assert (folder / name).stat().st_size > 0


def test_exit_2_writes_no_output_file(
    with_route: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """An experiment that cannot be analysed (bad input, injected into its split): exit 2, and
    neither ``analyze --out`` nor ``report --out`` writes anything (the other experiment's
    analysis does not make a partial file)."""
    from analysis.errors import EventsError
    from analysis.events import labelling

    real = labelling.split

    def split(events: Any, ledger: Any, experiment: Any = None, **kw: Any) -> Any:
        if experiment == "exp-route":
            raise EventsError("events: exp-route: an injected bad input")
        return real(events, ledger, experiment, **kw)

    monkeypatch.setattr(labelling, "split", split)
    ledger = _ledger(tmp_path, route=(ROUTE_START, ROUTE_END))
    export = _export(tmp_path, with_route)
    metrics = _metrics(tmp_path)
    out = tmp_path / "analysis.json"
    code = main(
        ["analyze", str(export), "--ledger", str(ledger), "--metrics", str(metrics),
         "--no-explain", "--format", "json", "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists()
    assert f"nothing written to {out}" in err
    assert "exp-route" in err
    folder = tmp_path / "report"
    code = main(
        ["report", str(export), "--ledger", str(ledger), "--metrics", str(metrics),
         "--out", str(folder), "--format", "json"]
    )  # fmt: skip
    cap = capsys.readouterr()
    assert code == 2, cap.err
    assert not folder.exists()
    assert cap.out == ""
    assert "an injected bad input" in cap.err


# -- item 4: experiments that ended before --since ------------------------------------------


def test_ended_before_since_is_left_out_with_one_note(
    with_route: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = _ledger(tmp_path, route=(ROUTE_START, ROUTE_END))
    since = (ROUTE_END + timedelta(hours=6)).isoformat()
    code = main(
        ["analyze", str(_export(tmp_path, with_route)), "--ledger", str(ledger),
         "--metrics", str(_metrics(tmp_path)), "--no-explain", "--since", since,
         "--format", "json"]
    )  # fmt: skip
    cap = capsys.readouterr()
    data = json.loads(cap.out)
    assert [e["experiment"] for e in data["experiments"]] == ["exp-logs"]
    assert code == data["experiments"][0]["exit_code"]
    notes = [ln for ln in cap.err.splitlines() if "left out: exp-route" in ln]
    assert notes == [
        f"promptstate: note: left out: exp-route (ended at {ROUTE_END.isoformat()}, before "
        f"since {datetime.fromisoformat(since).isoformat()})"
    ]


def test_named_experiment_ended_before_since_is_shown_ended_without_alert(
    with_route: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """``--experiment exp-route --since`` after its rollback: exit 0 and a note, not a coverage
    alert and exit 1 every day; the report is written with a headline."""
    monkeypatch.chdir(tmp_path)  # no ./baselines: no baseline section
    ledger = _ledger(tmp_path, route=(ROUTE_START, ROUTE_END))
    export = _export(tmp_path, with_route)
    metrics = _metrics(tmp_path)
    since = (ROUTE_END + timedelta(hours=6)).isoformat()
    base = [str(export), "--ledger", str(ledger), "--metrics", str(metrics),
            "--experiment", "exp-route", "--since", since]  # fmt: skip
    code = main(["analyze", *base, "--no-explain", "--format", "json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    data = json.loads(cap.out)
    assert data["completeness"] == []
    assert any("shown as ended" in n for n in data["notes"])
    assert "promptstate: alert:" not in cap.err
    folder = tmp_path / "report"
    code = main(["report", *base, "--out", str(folder), "--format", "json"])
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert "completeness" not in {a["kind"] for a in summary["attention"]}
    assert code == summary["exit_code"] == 0, cap.err
    assert summary["headline"].strip()
    assert (folder / "report.html").exists()


# -- item 5: late data only from fresh windows ----------------------------------------------


def _window(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = main(argv)
    cap = capsys.readouterr()
    data = json.loads(cap.out)
    return code, data["options"]["window"], cap.err


def test_late_data_is_trimmed_only_from_a_fresh_window(
    logs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = _ledger(tmp_path)
    base = ["analyze", str(_export(tmp_path, logs)), "--ledger", str(ledger),
            "--metrics", str(_metrics(tmp_path)), "--no-explain", "--format", "json"]  # fmt: skip
    newest = logs["ts"].max()
    late = logs.filter(pl.col("ts") > newest - timedelta(hours=2)).height
    assert late > 0
    # an hour after the newest event: the last 2 h are left out
    code, window, _ = _window([*base, "--now", NOW.isoformat()], capsys)
    assert code in (0, 1)
    assert window["trimmed"] is True
    assert window["late_events"] == late
    assert window["cutoff"] == (newest + timedelta(microseconds=1, hours=-2)).isoformat()
    # weeks later (a historical run): nothing is left out
    later = (HORIZON + timedelta(days=30)).isoformat()
    _, window, _ = _window([*base, "--now", later], capsys)
    assert window["trimmed"] is False
    assert window["late_events"] == 0
    assert window["cutoff"] == window["until"]
    # --fresh-hours widens the horizon: the same run trims again
    _, window, _ = _window([*base, "--now", later, "--fresh-hours", str(24 * 31)], capsys)
    assert window["trimmed"] is True
    assert window["fresh_hours"] == 24 * 31


def test_historical_run_notes_that_nothing_was_trimmed(
    logs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = _ledger(tmp_path)
    code = main(
        ["analyze", str(_export(tmp_path, logs)), "--ledger", str(ledger),
         "--metrics", str(_metrics(tmp_path)), "--no-explain", "--format", "json",
         "--now", (HORIZON + timedelta(days=30)).isoformat()]
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    notes = [n for n in data["notes"] if n.startswith("late data")]
    assert len(notes) == 1
    assert "nothing left out" in notes[0]
    assert "fresh_hours=24" in notes[0]
    assert not any("event(s) in the last" in n for n in data["notes"])


@pytest.mark.parametrize(
    ("flags", "needle"),
    [(["--fresh-hours", "-1"], "--fresh-hours"), (["--now", "2026-03-06T00:00:00"], "timezone")],
)
def test_bad_clock_options_are_bad_input(
    flags: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    code = main(["analyze", "--out", str(out), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert not out.exists()


def test_api_analyze_experiments_takes_fresh_hours_and_now(logs: Any, tmp_path: Path) -> None:
    from analysis.metrics import Ratio, analyze_experiments

    ledger = _ledger(tmp_path, route=(HORIZON - timedelta(hours=10), None))
    kw: dict[str, Any] = {"metrics": [Ratio("score")], "explain": False, "recovery": False}
    fresh = analyze_experiments(logs, ledger, now=NOW, **kw)
    assert fresh.result("exp-logs").options["window"]["trimmed"] is True
    old = analyze_experiments(logs, ledger, now=HORIZON + timedelta(days=3), **kw)
    assert old.result("exp-logs").options["window"]["trimmed"] is False
    wide = analyze_experiments(logs, ledger, now=HORIZON + timedelta(days=3), fresh_hours=96, **kw)
    assert wide.result("exp-logs").options["window"]["trimmed"] is True
    # the experiment without events is a finding either way (started 10 h before the end)
    assert [e.kind for e in fresh.errors] == ["completeness"]
    assert fresh.exit_code == max(1, fresh.result("exp-logs").exit_code)


# -- item 9: inferred metrics ---------------------------------------------------------------


def test_inferred_metrics_note_says_they_cannot_alert_and_names_estimands(
    logs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = logs.with_columns((pl.col("score") > 3.0).alias("good"))
    ledger = _ledger(tmp_path)
    code = main(
        ["analyze", str(_export(tmp_path, frame)), "--ledger", str(ledger), "--no-explain",
         "--now", NOW.isoformat(), "--format", "json"]
    )  # fmt: skip
    cap = capsys.readouterr()
    assert code in (0, 1), cap.err
    note = next(ln for ln in cap.err.splitlines() if "inferred metrics" in ln)
    assert "Ratio('good'): per-turn rate, the share of turns with good true" in note
    assert "Ratio('score'): per-turn mean of score" in note
    assert "no direction, so no regression can alert on them" in note
    assert "direction: higher" in note
    data = json.loads(cap.out)
    assert {r["metric"] for r in data["effects"]} == {"good", "score"}
    assert not any(r.get("better") is False for r in data["effects"])  # no direction


# -- item 11: the coverage alert's wording, split --out -------------------------------------


def test_tags_stopping_while_running_names_an_unrecorded_rollback(
    logs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Arm tags stop 20 h before the export's end while the ledger says exp-logs runs (events
    go on, untagged): the coverage alert says both causes."""
    stop = HORIZON - timedelta(hours=20)
    tagged = pl.col("ts") < stop
    frame = logs.with_columns(
        pl.when(tagged).then(pl.col("experiment_id")).alias("experiment_id"),
        pl.when(tagged).then(pl.col("arm")).alias("arm"),
    )
    code = main(
        ["analyze", str(_export(tmp_path, frame)), "--ledger", str(_ledger(tmp_path)),
         "--metrics", str(_metrics(tmp_path)), "--no-explain", "--now", NOW.isoformat(),
         "--format", "json"]
    )  # fmt: skip
    cap = capsys.readouterr()
    assert code == 1, cap.err
    alert = next(ln for ln in cap.err.splitlines() if ln.startswith("promptstate: alert: coverage"))
    assert "the export stops early" in alert
    assert "rolled back or stopped without a ledger entry" in alert
    assert "ledger record rollback" in alert


def test_split_out_says_where_it_wrote(
    logs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "labelled.parquet"
    code = main(
        ["split", str(_export(tmp_path, logs)), "--ledger", str(_ledger(tmp_path)),
         "--out", str(out), "--format", "json"]
    )  # fmt: skip
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert out.exists()
    lines = [ln for ln in cap.err.splitlines() if "wrote" in ln]
    assert lines == [
        f"promptstate: wrote {logs.height} labelled events of experiment exp-logs to {out}"
    ]
    json.loads(cap.out)  # stdout stays the JSON summary
