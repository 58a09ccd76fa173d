"""Where ledger writes land: at the real file behind a symbolic link, with one lock for the link
and the target, lock files in one hidden folder, and the file's line endings kept."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.ledger import load_ledger
from analysis.ledger.writer import LOCK_DIR, append_transition, ledger_lock, lock_path

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"  # exp-17 still running
AT = "2026-11-03T08:15:00Z"
ROLLBACK = ["ledger", "record", "rollback", "--experiment", "exp-17", "--at", AT]

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """``real/ledger.yaml`` (the sample before its rollback) and ``ledger.yaml`` -> it."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "ledger.yaml"
    shutil.copy(PRE, target)
    link = tmp_path / "ledger.yaml"
    link.symlink_to(Path("real") / "ledger.yaml")
    return link, target


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_record_through_a_link_writes_the_target_and_keeps_the_link(
    linked: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    link, target = linked
    before = target.read_bytes()
    assert main([*ROLLBACK, "--ledger", str(link)]) == 0
    assert f"{link}: recorded transitions[3]" in capsys.readouterr().out  # named as given
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("real", "ledger.yaml")
    after = target.read_bytes()
    assert after.startswith(before)
    assert after[len(before) :] == (
        b"  - {at: 2026-11-03T08:15:00Z, action: rollback, experiment: exp-17}\n"
    )
    assert load_ledger(target).transitions[-1].action == "rollback"
    # the lock and the temporary file were next to the target, not the link
    assert _names(link.parent) == {"ledger.yaml", "real"}
    assert _names(target.parent) == {"ledger.yaml", LOCK_DIR}
    assert _names(target.parent / LOCK_DIR) == {"ledger.yaml.lock"}


def test_rollback_apply_through_a_link_records_in_the_target(
    linked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link, target = linked
    monkeypatch.chdir(tmp_path)
    argv = ["rollback", "apply", "--ledger", str(link), "--prompt", "support-assistant", "--at",
            AT, "--no-recovery", "--confirm", "ticket-router"]  # fmt: skip
    assert main(argv) == 0
    assert link.is_symlink()
    assert load_ledger(target).transitions[-1].action == "rollback"
    assert not (tmp_path / f".{link.name}.lock").exists()
    assert not (tmp_path / LOCK_DIR).exists()


def test_a_link_and_its_target_share_one_lock(linked: tuple[Path, Path]) -> None:
    link, target = linked
    assert lock_path(link) == lock_path(target) == target.parent / LOCK_DIR / "ledger.yaml.lock"
    done = threading.Event()
    codes: list[int] = []

    def through_the_link() -> None:
        codes.append(main([*ROLLBACK, "--ledger", str(link)]))
        done.set()

    with ledger_lock(target) as real:
        assert real == target.resolve()
        thread = threading.Thread(target=through_the_link)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # the writer given the link waits for the target's lock
        ramp = {"at": "2026-11-03T08:00:00Z", "action": "ramp", "experiment": "exp-17",
                "allocation": {"control": 0.5, "treatment": 0.5}}  # fmt: skip
        append_transition(target, ramp, locked=True, resolved=real)
    thread.join(timeout=60)
    assert codes == [0]
    actions = [t.action for t in load_ledger(target).transitions]
    assert actions[-2:] == ["ramp", "rollback"]  # serialized: both landed, in order


def test_a_refused_record_through_a_link_changes_nothing(
    linked: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    link, target = linked
    before = target.read_bytes()
    argv = ["ledger", "record", "stop", "--experiment", "exp-99", "--ledger", str(link)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"promptstate: error: {link}: ")
    assert "exp-99" in err
    assert target.read_bytes() == before
    assert link.is_symlink()


def test_text_files_are_relative_to_the_real_ledger(
    linked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link, target = linked
    monkeypatch.chdir(tmp_path)
    assert main([*ROLLBACK, "--ledger", str(link)]) == 0
    (tmp_path / "r43.txt").write_text("Be brief.\n")
    argv = ["ledger", "record", "deploy", "--ledger", str(link), "--prompt", "support-assistant",
            "--revision", "r43", "--text-file", "r43.txt", "--at", "2026-11-04T00:00:00Z"]  # fmt: skip
    assert main(argv) == 0
    assert load_ledger(target).revisions["r43"].text_file == "../r43.txt"
    assert (
        load_ledger(link).revisions["r43"].text_sha256
        == load_ledger(target).revisions["r43"].text_sha256
    )


# ------------------------------------------------------------------------------ lock files


def test_lock_files_live_in_one_hidden_folder(tmp_path: Path) -> None:
    """Two ledgers in one folder: one `.promptstate` folder, no `.<name>.lock` files."""
    for name in ("a.yaml", "b.yaml"):
        shutil.copy(PRE, tmp_path / name)
        assert main([*ROLLBACK, "--ledger", str(tmp_path / name)]) == 0
    assert _names(tmp_path) == {"a.yaml", "b.yaml", LOCK_DIR}
    assert _names(tmp_path / LOCK_DIR) == {"a.yaml.lock", "b.yaml.lock"}


def test_a_lock_file_is_never_deleted_while_held(tmp_path: Path) -> None:
    path = tmp_path / "ledger.yaml"
    shutil.copy(PRE, path)
    lock = lock_path(path)
    with ledger_lock(path):
        assert lock.is_file()
        append_transition(path, {"at": AT, "action": "stop", "experiment": "exp-17"}, locked=True)
        assert lock.is_file()
    assert lock.is_file()  # released, but kept: another writer may be about to take it


def test_an_older_versions_lock_is_taken_too_while_it_exists(tmp_path: Path) -> None:
    """A `.ledger.yaml.lock` left by an older version: its writers still exclude ours."""
    from analysis._io import file_lock

    path = tmp_path / "ledger.yaml"
    shutil.copy(PRE, path)
    legacy = tmp_path / ".ledger.yaml.lock"
    legacy.touch()
    done = threading.Event()

    def record() -> None:
        main([*ROLLBACK, "--ledger", str(path)])
        done.set()

    with file_lock(legacy):  # an older writer holds its lock
        thread = threading.Thread(target=record)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()
    thread.join(timeout=60)
    assert done.is_set()
    assert legacy.is_file()  # never deleted
    assert load_ledger(path).transitions[-1].action == "rollback"


def test_an_unwritable_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes everywhere")
    path = tmp_path / "ledger.yaml"
    shutil.copy(PRE, path)
    tmp_path.chmod(0o555)
    try:
        assert main([*ROLLBACK, "--ledger", str(path)]) == 2
    finally:
        tmp_path.chmod(0o755)
    assert "cannot create the lock file" in capsys.readouterr().err


# ---------------------------------------------------------------------------- line endings


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_crlf_ledger_keeps_crlf_line_endings(tmp_path: Path, suffix: str) -> None:
    if suffix == ".json":
        import json

        from analysis import _yaml

        text = json.dumps(_yaml.load(PRE), indent=2) + "\n"
    else:
        text = PRE.read_text()
    path = tmp_path / f"ledger{suffix}"
    original = text.replace("\n", "\r\n").encode()
    path.write_bytes(original)
    assert main([*ROLLBACK, "--ledger", str(path)]) == 0
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") > original.count(b"\r\n")
    if suffix == ".yaml":
        assert data.startswith(original)
    assert load_ledger(path).transitions[-1].action == "rollback"


def test_crlf_is_kept_when_the_record_declares(tmp_path: Path) -> None:
    path = tmp_path / "ledger.yaml"
    original = PRE.read_text().replace("\n", "\r\n").encode()
    path.write_bytes(original)
    assert main([*ROLLBACK, "--ledger", str(path)]) == 0
    argv = ["ledger", "record", "deploy", "--ledger", str(path), "--prompt", "support-assistant",
            "--revision", "r43", "--text", "Be brief.\nAlways.", "--at", "2026-11-04T00:00:00Z"]  # fmt: skip
    assert main(argv) == 0
    consumer = ["ledger", "record", "consumer", "bi", "--ledger", str(path), "--prompt",
                "support-assistant", "--accepts", "v3"]  # fmt: skip
    assert main(consumer) == 0
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    assert load_ledger(path).revisions["r43"].text == "Be brief.\nAlways."


def test_an_lf_ledger_stays_lf(tmp_path: Path) -> None:
    path = tmp_path / "ledger.yaml"
    shutil.copy(PRE, path)
    assert main([*ROLLBACK, "--ledger", str(path)]) == 0
    assert b"\r" not in path.read_bytes()
