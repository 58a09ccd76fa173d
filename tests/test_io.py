"""Atomic writes, temporary leftovers and portable locks (analysis._io)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_atomic_writes_get_normal_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from analysis._io import atomic_write_text

    target = tmp_path / "out.txt"
    atomic_write_text(target, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    target.chmod(0o600)
    atomic_write_text(target, "y")  # an existing file keeps its mode
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "y"


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from analysis._io import file_lock

with file_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""

KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from analysis._io import atomic_path

with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )


def test_file_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    from analysis._io import file_lock

    lock = tmp_path / ".lock"
    holder = _python(LOCK_HOLDER, str(lock))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        start = time.perf_counter()
        with (
            pytest.raises(TimeoutError, match="still locked by another writer after 0.3s"),
            file_lock(lock, timeout=0.3),
        ):
            pass
        assert time.perf_counter() - start >= 0.3
    finally:
        holder.send_signal(signal.SIGKILL)  # a writer killed while holding the lock
        holder.communicate(timeout=30)
    with file_lock(lock, timeout=5):  # the operating system released it: no stale lock
        assert lock.exists()
    assert lock.exists()  # the lock file stays (waiters share its inode)


def test_file_lock_excludes_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    from analysis._io import file_lock

    lock = tmp_path / ".lock"
    with file_lock(lock), pytest.raises(TimeoutError), file_lock(lock, timeout=0.1):
        pass
    with file_lock(lock, timeout=0.1):
        pass


def test_a_killed_atomic_write_leaves_a_temporary_file_that_is_found(tmp_path: Path) -> None:
    from analysis._io import atomic_write_text, stray_temp_files

    target = tmp_path / "meta.json"
    atomic_write_text(target, "old")
    proc = _python(KILLED_WRITER, str(target))
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (stray,) = stray_temp_files(tmp_path)
    assert stray.read_text() == "half"
    assert stray.name.startswith(".meta.json.")
    assert target.read_text() == "old"  # the target is untouched
    (tmp_path / "notes.tmp").write_text("mine")  # not a name atomic_path gives
    (tmp_path / ".hidden").write_text("mine")
    assert stray_temp_files(tmp_path) == [stray]
    assert stray_temp_files(tmp_path / "missing") == []
