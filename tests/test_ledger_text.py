"""A revision's text inline in the ledger (``text``): loading, hashing, refusals, schema.

The reference for every hash is :mod:`hashlib` over the bytes the text is written as (the
UTF-8 encoding of the inline text, the bytes of the file).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from analysis import LedgerError, load_ledger
from analysis.cli import main
from analysis.ledger import parse_ledger

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "ledger.yaml"
ENTRY = "prompts.support-assistant.revisions.r41"
#: Texts that are easy to get wrong: no final newline, several, non-ASCII, CRLF, a tab.
TEXTS = [
    "You are a helpful support assistant.\n",
    "no final newline",
    "two final newlines\n\n",
    "Réponds en français ✓ — 答えてください\n",
    "crlf\r\nline ends\r\n",
    "\tindented first line\n  and a second\n",
]


def _sample() -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = json.loads(json.dumps(yaml.safe_load(SAMPLE.read_text()), default=str))
    return data


def _with_r41(**fields: Any) -> dict[str, Any]:
    data = copy.deepcopy(_sample())
    data["prompts"]["support-assistant"]["revisions"]["r41"].update(fields)
    return data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_existing_ledger_form_still_loads() -> None:
    ledger = load_ledger(SAMPLE)
    assert all(r.text is None for r in ledger.revisions.values())
    assert ledger.revisions["r41"].cache_prefix == "prefix-r41"  # no text, no hash: unchanged


def test_an_inline_text_ledger_loads_from_yaml(tmp_path: Path) -> None:
    text = SAMPLE.read_text().replace(
        "r41: {contract: v3}",
        "r41:\n        contract: v3\n        text: |\n          You are a helpful support "
        "assistant.\n          Answer in the customer's language.\n",
    )
    assert text != SAMPLE.read_text()
    path = tmp_path / "ledger.yaml"
    path.write_text(text)
    r41 = load_ledger(path).revisions["r41"]
    expected = "You are a helpful support assistant.\nAnswer in the customer's language.\n"
    assert r41.text == expected  # a literal block keeps one final newline
    assert r41.text_sha256 == _sha(expected.encode("utf-8"))
    assert r41.cache_prefix == f"prefix-{r41.text_sha256[:12]}"
    assert r41.text_file is None
    assert expected not in repr(r41)  # a long prompt does not flood reprs
    assert main(["ledger", "validate", str(path)]) == 0


@pytest.mark.parametrize("text", TEXTS)
def test_the_hash_is_the_same_inline_and_in_a_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "r41.txt").write_bytes(text.encode("utf-8"))
    in_file = tmp_path / "file.json"
    in_file.write_text(json.dumps(_with_r41(text_file="r41.txt")))
    inline = tmp_path / "inline.json"
    inline.write_text(json.dumps(_with_r41(text=text)))
    by_file, by_text = (load_ledger(p).revisions["r41"] for p in (in_file, inline))
    assert by_text.text_sha256 == by_file.text_sha256 == _sha((tmp_path / "r41.txt").read_bytes())
    assert by_text.cache_prefix == by_file.cache_prefix
    assert by_text.text == text
    # a matching text_sha256 is accepted with the inline text, as with the file
    assert parse_ledger(_with_r41(text=text, text_sha256=by_file.text_sha256)).revisions[
        "r41"
    ].text_sha256 == _sha(text.encode("utf-8"))


def test_the_ledger_round_trips_through_to_dict() -> None:
    text = TEXTS[3]
    ledger = parse_ledger(_with_r41(text=text))
    out = ledger.to_dict()["prompts"]["support-assistant"]["revisions"]["r41"]
    assert out["text"] == text
    assert out["text_sha256"] == _sha(text.encode("utf-8"))
    assert "text_file" not in out
    again = parse_ledger(json.loads(json.dumps(ledger.to_dict())))
    assert again.revisions["r41"] == ledger.revisions["r41"]
    assert again.revisions["r41"].text == text


def test_to_dict_writes_only_a_declared_cache_prefix() -> None:
    """The derived ``prefix-<hash>`` is not written back as if the ledger declared it (a
    later text change must derive a new one); a declared prefix is kept."""
    derived = parse_ledger(_with_r41(text=TEXTS[3]))
    assert derived.revisions["r41"].cache_prefix.startswith("prefix-")
    out = derived.to_dict()["prompts"]["support-assistant"]["revisions"]["r41"]
    assert "cache_prefix" not in out
    declared = parse_ledger(_with_r41(text=TEXTS[3], cache_prefix="support-v41"))
    out = declared.to_dict()["prompts"]["support-assistant"]["revisions"]["r41"]
    assert out["cache_prefix"] == "support-v41"
    assert parse_ledger(declared.to_dict()).revisions["r41"] == declared.revisions["r41"]


@pytest.mark.parametrize(
    ("fields", "entry", "message"),
    [
        ({"text": "x", "text_file": "r41.txt"}, ENTRY,
         "both `text` and `text_file` are given; a revision's text is written inline or in a "
         "file — keep one of them"),
        ({"text": ""}, f"{ENTRY}.text", "the inline text is empty"),
        ({"text": "x", "text_sha256": _sha(b"y")}, f"{ENTRY}.text_sha256",
         f"does not match the hash of the inline text ({_sha(b'x')}); the text changed"),
        ({"text": 5}, f"{ENTRY}.text", "expected text, not the number 5"),
        ({"text": True}, f"{ENTRY}.text", "expected text, not the boolean True"),
        ({"text": ["a"]}, f"{ENTRY}.text", "expected text, not a list ['a']"),
    ],
)  # fmt: skip
def test_refused_inline_texts_are_exit_2_naming_the_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: Any, entry: str, message: str
) -> None:
    (tmp_path / "r41.txt").write_text("x")
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(_with_r41(**fields)))
    with pytest.raises(LedgerError) as info:
        load_ledger(path)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"{path}: {entry}: ")
    assert message in str(info.value)
    assert main(["ledger", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{entry}: " in err[0]


def test_a_null_text_is_no_text(tmp_path: Path) -> None:
    (tmp_path / "r41.txt").write_text("from the file")
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(_with_r41(text=None, text_file="r41.txt")))
    assert load_ledger(path).revisions["r41"].text_sha256 == _sha(b"from the file")


def test_the_json_schema_knows_the_inline_text(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "schemas" / "ledger.schema.json").read_text())
    cases = [
        ({"text": "x"}, True),
        ({"text": "x", "text_sha256": _sha(b"x")}, True),
        ({"text": None, "text_file": "r41.txt"}, True),
        ({"text": "x", "text_file": "r41.txt"}, False),
        ({"text": ""}, False),
        ({"text": 5}, False),
    ]
    (tmp_path / "r41.txt").write_text("x")
    for fields, valid in cases:
        data = _with_r41(**fields)
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
        assert (not errors) is valid, (fields, errors)
        # the schema and the loader agree on every case
        try:
            parse_ledger(data, path=tmp_path / "ledger.json")
            loads = True
        except LedgerError:
            loads = False
        assert loads is valid, fields
