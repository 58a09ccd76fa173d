"""The ledger writer: comment-preserving, validated, atomic, locked append of a transition."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import stat
from datetime import UTC, datetime, timedelta
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
    assert {p.name for p in pre.parent.iterdir()} <= {"ledger.yaml", ".promptstate"}


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


# ------------------------------------------------------------------------ append as text

BLOCK = """\
# header comment
version: 1
prompts:
  p:
    revisions:
      a: {}
      b: {parent: a}
experiments:
  e: {prompt: p, arms: {control: a, treatment: b}}
transitions:
  - at: 2026-01-01T00:00:00Z   # first deploy
    action: deploy
    prompt: p
    revision: a
  - at: 2026-01-02T00:00:00Z
    action: start
    experiment: e
    allocation: {control: 0.5, treatment: 0.5}
"""
TRAILER = "\n# trailing comment\n\n"


@pytest.mark.parametrize("trailer", ["", TRAILER])
def test_block_entry_is_appended_as_text_at_the_end(tmp_path: Path, trailer: str) -> None:
    path = tmp_path / "ledger.yaml"
    path.write_text(BLOCK + trailer)
    res = append_transition(
        path,
        {"at": "2026-01-03T00:00:00Z", "action": "ramp", "experiment": "e",
         "allocation": {"control": 0.25, "treatment": 0.75}, "reason": "yes"},
    )  # fmt: skip
    after = path.read_text()
    assert res.reformatted_lines == 0
    added = (
        "  - at: 2026-01-03T00:00:00Z\n"
        "    action: ramp\n"
        "    experiment: e\n"
        "    allocation: {control: 0.25, treatment: 0.75}\n"
        "    reason: 'yes'\n"
    )
    assert after == BLOCK + trailer + added
    last = load_ledger(path).transitions[-1]
    assert last.reason == "yes"  # quoted: plain `yes` would read as a boolean
    assert last.allocation == {"control": 0.25, "treatment": 0.75}


def test_keep_chomped_block_scalar_keeps_its_blank_lines(tmp_path: Path) -> None:
    """A last transition ending in a `|+` block scalar keeps its trailing blank lines."""
    path = tmp_path / "ledger.yaml"
    path.write_text(BLOCK + "    reason: |+\n      kept\n\n\n")
    assert load_ledger(path).transitions[-1].reason == "kept\n\n\n"
    append_transition(path, {"at": "2026-01-03T00:00:00Z", "action": "stop", "experiment": "e"})
    ledger = load_ledger(path)
    assert ledger.transitions[-2].reason == "kept\n\n\n"
    assert ledger.transitions[-1].action == "stop"


def test_entry_in_a_nested_list_is_not_taken_for_a_transition(tmp_path: Path) -> None:
    """The text append falls back when the last dash is not a transition's (nested list)."""
    path = tmp_path / "ledger.yaml"
    nested = BLOCK.replace(
        "    allocation: {control: 0.5, treatment: 0.5}\n", "    allocation:\n      - x\n"
    )
    path.write_text(nested)
    with pytest.raises(LedgerError, match=r"transitions\[1\]\.allocation"):
        append_transition(path, {"at": "2026-01-03T00:00:00Z", "action": "stop", "experiment": "e"})
    assert path.read_text() == nested


def test_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "ledger.yaml"
    path.write_text(PRE.read_text().rstrip("\n"))
    append_transition(path, ROLLBACK)
    assert path.read_text() == PRE.read_text() + (
        "  - {at: 2026-11-03T08:15:00Z, action: rollback, experiment: exp-17, to: r41}\n"
    )


@pytest.mark.parametrize(
    "reason",
    ["yes", "No", "on", "null", "~", "1.5", "0x10", "fix: broken", "# not a comment", "50%",
     "'quoted'", 'say "hi"', "café", "a, b", "{x}", "[x]", "- x", "*alias", "&anchor", "!tag",
     "@at", "`tick`", "2026-11-03T08:15:00Z", "line\nbreak", " lead", "trail ", ""],
)  # fmt: skip
@pytest.mark.parametrize("layout", ["text", "round-trip"])
def test_values_read_back_exactly(tmp_path: Path, reason: str, layout: str) -> None:
    """Whatever the text, the reason written reads back unchanged, in either writer path."""
    path = tmp_path / "ledger.yaml"
    text = PRE.read_text()
    if layout == "round-trip":  # transitions is not the last key: no text append
        head, sep, transitions = text.partition("transitions:\n")
        consumers = head[head.index("consumers:") :]
        text = head.replace(consumers, "") + sep + transitions + consumers
    path.write_text(text)
    append_transition(path, dict(ROLLBACK, reason=reason))
    assert load_ledger(path).transitions[-1].reason == reason
    if layout == "text":
        assert path.read_text().startswith(text)
    assert path.read_text().startswith("# The embedded sample's rollout ledger")


def test_round_trip_when_transitions_are_empty(tmp_path: Path) -> None:
    path = tmp_path / "ledger.yaml"
    body = BLOCK[: BLOCK.index("transitions:")]
    path.write_text(body + "transitions: []  # none yet\n")
    append_transition(
        path, {"at": "2026-01-01T00:00:00Z", "action": "deploy", "prompt": "p", "revision": "a"}
    )
    assert path.read_text().startswith(body)
    assert load_ledger(path).live_revision("p") == "a"


def test_stray_temporary_files_are_removed(pre: Path) -> None:
    stray = pre.parent / ".ledger.yaml.abcd1234.tmp"
    stray.write_text("half a ledger")
    other = pre.parent / ".other.yaml.abcd1234.tmp"
    other.write_text("not ours")
    append_transition(pre, ROLLBACK)
    assert not stray.exists()
    assert other.exists()


def test_long_ledger_append_keeps_every_byte(tmp_path: Path) -> None:
    """2,000 transitions: the append adds one line and validates the whole result."""
    lines = PRE.read_text().splitlines(keepends=True)
    revs = "".join(f"      v{i}: {{}}\n" for i in range(2000))
    head = "".join(lines[: lines.index("      r42: {parent: r41, contract: v4}\n") + 1])
    body = "".join(lines[len(head.splitlines()) :])
    base = datetime(2026, 10, 1, tzinfo=UTC)
    deploys = "".join(
        f"  - {{at: {(base + timedelta(minutes=7 * i)).isoformat().replace('+00:00', 'Z')}, "
        f"action: deploy, prompt: support-assistant, revision: v{i}}}\n"
        for i in range(2000)
    )
    text = head + revs + body.replace("transitions:\n", "transitions:\n" + deploys)
    path = tmp_path / "ledger.yaml"
    path.write_text(text)
    n = len(load_ledger(path).transitions)
    res = append_transition(path, ROLLBACK)
    assert path.read_text() == text + (
        "  - {at: 2026-11-03T08:15:00Z, action: rollback, experiment: exp-17, to: r41}\n"
    )
    assert len(res.ledger.transitions) == n + 1
    assert res.diff().count("\n+  - ") == 1


def test_bad_ledger_file_errors(tmp_path: Path) -> None:
    with pytest.raises(
        LedgerError, match=r"missing\.yaml: cannot read the ledger: file not found$"
    ):
        append_transition(tmp_path / "missing.yaml", ROLLBACK)
    dup = tmp_path / "dup.yaml"
    dup.write_text(PRE.read_text().replace("version: 1\n", "version: 1\nversion: 1\n"))
    before = dup.read_bytes()
    with pytest.raises(LedgerError, match=r"dup\.yaml:\d+:1: duplicate key 'version'"):
        append_transition(dup, ROLLBACK)
    assert dup.read_bytes() == before
