"""Metrics inferred from an export's schema (``analysis.metrics.infer_metrics``): which columns
become which metric, which are left out and why, and that nothing is ever scanned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import narwhals as nw
import polars as pl
import pytest

from analysis.errors import PromptstateError
from analysis.metrics import InferredMetrics, Mean, Proportion, Ratio, infer_metrics
from analysis.metrics._inference import check_metric_columns, reserved_columns

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"

BASE: dict[str, Any] = {
    "event_id": nw.String(),
    "ts": nw.Datetime("us", "UTC"),
    "user_id": nw.String(),
    "experiment_id": nw.String(),
    "arm": nw.String(),
}


def _kinds(inf: InferredMetrics) -> dict[str, str]:
    return {m.column: type(m).__name__ for m in inf.metrics}


def test_booleans_are_per_turn_rates_numbers_are_per_turn_ratios() -> None:
    """Issue 20.9: a boolean is the per-turn rate (like a 0/1 integer), not the share of units
    with any true value, which grows with the turns per unit."""
    schema = {
        **BASE,
        "resolved": nw.Boolean(),
        "score": nw.Float64(),
        "tokens": nw.Int64(),
        "small": nw.UInt8(),
        "f32": nw.Float32(),
        "price": nw.Decimal(),
        "flag01": nw.Int8(),  # an integer 0/1 column is numeric: decided by dtype only
    }
    inf = infer_metrics(schema)
    assert _kinds(inf) == {
        "resolved": "Ratio",
        "score": "Ratio",
        "tokens": "Ratio",
        "small": "Ratio",
        "f32": "Ratio",
        "price": "Ratio",
        "flag01": "Ratio",
    }
    # the export's column order, a per-turn ratio (no denominator), no direction
    assert [m.column for m in inf.metrics] == list(schema)[5:]
    for m in inf.metrics:
        assert m.direction is None
        if isinstance(m, Ratio):
            assert m.den is None
    assert not isinstance(inf.metrics[0], Proportion)
    assert "Ratio('resolved'): per-turn rate, the share of turns with resolved true" in inf.note
    assert "Ratio('flag01'): per-turn mean of flag01" in inf.note
    assert {c for c, _ in inf.left_out} == set(BASE)


@pytest.mark.parametrize(
    "name",
    ["id", "session_id", "account_id", "userId", "requestID", "trace-id", "uuid", "row_uuid",
     "cache_key", "prompt_hash", "Order.Id", "item_ids"],
)  # fmt: skip
def test_id_columns_are_left_out_even_when_numeric(name: str) -> None:
    inf = infer_metrics({**BASE, name: nw.Int64(), "score": nw.Float64()})
    assert _kinds(inf) == {"score": "Ratio"}
    assert (name, "id column") in inf.left_out


@pytest.mark.parametrize("name", ["idle_ms", "valid", "keys_pressed", "paid", "hashes_per_s"])
def test_names_that_merely_contain_id_are_measurements(name: str) -> None:
    assert _kinds(infer_metrics({**BASE, name: nw.Float64()})) == {name: "Ratio"}


def test_what_is_left_out_and_why() -> None:
    schema = {
        **BASE,
        "conversation_id": nw.String(),
        "revision_id": nw.String(),
        "phase": nw.Int32(),
        "served_revision": nw.String(),
        "contamination": nw.String(),
        "__uk": nw.UInt64(),
        "country": nw.String(),
        "cat": nw.Categorical(),
        "when": nw.Datetime(),
        "took": nw.Duration(),
        "tags": nw.List(nw.String()),
        "blob": nw.Binary(),
        "odd": nw.Unknown(),
        "account": nw.Int64(),  # mapped to the unit below
        "customer": nw.Int64(),  # another experiment's unit (ids=)
        "score": nw.Float64(),
    }
    inf = infer_metrics(schema, columns={"conversation_id": "account"}, ids=["customer"])
    reasons = dict(inf.left_out)
    assert _kinds(inf) == {"score": "Ratio"}
    assert reasons["event_id"] == "canonical column"
    assert reasons["conversation_id"] == "canonical column"
    assert reasons["phase"] == reasons["contamination"] == "column of the split"
    assert reasons["served_revision"] == "column of the split"
    assert reasons["__uk"] == "internal column"
    assert reasons["account"] == "mapped to conversation_id"
    assert reasons["customer"] == "unit id"
    assert reasons["when"] == reasons["took"] == "time, not a measurement"
    assert reasons["odd"] == "type unknown to narwhals"
    for col in ("country", "cat", "tags", "blob"):
        assert reasons[col].endswith("not numeric or boolean"), (col, reasons[col])
    assert len(inf.left_out) == len(schema) - 1


def test_the_note_is_one_line_naming_metrics_left_out_columns_and_how_to_choose() -> None:
    inf = infer_metrics({**BASE, "ok": nw.Boolean(), "score": nw.Float64(), "sid": nw.String()})
    assert "\n" not in inf.note
    assert inf.note.startswith("inferred metrics from the export's columns: ")
    assert (
        "Ratio('ok'): per-turn rate, the share of turns with ok true, "
        "Ratio('score'): per-turn mean of score"
    ) in inf.note
    assert "sid (String, not numeric or boolean)" in inf.note
    assert "event_id, ts, user_id, experiment_id, arm (canonical column)" in inf.note
    # issue 20.9: they cannot alert, and how to give directions
    assert "no direction, so no regression can alert on them" in inf.note
    assert "--metrics FILE / metrics=[...]" in inf.note
    assert "`metrics: [{type: ratio, numerator: ok, direction: higher}]`" in inf.note


def test_no_metric_column_is_bad_input_naming_metrics() -> None:
    with pytest.raises(PromptstateError) as info:
        infer_metrics({**BASE, "session_id": nw.Int64(), "country": nw.String()})
    assert info.value.exit_code == 2
    msg = str(info.value)
    assert "--metrics FILE" in msg
    assert "metrics=[...]" in msg
    assert "session_id (id column)" in msg
    assert "country (String" in msg


def test_schema_only_a_frame_whose_scan_would_fail() -> None:
    """Inference reads ``collect_schema()`` only: a lazy frame that raises when collected."""

    def boom(s: pl.Series) -> pl.Series:
        raise RuntimeError("scanned")

    lf = pl.LazyFrame(
        {"event_id": ["a"], "user_id": ["u"], "score": [1.0], "ok": [True]}
    ).with_columns(pl.col("score").map_batches(boom, return_dtype=pl.Float64))
    with pytest.raises(Exception, match="scanned"):
        lf.collect()  # the frame really fails when scanned
    inf = infer_metrics(nw.from_native(lf))
    assert _kinds(inf) == {"score": "Ratio", "ok": "Ratio"}


def test_eager_frames_and_dtype_classes() -> None:
    df = nw.from_native(pl.DataFrame({"user_id": ["u"], "ok": [True], "n": [3]}))
    assert _kinds(infer_metrics(df)) == {"ok": "Ratio", "n": "Ratio"}
    assert "share of turns with ok true" in infer_metrics(df).note
    assert _kinds(infer_metrics({"ok": nw.Boolean, "x": nw.Float64})) == {
        "ok": "Ratio",
        "x": "Ratio",
    }
    with pytest.raises(PromptstateError, match="SplitResult"):
        infer_metrics(["not", "a", "schema"])  # type: ignore[arg-type]


def test_on_a_split_the_unit_key_and_split_columns_are_left_out() -> None:
    from analysis.events import split

    res = split(SAMPLES / "events.parquet", SAMPLES / "ledger.yaml")
    inf = infer_metrics(res)
    schema = res.frame.collect_schema()
    kinds = _kinds(inf)
    # every boolean or numeric column that is no id is a per-turn ratio
    for name, dtype in schema.items():
        if name in kinds:
            assert kinds[name] == "Ratio", (name, dtype)
            rate = f"share of turns with {name} true" in inf.note
            assert rate == (dtype == nw.Boolean), name
    assert {"helpfulness", "thumbs_up", "latency_ms", "cost_usd"} <= set(kinds)
    assert kinds["thumbs_up"] == "Ratio"
    assert kinds["helpfulness"] == "Ratio"
    assert not set(kinds) & {"phase", "served_revision", "contamination", "user_id", "cache_key"}
    assert inf.note.count("\n") == 0


def test_check_metric_columns_names_the_file_metric_and_what_to_do() -> None:
    schema = {**BASE, "score": nw.Float64(), "country": nw.String()}
    check_metric_columns([Ratio("score")], schema, where="m.yaml")  # fine
    with pytest.raises(PromptstateError) as info:
        check_metric_columns([Ratio("score"), Mean("cost_usd")], schema, where="m.yaml")
    msg = str(info.value)
    assert msg.startswith("m.yaml: metric 'cost_usd' reads column(s) cost_usd")
    assert "--metrics FILE" in msg
    assert "it has: event_id" in msg
    with pytest.raises(PromptstateError, match="'country', which holds String"):
        check_metric_columns([Ratio("country")], schema, where="m.yaml")
    with pytest.raises(PromptstateError, match="an id or a column of the split"):
        check_metric_columns(
            [Mean("user_id")], schema, where="m.yaml", reserved=reserved_columns("user_id")
        )


def test_analyze_with_a_missing_metric_column_names_metrics() -> None:
    """The API's message (make_context) tells how to choose metrics too."""
    from analysis.events import split
    from analysis.metrics import analyze

    res = split(SAMPLES / "events.parquet", SAMPLES / "ledger.yaml")
    with pytest.raises(PromptstateError) as info:
        analyze(res, metrics=[Ratio("no_such_column")], explain=False, recovery=False)
    msg = str(info.value)
    assert "no_such_column" in msg
    assert "metrics=[...]" in msg


def test_hive_partition_keys_are_left_out(tmp_path: Path) -> None:
    """``day=1/`` folders become a ``day`` column when read: how the export was written, not a
    measurement."""
    from analysis.events import split
    from analysis.metrics._inference import partition_columns

    events = pl.read_parquet(SAMPLES / "events.parquet")
    root = tmp_path / "export"
    for day, part in enumerate(events.partition_by("arm", include_key=True), start=1):
        folder = root / f"day={day}" / "hour=0"
        folder.mkdir(parents=True)
        part.write_parquet(folder / "part.parquet")
    assert partition_columns(root) == ("day", "hour")
    assert partition_columns(str(root / "**" / "*.parquet")) == ("day", "hour")
    assert partition_columns(root / "day=1" / "hour=0" / "part.parquet") == ()
    assert partition_columns(tmp_path / "missing") == ()
    assert partition_columns(events) == ()
    res = split(root, SAMPLES / "ledger.yaml")
    assert "day" in res.frame.collect_schema()  # read as a column ...
    inf = infer_metrics(res)
    assert ("day", "partition column") in inf.left_out  # ... and left out
    assert ("hour", "partition column") in inf.left_out
    assert "helpfulness" in _kinds(inf)


def test_exclude_names_its_own_reason() -> None:
    inf = infer_metrics({**BASE, "x": nw.Float64(), "y": nw.Int64()}, exclude={"y": "mine"})
    assert _kinds(inf) == {"x": "Ratio"}
    assert ("y", "mine") in inf.left_out
