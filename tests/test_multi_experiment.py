"""Every active experiment (issue 14): ``analyze_experiments`` and ``report`` without an
experiment over a ledger of several experiments.

Two generated experiments (``tests/test_completeness.py``'s generator: arrivals as a Poisson
stream, one session per unit): ``exp-logs`` (running, 0.7/0.3 then 0.5/0.5) and ``exp-route``
(another prompt, 0.5/0.5, rolled back at 60 h), plus ``exp-old``, which ended before the export
(active only when no ``since`` is given). Each multi-experiment number is checked against the
one-experiment run on the same export and window.
"""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_completeness import LEDGER, T0, generate

from analysis.errors import SCHEMA_VERSION, PromptstateError, worst_exit
from analysis.metrics import Ratio, analyze, analyze_experiments
from analysis.reporting import report
from analysis.reporting._multi import MultiReport
from analysis.reporting.batch import Report

ROUTE_START = T0 + timedelta(hours=12)
ROUTE_END = T0 + timedelta(hours=60)
OLD = T0 - timedelta(days=9)

EXTRA = """  router:
    revisions:
      q1: {contract: v1}
      q2: {parent: q1, contract: v1}
"""
EXPERIMENTS = """  exp-route: {prompt: router, unit: user_id, arms: {control: q1, treatment: q2}}
  exp-old: {prompt: router, unit: user_id, arms: {control: q1, treatment: q2}}
"""
TRANSITIONS = f"""  - {{at: {(T0 - timedelta(days=10)).isoformat()}, action: deploy, prompt: router, revision: q1}}
  - {{at: {OLD.isoformat()}, action: start, experiment: exp-old, allocation: {{control: 0.5, treatment: 0.5}}}}
  - {{at: {(OLD + timedelta(days=1)).isoformat()}, action: stop, experiment: exp-old}}
  - {{at: {ROUTE_START.isoformat()}, action: start, experiment: exp-route, allocation: {{control: 0.5, treatment: 0.5}}}}
  - {{at: {ROUTE_END.isoformat()}, action: rollback, experiment: exp-route, to: q1}}
"""

METRICS = [Ratio("score", direction="higher")]
KW: dict[str, Any] = {"explain": False, "recovery": False}


def _same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Equal records, floats up to the engine's run-to-run summation noise."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for k in g:
            if isinstance(w[k], float):
                assert g[k] == pytest.approx(w[k], rel=1e-9, abs=1e-300), k
            else:
                assert g[k] == w[k], k


def _ledger_text() -> str:
    """The completeness test's ledger with a second prompt and two more experiments (transitions
    kept in time order)."""
    text = LEDGER.replace("experiments:\n", EXTRA + "experiments:\n", 1)
    text = text.replace("transitions:\n", "", 1)
    head, rest = text.split("  exp-logs:", 1)
    exp_line, transitions = rest.split("\n", 1)
    lines = [ln for ln in (transitions + TRANSITIONS).splitlines() if ln.strip()]
    lines.sort(key=lambda ln: re.search(r"at: ([^,]+),", ln).group(1))  # type: ignore[union-attr]
    return (
        head
        + "  exp-logs:"
        + exp_line
        + "\n"
        + EXPERIMENTS
        + "transitions:\n"
        + "\n".join(lines)
        + "\n"
    )


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("multi") / "ledger.yaml"
    path.write_text(_ledger_text())
    return path


def two_experiments() -> Any:
    """The export of the ledger's two active experiments (exp-logs and exp-route)."""
    logs = generate(n_units=4000, seed=11)
    route = generate(
        n_units=3000,
        seed=12,
        experiment="exp-route",
        start=ROUTE_START,
        ramp=ROUTE_START,
        horizon=ROUTE_END,
        arms=("control", "treatment"),
    )
    return pl.concat([logs, route]).sort("ts")


@pytest.fixture(scope="module")
def events() -> Any:
    return two_experiments()


@pytest.fixture(scope="module")
def since() -> str:
    return (T0 - timedelta(days=1)).isoformat()


@pytest.fixture(scope="module")
def multi(
    events: Any, ledger_path: Path, since: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    out = tmp_path_factory.mktemp("multi-report")
    rep = report(events, ledger_path, metrics=METRICS, since=since, out=out)
    return rep, out


def test_report_over_two_experiments_has_overview_and_two_sections(
    multi: tuple[Any, Path], events: Any, ledger_path: Path, since: str
) -> None:
    rep, out = multi
    assert isinstance(rep, MultiReport)
    assert rep.experiments == ("exp-logs", "exp-route")
    assert rep.inactive == ("exp-old",)  # ended before since
    page = (out / "report.html").read_text()
    assert page.count("<article id='exp-") == 2
    assert "<caption>Experiments</caption>" in page
    assert page.index("id='overview'") < page.index("<article id='exp-exp-logs'>")
    ids = re.findall(r"\bid=['\"]([^'\"]+)['\"]", page)
    assert len(ids) == len(set(ids)), "element ids must be unique across sections"
    # each section is the one-experiment report on the same window
    until = rep.until.isoformat()
    for exp in rep.experiments:
        one = report(events, ledger_path, exp, metrics=METRICS, since=since, until=until)
        assert isinstance(one, Report)
        sec = rep.report(exp)
        assert sec.headline == one.headline
        assert sec.analysis.effects.to_records() == one.analysis.effects.to_records()
        assert sec.exit_code == one.exit_code
    assert rep.exit_code == worst_exit(*(rep.report(e).exit_code for e in rep.experiments))
    states = {r.experiment: r.state for r in rep.overview()}
    assert states == {"exp-logs": "running", "exp-route": "rolled back"}
    md = (out / "report.md").read_text()
    assert md.count("## promptstate report: `exp-") == 2


def test_report_json_has_one_object_per_experiment(multi: tuple[Any, Path]) -> None:
    rep, out = multi
    data = json.loads((out / "report.json").read_text())
    assert next(iter(data)) == "schema_version"
    assert data["schema_version"] == SCHEMA_VERSION
    assert [e["experiment"] for e in data["experiments"]] == ["exp-logs", "exp-route"]
    for obj in data["experiments"]:
        assert next(iter(obj)) == "schema_version"
        assert obj["exit_code"] == rep.report(obj["experiment"]).exit_code
    assert data["exit_code"] == rep.exit_code
    assert [r["experiment"] for r in data["overview"]] == ["exp-logs", "exp-route"]


def test_analyze_experiments_equals_one_by_one(events: Any, ledger_path: Path, since: str) -> None:
    res = analyze_experiments(events, ledger_path, since=since, metrics=METRICS, **KW)
    assert res.experiments == ("exp-logs", "exp-route")
    assert res.inactive == ("exp-old",)
    newest = events["ts"].max() + timedelta(microseconds=1)
    assert res.until == newest
    for exp in res.experiments:
        one = analyze(events, ledger_path, exp, metrics=METRICS, since=since, until=newest, **KW)
        _same(res.result(exp).effects.to_records(), one.effects.to_records())
        assert res.result(exp).completeness.rows == one.completeness.rows
    assert res.exit_code == worst_exit(*(r.exit_code for r in res.results))
    d = res.to_dict()
    assert next(iter(d)) == "schema_version"
    assert [e["experiment"] for e in d["experiments"]] == ["exp-logs", "exp-route"]
    assert "exp-route" in str(res)
    # without since, the old experiment is active too — and has no events: the export does not
    # cover it, a completeness finding (exit 1), not bad input (issue 20.3)
    everything = analyze_experiments(events, ledger_path, metrics=METRICS, **KW)
    assert [(e.experiment, e.kind, e.exit_code) for e in everything.errors] == [
        ("exp-old", "completeness", 1)
    ]
    assert "no event of" in everything.errors[0].message
    assert OLD.isoformat() in everything.errors[0].message
    assert everything.exit_code == 1
    assert len(everything.results) == 2  # the finding does not hide the others
    # with since after its end, it is left out with a one-line note naming why (issue 20.4)
    assert res.notes[0].startswith("left out: exp-old (ended at ")
    assert "before since" in res.notes[0]


def test_a_bad_experiment_does_not_hide_the_others(
    events: Any, ledger_path: Path, since: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An experiment whose report fails with bad input (injected into its split) is an error row
    and exit 2; the other experiment is still reported."""
    from analysis.errors import EventsError
    from analysis.events import labelling

    real = labelling.split

    def split(events: Any, ledger: Any, experiment: Any = None, **kw: Any) -> Any:
        if experiment == "exp-route":
            raise EventsError("events: exp-route: an injected bad input")
        return real(events, ledger, experiment, **kw)

    monkeypatch.setattr(labelling, "split", split)
    rep = report(events, ledger_path, metrics=METRICS, since=since)
    assert isinstance(rep, MultiReport)
    assert [e.experiment for e in rep.errors] == ["exp-route"]
    assert [r.experiment for r in rep.reports] == ["exp-logs"]
    assert rep.exit_code == 2
    assert rep.attention[0].kind == "error"
    assert "exp-route" in rep.attention[0].message
    row = next(r for r in rep.overview() if r.experiment == "exp-route")
    assert row.alerts is None
    assert row.headline.startswith("error: ")
    assert "an injected bad input" in rep.to_html()
    with pytest.raises(KeyError, match="failed"):
        rep.report("exp-route")


def test_report_an_experiment_without_events_is_a_completeness_finding(
    events: Any, ledger_path: Path
) -> None:
    """Issue 20.3 for ``report``: without since, exp-old (ended long before the export) has no
    events: a completeness attention item and exit 1, not an error and exit 2."""
    rep = report(events, ledger_path, metrics=METRICS)
    assert isinstance(rep, MultiReport)
    assert [(e.experiment, e.kind, e.exit_code) for e in rep.errors] == [
        ("exp-old", "completeness", 1)
    ]
    assert rep.exit_code == worst_exit(1, *(r.exit_code for r in rep.reports))
    assert ("completeness", "exp-old") in {(a.kind, a.message.split(":")[0]) for a in rep.attention}
    assert "exp-old" in rep.headline


def test_no_active_experiment(events: Any, ledger_path: Path) -> None:
    early = (T0 - timedelta(days=30)).isoformat()  # before every experiment's start
    with pytest.raises(PromptstateError, match="no experiment of the ledger has exposure"):
        report(
            events,
            ledger_path,
            metrics=METRICS,
            since=early,
            until=(T0 - timedelta(days=20)).isoformat(),
        )
    with pytest.raises(PromptstateError, match="no experiment of the ledger has exposure"):
        analyze_experiments(events, ledger_path, until=early)


def test_inferred_metrics_are_noted_on_each_section(
    events: Any, ledger_path: Path, since: str
) -> None:
    rep = report(events, ledger_path, "exp-route", since=since)  # no metrics: inferred
    assert isinstance(rep, Report)
    assert [m.label for m in rep.metrics] == ["score"]
    note = next(n for n in rep.notes if n.startswith("inferred metrics"))
    assert html.escape(note) in rep.to_html()
    assert "helpfulness" not in rep.to_json()  # never the sample's metrics


def test_cli_analyze_and_report_cover_every_active_experiment(
    events: Any, ledger_path: Path, since: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``promptstate analyze/report EVENTS --ledger L`` without ``--experiment``: one JSON object
    per active experiment, equal to the API's, and the worst exit code."""
    from analysis.cli import main

    export = tmp_path / "events.parquet"
    events.write_parquet(export)
    metrics = tmp_path / "metrics.yaml"
    metrics.write_text("metrics:\n  - {type: ratio, numerator: score, direction: higher}\n")
    base = [str(export), "--ledger", str(ledger_path), "--metrics", str(metrics)]
    code = main(["analyze", *base, "--since", since, "--no-explain", "--format", "json"])
    got = json.loads(capsys.readouterr().out)
    want = analyze_experiments(events, ledger_path, since=since, metrics=METRICS, explain=False)
    assert code == want.exit_code
    assert got["schema_version"] == SCHEMA_VERSION
    assert [e["experiment"] for e in got["experiments"]] == list(want.experiments)
    assert [o["experiment"] for o in got["overview"]] == ["exp-logs", "exp-route"]
    for obj in got["experiments"]:
        ref = want.result(obj["experiment"]).to_dict()
        _same(obj["effects"], json.loads(json.dumps(ref["effects"], default=str)))

    out = tmp_path / "rep"
    code = main(["report", *base, "--since", since, "--out", str(out), "--format", "json"])
    summary = json.loads(capsys.readouterr().out)
    assert sorted(summary["experiments"]) == ["exp-logs", "exp-route"]
    assert code == summary["exit_code"]
    page = (out / "report.html").read_text()
    assert "exp-logs" in page
    assert "exp-route" in page
