"""rollback apply --actions under faults (issue 19): redirects, URL secrets, kills, timeouts.

Everything runs through :func:`analysis.cli.main` on a copy of the sample's pre-rollback ledger
(no events: the apply writes only ``plan.json`` and the transition, so each run is quick), with
real local HTTP servers (:mod:`_servers`) and real processes:

* a webhook answered with a redirect — to another host (a second server that must receive
  nothing) or to the same host — fails (exit 1) naming the ``Location`` as ``scheme://host``,
  is journalled ``failed`` and retried by the next apply;
* a URL a ``${VAR}`` was substituted into is shown as ``scheme://host`` only, whatever the
  variable's name, in the dry run, the plan, the output, the errors and the journal;
* an apply SIGKILLed while writing an export leaves a temporary file that the next apply
  removes (only its own, and only under the lock), saying so;
* a ``command`` that times out is killed with every process it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _servers import Recorder, http_recorder

from analysis.cli import main
from analysis.rollback._journal import journal_path

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"
AT = "2026-11-03T08:15:00Z"
AUTH = "Bearer live-0123456789-auth"
HOOK_SECRET = "whsec-faults-0123456789"


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    """Two local HTTP servers: the webhook's and another host."""
    with http_recorder() as hook, http_recorder() as other:
        yield hook, other


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    ledger = tmp_path / "ledger.yaml"
    shutil.copy(PRE, ledger)
    monkeypatch.chdir(tmp_path)  # no baseline store is found from here
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)
    return {"dir": tmp_path, "ledger": ledger, "actions": tmp_path / "actions.yaml",
            "out": tmp_path / "out"}  # fmt: skip


def _argv(work: dict[str, Path], *extra: str) -> list[str]:
    argv = ["rollback", "apply", "--ledger", str(work["ledger"]), "--at", AT, "--no-recovery"]
    argv += ["--confirm", "ticket-router", "--out", str(work["out"])]
    argv += ["--actions", str(work["actions"])]
    return [*argv, *extra]


def _actions(work: dict[str, Path], actions: dict[str, Any]) -> None:
    work["actions"].write_text(yaml.safe_dump(actions))


def _journal(work: dict[str, Path]) -> list[dict[str, Any]]:
    path = journal_path(work["ledger"])
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _hook(url: str) -> dict[str, Any]:
    """A webhook that carries everything that must not reach another host."""
    return {"kind": "webhook", "url": url, "secret": "${HOOK_SECRET}",
            "headers": {"Authorization": AUTH}}  # fmt: skip


# --------------------------------------------------------------------------- redirects (1, 2)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_fails_and_sends_it_nothing(
    work: dict[str, Path],
    servers: tuple[Recorder, Recorder],
    capsys: pytest.CaptureFixture[str],
    code: int,
) -> None:
    hook, other = servers
    hook.redirect["/hook"] = (code, other.url("/collect/tok-9f8e7d?sig=abc"))
    _actions(work, {"contracts": [_hook(hook.url("/hook"))]})
    assert main(_argv(work)) == 1
    err = capsys.readouterr().err
    assert other.requests == [], "nothing may reach another host"
    (sent,) = hook.requests
    assert (sent.method, sent.path) == ("POST", "/hook")
    line = err.strip()
    assert "\n" not in line
    assert "Traceback" not in err
    assert "contracts[0]" in line
    assert f"HTTP {code} redirect" in line
    assert f"to http://127.0.0.1:{other.port} " in line  # the Location: scheme://host only
    assert "tok-9f8e7d" not in line
    assert "sig=" not in line
    assert "/collect" not in line
    assert AUTH not in err
    assert HOOK_SECRET not in err
    (entry,) = _journal(work)
    assert (entry["action"], entry["status"]) == ("contracts[0]", "failed")
    assert "tok-9f8e7d" not in json.dumps(entry)


def test_a_redirect_to_the_same_host_is_journalled_failed_and_retried(
    work: dict[str, Path], servers: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    """Old behaviour: the 302 was followed with a GET without body, whose 200 was journalled
    ``done … HTTP 200`` and never retried."""
    hook, _ = servers
    hook.redirect["/hook"] = (302, "/elsewhere")
    _actions(work, {"any": [_hook(hook.url("/hook"))]})
    assert main(_argv(work)) == 1
    err = capsys.readouterr().err
    assert f"HTTP 302 redirect to http://127.0.0.1:{hook.port} " in err
    assert hook.to("/elsewhere") == []
    assert [(e["action"], e["status"]) for e in _journal(work)] == [("any[0]", "failed")]
    # the receiver is fixed: the re-run retries the POST, with the same key, and it is done
    del hook.redirect["/hook"]
    assert main(_argv(work, "--format", "json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(a["action"], a["status"]) for a in data["actions"]] == [("any[0]", "done")]
    first, second = hook.to("/hook")
    assert first.method == second.method == "POST"
    assert second.body == first.body
    assert second.json()["leg"] == "any"
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert [e["status"] for e in _journal(work)] == ["failed", "done"]
    assert hook.to("/elsewhere") == []
    assert main(_argv(work)) == 0  # done: not sent again
    assert len(hook.to("/hook")) == 2


# ------------------------------------------------------------------- URLs hold secrets (9)


def test_a_url_from_a_variable_shows_scheme_and_host_only(
    work: dict[str, Path],
    servers: tuple[Recorder, Recorder],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook, _ = servers
    token_path = "/services/T0AAAA/B0BBBB/xoxq1w2e3r4t5y"
    monkeypatch.setenv("SLACK_HOOK", hook.url(token_path))  # no SECRET/TOKEN/KEY in the name
    monkeypatch.setenv("ROUTE", "r0ute-4c7b2e")
    origin = f"http://127.0.0.1:{hook.port}"
    _actions(
        work,
        {
            "contracts": [{"kind": "webhook", "url": "${SLACK_HOOK}"}],
            "any": [{"kind": "webhook", "url": origin + "/in/${ROUTE}?x=1"}],
        },
    )
    hidden = ("T0AAAA", "xoxq1w2e3r4t5y", "/services", "r0ute-4c7b2e", "/in/")

    def clean(text: str) -> None:
        for value in hidden:
            assert value not in text, value

    outputs = []
    for extra in ([], ["--format", "json"], ["--format", "markdown"]):
        assert main(_argv(work, "--dry-run", *extra)) == 0
        outputs.append(capsys.readouterr().out)
    assert main(["rollback", "plan", *_argv(work)[2:6], "--actions", str(work["actions"])]) == 1
    outputs.append(capsys.readouterr().out)
    for text in outputs:
        clean(text)
        assert f"POST {origin}" in text
    # a failure names the redacted URL too, and so does the journal
    hook.status[token_path] = 503
    assert main(_argv(work)) == 1
    captured = capsys.readouterr()
    clean(captured.out + captured.err)
    assert f"{origin}: HTTP 503" in captured.err
    hook.status.clear()
    assert main(_argv(work)) == 0
    captured = capsys.readouterr()
    clean(captured.out + captured.err)
    journal = journal_path(work["ledger"]).read_text()
    clean(journal)
    assert [(e["action"], e["status"]) for e in _journal(work)] == [
        ("contracts[0]", "failed"), ("any[0]", "done"), ("contracts[0]", "done")
    ]  # fmt: skip
    assert len(hook.to(token_path)) == 2
    assert len(hook.to("/in/r0ute-4c7b2e?x=1")) == 1


def test_an_unreachable_url_from_a_variable_is_redacted_in_the_error(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from _servers import free_port

    port = free_port()
    monkeypatch.setenv("DEPLOY_HOOK", f"http://127.0.0.1:{port}/hook/zq8-unguessable")
    _actions(work, {"any": [{"kind": "webhook", "url": "${DEPLOY_HOOK}"}]})
    before = work["ledger"].read_bytes()
    assert main(_argv(work)) == 2
    err = capsys.readouterr().err
    assert "any[0] (webhook) is not reachable" in err
    assert f"http://127.0.0.1:{port}" in err
    assert "zq8-unguessable" not in err
    assert work["ledger"].read_bytes() == before
    assert not work["out"].exists()


# ------------------------------------------------------------------- stale temporaries (10a)

_KILLED = r"""
import os, sys, time
from datetime import datetime, UTC
real = os.replace
def replace(src, dst):
    if os.path.basename(str(src)).startswith(".plan.json."):
        print("READY", flush=True)   # the export's temporary file is written, not renamed
        time.sleep(120)
    real(src, dst)
os.replace = replace
from analysis.rollback.applying import rollback_apply
rollback_apply(sys.argv[1], at=datetime(2026, 11, 3, 8, 15, tzinfo=UTC), out_dir=sys.argv[2],
               confirm=["ticket-router"], recovery=False)
"""


def test_a_killed_apply_leaves_a_temporary_file_the_next_run_removes(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(work["ledger"]), str(work["out"])],
        stdout=subprocess.PIPE,
        text=True,
        cwd=work["dir"],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    (stale,) = [p.name for p in work["out"].iterdir() if p.name.endswith(".tmp")]
    assert stale.startswith(".plan.json.")
    # not ours: kept, whatever they look like
    for name in (".notes.txt.abcd1234.tmp", "plan.json.tmp", ".plan.json.tmp"):
        (work["out"] / name).write_text("someone else's")
    # a dry run lists it and removes nothing
    assert main([*_argv(work)[:-2], "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "stale-temporaries" in out
    assert stale in out
    assert (work["out"] / stale).exists()
    # the next apply removes it and says so
    assert main(_argv(work)[:-2]) == 0
    out = capsys.readouterr().out
    assert f"removed 1 temporary file(s) a killed apply left in {work['out']}: {stale}" in out
    left = sorted(p.name for p in work["out"].iterdir())
    assert left == [".notes.txt.abcd1234.tmp", ".plan.json.tmp", "plan.json", "plan.json.tmp"]


def test_a_temporary_file_of_a_live_apply_is_not_removed(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Removal happens under the ledger's lock: while another apply holds it (and so may be
    writing the temporary file), the second waits and touches nothing."""
    from analysis.ledger.writer import ledger_lock

    work["out"].mkdir()
    live = work["out"] / ".cohort_units.csv.x1y2z3w4.tmp"
    live.write_text("being written")
    codes: list[int] = []
    with ledger_lock(work["ledger"]):
        thread = threading.Thread(target=lambda: codes.append(main(_argv(work)[:-2])))
        thread.start()
        time.sleep(1.0)
        assert live.exists()
        assert not codes
    thread.join(30)
    assert codes == [0]
    assert not live.exists()
    assert "removed 1 temporary file(s)" in capsys.readouterr().out


# ------------------------------------------------------------------ process groups (10b)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("holds_stdout", [False, True], ids=["detached-child", "child-on-stdout"])
def test_a_command_that_times_out_is_killed_with_its_children(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str], holds_stdout: bool
) -> None:
    """The old code killed only the command: a child kept running (and one that held the
    output pipe made apply wait for it)."""
    redirect = "" if holds_stdout else " >/dev/null 2>&1 </dev/null"
    script = f"sleep 25{redirect} & echo $! > child.pid; wait"
    _actions(work, {"any": [{"kind": "command", "run": ["/bin/sh", "-c", script], "timeout": 1}]})
    child = 0
    try:
        start = time.monotonic()
        assert main(_argv(work)) == 1
        elapsed = time.monotonic() - start
        child = int((work["dir"] / "child.pid").read_text())
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the command's child survived its timeout"
        assert elapsed < 15, "apply waited for the command's child"
        err = capsys.readouterr().err
        assert "any[0]" in err
        assert "timed out after 1 s" in err
        assert [e["status"] for e in _journal(work)] == ["failed"]
    finally:
        if child and _alive(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
