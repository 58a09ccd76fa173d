"""The looks of a sequential analysis (issue 22, item 2): one run names the first look at which
each decision would have fired.

The reference is brute force: the public ``analyze`` re-run on the export cut at each look's end
(the events an hourly job would have seen then). The generator of ``tests/_generators.py`` labels
every event from the events before it only (no crossing units, no late data), so the cut export
is labelled the same way and every look must equal the re-run to 1e-9.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _generators import RampSpec, generate, ledger_file

import analysis as ps
from analysis.cli import main
from analysis.decisions import decide

PLANNED = 6000.0
KW: dict[str, Any] = {
    "explain": False,
    "recovery": False,
    "completeness": False,
    "sequential": True,
    "planned_units": PLANNED,
}


def _metrics() -> list[Any]:
    return [
        ps.Ratio("helpfulness", direction="higher", guardrail=0.1),
        ps.Mean("helpfulness", direction="higher", name="per_unit"),
    ]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, Path, Any]:
    tmp = tmp_path_factory.mktemp("looks")
    events = generate(RampSpec(n_units=3000, seed=11))
    ledger = ledger_file(tmp)
    return events, ledger, ps.analyze(events, ledger, metrics=_metrics(), **KW)


def _cut(events: pl.DataFrame, at: str) -> pl.DataFrame:
    end = datetime.fromisoformat(at)
    return events.filter(pl.col("ts") < end)


def _row(res: Any, metric: str, phase: str) -> Any:
    (row,) = [
        r
        for r in res.effects.rows
        if (r.analysis, r.metric, r.phase, r.arm) == ("clean", metric, phase, "treatment")
    ]
    return row


def _same(look: Any, row: Any) -> None:
    assert (look.n_control, look.n_arm) == (row.n_control, row.n_arm)
    for f in ("effect", "se", "cs_lower", "cs_upper", "pvalue_sequential", "control_mean"):
        assert getattr(look, f) == pytest.approx(getattr(row, f), rel=1e-9, abs=1e-12), f


def test_the_last_look_is_the_analysis(story: tuple[pl.DataFrame, Path, Any]) -> None:
    _, _, res = story
    looks = list(res.looks.rows)
    last = max(r.look for r in looks)
    assert last == 12  # 72 h of exposure in 6-hour blocks
    for r in (r for r in looks if r.look == last):
        _same(r, _row(res, r.metric, r.phase))
    # every look has both scopes for both metrics once a stratum has weight
    assert {(r.scope, r.metric) for r in looks if r.look == last} == {
        ("combined", "helpfulness"),
        ("combined", "per_unit"),
        ("latest", "helpfulness"),
        ("latest", "per_unit"),
    }


@pytest.mark.parametrize("look", [2, 5, 7, 9])
def test_each_look_equals_analyze_on_the_events_before_it(
    story: tuple[pl.DataFrame, Path, Any], look: int
) -> None:
    events, ledger, res = story
    rows = [r for r in res.looks.rows if r.look == look]
    cut = ps.analyze(_cut(events, rows[0].at), ledger, metrics=_metrics(), **KW)
    for r in rows:
        _same(r, _row(cut, r.metric, r.phase))


def test_first_looks_equal_brute_force(story: tuple[pl.DataFrame, Path, Any]) -> None:
    """Regressions and guardrail breaches: the first look whose cut re-run fires."""
    events, ledger, res = story
    metrics = _metrics()
    dec = decide(res, metrics, ps.load_ledger(ledger))
    assert dec.first_looks is not None
    first = {(r.decision, r.metric, r.phase): r for r in dec.first_looks.rows}
    assert ("regression", "helpfulness", "combined") in first
    assert ("guardrail_breach", "helpfulness", "combined") in first
    ends = {r.look: r.at for r in res.looks.rows}
    seen: dict[tuple[str, str, str], int] = {}
    upto = max(r.look for r in first.values())
    for k in range(1, upto + 1):
        cut = ps.analyze(_cut(events, ends[k]), ledger, metrics=metrics, **KW)
        for r in cut.regressions:
            seen.setdefault(("regression", r.metric, "combined"), k)
        for g in decide(cut, metrics, ps.load_ledger(ledger)).breaches:
            phase = "combined" if g.phase == "combined" else "latest"
            seen.setdefault(("guardrail_breach", g.metric, phase), k)
    for key, r in first.items():
        assert seen.get(key) == r.look, key
        assert r.at == ends[r.look]
        assert r.now
    assert {k for k in seen if seen[k] <= upto} == set(first)


def test_no_regression_is_named_under_the_null(tmp_path: Path) -> None:
    events = generate(RampSpec(n_units=3000, seed=5, effect=0.0, carryover_penalty=0.0))
    res = ps.analyze(events, ledger_file(tmp_path), metrics=_metrics()[1:], **KW)
    assert len(res.looks) > 0
    assert [r for r in res.first_looks.rows if r.decision == "regression"] == []


def test_srm_first_look_equals_brute_force(story: tuple[pl.DataFrame, Path, Any]) -> None:
    """Lost logging of a third of the treatment units from day 2: the sequential SRM test of
    phase 2 fires; its first look is the first cut re-run that reports the mismatch."""
    events, ledger, _ = story
    drop = (pl.col("arm") == "treatment") & (pl.col("user_id").hash(seed=3) % 3 == 0)
    skewed = events.filter(~drop)
    res = ps.analyze(skewed, ledger, metrics=_metrics()[1:], **KW)
    srm = [r for r in res.first_looks.rows if r.decision == "srm"]
    assert srm, "the mismatch must be found"
    ends = {r.look: r.at for r in res.looks.rows}
    for r in srm:
        fired = None
        for k in range(1, r.look + 1):
            cut = ps.analyze(_cut(skewed, ends[k]), ledger, metrics=_metrics()[1:], **KW)
            if any(x.mismatch and str(x.phase) == r.phase for x in cut.srm.rows):
                fired = k
                break
        assert fired == r.look


def test_cli_json_and_text_name_the_first_looks(
    story: tuple[pl.DataFrame, Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, ledger, _res = story
    path = tmp_path / "events.parquet"
    events.write_parquet(path)
    metrics = tmp_path / "metrics.yaml"
    metrics.write_text(
        "metrics:\n"
        "  - {type: ratio, numerator: helpfulness, direction: higher, guardrail: {margin: 0.1}}\n"
    )
    args = ["analyze", str(path), "--ledger", str(ledger), "--metrics", str(metrics)]
    args += ["--sequential", "--planned-units", str(int(PLANNED)), "--no-explain"]
    code = main([*args, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    exp = out["experiments"][0] if "experiments" in out else out
    kinds = {(r["decision"], r["phase"]) for r in exp["first_looks"]}
    assert ("regression", "combined") in kinds
    assert ("guardrail_breach", "combined") in kinds
    assert all(math.isfinite(r["effect"]) for r in exp["looks"])
    code = main(args)
    text = capsys.readouterr().out
    assert code == 1
    assert "first look at which each sequential decision would have fired" in text
    assert "would have breached at look" in text


def test_looks_stop_at_the_window_and_the_first_block_is_burn_in(
    story: tuple[pl.DataFrame, Path, Any],
) -> None:
    """An analysis whose window ends 20 h in has looks only for the strata that start before
    it; the last ends at the window's end and is this analysis; look 1 (the cut re-run's window
    ends just before the first block boundary) is never past the burn-in."""
    from _generators import START

    events, ledger, full = story
    assert not any(r.ready for r in full.looks.rows if r.look == 1)
    until = START + timedelta(hours=20)
    res = ps.analyze(events, ledger, metrics=_metrics(), until=until, late_hours=0.0, **KW)
    looks = sorted({(r.look, r.at) for r in res.looks.rows})
    assert [k for k, _ in looks] == [1, 2, 3, 4]  # strata starting at 0, 6, 12 and 18 h
    assert looks[-1][1] == until.isoformat()
    last = [r for r in res.looks.rows if r.look == 4 and r.scope == "combined"]
    for r in last:
        _same(r, _row(res, r.metric, "combined"))
        assert r.ready == bool(res.options["sequential_ready"] and min(r.n_control, r.n_arm) >= 100)
    assert all(r.looks == 4 for r in res.first_looks.rows)


def test_quantile_guardrails_get_no_sequential_verdict(
    story: tuple[pl.DataFrame, Path, Any],
) -> None:
    events, ledger, _ = story
    metrics = [*_metrics(), ps.Quantile("helpfulness", 0.5, direction="higher", guardrail=0.1)]
    res = ps.analyze(events, ledger, metrics=metrics, **KW)
    rows = ps.evaluate_guardrails(res, metrics).rows
    q = [g for g in rows if g.metric.endswith("p50")]
    assert q
    assert all(g.verdict == "inconclusive" and math.isnan(g.p_breach) for g in q)
    # the other guardrails' Holm family is the same as without the quantile
    base = ps.evaluate_guardrails(res, _metrics()).rows
    want = {(g.metric, g.phase): g.p_breach for g in base}
    for g in rows:
        if (g.metric, g.phase) in want:
            assert g.p_breach == pytest.approx(want[(g.metric, g.phase)], rel=1e-12)


def test_the_first_hour_of_a_canary_with_a_relative_guardrail_is_not_bad_input(
    story: tuple[pl.DataFrame, Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One hour in, no block has two units per arm: no control estimate, so a relative margin
    has no value yet. The verdict is inconclusive and the hourly job exits 0 (it exited 2)."""
    from _generators import START

    events, ledger, _ = story
    path = tmp_path / "events.parquet"
    _cut(events, (START + timedelta(minutes=20)).isoformat()).write_parquet(path)
    metrics = tmp_path / "metrics.yaml"
    metrics.write_text(
        "metrics:\n  - {type: mean, column: helpfulness, direction: higher, "
        'guardrail: {margin: "10%"}}\n'
    )
    at = (START + timedelta(minutes=20)).isoformat()
    args = ["analyze", str(path), "--ledger", str(ledger), "--metrics", str(metrics)]
    args += ["--sequential", "--planned-units", "6000", "--no-explain", "--until", at]
    code = main([*args, "--now", at, "--late-hours", "0", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (g, *_) = json.loads(out)["guardrails"]
    assert g["verdict"] == "inconclusive"
