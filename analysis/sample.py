"""Seeded generator of the embedded sample: a canary that was rolled back, and what it left.

The story (``data_samples/ledger.yaml``): ``r41`` is live from 2026-11-01; ``exp-17`` starts a 10%
canary of ``r42`` at 2026-11-02T09:00Z, ramps it to 25% at 21:00, and rolls it back at
2026-11-03T08:15Z. ``r42`` lowers helpfulness by :attr:`SampleSpec.effect` per turn.

What the generator builds in, each with its ground truth:

* sticky assignment at enrolment: a unit is enrolled at its first turn during the exposure
  phases, with the allocation of that phase, and keeps its arm;
* **stale tags**: after the rollback, each enrolled unit's events keep the arm tag until its
  assignment cache refreshes (uniform over ``stale_tag_hours``) although ``r41`` serves them;
* **served mismatch**: treatment turns in the first ``propagation_minutes`` after the start are
  still served ``r41``, and a small share fall back to ``r41`` at random;
* **crossover**: a few units (switching devices) carry the other arm's tag on some turns;
* **semantic cache**: a share of turns are semantic-cache hits; a hit serves a response written
  earlier by whichever revision wrote that entry, so ``r42`` responses keep being served after
  the rollback until the entries expire (``cache_key`` identifies the entry read or written);
* **carryover**: conversations continue across boundaries; turns served by ``r41`` after a turn
  served by ``r42`` in the same conversation are degraded by ``carryover_penalty`` ("stay
  degraded afterwards");
* **prompt cache**: each revision's prefix cache warms up after it starts serving
  (``1 - exp(-t / cache_warmup_minutes)``), visible in ``cache_hit`` / ``cached_tokens`` / cost;
* **contracts**: ``r41`` emits ``v3``, ``r42`` ``v4``; the ``ticket-router`` consumer was wired
  to the canary's output and keeps reading the exposed units' turns, so it fails to parse the
  ``v3`` outputs that return after the rollback (``parse_ok``);
* a few exact duplicate rows and a few events tagged with an experiment the ledger does not
  define (``exp-09``).

The ground truth (``truth`` of :class:`Sample`) holds every event's true label and phase,
computed here from the generating facts with plain numpy — independently of
:mod:`analysis.events.labelling` — and the true per-turn effect on helpfulness.

Run ``python -m analysis.sample --help`` (or ``python data_samples/generate.py``) to write the
sample or a large export for benchmarks.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Sample",
    "SampleSpec",
    "generate",
    "main",
    "path",
    "store",
    "write_large",
    "write_sample",
]

_US = 1_000_000  # microseconds per second


def path(name: str | None = None) -> Path:
    """The embedded sample's folder, or one file in it, from a checkout or an installed package.

    Args:
        name: A file of the sample (``"ledger.yaml"``, ``"events.parquet"``,
            ``"evals/support-qa.suite.yaml"``, ...); ``None`` for the folder itself.

    Returns:
        The path (the folder holds ``ledger.yaml``, ``events.parquet``, ``metrics.yaml``,
        ``truth.parquet``, ``evals/`` and ``rollback/``).

    Raises:
        PromptstateError: the sample is not installed.

    Examples:
        >>> from analysis import sample
        >>> sample.path("ledger.yaml").name
        'ledger.yaml'
    """
    from analysis._paths import sample_dir

    folder = sample_dir()
    return folder if name is None else folder / name


def store() -> Path | None:
    """The embedded sample's eval-baseline store (read-only; copy it before writing to it)."""
    from analysis._paths import sample_store

    return sample_store()


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_WINDOW_START = _t("2026-11-01T00:00:00Z")
_WINDOW_END = _t("2026-11-04T12:00:00Z")
_START = _t("2026-11-02T09:00:00Z")
_RAMP = _t("2026-11-02T21:00:00Z")
_ROLLBACK = _t("2026-11-03T08:15:00Z")


@dataclass(frozen=True)
class SampleSpec:
    """Parameters of the generated story (defaults make the committed sample).

    Times must match the ledger the sample ships with.
    """

    n_users: int = 2500
    seed: int = 17
    window_start: datetime = _WINDOW_START
    window_end: datetime = _WINDOW_END
    start: datetime = _START
    ramp: datetime = _RAMP
    rollback: datetime = _ROLLBACK
    share_start: float = 0.10
    share_ramp: float = 0.25
    conversations_per_day: float = 2.0
    effect: float = -0.40
    carryover_penalty: float = -0.30
    base_helpfulness: float = 3.6
    user_sd: float = 0.5
    turn_sd: float = 0.8
    time_of_day_amplitude: float = 0.15
    stale_tag_hours: float = 24.0
    propagation_minutes: float = 10.0
    fallback_share: float = 0.01
    crossover_user_share: float = 0.01
    crossover_event_share: float = 0.3
    semantic_hit_share: float = 0.08
    semantic_ttl_hours: float = 24.0
    cache_warmup_minutes: float = 20.0
    cache_hit_ceiling: float = 0.9
    duplicate_rows: int = 30
    unknown_experiment_rows: int = 40
    long_conversation_share: float = 0.2
    id_prefix: str = ""


@dataclass
class Sample:
    """A generated export: ``events`` (polars DataFrame) and ``truth`` (event_id → label...)."""

    events: Any
    truth: Any
    info: dict[str, Any] = field(default_factory=dict)


def _minutes(delta_us: np.ndarray) -> np.ndarray:
    return delta_us / (60 * _US)


def generate(spec: SampleSpec | None = None) -> Sample:
    """Generate the sample (vectorised; about 30 events per unit).

    Returns:
        A :class:`Sample` whose ``events`` has the export's columns and whose ``truth`` has
        ``event_id``, ``phase``, ``label`` and ``served_revision`` for every distinct event.
    """
    import polars as pl

    s = spec or SampleSpec()
    rng = np.random.default_rng(s.seed)
    us = lambda d: int(d.timestamp() * _US)  # noqa: E731
    w0, w1 = us(s.window_start), us(s.window_end)
    t_start, t_ramp, t_end = us(s.start), us(s.ramp), us(s.rollback)
    days = (w1 - w0) / (86400 * _US)

    # --- units --------------------------------------------------------------------------
    n = s.n_users
    rate = rng.gamma(2.0, s.conversations_per_day / 2.0, size=n)
    user_effect = rng.normal(0.0, s.user_sd, size=n)
    bucket = rng.random(n)
    switcher = rng.random(n) < s.crossover_user_share
    stale_until = t_end + (rng.random(n) * s.stale_tag_hours * 3600 * _US).astype(np.int64)

    # --- conversations and turns ----------------------------------------------------------
    n_conv = rng.poisson(rate * days)
    conv_user = np.repeat(np.arange(n), n_conv)
    n_c = conv_user.size
    conv_start = w0 + (rng.random(n_c) * (w1 - w0)).astype(np.int64)
    long_lived = rng.random(n_c) < s.long_conversation_share
    n_turns = 1 + rng.geometric(0.3, size=n_c)
    ev_conv = np.repeat(np.arange(n_c), n_turns)
    gap_mean = np.where(long_lived[ev_conv], 90.0, 4.0) * 60 * _US
    gaps = rng.exponential(1.0, size=ev_conv.size) * gap_mean
    first = np.r_[0, np.cumsum(n_turns)[:-1]]
    gaps[first] = 0.0
    offsets = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], n_turns)
    ts = conv_start[ev_conv] + offsets.astype(np.int64)
    keep = ts < w1
    ev_conv, ts = ev_conv[keep], ts[keep]
    order = np.lexsort((ts, ev_conv))
    ev_conv, ts = ev_conv[order], ts[order]
    user = conv_user[ev_conv]
    m = ts.size

    # --- enrolment and tags ---------------------------------------------------------------
    exposed_time = (ts >= t_start) & (ts < t_end)
    first_exposure = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_exposure, user[exposed_time], ts[exposed_time])
    enrolled = first_exposure < np.iinfo(np.int64).max
    share_at_enrol = np.where(first_exposure < t_ramp, s.share_start, s.share_ramp)
    treated_user = enrolled & (bucket < share_at_enrol)
    arm_idx = np.where(treated_user[user], 1, 0)  # 0 control, 1 treatment
    tagged = (
        enrolled[user] & (ts >= first_exposure[user]) & ((ts < t_end) | (ts < stale_until[user]))
    )
    flip = switcher[user] & exposed_time & tagged & (rng.random(m) < s.crossover_event_share)
    tag_arm = np.where(flip, 1 - arm_idx, arm_idx)

    # --- served revision (0 = r41, 1 = r42) ------------------------------------------------
    served = np.zeros(m, dtype=np.int8)
    in_exp = tagged & exposed_time
    served[in_exp & (tag_arm == 1)] = 1
    lag = in_exp & (tag_arm == 1) & (ts < t_start + int(s.propagation_minutes * 60 * _US))
    fallback = in_exp & (tag_arm == 1) & (rng.random(m) < s.fallback_share)
    served[lag | fallback] = 0

    # --- semantic cache ---------------------------------------------------------------------
    sem_hit = rng.random(m) < s.semantic_hit_share
    writes = ~sem_hit
    write_idx = np.flatnonzero(writes)
    keys = np.arange(m, dtype=np.int64)  # entry written by turn i has key sk-<i>
    response = served.copy()
    cache_key = keys.copy()
    ttl = int(s.semantic_ttl_hours * 3600 * _US)
    # a hit reads a random live entry (written in the last TTL) of the whole cache
    w_ts = ts[write_idx]
    w_sorted = np.argsort(w_ts, kind="stable")
    w_ts_sorted, w_idx_sorted = w_ts[w_sorted], write_idx[w_sorted]
    hits = np.flatnonzero(sem_hit)
    lo = np.searchsorted(w_ts_sorted, ts[hits] - ttl, side="left")
    hi = np.searchsorted(w_ts_sorted, ts[hits], side="left")
    has = hi > lo
    pick = lo + (rng.random(hits.size) * np.maximum(hi - lo, 1)).astype(np.int64)
    src = np.where(has, w_idx_sorted[np.minimum(pick, w_ts_sorted.size - 1)], -1)
    hit_ok = hits[has]
    response[hit_ok] = served[src[has]]
    cache_key[hit_ok] = keys[src[has]]
    sem_hit_final = np.zeros(m, dtype=bool)
    sem_hit_final[hit_ok] = True
    miss_hits = hits[~has]  # nothing cached yet: served as a write
    cache_key[miss_hits] = keys[miss_hits]

    # --- conversations: carryover truth (numpy over sorted conversations) --------------------
    conv_first_idx = np.r_[0, np.flatnonzero(np.diff(ev_conv)) + 1]
    conv_len = np.diff(np.r_[conv_first_idx, m])
    first_served = np.repeat(served[conv_first_idx], conv_len)
    # turns at the instant of the first turn with another revision make t2 = t1
    differs = served != first_served
    big = np.iinfo(np.int64).max
    t2 = np.full(conv_first_idx.size, big)
    np.minimum.at(t2, np.repeat(np.arange(conv_first_idx.size), conv_len)[differs], ts[differs])
    t2_ev = np.repeat(t2, conv_len)
    mixed = ts >= t2_ev
    # penalty: r41-served turns after an r42-served turn of the same conversation
    is42 = (served == 1).astype(np.int64)
    cum = np.cumsum(is42)
    base = np.repeat(cum[conv_first_idx] - is42[conv_first_idx], conv_len)
    seen42_before = (cum - is42 - base) > 0
    degraded = seen42_before & (served == 0)

    # --- metrics ----------------------------------------------------------------------------
    hour = ((ts // (3600 * _US)) % 24).astype(float)
    tod = s.time_of_day_amplitude * np.sin(2 * np.pi * hour / 24.0)
    helpfulness = (
        s.base_helpfulness
        + user_effect[user]
        + tod
        + s.effect * (response == 1)
        + s.carryover_penalty * degraded
        + rng.normal(0.0, s.turn_sd, size=m)
    )
    thumbs_up = rng.random(m) < 1.0 / (1.0 + np.exp(-(-0.4 + 1.2 * (helpfulness - 3.6))))
    turn_no = np.arange(m) - np.repeat(conv_first_idx, conv_len)
    prompt_tokens = 900 + 160 * turn_no + rng.integers(0, 120, size=m)
    first_served_at = {0: w0, 1: t_start}
    since = np.where(served == 1, ts - first_served_at[1], ts - first_served_at[0])
    p_cache = s.cache_hit_ceiling * (1.0 - np.exp(-_minutes(since) / s.cache_warmup_minutes))
    cache_hit = rng.random(m) < p_cache
    cached_tokens = np.where(cache_hit, 800, 0)
    output_tokens = rng.poisson(np.where(response == 1, 260, 220))
    cost = (prompt_tokens - cached_tokens) * 3e-6 + cached_tokens * 0.3e-6 + output_tokens * 15e-6
    latency = (
        rng.lognormal(np.log(np.where(response == 1, 1500.0, 1400.0)), 0.35)
        * np.where(cache_hit, 0.8, 1.0)
        * np.where(sem_hit_final, 0.2, 1.0)
    )
    contract = np.where(response == 1, "v4", "v3").astype(object)
    first_42 = np.full(n, big)
    np.minimum.at(first_42, user[served == 1], ts[served == 1])
    router = (ts >= first_42[user]) & (rng.random(m) < 0.5)
    consumer = np.where(router, "ticket-router", "analytics-etl").astype(object)
    accepts_v3 = ~router
    parse_ok = np.where(contract == "v3", accepts_v3, True) & (rng.random(m) > 0.002)

    # --- tags as text, unknown experiment, labels ---------------------------------------------
    arm_names = np.array(["control", "treatment"], dtype=object)
    none = np.array(None, dtype=object)
    exp_col = np.where(tagged, np.array("exp-17", dtype=object), none)
    arm_col = np.where(tagged, arm_names[tag_arm], none)
    pre_untagged = np.flatnonzero(~tagged & (ts < t_start))
    if pre_untagged.size and s.unknown_experiment_rows:
        chosen = rng.choice(
            pre_untagged, size=min(s.unknown_experiment_rows, pre_untagged.size), replace=False
        )
        exp_col[chosen] = "exp-09"
        arm_col[chosen] = "b"
    is_exp17 = exp_col == "exp-17"

    exposure_tag = is_exp17 & exposed_time
    arm_lo = np.full(n, 2)
    arm_hi = np.full(n, -1)
    np.minimum.at(arm_lo, user[exposure_tag], tag_arm[exposure_tag])
    np.maximum.at(arm_hi, user[exposure_tag], tag_arm[exposure_tag])
    crossed_user = (arm_hi >= 0) & (arm_lo != arm_hi)
    label = np.full(m, "clean", dtype=object)
    conditions = [
        ("carryover", mixed),
        ("stale_cache", response != served),
        ("served_mismatch", served != tag_arm),
        ("crossover", crossed_user[user]),
        ("after_end", is_exp17 & (ts >= t_end)),
        ("outside_window", ~is_exp17 | (ts < t_start)),
    ]
    for name, cond in conditions:  # lowest precedence first; later rules overwrite
        label[cond] = name
    phase = (ts >= t_start).astype(np.int32) + (ts >= t_ramp) + (ts >= t_end)

    revs = np.array(["r41", "r42"], dtype=object)

    def ids(prefix: str, values: np.ndarray, width: int) -> pl.Series:
        return pl.select(
            pl.concat_str(pl.lit(prefix), pl.Series(values).cast(pl.String).str.zfill(width))
        ).to_series()

    event_id = ids(f"e{s.id_prefix}", np.arange(m), 8)
    events = pl.DataFrame(
        {
            "event_id": event_id,
            "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
            "user_id": ids(f"u{s.id_prefix}", user, 5),
            "experiment_id": pl.Series(exp_col.tolist(), dtype=pl.String),
            "arm": pl.Series(arm_col.tolist(), dtype=pl.String),
            "conversation_id": ids(f"c{s.id_prefix}", ev_conv, 6),
            "revision_id": pl.Series(revs[served].tolist(), dtype=pl.String),
            "response_revision_id": pl.Series(
                np.where(sem_hit_final, revs[response], np.array(None, dtype=object)).tolist(),
                dtype=pl.String,
            ),
            "semantic_cache_hit": sem_hit_final,
            "cache_key": ids(f"sk-{s.id_prefix}", cache_key, 7),
            "helpfulness": np.round(helpfulness, 3),
            "thumbs_up": thumbs_up,
            "latency_ms": np.round(latency, 1),
            "cost_usd": np.round(cost, 6),
            "cache_hit": cache_hit,
            "prompt_tokens": prompt_tokens.astype(np.int64),
            "cached_tokens": cached_tokens.astype(np.int64),
            "output_tokens": output_tokens.astype(np.int64),
            "contract_version": pl.Series(contract.tolist(), dtype=pl.String),
            "consumer": pl.Series(consumer.tolist(), dtype=pl.String),
            "parse_ok": parse_ok,
        }
    )
    truth = pl.DataFrame(
        {
            "event_id": event_id,
            "phase": phase,
            "label": pl.Series(label.tolist(), dtype=pl.String),
            "served_revision": pl.Series(revs[served].tolist(), dtype=pl.String),
        }
    )
    if s.duplicate_rows:
        dup_idx = np.sort(rng.choice(m, size=min(s.duplicate_rows, m), replace=False))
        events = pl.concat([events, events[dup_idx.tolist()]])
    # rows in a shuffled order, as warehouse exports come
    events = events.sample(fraction=1.0, shuffle=True, seed=s.seed)
    info = {
        "spec": {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(s).items()
        },
        "n_rows": events.height,
        "n_events": m,
        "true_effect": {"helpfulness": s.effect},
        "carryover_penalty": {"helpfulness": s.carryover_penalty},
        "enrolled_units": int(enrolled.sum()),
        "treatment_units": int(treated_user.sum()),
        "crossover_units": int(crossed_user.sum()),
        "label_counts": {
            k: int(v) for k, v in zip(*np.unique(label, return_counts=True), strict=True)
        },
        "prompt_cache": {
            "warmup_minutes": s.cache_warmup_minutes,
            "hit_ceiling": s.cache_hit_ceiling,
            "cached_tokens_per_hit": 800,
        },
        "semantic_cache_keys_written_by_r42": sorted(
            f"sk-{s.id_prefix}{k:07d}" for k in keys[write_idx[served[write_idx] == 1]]
        )
        if m <= 1_000_000
        else None,
    }
    return Sample(events=events, truth=truth, info=info)


def write_sample(out_dir: Path, spec: SampleSpec | None = None, *, truth: bool = True) -> Sample:
    """Write ``events.parquet`` (and ``truth.parquet`` + ``truth.json``) into ``out_dir``."""
    sample = generate(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample.events.write_parquet(out_dir / "events.parquet", compression="zstd", statistics=True)
    if truth:
        sample.truth.write_parquet(out_dir / "truth.parquet", compression="zstd")
        (out_dir / "truth.json").write_text(json.dumps(sample.info, indent=2) + "\n")
    return sample


def write_large(out_dir: Path, n_events: int, *, seed: int = 17, chunk_users: int = 100_000) -> int:
    """Write a large export as hive-style chunks ``out_dir/chunk=i/part.parquet``.

    Each chunk is an independent seeded run of the sample's story with ``chunk_users`` units and
    its own id prefix (ids stay unique); chunks are written until ``n_events`` rows exist.
    Memory stays bounded by one chunk. Returns the number of rows written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, i = 0, 0
    while rows < n_events:
        spec = SampleSpec(n_users=chunk_users, seed=seed + i, id_prefix=f"{i:03d}-")
        sample = generate(spec)
        part = out_dir / f"chunk={i:03d}"
        part.mkdir(exist_ok=True)
        events = sample.events.head(n_events - rows)
        events.write_parquet(part / "part.parquet", compression="zstd", statistics=True)
        rows += events.height
        i += 1
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.sample``: write the sample or a large export."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.sample",
        description="Write the seeded canary-then-rollback sample (or a large one for benchmarks).",
    )
    parser.add_argument("--out", type=Path, default=Path("data_samples"), help="output directory")
    parser.add_argument("--users", type=int, default=SampleSpec.n_users, help="number of units")
    parser.add_argument("--seed", type=int, default=SampleSpec.seed)
    parser.add_argument("--no-truth", action="store_true", help="skip the ground-truth files")
    parser.add_argument(
        "--events",
        type=int,
        help="write a large chunked export of about this many rows (no truth) instead",
    )
    args = parser.parse_args(argv)
    if args.events:
        rows = write_large(args.out, args.events, seed=args.seed)
        print(f"wrote {rows} rows to {args.out}")
        return 0
    spec = SampleSpec(n_users=args.users, seed=args.seed)
    sample = write_sample(args.out, spec, truth=not args.no_truth)
    print(f"wrote {sample.events.height} rows ({sample.info['n_events']} events) to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
