"""A ledger kept by commands only, from nothing: ``ledger init``, ``record`` declaring what it
names, ``record revision``, ``record consumer``, and ``show --ledger``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.ledger import load_ledger
from analysis.ledger.declaring import EMPTY_LEDGER_YAML

R41 = "You are a helpful support assistant.\n"
R42 = "You are a helpful support assistant. Be brief.\n"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with two prompt texts; the working directory."""
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "r41.txt").write_text(R41)
    (tmp_path / "prompts" / "r42.txt").write_text(R42)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------- init


def test_init_creates_a_valid_empty_ledger(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ledger", "init", "ledger.yaml")
    assert (code, err) == (0, "")
    assert "ledger.yaml: created an empty ledger" in out
    assert (work / "ledger.yaml").read_text() == EMPTY_LEDGER_YAML
    ledger = load_ledger(work / "ledger.yaml")
    assert (ledger.prompts, ledger.transitions) == ({}, ())
    assert {p.name for p in work.iterdir()} == {"ledger.yaml", "prompts"}  # no temporary file
    code, out, _ = run(capsys, "ledger", "validate", "ledger.yaml")
    assert code == 0
    assert "0 prompt(s)" in out


def test_init_writes_json_for_a_json_name(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "ledger", "init", "ledger.json")[0] == 0
    data = json.loads((work / "ledger.json").read_text())
    assert data == {"version": 1, "prompts": {}, "experiments": {}, "consumers": {},
                    "transitions": []}  # fmt: skip
    load_ledger(work / "ledger.json")


@pytest.mark.parametrize("content", [b"", b"version: 1\nprompts: {a: {revisions: {r: {}}}}\n"])
def test_init_never_overwrites(
    work: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = work / "ledger.yaml"
    path.write_bytes(content)
    code, out, err = run(capsys, "ledger", "init", "ledger.yaml")
    assert code == 2
    assert out == ""
    assert err.startswith("promptstate: error: ledger.yaml: already exists")
    assert "never overwrites" in err
    assert ("an empty file" in err) == (content == b"")
    assert path.read_bytes() == content


def test_init_refuses_a_missing_folder(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "ledger", "init", "typo/ledger.yaml")
    assert code == 2
    assert "the folder" in err
    assert "does not exist" in err
    assert not (work / "typo").exists()


def test_init_through_a_dangling_link_creates_the_target(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "real").mkdir()
    (work / "ledger.yaml").symlink_to("real/ledger.yaml")
    assert run(capsys, "ledger", "init", "ledger.yaml")[0] == 0
    assert (work / "ledger.yaml").is_symlink()
    assert (work / "real" / "ledger.yaml").read_text() == EMPTY_LEDGER_YAML


def test_record_on_a_missing_ledger_names_init(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ledger", "record", "deploy", "--ledger", "ledgr.yaml", "--prompt", "sa",
            "--revision", "r41", "--text-file", "prompts/r41.txt"]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "ledgr.yaml: cannot record in the ledger: file not found" in err
    assert "promptstate ledger init ledgr.yaml" in err
    assert {p.name for p in work.iterdir()} == {"prompts"}  # no ledger, no lock folder


def test_record_on_an_empty_file_names_init(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "ledger.yaml").write_bytes(b"")
    argv = ["ledger", "record", "deploy", "--ledger", "ledger.yaml", "--prompt", "sa",
            "--revision", "r41", "--text-file", "prompts/r41.txt"]  # fmt: skip
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "ledger.yaml: the ledger is empty" in err
    assert "ledger init" in err
    assert (work / "ledger.yaml").read_bytes() == b""


# ------------------------------------------------------------------- a ledger by commands


def test_a_ledger_kept_by_commands_only(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """From nothing to a rolled-back canary, every header entry declared by a command."""
    led = ["--ledger", "ledger.yaml"]
    steps = [
        ["ledger", "init", "ledger.yaml"],
        ["ledger", "record", "deploy", *led, "--prompt", "support", "--revision", "r41",
         "--text-file", "prompts/r41.txt", "--contract", "v3", "--at", "2026-11-01T00:00:00Z"],
        ["ledger", "record", "consumer", "analytics-etl", *led, "--prompt", "support",
         "--accepts", "v3", "--accepts", "v4"],
        ["ledger", "record", "consumer", "ticket-router", *led, "--prompt", "support",
         "--accepts", "v4"],
        ["ledger", "record", "start", *led, "--experiment", "exp-1", "--arms", "control=r41",
         "treatment=r42", "--revision-text-file", "r42=prompts/r42.txt", "--revision-contract",
         "r42=v4", "--revision-parent", "r42=r41", "--allocation", "control=0.9",
         "treatment=0.1", "--at", "2026-11-02T09:00:00Z"],
        ["ledger", "record", "ramp", *led, "--experiment", "exp-1", "--allocation",
         "control=0.75", "treatment=0.25", "--at", "2026-11-02T21:00:00Z"],
        ["ledger", "record", "rollback", *led, "--experiment", "exp-1", "--at",
         "2026-11-03T08:15:00Z", "--reason", "helpfulness -0.4"],
        ["ledger", "record", "revision", *led, "--prompt", "support", "--revision", "r43",
         "--text", "Be terse.", "--contract", "v4", "--parent", "r41"],
    ]  # fmt: skip
    for argv in steps:
        code, _, err = run(capsys, *argv)
        assert code == 0, (argv, err)
    ledger = load_ledger(work / "ledger.yaml")
    assert list(ledger.prompts) == ["support"]
    assert list(ledger.revisions) == ["r41", "r42", "r43"]
    assert ledger.revisions["r42"].text_file == "prompts/r42.txt"
    assert (ledger.revisions["r42"].contract, ledger.revisions["r42"].parent) == ("v4", "r41")
    assert ledger.revisions["r43"].text == "Be terse."
    assert ledger.experiments["exp-1"].arms == {"control": "r41", "treatment": "r42"}
    assert ledger.consumers["analytics-etl"].accepts == ("v3", "v4")
    assert [t.action for t in ledger.transitions] == ["deploy", "start", "ramp", "rollback"]
    assert ledger.live_revision("support") == "r41"
    code, out, _ = run(capsys, "ledger", "validate", "ledger.yaml")
    assert code == 0
    assert "1 prompt(s), 3 revision(s), 1 experiment(s), 2 consumer(s), 4 transition(s)" in out
    text = (work / "ledger.yaml").read_text()
    assert "prompts: {}" not in text  # the empty sections grew as blocks
    assert "  - {at: 2026-11-01T00:00:00Z, action: deploy" in text


def test_record_revision_outputs_and_idempotence(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ledger", "init", "ledger.json")[0] == 0
    argv = ["ledger", "record", "revision", "--ledger", "ledger.json", "--prompt", "sa",
            "--revision", "r41", "--text-file", "prompts/r41.txt"]  # fmt: skip
    code, out, _ = run(capsys, *argv, "--dry-run")
    assert code == 0
    assert out.startswith("ledger.json: would declare prompts.sa, prompts.sa.revisions.r41")
    assert load_ledger(work / "ledger.json").prompts == {}
    code, out, _ = run(capsys, *argv, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["declared"] == ["prompts.sa", "prompts.sa.revisions.r41"]
    assert (data["index"], data["transition"], data["written"]) == (None, None, True)
    before = (work / "ledger.json").read_bytes()
    code, out, _ = run(capsys, *argv)  # the same again: nothing to write
    assert code == 0
    assert "is declared already, with these fields; nothing to write" in out
    assert (work / "ledger.json").read_bytes() == before
    code, _, err = run(capsys, *argv[:-1], "prompts/r42.txt")  # another text: a new revision
    assert code == 2
    assert "a changed text is a new revision" in err
    assert (work / "ledger.json").read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prompt", "sa", "--accepts", "v3", "--accepts", "v4"],
         "consumers.etl: already declared (prompt 'sa', accepts ['v3']); recording never "
         "changes a declaration"),
        (["--prompt", "other", "--accepts", "v3"], "prompt 'other' is not declared"),
        (["--prompt", "sa"], "needs the consumer's NAME, --prompt and at least one --accepts"),
        (["--prompt", "sa", "--accepts", "v3", "--at", "2026-11-01T00:00:00Z"],
         "--at do(es) not apply to `record consumer`"),
        (["--prompt", "sa", "--accepts", "v3", "--accepts", "v3"], "accepted twice"),
    ],
)  # fmt: skip
def test_consumer_refusals_change_nothing(
    work: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert run(capsys, "ledger", "init", "ledger.yaml")[0] == 0
    led = ["--ledger", "ledger.yaml"]
    rev = ["ledger", "record", "revision", *led, "--prompt", "sa", "--revision", "r1"]
    assert run(capsys, *rev, "--text", "x")[0] == 0
    first = ["ledger", "record", "consumer", "etl", *led, "--prompt", "sa", "--accepts", "v3"]
    assert run(capsys, *first)[0] == 0
    before = (work / "ledger.yaml").read_bytes()
    code, out, err = run(capsys, "ledger", "record", "consumer", "etl", *led, *extra)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1
    assert (work / "ledger.yaml").read_bytes() == before


def test_start_with_an_undeclared_revision_says_how_to_declare_it(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ledger", "init", "ledger.yaml")[0] == 0
    deploy = ["ledger", "record", "deploy", "--ledger", "ledger.yaml", "--prompt", "sa",
              "--revision", "v7", "--text", "x", "--at", "2026-11-01T00:00:00Z"]  # fmt: skip
    assert run(capsys, *deploy)[0] == 0
    before = (work / "ledger.yaml").read_bytes()
    start = ["ledger", "record", "start", "--ledger", "ledger.yaml", "--experiment", "e1",
             "--arms", "control=v7", "treatment=v8", "--allocation", "control=0.5",
             "treatment=0.5"]  # fmt: skip
    code, _, err = run(capsys, *start)
    assert code == 2
    assert "experiments.e1.arms.treatment: revision 'v8' is not declared" in err
    assert "--revision-text-file v8=FILE" in err
    assert "promptstate ledger record revision --prompt sa --revision v8" in err
    assert (work / "ledger.yaml").read_bytes() == before
    code, out, err = run(capsys, *start, "--revision-text", "v8=Be brief.")
    assert code == 0, err
    assert "declaring prompts.sa.revisions.v8, experiments.e1" in out
    assert load_ledger(work / "ledger.yaml").revisions["v8"].text == "Be brief."


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy", "--prompt", "sa", "--revision", "r9"],
         "revision 'r9' is not a revision of prompt 'sa'; declare it under "
         "prompts.sa.revisions first, or let `promptstate ledger record deploy` declare it"),
        (["deploy", "--prompt", "nope", "--revision", "r9"],
         "prompt 'nope' is not defined under prompts; declare it with its first revision"),
        (["start", "--experiment", "e1", "--arms", "a=x1", "b=x2", "--allocation", "a=1"],
         "none of the arms' revisions is declared, so the experiment's prompt is unknown; name "
         "it with --prompt"),
        (["ramp", "--experiment", "e1", "--allocation", "a=1", "--revision-text", "x=y"],
         "revision declarations (--revision-text"),
        (["start", "--experiment", "e1", "--arms", "a=r1", "b=x2", "--allocation", "a=1",
          "--revision-text", "x3=y"], "revision 'x3' is declared but no arm serves it"),
        (["start", "--experiment", "e1", "--arms", "a=r1", "b=x2", "--allocation", "a=1",
          "--revision-text", "x2"], "--revision-text 'x2': expected REV=VALUE"),
        (["revision", "--prompt", "sa"], "`record revision` needs --prompt and --revision"),
        (["revision", "--prompt", "sa", "--revision", "r1", "--contract", "v9"],
         "already declared with contract None, not 'v9'"),
        (["revision", "--prompt", "other", "--revision", "r1"],
         "revision id 'r1' is declared already under prompt 'sa'"),
        (["revision", "--prompt", "sa", "--revision", "../x"], "revision id '../x' is not valid"),
        (["stop", "--experiment", "e1", "--accepts", "v3"], "--accepts do(es) not apply to stop"),
    ],
)  # fmt: skip
def test_declaring_refusals_name_the_entry_and_the_fix(
    work: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(capsys, "ledger", "init", "ledger.yaml")[0] == 0
    rev = ["ledger", "record", "revision", "--ledger", "ledger.yaml", "--prompt", "sa"]
    assert run(capsys, *rev, "--revision", "r1", "--text", "x")[0] == 0
    before = (work / "ledger.yaml").read_bytes()
    code, out, err = run(capsys, "ledger", "record", *argv, "--ledger", "ledger.yaml")
    assert code == 2, err
    assert out == ""
    assert message in err
    assert err.count("\n") == 1
    assert "Input should" not in err
    assert "Dictionary should" not in err
    assert (work / "ledger.yaml").read_bytes() == before


# ---------------------------------------------------------------------------- show --ledger


def test_show_takes_ledger_as_an_option_too(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "ledger", "init", "ledger.yaml")[0] == 0
    rev = ["ledger", "record", "revision", "--ledger", "ledger.yaml", "--prompt", "sa"]
    assert run(capsys, *rev, "--revision", "r1", "--text", "x")[0] == 0
    code, by_option, _ = run(capsys, "ledger", "show", "--ledger", "ledger.yaml", "--format",
                             "json")  # fmt: skip
    assert code == 0
    code, positional, _ = run(capsys, "ledger", "show", "ledger.yaml", "--format", "json")
    assert code == 0
    assert by_option == positional
    assert json.loads(by_option)["ledger"] == "ledger.yaml"
    code, _, err = run(capsys, "ledger", "show", "a.yaml", "--ledger", "ledger.yaml")
    assert code == 2
    assert "two ledgers given" in err


def test_no_lock_file_litters_the_ledgers_folder(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ledger", "init", "ledger.yaml")[0] == 0
    rev = ["ledger", "record", "revision", "--ledger", "ledger.yaml", "--prompt", "sa"]
    assert run(capsys, *rev, "--revision", "r1", "--text", "x")[0] == 0
    assert sorted(os.listdir(work)) == [".promptstate", "ledger.yaml", "prompts"]
    assert os.listdir(work / ".promptstate") == ["ledger.yaml.lock"]


def test_consumer_name_may_follow_the_options(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`record consumer --ledger L NAME` (NAME after an option) declares NAME, as
    `record consumer NAME --ledger L` does; a second stray word is still refused."""
    assert run(capsys, "ledger", "init", "ledger.yaml")[0] == 0
    led = ["--ledger", "ledger.yaml"]
    rev = ["ledger", "record", "revision", *led, "--prompt", "sa", "--revision", "r1"]
    assert run(capsys, *rev, "--text", "x")[0] == 0
    code, out, err = run(
        capsys, "ledger", "record", "consumer", *led, "etl", "--prompt", "sa", "--accepts", "v3"
    )
    assert (code, err) == (0, "")
    assert "declared consumers.etl" in out
    assert "etl:" in (work / "ledger.yaml").read_text(encoding="utf-8")
    before = (work / "ledger.yaml").read_bytes()
    code, out, err = run(
        capsys,
        "ledger",
        "record",
        "consumer",
        *led,
        "etl",
        "x",
        "--prompt",
        "sa",
        "--accepts",
        "v3",
    )
    assert code == 2
    assert out == ""
    assert "unrecognized arguments: etl x" in err
    assert (work / "ledger.yaml").read_bytes() == before
