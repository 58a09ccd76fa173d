"""Issues 19.7, 19.10e, 20.6 and 20.11: guards of the baseline store.

* a ``--store`` that is not a folder is bad input (exit 2) for every store command;
* ``baseline revert`` onto the same revision, or with a negative ``--ledger-transition``, is exit
  2 with nothing written;
* ``baseline verify`` notices an edit of any metadata field that matters (grader, revision,
  eval-set hash, parent, metric means), naming the version and the field;
* the shipped sample store is read-only, however it is named, and stale-baseline advice never
  names it;
* anchoring a revision the ledger rolled back stores it without making it the reference.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from analysis.cli import main
from analysis.errors import BaselineError
from analysis.evals.store import BaselineStore, SuiteConfig

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "baselines"
EVALS = ROOT / "data_samples" / "evals"
LEDGER = ROOT / "data_samples" / "ledger.yaml"
SUITE_YAML = EVALS / "support-qa.suite.yaml"
R41, R42, R43 = (EVALS / "support-qa" / f"{r}.csv" for r in ("r41", "r42", "r43"))


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    monkeypatch.delenv("PROMPTSTATE_LEDGER", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def copy(here: Path) -> Path:
    """A copy of the sample store (writable: it is not the sample)."""
    dst = here / "store"
    shutil.copytree(SAMPLE, dst)
    return dst


# ---------------------------------------------------------------- 19.7: --store not a folder


def test_a_store_that_is_not_a_folder_is_bad_input_for_every_command(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = here / "suite.yaml"
    shutil.copy(SUITE_YAML, file)
    before = file.read_bytes()
    for store, what in ((file, "is a file, not a folder"), (here / "nope", "does not exist")):
        st = ["--store", str(store)]
        for argv in (
            ["baseline", "list"],
            ["baseline", "list", "--format", "json"],
            ["baseline", "show", "support-qa"],
            ["baseline", "history", "support-qa"],
            ["baseline", "verify"],
            ["baseline", "pin", "support-qa"],
            ["baseline", "unpin", "support-qa"],
            ["baseline", "anchor", "support-qa", "--revision", "r41", "--results", str(R41)],
            ["baseline", "revert", "support-qa", "--reverted", "r42", "--restored", "r41"],
            ["baseline", "sync", "--ledger", str(LEDGER)],
            ["gate", "support-qa", "--candidate", str(R43), "--no-stale-check"],
            ["state", "r42", "--ledger", str(LEDGER)],
        ):
            assert main([*argv, *st]) == 2, (store, argv)
            captured = capsys.readouterr()
            assert captured.out == "", argv
            (line,) = captured.err.splitlines()
            assert str(store) in line, argv
            if argv[0] != "state":
                assert what in line, (argv, line)
        assert not (here / "nope").exists()
    # init creates a missing store, but never writes into a file
    assert main(["baseline", "init", "qa", "--config", str(SUITE_YAML), "--store", str(file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert file.read_bytes() == before
    assert main(["baseline", "init", "qa", "--config", str(SUITE_YAML), "--store", "new"]) == 0
    assert (here / "new" / "qa" / "suite.yaml").is_file()


def test_the_api_refuses_a_store_that_is_not_a_folder(here: Path) -> None:
    (here / "f").write_text("x")
    for root in (here / "f", here / "missing"):
        with pytest.raises(BaselineError, match="not a folder|does not exist"):
            BaselineStore(root).suite_names()
        with pytest.raises(BaselineError, match="not a folder|does not exist"):
            BaselineStore(root).suite("qa")
    with pytest.raises(BaselineError, match="is a file, not a folder"):
        BaselineStore(here / "f").init("qa", SuiteConfig.load(SUITE_YAML))


# ---------------------------------------------------------------- 19.7: revert guards


def test_revert_onto_the_same_revision_or_a_negative_transition_writes_nothing(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = copy / "support-qa"
    journal, pointer = (
        (suite / "journal.jsonl").read_bytes(),
        (suite / "reference.json").read_bytes(),
    )
    before = _digest(copy)
    base = ["baseline", "revert", "support-qa", "--store", str(copy)]
    assert main([*base, "--reverted", "r41", "--restored", "r41"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--reverted and --restored are both 'r41'" in line
    assert main([*base, "--reverted", "r42", "--restored", "r41", "--ledger-transition", "-5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--ledger-transition" in line
    assert ">= 0" in line or "[0, inf]" in line
    assert main([*base, "--reverted", "r42", "--restored", "r41", "--ledger-transition", "x"]) == 2
    capsys.readouterr()
    assert (suite / "journal.jsonl").read_bytes() == journal
    assert (suite / "reference.json").read_bytes() == pointer
    assert _digest(copy) == before
    # the API refuses the same, and a malformed ledger key
    s = BaselineStore(copy).suite("support-qa")
    requests: list[dict[str, Any]] = [
        {"reverted": "r41", "restored": "r41"},
        {"reverted": "r42", "restored": "r41", "ledger_key": "-5:r42"},
        {"reverted": "r42", "restored": "r41", "ledger_key": "3:r41"},
    ]
    for kwargs in requests:
        with pytest.raises(BaselineError, match="nothing was written"):
            s.revert(**kwargs)
    assert _digest(copy) == before
    # a real revert still works
    assert main([*base, "--reverted", "r42", "--restored", "r41", "--ledger-transition", "3"]) == 0
    assert s.reference().revision == "r41"


# ---------------------------------------------------------------- 19.10e: verify covers meta.json


def _edit(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


def _verify(store: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    assert main(["baseline", "verify", "--store", str(store), "--format", "json"]) == 3
    data = json.loads(capsys.readouterr().out)
    return [f for f in data["findings"] if f["kind"] == "invalid"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("grader", "judge-2027-01", "grader 'judge-2027-01', the suite's suite.yaml says"),
        ("parent", None, "parent None, but the reference before journal entry 3"),
        ("summary", {"correct": 0.9, "rubric": 3.85003}, "summary (metric means) disagrees"),
        ("max_samples", 1, "max_samples 1"),
    ],
)
def test_verify_notices_an_edited_field_of_a_shipped_version(
    copy: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any, expected: str
) -> None:
    """The sample's journal predates recorded metadata: verify derives what it can check."""
    assert main(["baseline", "verify", "--store", str(copy)]) == 0
    capsys.readouterr()
    _edit(copy / "support-qa" / "versions" / "v0002" / "meta.json", **{field: value})
    (finding,) = _verify(copy, capsys)
    assert finding["path"].endswith("v0002/meta.json")
    assert finding["problem"].startswith("v0002: ")
    assert expected in finding["problem"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grader", "judge-2027-01"),
        ("revision", "r41"),
        ("eval_set_sha256", "0" * 64),
        ("parent", "v0001"),
        ("summary", {"correct": 0.9, "rubric": 3.6}),
        ("n_examples", 7),
    ],
)
def test_verify_and_every_read_notice_an_edited_field_of_a_new_version(
    copy: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any
) -> None:
    st = ["--store", str(copy)]
    assert main(["baseline", "anchor", "support-qa", "--revision", "r43", "--results",
                 str(R43), *st]) == 0  # fmt: skip
    entry = json.loads((copy / "support-qa" / "journal.jsonl").read_text().splitlines()[-1])
    assert entry["meta"]["grader"] == "judge-2026-10"
    assert entry["meta"]["parent"] == "v0002"
    assert len(entry["meta"]["sha256"]) == 64
    assert main(["baseline", "verify", *st]) == 0
    capsys.readouterr()
    _edit(copy / "support-qa" / "versions" / "v0003" / "meta.json", **{field: value})
    findings = _verify(copy, capsys)
    assert findings, field
    assert all(f["problem"].startswith("v0003: ") for f in findings)
    assert any(f"its metadata says {field} " in f["problem"] for f in findings), findings
    # every read of v0003 refuses it too (invalid stored baseline: 3 from the gate)
    assert main(["gate", "support-qa", "--candidate", str(R43), *st, "--no-stale-check"]) == 3
    assert field in capsys.readouterr().err


def test_verify_notices_an_edit_of_a_field_the_journal_does_not_repeat(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    st = ["--store", str(copy)]
    assert main(["baseline", "anchor", "support-qa", "--revision", "r43", "--results",
                 str(R43), *st]) == 0  # fmt: skip
    meta = copy / "support-qa" / "versions" / "v0003" / "meta.json"
    text = meta.read_text()
    meta.write_text(json.dumps(json.loads(text)))  # layout only: not an edit
    assert main(["baseline", "verify", *st]) == 0
    capsys.readouterr()
    _edit(meta, reason="approved by nobody")
    (finding,) = _verify(copy, capsys)
    assert "v0003: its metadata was edited" in finding["problem"]
    assert "reason" in finding["problem"]


# ---------------------------------------------------------------- 20.6: the sample is read-only


def test_the_sample_store_refuses_writes_even_when_named(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(SAMPLE)
    for store in (SAMPLE, SAMPLE / ".." / "baselines"):
        st = ["--store", str(store)]
        for argv in (
            ["baseline", "pin", "support-qa"],
            ["baseline", "unpin", "support-qa"],
            ["baseline", "sync", "--ledger", str(LEDGER)],
            ["baseline", "anchor", "support-qa", "--revision", "r41", "--results", str(R41)],
            ["baseline", "revert", "support-qa", "--reverted", "r42", "--restored", "r41"],
            ["baseline", "init", "qa9", "--config", str(SUITE_YAML)],
            ["gate", "support-qa", "--candidate", str(R41), "--revision", "r41",
             "--anchor-on-pass", "--no-stale-check"],
        ):  # fmt: skip
            assert main([*argv, *st]) == 2, argv
            (line,) = capsys.readouterr().err.splitlines()
            assert "sample store, which is read-only" in line, argv
            assert "baseline init SUITE --store PATH --config suite.yaml" in line, argv
    # inside it: a suite folder named as the store
    assert main(["baseline", "init", "x", "--config", str(SUITE_YAML), "--store",
                 str(SAMPLE / "support-qa")]) == 2  # fmt: skip
    capsys.readouterr()
    # the API refuses too
    with pytest.raises(BaselineError, match="read-only"):
        BaselineStore(SAMPLE).suite("support-qa").pin()
    # reading still works
    assert main(["baseline", "list", "--store", str(SAMPLE)]) == 0
    assert _digest(SAMPLE) == before


def test_stale_advice_on_the_sample_never_names_the_sample_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    monkeypatch.delenv("PROMPTSTATE_LEDGER", raising=False)
    monkeypatch.chdir(ROOT)
    for extra in ([], ["--store", str(SAMPLE)]):
        argv = ["gate", "support-qa", "--candidate", str(R43), "--revision", "r43", *extra]
        assert main(argv) == 3
        (line,) = capsys.readouterr().err.splitlines()
        assert "rolled back to r41" in line
        assert str(SAMPLE) not in line
        assert "--store PATH" in line
        assert "baseline init SUITE --store PATH" in line
        assert "PROMPTSTATE_STORE" in line
        assert "[tool.promptstate]" in line


def test_stale_advice_on_a_copy_names_the_copy(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["gate", "support-qa", "--candidate", str(R43), "--store", str(copy),
            "--ledger", str(LEDGER)]  # fmt: skip
    assert main(argv) == 3
    line = capsys.readouterr().err
    assert f"--store {copy}" in line
    assert "read-only" not in line


# ---------------------------------------------------------------- 20.11: anchoring a rolled-back revision


def test_anchoring_a_rolled_back_revision_keeps_the_reference(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    st = ["--store", "s"]
    assert main(["baseline", "init", "qa", "--config", str(SUITE_YAML), "--ledger", str(LEDGER),
                 *st]) == 0  # fmt: skip
    assert main(["baseline", "anchor", "qa", "--revision", "r41", "--results", str(R41), *st]) == 0
    assert "it is the reference" in capsys.readouterr().out
    assert main(["baseline", "anchor", "qa", "--revision", "r42", "--results", str(R42), *st]) == 0
    captured = capsys.readouterr()
    assert "anchored r42 as qa v0002" in captured.out
    assert "reference stays v0001 (r42 was rolled back)" in captured.out
    (note,) = [line for line in captured.err.splitlines() if "note:" in line]
    assert note.startswith("promptstate: note: qa: v0002 stored, but the reference stays v0001")
    assert "rolled r42 back to r41" in note
    assert "transition 3" in note
    assert f"promptstate baseline pin qa --version v0002 --store {here / 's'}" in note
    s = BaselineStore(here / "s").suite("qa")
    assert s.reference().version == "v0001"
    last = s.journal()[-1]
    assert (last.action, last.version, last.reference.version) == ("anchor", "v0002", "v0001")
    # the gate grades against r41's baseline
    assert main(["gate", "qa", "--candidate", str(R43), "--revision", "r43", *st]) == 0
    capsys.readouterr()
    # anchoring anyway is explicit: pin it; the gate then refuses it as stale
    assert main(["baseline", "pin", "qa", "--version", "v0002", *st]) == 0
    assert main(["gate", "qa", "--candidate", str(R43), "--revision", "r43", *st]) == 3
    # the API warns
    from analysis.evals.store import ReferenceKeptWarning

    assert main(["baseline", "unpin", "qa", *st]) == 0
    with pytest.warns(ReferenceKeptWarning, match="rolled r42 back to r41"):
        _, ref = s.anchor("r42", R42)
    assert ref.version == "v0002"


def test_anchoring_without_a_ledger_moves_the_reference_as_before(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    st = ["--store", "s"]
    assert main(["baseline", "init", "qa", "--config", str(SUITE_YAML), *st]) == 0
    assert main(["baseline", "anchor", "qa", "--revision", "r42", "--results", str(R42), *st]) == 0
    assert "it is the reference" in capsys.readouterr().out
