"""Recording transitions as they happen: ``promptstate ledger record`` and ``record_transition``.

The acceptance test generates random valid ledgers (seeded), keeps only their header (the
declarations), records every transition again through the CLI and checks that the phases, the
live revisions, the reverts and the transitions equal the original's exactly.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis import _yaml
from analysis.cli import main
from analysis.cli.ledger import RECORD_ACTIONS
from analysis.errors import LedgerError
from analysis.ledger import (
    ACTIONS,
    Ledger,
    load_ledger,
    parse_ledger,
    record_transition,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HEADER_COMMENT = "# generated ledger: the header is typed by hand, transitions are recorded\n"


# ------------------------------------------------------------------------------ the generator


def generate_ledger(seed: int, steps: int = 30) -> dict[str, Any]:
    """A random valid ledger: 1-3 prompts with 2-4 revisions each, experiments (some never
    started) with 2-3 arms, deploys, ramps, experiment and prompt rollbacks, promotions and
    stops, equal times now and then, reasons and actors; shares with long binary expansions."""
    rng = random.Random(seed)
    prompts: dict[str, list[str]] = {}
    for p in range(rng.randint(1, 3)):
        prompts[f"p{p}"] = [f"p{p}r{r}" for r in range(rng.randint(2, 4))]
    live: dict[str, str | None] = dict.fromkeys(prompts)
    running: dict[str, str | None] = dict.fromkeys(prompts)
    experiments: dict[str, dict[str, Any]] = {}
    transitions: list[dict[str, Any]] = []
    at = T0

    def allocation(arms: dict[str, str]) -> dict[str, float]:
        weights = [rng.randint(0, 6) for _ in arms]
        if not any(weights):
            weights[0] = 1
        return {a: w / sum(weights) for a, w in zip(arms, weights, strict=True)}

    def extras(entry: dict[str, Any]) -> dict[str, Any]:
        if rng.random() < 0.2:
            entry["reason"] = rng.choice(["yes", "metric drop: -0.4", "no", "ramp #2", "ok"])
        if rng.random() < 0.2:
            entry["actor"] = rng.choice(["alice", "bob", "on-call"])
        return entry

    for _ in range(steps):
        at += timedelta(minutes=rng.choice([0, 0, 7, 30, 90, 600]), seconds=rng.randint(0, 59))
        stamp = at.isoformat().replace("+00:00", "Z")
        prompt = rng.choice(sorted(prompts))
        eid = running[prompt]
        if eid is not None:
            arms = experiments[eid]["arms"]
            kind = rng.choice(["ramp", "ramp", "rollback", "rollback_to", "promote", "stop"])
            entry: dict[str, Any] = {"at": stamp, "action": kind, "experiment": eid}
            if kind == "ramp":
                entry["allocation"] = allocation(arms)
            else:
                running[prompt] = None
            if kind == "rollback":
                live[prompt] = arms["control"]
            elif kind == "rollback_to":
                entry["action"] = "rollback"
                entry["to"] = rng.choice(prompts[prompt])
                live[prompt] = entry["to"]
            elif kind == "promote":
                entry["arm"] = rng.choice(sorted(arms))
                live[prompt] = arms[entry["arm"]]
            transitions.append(extras(entry))
            continue
        kind = rng.choice(["deploy", "start", "start", "prompt_rollback", "declare_only"])
        if kind == "deploy" or live[prompt] is None:
            rev = rng.choice(prompts[prompt])
            transitions.append(
                extras({"at": stamp, "action": "deploy", "prompt": prompt, "revision": rev})
            )
            live[prompt] = rev
        elif kind == "prompt_rollback":
            to = rng.choice(prompts[prompt])
            transitions.append(
                extras({"at": stamp, "action": "rollback", "prompt": prompt, "to": to})
            )
            live[prompt] = to
        else:
            eid = f"exp-{len(experiments)}"
            others = rng.sample(prompts[prompt], rng.randint(1, 2))
            arms = {"control": live[prompt], **{f"t{i}": r for i, r in enumerate(others)}}
            experiments[eid] = {"prompt": prompt, "arms": arms}
            if kind == "declare_only":  # declared in the header, never started
                continue
            transitions.append(
                extras(
                    {
                        "at": stamp,
                        "action": "start",
                        "experiment": eid,
                        "allocation": allocation(arms),
                    }
                )
            )
            running[prompt] = eid
    return {
        "version": 1,
        "prompts": {
            p: {
                "revisions": {
                    r: ({"parent": revs[i - 1]} if i else {}) | {"contract": f"v{i % 2 + 1}"}
                    for i, r in enumerate(revs)
                }
            }
            for p, revs in prompts.items()
        },
        "experiments": experiments,
        "transitions": transitions,
    }


def header_of(ledger: dict[str, Any]) -> dict[str, Any]:
    """The declarations only: what a person types before anything happened."""
    return {k: v for k, v in ledger.items() if k != "transitions"}


def record_argv(path: Path, entry: dict[str, Any]) -> list[str]:
    """The ``promptstate ledger record`` command line that records ``entry``."""
    argv = ["ledger", "record", entry["action"], "--ledger", str(path), "--at", entry["at"]]
    for key in ("prompt", "revision", "experiment", "to", "arm", "actor", "reason"):
        if key in entry:
            argv += [f"--{key}", entry[key]]
    if "allocation" in entry:
        argv += ["--allocation", *(f"{a}={s!r}" for a, s in entry["allocation"].items())]
    return argv


def assert_same_story(recorded: Ledger, original: Ledger) -> None:
    assert [t.to_dict() for t in recorded.transitions] == [
        t.to_dict() for t in original.transitions
    ]
    for eid in original.experiments:
        assert recorded.phases(eid) == original.phases(eid), eid
    for prompt in original.prompts:
        assert recorded.live_history(prompt) == original.live_history(prompt)
    assert recorded.reverts() == original.reverts()


def test_generator_makes_valid_varied_ledgers() -> None:
    seen: set[str] = set()
    for seed in range(30):
        data = generate_ledger(seed)
        ledger = parse_ledger(data)
        assert len(ledger.transitions) == len(data["transitions"])
        seen |= {t.action for t in ledger.transitions}
        seen |= {
            "prompt_rollback"
            for t in ledger.transitions
            if t.action == "rollback" and t.experiment is None
        }
    assert seen == {*ACTIONS, "prompt_rollback"}


# ------------------------------------------------------------------------ acceptance: replay


@pytest.mark.parametrize("seed", range(8))
def test_recording_every_transition_reproduces_the_phases(seed: int, tmp_path: Path) -> None:
    data = generate_ledger(seed)
    original = parse_ledger(data)
    path = tmp_path / "ledger.yaml"
    header = HEADER_COMMENT + yaml.safe_dump(header_of(data), sort_keys=False)
    path.write_text(header)
    for entry in data["transitions"]:
        assert main(record_argv(path, entry)) == 0, entry
    recorded = load_ledger(path)
    assert_same_story(recorded, original)
    text = path.read_text()
    assert text.startswith(header)  # the header, its comment included, is kept byte for byte
    assert _yaml.parse(text)["transitions"] == data["transitions"]  # times kept as text


@pytest.mark.parametrize("seed", range(20, 24))
def test_experiments_declared_at_their_start_reproduce_the_phases(
    seed: int, tmp_path: Path
) -> None:
    """From a header of prompts and revisions only: every experiment is declared by the
    ``start`` that records it (``--arms``); the never-started ones are left out."""
    data = generate_ledger(seed)
    path = tmp_path / "ledger.yaml"
    header = {"version": 1, "prompts": data["prompts"]}
    path.write_text(HEADER_COMMENT + yaml.safe_dump(header, sort_keys=False))
    for entry in data["transitions"]:
        argv = record_argv(path, entry)
        if entry["action"] == "start":
            arms = data["experiments"][entry["experiment"]]["arms"]
            argv += ["--arms", *(f"{a}={r}" for a, r in arms.items())]
        assert main(argv) == 0, entry
    recorded = load_ledger(path)
    started = {t["experiment"] for t in data["transitions"] if t["action"] == "start"}
    expected = dict(data, experiments={e: data["experiments"][e] for e in sorted(started)})
    original = parse_ledger(expected)
    assert set(recorded.experiments) == started
    for eid in started:
        assert recorded.experiments[eid] == original.experiments[eid]
    assert_same_story(recorded, original)


def test_recording_into_a_json_ledger(tmp_path: Path) -> None:
    data = generate_ledger(11, steps=15)
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(header_of(data), indent=2) + "\n")
    for entry in data["transitions"]:
        assert main(record_argv(path, entry)) == 0, entry
    assert json.loads(path.read_text())["transitions"] == data["transitions"]
    assert_same_story(load_ledger(path), parse_ledger(data))


def test_recording_through_a_real_process(tmp_path: Path) -> None:
    data = generate_ledger(3, steps=6)
    path = tmp_path / "ledger.yaml"
    path.write_text(yaml.safe_dump(header_of(data), sort_keys=False))
    code = (
        "import sys, json; from analysis.cli import main; "
        "raise SystemExit(max(main(a) for a in json.loads(sys.stdin.read())))"
    )
    argvs = [record_argv(path, e) for e in data["transitions"]]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("recorded transitions[") == len(argvs)
    assert_same_story(load_ledger(path), parse_ledger(data))
    # and the console script itself, once, with an invalid transition: exit 2, one line
    before = path.read_bytes()
    bad = subprocess.run(
        [
            sys.executable,
            "-c",
            "from analysis.cli import main; raise SystemExit(main())",
            "ledger",
            "record",
            "stop",
            "--ledger",
            str(path),
            "--experiment",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "experiment 'nope' is not defined" in bad.stderr
    assert path.read_bytes() == before


# ----------------------------------------------------------------------- violations: exit 2

PRE = Path(__file__).resolve().parent.parent / "data_samples" / "rollback" / "ledger.yaml"
#: (arguments after `ledger record`, a text the one stderr line must hold)
VIOLATIONS = [
    (
        [
            "ramp",
            "--at",
            "2026-11-02T20:00:00Z",
            "--experiment",
            "exp-17",
            "--allocation",
            "control=0.5",
            "treatment=0.5",
        ],
        "time goes backwards",
    ),
    (
        [
            "ramp",
            "--at",
            "2026-11-03T00:00:00Z",
            "--experiment",
            "exp-17",
            "--allocation",
            "control=0.5",
            "treatment=0.6",
        ],
        "shares sum to 1.1, not 1",
    ),
    (
        [
            "ramp",
            "--at",
            "2026-11-03T00:00:00Z",
            "--experiment",
            "exp-17",
            "--allocation",
            "control=0.5",
            "placebo=0.5",
        ],
        "arm(s) 'placebo' not in experiment 'exp-17'",
    ),
    (
        [
            "deploy",
            "--at",
            "2026-11-03T00:00:00Z",
            "--prompt",
            "support-assistant",
            "--revision",
            "r42",
        ],
        "one live revision at a time",
    ),
    (
        [
            "deploy",
            "--at",
            "2026-11-03T00:00:00Z",
            "--prompt",
            "support-assistant",
            "--revision",
            "r99",
        ],
        "declare it under prompts.support-assistant.revisions first",
    ),
    (["stop", "--at", "2026-11-03T00:00:00Z", "--experiment", "exp-99"], "is not defined"),
    (
        ["stop", "--at", "2026-11-03T00:00:00Z", "--experiment", "exp-17", "--arm", "control"],
        "`arm` does not apply to stop",
    ),
    (["ramp", "--at", "2026-11-03T00:00:00Z", "--experiment", "exp-17"], "ramp needs `allocation`"),
    (
        [
            "start",
            "--at",
            "2026-11-03T00:00:00Z",
            "--experiment",
            "exp-17",
            "--allocation",
            "control=1",
        ],
        "has already started",
    ),
    (
        [
            "rollback",
            "--at",
            "2026-11-03T00:00:00Z",
            "--prompt",
            "support-assistant",
            "--to",
            "r41",
        ],
        "is running; roll it back with `experiment: exp-17`",
    ),
    (
        ["rollback", "--at", "2026-11-03T00:00:00Z", "--experiment", "exp-17", "--to", "r7"],
        "`to` 'r7' is not a revision of prompt",
    ),
    (["ramp", "--experiment", "exp-17", "--allocation", "control=half"], "is not a number"),
    (["ramp", "--experiment", "exp-17", "--allocation", "control"], "expected ARM=SHARE"),
    (
        ["ramp", "--experiment", "exp-17", "--allocation", "control=0.5", "control=0.5"],
        "is given twice",
    ),
    (
        ["ramp", "--experiment", "exp-17", "--allocation", "control=inf", "treatment=0"],
        "shares lie in [0, 1]",
    ),
    (["stop", "--experiment", "../x"], "is not a valid id"),
    (["stop", "--experiment", "exp-17", "--at", "2026-11-03T00:00:00"], "has no timezone"),
    (["stop", "--experiment", "exp-17", "--at", "yesterday"], "is not an ISO 8601 time"),
    (["halt", "--experiment", "exp-17"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "message"), VIOLATIONS)
def test_a_violation_exits_2_with_one_line_and_leaves_the_file_alone(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ledger.yaml"
    path.write_bytes(PRE.read_bytes())
    stat = path.stat()
    for dry in ([], ["--dry-run"]):
        assert main(["ledger", "record", *argv, "--ledger", str(path), *dry]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        assert message in lines[0]
        assert path.read_bytes() == PRE.read_bytes()
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert path.stat().st_ino == stat.st_ino  # not even replaced by an identical copy
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_ledger_rule_errors_name_the_file_and_the_new_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ledger.yaml"
    path.write_bytes(PRE.read_bytes())
    argv = ["ledger", "record", "stop", "--ledger", str(path), "--at", "2026-11-01T00:00:00Z"]
    assert main([*argv, "--experiment", "exp-17"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: transitions[3] (stop at 2026-11-01T00:00:00+00:00)" in err
    assert "the ledger was left unchanged" in err


def test_missing_ledger_is_bad_input_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ledger.yaml"
    assert main(["ledger", "record", "stop", "--ledger", str(path), "--experiment", "e"]) == 2
    assert "file not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_record_actions_are_the_ledger_actions() -> None:
    assert set(RECORD_ACTIONS) == set(ACTIONS)


# -------------------------------------------------------------------------------- the API


def test_record_transition_api(tmp_path: Path) -> None:
    path = tmp_path / "ledger.yaml"
    path.write_bytes(PRE.read_bytes())
    at = datetime(2026, 11, 3, 10, 15, tzinfo=UTC).astimezone()  # any zone; stored in UTC
    dry = record_transition(path, "rollback", at=at, experiment="exp-17", dry_run=True)
    assert not dry.written
    assert path.read_bytes() == PRE.read_bytes()
    assert "+  - {at: 2026-11-03T10:15:00Z, action: rollback, experiment: exp-17}" in dry.diff
    res = record_transition(path, "rollback", at=at, experiment="exp-17", reason="yes")
    assert res.written
    assert res.transition.index == 3
    assert res.transition.to == "r41"  # the control's revision
    assert list(res.to_dict()) == [
        "schema_version",
        "ledger",
        "written",
        "dry_run",
        "index",
        "transition",
        "declared",
    ]
    assert res.to_dict()["schema_version"] == 1
    assert res.declared == ()
    assert res.to_dict()["declared"] == []
    assert res.entry == {
        "at": "2026-11-03T10:15:00Z",
        "action": "rollback",
        "experiment": "exp-17",
        "reason": "yes",
    }
    assert load_ledger(path).transitions[-1].reason == "yes"  # 'yes' stays text
    assert path.read_text().startswith(PRE.read_text())  # comments and layout kept
    with pytest.raises(LedgerError, match="not one of deploy"):
        record_transition(path, "halt", experiment="exp-17")
    with pytest.raises(LedgerError, match="must map arms to shares"):
        record_transition(path, "ramp", experiment="exp-17", allocation={})
    with pytest.raises(LedgerError, match="must be a number"):
        record_transition(path, "ramp", experiment="exp-17", allocation={"control": "1"})  # type: ignore[dict-item]


def test_default_time_is_now_in_utc_rounded_up_to_the_second(tmp_path: Path) -> None:
    path = tmp_path / "ledger.yaml"
    path.write_bytes(PRE.read_bytes())
    before = datetime.now(UTC)
    assert main(["ledger", "record", "stop", "--ledger", str(path), "--experiment", "exp-17"]) == 0
    after = datetime.now(UTC)
    at = load_ledger(path).transitions[-1].at
    assert at.microsecond == 0
    assert before <= at <= after.replace(microsecond=0) + timedelta(seconds=1)


# -------------------------------------------------------------------------------- concurrency


def _record_ramps(path: str, worker: int, count: int) -> None:
    for i in range(count):
        code = main(
            [
                "ledger",
                "record",
                "ramp",
                "--ledger",
                path,
                "--experiment",
                "exp-17",
                "--allocation",
                "control=0.5",
                "treatment=0.5",
                "--reason",
                f"w{worker}-{i}",
            ]
        )
        if code != 0:
            raise SystemExit(code)


def test_concurrent_recorders_both_land_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "ledger.yaml"
    path.write_bytes(PRE.read_bytes())
    ctx = multiprocessing.get_context("spawn")
    count = 5
    procs = [ctx.Process(target=_record_ramps, args=(str(path), w, count)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0]
    ledger = load_ledger(path)  # validates: times never go backwards
    reasons = [str(t.reason) for t in ledger.transitions[3:]]
    assert sorted(reasons) == sorted(f"w{w}-{i}" for w in range(2) for i in range(count))
    for w in range(2):  # each worker's records in its own order
        mine = [r for r in reasons if r.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(count)]
    assert path.read_text().startswith(PRE.read_text())
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_the_default_time_is_read_under_the_lock(tmp_path: Path) -> None:
    """A recorder that waited for the lock takes its time after the writer that held it."""
    import threading
    import time

    from analysis.ledger.writer import append_transition, ledger_lock

    path = tmp_path / "ledger.yaml"
    path.write_bytes(PRE.read_bytes())
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            record_transition(path, "stop", experiment="exp-17", reason="waited")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    with ledger_lock(path):
        thread.start()
        time.sleep(0.3)  # the waiter now blocks on the lock
        held = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        ramp = {"at": held, "action": "ramp", "experiment": "exp-17",
                "allocation": {"control": 0.5, "treatment": 0.5}}  # fmt: skip
        append_transition(path, ramp, locked=True)
        while datetime.now(UTC) <= held:
            time.sleep(0.05)
    thread.join(timeout=60)
    assert errors == []
    last = load_ledger(path).transitions[-1]
    assert last.reason == "waited"
    assert last.at >= held


# ----------------------------------------------------------------------- show and validate

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "ledger.yaml"


def test_show_json_on_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "show", "--format", "json"]) == 0  # the sample and its store
    data = json.loads(capsys.readouterr().out)
    assert next(iter(data)) == "schema_version"
    assert data["schema_version"] == 1
    ledger = load_ledger(SAMPLE)
    (exp,) = data["experiments"]
    assert [p["kind"] for p in exp["phases"]] == ["pre", "exposure", "exposure", "after_end"]
    assert [p["allocation"] for p in exp["phases"]] == [
        {},
        {"control": 0.9, "treatment": 0.1},
        {"control": 0.75, "treatment": 0.25},
        {},
    ]
    assert exp["phases"][3]["served_after_end"] == "r41"
    assert [(p["start"], p["end"]) for p in exp["phases"]] == [
        (None, "2026-11-02T09:00:00Z"),
        ("2026-11-02T09:00:00Z", "2026-11-02T21:00:00Z"),
        ("2026-11-02T21:00:00Z", "2026-11-03T08:15:00Z"),
        ("2026-11-03T08:15:00Z", None),
    ]
    assert len(exp["phases"]) == len(ledger.phases("exp-17"))
    states = {r["revision"]: r for r in data["revisions"]}
    # the sample's story (data_samples/README.md): r42 rolled back, its baseline still anchored
    assert states["r42"]["rollout_state"] == "rolled_back"
    assert states["r42"]["baseline_id"] == "support-qa/v0002"
    assert states["r42"]["cohort_id"] == "exp-17/treatment"
    assert states["r42"]["contract_version"] == "v4"
    assert states["r41"]["rollout_state"] == "live"
    assert data["prompts"] == [
        {
            "prompt": "support-assistant",
            "live_revision": "r41",
            "running_experiment": None,
            "revisions": ["r41", "r42"],
        }
    ]


def test_show_at_an_instant_and_without_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./baselines, no pyproject.toml: no store is found
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    out = tmp_path / "show.json"
    argv = ["ledger", "show", str(SAMPLE), "--at", "2026-11-03T00:00:00Z", "--format", "json"]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "baseline_id is empty" in captured.err
    data = json.loads(out.read_text())
    states = {r["revision"]: r for r in data["revisions"]}
    assert states["r42"]["rollout_state"] == "canary 25%"
    assert states["r42"]["baseline_id"] is None  # no store found
    assert data["prompts"][0]["running_experiment"] == "exp-17"
    assert data["at"] == "2026-11-03T00:00:00Z"
    # the store named with --store (or found as `promptstate state` finds it) fills baseline_id
    store = SAMPLE.parent.parent / "baselines"
    assert main([*argv, "--store", str(store)]) == 0
    shown = {r["revision"]: r for r in json.loads(capsys.readouterr().out)["revisions"]}
    ref = json.loads((store / "support-qa" / "reference.json").read_text())
    assert ref["revision"] == "r42"
    assert shown["r42"]["baseline_id"] == f"support-qa/{ref['version']}"
    assert shown["r41"]["baseline_id"] is None
    assert main([*argv, "--store", str(tmp_path / "nope")]) == 2


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_show_tables(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "show", str(SAMPLE), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "phases of exp-17" in out
    assert "control=0.75, treatment=0.25" in out
    assert "rolled_back" in out
    assert "exp-17/treatment" in out
    if fmt == "markdown":
        assert "| phase | kind | start |" in out


def test_show_refuses_to_overwrite_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ledger.yaml"
    path.write_bytes(SAMPLE.read_bytes())
    assert main(["ledger", "show", str(path), "--out", str(path)]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert path.read_bytes() == SAMPLE.read_bytes()


def test_show_phases_of_a_generated_ledger_equal_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = generate_ledger(5)
    path = tmp_path / "ledger.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ledger = load_ledger(path)
    assert main(["ledger", "show", str(path), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["experiment"] for e in shown["experiments"]] == list(ledger.experiments)
    for e in shown["experiments"]:
        phases = ledger.phases(e["experiment"])
        assert [p["phase"] for p in e["phases"]] == [p.id for p in phases]
        assert [p["kind"] for p in e["phases"]] == [p.kind for p in phases]
        assert [p["allocation"] for p in e["phases"]] == [dict(p.allocation) for p in phases]
    assert shown["counts"]["transitions"] == len(data["transitions"])


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "validate", str(SAMPLE), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data)[:3] == ["schema_version", "ledger", "valid"]
    assert data["counts"] == {
        "prompts": 1,
        "revisions": 2,
        "experiments": 1,
        "consumers": 2,
        "transitions": 4,
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text(SAMPLE.read_text().replace("treatment: 0.25", "treatment: 0.3"))
    assert main(["ledger", "validate", str(bad), "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "transitions[2]" in captured.err


def test_help_of_every_ledger_argument() -> None:
    from analysis.cli import build_parser

    def commands(parser: Any) -> Any:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    sub = commands(commands(build_parser())["ledger"])
    for name in ("record", "show", "validate"):
        for action in sub[name]._actions:
            assert action.help, (name, action.dest)
