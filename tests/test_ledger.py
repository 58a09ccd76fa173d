"""Ledger: strict validation (one test per rule, checking the message) and derived views."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

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
            "transitions[1].at: Value error, time has no timezone",
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
        ("transitions.1.action", "launch", "transitions[1].action: Input should be"),
        ("transitions.1.surprise", 1, "transitions[1].surprise: unknown field"),
        ("version", 2, "version: Input should be 1"),
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
    with pytest.raises(LedgerError, match="ledger file not found"):
        load_ledger(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nprompts: [unclosed\n")
    with pytest.raises(LedgerError, match=r"bad.yaml: not valid YAML at line"):
        load_ledger(bad)
    with pytest.raises(LedgerError, match="revision 'nope' is not defined"):
        revision_state(load_ledger(write(tmp_path, BASE)), "nope")


def test_naive_time_query_is_refused(ledger: Any) -> None:
    with pytest.raises(LedgerError, match="has no timezone"):
        ledger.live_revision("support-assistant", datetime(2026, 11, 2))
    assert ledger.live_revision("support-assistant", datetime(2026, 11, 2, tzinfo=UTC)) == "r41"
