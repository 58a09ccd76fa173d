"""``plan_test`` / ``promptstate plan`` (issue 22, item 6): size the next test by an A/A replay.

Checked here: the replay's assignment (hash buckets, shares, a ramp that moves units only from
control to treatment), that each replay day's SE is exactly the one ``analyze`` gives on the
export tagged by hand, the days/units arithmetic (found in the replay, or extrapolated with
SE ∝ 1/√units) against a brute-force loop, the ramp steps' power against the normal formula,
and the CLI's exit codes, outputs and refusals.
"""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import narwhals as nw
import polars as pl
import pytest
from scipy.stats import norm

import analysis as ps
from analysis.cli import main
from analysis.decisions import planning
from analysis.decisions.planning import ReplayRow, parse_schedule, plan_test
from analysis.errors import PromptstateError
from analysis.events import _engines

METRICS = [ps.Ratio("helpfulness", direction="higher"), ps.Mean("cost_usd", direction="lower")]


def test_parse_schedule() -> None:
    assert parse_schedule("0.1:2d,0.5") == [(0.1, 2.0), (0.5, None)]
    assert parse_schedule("0.05:12h, 0.2:1d ,0.5") == [(0.05, 0.5), (0.2, 1.0), (0.5, None)]
    assert parse_schedule("0.5") == [(0.5, None)]
    for bad, msg in (
        ("0.1:2d,0.5:1d", "the last step runs until the end"),
        ("0.1,0.5", "step 1 needs a length"),
        ("1.5", "must lie in (0, 1)"),
        ("ten:2d,0.5", "is not SHARE[:LENGTH(d|h)]"),
        ("0.1:0d,0.5", "has no length"),
    ):
        with pytest.raises(PromptstateError, match=re.escape(msg)):
            parse_schedule(bad)


def test_replay_assignment_follows_the_schedule(events_path: Path) -> None:
    """Shares match the allocation in force; a ramp moves units only control → treatment."""
    frame = nw.from_native(pl.scan_parquet(events_path))
    start = pl.read_parquet(events_path)["ts"].min() + timedelta(days=1)
    phases = [
        (start, {"control": 0.8, "treatment": 0.2}),
        (start + timedelta(hours=12), {"control": 0.5, "treatment": 0.5}),
    ]
    end = start + timedelta(days=2)
    tagged = planning._replay_frame(
        frame, "user_id", ["control", "treatment"], phases, start, end, _engines
    ).to_native()
    df = tagged.collect()
    assert (
        df.filter(pl.col("ts") < start)["arm"].null_count()
        == df.filter(pl.col("ts") < start).height
    )
    first = df.filter((pl.col("ts") >= start) & (pl.col("ts") < phases[1][0]))
    second = df.filter(pl.col("ts") >= phases[1][0])
    share1 = first.group_by("user_id").agg(pl.col("arm").first())["arm"].eq("treatment").mean()
    share2 = second.group_by("user_id").agg(pl.col("arm").first())["arm"].eq("treatment").mean()
    assert share1 == pytest.approx(0.2, abs=0.04)
    assert share2 == pytest.approx(0.5, abs=0.04)
    per_unit = (
        df.filter(pl.col("arm").is_not_null())
        .sort("ts")
        .group_by("user_id")
        .agg(
            pl.col("arm").n_unique().alias("k"),
            pl.col("arm").first().alias("first"),
            pl.col("arm").last().alias("last"),
        )
    )
    moved = per_unit.filter(pl.col("k") > 1)
    assert moved.height > 0
    assert moved["first"].eq("control").all()
    assert moved["last"].eq("treatment").all()
    # one arm per unit within each phase
    for part in (first, second):
        assert part.group_by("user_id").agg(pl.col("arm").n_unique())["arm"].max() == 1


def test_replay_se_is_the_analysis_of_the_export_tagged_by_hand(
    events_path: Path, ledger_path: Path, tmp_path: Path
) -> None:
    plan = plan_test(events_path, ledger_path, metrics=METRICS, mde="5%", pre_days=1.0)
    start = pl.read_parquet(events_path)["ts"].min() + timedelta(days=1)
    frame = nw.from_native(pl.scan_parquet(events_path))
    end = start + timedelta(days=2)
    tagged = planning._replay_frame(
        frame,
        "user_id",
        ["control", "treatment"],
        [(start, {"control": 0.5, "treatment": 0.5})],
        start,
        end,
        _engines,
    ).to_native()
    ledger = tmp_path / "aa.yaml"
    ledger.write_text(
        f"""version: 1
prompts:
  aa-replay: {{revisions: {{rev-0: {{}}, rev-1: {{}}}}}}
experiments:
  aa-replay: {{prompt: aa-replay, unit: user_id, arms: {{control: rev-0, treatment: rev-1}}}}
transitions:
  - {{at: "{(start - timedelta(days=365)).isoformat()}", action: deploy, prompt: aa-replay, revision: rev-0}}
  - {{at: "{start.isoformat()}", action: start, experiment: aa-replay, allocation: {{control: 0.5, treatment: 0.5}}}}
""",
        encoding="utf-8",
    )  # fmt: skip
    for day in (1, 2):
        res = ps.analyze(
            tagged,
            ledger,
            metrics=METRICS,
            explain=False,
            recovery=False,
            completeness=False,
            late_hours=0.0,
            until=start + timedelta(days=day),
        )
        for m in METRICS:
            row = next(r for r in plan.replay.rows if (r.metric, r.day) == (m.label, day))
            want = res.effect(m.label)
            assert row.se == pytest.approx(want.se, rel=1e-10)
            assert row.effect == pytest.approx(want.effect, rel=1e-9, abs=1e-12)
            assert row.mde == pytest.approx((norm.ppf(0.975) + norm.ppf(0.8)) * want.se, rel=1e-10)
    # distinct units active by each day, counted by brute force
    df = pl.read_parquet(events_path)
    for day in (1, 2):
        window = df.filter((pl.col("ts") >= start) & (pl.col("ts") < start + timedelta(days=day)))
        row = next(r for r in plan.replay.rows if r.day == day)
        assert row.units == window["user_id"].n_unique()


def _curve(metric: str, days: int, units0: int, growth: int, se1: float) -> list[ReplayRow]:
    z = norm.ppf(0.975) + norm.ppf(0.8)
    out = []
    for d in range(1, days + 1):
        units = units0 + growth * (d - 1)
        se = se1 * math.sqrt(units0 / units)
        out.append(ReplayRow(metric, d, units, units // 2, 10.0, se, z * se, 0.0))
    return out


def test_days_found_in_the_replay_and_extrapolated_by_brute_force() -> None:
    rows = _curve("a", 4, 1000, 500, 0.5) + _curve("b", 4, 1000, 500, 0.1)
    z = norm.ppf(0.975) + norm.ppf(0.8)
    plan = planning._plan(rows, [ps.Mean("a"), ps.Mean("b")], 0.3, False, "0.3", 0.05, 0.8,
                          False, {"control": 0.5, "treatment": 0.5}, [], 4, 1.0, {})  # fmt: skip
    by = {r.metric: r for r in plan.metrics.rows}
    # b: the first replay day whose MDE is below 0.3
    assert not by["b"].extrapolated
    assert by["b"].days == next(r.day for r in rows if r.metric == "b" and r.mde <= 0.3)
    # a: beyond the replay; brute force: add units day by day at the late arrival rate (500)
    assert by["a"].extrapolated
    last = [r for r in rows if r.metric == "a"][-1]
    day, units = float(last.day), float(last.units)
    while z * last.se * math.sqrt(last.units / units) > 0.3:
        day += 0.001
        units = last.units + 500 * (day - last.day)
    assert by["a"].days == pytest.approx(day, abs=0.002)
    assert plan.days == by["a"].days
    assert plan.units_per_arm["control"] == pytest.approx(units / 2, rel=1e-3)


def test_step_power_is_the_normal_formula() -> None:
    rows = _curve("a", 3, 1000, 500, 0.1)
    steps = [(0.1, 1.0), (0.5, None)]
    plan = planning._plan(rows, [ps.Mean("a")], 0.25, False, "0.25", 0.05, 0.8, False,
                          {"control": 0.5, "treatment": 0.5}, steps, 3, 1.0, {})  # fmt: skip
    first = next(r for r in plan.steps.rows if r.step == 1)
    assert first.end_day == 1.0
    assert first.power == pytest.approx(norm.cdf(0.25 / rows[0].se - norm.ppf(0.975)), rel=1e-12)
    last = next(r for r in plan.steps.rows if r.step == 2)
    assert last.end_day == plan.days
    # the first whole replay day that reaches the target: at least the power asked for
    at = next(r for r in rows if r.day == plan.days)
    assert last.power == pytest.approx(norm.cdf(0.25 / at.se - norm.ppf(0.975)), rel=1e-12)
    assert last.power >= 0.8


def test_without_a_schedule_the_power_at_the_planned_days_is_reported() -> None:
    rows = _curve("a", 3, 1000, 500, 0.1)
    alloc = {"control": 0.7, "treatment": 0.3}
    plan = planning._plan(rows, [ps.Mean("a")], 0.25, False, "0.25", 0.05, 0.8, False,
                          alloc, [], 3, 1.0, {})  # fmt: skip
    (step,) = plan.steps.rows
    assert (step.step, step.share, step.end_day) == (1, 0.3, plan.days)
    at = next(r for r in rows if r.day == plan.days)
    assert step.power == pytest.approx(norm.cdf(0.25 / at.se - norm.ppf(0.975)), rel=1e-12)
    assert step.power >= 0.8


def test_sequential_needs_more_units(events_path: Path, ledger_path: Path) -> None:
    kw: dict[str, Any] = {"metrics": METRICS[:1], "mde": "1%", "pre_days": 1.0}
    fixed = plan_test(events_path, ledger_path, **kw)
    seq = plan_test(events_path, ledger_path, sequential=True, **kw)
    assert seq.days > fixed.days
    assert sum(seq.units_per_arm.values()) > 1.5 * sum(fixed.units_per_arm.values())


def test_refusals(events_path: Path, ledger_path: Path) -> None:
    with pytest.raises(PromptstateError, match="less than one day to replay"):
        plan_test(events_path, ledger_path, metrics=METRICS, mde="5%", pre_days=3.2)
    with pytest.raises(PromptstateError, match="not both"):
        plan_test(events_path, ledger_path, metrics=METRICS, mde="5%", schedule="0.1:1d,0.5",
                  allocation={"control": 0.5, "treatment": 0.5})  # fmt: skip
    with pytest.raises(PromptstateError, match="sum to 1"):
        plan_test(events_path, ledger_path, metrics=METRICS, mde="5%",
                  allocation={"control": 0.5, "treatment": 0.6})  # fmt: skip
    with pytest.raises(PromptstateError, match="quantile metrics are not planned"):
        plan_test(events_path, ledger_path, metrics=[ps.Quantile("latency_ms", 0.95)], mde=10)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    code = main(["plan", "--mde", "5%", "--format", "json", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 0, err
    got = json.loads(out.read_text(encoding="utf-8"))
    assert list(got)[:3] == ["schema_version", "days", "units_per_arm"]
    assert got["days"] > 0
    assert set(got["units_per_arm"]) == {"control", "treatment"}
    assert {r["metric"] for r in got["metrics"]} == {"helpfulness", "thumbs_up", "cost_usd"}
    assert "latency_ms_p95: quantile metric(s) left out" in " ".join(got["notes"])
    # a ramp schedule: power at the end of each step
    code = main(["plan", "--mde", "0.2", "--schedule", "0.1:1d,0.5", "--format", "json"])
    text, err = capsys.readouterr()
    assert code == 0, err
    steps = json.loads(text)["steps"]
    assert {r["step"] for r in steps} == {1, 2}
    for argv, msg in (
        (["--mde", "x"], "MDE 'x' is not a percent"),
        (["--mde", "5%", "--schedule", "0.1,0.5"], "step 1 needs a length"),
        (["--mde", "5%", "--allocation", "control=0.5", "treatment=0.6"], "sum to 1"),
    ):
        target = tmp_path / "bad.json"
        code = main(["plan", *argv, "--out", str(target)])
        _, err = capsys.readouterr()
        assert code == 2, argv
        assert msg in err
        assert err.count("\n") == 1
        assert not target.exists()


def test_plan_on_duckdb(events_path: Path, ledger_path: Path, tmp_path: Path) -> None:
    """The replay runs in DuckDB (its own hash: another A/A draw of the same design, so the SEs
    are close to polars', not equal), with the same units per day (no hash involved). (PySpark
    runs it too — checked by hand on this history — but one Spark analysis per replay day costs
    minutes of CI until Spark runs fewer jobs per analysis.)"""
    import duckdb

    kw: dict[str, Any] = {"metrics": METRICS, "mde": "5%", "pre_days": 1.0}
    history = tmp_path / "history.parquet"
    sample = pl.read_parquet(events_path)
    sample.filter(pl.col("ts") < pl.col("ts").min() + timedelta(days=2.5)).write_parquet(history)
    base = plan_test(history, ledger_path, **kw)
    source: Any = duckdb.read_parquet(str(history))
    duck = plan_test(source, ledger_path, **kw)
    assert [r.units for r in duck.replay.rows] == [r.units for r in base.replay.rows]
    for a, b in zip(base.replay.rows, duck.replay.rows, strict=True):
        assert b.se == pytest.approx(a.se, rel=0.25)
