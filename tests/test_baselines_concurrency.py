"""Nothing lost under concurrency or crashes: parallel writers, SIGKILL mid-write, editor saves."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import polars as pl
import pytest

from analysis.evals.store import BaselineStore, RepairWarning, SuiteConfig
from analysis.ledger import load_ledger

ROOT = Path(__file__).resolve().parent.parent
SUITE_YAML = ROOT / "data_samples" / "evals" / "support-qa.suite.yaml"

WRITER = textwrap.dedent(
    """
    import sys, warnings
    import polars as pl
    from analysis.evals.store import BaselineStore

    warnings.simplefilter("ignore")
    store, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    suite = BaselineStore(store).suite("qa")
    for i in range(count):
        df = pl.DataFrame({"example_id": [f"e{j}" for j in range(20)],
                           "correct": [(i + j + worker) % 2 for j in range(20)],
                           "rubric": [float(worker * 100 + i)] * 20})
        suite.anchor(f"w{worker}-{i}", df, actor=f"worker-{worker}")
    """
)

# dies with SIGKILL at a chosen point of the anchor (or sync) protocol
CRASHER = textwrap.dedent(
    """
    import os, signal, sys, warnings
    from datetime import datetime, UTC
    import polars as pl
    import analysis.evals._files as low
    import analysis.evals.store as bl
    from analysis.ledger import load_ledger

    warnings.simplefilter("ignore")
    store, point = sys.argv[1], sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before-meta":
        real = bl.atomic_write_text
        def hook(path, text):
            if path.name == "meta.json":
                die()
            real(path, text)
        bl.atomic_write_text = hook
    elif point in ("mid-journal", "mid-sync-batch"):
        def hook(path, records):
            # a torn write: every complete line but the last, then part of the last one
            text = "".join(low.to_json(r, indent=None) + "\\n" for r in records[:-1])
            text += low.to_json(records[-1], indent=None)[:25]
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.write(fd, text.encode())
            die()
        bl.append_lines = hook
    elif point == "before-reference":
        real = bl.atomic_write_text
        def hook(path, text):
            if path.name == "reference.json":
                die()
            real(path, text)
        bl.atomic_write_text = hook
    elif point == "mid-scores":
        real = bl.file_sha256
        def hook(path):
            die()
        bl.file_sha256 = hook
    if point == "mid-sync-batch":
        bl.BaselineStore(store).sync(load_ledger(sys.argv[3]))
    else:
        df = pl.DataFrame({"example_id": ["a", "b"], "correct": [1, 0], "rubric": [1.0, 2.0]})
        bl.BaselineStore(store).suite("qa").anchor("crash", df)
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def assert_consistent(store: BaselineStore) -> list[str]:
    """Every committed version readable and verified; reference valid; journal parses."""
    s = store.suite("qa")
    entries = s.journal()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    versions = [v.id for v in s.versions()]
    for vid in versions:
        s.scores(vid)  # verifies the content hash
    ref = s.reference()
    assert ref.version is None or ref.version in versions
    assert store.verify().exit_code() == 0, store.verify().to_dict()
    return versions


def committed(store: BaselineStore) -> dict[str, bytes]:
    """Every version a journal entry created, with its scores' bytes (what must never be lost)."""
    s = store.suite("qa")
    return {
        e.version: (s.path / "versions" / e.version / "scores.parquet").read_bytes()
        for e in s.journal()
        if e.created and e.version is not None
    }


def repaired(call: object, *args: object, **kwargs: object) -> tuple[object, list[str]]:
    """Run a writer; return its result and the repairs it reported."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepairWarning)
        out = call(*args, **kwargs)  # type: ignore[operator]
    return out, [str(w.message) for w in caught if issubclass(w.category, RepairWarning)]


def frame(value: float) -> pl.DataFrame:
    return pl.DataFrame({"example_id": ["a"], "correct": [1], "rubric": [value]})


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    st = BaselineStore(tmp_path / "store")
    st.init("qa", SuiteConfig.load(SUITE_YAML))
    return st


def test_parallel_anchors_lose_nothing(store: BaselineStore) -> None:
    workers, per = 8, 20
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), str(w), str(per)],
            env=_env(),
            stderr=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    s = store.suite("qa")
    versions = assert_consistent(store)
    assert len(versions) == workers * per
    assert versions == [f"v{i:04d}" for i in range(1, workers * per + 1)]
    anchors = [e for e in s.journal() if e.created]
    assert len(anchors) == workers * per
    assert sorted(e.revision or "" for e in anchors) == sorted(
        f"w{w}-{i}" for w in range(workers) for i in range(per)
    )
    # each worker's versions appear in its own order; every parent is the previous reference
    metas = s.versions()
    for prev, meta in itertools.pairwise(metas):
        assert meta.parent == prev.id
    ref = s.reference()
    assert ref.version == versions[-1]
    pointer = json.loads((s.path / "reference.json").read_text())
    assert pointer["version"] == ref.version
    assert pointer["journal_seq"] == len(s.journal())


@pytest.mark.parametrize("point", ["mid-scores", "before-meta", "mid-journal", "before-reference"])
def test_sigkill_mid_write_leaves_store_consistent(store: BaselineStore, point: str) -> None:
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(store.root), point],
        check=False,
        env=_env(),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    versions = [v.id for v in s.versions()]  # readers need no repair
    committed_now = point == "before-reference"  # journal line written: the anchor is committed
    assert versions == (["v0001", "v0002"] if committed_now else ["v0001"])
    assert s.reference().version == versions[-1]
    # the next writer repairs leftovers, reports them, and continues the numbering
    (meta, ref), repairs = repaired(s.anchor, "r3", frame(2.0))
    if point == "mid-journal":  # the torn line is quarantined; the version it named too
        assert sum("quarantined" in r for r in repairs) == 2
        torn = sorted((s.path / "quarantine").glob("journal-*.torn"))
        assert len(torn) == 1
        assert torn[0].read_bytes() == b'{"action": "reanchor", "a'
        (orphan,) = (s.path / "quarantine").glob("v0002-*")
        assert (orphan / "meta.json").is_file()
    elif point == "before-meta":  # scores without metadata: an orphan that is removed
        assert any("v0002: removed" in r for r in repairs)
    assert meta.id == f"v{len(versions) + 1:04d}"
    assert ref.version == meta.id
    assert assert_consistent(store) == [*versions, meta.id]
    assert sorted(p.name for p in (s.path / "versions").iterdir()) == [*versions, meta.id]
    pointer = json.loads((s.path / "reference.json").read_text())
    assert pointer["version"] == meta.id


def _many_rollbacks(n: int) -> dict[str, object]:
    """A ledger of ``n`` prompt-level rollbacks (deploy r42, roll back to r41, repeated)."""
    trans: list[dict[str, str]] = [
        {
            "at": "2026-01-01T00:00:00Z",
            "action": "deploy",
            "prompt": "support-assistant",
            "revision": "r41",
        }
    ]
    for i in range(n):
        day = f"2026-01-{2 + i // 24:02d}T{i % 24:02d}"
        trans.append(
            {
                "at": f"{day}:00:00Z",
                "action": "deploy",
                "prompt": "support-assistant",
                "revision": "r42",
            }
        )
        trans.append(
            {
                "at": f"{day}:30:00Z",
                "action": "rollback",
                "prompt": "support-assistant",
                "to": "r41",
            }
        )
    return {
        "version": 1,
        "prompts": {"support-assistant": {"revisions": {"r41": {}, "r42": {"parent": "r41"}}}},
        "transitions": trans,
    }


def test_sigkill_mid_sync_batch_keeps_the_complete_lines(
    store: BaselineStore, tmp_path: Path
) -> None:
    """A sync appends its entries in one write; a kill mid-write commits the complete lines."""
    s = store.suite("qa")
    s.anchor("r41", frame(1.0))
    s.anchor("r42", frame(2.0))
    ledger_file = tmp_path / "ledger.json"
    ledger_file.write_text(json.dumps(_many_rollbacks(5)))
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(store.root), "mid-sync-batch", str(ledger_file)],
        check=False,
        env=_env(),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    keys = [e.ledger_key for e in s.journal() if e.ledger_key]
    assert len(keys) == 4  # 5 entries written, the last torn
    report, repairs = repaired(store.sync, load_ledger(ledger_file))
    assert any("quarantined" in r for r in repairs)
    assert [i.status for i in report.items] == ["already"] * 4 + ["noop"]
    assert assert_consistent(store) == ["v0001", "v0002"]
    assert len({e.ledger_key for e in s.journal() if e.ledger_key}) == 5


def test_editor_save_without_final_newline_loses_nothing(store: BaselineStore) -> None:
    """The regression: a last line without its newline was torn, and its version deleted."""
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))
    s.anchor("r2", frame(2.0))
    s.journal_path.write_bytes(s.journal_path.read_bytes().rstrip(b"\n"))  # an editor's save
    before = committed(store)
    assert list(before) == ["v0001", "v0002"]
    assert [v.id for v in s.versions()] == ["v0001", "v0002"]  # readers count it committed
    (meta, _), repairs = repaired(s.anchor, "r3", frame(3.0))
    assert repairs == [f"{s.journal_path}: the last journal line lacked its newline; added it"]
    assert meta.id == "v0003"
    after = committed(store)
    assert {k: after[k] for k in before} == before
    assert assert_consistent(store) == ["v0001", "v0002", "v0003"]
    assert s.journal_path.read_bytes().count(b"\n") == len(s.journal())


def test_parallel_writers_on_a_journal_without_final_newline(store: BaselineStore) -> None:
    s = store.suite("qa")
    s.anchor("r1", frame(1.0))
    s.journal_path.write_bytes(s.journal_path.read_bytes().rstrip(b"\n"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), str(w), "5"],
            env=_env(),
            stderr=subprocess.PIPE,
        )
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    assert assert_consistent(store) == [f"v{i:04d}" for i in range(1, 22)]


@pytest.mark.parametrize("strip_newline", [False, True])
def test_random_sigkills_never_lose_a_journaled_version(
    store: BaselineStore, strip_newline: bool
) -> None:
    """Kill a busy writer at arbitrary instants; after each kill nothing journaled is lost."""
    s = store.suite("qa")
    s.anchor("r0", frame(0.0))
    for attempt in range(3):
        if strip_newline:  # an editor saved the journal between two writers
            s.journal_path.write_bytes(s.journal_path.read_bytes().rstrip(b"\n"))
        before = committed(store)
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), str(attempt), "1000"],
            env=_env(),
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while len(committed(store)) == len(before) and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until the writer is busy (imports take a while)
        time.sleep(0.05 + 0.13 * attempt)  # then kill it at an arbitrary instant
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        after = committed(store)
        assert {k: after.get(k) for k in before} == before
        assert len(after) > len(before)  # the writer got some anchors through
        _, _repairs = repaired(s.anchor, f"after-{attempt}", frame(9.0))
        final = committed(store)
        assert {k: final.get(k) for k in after} == after
        assert_consistent(store)
    assert s.reference().revision == "after-2"
