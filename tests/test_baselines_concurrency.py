"""Nothing lost under concurrency or crashes: parallel writers, SIGKILL mid-write."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from analysis.evals.store import BaselineStore, SuiteConfig

ROOT = Path(__file__).resolve().parent.parent
SUITE_YAML = ROOT / "data_samples" / "evals" / "support-qa.suite.yaml"

WRITER = textwrap.dedent(
    """
    import sys
    import polars as pl
    from analysis.evals.store import BaselineStore

    store, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    suite = BaselineStore(store).suite("qa")
    for i in range(count):
        df = pl.DataFrame({"example_id": [f"e{j}" for j in range(20)],
                           "correct": [(i + j + worker) % 2 for j in range(20)],
                           "rubric": [float(worker * 100 + i)] * 20})
        suite.anchor(f"w{worker}-{i}", df, actor=f"worker-{worker}")
    """
)

# dies with SIGKILL at a chosen point of the anchor protocol
CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    import polars as pl
    import analysis.evals._files as low
    import analysis.evals.store as bl

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
    elif point == "mid-journal":
        def hook(path, record):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.write(fd, (low.to_json(record, indent=None)[:25]).encode())
            die()
        bl.append_line = hook
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
    return versions


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
    import polars as pl

    s.anchor("r1", pl.DataFrame({"example_id": ["a"], "correct": [1], "rubric": [1.0]}))
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(store.root), point],
        check=False,
        env=_env(),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    versions = assert_consistent(store)
    committed = point == "before-reference"  # journal line written: the anchor is committed
    assert versions == (["v0001", "v0002"] if committed else ["v0001"])
    assert s.reference().version == versions[-1]
    # the next writer repairs leftovers and continues the numbering
    meta, ref = s.anchor("r3", pl.DataFrame({"example_id": ["a"], "correct": [0], "rubric": [2.0]}))
    assert meta.id == f"v{len(versions) + 1:04d}"
    assert ref.version == meta.id
    assert assert_consistent(store) == [*versions, meta.id]
    assert sorted(p.name for p in (s.path / "versions").iterdir()) == [*versions, meta.id]
    pointer = json.loads((s.path / "reference.json").read_text())
    assert pointer["version"] == meta.id


def test_random_sigkills_during_a_writer_loop(store: BaselineStore) -> None:
    """Kill a busy writer at arbitrary instants; after each kill the store is consistent."""
    for attempt in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.root), str(attempt), "1000"],
            env=_env(),
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0 + 0.37 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert_consistent(store)
    s = store.suite("qa")
    import polars as pl

    s.anchor("after", pl.DataFrame({"example_id": ["a"], "correct": [1], "rubric": [1.0]}))
    assert_consistent(store)
    assert s.reference().revision == "after"
