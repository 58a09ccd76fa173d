"""Ledger values are typed strictly, in YAML and JSON, and the JSON Schema says the same: no
boolean or quoted share, no epoch time, no number as text; times with a zone stay valid."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis import _yaml
from analysis.cli import main
from analysis.cli.ledger import schema_text
from analysis.ledger import load_ledger, parse_ledger

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "ledger.yaml"
BASE: dict[str, Any] = _yaml.load(SAMPLE)


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node: Any = data
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return data


def _validate(
    tmp_path: Path, text: str, suffix: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    path = tmp_path / f"ledger{suffix}"
    path.write_text(text, encoding="utf-8")
    capsys.readouterr()
    code = main(["ledger", "validate", str(path)])
    return code, capsys.readouterr().err


#: (YAML text of the value, JSON value, the entry named, words of the message)
REFUSED = [
    ("transitions.1.allocation", "{control: true, treatment: false}",
     {"control": True, "treatment": False}, "transitions[1].allocation.control",
     "expected a number, not the boolean True"),
    ("transitions.1.allocation", "{control: '0.9', treatment: '0.1'}",
     {"control": "0.9", "treatment": "0.1"}, "transitions[1].allocation.control",
     "expected a number, not the text '0.9'; write the number without quotes"),
    ("transitions.1.at", "1793606400", 1793606400, "transitions[1].at",
     "an epoch number is not a time"),
    ("transitions.1.at", "'1793606400'", "1793606400", "transitions[1].at",
     "is not an ISO 8601 time"),
    ("transitions.1.at", "true", True, "transitions[1].at", "not the boolean True"),
    ("transitions.1.reason", "yes", True, "transitions[1].reason",
     "expected text, not the boolean True; quote it"),
    ("transitions.1.experiment", "17", 17, "transitions[1].experiment",
     "expected text, not the number 17"),
    ("version", "true", True, "version", "expected the integer 1"),
    ("version", "1.0", 1.0, "version", "expected the integer 1"),
    ("consumers.ticket-router.accepts", "[4]", [4], "consumers.ticket-router.accepts[0]",
     "expected text, not the number 4"),
    ("experiments.exp-17.unit", "no", False, "experiments.exp-17.unit",
     "expected text, not the boolean False"),
]  # fmt: skip


def _yaml_with(path: str, flow: str) -> str:
    """The sample's YAML with one value replaced by ``flow`` (YAML text)."""
    marker = "__MARKER__"
    text = yaml.safe_dump(_with(path, marker), sort_keys=False, width=1000)
    return text.replace(f"'{marker}'", flow).replace(marker, flow)


@pytest.mark.parametrize(("path", "flow", "value", "entry", "message"), REFUSED)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_loose_types_are_refused_naming_the_entry(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
    path: str,
    flow: str,
    value: Any,
    entry: str,
    message: str,
) -> None:
    text = _yaml_with(path, flow) if suffix == ".yaml" else json.dumps(_with(path, value))
    code, err = _validate(tmp_path, text, suffix, capsys)
    assert code == 2, err
    assert err.startswith(f"promptstate: error: {tmp_path / ('ledger' + suffix)}: {entry}: ")
    assert message in err
    assert err.count("\n") == 1
    assert "Input should" not in err  # the ledger's words, not pydantic's


@pytest.mark.parametrize(
    "at",
    ["2026-11-02T09:00:00Z", "2026-11-02T10:00:00+01:00", "'2026-11-02T09:00:00Z'",
     "2026-11-02T09:00:00.250Z", "2026-11-02 09:00:00Z"],
)  # fmt: skip
def test_times_with_a_zone_stay_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], at: str
) -> None:
    code, err = _validate(tmp_path, _yaml_with("transitions.1.at", at), ".yaml", capsys)
    assert code == 0, err


def test_integer_shares_stay_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _with("transitions.1.allocation", {"control": 1, "treatment": 0})
    code, err = _validate(tmp_path, json.dumps(data), ".json", capsys)
    assert code == 0, err


def test_yaml_loaded_timestamps_are_accepted_by_parse_ledger() -> None:
    """``yaml.safe_load`` turns unquoted timestamps into datetimes: the API accepts them."""
    data = yaml.safe_load(SAMPLE.read_text())
    assert isinstance(data["transitions"][0]["at"], datetime)
    assert parse_ledger(data).transitions == load_ledger(SAMPLE).transitions


def test_the_schema_says_what_the_loader_accepts() -> None:
    schema = json.loads(schema_text())
    defs = schema["$defs"]
    transition = defs["_TransitionIn"]["properties"]
    assert transition["at"] == {"format": "date-time", "title": "At", "type": "string"}
    allocation = transition["allocation"]["anyOf"][0]
    assert allocation["additionalProperties"] == {"type": "number"}
    assert schema["properties"]["version"]["const"] == 1
    assert "minProperties" not in schema["properties"]["prompts"]  # an empty ledger is valid


def test_the_schema_and_the_loader_agree_on_samples() -> None:
    """Values the schema refuses are refused by the loader, and valid ledgers pass both."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(schema_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert not list(validator.iter_errors(BASE))
    checks_times = "date-time" in validator.format_checker.checkers  # needs rfc3339-validator
    for path, _, value, _, _ in REFUSED:
        data = _with(path, value)
        # JSON Schema counts 1.0 as the integer 1; the loader asks for 1 itself
        if (checks_times or not isinstance(value, str)) and not isinstance(value, float):
            assert list(validator.iter_errors(data)), path
        with pytest.raises(Exception, match=r"ledger: "):
            parse_ledger(data)
    empty = {"version": 1, "prompts": {}, "transitions": []}
    assert not list(validator.iter_errors(empty))
    parse_ledger(empty)


def test_an_empty_prompt_names_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "version: 1\nprompts:\n  sa: {revisions: {}}\n"
    code, err = _validate(tmp_path, text, ".yaml", capsys)
    assert code == 2
    assert "prompts.sa.revisions: a prompt holds at least one revision" in err
    assert "ledger record revision" in err
    assert "Dictionary should" not in err
