"""rollback_apply: refusal, effects, idempotency, dry run, SIGKILL mid-apply, concurrent applies.

Every test works on copies of the sample ledger and baseline store in a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.cli import main
from analysis.errors import RollbackError
from analysis.evals.store import BaselineStore
from analysis.ledger import load_ledger
from analysis.rollback.applying import rollback_apply

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "data_samples" / "events.parquet"
RECORDED = ROOT / "data_samples" / "ledger.yaml"
AT = datetime(2026, 11, 3, 8, 15, tzinfo=UTC)


@pytest.fixture
def work(tmp_path: Path) -> dict[str, Path]:
    ledger = tmp_path / "ledger.yaml"
    shutil.copy(ROOT / "data_samples" / "rollback" / "ledger.yaml", ledger)
    store = tmp_path / "baselines"
    shutil.copytree(ROOT / "baselines", store)
    return {"ledger": ledger, "store": store, "out": tmp_path / "out", "dir": tmp_path}


def _apply(work: dict[str, Path], **kw: Any) -> Any:
    args: dict[str, Any] = {
        "events": EVENTS,
        "baselines": work["store"],
        "at": AT,
        "out_dir": work["out"],
        "recovery": False,
    }
    args.update(kw)
    return rollback_apply(work["ledger"], **args)


def _snapshot(work: dict[str, Path]) -> dict[str, bytes]:
    files = [work["ledger"], *sorted(p for p in work["store"].rglob("*") if p.is_file())]
    return {str(p): p.read_bytes() for p in files if not p.name.startswith(".")}


def _rollbacks(path: Path) -> int:
    return sum(t.action == "rollback" for t in load_ledger(path).transitions)


# ------------------------------------------------------------------ refusal (downstream schema)


def test_apply_refuses_while_a_confirmation_is_missing(work: dict[str, Path]) -> None:
    before = _snapshot(work)
    with pytest.raises(RollbackError, match="--confirm ticket-router") as info:
        _apply(work)
    assert info.value.exit_code == 1
    assert _snapshot(work) == before
    assert not work["out"].exists()


# --------------------------------------------------------------------------------- effects


def test_apply_writes_every_leg(work: dict[str, Path], truth_info: dict[str, Any]) -> None:
    result = _apply(work, confirm=["ticket-router"])
    assert result.changed
    assert not result.pending
    status = {s.name: s.status for s in result.steps}
    assert status == {
        "cohort_units": "applied",
        "cohort_conversations": "applied",
        "semantic_cache_expiry": "applied",
        "plan": "applied",
        "ledger": "applied",
        "baseline:support-qa": "applied",
    }
    # text: the ledger now equals the sample's recorded ledger, comments kept
    assert [t.to_dict() for t in load_ledger(work["ledger"]).transitions] == [
        t.to_dict() for t in load_ledger(RECORDED).transitions
    ]
    assert work["ledger"].read_text().startswith("# The embedded sample's rollout ledger *before*")
    # baseline: pinned to r41's version
    ref = BaselineStore(work["store"]).suite("support-qa").reference()
    assert (ref.version, ref.revision, ref.pinned) == ("v0001", "r41", True)
    # caches: the expiry list is every key r42 wrote, none extra
    keys = (work["out"] / "semantic_cache_expiry.txt").read_text().split()
    assert keys == sorted(truth_info["semantic_cache_keys_written_by_r42"])
    # cohort export matches the plan's counts
    findings = result.plan.leg("cohort").findings
    units = pl.read_csv(work["out"] / "cohort_units.csv")
    convs = pl.read_csv(work["out"] / "cohort_conversations.csv")
    assert units.height == findings["units"]
    assert convs.height == findings["conversations"]
    assert int(convs["open"].sum()) == findings["open_tainted_conversations"]
    assert json.loads((work["out"] / "plan.json").read_text()) == json.loads(result.plan.to_json())


def test_second_apply_changes_nothing_and_says_so(work: dict[str, Path]) -> None:
    _apply(work, confirm=["ticket-router"])
    after = _snapshot(work)
    exports = {p.name: p.read_bytes() for p in work["out"].iterdir()}
    again = _apply(work)  # no --confirm needed: the ledger already records the rollback
    assert again.already_recorded
    assert not again.changed
    assert {s.status for s in again.steps} == {"unchanged"}
    assert "nothing changed" in str(again)
    assert _snapshot(work) == after
    assert {p.name: p.read_bytes() for p in work["out"].iterdir()} == exports
    assert _rollbacks(work["ledger"]) == 1


def test_dry_run_writes_nothing(work: dict[str, Path]) -> None:
    before = _snapshot(work)
    refused = _apply(work, dry_run=True)
    assert refused.refused == ("ticket-router",)
    assert refused.exit_code == 1
    result = _apply(work, dry_run=True, confirm=["ticket-router"])
    assert result.exit_code == 0
    assert {s.status for s in result.steps} == {"would-apply"}
    assert "+  - {at: 2026-11-03T08:15:00Z, action: rollback" in result.ledger_diff
    assert _snapshot(work) == before
    assert not work["out"].exists()
    assert sorted(p.name for p in work["dir"].iterdir()) == ["baselines", "ledger.yaml"]


def test_reanchor_is_reported_pending(work: dict[str, Path]) -> None:
    cfg = work["store"] / "support-qa" / "suite.yaml"
    cfg.write_text(cfg.read_text().replace("on_revert: pin", "on_revert: reanchor"))
    result = _apply(work, confirm=["ticket-router"])
    (step,) = [s for s in result.steps if s.name == "baseline:support-qa"]
    assert step.status == "pending"
    assert "promptstate baseline revert support-qa" in step.detail
    assert result.pending == (step,)
    assert result.exit_code == 1  # something still needs doing: a re-anchor with fresh results


# ------------------------------------------------------------------------ SIGKILL mid-apply

_CHILD = r"""
import os, sys, time, pathlib
from datetime import datetime, UTC
point, workdir = sys.argv[1], pathlib.Path(sys.argv[2])
ledger = workdir / "ledger.yaml"

def pause():
    print("READY", flush=True)
    time.sleep(120)

real_replace = os.replace
real_write_text = pathlib.Path.write_text
real_write_bytes = pathlib.Path.write_bytes
if point == "mid-write":  # half of the ledger's temporary file is written (text or bytes)
    def write_text(self, data, *a, **k):
        if self.name.startswith(".ledger.yaml."):
            with open(self, "w") as fh:
                fh.write(data[: len(data) // 2]); fh.flush(); os.fsync(fh.fileno())
            pause()
        return real_write_text(self, data, *a, **k)
    def write_bytes(self, data):
        if self.name.startswith(".ledger.yaml."):
            with open(self, "wb") as fh:
                fh.write(data[: len(data) // 2]); fh.flush(); os.fsync(fh.fileno())
            pause()
        return real_write_bytes(self, data)
    pathlib.Path.write_text = write_text
    pathlib.Path.write_bytes = write_bytes
def replace(src, dst):
    if point == "before-replace" and str(dst) == str(ledger):
        pause()
    real_replace(src, dst)
    if point == "after-replace" and str(dst) == str(ledger):
        pause()  # the ledger is written; the baseline action has not run
os.replace = replace

from analysis.rollback.applying import rollback_apply
rollback_apply(ledger, events=sys.argv[3], baselines=workdir / "baselines",
               at=datetime(2026, 11, 3, 8, 15, tzinfo=UTC), out_dir=workdir / "out",
               confirm=["ticket-router"], recovery=False)
print("DONE", flush=True)
"""


@pytest.mark.parametrize("point", ["mid-write", "before-replace", "after-replace"])
def test_sigkill_mid_apply_leaves_the_ledger_before_or_after(
    work: dict[str, Path], point: str
) -> None:
    before = work["ledger"].read_text()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, point, str(work["dir"]), str(EVENTS)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    text = work["ledger"].read_text()
    expected_after = (
        before + "  - {at: 2026-11-03T08:15:00Z, action: rollback, experiment: exp-17, to: r41}\n"
    )
    assert text == (expected_after if point == "after-replace" else before)
    load_ledger(work["ledger"])  # always a valid ledger
    ref = BaselineStore(work["store"]).suite("support-qa").reference()
    assert ref.version == "v0002"  # killed before the baseline action
    # re-running completes the apply; one transition in the end
    result = _apply(work, confirm=["ticket-router"])
    assert result.already_recorded == (point == "after-replace")
    assert work["ledger"].read_text() == expected_after
    assert _rollbacks(work["ledger"]) == 1
    ref = BaselineStore(work["store"]).suite("support-qa").reference()
    assert (ref.version, ref.pinned) == ("v0001", True)
    again = _apply(work)
    assert not again.changed


_CONCURRENT = r"""
import sys, pathlib
from datetime import datetime, UTC
from analysis.rollback.applying import rollback_apply
workdir = pathlib.Path(sys.argv[1])
res = rollback_apply(workdir / "ledger.yaml", events=sys.argv[2], baselines=workdir / "baselines",
                     at=datetime(2026, 11, 3, 8, 15, tzinfo=UTC), out_dir=workdir / "out",
                     confirm=["ticket-router"], recovery=False)
print("already" if res.already_recorded else "applied")
"""


def test_two_concurrent_applies_give_one_transition(work: dict[str, Path]) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT, str(work["dir"]), str(EVENTS)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["already", "applied"]
    assert _rollbacks(work["ledger"]) == 1


# ---------------------------------------------------------------------------------- CLI


def test_cli_apply(work: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = ["rollback", "apply", "--ledger", str(work["ledger"]), "--events", str(EVENTS)]
    base += ["--store", str(work["store"]), "--at", "2026-11-03T08:15:00Z"]
    base += ["--out", str(work["out"]), "--no-recovery"]
    assert main(base) == 1
    assert "--confirm ticket-router" in capsys.readouterr().err
    assert main([*base, "--confirm", "ticket-router", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] is True
    assert list(data)[:2] == ["schema_version", "apply_id"]
    assert data["schema_version"] == 1
    assert list(data["plan"]) == ["schema_version", "prompt", "from", "to", "legs", "actions"]
    assert main([*base, "--confirm", "ticket-router"]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert _rollbacks(work["ledger"]) == 1


def test_cli_apply_on_the_sample_needs_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    sample = ROOT / "data_samples" / "rollback"
    before = {p.name: p.read_bytes() for p in sample.iterdir()}
    assert main(["rollback", "apply"]) == 2
    assert "--dry-run" in capsys.readouterr().err
    assert main(["rollback", "apply", "--dry-run", "--no-recovery"]) == 1
    assert "would refuse until confirmed: ticket-router" in capsys.readouterr().out
    code = main(["rollback", "apply", "--dry-run", "--confirm", "ticket-router", "--no-recovery"])
    assert code == 0
    assert {p.name: p.read_bytes() for p in sample.iterdir()} == before


# ------------------------------------------------------- failures: 2 before any action, then 1


def _cli(work: dict[str, Path], *extra: str) -> list[str]:
    argv = ["rollback", "apply", "--ledger", str(work["ledger"]), "--events", str(EVENTS)]
    argv += ["--store", str(work["store"]), "--at", "2026-11-03T08:15:00Z", "--no-recovery"]
    return [*argv, "--confirm", "ticket-router", *extra]


def test_unwritable_out_fails_before_any_action(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(work)
    blocker = work["dir"] / "file"
    blocker.write_text("x")
    assert main(_cli(work, "--out", str(blocker / "out"))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot write" in err
    assert _snapshot(work) == before


def test_out_onto_an_input_is_refused(
    work: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    export = work["dir"] / "export"
    export.mkdir()
    shutil.copy(EVENTS, export / "part-0.parquet")
    before = _snapshot(work)
    argv = _cli(work, "--out", str(export))
    argv[argv.index("--events") + 1] = str(export)
    assert main(argv) == 2
    assert "would overwrite what this command reads" in capsys.readouterr().err
    assert [p.name for p in export.iterdir()] == ["part-0.parquet"]
    assert _snapshot(work) == before
    # the store and the ledger's own file are inputs too
    assert main(_cli(work, "--out", str(work["store"] / "support-qa"))) == 2
    assert _snapshot(work) == before


def test_failure_after_an_action_is_exit_1_and_a_rerun_completes(
    work: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import analysis.rollback.applying as applying
    from analysis.errors import LedgerError, RollbackIncompleteError

    def fail(*_: Any, **__: Any) -> Any:
        raise LedgerError(f"{work['ledger']}: disk trouble")

    monkeypatch.setattr(applying, "_append", fail)
    with pytest.raises(RollbackIncompleteError) as info:
        _apply(work, confirm=["ticket-router"])
    assert info.value.failed == "ledger"
    assert info.value.done == ("cohort_units", "cohort_conversations", "semantic_cache_expiry", "plan")  # fmt: skip
    assert _rollbacks(work["ledger"]) == 0
    shutil.rmtree(work["out"])
    assert main(_cli(work, "--out", str(work["out"]))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "stopped at step 'ledger'" in err
    assert "re-run the same command" in err
    monkeypatch.undo()
    assert main(_cli(work, "--out", str(work["out"]))) == 0
    assert _rollbacks(work["ledger"]) == 1
    ref = BaselineStore(work["store"]).suite("support-qa").reference()
    assert (ref.version, ref.pinned) == ("v0001", True)


def test_baseline_failure_after_the_ledger_is_exit_1_not_3(
    work: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.errors import InvalidBaselineError

    def tampered(*_: Any, **__: Any) -> Any:
        raise InvalidBaselineError("support-qa/journal.jsonl: entry 2 does not match")

    monkeypatch.setattr(BaselineStore, "sync", tampered)
    assert main(_cli(work, "--out", str(work["out"]))) == 1
    err = capsys.readouterr().err
    assert "stopped at step 'baseline'" in err
    assert "ledger" in err.split("Done before it:")[1]
    assert _rollbacks(work["ledger"]) == 1
    monkeypatch.undo()
    assert main(_cli(work, "--out", str(work["out"]))) == 0
    ref = BaselineStore(work["store"]).suite("support-qa").reference()
    assert (ref.version, ref.pinned) == ("v0001", True)


def test_refusal_is_exit_1_and_changes_nothing(work: dict[str, Path]) -> None:
    from analysis.errors import RollbackRefusedError

    before = _snapshot(work)
    with pytest.raises(RollbackRefusedError):
        _apply(work)
    argv = _cli(work, "--out", str(work["out"]))
    argv.remove("--confirm")
    argv.remove("ticket-router")
    assert main(argv) == 1
    assert _snapshot(work) == before
    assert not work["out"].exists()


# ------------------------------------------------------------- many transitions: linear time


def long_ledger(n: int, path: Path, *, same_prompt: bool = False) -> Path:
    """The sample's pre-rollback ledger with ``n`` transitions in all.

    By default a second prompt (``filler``) is deployed back and forth every few minutes from
    October to just before the rollback, interleaved in time with the sample's own three
    transitions. With ``same_prompt`` the rolled-back prompt itself has the long history:
    ``r40`` and ``r41`` deployed back and forth in October (every one a cache boundary).
    """
    text = (ROOT / "data_samples" / "rollback" / "ledger.yaml").read_text()
    head, body = text.split("transitions:\n")
    if same_prompt:
        head = head.replace(
            "      r41: {contract: v3}",
            "      r40: {contract: v3}\n      r41: {parent: r40, contract: v3}",
        )
        prompt, revisions = "support-assistant", ("r40", "r41")
        start, stop = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 31, tzinfo=UTC)
    else:
        head = head.replace(
            "experiments:",
            "  filler:\n    revisions:\n      f1: {contract: v1}\n      f2: {parent: f1, contract: v1}\n"
            "experiments:",
        )
        prompt, revisions = "filler", ("f1", "f2")
        start, stop = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 3, 8, tzinfo=UTC)
    own = [line for line in body.splitlines() if line.strip()]
    times = [datetime.fromisoformat(line.split("at: ")[1].split(",")[0]) for line in own]
    k = n - len(own)
    step = (stop - start) / max(k, 1)
    entries = list(zip(times, own, strict=True))
    for i in range(k):
        at = (start + step * i).replace(microsecond=0)
        stamp = at.isoformat().replace("+00:00", "Z")
        rev = revisions[i % 2]
        entries.append(
            (at, f"  - {{at: {stamp}, action: deploy, prompt: {prompt}, revision: {rev}}}")
        )
    entries.sort(key=lambda e: e[0])
    path.write_text(head + "transitions:\n" + "\n".join(line for _, line in entries) + "\n")
    return path


def test_a_long_ledger_plans_and_applies_as_the_short_one(work: dict[str, Path]) -> None:
    from analysis.rollback.planning import rollback_plan

    kw: dict[str, Any] = {"events": EVENTS, "baselines": work["store"], "at": AT}
    short = rollback_plan(work["ledger"], "support-assistant", recovery=False, **kw)
    path = long_ledger(600, work["dir"] / "long.yaml")
    assert len(load_ledger(path).transitions) == 600
    long = rollback_plan(path, "support-assistant", recovery=False, **kw)
    assert long.to_dict() == short.to_dict()
    confirmed = rollback_plan(
        work["ledger"], "support-assistant", recovery=False, confirm=["ticket-router"], **kw
    )
    result = rollback_apply(
        path, "support-assistant", confirm=["ticket-router"], out_dir=work["out"],
        recovery=False, **kw,
    )  # fmt: skip
    assert {s.status for s in result.steps} == {"applied"}
    assert len(load_ledger(path).transitions) == 601
    assert json.loads((work["out"] / "plan.json").read_text()) == json.loads(confirmed.to_json())


def _timed(n: int, workdir: Path, *, same_prompt: bool = False) -> tuple[float, float]:
    """Seconds of plan and of apply on the sample with an ``n``-transition ledger."""
    import time

    from analysis.rollback.planning import rollback_plan

    shutil.copytree(ROOT / "baselines", workdir / "baselines", dirs_exist_ok=True)
    path = long_ledger(n, workdir / f"ledger-{n}.yaml", same_prompt=same_prompt)
    kw: dict[str, Any] = {"events": EVENTS, "baselines": workdir / "baselines", "at": AT}
    t0 = time.perf_counter()
    rollback_plan(path, "support-assistant", **kw)
    t1 = time.perf_counter()
    rollback_apply(path, "support-assistant", confirm=["ticket-router"],
                   out_dir=workdir / f"out-{n}-{same_prompt}", **kw)  # fmt: skip
    return t1 - t0, time.perf_counter() - t1


@pytest.mark.slow
@pytest.mark.parametrize("same_prompt", [False, True])
def test_plan_and_apply_are_linear_in_transitions(tmp_path: Path, same_prompt: bool) -> None:
    """10,000 transitions (times PROMPTSTATE_SIM_SCALE): plan and apply each well under the
    quadratic times (1k: 12 s, 10k: > 400 s). The bound is 3x the 5 s floor, for shared CI
    machines; the figures are in docs/reliability.md (``python tests/test_rollback_apply.py``)."""
    from conftest import sim_scale

    n = max(int(10_000 * sim_scale()), 500)
    plan_s, apply_s = _timed(n, tmp_path, same_prompt=same_prompt)
    assert plan_s < 15, plan_s
    assert apply_s < 15, apply_s


if __name__ == "__main__":  # python tests/test_rollback_apply.py [N ...]
    import tempfile

    for size in [int(a) for a in sys.argv[1:]] or [1_000, 10_000]:
        for same in (False, True):
            with tempfile.TemporaryDirectory() as d:
                p, a = _timed(size, Path(d), same_prompt=same)
            what = "the rolled-back prompt's own" if same else "another prompt's"
            print(f"{size:>6} transitions ({what}): plan {p:5.2f} s, apply {a:5.2f} s")
