"""The ledger writer: comment-preserving, validated, atomic, locked append of a transition."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import stat
from pathlib import Path

import pytest

from analysis.errors import LedgerError
from analysis.ledger import load_ledger
from analysis.ledger.writer import append_transition, ledger_lock

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"
ROLLBACK = {"at": "2026-11-03T08:15:00Z", "action": "rollback", "experiment": "exp-17", "to": "r41"}


@pytest.fixture
def pre(tmp_path: Path) -> Path:
    dest = tmp_path / "ledger.yaml"
    shutil.copy(PRE, dest)
    return dest


def test_yaml_append_only_adds_one_line_and_keeps_comments(pre: Path) -> None:
    before = pre.read_text()
    res = append_transition(pre, ROLLBACK)
    after = pre.read_text()
    assert res.written
    assert res.reformatted_lines == 0
    assert after.startswith(before)  # every existing byte kept, comments included
    added = after[len(before) :]
    assert (
        added == "  - {at: 2026-11-03T08:15:00Z, action: rollback, experiment: exp-17, to: r41}\n"
    )
    # the result is the sample's recorded ledger (same transitions)
    recorded = load_ledger(ROOT / "data_samples" / "ledger.yaml")
    assert [t.to_dict() for t in load_ledger(pre).transitions] == [
        t.to_dict() for t in recorded.transitions
    ]


def test_block_style_yaml_gets_a_block_entry(tmp_path: Path) -> None:
    path = tmp_path / "l.yml"
    path.write_text(
        "# header\nversion: 1\nprompts:\n  p:\n    revisions:\n      a: {}\n      b: {parent: a}\n"
        "transitions:\n- at: 2026-01-01T00:00:00Z  # first\n  action: deploy\n  prompt: p\n"
        "  revision: a\n- at: 2026-01-02T00:00:00Z\n  action: deploy\n  prompt: p\n  revision: b\n"
    )
    before = path.read_text()
    append_transition(
        path, {"at": "2026-01-03T00:00:00Z", "action": "rollback", "prompt": "p", "to": "a"}
    )
    after = path.read_text()
    assert after.startswith(before)
    assert (
        after[len(before) :]
        == "- at: 2026-01-03T00:00:00Z\n  action: rollback\n  prompt: p\n  to: a\n"
    )
    assert load_ledger(path).live_revision("p") == "a"


def test_json_ledger_is_rewritten_with_its_indentation(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(load_ledger(PRE).to_dict(), indent=2) + "\n")
    res = append_transition(path, ROLLBACK)
    data = json.loads(path.read_text())
    assert data["transitions"][-1] == ROLLBACK
    assert path.read_text().endswith("}\n")
    assert '\n  "prompts"' in path.read_text()
    assert res.ledger.transitions[-1].action == "rollback"


def test_invalid_transition_leaves_the_file_untouched(pre: Path) -> None:
    before = pre.read_bytes()
    bad = dict(ROLLBACK, at="2026-11-01T00:00:00Z")  # time goes backwards
    with pytest.raises(LedgerError, match=r"transitions\[3\].*time goes backwards.*left unchanged"):
        append_transition(pre, bad)
    assert pre.read_bytes() == before
    assert [p.name for p in pre.parent.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(LedgerError, match="not defined"):
        append_transition(pre, dict(ROLLBACK, experiment="exp-99"))
    assert pre.read_bytes() == before


def test_dry_run_writes_nothing(pre: Path) -> None:
    before = pre.read_bytes()
    res = append_transition(pre, ROLLBACK, dry_run=True)
    assert not res.written
    assert pre.read_bytes() == before
    assert "+  - {at: 2026-11-03T08:15:00Z" in res.diff()
    assert {p.name for p in pre.parent.iterdir()} <= {"ledger.yaml", ".ledger.yaml.lock"}


def test_file_mode_is_kept(pre: Path) -> None:
    pre.chmod(0o640)
    append_transition(pre, ROLLBACK)
    assert stat.S_IMODE(pre.stat().st_mode) == 0o640


def _append_once(path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Append the rollback unless the ledger already has it (the check-then-write under lock)."""
    with ledger_lock(path):
        if load_ledger(path).transitions[-1].action == "rollback":
            queue.put("already")
            return
        append_transition(path, ROLLBACK, locked=True)
        queue.put("appended")


def test_concurrent_writers_append_once(pre: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_append_once, args=(str(pre), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    outcomes = sorted(queue.get(timeout=5) for _ in procs)
    assert outcomes == ["already", "already", "already", "appended"]
    assert sum(t.action == "rollback" for t in load_ledger(pre).transitions) == 1
