"""rollback_plan: the five legs on the sample and on generated stories with known truth."""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.cli import main
from analysis.ledger import load_ledger, parse_ledger
from analysis.rollback.planning import RollbackError, RollbackPlan, rollback_plan
from analysis.sample import SampleSpec, generate

ROOT = Path(__file__).resolve().parent.parent
PRE = ROOT / "data_samples" / "rollback" / "ledger.yaml"
AT = datetime(2026, 11, 3, 8, 15, tzinfo=UTC)
OPEN_HOURS = 4.0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("store") / "baselines"
    shutil.copytree(ROOT / "baselines", dest)
    return dest


@pytest.fixture(scope="module")
def plan(store: Path) -> RollbackPlan:
    return rollback_plan(
        PRE, events=ROOT / "data_samples" / "events.parquet", baselines=store, at=AT
    )


def brute_force_cohort(
    events: pl.DataFrame, served: dict[str, str], at: datetime
) -> dict[str, Any]:
    """Exposed units / tainted conversations / open ones, with plain Python loops."""
    units: set[str] = set()
    tainted: set[str] = set()
    last: dict[str, datetime] = {}
    seen: set[str] = set()
    for row in events.iter_rows(named=True):
        if row["event_id"] in seen or row["ts"] >= at:
            continue
        seen.add(row["event_id"])
        conv = row["conversation_id"]
        last[conv] = max(last.get(conv, row["ts"]), row["ts"])
        if served[row["event_id"]] == "r42":
            units.add(row["user_id"])
            tainted.add(conv)
        if row["response_revision_id"] == "r42":
            tainted.add(conv)
    open_ = {c for c in tainted if (at - last[c]).total_seconds() < OPEN_HOURS * 3600}
    return {"units": units, "conversations": tainted, "open": open_}


# ------------------------------------------------------------------------------ JSON shape


def test_json_has_the_design_shape(plan: RollbackPlan) -> None:
    data = json.loads(plan.to_json())
    assert list(data) == ["schema_version", "prompt", "from", "to", "legs", "actions"]
    assert data["schema_version"] == 1
    assert data["actions"] == []
    assert (data["prompt"], data["from"], data["to"]) == ("support-assistant", "r42", "r41")
    assert list(data["legs"]) == ["text", "caches", "cohort", "baseline", "contracts"]
    for leg in data["legs"].values():
        assert list(leg) == ["status", "findings", "actions"]
        assert leg["status"] in ("ok", "action", "needs-confirmation")
    cohort = data["legs"]["cohort"]["findings"]
    assert {"units", "conversations", "open_tainted_conversations"} <= set(cohort)
    consumers = data["legs"]["contracts"]["findings"]["consumers"]
    assert [set(c) for c in consumers] == [{"name", "accepts", "status"}] * 2
    assert data["legs"]["text"]["findings"]["transition"] == {
        "at": "2026-11-03T08:15:00Z",
        "action": "rollback",
        "experiment": "exp-17",
        "to": "r41",
    }


# ---------------------------------------------------------------- failure mode: stale histories


def test_stale_histories_cohort_found_exactly_on_the_sample(
    plan: RollbackPlan, sample_events: pl.DataFrame, truth: pl.DataFrame
) -> None:
    served = dict(zip(truth["event_id"], truth["served_revision"], strict=True))
    expected = brute_force_cohort(sample_events, served, AT)
    cohort = plan.leg("cohort").findings
    assert cohort["units"] == len(expected["units"])
    assert cohort["conversations"] == len(expected["conversations"])
    assert cohort["open_tainted_conversations"] == len(expected["open"])
    assert plan.leg("cohort").status == "action"
    kinds = [a.kind for a in plan.leg("cohort").actions]
    assert kinds == ["export-cohort", "hold-out", "truncate-histories"]


def test_stale_histories_on_a_generated_story() -> None:
    sample = generate(SampleSpec(n_users=400, seed=11, duplicate_rows=5))
    served = dict(zip(sample.truth["event_id"], sample.truth["served_revision"], strict=True))
    expected = brute_force_cohort(sample.events, served, AT)
    result = rollback_plan(PRE, events=sample.events, at=AT, recovery=False)
    cohort = result.leg("cohort").findings
    assert cohort["units"] == len(expected["units"]) > 0
    assert cohort["conversations"] == len(expected["conversations"])
    assert cohort["open_tainted_conversations"] == len(expected["open"]) > 0


def test_residual_effect_is_the_recovery_analysis(plan: RollbackPlan, events_path: Path) -> None:
    from analysis.metrics import analyze

    residual = plan.leg("cohort").findings["residual_effect"]
    assert residual["available"]
    recorded = analyze(events_path, ROOT / "data_samples" / "ledger.yaml", explain=False)
    want = {
        (r.metric, r.group): r.effect
        for r in recorded.recovery.rows
        if r.bin is None  # type: ignore[attr-defined]
    }
    got = {(r["metric"], r["group"]): r["effect"] for r in residual["rows"]}
    assert got == pytest.approx(want)
    # tainted conversations stay degraded (the sample's carryover penalty)
    assert got[("helpfulness", "exposed_tainted")] < -0.2


def test_without_events_the_cohort_is_not_counted() -> None:
    result = rollback_plan(PRE, at=AT)
    assert result.leg("cohort").findings["units"] is None
    # the sample's ledger records neither cache_prefix nor text for r42: the region is unknown
    assert result.leg("caches").findings["prefixes_to_expire"] == [
        {"revision": "r42", "cache_prefix": None, "source": "unknown"}
    ]


# -------------------------------------------------------- failure mode: semantic cache, baseline


def test_semantic_cache_entries_of_the_bad_revision_are_counted(
    plan: RollbackPlan, truth_info: dict[str, Any]
) -> None:
    caches = plan.leg("caches")
    assert caches.findings["semantic_cache_keys"] == len(
        truth_info["semantic_cache_keys_written_by_r42"]
    )
    assert "expire-keys" in [a.kind for a in caches.actions]
    assert caches.findings["restored_cache"]["cold"] is False  # r41 kept serving the control


def test_baseline_left_on_the_bad_revision_is_named_with_its_action(plan: RollbackPlan) -> None:
    leg = plan.leg("baseline")
    assert leg.status == "action"
    (suite,) = leg.findings["suites"]
    assert suite == {
        "suite": "support-qa",
        "reference": "v0002",
        "revision": "r42",
        "pinned": False,
        "policy": "pin",
        "action": "pin",
        "target": "v0001",
    }


def test_reanchor_policy_gives_the_command(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "baselines"
    shutil.copytree(store, copy)
    cfg = copy / "support-qa" / "suite.yaml"
    cfg.write_text(cfg.read_text().replace("on_revert: pin", "on_revert: reanchor"))
    result = rollback_plan(PRE, baselines=copy, at=AT)
    (suite,) = result.leg("baseline").findings["suites"]
    assert suite["action"] == "reanchor"
    assert suite["command"].startswith("promptstate baseline revert support-qa --reverted r42")
    assert "--ledger-transition 3" in suite["command"]


# ------------------------------------------------------------- failure mode: downstream contract


def test_consumer_on_the_new_schema_needs_confirmation(plan: RollbackPlan, store: Path) -> None:
    leg = plan.leg("contracts")
    assert leg.status == "needs-confirmation"
    assert plan.status == "needs-confirmation"
    assert plan.exit_code == 1
    assert plan.needs_confirmation == ("ticket-router",)
    statuses = {c["name"]: c["status"] for c in leg.findings["consumers"]}
    assert statuses == {"ticket-router": "needs-confirmation", "analytics-etl": "ok"}
    failures = {
        (r["contract_version"], r["consumer"]): r["failure_rate"]
        for r in leg.findings["parse_failures"]
    }
    assert failures[("v4", "ticket-router")] < 0.01
    confirmed = rollback_plan(PRE, baselines=store, at=AT, confirm=["ticket-router"])
    assert confirmed.leg("contracts").status == "action"
    assert confirmed.exit_code == 0
    assert confirmed.leg("contracts").findings["consumers"][0]["status"] == "confirmed"


def test_unknown_consumer_in_confirm_is_refused() -> None:
    with pytest.raises(RollbackError, match="not a consumer"):
        rollback_plan(PRE, at=AT, confirm=["nobody"])


# ------------------------------------------------------------------------------ refusals


def _prompt_ledger(**extra: Any) -> Any:
    data = {
        "version": 1,
        "prompts": {"p": {"revisions": {"r1": {}, "r2": {"parent": "r1"}, "r3": {"parent": "r2"}}}},
        "transitions": [
            {"at": "2026-12-01T00:00:00Z", "action": "deploy", "prompt": "p", "revision": "r1"},
            {"at": "2026-12-02T00:00:00Z", "action": "deploy", "prompt": "p", "revision": "r2"},
        ],
    }
    data.update(extra)
    return parse_ledger(data)


def test_prompt_level_defaults_to_the_previously_live_revision() -> None:
    result = rollback_plan(_prompt_ledger(), at=datetime(2026, 12, 3, tzinfo=UTC))
    assert (result.reverted, result.to, result.experiment) == (("r2",), "r1", None)
    assert result.transition == {
        "at": "2026-12-03T00:00:00Z",
        "action": "rollback",
        "prompt": "p",
        "to": "r1",
    }


def test_target_that_never_served_is_refused() -> None:
    with pytest.raises(RollbackError, match="never served"):
        rollback_plan(_prompt_ledger(), to="r3", at=datetime(2026, 12, 3, tzinfo=UTC))


def test_revision_that_is_not_live_is_refused() -> None:
    with pytest.raises(RollbackError, match="'r1' is not live"):
        rollback_plan(_prompt_ledger(), revision="r1", at=datetime(2026, 12, 3, tzinfo=UTC))


def test_time_before_the_last_transition_is_refused() -> None:
    with pytest.raises(RollbackError, match="before the ledger's last transition"):
        rollback_plan(_prompt_ledger(), at=datetime(2026, 12, 1, 12, tzinfo=UTC))


def test_nothing_to_roll_back_after_a_rollback(ledger_path: Path) -> None:
    recorded = load_ledger(ledger_path)
    with pytest.raises(RollbackError, match="only revision"):
        rollback_plan(recorded, at=datetime(2026, 11, 5, tzinfo=UTC))


# ---------------------------------------------------------------------------------- CLI


def test_cli_plan_runs_on_the_sample_with_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", "plan"]) == 1  # ticket-router needs confirmation
    out = capsys.readouterr().out
    assert "rollback of support-assistant: r42 -> r41 at 2026-11-03T08:15:00Z" in out
    assert main(["rollback", "plan", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["legs"]["cohort"]["findings"]["units"] > 0
    assert main(["rollback", "plan", "--format", "markdown"]) == 1
    assert capsys.readouterr().out.startswith("**rollback of support-assistant")


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", "plan", "--at", "yesterday"]) == 2
    assert "--at 'yesterday'" in capsys.readouterr().err
    assert main(["rollback", "plan", "--to", "r99"]) == 2
    assert "is not a revision of prompt" in capsys.readouterr().err
    store = tmp_path / "baselines"
    shutil.copytree(ROOT / "baselines", store)
    (store / "support-qa" / "journal.jsonl").write_text('{"seq": 1}\n')
    # an invalid store is bad input outside gate / baseline verify / baseline sync (exit 2)
    assert main(["rollback", "plan", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("promptstate: error:")
    assert err.count("\n") == 1
    assert "journal.jsonl" in err


def test_minimal_export_plans_with_what_it_has(sample_events: pl.DataFrame) -> None:
    minimal = sample_events.select("event_id", "ts", "user_id", "experiment_id", "arm")
    result = rollback_plan(PRE, events=minimal, at=AT)
    cohort = result.leg("cohort").findings
    assert cohort["units"] > 0  # served revision inferred from the ledger through the split
    assert cohort["conversations"] is None
    assert cohort["residual_effect"]["available"] is False
    assert result.leg("caches").findings["semantic_cache_keys"] is None
    assert result.leg("contracts").findings["parse_failures"] is None
    assert result.exit_code == 1


# ------------------------------------------- the live revision of each event, in one join


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 600), min_size=1, max_size=30),
    revs=st.lists(st.sampled_from(["a", "b", "c"]), min_size=30, max_size=30),
    stops=st.lists(st.booleans(), min_size=30, max_size=30),
    minutes=st.lists(st.integers(-60, 30 * 600), max_size=60),
)
def test_live_revision_of_each_event_is_the_ledgers(
    gaps: list[int], revs: list[str], stops: list[bool], minutes: list[int]
) -> None:
    """The inferred served revision (no ``revision_id`` column, prompt-level rollback) equals
    :meth:`Ledger.live_revision` at each event's time, for random deploy/rollback histories."""
    import narwhals as nw

    from analysis.rollback._legs import _with_live_revision

    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    transitions: list[dict[str, Any]] = []
    at, live = t0, None
    for gap, rev, stop in zip(gaps, revs, stops, strict=False):
        at = at + timedelta(minutes=gap)
        stamp = at.isoformat().replace("+00:00", "Z")
        if stop and live is not None and len(transitions) > 1:
            previous = transitions[-2].get("revision") or transitions[-2].get("to")
            if previous not in (None, live):
                entry = {"at": stamp, "action": "rollback", "prompt": "p", "to": previous}
                transitions.append(entry)
                live = previous
                continue
        if rev == live:
            continue
        transitions.append({"at": stamp, "action": "deploy", "prompt": "p", "revision": rev})
        live = rev
    led = parse_ledger(
        {
            "version": 1,
            "prompts": {"p": {"revisions": {"a": {}, "b": {"parent": "a"}, "c": {"parent": "b"}}}},
            "transitions": transitions,
        }
    )
    times = [t0 + timedelta(minutes=m) for m in minutes]
    events = pl.DataFrame(
        {"i": list(range(len(times))), "ts": times},
        schema={"i": pl.Int64, "ts": pl.Datetime("us", "UTC")},
    )
    got = _with_live_revision(nw.from_native(events.lazy()), led, "p").collect()
    found = dict(zip(got["i"].to_list(), got["served_revision"].to_list(), strict=True))
    expected = {
        i: led.live_revision("p", ts) for i, ts in enumerate(times) if led.live_revision("p", ts)
    }
    assert found == expected


def test_cli_events_is_positional_with_events_as_an_alias(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no baseline store is found from here
    events = str(ROOT / "data_samples" / "events.parquet")
    base = ["rollback", "plan", "--ledger", str(PRE), "--at", "2026-11-03T08:15:00Z"]
    base += ["--no-recovery", "--format", "json"]
    outputs = []
    for argv in ([*base, events], [*base, "--events", events], [*base, events, "--events", events]):
        assert main(argv) == 1  # ticket-router needs confirmation
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0]["legs"]["cohort"]["findings"]["units"] == 293  # as docs/rollback.md shows
    assert main([*base, events, "--events", str(tmp_path / "other.parquet")]) == 2
    assert "disagree" in capsys.readouterr().err


def test_cli_metrics_choose_the_residual_effect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.metrics import analyze
    from analysis.metrics.definitions import load_metrics

    monkeypatch.chdir(tmp_path)
    metrics = tmp_path / "metrics.yaml"
    metrics.write_text("metrics:\n  - {type: ratio, numerator: helpfulness}\n")
    events = ROOT / "data_samples" / "events.parquet"
    argv = ["rollback", "plan", str(events), "--ledger", str(PRE), "--metrics", str(metrics)]
    argv += ["--at", "2026-11-03T08:15:00Z", "--format", "json"]
    assert main(argv) == 1
    residual = json.loads(capsys.readouterr().out)["legs"]["cohort"]["findings"]["residual_effect"]
    recorded = analyze(
        events, ROOT / "data_samples" / "ledger.yaml", metrics=load_metrics(metrics), explain=False
    )
    want = {(r.metric, r.group): r.effect for r in recorded.recovery.rows if r.bin is None}  # type: ignore[attr-defined]
    got = {(r["metric"], r["group"]): r["effect"] for r in residual["rows"]}
    assert {m for m, _ in got} == {"helpfulness"}
    assert got == pytest.approx(want)


# ----------------------------------------------- issue 20, item 11: recorded rollback, store, regions


RECORDED = ROOT / "data_samples" / "ledger.yaml"  # the sample's ledger, its rollback recorded


def test_plan_after_the_rollback_is_recorded_plans_that_rollback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the rollback in the ledger, ``rollback plan`` (no --to, no --at) plans it: from the
    reverted revision to the restored one, at its time — the same plan as before it was
    recorded, with nothing to append (the old code asked for --to, exit 2)."""
    monkeypatch.chdir(tmp_path)  # no baseline store is found from here
    events = str(ROOT / "data_samples" / "events.parquet")
    common = ["--no-recovery", "--format", "json"]
    code = main(["rollback", "plan", events, "--ledger", str(RECORDED), *common])
    out, err = capsys.readouterr()
    assert code == 0, err  # the consumers were confirmed when it was applied
    plan = json.loads(out)
    assert (plan["from"], plan["to"]) == ("r42", "r41")
    text = plan["legs"]["text"]
    assert text["status"] == "ok"
    assert text["actions"] == []
    recorded = [t for t in load_ledger(RECORDED).transitions if t.action == "rollback"][-1]
    assert text["findings"]["recorded_transition"] == recorded.index
    assert text["findings"]["at"] == recorded.at.isoformat().replace("+00:00", "Z")
    code = main(["rollback", "plan", events, "--ledger", str(PRE), "--at", _iso(recorded.at),
                 *common])  # fmt: skip
    before = json.loads(capsys.readouterr().out)
    assert code == 1  # before it was applied, ticket-router needs confirmation
    # the same plan up to the last bits of parallel float sums (two runs of the aggregation)
    assert _same(plan["legs"]["cohort"], before["legs"]["cohort"])
    assert _same(plan["legs"]["caches"], before["legs"]["caches"])
    # the table names it as recorded
    assert main(["rollback", "plan", "--ledger", str(RECORDED), "--no-recovery"]) == 0
    title = capsys.readouterr().out.splitlines()[0]
    assert f"recorded in the ledger, transition {recorded.index}" in title
    # another target is a new rollback of the live revision (r41), planned as before
    assert main(["rollback", "plan", "--ledger", str(RECORDED), "--to", "r42"]) == 0
    title = capsys.readouterr().out.splitlines()[0]
    assert "r41 -> r42" in title
    assert "recorded" not in title


def _same(a: Any, b: Any) -> bool:
    """Equal, floats within a relative 1e-12 (nested dicts and lists)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_plan_without_a_store_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No store found: the baseline leg says so (an action naming --store), never "ok"."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    argv = ["rollback", "plan", "--ledger", str(PRE), "--at", _iso(AT), "--no-recovery"]
    assert main([*argv, "--format", "json"]) == 1  # ticket-router, as before
    leg = json.loads(capsys.readouterr().out)["legs"]["baseline"]
    assert leg["status"] == "action"
    assert leg["findings"]["store"] is None
    assert "no baseline store" in leg["findings"]["note"]
    (action,) = leg["actions"]
    assert action["kind"] == "check-store"
    assert "--store PATH" in action["description"]
    main(argv)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("baseline")]
    assert rows
    assert all("no baseline store" in row for row in rows)
    assert not any(row.split()[1] == "ok" for row in rows)
    # with the store, the leg is what the store says
    store = tmp_path / "baselines"
    shutil.copytree(ROOT / "baselines", store)
    main([*argv, "--store", str(store), "--format", "json"])
    leg = json.loads(capsys.readouterr().out)["legs"]["baseline"]
    assert leg["findings"]["store"] == str(store)
    assert "note" not in leg["findings"]


def test_cache_regions_come_from_the_ledger_never_invented(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A declared cache_prefix or the text hash names the region; with neither the plan says the
    region is unknown instead of inventing ``prefix-<id>``."""
    import hashlib

    text = "You are a helpful assistant."
    digest = hashlib.sha256(text.encode()).hexdigest()
    data = load_ledger(PRE).to_dict()
    revs = data["prompts"]["support-assistant"]["revisions"]
    plain = dict(data, prompts={"support-assistant": {"revisions": {**revs}}})
    ledger = tmp_path / "ledger.yaml"
    argv = ["rollback", "plan", "--ledger", str(ledger), "--at", _iso(AT), "--format", "json"]

    ledger.write_text(json.dumps(plain, default=str))
    main(argv)
    caches = json.loads(capsys.readouterr().out)["legs"]["caches"]
    assert "prefix-r42" not in json.dumps(caches)
    assert caches["findings"]["prefixes_to_expire"][0]["cache_prefix"] is None
    assert "unknown" in caches["actions"][0]["description"]
    assert "declare cache_prefix of r42" in caches["actions"][0]["description"]

    r41 = {k: v for k, v in revs["r41"].items() if k != "cache_prefix"}
    revs_declared = {**revs, "r42": {**revs["r42"], "cache_prefix": "pfx-canary"},
                     "r41": {**r41, "text": text}}  # fmt: skip
    declared = dict(data, prompts={"support-assistant": {"revisions": revs_declared}})
    ledger.write_text(json.dumps(declared, default=str))
    main(argv)
    caches = json.loads(capsys.readouterr().out)["legs"]["caches"]
    assert caches["findings"]["prefixes_to_expire"] == [
        {"revision": "r42", "cache_prefix": "pfx-canary", "source": "cache_prefix"}
    ]
    assert caches["findings"]["restored_prefix"] == f"prefix-{digest[:12]}"
    assert caches["actions"][0]["description"] == "expire the prompt-cache region pfx-canary of r42"
