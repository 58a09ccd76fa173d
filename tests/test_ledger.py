"""Ledger: strict validation (one test per rule, checking the message) and derived views."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import LedgerError, load_ledger, revision_state
from analysis.ledger import parse_ledger

BASE: dict[str, Any] = {
    "version": 1,
    "prompts": {
        "support-assistant": {
            "revisions": {"r41": {"contract": "v3"}, "r42": {"parent": "r41", "contract": "v4"}}
        }
    },
    "experiments": {
        "exp-17": {
            "prompt": "support-assistant",
            "unit": "user_id",
            "arms": {"control": "r41", "treatment": "r42"},
        }
    },
    "consumers": {
        "ticket-router": {"prompt": "support-assistant", "accepts": ["v4"]},
        "analytics-etl": {"prompt": "support-assistant", "accepts": ["v3", "v4"]},
    },
    "transitions": [
        {
            "at": "2026-11-01T00:00:00Z",
            "action": "deploy",
            "prompt": "support-assistant",
            "revision": "r41",
        },
        {
            "at": "2026-11-02T09:00:00Z",
            "action": "start",
            "experiment": "exp-17",
            "allocation": {"control": 0.9, "treatment": 0.1},
        },
        {
            "at": "2026-11-02T21:00:00Z",
            "action": "ramp",
            "experiment": "exp-17",
            "allocation": {"control": 0.75, "treatment": 0.25},
        },
        {"at": "2026-11-03T08:15:00Z", "action": "rollback", "experiment": "exp-17", "to": "r41"},
    ],
}


def T(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = data
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


_DELETE = object()


def write(tmp_path: Path, data: dict[str, Any], name: str = "ledger.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_sample_ledger_loads(ledger: Any) -> None:
    assert set(ledger.revisions) == {"r41", "r42"}
    assert ledger.experiments["exp-17"].control == "control"
    assert ledger.experiments["exp-17"].treatment_arms == ("treatment",)
    assert [t.action for t in ledger.transitions] == ["deploy", "start", "ramp", "rollback"]


def test_yaml_and_json_give_the_same_ledger(tmp_path: Path, ledger: Any) -> None:
    json_ledger = load_ledger(write(tmp_path, BASE))
    assert json_ledger.to_dict() == ledger.to_dict()


def test_phases(ledger: Any) -> None:
    phases = ledger.phases("exp-17")
    assert [p.kind for p in phases] == ["pre", "exposure", "exposure", "after_end"]
    assert phases[0].end == T("2026-11-02T09:00:00Z")
    assert phases[0].end_action == "start"
    assert phases[1].allocation == {"control": 0.9, "treatment": 0.1}
    assert (phases[1].start, phases[1].end) == (
        T("2026-11-02T09:00:00Z"),
        T("2026-11-02T21:00:00Z"),
    )
    assert phases[1].end_action == "ramp"
    assert phases[2].allocation == {"control": 0.75, "treatment": 0.25}
    assert phases[2].end_action == "rollback"
    assert phases[3].start == T("2026-11-03T08:15:00Z")
    assert phases[3].served_after_end == "r41"
    assert phases[1].arms == {"control": "r41", "treatment": "r42"}
    assert ledger.phase_at("exp-17", T("2026-11-02T21:00:00Z")).id == 2  # half-open


def test_live_revision_and_reverts(ledger: Any) -> None:
    assert ledger.live_revision("support-assistant", T("2026-10-31T00:00:00Z")) is None
    assert ledger.live_revision("support-assistant", T("2026-11-02T10:00:00Z")) == "r41"
    assert ledger.live_revision("support-assistant") == "r41"
    (revert,) = ledger.reverts()
    assert (revert.reverted, revert.restored, revert.transition_index) == ("r42", "r41", 3)
    assert ledger.served_revisions("support-assistant") == {"r41", "r42"}


@pytest.mark.parametrize(
    ("at", "r41", "r42"),
    [
        ("2026-10-31T00:00:00Z", "not_deployed", "not_deployed"),
        ("2026-11-01T12:00:00Z", "live", "not_deployed"),
        ("2026-11-02T10:00:00Z", "live", "canary 10%"),
        ("2026-11-02T22:00:00Z", "live", "canary 25%"),
        ("2026-11-03T09:00:00Z", "live", "rolled_back"),
    ],
)
def test_revision_state(ledger: Any, at: str, r41: str, r42: str) -> None:
    assert revision_state(ledger, "r41", T(at)).rollout_state == r41
    state = revision_state(ledger, "r42", T(at))
    assert state.rollout_state == r42
    assert state.contract_version == "v4"
    if r42.startswith("canary"):
        assert state.cohort_id == "exp-17/treatment"


def test_promote_and_prompt_rollback(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["transitions"][3] = {
        "at": "2026-11-03T08:15:00Z",
        "action": "promote",
        "experiment": "exp-17",
        "arm": "treatment",
    }
    data["transitions"].append(
        {
            "at": "2026-11-04T00:00:00Z",
            "action": "rollback",
            "prompt": "support-assistant",
            "to": "r41",
        }
    )
    ledger = load_ledger(write(tmp_path, data))
    assert ledger.live_revision("support-assistant", T("2026-11-03T09:00:00Z")) == "r42"
    assert ledger.phases("exp-17")[-1].served_after_end == "r42"
    assert revision_state(ledger, "r42", T("2026-11-03T09:00:00Z")).rollout_state == "live"
    assert revision_state(ledger, "r42").rollout_state == "rolled_back"
    (revert,) = ledger.reverts()
    assert (revert.reverted, revert.restored, revert.experiment) == ("r42", "r41", None)


def test_stop_keeps_live_revision(tmp_path: Path) -> None:
    data = with_change(
        "transitions.3", {"at": "2026-11-03T08:15:00Z", "action": "stop", "experiment": "exp-17"}
    )
    ledger = load_ledger(write(tmp_path, data))
    assert ledger.live_revision("support-assistant") == "r41"
    assert revision_state(ledger, "r42").rollout_state == "stopped"
    assert ledger.reverts() == ()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "transitions.1.at",
            "2026-11-02T09:00:00",
            "transitions[1].at: time has no timezone",
        ),
        (
            "transitions.2.at",
            "2026-11-02T08:00:00Z",
            "transitions[2] (ramp at 2026-11-02T08:00:00+00:00): time goes backwards",
        ),
        (
            "transitions.1.allocation",
            {"control": 0.9, "treatment": 0.2},
            "shares sum to 1.1, not 1",
        ),
        (
            "transitions.1.allocation",
            {"control": 0.9, "placebo": 0.1},
            "arm(s) 'placebo' not in experiment 'exp-17'",
        ),
        ("transitions.1.experiment", "exp-99", "experiment 'exp-99' is not defined"),
        (
            "transitions.0.revision",
            "r99",
            "revision 'r99' is not a revision of prompt 'support-assistant'",
        ),
        (
            "experiments.exp-17.arms.treatment",
            "r99",
            "experiments.exp-17.arms.treatment: revision 'r99'",
        ),
        ("experiments.exp-17.prompt", "other", "experiments.exp-17: prompt 'other' is not defined"),
        ("prompts.support-assistant.revisions.r42.parent", "r00", "parent 'r00' is not a revision"),
        ("consumers.ticket-router.prompt", "other", "consumers.ticket-router: prompt 'other'"),
        ("transitions.3.to", "r77", "`to` 'r77' is not a revision"),
        ("transitions.1.action", "launch", "transitions[1].action: 'launch' is not an action"),
        ("transitions.1.surprise", 1, "transitions[1].surprise: unknown field"),
        ("version", 2, "version: expected 1 (the only schema version)"),
    ],
)
def test_validation_names_file_entry_and_problem(
    tmp_path: Path, path: str, value: Any, message: str
) -> None:
    file = write(tmp_path, with_change(path, value))
    with pytest.raises(LedgerError) as err:
        load_ledger(file)
    assert str(file) in str(err.value)
    assert message in str(err.value)


def test_transition_before_start_is_refused(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    del data["transitions"][1]
    with pytest.raises(LedgerError, match=r"transitions\[1\].*has not started; add a `start`"):
        parse_ledger(data)


def test_transition_after_end_is_refused(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["transitions"].append(
        {
            "at": "2026-11-04T00:00:00Z",
            "action": "ramp",
            "experiment": "exp-17",
            "allocation": {"control": 0.5, "treatment": 0.5},
        }
    )
    with pytest.raises(LedgerError, match=r"transitions\[4\].*has already ended"):
        parse_ledger(data)


def test_one_live_revision_at_a_time(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["transitions"].insert(
        2,
        {
            "at": "2026-11-02T10:00:00Z",
            "action": "deploy",
            "prompt": "support-assistant",
            "revision": "r42",
        },
    )
    with pytest.raises(
        LedgerError, match=r"transitions\[2\].*still running; a prompt has one live"
    ):
        parse_ledger(data)


def test_duplicate_revision_ids_across_prompts() -> None:
    data = copy.deepcopy(BASE)
    data["prompts"]["other"] = {"revisions": {"r41": {}}}
    with pytest.raises(LedgerError, match="must be unique across the ledger"):
        parse_ledger(data)


def test_text_file_hash(tmp_path: Path) -> None:
    (tmp_path / "r41.txt").write_text("You are a helpful support assistant.")
    data = copy.deepcopy(BASE)
    data["prompts"]["support-assistant"]["revisions"]["r41"]["text_file"] = "r41.txt"
    ledger = load_ledger(write(tmp_path, data))
    import hashlib

    digest = hashlib.sha256(b"You are a helpful support assistant.").hexdigest()
    assert ledger.revisions["r41"].text_sha256 == digest
    assert ledger.revisions["r41"].cache_prefix == f"prefix-{digest[:12]}"
    assert ledger.revisions["r42"].cache_prefix == "prefix-r42"
    data["prompts"]["support-assistant"]["revisions"]["r41"]["text_sha256"] = "0" * 64
    with pytest.raises(LedgerError, match="does not match the hash of r41.txt"):
        load_ledger(write(tmp_path, data))


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(
        LedgerError, match=r"missing\.yaml: cannot read the ledger: file not found$"
    ):
        load_ledger(tmp_path / "missing.yaml")  # the API names no CLI option
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nprompts: [unclosed\n")
    with pytest.raises(LedgerError, match=r"bad\.yaml:3:1: not valid YAML: "):
        load_ledger(bad)
    with pytest.raises(LedgerError, match="revision 'nope' is not defined"):
        revision_state(load_ledger(write(tmp_path, BASE)), "nope")
    with pytest.raises(LedgerError, match="cannot read the ledger: it is a directory"):
        load_ledger(tmp_path)


def test_duplicate_keys_are_refused_with_the_line(tmp_path: Path, ledger_path: Path) -> None:
    text = ledger_path.read_text()
    # a second `r42` revision: PyYAML alone would keep the later one silently
    dup = text.replace(
        "      r42: {parent: r41, contract: v4}\n",
        "      r42: {parent: r41, contract: v4}\n      r42: {contract: v5}\n",
    )
    path = tmp_path / "ledger.yaml"
    path.write_text(dup)
    line = dup.splitlines().index("      r42: {contract: v5}") + 1
    with pytest.raises(LedgerError, match=rf"ledger\.yaml:{line}:7: duplicate key 'r42'"):
        load_ledger(path)
    # inside a transition
    path.write_text(text.replace("action: ramp,", "action: ramp, action: start,"))
    with pytest.raises(LedgerError, match=r":\d+:\d+: duplicate key 'action'"):
        load_ledger(path)


BAD_IDS = ["../../etc/x", "/abs", "a/b", "a\\b", ".hidden", "-dash", "a..b", "", "x" * 101,
           "tab\tid", "new\nline", "caf\u00e9", "a b", "trailing\n"]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    ("kind", "path", "entry"),
    [
        ("prompt", "prompts", "prompts"),
        ("revision", "prompts.support-assistant.revisions", "prompts.support-assistant.revisions"),
        ("experiment", "experiments", "experiments"),
        ("arm", "experiments.exp-17.arms", "experiments.exp-17.arms"),
        ("consumer", "consumers", "consumers"),
    ],
)
def test_unsafe_ids_are_refused_naming_the_id(kind: str, path: str, entry: str, bad: str) -> None:
    data = copy.deepcopy(BASE)
    node: Any = data
    for part in path.split("."):
        node = node[part]
    first = next(iter(node))
    node[bad] = node.pop(first)  # rename the first id of that kind
    with pytest.raises(LedgerError) as err:
        parse_ledger(data)
    message = str(err.value)
    assert f"{entry}: {kind} id {bad!r} is not allowed" in message
    assert "letters, digits" in message


@pytest.mark.parametrize("good", ["a", "A-1", "r41", "exp_17.v2", "9" * 100, "x.y-z_0"])
def test_safe_ids(good: str) -> None:
    from analysis.ledger import valid_id

    assert valid_id(good)
    data = copy.deepcopy(BASE)
    data["prompts"][good] = data["prompts"].pop("support-assistant")
    for section in ("experiments", "consumers"):
        for item in data[section].values():
            item["prompt"] = good
    data["transitions"][0]["prompt"] = good
    assert good in parse_ledger(data).prompts


def test_id_rule_matches_a_brute_force_check() -> None:
    """valid_id against the rule written out character by character."""
    from analysis.ledger import valid_id

    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

    def reference(name: str) -> bool:
        return (
            1 <= len(name) <= 100
            and name[0].isascii()
            and name[0].isalnum()
            and all(c in allowed for c in name)
            and ".." not in name
        )

    for name in [*BAD_IDS, "a", "a.b", "a-", "0", "Z" * 100, "a_b", "..", ".", "é", "a\x00"]:
        assert valid_id(name) == reference(name), name


def test_text_file_reads_are_bounded(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["prompts"]["support-assistant"]["revisions"]["r41"]["text_file"] = "/dev/zero"
    with pytest.raises(LedgerError, match=r"r41\.text_file: .*larger than 64 MiB"):
        load_ledger(write(tmp_path, data))
    data["prompts"]["support-assistant"]["revisions"]["r41"]["text_file"] = "."
    with pytest.raises(LedgerError, match=r"r41\.text_file: .*is a directory"):
        load_ledger(write(tmp_path, data))


def test_naive_time_query_is_refused(ledger: Any) -> None:
    with pytest.raises(LedgerError, match="has no timezone"):
        ledger.live_revision("support-assistant", datetime(2026, 11, 2))
    assert ledger.live_revision("support-assistant", datetime(2026, 11, 2, tzinfo=UTC)) == "r41"


# ------------------------------------------------------------------- fuzz: the exit contract

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"
AT = "2026-11-03T08:15:00Z"
IDS = ["support-assistant", "r41", "r42", "exp-17", "control", "treatment", "ticket-router"]
NASTY = ["../../x", "/tmp/x", "a/b", "..", ".", "", "x" * 101, "a b", "é", "'", '"', "{", "[",
         "*x", "&x", "!!python/object:os.system", "- x", "# c", ": x", "\t", "\x00", "yes"]  # fmt: skip


@st.composite
def mutated_ledgers(draw: st.DrawFn) -> bytes:
    """The sample's pre-rollback ledger, mutated: an id replaced (by a path, a YAML token, ...),
    a line duplicated or dropped, text inserted, or a random document or random bytes."""
    text = PRE.read_text()
    lines = text.splitlines(keepends=True)
    kind = draw(st.sampled_from(["id", "dup", "drop", "insert", "document", "bytes", "none"]))
    if kind == "id":
        old = draw(st.sampled_from(IDS))
        new = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=12)))
        text = text.replace(old, new, -1 if draw(st.booleans()) else 1)
    elif kind == "dup":
        i = draw(st.integers(0, len(lines) - 1))
        text = "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    elif kind == "drop":
        i = draw(st.integers(0, len(lines) - 1))
        text = "".join([*lines[:i], *lines[i + 1 :]])
    elif kind == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=20)) + text[at:]
    elif kind == "document":
        leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
        doc = draw(
            st.recursive(
                leaf,
                lambda inner: st.one_of(
                    st.lists(inner, max_size=4),
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "version",
                                "prompts",
                                "experiments",
                                "consumers",
                                "transitions",
                                "at",
                                "action",
                                "x",
                            ]
                        ),
                        inner,
                        max_size=4,
                    ),
                ),
                max_leaves=20,
            )
        )
        import yaml

        text = yaml.safe_dump(doc)
    elif kind == "bytes":
        return draw(st.binary(max_size=300))
    return text.encode("utf-8", errors="surrogatepass")


def _run_in(directory: Path, argv: list[str]) -> int:
    import os

    from analysis.cli import main

    old = Path.cwd()
    os.chdir(directory)  # no ./baselines store is found from here
    try:
        return main(argv)
    finally:
        os.chdir(old)


def _valid(path: Path) -> bool:
    try:
        load_ledger(path)
    except LedgerError:
        return False
    return True


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=mutated_ledgers())
def test_fuzz_rollback_apply_exit_contract(data: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    """``rollback apply`` on a mutated ledger: exit 0, or 2 with one line and nothing changed
    (the ledger's bytes, no export written; only the lock file may appear); never a traceback
    or an internal error, and 1 only when the ledger is valid (a check found a problem)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ledger = work / "ledger.yaml"
        ledger.write_bytes(data)
        valid = _valid(ledger)
        capsys.readouterr()
        code = _run_in(
            work,
            ["rollback", "apply", "--ledger", str(ledger), "--prompt", "support-assistant",
             "--at", AT, "--no-recovery", "--confirm", "ticket-router"],
        )  # fmt: skip
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert code in (0, 1, 2), (code, err)
        if code == 2:
            assert err.startswith("promptstate: error: "), err
            assert err.count("\n") == 1, err
            assert ledger.read_bytes() == data
            assert {p.name for p in work.iterdir()} <= {"ledger.yaml", ".promptstate"}
        else:
            assert valid, err
        if code == 0:
            after = load_ledger(ledger)
            assert after.transitions[-1].action == "rollback"
            assert ledger.read_bytes().startswith(data.rstrip(b"\n"))


@pytest.fixture(scope="module")
def tiny_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import polars as pl

    path = tmp_path_factory.mktemp("events") / "events.parquet"
    events = pl.read_parquet(ROOT / "data_samples" / "events.parquet")
    events.filter(pl.col("experiment_id") == "exp-17").head(200).write_parquet(path)
    return path


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=mutated_ledgers())
def test_fuzz_split_exit_contract(
    data: bytes, tiny_events: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``split`` with a mutated ledger: exit 0 on a valid ledger, else 2 with one line."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.yaml"
        ledger.write_bytes(data)
        capsys.readouterr()
        code = _run_in(Path(tmp), ["split", str(tiny_events), "--ledger", str(ledger)])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert code in (0, 2), (code, err)
        if code == 2:
            assert err.startswith("promptstate: error: "), err
            assert err.count("\n") == 1, err
        else:
            assert _valid(ledger)
        assert ledger.read_bytes() == data
