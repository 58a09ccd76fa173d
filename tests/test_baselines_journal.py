"""The journal rules and the repairs of the next writer: nothing committed is ever lost."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import analysis.evals._files as low
from analysis.errors import BaselineError, InvalidBaselineError, ResultsError
from analysis.evals._files import parse_journal, repair_journal
from analysis.evals.store import BaselineStore, RepairWarning, SuiteConfig

ROOT = Path(__file__).resolve().parent.parent
SUITE_YAML = ROOT / "data_samples" / "evals" / "support-qa.suite.yaml"


def frame(value: float, n: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {"example_id": [f"e{i}" for i in range(n)], "correct": [1] * n, "rubric": [value] * n}
    )


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    s = BaselineStore(tmp_path / "store")
    s.init("qa", SuiteConfig.load(SUITE_YAML))
    return s


def repairs_of(call: object, *args: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepairWarning)
        call(*args)  # type: ignore[operator]
    return [str(w.message) for w in caught if issubclass(w.category, RepairWarning)]


# ----------------------------------------------------------------------------- parsing

_RECORD = st.dictionaries(
    st.sampled_from(["seq", "action", "x", "y"]),
    st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.none()),
    max_size=4,
)


@given(records=st.lists(_RECORD, min_size=0, max_size=6), data=st.data())
@settings(max_examples=150, deadline=None)
def test_a_cut_at_any_byte_keeps_exactly_the_complete_lines(
    records: list[dict[str, object]], data: st.DataObject
) -> None:
    """A write cut at byte c (a crash, an editor) commits exactly the lines complete before c.

    Reference: the end offset of each serialized line; a line counts when its closing brace is
    within the prefix (with or without its newline).
    """
    lines = [low.to_json(r, indent=None).encode() for r in records]
    raw = b"".join(line + b"\n" for line in lines)
    cut = data.draw(st.integers(0, len(raw)))
    ends, pos = [], 0
    for line in lines:
        ends.append(pos + len(line))
        pos += len(line) + 1
    expected = [r for r, end in zip(records, ends, strict=True) if end <= cut]
    text = parse_journal(raw[:cut], Path("j"))
    assert list(text.records) == expected
    complete = sum(1 for end in ends if end <= cut)
    boundary = ends[complete - 1] if complete else 0
    assert text.missing_newline == (complete > 0 and cut == boundary)
    torn_start = boundary + 1 if complete and cut > boundary else (0 if not complete else cut)
    assert text.torn == raw[torn_start:cut]
    assert text.committed_bytes == cut - len(text.torn)


def test_a_corrupt_line_before_the_last_is_invalid() -> None:
    with pytest.raises(InvalidBaselineError, match="j: line 2 is not a valid journal entry"):
        parse_journal(b'{"a": 1}\ngarbage\n{"b": 2}\n', Path("j"))
    with pytest.raises(InvalidBaselineError, match="line 1 is not a journal entry"):
        parse_journal(b"[1, 2]\n", Path("j"))
    # blank lines and CRLF endings are harmless
    assert parse_journal(b'{"a": 1}\r\n\n{"b": 2}\n', Path("j")).records == ({"a": 1}, {"b": 2})


# ----------------------------------------------------------------------------- repairs


def test_a_torn_tail_is_quarantined_and_reported(store: BaselineStore) -> None:
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))
    good = s.journal_path.read_bytes()
    with open(s.journal_path, "ab") as fh:
        fh.write(b'{"seq": 3, "act')
    assert len(s.journal()) == 2  # readers ignore the torn tail
    messages = repairs_of(s.pin)
    (quarantined,) = (s.path / "quarantine").iterdir()
    assert quarantined.read_bytes() == b'{"seq": 3, "act'
    assert messages == [
        f"{quarantined}: quarantined (a torn journal append or an uncommitted "
        "version of a writer that died; nothing committed refers to it — "
        "inspect, then delete it)"
    ]
    assert s.journal_path.read_bytes().startswith(good)
    assert [e.action for e in s.journal()] == ["init", "anchor", "pin"]


def test_a_replaced_journal_is_never_truncated_or_extended(
    store: BaselineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal is replaced (git checkout, an editor) between the read and the repair."""
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))
    s.anchor("r2", frame(2.0))
    committed = s.journal_path.read_bytes()
    shorter = committed.split(b"\n")[0] + b"\n"  # what `git checkout` would put back, say
    with open(s.journal_path, "ab") as fh:
        fh.write(b'{"torn')
    real = low.atomic_write_bytes
    calls = []

    def replace_then_write(target: Path, data: bytes) -> None:
        calls.append(target)
        if len(calls) == 1:  # the journal is swapped just before the truncation
            tmp = s.journal_path.with_name("new")
            tmp.write_bytes(shorter)
            os.replace(tmp, s.journal_path)
        real(target, data)

    monkeypatch.setattr(low, "atomic_write_bytes", replace_then_write)
    text, repair = repair_journal(s.journal_path, s.path / "quarantine")
    assert s.journal_path.read_bytes() == shorter  # no NUL bytes, not cut: left as it is
    assert b"\0" not in s.journal_path.read_bytes()
    assert text.records == (json.loads(shorter),)
    assert not repair
    assert list((s.path / "quarantine").iterdir()) == []


def test_a_journal_that_keeps_changing_is_left_alone(
    store: BaselineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store.suite("qa")
    s.journal_path.write_bytes(s.journal_path.read_bytes().rstrip(b"\n"))  # needs a newline
    monkeypatch.setattr(low, "_same_file", lambda *args: False)  # another program writes it
    before = s.journal_path.read_bytes()
    with pytest.raises(BaselineError, match="kept changing.*nothing was changed"):
        repair_journal(s.journal_path, s.path / "quarantine")
    assert s.journal_path.read_bytes() == before


def test_results_without_rows_leave_no_version_directory(
    store: BaselineStore, tmp_path: Path
) -> None:
    s = store.suite("qa")
    empty = tmp_path / "empty.csv"
    empty.write_text("example_id,correct,rubric\n")
    with pytest.raises(ResultsError, match="no rows"):
        s.anchor("r1", empty)
    assert not (s.path / "versions").exists()
    assert len(s.journal()) == 1


def test_a_failed_write_leaves_no_orphan(
    store: BaselineStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))

    def disk_full(self: pl.DataFrame, *args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", disk_full)
    with pytest.raises(OSError, match="No space"):
        s.anchor("r2", frame(2.0))
    assert sorted(p.name for p in (s.path / "versions").iterdir()) == ["v0001"]
    assert [e.action for e in s.journal()] == ["init", "anchor"]


def test_stray_temporary_files_are_removed_by_the_next_writer(store: BaselineStore) -> None:
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))
    strays = [
        s.path / ".reference.json.k3j_9x2a.tmp",
        s.path / "versions" / ".v0002.abcdefgh.tmp",
        s.path / "versions" / "v0001" / ".meta.json.q1w2e3r4.tmp",
    ]
    keep = [s.path / "notes.tmp", s.path / ".lockfile", s.path / "versions" / "v0001" / "x.tmp"]
    for p in [*strays, *keep]:
        p.write_text("x")
    report = store.verify()
    assert {f.path for f in report.findings if f.kind == "note"} == {str(p) for p in strays}
    assert report.exit_code() == 0
    messages = repairs_of(s.anchor, "r2", frame(2.0))
    assert sorted(messages) == sorted(
        f"{p}: removed (leftover of a writer that died)" for p in strays
    )
    assert not any(p.exists() for p in strays)
    assert all(p.exists() for p in keep)


def test_uncommitted_versions_with_metadata_are_quarantined_not_deleted(
    store: BaselineStore,
) -> None:
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))
    src = s.path / "versions" / "v0001"
    for name, with_meta in (("v0002", True), ("v0003", False)):
        d = s.path / "versions" / name
        d.mkdir()
        (d / "scores.parquet").write_bytes((src / "scores.parquet").read_bytes())
        if with_meta:
            (d / "meta.json").write_text((src / "meta.json").read_text())
    (s.path / "versions" / "keep-me").mkdir()  # not a version name: never touched
    notes = {f.path for f in store.verify().findings}
    assert {str(s.path / "versions" / "v0002"), str(s.path / "versions" / "v0003")} <= notes
    messages = repairs_of(s.anchor, "r2", frame(2.0))
    assert len(messages) == 2
    (moved,) = (s.path / "quarantine").iterdir()
    assert moved.name.startswith("v0002-")
    assert (moved / "meta.json").is_file()
    assert sorted(p.name for p in (s.path / "versions").iterdir()) == ["keep-me", "v0001", "v0002"]
    assert s.version("v0002").revision == "r2"  # the new version took the free number


def test_a_version_a_journal_entry_names_is_never_removed(store: BaselineStore) -> None:
    """Even a version only a non-creating entry names (a hand-edited journal) stays."""
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))
    named = s.path / "versions" / "v0007"
    named.mkdir()
    (named / "scores.parquet").write_bytes(b"x")
    with open(s.journal_path, "a") as fh:
        fh.write(
            json.dumps(
                {
                    "seq": 3,
                    "at": "2026-01-01T00:00:00Z",
                    "action": "unpin",
                    "version": "v0007",
                    "reference": {"version": None, "revision": None},
                }
            )
        )  # also no newline
    report = store.verify()
    assert report.exit_code() == 3  # an entry names a version nobody created
    assert any("names v0007, which no earlier entry created" in f.problem for f in report.findings)
    messages = repairs_of(s.anchor, "r2", frame(2.0))
    assert messages == [f"{s.journal_path}: the last journal line lacked its newline; added it"]
    assert named.is_dir()
    assert s.journal()[-1].version == "v0008"  # never reuses a number a journal line names
