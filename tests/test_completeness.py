"""Completeness and freshness checks (issue 14): coverage, gaps, an arm's lost logging, late data.

The export comes from a generator built unlike the sample (and unlike ``tests/_generators.py``):
units arrive as a Poisson stream over four days, each is assigned at arrival with the allocation
of that instant (0.7 / 0.3, then 0.5 / 0.5 after a ramp at 48 h; fresh draws, no buckets), and
has one short session (1 + Poisson(2) turns within an exponential 40 minutes). A *hole* drops
every event of one arm in a time window (lost logging). Every number is checked against an
independent computation: polars on the generated frame for the aggregates, ``scipy.stats
.binomtest`` for the volume test, a brute-force loop for the empty-hour runs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.errors import SCHEMA_VERSION, PromptstateError

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
RAMP = T0 + timedelta(hours=48)
HORIZON = T0 + timedelta(hours=96)

LEDGER = f"""
version: 1
prompts:
  writer:
    revisions:
      w1: {{contract: v1}}
      w2: {{parent: w1, contract: v1}}
experiments:
  exp-logs: {{prompt: writer, unit: user_id, arms: {{base: w1, variant: w2}}}}
transitions:
  - {{at: {(T0 - timedelta(days=10)).isoformat()}, action: deploy, prompt: writer, revision: w1}}
  - {{at: {T0.isoformat()}, action: start, experiment: exp-logs, allocation: {{base: 0.7, variant: 0.3}}}}
  - {{at: {RAMP.isoformat()}, action: ramp, experiment: exp-logs, allocation: {{base: 0.5, variant: 0.5}}}}
"""


def generate(
    n_units: int = 12_000,
    seed: int = 0,
    hole: tuple[str, datetime, datetime] | None = None,
    experiment: str = "exp-logs",
    start: datetime = T0,
    ramp: datetime = RAMP,
    horizon: datetime = HORIZON,
    arms: tuple[str, str] = ("base", "variant"),
) -> Any:
    """A polars export: one session per unit, arms drawn at arrival; ``hole`` = (arm, from, to)
    drops that arm's events in ``[from, to)``."""
    import polars as pl

    rng = np.random.default_rng(seed)
    span = (horizon - start).total_seconds()
    arrive = rng.random(n_units) * (span - 3600)
    share = np.where(arrive < (ramp - start).total_seconds(), 0.3, 0.5)
    variant = rng.random(n_units) < share
    k = 1 + rng.poisson(2.0, n_units)
    length = rng.exponential(40 * 60, n_units)
    unit = np.repeat(np.arange(n_units), k)
    offset = arrive[unit] + rng.random(unit.size) * length[unit]
    offset[np.r_[0, np.cumsum(k)[:-1]]] = arrive  # the first turn at arrival
    offset = np.minimum(offset, span - 1)
    ts = pl.Series((start.timestamp() + offset) * 1e6).cast(pl.Int64).cast(pl.Datetime("us", "UTC"))
    frame = pl.DataFrame(
        {
            "event_id": [f"{experiment}-{i}" for i in range(unit.size)],
            "ts": ts,
            "user_id": [f"{experiment}-u{u}" for u in unit],
            "experiment_id": experiment,
            "arm": np.where(variant[unit], arms[1], arms[0]),
            "score": rng.normal(3.0, 1.0, unit.size) - 0.2 * variant[unit],
        }
    )
    if hole is not None:
        arm, lo, hi = hole
        frame = frame.filter(~((pl.col("arm") == arm) & pl.col("ts").is_between(lo, hi, "left")))
    return frame.sort("ts")


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completeness") / "ledger.yaml"
    path.write_text(LEDGER)
    return path


HOLE = ("variant", T0 + timedelta(hours=60), T0 + timedelta(hours=72))


@pytest.fixture(scope="module")
def clean_export() -> Any:
    return generate(seed=1)


@pytest.fixture(scope="module")
def holed_export() -> Any:
    return generate(seed=1, hole=HOLE)


def _analyze(events: Any, ledger: Path, now: datetime = HORIZON, **kw: Any) -> Any:
    """``analyze`` run at ``now`` (default: as the export is written, so it is fresh)."""
    from analysis.metrics import Ratio, analyze
    from analysis.metrics._completeness import run_clock

    kw.setdefault("explain", False)
    kw.setdefault("recovery", False)
    with run_clock(now=now):
        return analyze(events, ledger, metrics=[Ratio("score", direction="higher")], **kw)


# -- acceptance ------------------------------------------------------------------------------


def test_twelve_hour_hole_in_one_arm_alerts(holed_export: Any, ledger_path: Path) -> None:
    res = _analyze(holed_export, ledger_path)
    rows = list(res.completeness.rows)
    gaps = [r for r in rows if r.kind == "gap" and r.arm == "variant"]
    assert len(gaps) == 1, rows
    # the hole's whole hours, named with the arm and the window
    assert (gaps[0].start, gaps[0].end) == (HOLE[1], HOLE[2])
    assert "variant" in gaps[0].detail
    assert HOLE[1].isoformat() in gaps[0].detail
    # lost logging of new units on the hole's day (60 h → 72 h = 2026-03-04 18:00..06:00)
    volume = [r for r in rows if r.kind == "volume"]
    assert volume
    assert all((r.arm, r.phase) == ("variant", 2) for r in volume)
    assert not [r for r in rows if r.arm in (None, "base")]
    assert res.exit_code == 1
    assert not res.ok
    assert res.all_alerts[: len(rows)] == tuple(r.detail for r in rows)  # they lead


def test_same_export_without_hole_raises_none(clean_export: Any, ledger_path: Path) -> None:
    res = _analyze(clean_export, ledger_path)
    assert len(res.completeness) == 0, list(res.completeness.rows)
    assert res.completeness_messages == ()


# -- the aggregates and the statistics against independent references -------------------------


def _window(res: Any, **kw: Any) -> Any:
    from analysis.metrics._completeness import resolve_window

    return resolve_window(
        res, kw.get("since"), kw.get("until"), kw.get("late_hours", 2.0), now=HORIZON
    )


def test_aggregates_match_polars(holed_export: Any, ledger_path: Path) -> None:
    import polars as pl

    from analysis.events.labelling import split
    from analysis.metrics._completeness import completeness_frames

    res = split(holed_export, ledger_path)
    frames = completeness_frames(res)
    hourly = {
        (r["phase"], r["hour"], r["arm"]): (r["n"], r["units"])
        for r in frames["hourly"].collect().rows(named=True)
    }
    df = holed_export.with_columns(
        pl.when(pl.col("ts") < RAMP).then(1).otherwise(2).alias("phase"),
        pl.col("ts").dt.truncate("1h").alias("hour"),
    )
    want = df.group_by("phase", "hour", "arm").agg(pl.len(), pl.col("user_id").n_unique())
    assert hourly == {
        (r["phase"], r["hour"], r["arm"]): (r["len"], r["user_id"]) for r in want.to_dicts()
    }
    enrolled = {
        (r["phase"], r["day"], r["arm"]): r["n"]
        for r in frames["enrolled"].collect().rows(named=True)
    }
    first = df.sort("ts").group_by("user_id", maintain_order=True).first()
    ref = first.with_columns(pl.col("ts").dt.truncate("1d").alias("day"))
    ref = ref.group_by("phase", "day", "arm").len()
    assert enrolled == {(r["phase"], r["day"], r["arm"]): r["len"] for r in ref.to_dicts()}


def test_volume_test_against_scipy_binomtest() -> None:
    from scipy import stats

    from analysis.ledger import Phase
    from analysis.metrics._completeness import Window, completeness_rows

    phase = Phase(1, "exposure", T0, T0 + timedelta(days=3), {"a": 0.6, "b": 0.4}, {})
    window = Window(None, T0 + timedelta(days=3), T0 + timedelta(days=3), 0.0, 0, True)
    day = T0.replace(hour=0)
    rng = np.random.default_rng(3)
    hours = [
        {"phase": 1, "hour": T0 + timedelta(hours=h), "arm": a, "n": 50}
        for h in range(72)
        for a in "ab"
    ]
    for _ in range(200):
        n_a, n_b = int(rng.integers(1, 400)), int(rng.integers(1, 400))
        cells = [{"phase": 1, "day": day, "arm": "a", "n": n_a}]
        cells.append({"phase": 1, "day": day, "arm": "b", "n": n_b})
        found = completeness_rows([phase], hours, cells, window, drop_threshold=0.3, alpha=0.01)
        want = set()
        for arm, n, rest, p in (("a", n_a, n_b, 0.6), ("b", n_b, n_a, 0.4)):
            implied = p / (1 - p) * rest
            pv = stats.binomtest(n, n + rest, p, alternative="less").pvalue
            if n < 0.7 * implied and pv < 0.01 / 2:  # Bonferroni over the 2 cells
                want.add(arm)
        assert {r.arm for r in found if r.kind == "volume"} == want, (n_a, n_b)


def test_gap_runs_against_brute_force() -> None:
    import math

    from analysis.ledger import Phase
    from analysis.metrics._completeness import Window, completeness_rows

    rng = np.random.default_rng(5)
    phase = Phase(1, "exposure", T0, T0 + timedelta(hours=48), {"a": 0.5, "b": 0.5}, {})
    window = Window(None, T0 + timedelta(hours=48), T0 + timedelta(hours=48), 0.0, 0, True)
    for _ in range(100):
        series = {a: rng.poisson(rng.choice([0.3, 3.0, 20.0]), 48) for a in "ab"}
        for a in "ab":  # a few forced holes
            i = int(rng.integers(0, 48))
            series[a][i : i + int(rng.integers(1, 8))] = 0
        # distinct units per hour: between 1 and the events (turns come in bursts)
        units = {a: np.minimum(series[a], 1 + rng.poisson(series[a] / 3)) for a in "ab"}
        rows = [
            {
                "phase": 1,
                "hour": T0 + timedelta(hours=h),
                "arm": a,
                "n": int(series[a][h]),
                "units": int(units[a][h]),
            }
            for a in "ab"
            for h in range(48)
            if series[a][h]
        ]
        found = completeness_rows([phase], rows, [], window, gap_hours=2, alpha=0.001)
        want = set()
        total = series["a"] + series["b"]
        named: dict[str | None, Any] = {None: total, "a": series["a"], "b": series["b"]}
        active = {None: units["a"].sum() + units["b"].sum(), "a": units["a"].sum()}
        active["b"] = units["b"].sum()
        overall_runs = []
        for arm in (None, "a", "b"):
            s = named[arm]
            rate = active[arm] / 48  # active units per hour
            h = 0
            while h < 48:
                if s[h] == 0:
                    j = h
                    while j < 48 and s[j] == 0:
                        j += 1
                    inside = arm is not None and any(a <= h and j <= b for a, b in overall_runs)
                    if (
                        j - h >= 2
                        and not inside
                        and not (rate > 0 and math.exp(-rate * (j - h)) >= 0.001 / 48)
                    ):
                        if arm is None:
                            overall_runs.append((h, j))
                        want.add((arm, h, j, "coverage" if h == 0 or j == 48 else "gap"))
                    h = j
                else:
                    h += 1
        got = {
            (
                r.arm,
                int((r.start - T0) / timedelta(hours=1)),
                int((r.end - T0) / timedelta(hours=1)),
                r.kind,
            )
            for r in found
        }
        assert got == want


def test_late_data_left_out_and_counted(clean_export: Any, ledger_path: Path) -> None:
    import polars as pl

    res = _analyze(clean_export, ledger_path, late_hours=5)
    newest = clean_export["ts"].max()
    late = clean_export.filter(pl.col("ts") > newest - timedelta(hours=5)).height
    window = res.options["window"]
    assert window["late_events"] == late
    cutoff = newest + timedelta(microseconds=1) - timedelta(hours=5)
    assert window["cutoff"] == cutoff.isoformat()
    assert any(f"{late} event(s) in the last 5 h" in n for n in res.notes)
    kept = clean_export.filter(pl.col("ts") <= newest - timedelta(hours=5)).height
    assert sum(r.events for r in res.exclusions.rows) == kept


def test_until_beyond_the_export_is_missing_coverage(clean_export: Any, ledger_path: Path) -> None:
    until = HORIZON + timedelta(hours=10)
    res = _analyze(clean_export, ledger_path, until=until.isoformat(), late_hours=0)
    cov = [r for r in res.completeness.rows if r.kind == "coverage"]
    assert [(r.arm, r.end) for r in cov] == [(None, until)]
    assert cov[0].start == HORIZON  # the export's last whole hour ends there


def test_since_and_a_late_start_of_the_export(clean_export: Any, ledger_path: Path) -> None:
    import polars as pl

    late_start = clean_export.filter(pl.col("ts") >= T0 + timedelta(hours=5))
    res = _analyze(late_start, ledger_path)
    cov = [r for r in res.completeness.rows if r.kind == "coverage"]
    assert [(r.arm, r.start, r.end) for r in cov] == [(None, T0, T0 + timedelta(hours=5))]
    # analysing from since on: nothing is missing
    res = _analyze(late_start, ledger_path, since=T0 + timedelta(hours=5))
    assert len(res.completeness) == 0


def test_completeness_off_and_json(holed_export: Any, ledger_path: Path) -> None:
    import json

    off = _analyze(holed_export, ledger_path, completeness=False)
    assert len(off.completeness) == 0
    on = _analyze(holed_export, ledger_path)
    d = on.to_dict()
    assert list(d)[:2] == ["schema_version", "experiment"]
    assert d["schema_version"] == SCHEMA_VERSION
    assert [r["kind"] for r in d["completeness"]] == [r.kind for r in on.completeness.rows]
    assert d["alerts"][0] == on.completeness.rows[0].detail
    json.dumps(d)
    assert "completeness" in str(on)
    assert "**alert**: gap: arm variant" in on.to_markdown()


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"late_hours": -1}, "late_hours"),
        ({"gap_hours": 0}, "gap_hours"),
        ({"drop_threshold": 1.5}, "drop_threshold"),
        ({"completeness_alpha": 0}, "completeness_alpha"),
        ({"until": "yesterday"}, "until"),
        ({"since": "2026-03-05T00:00:00Z", "until": "2026-03-04T00:00:00Z"}, "after since"),
    ],
)
def test_bad_options(clean_export: Any, ledger_path: Path, kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(PromptstateError, match=needle):
        _analyze(clean_export, ledger_path, **kw)


def test_same_findings_on_duckdb(holed_export: Any, ledger_path: Path) -> None:
    """The aggregates are narwhals-only: a DuckDB relation gives the same findings and window."""
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    rel = con.from_arrow(holed_export.to_arrow())
    on_polars = _analyze(holed_export, ledger_path)
    on_duckdb = _analyze(rel, ledger_path)
    assert on_duckdb.completeness.to_records() == on_polars.completeness.to_records()
    assert on_duckdb.options["window"] == on_polars.options["window"]


# -- simulation: false alarms and detection -------------------------------------------------


def _scale() -> float:
    return float(os.environ.get("PROMPTSTATE_SIM_SCALE", "1"))


LOST_DAY = (T0 + timedelta(hours=66), T0 + timedelta(hours=90))  # 2026-03-05, phase 2


def simulate(
    reps: int, n_units: int, scenario: str, ledger: Path, loss: float = 0.4
) -> dict[str, int]:
    """Run the checks (aggregates and statistics, not the effects) on ``reps`` seeded exports.

    Scenarios: ``none`` (no loss: every finding is a false alarm), ``hole`` (the 12-hour hole
    :data:`HOLE`), ``partial`` (the variant arm loses a share ``loss`` of the units it enrols
    on 2026-03-05, all their events: no empty hour, so only the volume check can see it).

    Returns:
        Counts of exports: ``any`` finding, ``gap`` / ``volume`` findings of the variant arm
        (for ``partial``: volume on the lost day), and ``other`` findings.
    """
    import polars as pl

    from analysis.events.labelling import split
    from analysis.metrics._completeness import (
        apply_window,
        completeness_frames,
        completeness_rows,
    )

    out = dict.fromkeys(("any", "gap", "volume", "other"), 0)
    for seed in range(reps):
        df = generate(n_units=n_units, seed=1000 + seed, hole=HOLE if scenario == "hole" else None)
        if scenario == "partial":
            first = df.group_by("user_id").agg(pl.col("ts").min(), pl.col("arm").first())
            day = pl.col("ts").is_between(*LOST_DAY, "left")
            lost = first.filter((pl.col("arm") == "variant") & day).sample(fraction=loss, seed=seed)
            df = df.filter(~pl.col("user_id").is_in(lost["user_id"].implode()))
        res = split(df, ledger)
        window = _window(res)
        res = apply_window(res, window)
        fr = completeness_frames(res)
        rows = completeness_rows(
            res.phases,
            fr["hourly"].collect().rows(named=True),
            fr["enrolled"].collect().rows(named=True),
            window,
        )
        hit_gap = [r for r in rows if r.arm == "variant" and r.kind == "gap"]
        hit_volume = [
            r
            for r in rows
            if r.arm == "variant"
            and r.kind == "volume"
            and (scenario != "partial" or r.start == LOST_DAY[0])
        ]
        expected = hit_gap + hit_volume if scenario != "none" else []
        out["any"] += bool(rows)
        out["gap"] += bool(hit_gap)
        out["volume"] += bool(hit_volume)
        out["other"] += any(r not in expected for r in rows)
    return out


@pytest.mark.slow
def test_false_alarms_near_zero_and_detection(ledger_path: Path) -> None:
    """Seeded exports without loss, with the 12-hour hole, and with 40% of one day's new units
    of one arm lost. Full size: 200 replicates each (``python tests/test_completeness.py``)."""
    reps = max(10, int(200 * _scale()))
    null = simulate(reps, 6000, "none", ledger_path)
    assert null["any"] <= max(1, int(0.01 * reps)), null
    hole = simulate(reps, 6000, "hole", ledger_path)
    assert hole["gap"] == reps, hole
    assert hole["other"] == 0, hole
    partial = simulate(reps, 6000, "partial", ledger_path)
    assert partial["volume"] >= 0.95 * reps, partial
    assert partial["other"] <= max(1, int(0.01 * reps)), partial


if __name__ == "__main__":  # full-size figures: python tests/test_completeness.py [REPS]
    import sys
    import tempfile

    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    path = Path(tempfile.mkdtemp()) / "ledger.yaml"
    path.write_text(LEDGER)
    for n_units in (1500, 6000):
        for scenario in ("none", "hole", "partial"):
            print(n_units, scenario, reps, simulate(reps, n_units, scenario, path))


def test_a_window_without_exposure_is_an_alert(clean_export: Any, ledger_path: Path) -> None:
    """Nothing compared must not pass silently: late_hours cutting every exposure, or a window
    before the start, is a coverage finding (exit 1)."""
    cut = _analyze(clean_export, ledger_path, late_hours=24 * 10)
    assert [(r.kind, r.arm) for r in cut.completeness.rows] == [("coverage", None)]
    assert "holds none of the experiment's exposure" in cut.completeness.rows[0].detail
    assert cut.exit_code == 1
    before = _analyze(
        clean_export,
        ledger_path,
        since=(T0 - timedelta(days=3)).isoformat(),
        until=(T0 - timedelta(days=2)).isoformat(),
    )
    assert [r.kind for r in before.completeness.rows] == ["coverage"]


def test_late_data_only_from_a_fresh_window_api(clean_export: Any, ledger_path: Path) -> None:
    """Issue 20.5 on the API: ``resolve_window`` cuts ``late_hours`` only when ``until`` is within
    ``fresh_hours`` of ``now``; the boundary is inclusive; a negative horizon is bad input."""
    from analysis.events.labelling import split
    from analysis.metrics._completeness import resolve_window, run_clock

    res = split(clean_export, ledger_path)
    until = clean_export["ts"].max() + timedelta(microseconds=1)
    at_edge = resolve_window(res, None, None, 2.0, fresh_hours=24, now=until + timedelta(hours=24))
    assert at_edge.trimmed
    assert at_edge.cutoff == until - timedelta(hours=2)
    past = resolve_window(res, None, None, 2.0, fresh_hours=24, now=until + timedelta(hours=25))
    assert not past.trimmed
    assert (past.cutoff, past.late_events) == (until, 0)
    assert past.notes()[0].startswith("late data: nothing left out")
    with run_clock(fresh_hours=48, now=until + timedelta(hours=25)):  # the block's defaults
        assert resolve_window(res, None, None, 2.0).trimmed
    with pytest.raises(PromptstateError, match="fresh_hours"):
        resolve_window(res, None, None, 2.0, fresh_hours=-1)
