"""Seeded generator of a bucket-moving canary → ramp → rollback experiment, with known truth.

Its structure differs from :mod:`analysis.sample` on purpose (an independent check of
``analyze``): units *arrive* over the three exposure days and stay active for an exponential
time with Poisson turns; assignment is a hash bucket compared with the current allocation (0.8 /
0.2, then 0.5 / 0.5), so the ramp moves the control units with buckets in [0.2, 0.5) into
treatment — those active in both phases carry both tags (crossover) and are excluded by the
split; the metric has a slow linear time trend; 60% of the units have pre-period turns (untagged,
in the week before the start) whose level shares the unit's random effect; after the rollback,
tags stay on each unit's turns for up to ``stale_hours`` (served by the control revision); a
share of turns are semantic-cache hits answered by a random revision (stale cache); turns served
by the control revision after a treatment turn in the same conversation are degraded
(carryover). The true effect of the treatment revision is ``effect`` per turn (``effect_phase2``
in the second phase, if given), so the true combined clean effect with any weights is ``effect``
when the phases agree.

Used by ``tests/test_stratified.py`` and ``benchmarks/sim_combined.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

START = datetime(2026, 1, 5, tzinfo=UTC)
RAMP = START + timedelta(hours=36)
END = START + timedelta(hours=72)

_US = 1_000_000
_H = 3600 * _US

LEDGER = f"""
version: 1
prompts:
  assistant:
    revisions:
      r1: {{contract: v1}}
      r2: {{parent: r1, contract: v1}}
experiments:
  exp-ramp: {{prompt: assistant, unit: user_id, arms: {{control: r1, treatment: r2}}}}
transitions:
  - {{at: {(START - timedelta(days=30)).isoformat()}, action: deploy, prompt: assistant, revision: r1}}
  - {{at: {START.isoformat()}, action: start, experiment: exp-ramp, allocation: {{control: 0.8, treatment: 0.2}}}}
  - {{at: {RAMP.isoformat()}, action: ramp, experiment: exp-ramp, allocation: {{control: 0.5, treatment: 0.5}}}}
  - {{at: {END.isoformat()}, action: rollback, experiment: exp-ramp, to: r1}}
"""


@dataclass(frozen=True)
class RampSpec:
    """Parameters of one generated experiment.

    Attributes:
        n_units: Units (those with no turn at all are dropped).
        seed: Random seed.
        effect: True per-turn effect of the treatment revision (phase 1, and phase 2 unless
            ``effect_phase2`` is given).
        effect_phase2: True per-turn effect in phase 2 (``None``: ``effect``).
        trend_per_day: Linear time trend of the metric (per day since the start).
        unit_sd: Standard deviation of the unit effect.
        turn_sd: Standard deviation of a turn's noise.
        turns_per_hour: Mean turn rate of an active unit (gamma-distributed across units).
        active_hours: Mean active time after arrival (exponential).
        pre_share: Share of units with pre-period turns.
        pre_days: Length of the pre-period.
        stale_hours: Tags stay up to this long after the rollback (uniform per unit).
        cache_share: Share of turns answered from the semantic cache.
        carryover_penalty: Effect on control-served turns after a treatment turn of the same
            conversation.
    """

    n_units: int = 5000
    seed: int = 0
    effect: float = -0.30
    effect_phase2: float | None = None
    trend_per_day: float = 0.15
    unit_sd: float = 0.6
    turn_sd: float = 1.0
    turns_per_hour: float = 0.25
    active_hours: float = 24.0
    pre_share: float = 0.6
    pre_days: float = 7.0
    stale_hours: float = 6.0
    cache_share: float = 0.03
    carryover_penalty: float = -0.15


def ledger_file(directory: Path) -> Path:
    """Write the generator's ledger to ``directory/ledger.yaml`` and return its path."""
    path = Path(directory) / "ledger.yaml"
    path.write_text(LEDGER)
    return path


def generate(spec: RampSpec) -> Any:
    """One experiment's event export (a polars DataFrame, one row per turn)."""
    import polars as pl

    rng = np.random.default_rng(spec.seed)
    n = spec.n_units
    s0 = int(START.timestamp() * _US)
    ramp, end = s0 + 36 * _H, s0 + 72 * _H
    horizon = end + 12 * _H
    bucket = rng.random(n)
    u = rng.normal(0.0, spec.unit_sd, n)
    rate = rng.gamma(2.0, spec.turns_per_hour / 2.0, n)
    arrive = s0 + (rng.random(n) * (end - 6 * _H - s0)).astype(np.int64)
    leave = np.minimum(
        arrive + (rng.exponential(spec.active_hours, n) * _H).astype(np.int64), horizon
    )
    stale_until = end + (rng.random(n) * spec.stale_hours * _H).astype(np.int64)
    # exposure-window turns: Poisson count, uniform times in the active interval
    k = rng.poisson(rate * (leave - arrive) / _H)
    unit = np.repeat(np.arange(n), k)
    ts = arrive[unit] + (rng.random(unit.size) * (leave - arrive)[unit]).astype(np.int64)
    # pre-period turns (untagged), a share of the units
    has_pre = rng.random(n) < spec.pre_share
    pre_len = int(spec.pre_days * 24 * _H)
    k_pre = np.where(has_pre, rng.poisson(rate * spec.pre_days * 24 * 0.3), 0)
    unit_pre = np.repeat(np.arange(n), k_pre)
    ts_pre = s0 - pre_len + (rng.random(unit_pre.size) * pre_len).astype(np.int64)
    unit = np.concatenate([unit_pre, unit])
    ts = np.concatenate([ts_pre, ts])
    order = np.lexsort((ts, unit))
    unit, ts = unit[order], ts[order]
    m = ts.size

    share = np.where(ts < ramp, 0.2, 0.5)
    treat = bucket[unit] < share
    exposed = (ts >= s0) & (ts < end)
    tagged = (ts >= s0) & ((ts < end) | (ts < stale_until[unit]))
    served = np.where(exposed & treat, 2, 1)  # after the rollback every turn is served r1
    response = served.copy()
    hit = exposed & (rng.random(m) < spec.cache_share)
    response[hit] = rng.integers(1, 3, int(hit.sum()))
    # conversations: 2-hour windows of a unit's turns
    conv = (ts - s0 + 10 * 24 * _H) // (2 * _H)
    first = np.r_[True, (unit[1:] != unit[:-1]) | (conv[1:] != conv[:-1])]
    cid = np.cumsum(first) - 1
    is2 = (served == 2).astype(np.int64)
    cum = np.cumsum(is2)
    start_idx = np.flatnonzero(first)
    base = (cum - is2)[start_idx][cid]
    seen2 = (cum - is2 - base) > 0
    degraded = seen2 & (served == 1)

    effect = np.where(
        ts < ramp, spec.effect, spec.effect if spec.effect_phase2 is None else spec.effect_phase2
    )
    days = (ts - s0) / (24 * _H)
    helpfulness = (
        3.5
        + u[unit]
        + spec.trend_per_day * days
        + effect * (response == 2)
        + spec.carryover_penalty * degraded
        + rng.normal(0.0, spec.turn_sd, m)
    )
    return pl.DataFrame(
        {
            "event_id": np.arange(m),
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "user_id": unit,
            "tagged": tagged,
            "treat": treat,
            "conversation_id": cid,
            "served": served,
            "response": response,
            "helpfulness": helpfulness,
        }
    ).select(
        pl.col("event_id").cast(pl.String),
        "ts",
        pl.col("user_id").cast(pl.String),
        pl.when("tagged").then(pl.lit("exp-ramp")).alias("experiment_id"),
        pl.when("tagged")
        .then(pl.when("treat").then(pl.lit("treatment")).otherwise(pl.lit("control")))
        .alias("arm"),
        pl.col("conversation_id").cast(pl.String),
        pl.format("r{}", "served").alias("revision_id"),
        pl.format("r{}", "response").alias("response_revision_id"),
        "helpfulness",
    )
