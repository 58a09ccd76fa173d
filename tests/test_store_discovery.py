"""Issue 11: one way to find the baseline store, the suite's ledger, JUnit on a refusal, --out.

The store: ``--store``, then ``$PROMPTSTATE_STORE``, then ``store`` under ``[tool.promptstate]``
of the nearest ``pyproject.toml``, then ``./baselines``; none → exit 2 naming the four. The
bundled sample store is only written to when named with ``--store``. The gate checks staleness
against the suite's recorded ledger by default; opting out is explicit.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.errors import BaselineError
from analysis.evals import StoreLocation, StoreNotFoundError, locate_store
from analysis.evals._discovery import check_writable, is_sample_store
from analysis.evals.store import BaselineStore, SuiteConfig

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_STORE = ROOT / "baselines"
LEDGER = ROOT / "data_samples" / "ledger.yaml"
EVALS = ROOT / "data_samples" / "evals"
R41, R43 = EVALS / "support-qa" / "r41.csv", EVALS / "support-qa" / "r43.csv"
SUITE_YAML = EVALS / "support-qa.suite.yaml"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, with no store in the environment."""
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    monkeypatch.delenv("PROMPTSTATE_LEDGER", raising=False)
    for folder in (tmp_path, *tmp_path.parents):
        cfg = folder / "pyproject.toml"
        if cfg.is_file() and "[tool.promptstate]" in cfg.read_text(errors="replace"):
            pytest.skip(f"{cfg} configures a store above the test's directory")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _copy_sample(dst: Path) -> Path:
    shutil.copytree(SAMPLE_STORE, dst)
    return dst


# ---------------------------------------------------------------- locate_store: the four rules


def test_each_rule_in_order(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreNotFoundError) as info:
        locate_store()
    msg = str(info.value)
    for way in ("--store", "PROMPTSTATE_STORE", "[tool.promptstate]", "pyproject.toml",
                "./baselines"):  # fmt: skip
        assert way in msg
    assert info.value.exit_code == 2
    assert isinstance(info.value, BaselineError)

    (here / "baselines").mkdir()
    assert locate_store() == StoreLocation(here / "baselines", "./baselines")

    (here / "pyproject.toml").write_text('[tool.promptstate]\nstore = "evals/store"\n')
    assert locate_store() == StoreLocation(
        here / "evals" / "store", f"pyproject.toml ({here / 'pyproject.toml'})"
    )

    monkeypatch.setenv("PROMPTSTATE_STORE", "from-env")
    assert locate_store() == StoreLocation(here / "from-env", "PROMPTSTATE_STORE")

    assert locate_store("flag") == StoreLocation(here / "flag", "--store")
    assert locate_store(Path("/abs/store")) == StoreLocation(Path("/abs/store"), "--store")


def test_the_api_finds_the_store_the_same_way(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analysis.evals.gating import gate

    with pytest.raises(StoreNotFoundError):
        gate("support-qa", R43, stale_check=False)
    store = _copy_sample(here / "s")
    monkeypatch.setenv("PROMPTSTATE_STORE", str(store))
    res = gate("support-qa", R43, stale_check=False)
    assert res.store == str(store)
    assert res.reference.version == "v0002"


def test_cwd_argument_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    deep = tmp_path / "repo" / "src" / "pkg"
    deep.mkdir(parents=True)
    (tmp_path / "repo" / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.promptstate]\nstore = "../team-evals/baselines"\n'
    )
    # a nearer pyproject.toml without [tool.promptstate] does not stop the walk
    (tmp_path / "repo" / "src" / "pyproject.toml").write_text("[tool.ruff]\nline-length = 90\n")
    loc = locate_store(cwd=deep)
    assert loc.path == tmp_path / "repo" / ".." / "team-evals" / "baselines"
    assert loc.source == f"pyproject.toml ({tmp_path / 'repo' / 'pyproject.toml'})"
    assert locate_store("rel", cwd=deep).path == deep / "rel"
    monkeypatch.setenv("PROMPTSTATE_STORE", "env-rel")
    assert locate_store(cwd=deep).path == deep / "env-rel"


def test_promptstate_table_without_store_falls_through_to_baselines(
    here: Path, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.promptstate]\nother = "x"\n')
    with pytest.raises(StoreNotFoundError):
        locate_store()
    (here / "baselines").mkdir()
    assert locate_store().source == "./baselines"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[tool.promptstate\nstore = 1\n", "not valid TOML"),
        ("[tool.promptstate]\nstore = 3\n", "must be a non-empty string"),
        ('[tool.promptstate]\nstore = ""\n', "must be a non-empty string"),
    ],
)
def test_bad_pyproject_is_bad_input_naming_the_file(here: Path, text: str, match: str) -> None:
    (here / "pyproject.toml").write_text(text)
    with pytest.raises(BaselineError, match=match) as info:
        locate_store()
    assert str(here / "pyproject.toml") in str(info.value)
    assert info.value.exit_code == 2


# ---------------------------------------------------------------- the CLI says which store


def test_list_outside_any_store_exits_2_naming_the_four_ways(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", "list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("promptstate: error: no baseline store found")
    assert "--store" in line
    assert "PROMPTSTATE_STORE" in line
    assert "./baselines" in line
    argv = ["gate", "support-qa", "--candidate", str(R43), "--no-stale-check"]
    assert main(argv) == 2
    assert "no baseline store found" in capsys.readouterr().err


def test_every_store_command_names_its_store_and_keeps_json_clean(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    store = _copy_sample(here / "mine")
    monkeypatch.setenv("PROMPTSTATE_STORE", str(store))
    line = f"promptstate: store {store} (from PROMPTSTATE_STORE)\n"
    for argv in (
        ["baseline", "list", "--format", "json"],
        ["baseline", "show", "support-qa", "--format", "json"],
        ["baseline", "history", "support-qa", "--format", "json"],
        ["baseline", "verify", "--format", "json"],
        ["baseline", "sync", "--ledger", str(LEDGER), "--format", "json"],
        ["gate", "support-qa", "--candidate", str(R43), "--format", "json",
         "--ledger", str(LEDGER)],
    ):  # fmt: skip
        assert main(argv) == 0, argv
        captured = capsys.readouterr()
        data = json.loads(captured.out)
        assert next(iter(data)) == "schema_version", argv
        assert data["schema_version"] == 1
        assert captured.err == line, argv
    # ./baselines is used when nothing else names a store
    monkeypatch.delenv("PROMPTSTATE_STORE")
    store.rename(here / "baselines")
    assert main(["baseline", "list"]) == 0
    assert (
        capsys.readouterr().err == f"promptstate: store {here / 'baselines'} (from ./baselines)\n"
    )


# ---------------------------------------------------------------- the sample store is read-only


def test_sample_store_is_recognised(tmp_path: Path) -> None:
    assert is_sample_store(SAMPLE_STORE)
    assert is_sample_store(ROOT / "baselines" / ".." / "baselines")
    assert is_sample_store(SAMPLE_STORE / "support-qa")  # inside it
    assert not is_sample_store(ROOT / "data_samples")
    assert not is_sample_store(_copy_sample(tmp_path / "baselines"))  # a copy is the user's
    for source in ("--store", "./baselines", "PROMPTSTATE_STORE"):  # named or not: refused
        with pytest.raises(BaselineError, match="bundled sample store") as info:
            check_writable(StoreLocation(SAMPLE_STORE, source), "baseline pin")
        assert "baseline init SUITE --store PATH --config suite.yaml" in str(info.value)
        assert info.value.exit_code == 2


def test_writes_to_the_sample_store_found_implicitly_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run in the checkout (``./baselines`` is the sample): reads work, writes exit 2."""
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    monkeypatch.delenv("PROMPTSTATE_LEDGER", raising=False)
    monkeypatch.chdir(ROOT)
    before = _digest(SAMPLE_STORE)
    assert main(["baseline", "list"]) == 0
    capsys.readouterr()
    for argv in (
        ["baseline", "pin", "support-qa"],
        ["baseline", "unpin", "support-qa"],
        ["baseline", "sync", "--ledger", str(LEDGER)],
        ["baseline", "anchor", "support-qa", "--revision", "r41", "--results", str(R41)],
        ["baseline", "init", "qa9", "--config", str(SUITE_YAML)],
        ["gate", "support-qa", "--candidate", str(R41), "--revision", "r41",
         "--anchor-on-pass", "--no-stale-check"],
    ):  # fmt: skip
        assert main(argv) == 2, argv
        (line,) = capsys.readouterr().err.splitlines()
        assert "bundled sample store, which is read-only" in line, argv
        assert "baseline init SUITE --store PATH --config suite.yaml" in line, argv
    monkeypatch.setenv("PROMPTSTATE_STORE", str(SAMPLE_STORE))
    assert main(["baseline", "pin", "support-qa"]) == 2
    assert _digest(SAMPLE_STORE) == before


def test_the_sample_demo_checks_staleness_with_its_recorded_ledger(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    monkeypatch.delenv("PROMPTSTATE_LEDGER", raising=False)
    monkeypatch.chdir(ROOT)
    assert SuiteConfig.load(SAMPLE_STORE / "support-qa" / "suite.yaml").ledger == (
        "../data_samples/ledger.yaml"
    )
    assert main(["gate", "support-qa", "--candidate", str(R43), "--revision", "r43"]) == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert "rolled back to r41" in line
    assert f"--ledger {LEDGER}" in line  # the recorded ledger, resolved


def test_sample_store_falls_back_to_the_sample_ledger_when_the_path_does_not_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a wheel the sample store and ledger are not where the checkout has them."""
    from analysis.evals import _discovery
    from analysis.evals.gating import gate

    copy = _copy_sample(tmp_path / "_sample_baselines")
    with pytest.raises(BaselineError, match="does not exist") as info:
        gate("support-qa", R43, store=copy)
    assert "--no-stale-check" in str(info.value)
    assert "suite.yaml" in str(info.value)
    monkeypatch.setattr(_discovery, "is_sample_store", lambda path: Path(path) == copy)
    with pytest.raises(BaselineError, match="rolled back to r41"):
        gate("support-qa", R43, store=copy)


# ---------------------------------------------------------------- the suite knows its ledger


def test_init_records_the_ledger_and_the_gate_uses_it(
    here: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = here / "store"
    st = ["--store", str(store)]
    # no ledger recorded, none given, no opt-out: exit 2 naming both ways
    assert main(["baseline", "init", "qa", "--config", str(SUITE_YAML), *st]) == 0
    assert main(["baseline", "anchor", "qa", "--revision", "r41", "--results", str(R41), *st]) == 0
    capsys.readouterr()
    gate = ["gate", "qa", "--candidate", str(R43), "--revision", "r43", *st]
    assert main(gate) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--ledger" in line
    assert "--no-stale-check" in line
    assert "ledger: PATH" in line
    assert main([*gate, "--no-stale-check"]) == 0
    assert "check ledger: skipped — stale-baseline check turned off" in capsys.readouterr().out
    assert main([*gate, "--ledger", str(LEDGER)]) == 0
    monkeypatch.setenv("PROMPTSTATE_LEDGER", str(LEDGER))  # CI-wide: used, and the opt-out wins
    assert main(gate) == 0
    assert "check ledger: ok" in capsys.readouterr().out
    assert main([*gate, "--no-stale-check"]) == 0
    assert "check ledger: skipped" in capsys.readouterr().out
    monkeypatch.delenv("PROMPTSTATE_LEDGER")
    # init --ledger records it relative to the store
    assert main(["baseline", "init", "qa2", "--config", str(SUITE_YAML), "--ledger",
                 str(LEDGER), *st]) == 0  # fmt: skip
    recorded = SuiteConfig.load(store / "qa2" / "suite.yaml").ledger
    assert recorded is not None
    assert not Path(recorded).is_absolute()
    assert (store / recorded).resolve() == LEDGER.resolve()
    assert main(["baseline", "anchor", "qa2", "--revision", "r41", "--results", str(R41),
                 *st]) == 0  # fmt: skip
    capsys.readouterr()
    gate2 = ["gate", "qa2", "--candidate", str(R43), "--revision", "r43", *st]
    assert main(gate2) == 0
    out = capsys.readouterr().out
    assert "check ledger: ok" in out
    assert "ledger recorded in" in out
    # the recorded ledger says r41 is live: anchoring r43 by hand makes the reference stale
    assert main(["baseline", "anchor", "qa2", "--revision", "r43", "--results", str(R43),
                 *st]) == 0  # fmt: skip
    assert main(gate2) == 3
    assert "live revision of support-assistant" in capsys.readouterr().err


def test_init_takes_the_configs_ledger_relative_to_the_config(here: Path) -> None:
    (here / "cfg").mkdir()
    shutil.copy(LEDGER, here / "cfg" / "ledger.yaml")
    cfg = here / "cfg" / "suite.yaml"
    cfg.write_text(SUITE_YAML.read_text() + "ledger: ledger.yaml\n")
    assert main(["baseline", "init", "qa", "--config", str(cfg), "--store", "s"]) == 0
    assert SuiteConfig.load(here / "s" / "qa" / "suite.yaml").ledger == "../cfg/ledger.yaml"
    # a ledger that does not exist is refused, nothing is created
    cfg.write_text(SUITE_YAML.read_text() + "ledger: nope.yaml\n")
    assert main(["baseline", "init", "qb", "--config", str(cfg), "--store", "s"]) == 2
    assert not (here / "s" / "qb").exists()
    assert main(["baseline", "init", "qc", "--config", str(SUITE_YAML), "--ledger",
                 "missing.yaml", "--store", "s"]) == 2  # fmt: skip
    assert not (here / "s" / "qc").exists()


def test_ledger_in_a_suite_config_is_validated() -> None:
    with pytest.raises(BaselineError, match="ledger must be a non-empty string"):
        SuiteConfig.from_mapping(
            {"prompt": "p", "grader": "g", "metrics": {"m": {"margin": 0.1}}, "ledger": 3}
        )
    cfg = SuiteConfig.from_mapping(
        {"prompt": "p", "grader": "g", "metrics": {"m": {"margin": 0.1}}, "ledger": "l.yaml"}
    )
    assert cfg.to_mapping()["ledger"] == "l.yaml"
    assert "ledger l.yaml" in cfg._repr_html_()


# ---------------------------------------------------------------- JUnit on a refusal


def test_stale_refusal_writes_a_junit_error_with_the_command_to_run(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _copy_sample(here / "my store")  # a space: the command must quote it
    report = here / "reports" / "gate.xml"
    report.parent.mkdir()
    argv = ["gate", "support-qa", "--candidate", str(R43), "--revision", "r43", "--store",
            str(store), "--ledger", str(LEDGER), "--format", "junit", "--out", str(report)]  # fmt: skip
    assert main(argv) == 3
    (line,) = capsys.readouterr().err.splitlines()  # still one error line
    suite = ET.parse(report).getroot()
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("1", "1", "0")
    (case,) = suite.iter("testcase")
    (error,) = case.iter("error")
    assert error.get("type") == "StaleBaseline"
    message = error.get("message") or ""
    assert "reference v0002 is anchored to r42" in message
    assert "rolled back to r41" in message
    assert message in line
    command = (error.text or "").split("Run:\n", 1)[1].strip()
    assert command == (
        f"promptstate baseline sync support-qa --ledger {LEDGER} --store {shlex.quote(str(store))}"
    )
    assert sorted(p.name for p in report.parent.iterdir()) == ["gate.xml"]  # no temp files
    # the command runs as written, and then the gate grades (and overwrites the report)
    assert main(shlex.split(command)[1:]) == 0
    assert main(argv) == 0
    suite = ET.parse(report).getroot()
    assert (suite.get("tests"), suite.get("errors")) == ("2", "0")


def test_invalid_baseline_refusal_writes_junit_to_stdout_and_the_hidden_output_alias(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _copy_sample(here / "s")
    BaselineStore(store).sync(__import__("analysis").load_ledger(LEDGER))
    scores = store / "support-qa" / "versions" / "v0001" / "scores.parquet"
    scores.write_bytes(scores.read_bytes()[:-20] + b"\0" * 20)
    argv = ["gate", "support-qa", "--candidate", str(R43), "--store", str(store),
            "--ledger", str(LEDGER), "--format", "junit"]  # fmt: skip
    assert main(argv) == 3
    captured = capsys.readouterr()
    suite = ET.fromstring(captured.out)
    (error,) = suite.iter("error")
    assert error.get("type") == "InvalidBaseline"
    assert f"promptstate baseline verify support-qa --store {store}" in (error.text or "")
    out = here / "alias.xml"
    assert main([*argv, "--output", str(out)]) == 3
    assert ET.parse(out).getroot().get("errors") == "1"


def test_no_junit_on_a_refusal_in_other_formats_and_no_output_on_bad_input(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _copy_sample(here / "s")
    out = here / "r.md"
    base = ["gate", "support-qa", "--candidate", str(R43), "--store", str(store),
            "--ledger", str(LEDGER), "--out", str(out)]  # fmt: skip
    assert main([*base, "--format", "markdown"]) == 3
    assert not out.exists()
    assert main([*base, "--format", "junit", "--no-stale-check"]) == 2  # contradiction
    assert not out.exists()


# ---------------------------------------------------------------- help text on every argument


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_argument_of_gate_baseline_and_state_has_help() -> None:
    from analysis.cli._main import build_parser

    commands = _subparsers(build_parser())
    parsers = {"gate": commands["gate"], "state": commands["state"]}
    parsers |= {f"baseline {k}": v for k, v in _subparsers(commands["baseline"]).items()}
    assert len(parsers) == 12
    missing = [
        f"{name} {action.dest}"
        for name, parser in parsers.items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        and not action.help
        and action.option_strings != ["--output"]  # the hidden alias of --out
    ]
    assert missing == []
    (output,) = [a for a in parsers["gate"]._actions if "--output" in a.option_strings]
    assert output.help == argparse.SUPPRESS
    assert output.dest == "out"


def test_sync_without_ledger_uses_each_suites_recorded_ledger(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    shutil.copytree(SAMPLE_STORE, here / "baselines")  # side by side: the recorded path resolves
    shutil.copytree(ROOT / "data_samples", here / "data_samples")
    st = BaselineStore(here / "baselines")
    st.init("bare", SuiteConfig.load(SUITE_YAML))  # records no ledger
    before = _digest(here / "baselines")
    assert main(["baseline", "sync"]) == 2  # every suite: 'bare' has none → nothing changed
    (line,) = capsys.readouterr().err.splitlines()
    assert "bare (records none)" in line
    assert "--ledger" in line
    assert _digest(here / "baselines") == before
    assert main(["baseline", "sync", "support-qa", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(i["suite"], i["status"]) for i in data["items"]] == [("support-qa", "applied")]
    assert st.suite("support-qa").reference().revision == "r41"
    assert main(["baseline", "sync", "support-qa", "--format", "json"]) == 0  # idempotent
    data = json.loads(capsys.readouterr().out)
    assert [i["status"] for i in data["items"]] == ["already"]
