"""Event loading: every source kind, the column map, and each validation rule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis import EventsError, load_events

TS = datetime(2026, 11, 2, 10, tzinfo=UTC)


def frame(**over: Any) -> pl.DataFrame:
    data: dict[str, Any] = {
        "event_id": ["a", "b", "c"],
        "ts": [TS, TS, TS],
        "user_id": ["u1", "u2", "u3"],
        "experiment_id": ["exp-17", "exp-17", None],
        "arm": ["control", "treatment", None],
        "helpfulness": [3.0, 4.0, 5.0],
    }
    data.update(over)
    return pl.DataFrame(data)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson"])
def test_files(tmp_path: Path, sample_events: pl.DataFrame, fmt: str) -> None:
    small = sample_events.head(500)
    path = tmp_path / f"events.{fmt}"
    getattr(small, f"write_{fmt}")(path)
    ev = load_events(path)
    assert ev.kind == "file"
    got = ev.frame.collect().to_polars().sort("event_id")
    assert got["event_id"].to_list() == small.sort("event_id")["event_id"].to_list()
    assert got.schema["ts"] == pl.Datetime("us", "UTC")
    assert got["ts"].to_list() == small.sort("event_id")["ts"].to_list()


def test_hive_directory_and_glob(tmp_path: Path, sample_events: pl.DataFrame) -> None:
    small = sample_events.head(1000).with_columns(day=pl.col("ts").dt.date().cast(pl.String))
    root = tmp_path / "export"
    for (day,), part in small.group_by("day"):
        out = root / f"day={day}"
        out.mkdir(parents=True)
        part.drop("day").write_parquet(out / "part-0.parquet")
    ev = load_events(root)
    assert ev.report.n_rows == 1000
    assert "day" in ev.columns  # hive partition column kept
    ev2 = load_events(str(root / "**" / "*.parquet"))
    assert ev2.report.n_rows == 1000


def test_in_memory_kinds(sample_events: pl.DataFrame) -> None:
    import duckdb

    small = sample_events.head(200)
    kinds = {
        "polars": small,
        "polars-lazy": small.lazy(),
        "pandas": small.to_pandas(),
        "pyarrow": small.to_arrow(),
    }
    for kind, obj in kinds.items():
        ev = load_events(obj)
        assert ev.kind == kind
        assert ev.report.n_rows == 200
    con = duckdb.connect()
    rel = con.from_arrow(small.to_arrow())
    ev = load_events(rel)
    assert ev.kind == "duckdb"
    assert ev.report.n_rows == 200


def test_column_map() -> None:
    df = frame().rename({"user_id": "account", "experiment_id": "exp"})
    ev = load_events(df, columns={"user_id": "account", "experiment_id": "exp"})
    assert {"user_id", "experiment_id"} <= set(ev.columns)
    assert ev.report.renamed == {"user_id": "account", "experiment_id": "exp"}
    with pytest.raises(EventsError, match="column map names 'acct' for 'user_id'"):
        load_events(df, columns={"user_id": "acct"})


def test_missing_required_column() -> None:
    with pytest.raises(
        EventsError, match=r"required column\(s\) user_id missing.*--column user_id="
    ):
        load_events(frame().drop("user_id"))


def test_wrong_ts_type() -> None:
    with pytest.raises(EventsError, match="column 'ts' has type Int64; expected a timestamp"):
        load_events(frame(ts=[1, 2, 3]))


def test_unparseable_text_ts() -> None:
    with pytest.raises(
        EventsError, match=r"1 value\(s\) are not ISO-8601 timestamps, e.g. 'yesterday'"
    ):
        load_events(frame(ts=["2026-11-02T10:00:00Z", "yesterday", "2026-11-02T11:00:00Z"]))


def test_text_ts_with_offset_is_parsed() -> None:
    ev = load_events(
        frame(
            ts=["2026-11-02T10:00:00Z", "2026-11-02T11:00:00+01:00", None][:2]
            + ["2026-11-02T12:00:00Z"]
        )
    )
    got = ev.frame.collect()["ts"].to_list()
    assert got[1] == TS
    assert ev.report.timestamps == "parsed from text"


def test_naive_timestamps_read_as_utc_and_reported() -> None:
    naive = frame(ts=[datetime(2026, 11, 2, 10)] * 3)
    ev = load_events(naive)
    assert ev.report.timestamps == "naive, read as UTC"
    assert "naive, read as UTC" in " ".join(ev.report.notes())
    assert ev.frame.collect()["ts"].to_list() == [TS] * 3


def test_other_timezone_converted() -> None:
    paris = frame().with_columns(pl.col("ts").dt.convert_time_zone("Europe/Paris"))
    ev = load_events(paris)
    assert ev.report.timestamps == "converted from Europe/Paris to UTC"
    assert ev.frame.collect()["ts"].to_list() == [TS] * 3


@pytest.mark.parametrize("col", ["user_id", "ts", "event_id"])
def test_null_required_values(col: str) -> None:
    values = frame()[col].to_list()
    values[1] = None
    with pytest.raises(EventsError, match=rf"1 row\(s\) have a null '{col}'"):
        load_events(frame(**{col: values}))


def test_null_unit_example_names_the_event() -> None:
    with pytest.raises(EventsError, match="e.g. event_id 'b'"):
        load_events(frame(user_id=["u1", None, "u3"]))


def test_duplicates_counted_dropped_once_and_reported() -> None:
    df = pl.concat([frame(), frame().head(2)])
    ev = load_events(df)
    assert (ev.report.n_rows, ev.report.n_events, ev.report.n_duplicates) == (5, 3, 2)
    assert ev.report.duplicate_examples == ("a", "b")
    assert ev.frame.collect().shape[0] == 3
    assert "2 duplicate event_id row(s) dropped" in ev.report.notes()[0]


def test_unknown_arm_is_an_error(ledger: Any) -> None:
    df = frame(arm=["control", "treatmnt", None])
    with pytest.raises(EventsError, match=r"experiment 'exp-17' arm 'treatmnt': 1 row\(s\)"):
        load_events(df, ledger=ledger)


def test_unknown_experiment_is_reported(ledger: Any) -> None:
    df = frame(experiment_id=["exp-17", "exp-99", "exp-99"], arm=["control", "x", "y"])
    ev = load_events(df, ledger=ledger)
    assert ev.report.unknown_experiments == {"exp-99": 2}
    assert "2 event(s) tagged with experiment 'exp-99'" in " ".join(ev.report.notes())


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(EventsError, match="no such file or directory"):
        load_events(tmp_path / "nope.parquet")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(EventsError, match="unknown file type .txt"):
        load_events(tmp_path / "x.txt")
    with pytest.raises(EventsError, match="holds no .parquet"):
        load_events(tmp_path)
    with pytest.raises(EventsError, match="cannot read a int"):
        load_events(42)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(EventsError, match="cannot read as parquet"):
        load_events(bad)


# ------------------------------------------------------------------ odd files (exit code 2)

HEADER = "event_id,ts,user_id,experiment_id,arm,helpfulness\n"


def _row(i: int, *extra: str) -> str:
    fields = [f"e{i}", f"2026-11-02T10:{i % 60:02d}:00Z", f"u{i % 5}", "exp-17", "control", "3.5"]
    return ",".join([*fields, *extra]) + "\n"


def _csv(tmp_path: Path, body: str | bytes, name: str = "events.csv") -> Path:
    path = tmp_path / name
    if isinstance(body, str):
        path.write_text(body, encoding="utf-8")
    else:
        path.write_bytes(body)
    return path


@pytest.mark.parametrize(
    ("bad_row", "line", "fields"),
    [
        ("e9,2026-11-02T10:00:00Z,u1,exp-17,control\n", 4, 5),  # short: polars would fill null
        ("e9,2026-11-02T10:00:00Z,u1,exp-17,control,3.5,extra\n", 4, 7),  # long
        ('e9,2026-11-02T10:00:00Z,"u,1",exp-17,control\n', 4, 5),  # quoted separator counted once
    ],
)
def test_ragged_csv_rows_name_the_line(
    tmp_path: Path, bad_row: str, line: int, fields: int
) -> None:
    path = _csv(tmp_path, HEADER + _row(1) + _row(2) + bad_row + _row(3))
    with pytest.raises(
        EventsError, match=rf"line {line} has {fields} field\(s\) but the header has 6"
    ):
        load_events(path)


def test_well_formed_csv_variants_load(tmp_path: Path) -> None:
    rows = "".join(_row(i) for i in range(5))
    quoted = HEADER + rows + 'e9,2026-11-02T10:00:00Z,"u,9",exp-17,control,"3.5"\n'
    multiline = "event_id,ts,user_id,experiment_id,arm,note\n" + (
        'e1,2026-11-02T10:00:00Z,u1,exp-17,control,"two\nlines, one field"\n'
        "e2,2026-11-02T10:00:00Z,u2,exp-17,control,plain\n"
    )
    cases = {
        "quoted.csv": quoted,
        "multiline.csv": multiline,
        "crlf.csv": (HEADER + rows).replace("\n", "\r\n"),
        "bom.csv": "\ufeff" + HEADER + rows,
        "tabs.tsv": (HEADER + rows).replace(",", "\t"),
    }
    expected = {"quoted.csv": 6, "multiline.csv": 2}
    for name, body in cases.items():
        ev = load_events(_csv(tmp_path, body, name))
        assert ev.report.n_rows == expected.get(name, 5), name
    notes = load_events(tmp_path / "multiline.csv").frame.collect()["note"].to_list()
    assert notes == ["two\nlines, one field", "plain"]


def test_ragged_row_after_a_multiline_field(tmp_path: Path) -> None:
    body = "event_id,ts,user_id,experiment_id,arm,note\n" + (
        'e1,2026-11-02T10:00:00Z,u1,exp-17,control,"two\nlines"\n'
        "e2,2026-11-02T10:00:00Z,u2,exp-17\n"
    )
    with pytest.raises(EventsError, match=r"line 4 has 4 field\(s\) but the header has 6"):
        load_events(_csv(tmp_path, body))


@pytest.mark.parametrize("line", [1, 3])
def test_non_utf8_csv_names_the_line(tmp_path: Path, line: int) -> None:
    lines = [HEADER, _row(1), _row(2), _row(3)]
    lines[line - 1] = lines[line - 1].replace("u", "\u00e9", 1)
    path = _csv(tmp_path, "".join(lines).encode("latin-1"))
    with pytest.raises(EventsError, match=rf"{path.name}: line {line} .*is not UTF-8"):
        load_events(path)


def test_csv_value_of_another_type_after_the_inferred_rows(tmp_path: Path) -> None:
    body = HEADER + "".join(_row(i) for i in range(300)) + _row(300).replace("3.5", "high")
    with pytest.raises(EventsError, match=r"cannot read the events: .*high.*helpfulness"):
        load_events(_csv(tmp_path, body))


def test_csv_files_with_different_headers(tmp_path: Path) -> None:
    root = tmp_path / "export"
    root.mkdir()
    _csv(root, HEADER + _row(1), "a.csv")
    swapped = "event_id,user_id,ts,experiment_id,arm,helpfulness\n"
    _csv(root, swapped + "e2,u2,2026-11-02T10:00:00Z,exp-17,control,1\n", "b.csv")
    with pytest.raises(EventsError, match=r"b.csv has the header .* but .*a.csv has"):
        load_events(root)


_FLOAT_VS_TEXT = (
    r"column 'helpfulness' — .*a.parquet has helpfulness: Float64, "
    r".*b.parquet has helpfulness: String"
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (pl.col("helpfulness").cast(pl.String), _FLOAT_VS_TEXT),
        (pl.col("ts").dt.replace_time_zone(None), r"column 'ts' — .*'UTC'.*time_zone=None"),
        (None, r"column 'helpfulness' — .*b.parquet has no such column"),
    ],
)
def test_parquet_files_with_different_schemas(
    tmp_path: Path, sample_events: pl.DataFrame, change: Any, message: str
) -> None:
    root = tmp_path / "export"
    root.mkdir()
    sample_events.head(100).write_parquet(root / "a.parquet")
    tail = sample_events.tail(100)
    tail = tail.drop("helpfulness") if change is None else tail.with_columns(change)
    tail.write_parquet(root / "b.parquet")
    with pytest.raises(EventsError, match=message):
        load_events(root)
    with pytest.raises(EventsError, match="the files disagree"):
        load_events(str(root / "*.parquet"))


def test_glob_of_several_formats(tmp_path: Path) -> None:
    frame().write_parquet(tmp_path / "a.parquet")
    frame().write_csv(tmp_path / "b.csv")
    with pytest.raises(EventsError, match="matches files of several formats"):
        load_events(str(tmp_path / "*"))


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("user_id", [["u1"], ["u2"], ["u3"]]),
        ("user_id", [{"a": 1}, {"a": 2}, {"a": 3}]),
        ("event_id", [b"a", b"b", b"c"]),
    ],
)
def test_id_columns_must_be_scalars(column: str, values: list[Any]) -> None:
    with pytest.raises(EventsError, match=rf"column '{column}' has type .*an id must be text"):
        load_events(frame(**{column: values}))


def test_nan_and_inf_in_metrics_and_float_ids_load(ledger: Any) -> None:
    nan, inf = float("nan"), float("inf")
    ev = load_events(frame(helpfulness=[nan, inf, -inf], user_id=[1.5, nan, 2.5]), ledger=ledger)
    assert ev.report.n_events == 3
