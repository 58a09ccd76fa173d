"""cache_impact: warm-up and cold-window cost against generated truth; semantic-cache writes.

The cold-cache scenario is generated here with a known model: ``r1`` is deployed, replaced by
``r2`` six hours later (``r1``'s prefix cache goes cold), and ``r2`` is rolled back to ``r1``
six hours after that. Each revision's hit probability after it starts serving is
``ceiling · (1 − exp(−t / tau))``; a hit caches 800 prompt tokens priced at 0.3e-6 instead of
3e-6. The truth of the cold window is computed from those probabilities at the generated turn
times — not from the observed hits the estimator sees.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.events.loading import load_events
from analysis.ledger import parse_ledger
from analysis.rollback.cache import cache_impact, semantic_cache_writes
from analysis.rollback.planning import rollback_plan

T0 = datetime(2026, 12, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=6)
T2 = T1 + timedelta(hours=6)
END = T2 + timedelta(hours=6)
TAU, CEILING, CACHED = 20.0, 0.9, 800
SAVED_PER_HIT = CACHED * (3e-6 - 0.3e-6)


def cold_revert(seed: int = 3, rate: float = 60.0) -> tuple[pl.DataFrame, np.ndarray]:
    """Events of the deploy r1 → deploy r2 → revert to r1 story, and each turn's hit probability."""
    rng = np.random.default_rng(seed)
    minutes = (END - T0).total_seconds() / 60
    n = rng.poisson(rate * minutes)
    offs = np.sort(rng.random(n) * minutes)  # minutes since T0
    t1 = (T1 - T0).total_seconds() / 60
    t2 = (T2 - T0).total_seconds() / 60
    served = np.where((offs >= t1) & (offs < t2), "r2", "r1")
    start = np.where(offs < t1, 0.0, np.where(offs < t2, t1, t2))
    p = CEILING * (1 - np.exp(-(offs - start) / TAU))
    hit = rng.random(n) < p
    prompt_tokens = 900 + rng.integers(0, 400, size=n)
    cached = np.where(hit, CACHED, 0)
    output = rng.poisson(220, size=n)
    cost = (prompt_tokens - cached) * 3e-6 + cached * 0.3e-6 + output * 15e-6
    latency = rng.lognormal(np.log(1400.0), 0.35, size=n) * np.where(hit, 0.8, 1.0)
    ts = pl.Series([T0 + timedelta(minutes=float(m)) for m in offs]).cast(pl.Datetime("us", "UTC"))
    users = rng.integers(0, 3000, size=n)
    sem_hit = rng.random(n) < 0.05
    events = pl.DataFrame(
        {
            "event_id": [f"e{i:07d}" for i in range(n)],
            "ts": ts,
            "user_id": [f"u{u:05d}" for u in users],
            "experiment_id": pl.Series([None] * n, dtype=pl.String),
            "arm": pl.Series([None] * n, dtype=pl.String),
            "conversation_id": [
                f"c{u:05d}-{int(m // 30)}" for u, m in zip(users, offs, strict=True)
            ],
            "revision_id": served,
            "semantic_cache_hit": sem_hit,
            "cache_key": [f"k{i:07d}" for i in range(n)],
            "cache_hit": hit,
            "prompt_tokens": prompt_tokens,
            "cached_tokens": cached,
            "output_tokens": output,
            "cost_usd": np.round(cost, 6),
            "latency_ms": np.round(latency, 1),
        }
    )
    return events, p


def ledger(*, reverted: bool) -> Any:
    transitions: list[dict[str, Any]] = [
        {"at": "2026-12-01T00:00:00Z", "action": "deploy", "prompt": "p", "revision": "r1"},
        {"at": "2026-12-01T06:00:00Z", "action": "deploy", "prompt": "p", "revision": "r2"},
    ]
    if reverted:
        transitions.append(
            {"at": "2026-12-01T12:00:00Z", "action": "rollback", "prompt": "p", "to": "r1"}
        )
    return parse_ledger(
        {
            "version": 1,
            "prompts": {
                "p": {
                    "revisions": {
                        "r1": {"contract": "v1"},
                        "r2": {"parent": "r1", "contract": "v1"},
                    }
                }
            },
            "transitions": transitions,
        }
    )


def truth_cold_window(events: pl.DataFrame, p: np.ndarray, start: datetime) -> dict[str, float]:
    warmup = TAU * math.log(10)
    end = start + timedelta(minutes=warmup)
    ts = events["ts"].to_list()
    served = events["revision_id"].to_list()
    deficit = sum(
        CEILING - p[i]
        for i in range(len(ts))
        if start <= ts[i] < end and served[i] == ("r2" if start == T1 else "r1")
    )
    return {
        "warmup": warmup,
        "extra_tokens": deficit * CACHED,
        "extra_cost": deficit * SAVED_PER_HIT,
    }


@pytest.fixture(scope="module")
def story() -> tuple[pl.DataFrame, np.ndarray]:
    return cold_revert()


def test_cold_cache_after_revert_warmup_and_extra_cost_within_10pct(story: Any) -> None:
    events, p = story
    impact = cache_impact(events, ledger(reverted=True))
    rows = {(r.action, r.revision): r for r in impact.warmup.rows}
    after = rows[("rollback", "r1")]
    assert after.cold
    truth = truth_cold_window(events, p, T2)
    assert after.warmup_minutes == pytest.approx(truth["warmup"], rel=0.10)
    assert after.extra_cost_usd == pytest.approx(truth["extra_cost"], rel=0.10)
    assert after.extra_uncached_tokens == pytest.approx(truth["extra_tokens"], rel=0.10)
    assert after.plateau == pytest.approx(CEILING, abs=0.02)
    # the other cold starts too, and r1 is not cold at r2's deploy (it served until then)
    for action, rev, start in (("deploy", "r1", T0), ("deploy", "r2", T1)):
        row = rows[(action, rev)]
        assert row.cold
        assert row.warmup_minutes == pytest.approx(
            truth_cold_window(events, p, start)["warmup"], rel=0.10
        )
    # extra latency: missed hits × (mean miss latency − mean hit latency), ~ 0.2 × 1400 × e^σ²/2
    assert after.extra_latency_ms > 0


def test_hit_rate_and_cost_per_revision_match_brute_force(story: Any) -> None:
    events, _ = story
    impact = cache_impact(events, ledger(reverted=True))
    for row in impact.revisions.rows:
        sub = events.filter(pl.col("revision_id") == row.revision)
        assert row.turns == sub.height
        assert row.hit_rate == pytest.approx(sub["cache_hit"].mean())
        assert row.cost_per_turn == pytest.approx(sub["cost_usd"].mean())
        assert row.cost_saved_per_hit == pytest.approx(SAVED_PER_HIT, rel=0.01)
        assert row.cached_tokens_per_hit == pytest.approx(CACHED)
    # curve bins around the revert: brute force count of r1 turns in the first 10 minutes
    first = [
        r
        for r in impact.curve.rows
        if r.action == "rollback" and r.revision == "r1" and r.minutes_since == 0
    ]
    sub = events.filter(
        (pl.col("revision_id") == "r1")
        & (pl.col("ts") >= T2)
        & (pl.col("ts") < T2 + timedelta(minutes=10))
    )
    assert first[0].turns == sub.height
    assert first[0].hit_rate == pytest.approx(sub["cache_hit"].mean())


def test_plan_predicts_the_cold_window_of_the_restored_revision(story: Any) -> None:
    events, _ = story
    plan = rollback_plan(ledger(reverted=False), "p", events=events, at=T2, recovery=False)
    assert (plan.reverted, plan.to, plan.experiment) == (("r2",), "r1", None)
    pred = plan.leg("caches").findings["restored_cache"]
    assert pred["cold"] is True
    rate = (
        events.filter((pl.col("ts") >= T2 - timedelta(hours=1)) & (pl.col("ts") < T2)).height / 60
    )
    assert pred["rate_per_minute"] == pytest.approx(rate)
    # expected shortfall over the cold window: rate · ceiling · tau · 0.9 hits
    truth_cost = 60.0 * CEILING * TAU * 0.9 * SAVED_PER_HIT
    assert pred["warmup_minutes"] == pytest.approx(TAU * math.log(10), rel=0.10)
    assert pred["extra_cost_usd"] == pytest.approx(truth_cost, rel=0.10)
    assert pred["extra_uncached_tokens"] == pytest.approx(
        truth_cost / SAVED_PER_HIT * CACHED, rel=0.10
    )
    kinds = [a.kind for a in plan.leg("caches").actions]
    assert "warm-cache" in kinds
    assert "expire-prefix" in kinds


def test_warm_restored_revision_has_no_cold_window(events_path: Path, ledger_path: Path) -> None:
    impact = cache_impact(events_path, ledger_path, at=datetime(2026, 11, 3, 8, 15, tzinfo=UTC))
    pred = impact.predict("r41", rate_per_minute=10.0, at=datetime(2026, 11, 3, 8, 15, tzinfo=UTC))
    assert not pred.cold
    assert pred.extra_cost_usd == 0.0
    cold = {(r.action, r.revision) for r in impact.cold_starts()}
    assert cold == {("deploy", "r41"), ("start", "r42")}


def test_semantic_cache_writes_are_exactly_the_truth(
    events_path: Path, truth_info: dict[str, Any]
) -> None:
    loaded = load_events(events_path)
    keys = semantic_cache_writes(loaded.frame, ["r42"]).collect()["cache_key"].to_list()
    expected = truth_info["semantic_cache_keys_written_by_r42"]
    assert keys == sorted(expected)
    assert len(set(keys)) == len(keys)


def test_options_are_checked(story: Any) -> None:
    from analysis.errors import EventsError, PromptstateError

    events, _ = story
    with pytest.raises(PromptstateError, match="plateau_share"):
        cache_impact(events, ledger(reverted=True), plateau_share=1.0)
    with pytest.raises(EventsError, match="cache_hit"):
        cache_impact(events.drop("cache_hit"), ledger(reverted=True))


def test_cache_impact_renders(story: Any) -> None:
    events, _ = story
    impact = cache_impact(events, ledger(reverted=True))
    assert "warm-up" in str(impact)
    assert "|" in impact.to_markdown()
    assert impact.to_polars().height == len(impact.warmup)
    json.dumps(impact.to_dict(), default=str)


# ------------------------------------------------- one join, linear in events + boundaries


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(-50, 400), max_size=40),
    spans=st.lists(
        st.tuples(st.integers(0, 350), st.one_of(st.none(), st.integers(0, 120))), max_size=12
    ),
    width=st.integers(1, 200),
)
def test_window_join_is_every_event_window_pair(
    times: list[int], spans: list[tuple[int, int | None]], width: int
) -> None:
    """Against a loop over every (event, window) pair, for overlapping, empty and open-ended
    windows and any bucket width (the width only prunes)."""
    from analysis.rollback._windows import Window, window_join

    def at(minute: int) -> datetime:
        return T0 + timedelta(minutes=minute)

    windows = [
        Window(at(s), None if d is None else at(s + d), {"w": i}) for i, (s, d) in enumerate(spans)
    ]
    events = pl.DataFrame(
        {"i": list(range(len(times))), "ts": [at(m) for m in times]},
        schema={"i": pl.Int64, "ts": pl.Datetime("us", "UTC")},
    )
    import narwhals as nw

    got = window_join(
        nw.from_native(events.lazy()), windows, width_us=width * 60_000_000, dtypes={"w": int}
    ).collect()
    pairs = sorted(zip(got["i"].to_list(), got["w"].to_list(), strict=True))
    expected = sorted(
        (i, k)
        for i, m in enumerate(times)
        for k, (s, d) in enumerate(spans)
        if s <= m and (d is None or m < s + d)
    )
    assert pairs == expected


def test_window_join_on_duckdb_matches_polars() -> None:
    import duckdb
    import narwhals as nw

    from analysis.rollback._windows import Window, window_join

    events = pl.DataFrame(
        {"i": list(range(50)), "ts": [T0 + timedelta(minutes=7 * k) for k in range(50)]},
        schema={"i": pl.Int64, "ts": pl.Datetime("us", "UTC")},
    )
    windows = [
        Window(T0 + timedelta(minutes=30 * k), T0 + timedelta(minutes=30 * k + 45), {"w": k})
        for k in range(8)
    ] + [Window(T0 + timedelta(hours=5), None, {"w": 99})]
    lazy = nw.from_native(events.lazy())
    rel = nw.from_native(duckdb.from_arrow(events.to_arrow()))
    out = []
    for frame in (lazy, rel):
        got = window_join(frame, windows, width_us=45 * 60_000_000, dtypes={"w": int}).collect()
        out.append(sorted(zip(got["i"].to_list(), got["w"].to_list(), strict=True)))
    assert out[0] == out[1]
    assert len(out[0]) > 50


def test_minute_cells_match_a_loop_over_the_turns(story: Any) -> None:
    """The per-minute cells around boundaries (overlapping windows included) against a plain
    loop over the generated turns."""
    from analysis.rollback.cache import _minute_cells, prompt_turns

    events, _ = story
    events = events.head(4000)
    frame, names = prompt_turns(load_events(events), ledger(reverted=True), "p")
    boundaries = [T0, T0 + timedelta(minutes=20), T1, T2 - timedelta(minutes=1)]
    before, horizon = 30, 60
    cells = _minute_cells(frame, names, boundaries, before, horizon)
    expected: dict[int, dict[str, dict[int, list[float]]]] = {}
    for row in events.iter_rows(named=True):
        for i, b in enumerate(boundaries):
            if b - timedelta(minutes=before) <= row["ts"] < b + timedelta(minutes=horizon):
                minute = math.floor((row["ts"] - b).total_seconds() / 60)
                cell = expected.setdefault(i, {}).setdefault(row["revision_id"], {})
                acc = cell.setdefault(minute, [0.0, 0.0, 0.0, 0.0])
                acc[0] += 1
                acc[1] += float(row["cache_hit"])
                acc[2] += row["cost_usd"]
                acc[3] += row["latency_ms"]
    assert set(cells) == set(expected)
    for i, revs in expected.items():
        assert set(cells[i]) == set(revs)
        for rev, minutes in revs.items():
            assert set(cells[i][rev]) == set(minutes)
            for minute, acc in minutes.items():
                assert cells[i][rev][minute] == pytest.approx(tuple(acc), rel=1e-12), (i, minute)


def test_predict_never_looks_past_at(story: Any) -> None:
    """An impact built without ``at`` predicts at ``at`` from the events before it only.

    Truth (the generator): r1 served nothing between T1 and T2, so at T2 its cache is cold and
    the only cold start of r1 before T2 is its deploy at T0; the revert's cold start at T2 and
    r1's turns after T2 must not be used.
    """
    events, _ = story
    whole = cache_impact(events, ledger(reverted=True), prompt="p")
    assert whole.at is None
    assert max(whole.last_turn["r1"], whole.last_turn["r2"]) > T2  # the impact holds later turns
    pred = whole.predict("r1", rate_per_minute=60.0, at=T2)
    assert pred.cold is True
    assert T0.isoformat() in pred.basis
    assert T2.isoformat() not in pred.basis
    cut = cache_impact(events, ledger(reverted=True), prompt="p", at=T2)
    assert pred == cut.predict("r1", rate_per_minute=60.0, at=T2)
