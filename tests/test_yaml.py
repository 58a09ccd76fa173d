"""The one YAML/JSON loader (analysis._yaml): bounded reads, UTF-8, duplicate keys, one-line
errors with file:line:col, alias bombs; and the inputs that read through it (ledger, metrics
file, suite config, column map) refusing bad files with exit code 2 in the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import _yaml
from analysis.cli import main
from analysis.errors import LedgerError, PromptstateError

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples"


def load_text(tmp_path: Path, text: str | bytes, name: str = "f.yaml") -> Any:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return _yaml.load(path, what="test file", error=LedgerError)


# ------------------------------------------------------------------------------- reading


def test_values_as_written(tmp_path: Path) -> None:
    data = load_text(
        tmp_path,
        "\ufeffat: 2026-11-02T09:00:00Z\nday: 2026-11-02\nn: 3\nx: 0.25\nok: true\nnone: null\n"
        "list: [a, 'b']\n",
    )
    # timestamps stay text (the ledger schema parses them strictly); the BOM is dropped
    assert data == {
        "at": "2026-11-02T09:00:00Z",
        "day": "2026-11-02",
        "n": 3,
        "x": 0.25,
        "ok": True,
        "none": None,
        "list": ["a", "b"],
    }
    # the same document from JSON
    assert load_text(tmp_path, json.dumps(data), name="f.json") == data


def test_reads_like_pyyaml_safe_load_apart_from_timestamps() -> None:
    """The loader is PyYAML's safe loader: same values on a document without timestamps."""
    text = (ROOT / "data_samples" / "metrics.yaml").read_text()
    assert _yaml.parse(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    ("text", "line", "col", "key"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, 1, "a"),
        ("top:\n  x: {k: 1, k: 2}\n", 2, 13, "k"),
        ("- {at: 1, action: deploy}\n- {at: 2, action: ramp, at: 3}\n", 2, 25, "at"),
    ],
)
def test_duplicate_yaml_keys_are_refused_with_their_line(
    tmp_path: Path, text: str, line: int, col: int, key: str
) -> None:
    # PyYAML alone keeps the later value silently
    assert isinstance(yaml.safe_load(text), dict | list)
    with pytest.raises(LedgerError) as err:
        load_text(tmp_path, text)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'f.yaml'}:{line}:{col}: duplicate key {key!r}")
    assert "\n" not in message


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    data = load_text(tmp_path, "base: &b {x: 1, y: 2}\nm: {<<: *b, x: 3}\n")
    assert data["m"] == {"x": 3, "y": 2}


def test_duplicate_json_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    text = '{\n  "a": 1,\n  "b": {"c": 1, "d": {"c": 5},\n        "c": 2}\n}\n'
    assert json.loads(text)["b"]["c"] == 2  # json alone keeps the later value
    with pytest.raises(LedgerError, match=r"f\.json:4:9: duplicate key 'c'"):
        load_text(tmp_path, text, name="f.json")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("version: 1\nprompts: [unclosed\n", ":3:1: not valid YAML: "),
        ("a: 1\n b: 2\n", ":2:3: not valid YAML: "),
        ("a: {x: 1\nb: 2\n", ":2:2: not valid YAML: "),
        ("a: 1\n\x07: 2\n", ":2:1: not valid YAML: unacceptable character #x0007"),
        ("- 1\n--- \n- 2\n", ":2:1: not valid YAML: "),
        ("!!python/object:os.system x\n", ":1:1: not valid YAML: could not determine"),
    ],
)
def test_yaml_syntax_errors_are_one_line_with_file_line_col(
    tmp_path: Path, text: str, where: str
) -> None:
    with pytest.raises(LedgerError) as err:
        load_text(tmp_path, text)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "f.yaml") + where)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1,}', ":1:9: not valid JSON: Expecting property name"),
        ('{"a": NaN}', ": not valid JSON: NaN is not a JSON number"),
        ('{"a": -Infinity}', ": not valid JSON: -Infinity is not a JSON number"),
        ("[" * 100_000, ": not valid JSON: nested too deeply"),
    ],
)
def test_json_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LedgerError) as err:
        load_text(tmp_path, text, name="f.json")
    assert str(err.value).startswith(str(tmp_path / "f.json") + message)


def test_deep_yaml_nesting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="not valid YAML: exceeded maximum nesting depth"):
        load_text(tmp_path, "[" * 100_000)


def test_alias_bombs_and_recursive_aliases_are_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(LedgerError, match="more than 10,000,000 values once its aliases"):
        load_text(tmp_path, "\n".join(lines) + "\n")
    # one level less is 10^8 / 10 values: still refused; two less (10^7 / 100) is fine
    assert load_text(tmp_path, "\n".join(lines[:6]) + "\n")["a5"][0][0][0][0][0] == ["x"] * 10
    with pytest.raises(LedgerError, match="alias refers to itself"):
        load_text(tmp_path, "a: &a [1, *a]\n")
    with pytest.raises(LedgerError, match="alias refers to itself"):
        load_text(tmp_path, "a: &a {k: [*a]}\n")


def test_alias_size_count_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The expanded size is counted exactly (each shared list once per reference)."""
    text = "a: &a [1, 2, 3]\nb: [*a, *a, *a, *a]\n"
    # expanded values: root 1 + a (1 + 3) + b (1 + 4 * 4) = 22
    monkeypatch.setattr(_yaml, "MAX_NODES", 22)
    assert load_text(tmp_path, text)["b"][3] == [1, 2, 3]
    monkeypatch.setattr(_yaml, "MAX_NODES", 21)
    with pytest.raises(LedgerError, match="more than 21 values"):
        load_text(tmp_path, text)


# ---------------------------------------------------------------------------- bad files


def test_missing_directory_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(
        LedgerError, match=r"missing\.yaml: cannot read the test file: file not found$"
    ):
        _yaml.load(tmp_path / "missing.yaml", what="test file", error=LedgerError)
    with pytest.raises(LedgerError, match="cannot read the test file: it is a directory"):
        _yaml.load(tmp_path, what="test file", error=LedgerError)


def test_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 100 + "\n")
    monkeypatch.setattr(_yaml, "MAX_BYTES", 104)
    assert _yaml.load(path)["a"] == "x" * 100  # 104 bytes: at the cap
    monkeypatch.setattr(_yaml, "MAX_BYTES", 103)
    with pytest.raises(PromptstateError, match="larger than 103 bytes"):
        _yaml.load(path)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_is_refused_after_a_bounded_read() -> None:
    with pytest.raises(LedgerError, match="larger than 64 MiB"):
        _yaml.load("/dev/zero", what="ledger", error=LedgerError)


def test_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(LedgerError) as err:
        load_text(tmp_path, b"version: 1\nprompts:\n  caf\xe9: {}\n")
    assert str(err.value) == (
        f"{tmp_path / 'f.yaml'}:3:6: the test file is not UTF-8 text (byte 0xe9); save it as UTF-8"
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_value_or_one_line_error(data: bytes) -> None:
    """Fuzz: arbitrary bytes never raise anything but the caller's error, on one line."""
    for is_json in (False, True):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        message = ""
        try:
            _yaml.parse(text, where="fuzz", is_json=is_json, error=LedgerError)
        except LedgerError as exc:
            message = str(exc)
        assert not message or message.startswith("fuzz")
        assert "\n" not in message


# ------------------------------------------------------------------ the inputs that use it


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "dup.yaml").write_text("a: 1\na: 2\n")
    (tmp_path / "latin1.yaml").write_bytes(b"a: caf\xe9\n")
    (tmp_path / "syntax.yaml").write_text("a: [1\n")
    (tmp_path / "dir").mkdir()
    return {
        "duplicate": tmp_path / "dup.yaml",
        "latin1": tmp_path / "latin1.yaml",
        "syntax": tmp_path / "syntax.yaml",
        "directory": tmp_path / "dir",
        "devzero": Path("/dev/zero"),
    }


@pytest.mark.parametrize("bad", ["duplicate", "latin1", "syntax", "directory", "devzero"])
@pytest.mark.parametrize("option", ["--ledger", "--metrics", "--columns"])
def test_cli_refuses_bad_yaml_inputs_with_exit_2(
    tmp_path: Path, bad: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _bad_inputs(tmp_path)[bad]
    events = str(SAMPLE / "events.parquet")
    ledger = ["--ledger", str(SAMPLE / "ledger.yaml")] if option != "--ledger" else []
    command = "analyze" if option == "--metrics" else "split"
    code = main([command, events, *ledger, option, str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("promptstate: error: ")
    assert err.count("\n") == 1
    assert str(path) in err
    assert "Traceback" not in err


def test_suite_config_uses_the_loader(tmp_path: Path) -> None:
    from analysis.errors import BaselineError
    from analysis.evals.models import SuiteConfig

    src = next((ROOT / "baselines").glob("*/suite.yaml"))
    good = tmp_path / "suite.yaml"
    shutil.copy(src, good)
    assert SuiteConfig.load(good) == SuiteConfig.load(src)
    dup = tmp_path / "dup.yaml"
    dup.write_text(src.read_text() + "grader: another\n")
    with pytest.raises(BaselineError, match=r"dup\.yaml:\d+:1: duplicate key 'grader'"):
        SuiteConfig.load(dup)
