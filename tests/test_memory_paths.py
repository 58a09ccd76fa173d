"""The bounded-memory paths of analyze (issue 12): the lean spill, the explain table built from a
per-label × unit table, the per-unit table collected once — against brute force and the plain
lazy plan."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest

from analysis.events.labelling import LABELS, materialized, split
from analysis.metrics import analyze
from analysis.metrics._plan import read_columns
from analysis.metrics.definitions import Mean, Proportion, Ratio
from analysis.metrics.results import EXPLAIN_ORDER

METRICS = [Ratio("helpfulness", cuped=False), Proportion("thumbs_up"), Mean("cost_usd")]


@pytest.fixture(scope="module")
def split_sample(events_path: Path, ledger_path: Path) -> Any:
    return split(events_path, ledger_path)


@pytest.fixture(scope="module")
def labelled(split_sample: Any) -> pl.DataFrame:
    return split_sample.frame.collect().to_native()


def _finite(col: str) -> pl.Expr:
    v = pl.col(col).cast(pl.Float64)
    return pl.when(v.is_finite()).then(v)


def _brute_effect(units: pl.DataFrame, metric: str) -> tuple[float, int, int]:
    """Arm − control of one metric from per-unit totals, by plain numpy."""
    by = {a: units.filter(pl.col("arm") == a) for a in ("control", "treatment")}
    if metric == "helpfulness":
        est = {a: np.mean(u["y"].to_numpy()) / np.mean(u["x"].to_numpy()) for a, u in by.items()}
    else:
        est = {a: float(np.mean(u["y"].to_numpy())) for a, u in by.items()}
    return est["treatment"] - est["control"], by["control"].height, by["treatment"].height


def test_explain_steps_match_brute_force(split_sample: Any, labelled: pl.DataFrame) -> None:
    res = analyze(split_sample, metrics=METRICS, recovery=False, completeness=False)
    tagged = labelled.filter((pl.col("experiment_id") == "exp-17") & pl.col("arm").is_not_null())
    labels = ["clean"]
    checked = 0
    for k in range(len(EXPLAIN_ORDER) + 1):
        if k:
            labels.append(EXPLAIN_ORDER[k - 1])
        ev = tagged.filter(pl.col("contamination").is_in(labels))
        per_unit = {
            "helpfulness": ev.group_by("user_id", "arm").agg(
                _finite("helpfulness").sum().alias("y"),
                _finite("helpfulness").is_not_null().sum().cast(pl.Float64).alias("x"),
            ),
            "thumbs_up": ev.group_by("user_id", "arm").agg(
                (_finite("thumbs_up") > 0).cast(pl.Float64).max().fill_null(0.0).alias("y")
            ),
            "cost_usd": ev.group_by("user_id", "arm").agg(_finite("cost_usd").sum().alias("y")),
        }
        for metric, units in per_unit.items():
            rows = [r for r in res.explain.rows if r.metric == metric and r.step == k]  # type: ignore[attr-defined]
            assert len(rows) == 1, (metric, k)
            want, n_c, n_t = _brute_effect(units, metric)
            assert rows[0].n_control == n_c
            assert rows[0].n_arm == n_t
            assert rows[0].effect == pytest.approx(want, rel=1e-9, abs=1e-12)
            checked += 1
    assert checked == 3 * (len(EXPLAIN_ORDER) + 1)


def _numbers(res: Any) -> dict[str, float]:
    d = res.to_dict()
    out: dict[str, float] = {}
    for table in ("effects", "explain", "recovery", "srm", "exclusions"):
        for i, row in enumerate(d.get(table) or []):
            for k, v in row.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    out[f"{table}[{i}].{k}"] = float(v)
    return out


def test_lean_spill_gives_the_lazy_plans_numbers(split_sample: Any) -> None:
    metrics = [*METRICS[:2], Mean("cost_usd", direction="lower")]
    spilled = _numbers(analyze(split_sample, metrics=metrics))
    plain = _numbers(analyze(split_sample, metrics=metrics, materialize=False))
    assert spilled.keys() == plain.keys()
    assert len(spilled) > 100
    for k, v in plain.items():
        assert (math.isnan(v) and math.isnan(spilled[k])) or spilled[k] == pytest.approx(
            v, rel=1e-9, abs=1e-12
        ), k


def _rows(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    return sorted(frame.rows(), key=repr)


def test_materialized_writes_only_the_read_columns(split_sample: Any) -> None:
    cols = read_columns(METRICS)
    want = [c for c in split_sample.frame.collect_schema().names() if c in cols]
    assert "user_id" not in want
    assert "event_id" not in want
    with materialized(split_sample, columns=cols) as m:
        keyed = m.keyed.collect().to_native()
        frame = m.frame.collect().to_native()
    assert frame.columns == want
    assert set(keyed.columns) == {*want, "__uk", "__ck", "__code"}
    assert keyed.schema["contamination"] == pl.Enum(list(LABELS))
    lazy = split_sample.frame.select(want).collect().to_native()
    assert _rows(frame.with_columns(pl.col("contamination").cast(pl.String))) == _rows(lazy)


def test_materialized_columns_on_duckdb(events_path: Path, ledger_path: Path) -> None:
    con = duckdb.connect()
    res = split(con.read_parquet(str(events_path)), ledger_path)
    cols = read_columns(METRICS)
    with materialized(res, columns=cols) as m:
        got = m.frame.collect().to_polars()
        schema = m.keyed.collect_schema()
    assert set(got.columns) <= set(cols)
    assert str(schema["contamination"]) == "String"  # the Enum is only on the polars spill
    counts = got.group_by("contamination").len().sort("contamination").rows()
    want = res.frame.select("contamination").collect().to_polars().group_by("contamination").len()
    assert counts == want.sort("contamination").rows()


def test_recovery_groups_by_conversation_key_as_by_id(split_sample: Any) -> None:
    from datetime import timedelta

    from analysis.metrics.recovery import after_end_events

    last = split_sample.phases[-1]
    assert last.kind == "after_end"
    kw: dict[str, Any] = {
        "unit": "__uk",
        "end": last.start,
        "after_phase": last.id,
        "exposure_phases": [p.id for p in split_sample.phases if p.kind == "exposure"],
        "rolled_back": ["r42"],
        "bin_width": timedelta(hours=1),
        "has_conversations": True,
        "has_response_revision": True,
    }

    def counts(conversation: str) -> list[tuple[Any, ...]]:
        ev = after_end_events(split_sample.keyed, conversation=conversation, **kw)
        native = ev.select("group", "bin").collect().to_native()
        return sorted(native.group_by("group", "bin").len().rows())

    by_key, by_id = counts("__ck"), counts("conversation_id")
    assert by_key == by_id
    assert {g for g, _, _ in by_key} >= {"exposed_tainted", "exposed_fresh", "exposed"}
