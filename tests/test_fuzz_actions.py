"""Fuzzing the actions file: whatever is malformed, ``rollback apply``/``plan`` exits 2.

hypothesis builds actions files that hold valid actions and one malformed thing — an entry
that is not a mapping, a missing or unknown kind, a missing or unknown key, a value of the
wrong type or range for its key (NaN and infinite timeouts, empty ``run`` lists, a ``match``
of only ``*``, headers that are not text, deep nesting), an unknown placeholder or an unset
``${VAR}``, a kind in a leg it does not belong to — or a file that is malformed as a whole (not
a mapping, an unknown leg, a leg that is not a list, a wrong version, broken YAML/JSON, bytes
that are not UTF-8). Each is written as YAML or JSON and run through :func:`analysis.cli.main`
in-process (``rollback apply``, or ``rollback plan``), on a copy of the sample's pre-rollback
ledger. Whatever the input:

* the exit code is 2 — never 4, never a traceback — with one ``promptstate: error:`` line that
  names the actions file and, for a malformed entry, the entry (``contracts[1]``);
* nothing is written: the ledger is untouched, no output directory, no apply journal, nothing
  sent (the valid actions point at a local server that records requests).

The number of examples is bounded (4 per family, 60 in all) so that the module runs in a few
seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _servers import Recorder, http_recorder
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analysis.cli import main
from analysis.rollback._journal import journal_path

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"
LEGS = ("text", "caches", "cohort", "contracts", "any")

SETTINGS = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), _TEXT)
_LIST = st.lists(_SCALAR, max_size=3)
_MAP = st.dictionaries(_TEXT, _SCALAR, max_size=3)
_JUNK = st.one_of(_SCALAR, _LIST, _MAP, _MAP.map(lambda m: {"k": m, "l": [m]}))
_NOT_MAP = st.one_of(_SCALAR, _LIST)
_NOT_LIST = st.one_of(_SCALAR, _MAP)
_NOT_STR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), _LIST, _MAP
)


def _not(*valid: Any) -> st.SearchStrategy[Any]:
    """Junk other than ``valid`` (of the same type)."""
    return _JUNK.filter(lambda v: v not in valid or type(v) is not type(valid[0]))


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


_BAD_TIMEOUT = st.one_of(
    st.sampled_from([0, -1, 3601, 1e9, math.nan, math.inf, -math.inf, True, "10", None]),
    st.floats(max_value=0) | st.floats(min_value=3600.5),
)
_NOT_HTTP = st.one_of(
    _NOT_STR,
    _TEXT.filter(lambda t: not t.startswith(("http://", "https://"))),
    st.sampled_from(["ftp://h/x", "http://", "https:///path", "redis://h:1/0", "${}"]),
)

# ------------------------------------------------------------------------------ strategies


def _good(port: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from(
        [
            {"kind": "command", "run": ["/bin/true"]},
            {"kind": "webhook", "url": f"http://127.0.0.1:{port}/ok", "timeout": 2},
            {"kind": "webhook", "url": f"http://127.0.0.1:{port}/{{prompt}}/{{to}}"},
            {"kind": "command", "run": ["/bin/echo", "{prompt}", "{from}"], "timeout": 5},
        ]
    )


ENTRY_FAMILIES = ("not-mapping", "kind", "missing", "unknown-key", "webhook", "command", "redis",
                  "placeholder", "file", "deep")  # fmt: skip
FILE_FAMILIES = ("not-mapping", "unknown-leg", "leg-not-list", "version", "raw")


@st.composite
def _bad_entry(draw: st.DrawFn, family: str) -> tuple[Any, str]:
    """A malformed entry of ``family`` and what is wrong (for the event statistics)."""
    if family == "not-mapping":
        return draw(_NOT_MAP), family
    if family == "kind":
        kind = draw(
            _NOT_STR | _TEXT.filter(lambda t: t not in ("file", "redis", "webhook", "command"))
        )
        return {"kind": kind, "url": "http://127.0.0.1:9/x"}, family
    if family == "missing":
        return draw(st.sampled_from([{"kind": "webhook"}, {"kind": "command"},
                                     {"kind": "redis", "url": "redis://h/0"}])), family  # fmt: skip
    if family == "unknown-key":
        key = draw(_TEXT.filter(lambda k: k not in ("kind", "run", "timeout")))
        return {"kind": "command", "run": ["/bin/true"], key: draw(_JUNK)}, family
    if family == "webhook":
        entry: dict[str, Any] = {"kind": "webhook", "url": "http://127.0.0.1:9/x"}
        key, value = draw(
            st.one_of(
                st.tuples(st.just("url"), _NOT_HTTP),
                st.tuples(st.just("timeout"), _BAD_TIMEOUT),
                st.tuples(
                    st.just("include_units"),
                    _not("hashed", "plain").filter(lambda v: v is not None),
                ),
                st.tuples(st.just("secret"), st.sampled_from(["", None, 5, [], {}])),
                st.tuples(
                    st.just("headers"),
                    _NOT_MAP | st.dictionaries(_TEXT, _NOT_STR, min_size=1, max_size=2),
                ),
            )
        )
        entry[key] = value
        return entry, f"webhook.{key}"
    if family == "command":
        run = draw(
            st.one_of(
                st.just([]),
                _NOT_LIST,
                st.lists(_NOT_STR, min_size=1, max_size=3)
                .map(lambda xs: ["/bin/true", *xs]),
            )
        )  # fmt: skip
        if draw(st.booleans()):
            return {"kind": "command", "run": ["/bin/true"], "timeout": draw(_BAD_TIMEOUT)}, family
        return {"kind": "command", "run": run}, family
    if family == "redis":
        key, value = draw(
            st.one_of(
                st.tuples(st.just("match"), st.sampled_from(["*", "**", ["a:*", "*"], [], 5, [""]])),
                st.tuples(st.just("batch"), st.sampled_from([0, -1, 100_001, True, 1.5, "500"])),
                st.tuples(st.just("url"), st.sampled_from(["http://h/0", "", "h:6379", 6379])),
            )
        )  # fmt: skip
        entry = {"kind": "redis", "url": "redis://127.0.0.1:9/0", "match": "semcache:{from}:*"}
        entry[key] = value
        return entry, f"redis.{key}"
    if family == "placeholder":
        bad = draw(
            st.sampled_from(
                ["{bogus}", "${PROMPTSTATE_FUZZ_UNSET}", "${1bad}", "${a b}", "{from_cache_prefix}",
                 "{Prompt}", "x{from}y{nope}"]
            )
        )  # fmt: skip
        where = draw(st.sampled_from(["url", "run", "headers"]))
        if where == "url":
            return {"kind": "webhook", "url": f"http://127.0.0.1:9/{bad}"}, family
        if where == "run":
            return {"kind": "command", "run": ["/bin/echo", bad]}, family
        return {"kind": "webhook", "url": "http://127.0.0.1:9/x", "headers": {"X": bad}}, family
    if family == "file":
        # outside the text leg a file action is refused; in it, the sample has no text
        return {"kind": "file", "path": draw(st.sampled_from(["p.txt", "", 5]))}, family
    return {"kind": "command", "run": ["/bin/echo", _deep(draw(st.integers(2, 400)))]}, family


@st.composite
def _entry_case(draw: st.DrawFn, port: int, family: str) -> dict[str, Any]:
    """A file with valid actions and one malformed entry; the entry's name is expected."""
    data: dict[str, Any] = {}
    if draw(st.booleans()):
        data["version"] = 1
    for leg in LEGS:
        if leg != "text" and draw(st.integers(0, 3)) == 0:
            data[leg] = draw(st.lists(_good(port), max_size=2))
    leg = draw(st.sampled_from(LEGS))
    entries = list(data.get(leg, []))
    index = draw(st.integers(0, len(entries)))
    bad, what = draw(_bad_entry(family))
    entries.insert(index, bad)
    if leg == "text":  # the sample records no text: every text action is refused anyway
        index = 0
        entries = [bad]
    data[leg] = entries
    event(what)
    return {"data": data, "names": [f": {leg}[{index}]"]}


@st.composite
def _file_case(draw: st.DrawFn, port: int, family: str) -> dict[str, Any]:
    """A file malformed as a whole (only the file's name is expected in the message)."""
    good = {"any": [draw(_good(port))]}
    if family == "not-mapping":
        return {"data": draw(_NOT_MAP.filter(lambda v: v is not None))}
    if family == "unknown-leg":
        leg = draw(_TEXT.filter(lambda t: t not in (*LEGS, "version")))
        return {"data": {**good, leg: []}, "names": [leg]}
    if family == "leg-not-list":
        leg = draw(st.sampled_from(LEGS))
        value = draw(_NOT_LIST.filter(lambda v: v is not None))
        return {"data": {**good, leg: value}, "names": [leg]}
    if family == "version":
        return {"data": {**good, "version": draw(_not(1))}}
    raw = draw(
        st.sampled_from(
            [b"any: [{kind: command, run: [/bin/true]}\n  x: {", b"any:\n  - kind: command\n kind: x\n",
             b"\xff\xfeany: []\n", b"any: []\nany: []\n", b"{\"any\": [}", b"any: &a [*a]\n",
             b"[" * 5000, b"any: !!python/object:os.system {}\n", b"\x00\x01\x02"]
        )
    )  # fmt: skip
    return {"raw": raw}


# ---------------------------------------------------------------------------------- runner


@pytest.fixture(scope="module")
def web() -> Iterator[Recorder]:
    with http_recorder() as rec:
        yield rec


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.yaml"
    shutil.copy(PRE, path)
    return path


def _write(folder: Path, case: dict[str, Any], as_json: bool) -> tuple[Path, bool]:
    """Write the case; returns the file and whether its entry name must show (a JSON file with
    NaN/Infinity is refused as a whole, before any entry is read)."""
    if "raw" in case:
        path = folder / "actions.yaml"
        path.write_bytes(case["raw"])
        return path, False
    if as_json:
        path = folder / "actions.json"
        text = json.dumps(case["data"], default=str)
        path.write_text(text)
        return path, not any(x in text for x in ("NaN", "Infinity"))
    path = folder / "actions.yaml"
    path.write_text(yaml.safe_dump(case["data"], allow_unicode=True))
    return path, True


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _check(case: dict[str, Any], ledger: Path, web: Recorder, as_json: bool, plan: bool) -> None:
    folder = ledger.parent / f"case-{len(list(ledger.parent.glob('case-*')))}"
    folder.mkdir()
    actions, names_show = _write(folder, case, as_json)
    out = folder / "out"
    before = ledger.read_bytes()
    sent = len(web.requests)
    argv = ["rollback", "plan" if plan else "apply", "--ledger", str(ledger), "--no-recovery"]
    argv += ["--at", "2026-11-03T08:15:00Z", "--actions", str(actions)]
    if not plan:
        argv += ["--confirm", "ticket-router", "--out", str(out)]
    code, stdout, stderr = _run(argv)
    assert code == 2, (case, code, stdout[-500:], stderr)
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("promptstate: error: "), stderr
    assert str(actions) in stderr, stderr
    if names_show:
        for name in case.get("names", []):  # ": contracts[1]" follows the file's name
            assert (f"{actions}{name}" if name.startswith(": ") else name) in stderr, stderr
    assert ledger.read_bytes() == before
    assert not out.exists()
    assert not journal_path(ledger).exists()
    assert len(web.requests) == sent


@pytest.mark.parametrize("family", ENTRY_FAMILIES)
@SETTINGS
@given(data=st.data(), as_json=st.booleans(), plan=st.booleans())
def test_a_malformed_entry_is_exit_2_naming_the_file_and_entry(
    ledger: Path, web: Recorder, family: str, data: st.DataObject, as_json: bool, plan: bool
) -> None:
    case = data.draw(_entry_case(web.port, family))
    _check(case, ledger, web, as_json, plan)


@pytest.mark.parametrize("family", FILE_FAMILIES)
@SETTINGS
@given(data=st.data(), as_json=st.booleans(), plan=st.booleans())
def test_a_malformed_file_is_exit_2_naming_the_file(
    ledger: Path, web: Recorder, family: str, data: st.DataObject, as_json: bool, plan: bool
) -> None:
    case = data.draw(_file_case(web.port, family))
    _check(case, ledger, web, as_json, plan)
