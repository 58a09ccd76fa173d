"""Long ledgers: no recursion, the same labels, and the ledger's views in one indexed pass.

* the ledger's derived views (live revision, history, running experiment, reverts, served
  revisions, phases, revision_state) equal plain loops over the transitions on random ledgers;
* the index behind them is built once per ledger and every answer is a look-up, so asking once
  per transition stays fast on thousands of transitions;
* ``split`` and ``analyze`` on the sample's events with a ledger of hundreds of transitions
  (many deploys of the split prompt, many experiments, an experiment with hundreds of phases)
  give the ground truth's labels, or the brute-force labeller's — the expression that used to
  nest once per transition overflowed the recursion limit there.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _truth import expected_labels
from hypothesis import HealthCheck, given, settings

from analysis import analyze, load_ledger, revision_state, split
from analysis.ledger import Ledger, parse_ledger
from analysis.ledger import _index as index_module

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_split_properties import busy_scenarios, reference_labels  # noqa: E402


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_long_ledger", ROOT / "benchmarks" / "bench_long_ledger.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


long_ledger = _bench().long_ledger
_ENDING = ("rollback", "promote", "stop")


# ------------------------------------------------------------ brute-force views of a ledger


def ref_live(
    ledger: Ledger, prompt: str, at: datetime | None, upto: int | None = None
) -> str | None:
    """The live revision after every transition at or before ``at`` (or up to index ``upto``)."""
    live = None
    for t in ledger.transitions:
        if (at is not None and t.at > at) or (upto is not None and t.index > upto):
            break
        if t.prompt != prompt:
            continue
        if t.action == "deploy":
            live = t.revision
        elif t.action == "rollback":
            live = t.to
        elif t.action == "promote":
            live = ledger.experiments[t.experiment].arms[t.arm]
    return live


def ref_running(ledger: Ledger, prompt: str, at: datetime | None) -> str | None:
    running = None
    for t in ledger.transitions:
        if at is not None and t.at > at:
            break
        if t.prompt == prompt and t.experiment is not None:
            running = t.experiment if t.action in ("start", "ramp") else None
    return running


def ref_history(ledger: Ledger, prompt: str) -> list[tuple[datetime, str | None]]:
    """(from, live revision) at each change, replaying the prompt's transitions in order."""
    out: list[tuple[datetime, str | None]] = []
    for t in ledger.transitions:
        if t.prompt != prompt:
            continue
        live = ref_live(ledger, prompt, None, upto=t.index)
        if not out or out[-1][1] != live:
            out.append((t.at, live))
    return out


def ref_reverts(ledger: Ledger) -> list[tuple[Any, ...]]:
    out = []
    for t in ledger.transitions:
        if t.action != "rollback":
            continue
        if t.experiment is not None:
            arms = dict.fromkeys(ledger.experiments[t.experiment].arms.values())
            out += [(t.at, t.prompt, r, t.to, t.index) for r in arms if r != t.to]
        else:  # the revision live just before: every earlier transition counts
            before = ref_live(ledger, t.prompt, None, upto=t.index - 1)
            if before is not None and before != t.to:
                out.append((t.at, t.prompt, before, t.to, t.index))
    return out


def ref_state(ledger: Ledger, rev: str, at: datetime | None) -> tuple[Any, ...]:
    """The rollout state from the rules of RevisionState's docstring, by replaying."""
    prompt = ledger.revisions[rev].prompt
    relevant = [t for t in ledger.transitions if at is None or t.at <= at]
    live = ref_live(ledger, prompt, at)
    running = ref_running(ledger, prompt, at)
    experiment = arm = None
    for t in relevant:
        if t.action == "start":
            arms = [a for a, r in ledger.experiments[t.experiment].arms.items() if r == rev]
            if arms:
                experiment, arm = t.experiment, arms[0]
    if running is not None and experiment == running and rev != live:
        last_alloc = [t for t in relevant if t.experiment == running and t.allocation][-1]
        share = sum(
            s for a, s in last_alloc.allocation.items()
            if ledger.experiments[running].arms[a] == rev
        )  # fmt: skip
        pct = share * 100
        state = f"canary {pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"canary {pct:.1f}%"
    elif rev == live:
        state = "live"
    else:
        state, current = "not_deployed", None
        for t in relevant:
            if t.prompt != prompt:
                continue
            was_live = current == rev
            arms = set(ledger.experiments[t.experiment].arms.values()) if t.experiment else set()
            if t.action == "deploy":
                current = t.revision
                state = "superseded" if was_live and current != rev else state
            elif t.action == "promote":
                current = ledger.experiments[t.experiment].arms[t.arm]
                if was_live and current != rev:
                    state = "superseded"
                elif rev in arms and current != rev:
                    state = "stopped"
            elif t.action == "rollback":
                if (rev in arms or was_live) and t.to != rev:
                    state = "rolled_back"
                current = t.to
            elif t.action == "stop" and rev in arms and state == "not_deployed":
                state = "stopped"
    return state, experiment, arm


def ref_phases(ledger: Ledger, eid: str) -> list[tuple[Any, ...]]:
    trs = [t for t in ledger.transitions if t.experiment == eid]
    if not trs:
        return [("pre", None, None)]
    out = [("pre", None, trs[0].at)]
    for i, t in enumerate(trs):
        if t.action in _ENDING:
            out.append(("after_end", t.at, None))
            break
        out.append(("exposure", t.at, trs[i + 1].at if i + 1 < len(trs) else None))
    return out


def _moments(ledger: Ledger) -> list[datetime | None]:
    times = sorted({t.at for t in ledger.transitions})
    eps = timedelta(seconds=1)
    return [None, *times, *(t - eps for t in times), *(t + eps for t in times)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(busy_scenarios())
def test_views_equal_brute_force(scenario: tuple[dict[str, Any], str, pl.DataFrame]) -> None:
    ledger = parse_ledger(scenario[0])
    moments = _moments(ledger)
    for prompt in ledger.prompts:
        assert list(ledger.live_history(prompt)) == ref_history(ledger, prompt)
        served = set()
        for t in ledger.transitions:
            if t.prompt != prompt:
                continue
            if t.action == "deploy":
                served.add(t.revision)
            elif t.action == "rollback":
                served.add(t.to)
            elif t.action in ("start", "ramp"):
                arms = ledger.experiments[t.experiment].arms
                served |= {arms[a] for a, s in t.allocation.items() if s > 0}
        assert ledger.served_revisions(prompt) == served
        for at in moments:
            assert ledger.live_revision(prompt, at) == ref_live(ledger, prompt, at)
            assert ledger.running_experiment(prompt, at) == ref_running(ledger, prompt, at)
    got_reverts = [
        (r.at, r.prompt, r.reverted, r.restored, r.transition_index) for r in ledger.reverts()
    ]
    assert got_reverts == ref_reverts(ledger)
    for prompt in ledger.prompts:
        assert ledger.reverts(prompt) == tuple(r for r in ledger.reverts() if r.prompt == prompt)
    for eid in ledger.experiments:
        got = [(p.kind, p.start, p.end) for p in ledger.phases(eid)]
        assert got == ref_phases(ledger, eid)
    for rev in ledger.revisions:
        for at in moments:
            s = revision_state(ledger, rev, at)
            assert (s.rollout_state, s.experiment, s.arm) == ref_state(ledger, rev, at), (rev, at)


# ----------------------------------------------------------------------- built once, fast


def test_index_is_built_once_and_answers_per_transition_stay_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asking every view once per transition of a 6,000-transition ledger: one index build, and
    far below the quadratic time of scanning the transitions for each answer (~36M steps)."""
    ledger = parse_ledger(_data(long_ledger(6000)))
    builds = []
    original = index_module.LedgerIndex.__init__

    def counting(self: Any, led: Ledger) -> None:
        builds.append(1)
        original(self, led)

    monkeypatch.setattr(index_module.LedgerIndex, "__init__", counting)
    t0 = time.process_time()
    for t in ledger.transitions:
        ledger.live_revision(t.prompt, t.at)
        ledger.running_experiment(t.prompt, t.at)
        ledger.reverts(t.prompt)
        ledger.served_revisions(t.prompt)
        for rev in (t.revision, t.to):
            if rev is not None:
                revision_state(ledger, rev, t.at)
        if t.experiment is not None:
            ledger.phases(t.experiment)
    elapsed = time.process_time() - t0
    assert builds == [1]
    assert elapsed < 3.0, elapsed


def test_validation_and_index_are_linear() -> None:
    """Building a ledger from parsed data (schema, cross-entry rules, index): the CPU time of
    8x the transitions is well under 8^2 = 64x; linear growth gives ~8x."""

    def cost(n: int) -> float:
        data = _data(long_ledger(n))
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            parse_ledger(copy.deepcopy(data))._index  # build it
            best = min(best, time.process_time() - t0)
        return best

    small, large = cost(500), cost(4000)
    assert large / small < 24, (small, large)


def _data(text: str) -> Any:
    from analysis import _yaml

    return _yaml.parse(text)


# ------------------------------------------------------------------ split with long ledgers


@pytest.mark.parametrize("engine", ["polars", "pandas", "duckdb"])
def test_long_ledger_gives_the_sample_labels(
    tmp_path: Path,
    events_path: Path,
    sample_events: pl.DataFrame,
    truth: pl.DataFrame,
    ledger: Any,
    engine: str,
) -> None:
    """600 transitions around the sample's story (300 earlier deploys of its prompt, ~70 other
    experiments): the same phases, labels and served revisions as the ground truth, and the
    same effects. (The nested expressions this replaced overflowed the recursion limit here.)"""
    path = tmp_path / "ledger.yaml"
    path.write_text(long_ledger(600, early=0.5))
    long = load_ledger(path)
    assert len(long.transitions) == 600
    assert len(long.live_history("support-assistant")) > 300
    assert len(long.experiments) > 50
    if engine == "duckdb":
        import duckdb

        events: Any = duckdb.connect().from_arrow(sample_events.to_arrow())
    elif engine == "pandas":  # nanosecond timestamps
        events = sample_events.with_columns(pl.col("ts").dt.cast_time_unit("ns")).to_pandas()
    else:
        events = events_path
    truth = expected_labels(events_path, ledger, truth)  # + the symmetric prior_conversation
    result = split(events, path, "exp-17")
    got = result.frame.select("event_id", "phase", "contamination", "served_revision")
    joined = truth.join(got.collect().to_polars(), on="event_id", how="full", coalesce=True)
    assert joined.height == truth.height
    wrong = joined.filter(
        (pl.col("label") != pl.col("contamination"))
        | (pl.col("phase") != pl.col("phase_right"))
        | (pl.col("served_revision") != pl.col("served_revision_right"))
    )
    assert wrong.height == 0, wrong.head()
    if engine != "polars":
        return
    from analysis import Ratio

    metrics = [Ratio("helpfulness")]
    a = analyze(result, metrics=metrics).to_polars().drop_nulls("effect")
    b = analyze(split(events_path, ledger, "exp-17"), metrics=metrics).to_polars()
    assert a.sort("analysis", "phase")["effect"].to_list() == pytest.approx(
        b.drop_nulls("effect").sort("analysis", "phase")["effect"].to_list(), rel=1e-12
    )


def test_experiment_with_hundreds_of_phases_matches_brute_force() -> None:
    """An experiment ramped 400 times (phase 0..402), some ramps at the same instant (empty
    phases), against the brute-force labeller; events of three prompts' experiments."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    transitions: list[dict[str, Any]] = [
        {"at": t0.isoformat(), "action": "deploy", "prompt": "p", "revision": "a"},
        {"at": t0.isoformat(), "action": "deploy", "prompt": "q", "revision": "c"},
        {"at": (t0 + timedelta(minutes=1)).isoformat(), "action": "start", "experiment": "other",
         "allocation": {"control": 0.5, "treatment": 0.5}},
        {"at": (t0 + timedelta(minutes=5)).isoformat(), "action": "start", "experiment": "e",
         "allocation": {"control": 0.9, "treatment": 0.1}},
    ]  # fmt: skip
    minute = 5
    for i in range(400):
        minute += 0 if i % 7 == 3 else 2
        share = (i % 9 + 1) / 10
        transitions.append(
            {"at": (t0 + timedelta(minutes=minute)).isoformat(), "action": "ramp",
             "experiment": "e", "allocation": {"control": 1 - share, "treatment": share}}
        )  # fmt: skip
    transitions.append(
        {"at": (t0 + timedelta(minutes=minute + 3)).isoformat(), "action": "rollback",
         "experiment": "e", "to": "a"}
    )  # fmt: skip
    raw = {
        "version": 1,
        "prompts": {"p": {"revisions": {"a": {}, "b": {}}}, "q": {"revisions": {"c": {}, "d": {}}}},
        "experiments": {
            "e": {"prompt": "p", "arms": {"control": "a", "treatment": "b"}},
            "other": {"prompt": "q", "arms": {"control": "c", "treatment": "d"}},
        },
        "transitions": transitions,
    }
    ledger = parse_ledger(raw)
    assert len(ledger.phases("e")) == 403
    rng = __import__("random").Random(7)
    rows = []
    for i in range(600):
        tag = rng.choice(["e", "e", "e", "other", None])
        rows.append(
            {
                "event_id": f"ev{i}",
                "ts": t0 + timedelta(seconds=rng.randrange(-600, (minute + 10) * 60)),
                "user_id": f"u{rng.randrange(40)}",
                "experiment_id": tag,
                "arm": rng.choice(["control", "treatment"]) if tag else None,
                "conversation_id": f"c{rng.randrange(60)}",
                "revision_id": rng.choice([None, None, None, "a", "b", "c"]),
                "response_revision_id": rng.choice([None] * 9 + ["b"]),
            }
        )
    events = pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")})
    got = split(events, ledger, "e").frame.collect().to_polars()
    ref = reference_labels(ledger, events, "e")
    assert got.height == events.height
    for row in got.iter_rows(named=True):
        expected = ref[row["event_id"]]
        got_row = (row["phase"], row["contamination"], row["served_revision"], row["ramp_moved"])
        assert got_row == expected, row
    assert got["phase"].n_unique() > 150
