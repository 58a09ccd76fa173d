"""Atomic file writes (temporary file in the same directory, fsync, rename) and file locks.

A temporary file of :func:`atomic_path` is named ``.<target name>.<random>.tmp``; a process
killed between creating and renaming it leaves it behind. :func:`stray_temp_files` finds them
so that the next writer holding the directory's lock can remove them.

Locks (:func:`file_lock`) use :mod:`filelock`: ``flock`` on Linux/macOS, ``msvcrt.locking`` on
Windows (untested here); both are released by the operating system when the holder dies, so a
killed writer never leaves a stale lock. On a Unix filesystem without ``flock`` filelock falls
back to a marker-file lock that detects dead holders.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_with",
    "file_lock",
    "stray_temp_files",
]

#: Names :func:`atomic_path` gives its temporary files (``tempfile.mkstemp``'s 8 random chars).
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically.

    On any exception the temporary file is removed and ``target`` is left as it was, so a reader
    sees either the old or the new content, never a half-written file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would (or keep the old one)
        os.chmod(tmp_path, _mode_for(target))
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _mode_for(target: Path) -> int:
    """The existing file's permissions, else 0666 minus the process umask."""
    try:
        return os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_with(target: Path, writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)


def stray_temp_files(directory: Path) -> list[Path]:
    """Temporary files of :func:`atomic_path` left in ``directory`` by a killed writer.

    Only call this while holding the lock that every writer of ``directory`` takes: a temporary
    file of a live writer would be listed too.
    """
    try:
        children = list(Path(directory).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(p for p in children if _TEMP_NAME.match(p.name) and p.is_file())


@contextlib.contextmanager
def file_lock(lock_file: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing, never deleted) for the block.

    A portable :class:`filelock.FileLock`: ``flock`` on Linux/macOS, ``msvcrt.locking`` on
    Windows. The operating system releases it when the block exits or the process dies, so a
    writer killed with SIGKILL never leaves a stale lock. Locks of one path exclude each other
    across processes and across calls in one process (a second ``file_lock`` of the same path
    in the same thread waits, as ``flock`` on a second descriptor does).

    Args:
        lock_file: The lock file.
        timeout: Seconds to wait; ``None`` waits until the lock is free.

    Raises:
        TimeoutError: The lock was not free within ``timeout`` seconds.
    """
    import filelock

    lock = filelock.FileLock(os.fspath(lock_file), timeout=-1 if timeout is None else timeout)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise TimeoutError(f"{lock_file}: still locked by another writer after {timeout}s") from exc
    try:
        yield
    finally:
        lock.release()
