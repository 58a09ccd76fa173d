"""Fuzzing the ledger's value types through ``promptstate ledger validate``: any value in any
place, in YAML and in JSON, is exit 0 or exit 2 with one line — never a traceback or exit 4 —
and a value of the wrong type is exit 2 naming its entry."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import _yaml
from analysis.cli import main

ROOT = Path(__file__).resolve().parent.parent
BASE: dict[str, Any] = _yaml.load(ROOT / "data_samples" / "ledger.yaml")


def _leaves(node: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*loc, key))]
    if isinstance(node, list):
        return [leaf for i, value in enumerate(node) for leaf in _leaves(value, (*loc, i))]
    return [loc]


LEAVES = _leaves(BASE)


def _get(data: Any, loc: tuple[Any, ...]) -> Any:
    for key in loc:
        data = data[key]
    return data


def _set(data: Any, loc: tuple[Any, ...], value: Any) -> Any:
    data = json.loads(json.dumps(data))
    node = data
    for key in loc[:-1]:
        node = node[key]
    node[loc[-1]] = value
    return data


def _entry(loc: tuple[Any, ...]) -> str:
    """The entry as messages name it: ``transitions[1].allocation.control``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _wrong_type(original: Any, value: Any) -> bool:
    """Whether ``value`` can never stand where ``original`` stands (``None`` may: optional)."""
    if value is None:
        return False
    if isinstance(original, bool) or type(original) is int:  # `version`
        return type(value) is not int
    if isinstance(original, float):  # a share: a number, never a boolean or text
        return isinstance(value, bool) or not isinstance(value, int | float)
    return not isinstance(value, str)  # ids, free text, times: text only


numbers_as_text = st.one_of(
    st.integers(-(10**12), 10**12).map(str), st.floats(0, 1).map(str), st.just("1793606400")
)
scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    numbers_as_text,
    st.sampled_from(["2026-11-02T09:00:00Z", "2026-11-02T09:00:00", "yes", "", "r41", "v3"]),
    st.none(),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), scalars, max_size=3),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(loc=st.sampled_from(LEAVES), value=values, as_json=st.booleans())
def test_fuzz_ledger_types(
    loc: tuple[Any, ...], value: Any, as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _set(BASE, loc, value)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("ledger.json" if as_json else "ledger.yaml")
        if as_json:
            path.write_text(json.dumps(data), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
        capsys.readouterr()
        code = main(["ledger", "validate", str(path)])
        out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith(f"promptstate: error: {path}"), err
        assert err.count("\n") == 1, err
        assert "Input should" not in err
        assert "should have at least" not in err
    else:
        assert err == ""
        assert "valid" in out
    if _wrong_type(_get(BASE, loc), value):
        assert code == 2, (loc, value)
        assert f"{path}: {_entry(loc)}: " in err, (loc, value, err)
