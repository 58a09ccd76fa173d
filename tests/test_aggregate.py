"""One-pass aggregation against brute force on raw arrays, on polars and DuckDB."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import narwhals as nw
import numpy as np
import polars as pl
import pytest

from analysis.metrics import aggregation as agg
from analysis.metrics.definitions import Mean, Proportion, Ratio
from analysis.stats import Moments

METRICS = (
    Ratio("helpfulness", cuped=False),
    Proportion("thumbs_up", cuped=False),
    Mean("cost_usd", cap=(None, 0.05), cuped=False),
    Ratio("cached_tokens", "prompt_tokens", cuped=False),
)
T0 = datetime(2026, 11, 2, tzinfo=UTC)


def _events(seed: int = 3, n: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    units = rng.integers(0, 300, n)
    helpful = rng.normal(3.5, 1, n)
    helpful[rng.random(n) < 0.05] = np.nan
    return pl.DataFrame(
        {
            "user_id": [f"u{u}" for u in units],
            "arm": np.where(units % 4 == 0, "treatment", "control"),
            "phase": (rng.random(n) < 0.4).astype(np.int32) + 1,
            "ts": [T0 + timedelta(minutes=int(m)) for m in rng.integers(-30000, 3000, n)],
            "helpfulness": helpful,
            "thumbs_up": rng.random(n) < 0.1,
            "cost_usd": rng.exponential(0.02, n),
            "prompt_tokens": rng.integers(100, 1000, n),
            "cached_tokens": rng.integers(0, 100, n),
        }
    ).with_columns(pl.col("helpfulness").fill_nan(None))


def _brute(df: pl.DataFrame) -> dict[tuple[Any, ...], dict[int, Moments]]:
    """Per (phase, arm): unit-level variables by Python loops, then Moments.from_arrays."""
    per_unit: dict[tuple[Any, ...], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0] * 7)
    )
    for row in df.iter_rows(named=True):
        v = per_unit[(row["phase"], row["arm"])][row["user_id"]]
        if row["helpfulness"] is not None:
            v[0] += row["helpfulness"]
            v[1] += 1
        v[2] = max(v[2], float(row["thumbs_up"]))
        v[3] += min(row["cost_usd"], 0.05)
        v[4] += row["cached_tokens"]
        v[5] += row["prompt_tokens"]
    out = {}
    for key, units in per_unit.items():
        arr = np.array(list(units.values()))
        out[key] = {
            0: Moments.from_arrays({"y": arr[:, 0], "x": arr[:, 1]}),
            1: Moments.from_arrays({"y": arr[:, 2]}),
            2: Moments.from_arrays({"y": arr[:, 3]}),
            3: Moments.from_arrays({"y": arr[:, 4], "x": arr[:, 5]}),
        }
    return out


@pytest.mark.parametrize("backend", ["polars", "duckdb"])
def test_group_moments_match_brute_force(backend: str) -> None:
    df = _events()
    if backend == "polars":
        frame = nw.from_native(df.lazy())
    else:
        import duckdb

        con = duckdb.connect()
        frame = nw.from_native(con.sql("select * from df"))
    units = agg.unit_level(frame, ["phase", "arm"], "user_id", METRICS)
    moments = agg.group_moments(units, ["phase", "arm"], METRICS)
    (rows,) = agg.collect_all([moments])
    got = agg.read_moments(rows, ["phase", "arm"], METRICS)
    want = _brute(df)
    assert set(got) == set(want)
    for key, per in want.items():
        for i, m in per.items():
            g = got[key][i]
            assert g.n == m.n
            np.testing.assert_allclose(g.sums, m.sums, rtol=1e-9)
            np.testing.assert_allclose(g.cross, m.cross, rtol=1e-9)


def test_pre_exposure_window_sums() -> None:
    df = _events(seed=5)
    metric = (Mean("cost_usd", cuped=True, cuped_days=7),)
    first = (
        df.filter(pl.col("ts") >= T0).group_by("user_id").agg(pl.col("ts").min().alias("first_ts"))
    )
    cov = agg.pre_exposure(
        nw.from_native(df.lazy()), nw.from_native(first.lazy()), "user_id", metric
    )
    assert cov is not None
    got = {r["user_id"]: r["m0_z"] for r in cov.collect().rows(named=True)}
    firsts = dict(first.iter_rows())
    want: dict[str, float] = defaultdict(float)
    for row in df.iter_rows(named=True):
        f = firsts.get(row["user_id"])
        if f is not None and f - timedelta(days=7) <= row["ts"] < f:
            want[row["user_id"]] += row["cost_usd"]
    assert set(got) == set(want)
    for u, v in want.items():
        assert got[u] == pytest.approx(v, rel=1e-9)


def test_moments_are_additive_over_shards() -> None:
    df = _events(seed=9)
    frame = nw.from_native(df.lazy())
    units = agg.unit_level(frame, ["arm"], "user_id", METRICS)
    (whole,) = agg.collect_all([agg.group_moments(units, ["arm"], METRICS)])
    by_phase_units = agg.unit_level(frame, ["phase", "arm"], "user_id", METRICS)
    (parts,) = agg.collect_all([agg.group_moments(by_phase_units, ["phase", "arm"], METRICS)])
    w = agg.read_moments(whole, ["arm"], METRICS)
    p = agg.read_moments(parts, ["phase", "arm"], METRICS)
    # units differ between phases, so the pooled unit count is the sum over phases only when a
    # unit's totals are split; sums of the event-level totals still add up exactly
    for arm in ("control", "treatment"):
        summed = p[(1, arm)][0] + p[(2, arm)][0]
        np.testing.assert_allclose(summed.sums, w[(arm,)][0].sums, rtol=1e-9)


def _with_bad_values(seed: int = 21) -> pl.DataFrame:
    """The events with NaN, ±inf and nulls sprinkled into some metric columns."""
    df = _events(seed=seed)
    rng = np.random.default_rng(seed)
    n = df.height
    cost = df["cost_usd"].to_numpy().copy()
    cost[rng.random(n) < 0.03] = np.nan
    cost[rng.random(n) < 0.01] = np.inf
    prompt = df["prompt_tokens"].to_numpy().astype(float)
    prompt[rng.random(n) < 0.02] = -np.inf
    null_cached = rng.random(n) < 0.02
    return df.with_columns(
        pl.Series("cost_usd", cost),
        pl.Series("prompt_tokens", prompt),
        pl.when(pl.Series(null_cached))
        .then(None)
        .otherwise(pl.col("cached_tokens"))
        .alias("cached_tokens"),
    )


@pytest.mark.parametrize("backend", ["polars", "duckdb"])
def test_non_finite_values_are_left_out_of_their_metric_only(backend: str) -> None:
    """Brute force: an event's NaN/inf/null value drops out of that metric (a ratio's event
    counts only with both parts finite); the other metrics keep the event."""
    df = _with_bad_values()
    frame: Any
    if backend == "polars":
        frame = nw.from_native(df.lazy())
    else:
        import duckdb

        con = duckdb.connect()
        frame = nw.from_native(con.sql("select * from df"))
    units = agg.unit_level(frame, ["arm"], "user_id", METRICS)
    (rows,) = agg.collect_all([agg.group_moments(units, ["arm"], METRICS)])
    got = agg.read_moments(rows, ["arm"], METRICS)
    per_unit: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * 6)
    for row in df.iter_rows(named=True):
        v = per_unit[(row["arm"], row["user_id"])]
        if row["helpfulness"] is not None:
            v[0] += row["helpfulness"]
            v[1] += 1
        v[2] = max(v[2], float(row["thumbs_up"]))
        if row["cost_usd"] is not None and math.isfinite(row["cost_usd"]):
            v[3] += min(row["cost_usd"], 0.05)
        num, den = row["cached_tokens"], row["prompt_tokens"]
        if num is not None and den is not None and math.isfinite(num) and math.isfinite(den):
            v[4] += num
            v[5] += den
    for arm in ("control", "treatment"):
        arr = np.array([v for (a, _), v in per_unit.items() if a == arm])
        np.testing.assert_allclose(got[(arm,)][0].sums, arr[:, :2].sum(axis=0), rtol=1e-9)
        np.testing.assert_allclose(got[(arm,)][2].sums, [arr[:, 3].sum()], rtol=1e-9)
        np.testing.assert_allclose(got[(arm,)][2].cross, [[np.sum(arr[:, 3] ** 2)]], rtol=1e-9)
        np.testing.assert_allclose(got[(arm,)][3].sums, arr[:, 4:6].sum(axis=0), rtol=1e-9)
        assert all(np.isfinite(got[(arm,)][i].cross).all() for i in range(4))
    (counts,) = agg.collect_all([agg.missing_counts(frame, "user_id", METRICS)])
    c = counts[0]
    assert int(c["events"]) == df.height
    assert int(c["units"]) == df["user_id"].n_unique()

    def bad(col: str) -> pl.Expr:
        v = pl.col(col).cast(pl.Float64)
        return v.is_null() | v.is_nan() | v.is_infinite()

    flags = df.select(
        bad("helpfulness").alias("h"),
        bad("cost_usd").alias("c"),
        (bad("cached_tokens") | bad("prompt_tokens")).alias("r"),
        pl.col("user_id"),
    )
    for i, col in ((0, "h"), (2, "c"), (3, "r")):
        assert int(c[f"miss|{i}"]) == int(flags[col].sum())
        assert int(c[f"units|{i}"]) == flags.filter(pl.col(col))["user_id"].n_unique()
    assert int(c["2|nan"]) == int(np.isnan(df["cost_usd"].to_numpy()).sum())
    assert int(c["2|inf"]) == int(np.isinf(df["cost_usd"].to_numpy()).sum())
    assert int(c["3|null"]) == int(df["cached_tokens"].is_null().sum())
    assert int(c["1|nan"]) + int(c["1|inf"]) + int(c["1|null"]) == 0
