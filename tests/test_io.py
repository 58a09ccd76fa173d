"""Atomic writes (analysis._io)."""

from __future__ import annotations

from pathlib import Path


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
