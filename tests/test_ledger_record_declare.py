"""``ledger record deploy --text-file/--text/--contract/--parent``: a new revision declared in the
write as its deploy; an existing one checked against its declaration."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from analysis import _yaml
from analysis.cli import main
from analysis.errors import LedgerError
from analysis.ledger import load_ledger, record_transition

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"  # exp-17 still running
TEXT = "You are a helpful support assistant. Answer in the customer's language.\n"
ROLLBACK = ["ledger", "record", "rollback", "--experiment", "exp-17", "--at", "2026-11-03T08:15Z"]
DEPLOY = ["ledger", "record", "deploy", "--prompt", "support-assistant", "--revision", "r43"]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ledgers/ledger.yaml`` (the sample before its rollback) and ``texts/r43.txt``; the
    working directory is ``tmp_path``."""
    (tmp_path / "ledgers").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "ledgers" / "ledger.yaml").write_bytes(PRE.read_bytes())
    (tmp_path / "texts" / "r43.txt").write_text(TEXT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "ledgers" / "ledger.yaml"


def _kept_in_order(before: str, after: str) -> bool:
    """Every line of ``before`` is in ``after``, in order (only lines were added)."""
    lines = iter(after.splitlines())
    return all(any(line == other for other in lines) for line in before.splitlines())


def test_deploy_declares_a_new_revision(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ROLLBACK, "--ledger", str(tree)]) == 0
    before = tree.read_text()
    argv = [*DEPLOY, "--ledger", str(tree), "--at", "2026-11-04T00:00:00Z"]
    argv += ["--text-file", "texts/r43.txt", "--contract", "v4", "--parent", "r42"]
    assert main(argv) == 0
    assert "declaring prompts.support-assistant.revisions.r43" in capsys.readouterr().out
    after = tree.read_text()
    assert _kept_in_order(before, after)  # comments and every existing line kept
    assert len(after.splitlines()) == len(before.splitlines()) + 2  # a declaration, a deploy
    ledger = load_ledger(tree)  # validates the text hash against the file, too
    r43 = ledger.revisions["r43"]
    assert r43.prompt == "support-assistant"
    assert r43.text_file == "../texts/r43.txt"  # relative to the ledger
    assert r43.text_sha256 == hashlib.sha256(TEXT.encode()).hexdigest()
    assert (r43.contract, r43.parent) == ("v4", "r42")
    assert ledger.live_revision("support-assistant") == "r43"
    raw = _yaml.parse(after)
    assert list(raw["prompts"]["support-assistant"]["revisions"]) == ["r41", "r42", "r43"]
    assert raw["transitions"][-1] == {
        "at": "2026-11-04T00:00:00Z",
        "action": "deploy",
        "prompt": "support-assistant",
        "revision": "r43",
    }
    # deploying it again with the same text: no second declaration, just the transition
    assert main([*DEPLOY, "--ledger", str(tree), "--text-file", "texts/r43.txt", "--format",
                 "json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["declared"] == []
    assert len(tree.read_text().splitlines()) == len(after.splitlines()) + 1


def test_block_style_and_json_ledgers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a2.txt").write_text("second text\n")
    block = tmp_path / "block.yaml"
    block.write_text(
        "# header\nversion: 1\nprompts:\n  p:\n    revisions:\n      a:\n        contract: v1"
        "  # the first\n      # next ones below\n      b:\n        parent: a\n"
        "transitions:\n- at: 2026-01-01T00:00:00Z  # first\n  action: deploy\n  prompt: p\n"
        "  revision: a\n"
    )
    before = block.read_text()
    res = record_transition(
        block,
        "deploy",
        at="2026-01-02T00:00:00Z",
        prompt="p",
        revision="a2",
        text_file="a2.txt",
        contract="yes",
    )
    assert res.declared == ("prompts.p.revisions.a2",)
    after = block.read_text()
    assert _kept_in_order(before, after)
    assert "# the first" in after
    assert "# next ones below" in after
    assert "# first" in after
    declared = _yaml.parse(after)["prompts"]["p"]["revisions"]["a2"]
    assert declared == {
        "text_file": "a2.txt",
        "text_sha256": hashlib.sha256(b"second text\n").hexdigest(),
        "contract": "yes",  # stays text, not the boolean true
    }
    assert load_ledger(block).revisions["a2"].contract == "yes"

    js = tmp_path / "ledger.json"
    js.write_text(json.dumps({"version": 1, "prompts": {"p": {"revisions": {"a": {}}}}}, indent=2))
    record_transition(js, "deploy", at="2026-01-01T00:00:00Z", prompt="p", revision="b", parent="a")
    data = json.loads(js.read_text())
    assert data["prompts"]["p"]["revisions"] == {"a": {}, "b": {"parent": "a"}}
    assert data["transitions"] == [
        {"at": "2026-01-01T00:00:00Z", "action": "deploy", "prompt": "p", "revision": "b"}
    ]


def test_dry_run_declares_nothing(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ROLLBACK, "--ledger", str(tree)]) == 0
    before = tree.read_bytes()
    argv = [*DEPLOY, "--ledger", str(tree), "--text-file", "texts/r43.txt", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "+      r43: {text_file: ../texts/r43.txt, text_sha256: " in out
    assert "+  - {at: " in out
    assert tree.read_bytes() == before


#: (arguments after the rollback, a text the one stderr line must hold)
REFUSED = [
    (
        [
            "ledger",
            "record",
            "ramp",
            "--experiment",
            "exp-17",
            "--allocation",
            "control=1",
            "--contract",
            "v4",
        ],
        "apply to deploy only",
    ),
    ([*DEPLOY, "--text-file", "texts/missing.txt"], "file not found"),
    (
        [
            "ledger",
            "record",
            "deploy",
            "--prompt",
            "nope",
            "--revision",
            "r41",  # declared already, under another prompt: nothing to declare
            "--contract",
            "v3",
        ],
        "prompt 'nope' is not defined",
    ),
    (
        [
            "ledger",
            "record",
            "deploy",
            "--prompt",
            "support-assistant",
            "--revision",
            "r42",
            "--contract",
            "v5",
        ],
        "already declared with contract 'v4', not 'v5'; a changed contract is a new revision",
    ),
    (
        [
            "ledger",
            "record",
            "deploy",
            "--prompt",
            "support-assistant",
            "--revision",
            "r42",
            "--text-file",
            "texts/r43.txt",
        ],
        "a changed text is a new revision",
    ),
    ([*DEPLOY, "--parent", "r7"], "parent 'r7' is not a revision of prompt"),
    ([*DEPLOY, "--parent", "../r7"], "is not a valid id"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED)
def test_refused_declarations_change_nothing(
    argv: list[str], message: str, tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ROLLBACK, "--ledger", str(tree)]) == 0
    capsys.readouterr()
    before = tree.read_bytes()
    assert main([*argv, "--ledger", str(tree)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]
    assert tree.read_bytes() == before


def test_a_declaring_deploy_that_breaks_a_rule_changes_nothing(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree.read_bytes()  # exp-17 still runs: no deploy now
    assert main([*DEPLOY, "--ledger", str(tree), "--text-file", "texts/r43.txt"]) == 2
    assert "still running" in capsys.readouterr().err
    assert tree.read_bytes() == before


# ------------------------------------------------------------------ experiments, at their start

START = ["ledger", "record", "start", "--experiment", "exp-18", "--allocation", "control=0.8",
         "treatment=0.2", "--at", "2026-11-04T00:00:00Z"]  # fmt: skip


def test_start_declares_a_new_experiment(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ROLLBACK, "--ledger", str(tree)]) == 0
    before = tree.read_text()
    argv = [*START, "--ledger", str(tree), "--arms", "control=r41", "treatment=r42"]
    assert main([*argv, "--unit", "account_id", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert out["declared"] == ["experiments.exp-18"]
    after = tree.read_text()
    assert _kept_in_order(before, after)
    assert (
        "  exp-18: {prompt: support-assistant, unit: account_id, arms: {control: r41, "
        "treatment: r42}}\n" in after
    )  # after exp-17, in its flow style
    ledger = load_ledger(tree)
    exp = ledger.experiments["exp-18"]
    assert (exp.prompt, exp.unit, dict(exp.arms), exp.control) == (
        "support-assistant", "account_id", {"control": "r41", "treatment": "r42"}, "control"
    )  # fmt: skip
    assert [p.kind for p in ledger.phases("exp-18")] == ["pre", "exposure"]
    # a declared experiment is rolled back like any other
    assert main([*ROLLBACK[:3], "--experiment", "exp-18", "--ledger", str(tree)]) == 0
    assert load_ledger(tree).phases("exp-18")[-1].served_after_end == "r41"
    capsys.readouterr()


def test_start_refusals_change_nothing(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ROLLBACK, "--ledger", str(tree)]) == 0
    capsys.readouterr()
    before = tree.read_bytes()
    cases = [
        (["--arms", "control=r41", "treatment=r99"], "revision 'r99' is not declared; declare"),
        (["--arms", "control=r99", "treatment=r41"], "revision 'r99' is not declared; declare"),
        (["--arms", "control=r41"], "at least two arms"),
        (["--arms", "control=r41", "control=r42"], "is given twice"),
        (["--arms", "control"], "expected ARM=REVISION"),
        ([], "experiment 'exp-18' is not defined"),
        (["--arms", "a=r41", "b=r42", "--control", "c"], "arm 'c' is not one of its arms"),
    ]
    for extra, message in cases:
        assert main([*START, "--ledger", str(tree), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert message in err[0], (extra, err)
        assert tree.read_bytes() == before
    stop = ["ledger", "record", "stop", "--experiment", "exp-17", "--ledger", str(tree)]
    assert main([*stop, "--arms", "a=r41", "b=r42"]) == 2
    assert "apply to start only" in capsys.readouterr().err
    # exp-17 is declared with other arms: a different design is a new experiment
    start17 = ["ledger", "record", "start", "--experiment", "exp-17", "--ledger", str(tree),
               "--allocation", "control=1", "--arms", "control=r42", "treatment=r41"]  # fmt: skip
    assert main(start17) == 2
    assert "a different design is a new experiment" in capsys.readouterr().err
    assert tree.read_bytes() == before


def test_start_declares_experiments_in_a_json_ledger_without_any(tmp_path: Path) -> None:
    js = tmp_path / "ledger.json"
    header = {"version": 1, "prompts": {"p": {"revisions": {"a": {}, "b": {}}}},
              "transitions": [{"at": "2026-01-01T00:00:00Z", "action": "deploy", "prompt": "p",
                               "revision": "a"}]}  # fmt: skip
    js.write_text(json.dumps(header, indent=2))
    res = record_transition(js, "start", at="2026-01-02T00:00:00Z", experiment="e",
                            allocation={"x": 0.5, "y": 0.5}, arms={"x": "a", "y": "b"},
                            control="y")  # fmt: skip
    assert res.declared == ("experiments.e",)
    data = json.loads(js.read_text())
    assert list(data) == ["version", "prompts", "experiments", "transitions"]
    assert data["experiments"] == {"e": {"prompt": "p", "arms": {"x": "a", "y": "b"},
                                         "control": "y"}}  # fmt: skip
    assert load_ledger(js).experiments["e"].control == "y"


# ------------------------------------------------------------------ an inline text (--text)

MULTILINE = "You are a helpful support assistant.\n  Answer in the customer's language: yes.\n"


def test_deploy_declares_an_inline_text(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ROLLBACK, "--ledger", str(tree)]) == 0
    capsys.readouterr()
    before = tree.read_text()
    argv = [*DEPLOY, "--ledger", str(tree), "--at", "2026-11-04T00:00:00Z", "--text", MULTILINE]
    assert main([*argv, "--contract", "v4", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["schema_version"], out["declared"]) == (
        1, ["prompts.support-assistant.revisions.r43"]
    )  # fmt: skip
    after = tree.read_text()
    assert _kept_in_order(before, after)
    sha = hashlib.sha256(MULTILINE.encode()).hexdigest()
    assert (
        f"      r43:\n        contract: v4\n        text_sha256: {sha}\n        text: |\n"
        "          You are a helpful support assistant.\n"
        "            Answer in the customer's language: yes.\nexperiments:\n"
    ) in after  # a literal block, readable in the file
    declared = _yaml.parse(after)["prompts"]["support-assistant"]["revisions"]["r43"]
    assert declared == {"text": MULTILINE, "text_sha256": sha, "contract": "v4"}
    r43 = load_ledger(tree).revisions["r43"]
    assert (r43.text, r43.text_file) == (MULTILINE, None)
    assert r43.text_sha256 == sha
    # the same text from a file is the same revision: no second declaration
    (tree.parent.parent / "texts" / "same.txt").write_bytes(MULTILINE.encode())
    assert main([*DEPLOY, "--ledger", str(tree), "--text-file", "texts/same.txt"]) == 0
    assert "declaring" not in capsys.readouterr().out
    # a different text is a new revision
    grown = tree.read_bytes()
    assert main([*DEPLOY, "--ledger", str(tree), "--text", MULTILINE.strip()]) == 2
    assert "a changed text is a new revision" in capsys.readouterr().err
    assert tree.read_bytes() == grown


def test_inline_text_refusals_change_nothing(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ROLLBACK, "--ledger", str(tree)]) == 0
    capsys.readouterr()
    before = tree.read_bytes()
    cases = [
        (["--text", "x", "--text-file", "texts/r43.txt"], "not allowed with argument --text"),
        (["--text", ""], "`text` must be non-empty text"),
        (["--text", "\udcff"], "`text` is not UTF-8 text"),  # argv bytes that are not UTF-8
    ]
    for extra, message in cases:
        assert main([*DEPLOY, "--ledger", str(tree), *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
        assert tree.read_bytes() == before
    ramp = ["ledger", "record", "ramp", "--experiment", "exp-17", "--allocation", "control=1"]
    assert main([*ramp, "--ledger", str(tree), "--text", "x"]) == 2
    assert "apply to deploy only" in capsys.readouterr().err
    with pytest.raises(LedgerError, match="`text` and `text_file` are both given") as info:
        record_transition(tree, "deploy", prompt="support-assistant", revision="r43", text="x",
                          text_file="texts/r43.txt")  # fmt: skip
    assert info.value.exit_code == 2
    assert tree.read_bytes() == before
    assert not list(tree.parent.glob(".*.tmp"))


def _layouts(directory: Path) -> list[Path]:
    """The sample after its rollback as block-style YAML, flow-style revisions, and JSON."""
    import yaml

    flow = directory / "flow.yaml"
    flow.write_text(
        PRE.read_text().replace(
            "    revisions:\n      r41: {contract: v3}\n      r42: {parent: r41, contract: v4}\n",
            "    revisions: {r41: {contract: v3}, r42: {parent: r41, contract: v4}}\n",
        )
    )
    data = json.loads(json.dumps(yaml.safe_load(PRE.read_text()), default=str))
    block = directory / "block.yaml"
    block.write_text(yaml.safe_dump(data, default_flow_style=False, sort_keys=False))
    js = directory / "ledger.json"
    js.write_text(json.dumps(data, indent=2))
    paths = [block, flow, js]
    assert "{r41: {contract: v3}" in flow.read_text()
    for path in paths:
        record_transition(path, "rollback", experiment="exp-17", at="2026-11-03T08:15:00Z")
    return paths


def test_any_inline_text_lands_exactly(tmp_path: Path) -> None:
    """Seeded random texts over YAML's and JSON's special characters, declared by the writer in
    one write per layout: the text read back from each written file is the text given (the
    written ``text_sha256``, :mod:`hashlib`'s over its UTF-8, is checked by the loader too)."""
    import random

    from analysis.ledger import declare_and_append

    rng = random.Random(20261128)
    alphabet = list("ab :#-|>'\"\\{}[],&*!%@`?\t\n\r") + [
        "é", "✓", "😀", "\x00", "\x85", "\u2028", "\ufeff", "\x7f", "  ", "\n\n", "yes", "~",
    ]  # fmt: skip
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(60)]
    texts += [":e", "- a\n- b\n", "key: value\n", "null", "0x1F", " lead\ntrail \n", "a\nb"]
    fields = {
        f"t{i}": {
            "text": t,
            "text_sha256": hashlib.sha256(t.encode()).hexdigest(),
            "contract": ":v",
        }
        for i, t in enumerate(texts)
    }
    deploy = {"at": "2026-11-04T00:00:00Z", "action": "deploy", "prompt": "support-assistant",
              "revision": "t0"}  # fmt: skip
    for path in _layouts(tmp_path):
        declare_and_append(path, deploy, revisions={"support-assistant": fields})
        ledger = load_ledger(path)
        for i, text in enumerate(texts):
            rev = ledger.revisions[f"t{i}"]
            assert rev.text == text, (path.name, text)
            assert rev.contract == ":v"
    assert "        text: |-\n          a\n          b\n" in (tmp_path / "block.yaml").read_text()
