"""Property tests of the split on random ledgers and events (hypothesis).

A brute-force labeller written from the labelling rules (README, docs/ledger.md, docs/metrics.md:
ramp-moved units, ``prior_conversation``) with plain Python loops is the reference;
the properties of the issue are checked on top: one label per event, counts add up, clean events
lie in exposure phases and are served by their arm's revision, a crossover unit has all its
eligible events so labelled, and the result does not depend on row order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import LABELS, contamination_summary, split
from analysis.events import _lookup
from analysis.ledger import parse_ledger

T0 = datetime(2026, 11, 1, tzinfo=UTC)
REVS = ["r1", "r2", "r3"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], pl.DataFrame]:
    n_arms = draw(st.integers(2, 3))
    arms = {f"a{i}": REVS[i] for i in range(n_arms)}
    start_h = draw(st.integers(1, 10))
    n_ramps = draw(st.integers(0, 2))
    ramp_hs = sorted(
        draw(st.lists(st.integers(start_h, start_h + 20), min_size=n_ramps, max_size=n_ramps))
    )
    end_kind = draw(st.sampled_from(["rollback", "promote", "stop", "open"]))
    end_h = (ramp_hs[-1] if ramp_hs else start_h) + draw(st.integers(0, 10))

    def alloc() -> dict[str, float]:
        w = draw(st.lists(st.integers(1, 5), min_size=n_arms, max_size=n_arms))
        return {a: x / sum(w) for a, x in zip(arms, w, strict=True)}

    def at(h: int) -> str:
        return (T0 + timedelta(hours=h)).isoformat()

    transitions: list[dict[str, Any]] = [
        {"at": at(0), "action": "deploy", "prompt": "p", "revision": "r1"},
        {"at": at(start_h), "action": "start", "experiment": "e", "allocation": alloc()},
    ]
    transitions += [
        {"at": at(h), "action": "ramp", "experiment": "e", "allocation": alloc()} for h in ramp_hs
    ]
    if end_kind == "rollback":
        transitions.append({"at": at(end_h), "action": "rollback", "experiment": "e", "to": "r1"})
    elif end_kind == "promote":
        transitions.append({"at": at(end_h), "action": "promote", "experiment": "e", "arm": "a1"})
    elif end_kind == "stop":
        transitions.append({"at": at(end_h), "action": "stop", "experiment": "e"})
    ledger = {
        "version": 1,
        "prompts": {"p": {"revisions": {r: {} for r in REVS}}},
        "experiments": {"e": {"prompt": "p", "arms": arms}},
        "transitions": transitions,
    }
    n = draw(st.integers(1, 60))
    rows = []
    for i in range(n):
        minute = draw(st.integers(0, 40 * 60))
        tag = draw(st.sampled_from(["e", "e", "e", None, "other"]))
        arm = draw(st.sampled_from(list(arms))) if tag == "e" else ("x" if tag == "other" else None)
        rows.append(
            {
                "event_id": f"ev{i}",
                "ts": T0 + timedelta(minutes=minute),
                "user_id": f"u{draw(st.integers(0, 6))}",
                "experiment_id": tag,
                "arm": arm,
                "conversation_id": draw(st.sampled_from([None, "c0", "c1", "c2", "c3"])),
                "revision_id": draw(st.sampled_from([None, *REVS])),
                "response_revision_id": draw(st.sampled_from([None, None, *REVS])),
            }
        )
    schema = {
        "event_id": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "user_id": pl.String,
        "experiment_id": pl.String,
        "arm": pl.String,
        "conversation_id": pl.String,
        "revision_id": pl.String,
        "response_revision_id": pl.String,
    }
    return ledger, pl.DataFrame(rows, schema=schema)


def reference_labels(
    ledger: Any, events: pl.DataFrame, experiment: str = "e"
) -> dict[str, tuple[int, str, str | None]]:
    """Brute force from the labelling rules and docs/ledger.md: event_id -> (phase, label, served).

    Plain loops over every transition and every event; nothing of the ledger's derived views
    but ``phases`` (checked separately in tests/test_long_ledger.py) is used.
    """
    exp = ledger.experiments[experiment]
    phases = ledger.phases(experiment)
    rows = events.to_dicts()

    def window(eid: str) -> tuple[datetime | None, datetime | None]:
        mine = [t for t in ledger.transitions if t.experiment == eid]
        start = next((t.at for t in mine if t.action == "start"), None)
        end = next((t.at for t in mine if t.action in ("rollback", "promote", "stop")), None)
        return start, end

    def live_at(prompt: str, ts: datetime) -> str | None:
        live = None
        for t in ledger.transitions:
            if t.at > ts:
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

    def inferred(r: dict[str, Any]) -> str | None:
        tag = r["experiment_id"]
        if tag in ledger.experiments:
            x = ledger.experiments[tag]
            s, e = window(tag)
            if s is not None and r["ts"] >= s and (e is None or r["ts"] < e):
                return x.arms[r["arm"]]
            return live_at(x.prompt, r["ts"])
        return live_at(exp.prompt, r["ts"])

    start, end = window(experiment)

    def exposed(r: dict[str, Any]) -> bool:
        return (
            r["experiment_id"] == experiment and r["ts"] >= start and (end is None or r["ts"] < end)
        )

    served: dict[str, str | None] = {}
    for r in rows:
        served[r["event_id"]] = r["revision_id"] if r["revision_id"] is not None else inferred(r)

    def phase_of(r: dict[str, Any]) -> int:
        return max(p.id for p in phases if p.start is None or r["ts"] >= p.start)

    # a unit's arms in each exposure phase; crossover: two arms within a phase, or a change
    # between consecutive phases of appearance that is not from a shrinking to a growing arm
    alloc = {p.id: p.allocation for p in phases if p.kind == "exposure"}
    per_phase: dict[str, dict[int, set[str]]] = {}
    for r in rows:
        if exposed(r) and r["arm"] is not None:
            per_phase.setdefault(r["user_id"], {}).setdefault(phase_of(r), set()).add(r["arm"])
    crossed: set[str] = set()
    moved: set[str] = set()
    for uid, arms_by_phase in per_phase.items():
        seen = sorted(arms_by_phase.items())
        if any(len(a) > 1 for _, a in seen):
            crossed.add(uid)
            continue
        for (p, (x,)), (q, (y,)) in pairwise(seen):
            if x == y:
                continue
            old, new = alloc[p], alloc[q]
            shrinks = new.get(x, 0.0) < old.get(x, 0.0) - 1e-9
            grows = new.get(y, 0.0) > old.get(y, 0.0) + 1e-9
            if shrinks and grows:
                moved.add(uid)
            else:
                crossed.add(uid)
    moved -= crossed
    conv_start: dict[Any, datetime] = {}
    for r in rows:
        c = r["conversation_id"]
        if c is not None and (c not in conv_start or r["ts"] < conv_start[c]):
            conv_start[c] = r["ts"]
    phase_start = {p.id: p.start for p in phases if p.kind == "exposure"}
    out = {}
    for r in rows:
        phase = phase_of(r)
        s = served[r["event_id"]]
        if r["experiment_id"] != experiment or r["ts"] < start:
            label = "outside_window"
        elif end is not None and r["ts"] >= end:
            label = "after_end"
        elif r["user_id"] in crossed:
            label = "crossover"
        elif s != exp.arms[r["arm"]]:
            label = "served_mismatch"
        elif r["response_revision_id"] is not None and r["response_revision_id"] != s:
            label = "stale_cache"
        elif r["conversation_id"] is not None and any(
            o["conversation_id"] == r["conversation_id"]
            and o["ts"] <= r["ts"]
            and served[o["event_id"]] is not None
            and s is not None
            and served[o["event_id"]] != s
            for o in rows
        ):
            label = "carryover"
        elif (
            phase in phase_start
            and r["conversation_id"] is not None
            and conv_start[r["conversation_id"]] < phase_start[phase]
        ):
            label = "prior_conversation"
        else:
            label = "clean"
        out[r["event_id"]] = (phase, label, s, r["user_id"] in moved)
    return out


@pytest.fixture(params=["flat", "join"])
def lookup_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the ledger's facts as flat expressions (few changes, the default for
    small ledgers) and again through the bucketed step table and map look-ups (long ledgers)."""
    if request.param == "join":
        monkeypatch.setattr(_lookup, "FLAT_MAX_POINTS", 0)
        monkeypatch.setattr(_lookup, "_FLAT_MAX_LOOKUP", 0)
    return str(request.param)


SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}


@settings(max_examples=100, **SETTINGS)
@given(scenario=scenarios())
def test_split_properties(scenario: tuple[dict[str, Any], pl.DataFrame], lookup_path: str) -> None:
    raw_ledger, events = scenario
    ledger = parse_ledger(raw_ledger)
    if events.filter(pl.col("experiment_id") == "e").height == 0:
        return
    start, _ = ledger.window("e")
    assert start is not None
    result = split(events, ledger, "e")
    got = result.frame.collect().to_polars()

    # one label per event, from the list
    assert got.height == events.height
    assert set(got["contamination"].unique()) <= set(LABELS)
    assert got["contamination"].null_count() == 0

    # equal to the brute-force reference
    ref = reference_labels(ledger, events)
    for row in got.iter_rows(named=True):
        assert (
            row["phase"],
            row["contamination"],
            row["served_revision"],
            row["ramp_moved"],
        ) == ref[row["event_id"]]

    # counts add up
    summary = contamination_summary(result)
    assert sum(t.n_events for t in summary.totals) == events.height
    assert sum(r.n_events for r in summary.rows) == events.height

    # clean events: in an exposure phase, served by their arm's revision
    kinds = {p.id: p for p in result.phases}
    for row in got.filter(pl.col("contamination") == "clean").iter_rows(named=True):
        phase = kinds[row["phase"]]
        assert phase.kind == "exposure"
        assert row["served_revision"] == phase.arms[row["arm"]]

    # a crossover unit has all its events that no earlier rule took labelled crossover
    crossed = set(got.filter(pl.col("contamination") == "crossover")["user_id"])
    for row in got.filter(pl.col("user_id").is_in(list(crossed))).iter_rows(named=True):
        assert row["contamination"] in ("outside_window", "after_end", "crossover")

    # independent of row order
    shuffled = split(events.sample(fraction=1.0, shuffle=True, seed=1), ledger, "e")
    again = shuffled.frame.collect().to_polars().sort("event_id")
    assert again.select("event_id", "phase", "contamination").equals(
        got.sort("event_id").select("event_id", "phase", "contamination")
    )


# ------------------------------------------------------------- several prompts and experiments

PROMPT_REVS = {"p": ["p1", "p2", "p3", "p4"], "q": ["q1", "q2", "q3"]}


@st.composite
def busy_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], str, pl.DataFrame]:
    """Two prompts, deploys, prompt rollbacks and several experiments (some of the other prompt,
    some never started), in a random valid order; events tagged with any of them."""
    live: dict[str, str | None] = {"p": None, "q": None}
    running: dict[str, str | None] = {"p": None, "q": None}
    experiments: dict[str, dict[str, Any]] = {
        "idle-p": {"prompt": "p", "arms": {"control": "p1", "treatment": "p2"}},
        "idle-q": {"prompt": "q", "arms": {"control": "q1", "treatment": "q3"}},
    }
    transitions: list[dict[str, Any]] = []
    hour = 0
    for _ in range(draw(st.integers(2, 14))):
        hour += draw(st.integers(0, 4))  # equal times allowed: empty phases
        at = (T0 + timedelta(hours=hour)).isoformat()
        prompt = draw(st.sampled_from(["p", "q"]))
        revs = PROMPT_REVS[prompt]
        eid = running[prompt]
        if eid is not None:
            arms = experiments[eid]["arms"]
            kind = draw(st.sampled_from(["ramp", "rollback", "promote", "stop"]))
            if kind == "ramp":
                w = draw(st.lists(st.integers(1, 5), min_size=len(arms), max_size=len(arms)))
                alloc = {a: x / sum(w) for a, x in zip(arms, w, strict=True)}
                transitions.append(
                    {"at": at, "action": "ramp", "experiment": eid, "allocation": alloc}
                )
                continue
            running[prompt] = None
            entry: dict[str, Any] = {"at": at, "action": kind, "experiment": eid}
            if kind == "rollback":
                entry["to"] = arms["control"]
                live[prompt] = arms["control"]
            elif kind == "promote":
                arm = draw(st.sampled_from(sorted(arms)))
                entry["arm"] = arm
                live[prompt] = arms[arm]
            transitions.append(entry)
            continue
        kind = draw(st.sampled_from(["deploy", "start", "start", "prompt_rollback"]))
        if kind == "deploy" or live[prompt] is None:
            rev = draw(st.sampled_from(revs))
            transitions.append({"at": at, "action": "deploy", "prompt": prompt, "revision": rev})
            live[prompt] = rev
        elif kind == "prompt_rollback":
            to = draw(st.sampled_from(revs))
            transitions.append({"at": at, "action": "rollback", "prompt": prompt, "to": to})
            live[prompt] = to
        else:
            eid = f"e{len(experiments)}"
            others = draw(st.lists(st.sampled_from(revs), min_size=1, max_size=2))
            arms = {"control": live[prompt], **{f"t{i}": r for i, r in enumerate(others)}}
            experiments[eid] = {"prompt": prompt, "arms": arms}
            w = draw(st.lists(st.integers(1, 5), min_size=len(arms), max_size=len(arms)))
            alloc = {a: x / sum(w) for a, x in zip(arms, w, strict=True)}
            transitions.append(
                {"at": at, "action": "start", "experiment": eid, "allocation": alloc}
            )
            running[prompt] = eid
    started = [t["experiment"] for t in transitions if t["action"] == "start"]
    ledger = {
        "version": 1,
        "prompts": {k: {"revisions": {r: {} for r in v}} for k, v in PROMPT_REVS.items()},
        "experiments": experiments,
        "transitions": transitions,
    }
    target = draw(st.sampled_from(started)) if started else ""
    tags = [*experiments, "unknown-exp", None]
    rows = []
    for i in range(draw(st.integers(1, 60))):
        tag = draw(st.sampled_from([target, target, *tags]))
        arm = (
            draw(st.sampled_from(sorted(experiments[tag]["arms"])))
            if tag in experiments
            else ("x" if tag is not None else None)
        )
        rows.append(
            {
                "event_id": f"ev{i}",
                "ts": T0 + timedelta(minutes=draw(st.integers(-60, (hour + 6) * 60))),
                "user_id": f"u{draw(st.integers(0, 6))}",
                "experiment_id": tag,
                "arm": arm,
                "conversation_id": draw(st.sampled_from([None, "c0", "c1", "c2"])),
                "revision_id": draw(st.sampled_from([None, None, "p1", "q2"])),
                "response_revision_id": draw(st.sampled_from([None, None, None, "p2"])),
            }
        )
    schema = {
        "event_id": pl.String,
        "ts": pl.Datetime("us", "UTC"),
        "user_id": pl.String,
        "experiment_id": pl.String,
        "arm": pl.String,
        "conversation_id": pl.String,
        "revision_id": pl.String,
        "response_revision_id": pl.String,
    }
    return ledger, target, pl.DataFrame(rows, schema=schema)


@settings(max_examples=80, **SETTINGS)
@given(scenario=busy_scenarios())
def test_split_with_several_prompts_and_experiments(
    scenario: tuple[dict[str, Any], str, pl.DataFrame], lookup_path: str
) -> None:
    """Phases, served revisions and labels equal the brute-force labeller when the ledger holds
    other prompts, other experiments (running or not, of either prompt) and prompt rollbacks."""
    raw_ledger, target, events = scenario
    ledger = parse_ledger(raw_ledger)
    if not target or events.filter(pl.col("experiment_id") == target).height == 0:
        return
    got = split(events, ledger, target).frame.collect().to_polars()
    assert got.height == events.height
    ref = reference_labels(ledger, events, target)
    for row in got.iter_rows(named=True):
        expected = ref[row["event_id"]]
        got_row = (row["phase"], row["contamination"], row["served_revision"], row["ramp_moved"])
        assert got_row == expected, row
