"""Benchmark: split, baseline sync, rollback plan and rollback apply with a long ledger.

Usage::

    python benchmarks/bench_long_ledger.py                       # 10,000 transitions
    python benchmarks/bench_long_ledger.py --transitions 1000 4000 10000 --repeat 3

The ledger (:func:`long_ledger`) holds the embedded sample's own story — ``support-assistant``
with ``r41`` live, ``exp-17`` ramped 10% → 25% and rolled back — plus the rest of a busy
organisation: ~5% of the transitions are earlier deploys of ``support-assistant`` (before the
story, so its events still split to the same labels), the others belong to one other prompt per
~50 transitions (deploys, prompt rollbacks, experiments started, ramped, rolled back, promoted
or stopped), spread over 2024-2027 and interleaved with the story. A second ledger stops the
story before the rollback (``exp-17`` still running at the end): the rollback ``plan`` and
``apply`` act on it, at an instant after its last transition.

Floor (issue 10): on the sample's 76,606 events with a 10,000-transition ledger, ``split``,
``sync``, ``plan`` and ``apply`` each under 5 s. Every step runs through the public API in this
process, ledger loading included (each step reads the file as a user's call would); the split
is also checked against the sample's ground truth. Times are wall-clock, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples"
PROMPT = "support-assistant"

_HEADER = """\
# A long rollout ledger for benchmarks and tests: the embedded sample's story (exp-17, a canary of
# r42 rolled back to r41) among {n} transitions of other prompts and experiments.
version: 1
"""
_STORY = [
    {"at": "2026-11-01T00:00:00Z", "action": "deploy", "prompt": PROMPT, "revision": "r41"},
    {
        "at": "2026-11-02T09:00:00Z",
        "action": "start",
        "experiment": "exp-17",
        "allocation": {"control": 0.9, "treatment": 0.1},
    },
    {
        "at": "2026-11-02T21:00:00Z",
        "action": "ramp",
        "experiment": "exp-17",
        "allocation": {"control": 0.75, "treatment": 0.25},
    },
    {"at": "2026-11-03T08:15:00Z", "action": "rollback", "experiment": "exp-17", "to": "r41"},
]
_T0 = datetime(2024, 1, 1, tzinfo=UTC)
_T1 = datetime(2027, 12, 31, tzinfo=UTC)
_SAMPLE_START = datetime(2026, 11, 1, tzinfo=UTC)


def long_ledger(n: int, *, seed: int = 0, running: bool = False, early: float = 0.05) -> str:
    """A valid ledger of ``n`` transitions (YAML text, flow style like the sample's).

    Args:
        n: Transitions in total (at least the story's four).
        seed: Random seed.
        running: Leave ``exp-17`` running (no rollback): the ledger a rollback is planned on.
        early: Share of the transitions that are earlier deploys of the story's prompt.
    """
    rng = random.Random(seed)
    story = _STORY[:3] if running else _STORY
    revisions: dict[str, dict[str, dict[str, Any]]] = {
        PROMPT: {"r41": {"contract": "v3"}, "r42": {"parent": "r41", "contract": "v4"}}
    }
    experiments: dict[str, dict[str, Any]] = {
        "exp-17": {
            "prompt": PROMPT,
            "unit": "user_id",
            "arms": {"control": "r41", "treatment": "r42"},
        }
    }
    consumers: dict[str, dict[str, Any]] = {
        "ticket-router": {"prompt": PROMPT, "accepts": ["v4"]},
        "analytics-etl": {"prompt": PROMPT, "accepts": ["v3", "v4"]},
    }
    timed: list[tuple[datetime, int, dict[str, Any]]] = []
    order = 0

    def add(at: datetime, entry: dict[str, Any]) -> None:
        nonlocal order
        timed.append((at, order, {"at": _iso(at), **entry}))
        order += 1

    # earlier deploys of the story's prompt (its live history grows, its events keep r41)
    n_early = max(0, min(round(n * early), n - len(story)))
    early = sorted(_moment(rng, _T0, _SAMPLE_START - timedelta(days=1)) for _ in range(n_early))
    for i, at in enumerate(early):
        rid = f"r{1000 + i}"
        revisions[PROMPT][rid] = {"contract": "v3"}
        add(at, {"action": "deploy", "prompt": PROMPT, "revision": rid})
    for entry in story:
        add(_parse(entry["at"]), {k: v for k, v in entry.items() if k != "at"})

    # the other prompts, ~50 transitions each
    rest = max(0, n - len(story) - n_early)
    n_prompts = max(1, round(rest / 50)) if rest else 0
    for p in range(n_prompts):
        m = rest // n_prompts + (1 if p < rest % n_prompts else 0)
        _prompt_story(rng, f"p-{p:04d}", m, revisions, experiments, consumers, add)

    timed.sort(key=lambda item: (item[0], item[1]))
    lines = [_HEADER.format(n=len(timed)), "prompts:"]
    for prompt, revs in revisions.items():
        lines.append(f"  {prompt}:")
        lines.append("    revisions:")
        lines.extend(f"      {rid}: {_flow(r)}" for rid, r in revs.items())
    lines.append("experiments:")
    lines.extend(f"  {eid}: {_flow(e)}" for eid, e in experiments.items())
    lines.append("consumers:")
    lines.extend(f"  {cid}: {_flow(c)}" for cid, c in consumers.items())
    lines.append("transitions:")
    lines.extend(f"  - {_flow(entry)}" for _, _, entry in timed)
    return "\n".join(lines) + "\n"


def _prompt_story(
    rng: random.Random,
    prompt: str,
    m: int,
    revisions: dict[str, dict[str, dict[str, Any]]],
    experiments: dict[str, dict[str, Any]],
    consumers: dict[str, dict[str, Any]],
    add: Callable[[datetime, dict[str, Any]], None],
) -> None:
    """``m`` valid transitions of one prompt: deploys, prompt rollbacks and experiments."""
    revs: dict[str, dict[str, Any]] = {}
    revisions[prompt] = revs
    consumers[f"{prompt}-consumer"] = {"prompt": prompt, "accepts": ["v1", "v2"]}
    history: list[str] = []
    running: tuple[str, str] | None = None  # (experiment, treatment revision)
    n_exp = 0

    def new_revision() -> str:
        rid = f"{prompt}-r{len(revs)}"
        revs[rid] = {"contract": rng.choice(["v1", "v2"])}
        if history:
            revs[rid]["parent"] = history[-1]
        return rid

    for at in sorted(_moment(rng, _T0, _T1) for _ in range(m)):
        roll = rng.random()
        if running is not None:
            eid, treatment = running
            if roll < 0.4:
                share = rng.choice([0.05, 0.1, 0.25, 0.5])
                add(at, {"action": "ramp", "experiment": eid, "allocation": _alloc(share)})
                continue
            running = None
            if roll < 0.65:
                add(at, {"action": "rollback", "experiment": eid, "to": history[-1]})
            elif roll < 0.8:
                add(at, {"action": "promote", "experiment": eid, "arm": "treatment"})
                history.append(treatment)
            else:
                add(at, {"action": "stop", "experiment": eid})
        elif not history or roll < 0.4:
            rid = new_revision()
            add(at, {"action": "deploy", "prompt": prompt, "revision": rid})
            history.append(rid)
        elif roll < 0.85 or len(history) < 2:
            n_exp += 1
            eid = f"x-{prompt}-{n_exp:03d}"
            treatment = new_revision()
            experiments[eid] = {
                "prompt": prompt,
                "arms": {"control": history[-1], "treatment": treatment},
            }
            share = rng.choice([0.05, 0.1, 0.25, 0.5])
            add(at, {"action": "start", "experiment": eid, "allocation": _alloc(share)})
            running = (eid, treatment)
        else:
            add(at, {"action": "rollback", "prompt": prompt, "to": history[-2]})
            history.append(history[-2])


def _alloc(share: float) -> dict[str, float]:
    return {"control": round(1 - share, 2), "treatment": share}


def _moment(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    return lo + timedelta(seconds=rng.randrange(int((hi - lo).total_seconds())))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return str(value)


# ---------------------------------------------------------------------------------- benchmark


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[tuple[float, float], Any]:
    """Best (wall, CPU) seconds of ``repeat`` runs, and the last result. CPU time counts every
    thread of the process: on a busy machine it is the steadier figure."""
    best, out = (float("inf"), float("inf")), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best = (min(best[0], wall), min(best[1], cpu))
    return best, out


def run(n: int, repeat: int) -> dict[str, Any]:
    """Time split, sync, plan and apply with an ``n``-transition ledger; returns the figures."""
    import polars as pl

    from analysis import contamination_summary, load_ledger, split
    from analysis.evals.store import BaselineStore
    from analysis.rollback.applying import rollback_apply
    from analysis.rollback.planning import rollback_plan

    events = SAMPLE / "events.parquet"
    with tempfile.TemporaryDirectory(prefix="bench-long-ledger-") as tmp:
        work = Path(tmp)
        full, pre = work / "ledger.yaml", work / "pre" / "ledger.yaml"
        pre.parent.mkdir()
        full.write_text(long_ledger(n))
        pre_text = long_ledger(n, running=True)
        pre.write_text(pre_text)
        ledger = load_ledger(pre)
        at = ledger.transitions[-1].at + timedelta(minutes=1)
        figures: dict[str, Any] = {"transitions": len(load_ledger(full).transitions)}

        figures["load"], _ = _timed(lambda: load_ledger(full), repeat)

        def do_split() -> Any:
            result = split(events, full, "exp-17")
            return result, contamination_summary(result)

        figures["split"], (result, _) = _timed(do_split, repeat)
        truth = pl.read_parquet(SAMPLE / "truth.parquet")
        got = result.frame.select("event_id", "contamination", "phase").collect().to_polars()
        joined = truth.join(got, on="event_id")
        figures["labels_equal_truth"] = bool(
            joined.height == truth.height
            and (joined["label"] == joined["contamination"]).all()
            and (joined["phase"] == joined["phase_right"]).all()
        )

        def do_sync() -> Any:
            store = work / "store-sync"
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(ROOT / "baselines", store)
            return BaselineStore(store).sync(load_ledger(full))

        figures["sync"], _ = _timed(do_sync, repeat)

        store = work / "store"
        shutil.copytree(ROOT / "baselines", store)
        figures["plan"], _ = _timed(
            lambda: rollback_plan(pre, PROMPT, events=events, baselines=store, at=at), repeat
        )

        def do_apply() -> Any:
            pre.write_text(pre_text)
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(ROOT / "baselines", store)
            return rollback_apply(
                pre, PROMPT, events=events, baselines=store, at=at, confirm=["ticket-router"]
            )

        figures["apply"], applied = _timed(do_apply, repeat)
        figures["apply_appended"] = load_ledger(pre).transitions[-1].action == "rollback"
        figures["apply_changed"] = applied.changed
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, nargs="+", default=[10_000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    steps = ("load", "split", "sync", "plan", "apply")
    print("Seconds, wall / CPU, best of", args.repeat)
    print("| transitions | " + " | ".join(steps) + " | labels = truth |")
    print("|---" * (len(steps) + 2) + "|")
    for n in args.transitions:
        f = run(n, args.repeat)
        cells = " | ".join(f"{f[s][0]:.2f} / {f[s][1]:.2f}" for s in steps)
        print(f"| {f['transitions']:,} | {cells} | {f['labels_equal_truth']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
