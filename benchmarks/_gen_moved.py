"""Seeded generator of hash-bucket ramps that move units, with known truth (issue 21).

Built unlike :mod:`analysis.sample` and ``tests/_generators.py``: units live on a grid of
*days*; what makes a unit heavy (more active days, more conversations per active day) is tied to
its mean rating, so the units active on both sides of a ramp — the only ones a ramp can move —
are an activity-selected slice.

Structure of one experiment (:class:`MovedSpec`; times relative to the experiment's start):

* **Units.** Each unit has a uniform hash bucket ``u``, a level ``a ~ N(0, unit_sd²)`` (its mean
  rating, up to the constant) and an activity score ``z = ρ'·a/unit_sd + √(1−ρ'²)·ε``. The
  activity score sets, through its normal quantile, the probability of being active on a day
  (a Beta(2, 4) quantile) and the extra conversations per active day (a Gamma(2) quantile with
  mean ``conv_per_day``). ``ρ'`` is solved (Gauss–Hermite quadrature, :func:`latent_rho`) so
  that the Pearson correlation of the expected turns per day with ``a`` equals ``corr``
  (0, 0.2, 0.6); :func:`achieved_correlation` reports the latent and the realised one.
* **Days.** ``pre_share`` of the units are long-standing (active from ``pre_days`` days before
  the start: untagged pre-period turns served by ``r1``, for the pre-period adjustment); the
  others arrive on a uniform day of the four exposure days (active on their arrival day). Phase
  1 is days 0–1, the ramp is at 48 h, phase 2 days 2–3, the end at 96 h: a ``rollback`` with
  an after-end day (stale tags up to ``stale_hours``, served ``r1``) or, with
  ``rollback=False``, a ``stop`` and no later events.
* **Assignment.** A turn at time ``t`` is tagged ``treatment`` iff ``u < share(t)``, with
  ``share`` the treatment share of the allocation in force. ``ramp="grow"`` is 0.2 → 0.5 (units
  with ``0.2 ≤ u < 0.5`` move control → treatment), ``"shrink"`` is 0.5 → 0.2 (the same units
  move treatment → control). No other unit ever changes arm.
* **Conversations.** ``1 + Poisson(λ_unit)`` conversations per active day, each starting at a
  uniform time of the day, with a level ``c ~ N(0, conv_sd²)`` and ``1 + Poisson`` turns whose
  mean grows with ``c`` (long conversations rate higher), spaced by exponential gaps (mean
  ``gap_minutes``): conversations started late on day −1 or day 1 span the start or the ramp.
* **Rating** of a turn: ``3.5 + a + c + trend_per_day·days since the start + effect·[served
  r2] + δ·[memory] + N(0, turn_sd²)``. ``effect`` is ``effect_phase2`` at or after the ramp if
  given. Memory (``delta ≠ 0``): every turn at or after the ramp of a unit that had a turn
  served by the treatment revision in phase 1 is shifted by ``δ`` — whatever its arm now.
* **Return rate** (``return_drop > 0``, report only): after its first exposure day, a unit first
  exposed in treatment is active on a day with probability ``(1 − return_drop)·p``.

**Truth by construction (memory off, ``effect_phase2`` unset).** Every random draw is made
before, and independently of, ``effect`` and ``delta``; they enter the rating only through the
term ``effect·[served r2]`` (:func:`generate` with the same seed and ``effect=0`` gives the
same export with that term removed, which the tests check turn by turn). So each turn's rating
under the treatment revision is its rating under the control revision minus 0.30 exactly. With
``return_drop = 0`` which turns exist, and when, does not depend on the arm either, and the arm
is a function of the uniform bucket ``u`` alone, independent of ``(a, z, c, noise)``. Within any
time stratum ``s`` (a block of a phase, in which ``share`` is constant), the treatment and control
turns are therefore random samples of the same population of turns, and the per-turn mean under
treatment minus that under control is ``−0.30`` for every stratum, phase and turn-weighted
combination of strata: phase 1, phase 2 and combined all have truth −0.30, whatever the weights.
That holds for every unit that keeps its arm *inside the stratum*, moved units included (their
arm in a stratum is still ``u < share``); it is the intent-to-treat estimand issue 21 asks for.
Leaving out moved units conditions on being active on both sides of the ramp, which depends on
``a`` when ``corr > 0``: that is the bias the runner measures. With memory on, the fresh-cohort
estimate (units first enrolled in the phase: no earlier exposure, no shift) keeps truth −0.30,
while the default's phase-2 arms mix shifted units unevenly.

Used by ``benchmarks/sim_moved.py`` and ``tests/test_sim_moved.py``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

START = datetime(2026, 3, 2, tzinfo=UTC)
RAMP = START + timedelta(hours=48)
END = START + timedelta(hours=96)
EXPERIMENT = "exp-moved"
CONTROL, TREATMENT = "r1", "r2"

_US = 1_000_000
_H = 3600 * _US
_DAY = 24 * _H
_RAMP_DAY = 2  # the ramp is at the start of day 2
_EXPOSURE_DAYS = 4

SHARES = {"grow": (0.2, 0.5), "shrink": (0.5, 0.2)}


@dataclass(frozen=True)
class MovedSpec:
    """Parameters of one generated experiment.

    Attributes:
        n_units: Units drawn (a unit with no turn at all does not appear in the export).
        seed: Random seed.
        corr: Target Pearson correlation of a unit's expected turns per day with its mean rating.
        ramp: ``"grow"`` (treatment 0.2 → 0.5) or ``"shrink"`` (0.5 → 0.2).
        effect: True per-turn effect of the treatment revision.
        effect_phase2: True per-turn effect at or after the ramp (``None``: ``effect``).
        delta: Memory: shift of every turn at or after the ramp of a unit served the treatment
            revision in phase 1 (0: memory off).
        return_drop: Treatment lowers the return rate: a unit first exposed in treatment is
            active on each later day with ``1 − return_drop`` times its probability.
        trend_per_day: Linear time trend of the rating (per day since the start).
        unit_sd: Standard deviation of the unit level ``a``.
        conv_sd: Standard deviation of the conversation level ``c``.
        turn_sd: Standard deviation of a turn's noise.
        length_extra: Mean extra turns of a conversation (beyond its first) at ``c = 0``.
        length_slope: Log-rate of extra turns per SD of ``c`` (conversation length ↔ rating).
        conv_per_day: Mean extra conversations per active day (beyond the first).
        gap_minutes: Mean gap between turns of a conversation.
        pre_share: Share of long-standing units (with pre-period days).
        pre_days: Days of pre-period before the start.
        rollback: End with a rollback and an after-end day (else a ``stop``, nothing after).
        stale_hours: Arm tags stay up to this long after the rollback (uniform per unit).
    """

    n_units: int = 20_000
    seed: int = 0
    corr: float = 0.6
    ramp: str = "grow"
    effect: float = -0.30
    effect_phase2: float | None = None
    delta: float = 0.0
    return_drop: float = 0.0
    trend_per_day: float = 0.15
    unit_sd: float = 0.6
    conv_sd: float = 0.4
    turn_sd: float = 1.0
    length_extra: float = 2.0
    length_slope: float = 0.4
    conv_per_day: float = 0.8
    gap_minutes: float = 12.0
    pre_share: float = 0.6
    pre_days: int = 4
    rollback: bool = True
    stale_hours: float = 6.0

    def __post_init__(self) -> None:
        if self.ramp not in SHARES:
            raise ValueError(f"ramp: {self.ramp!r} is not one of {sorted(SHARES)}")
        if not 0.0 <= self.corr < 0.95:
            raise ValueError(f"corr: {self.corr} is outside [0, 0.95)")


@dataclass(frozen=True)
class Moved:
    """One generated experiment.

    Attributes:
        spec: Its parameters.
        events: The event export (polars DataFrame; README "Inputs" columns and ``rating``).
        ledger_yaml: The matching ledger (YAML text, ``docs/ledger.md`` schema).
        units: Per drawn unit: ``bucket``, ``level`` (a), ``activity`` (expected turns per
            day), ``p_day``, ``lam``.
        turns: Per event, aligned with ``events`` rows: ``unit``, ``ts`` (µs), ``served2``
            (served by the treatment revision), ``memory`` (shifted by ``delta``), ``tagged``.
    """

    spec: MovedSpec
    events: Any
    ledger_yaml: str
    units: dict[str, np.ndarray] = field(repr=False)
    turns: dict[str, np.ndarray] = field(repr=False)

    def write_ledger(self, directory: Path) -> Path:
        """Write the ledger to ``directory/ledger.yaml`` and return its path."""
        path = Path(directory) / "ledger.yaml"
        path.write_text(self.ledger_yaml)
        return path


def ledger_yaml(spec: MovedSpec) -> str:
    """The ledger of an experiment generated with ``spec``."""
    s1, s2 = SHARES[spec.ramp]
    end = (
        f"  - {{at: {END.isoformat()}, action: rollback, experiment: {EXPERIMENT}, to: r1}}\n"
        if spec.rollback
        else f"  - {{at: {END.isoformat()}, action: stop, experiment: {EXPERIMENT}}}\n"
    )
    return (
        "version: 1\n"
        "prompts:\n"
        "  assistant:\n"
        "    revisions:\n"
        "      r1: {contract: v1}\n"
        "      r2: {parent: r1, contract: v1}\n"
        "experiments:\n"
        f"  {EXPERIMENT}: {{prompt: assistant, unit: user_id, "
        "arms: {control: r1, treatment: r2}}\n"
        "transitions:\n"
        f"  - {{at: {(START - timedelta(days=30)).isoformat()}, action: deploy, "
        "prompt: assistant, revision: r1}\n"
        f"  - {{at: {START.isoformat()}, action: start, experiment: {EXPERIMENT}, "
        f"allocation: {{control: {1 - s1:g}, treatment: {s1:g}}}}}\n"
        f"  - {{at: {RAMP.isoformat()}, action: ramp, experiment: {EXPERIMENT}, "
        f"allocation: {{control: {1 - s2:g}, treatment: {s2:g}}}}}\n" + end
    )


def _activity(z: np.ndarray, conv_per_day: float) -> tuple[np.ndarray, np.ndarray]:
    """Daily activity probability and extra conversations per day from the activity score."""
    from scipy import special

    q = np.clip(special.ndtr(z), 1e-12, 1 - 1e-12)
    p_day = special.betaincinv(2.0, 4.0, q)
    lam = special.gammaincinv(2.0, q) * (conv_per_day / 2.0)
    return p_day, lam


@functools.lru_cache(maxsize=32)
def latent_rho(corr: float, conv_per_day: float = 0.8) -> float:
    """``ρ'`` such that corr(expected turns per day, unit level) equals ``corr``.

    Expected turns per day are proportional to ``g(z) = p_day(z)·(1 + λ(z))`` and the unit level
    is a standard normal ``x`` with ``z = ρ'x + √(1−ρ'²)ε``, so
    ``corr(g(z), x) = ρ'·E[g(z)z]/sd(g(z))``; the expectations by Gauss–Hermite quadrature.
    """
    if corr == 0.0:
        return 0.0
    nodes, weights = np.polynomial.hermite_e.hermegauss(160)
    weights = weights / weights.sum()
    p_day, lam = _activity(nodes, conv_per_day)
    g = p_day * (1.0 + lam)
    mean = float(weights @ g)
    sd = math.sqrt(float(weights @ (g - mean) ** 2))
    rho = corr / (float(weights @ (g * nodes)) / sd)
    if rho >= 1.0:
        raise ValueError(f"corr: {corr} is not reachable with this activity model")
    return rho


def _within_group_cumsum(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``values`` restarting at each ``True`` of ``group_start``."""
    total = np.cumsum(values)
    starts = np.flatnonzero(group_start)
    group = np.cumsum(group_start) - 1
    offset: np.ndarray = (total - values)[starts]
    out: np.ndarray = total - offset[group]
    return out


def generate(spec: MovedSpec) -> Moved:
    """One experiment: the export, its ledger and the per-unit and per-turn truth."""
    import polars as pl

    rng = np.random.default_rng(spec.seed)
    n = spec.n_units
    s0 = int(START.timestamp() * _US)
    ramp, end = s0 + _RAMP_DAY * _DAY, s0 + _EXPOSURE_DAYS * _DAY
    s1, s2 = SHARES[spec.ramp]

    # units: bucket, level, activity score (Gaussian copula) and what it drives
    bucket = rng.random(n)
    x = rng.standard_normal(n)
    level = spec.unit_sd * x
    rho = latent_rho(spec.corr, spec.conv_per_day)
    z = rho * x + math.sqrt(1.0 - rho * rho) * rng.standard_normal(n)
    p_day, lam = _activity(z, spec.conv_per_day)
    longterm = rng.random(n) < spec.pre_share
    arrive = np.where(longterm, -spec.pre_days, rng.integers(0, _EXPOSURE_DAYS, n))
    stale = (rng.random(n) * spec.stale_hours * _H).astype(np.int64)

    # active days on the grid -pre_days .. last day
    last = _EXPOSURE_DAYS + (1 if spec.rollback else 0)
    days = np.arange(-spec.pre_days, last)
    draw = rng.random((n, days.size))
    after_arrival = days[None, :] >= arrive[:, None]
    active = after_arrival & (draw < p_day[:, None])
    active |= days[None, :] == np.where(longterm, 10**6, arrive)[:, None]
    if spec.return_drop > 0.0:
        exposed_day = active & (days[None, :] >= 0) & (days[None, :] < _EXPOSURE_DAYS)
        has_exp = exposed_day.any(axis=1)
        first = np.where(has_exp, days[np.argmax(exposed_day, axis=1)], 10**6)
        first_share = np.where(first < _RAMP_DAY, s1, s2)
        treated_first = has_exp & (bucket < first_share)
        later = days[None, :] > first[:, None]
        keep = draw < p_day[:, None] * (1.0 - spec.return_drop)
        active &= ~(later & treated_first[:, None]) | keep

    # conversations: 1 + Poisson(lam) per active day, uniform start within the day
    cu, cd = np.nonzero(active)
    k = 1 + rng.poisson(lam[cu])
    cu, cday = np.repeat(cu, k), np.repeat(days[cd], k)
    nc = cu.size
    cstart = s0 + cday * _DAY + (rng.random(nc) * _DAY).astype(np.int64)
    clevel = rng.normal(0.0, spec.conv_sd, nc)
    scale = spec.length_slope * clevel / spec.conv_sd if spec.conv_sd > 0 else 0.0
    length = 1 + rng.poisson(spec.length_extra * np.exp(scale - spec.length_slope**2 / 2.0))

    # turns: exponential gaps within the conversation, the first at its start
    conv = np.repeat(np.arange(nc), length)
    m = conv.size
    first_turn = np.r_[True, conv[1:] != conv[:-1]]
    gap = (rng.exponential(spec.gap_minutes * 60 * _US, m)).astype(np.int64)
    gap[first_turn] = 0
    ts = cstart[conv] + _within_group_cumsum(gap, first_turn)
    unit = cu[conv]
    noise = rng.normal(0.0, spec.turn_sd, m)
    if not spec.rollback:
        keep_turn = ts < end
        conv, unit, ts, noise = conv[keep_turn], unit[keep_turn], ts[keep_turn], noise[keep_turn]
        m = ts.size

    # assignment, tags, served revision
    share = np.where(ts < ramp, s1, s2)
    treat = bucket[unit] < share
    in_exp = (ts >= s0) & (ts < end)
    tagged = in_exp | (spec.rollback & (ts >= end) & (ts < end + stale[unit]))
    served2 = in_exp & treat
    had_t1 = np.zeros(n, dtype=bool)
    had_t1[unit[served2 & (ts < ramp)]] = True
    memory = had_t1[unit] & (ts >= ramp)
    effect2 = spec.effect if spec.effect_phase2 is None else spec.effect_phase2
    effect = np.where(ts < ramp, spec.effect, effect2)
    days_since = (ts - s0) / _DAY
    rating = (
        3.5
        + level[unit]
        + clevel[conv]
        + spec.trend_per_day * days_since
        + effect * served2
        + spec.delta * memory
        + noise
    )
    events = pl.DataFrame(
        {
            "event_id": pl.int_range(0, m, eager=True),
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "user_id": unit,
            "tagged": tagged,
            "treat": treat,
            "conversation_id": conv,
            "served2": served2,
            "rating": rating,
        }
    ).select(
        pl.col("event_id").cast(pl.String),
        "ts",
        pl.col("user_id").cast(pl.String),
        pl.when("tagged").then(pl.lit(EXPERIMENT)).alias("experiment_id"),
        pl.when("tagged")
        .then(pl.when("treat").then(pl.lit("treatment")).otherwise(pl.lit("control")))
        .alias("arm"),
        pl.col("conversation_id").cast(pl.String),
        pl.when("served2").then(pl.lit(TREATMENT)).otherwise(pl.lit(CONTROL)).alias("revision_id"),
        "rating",
    )
    activity = p_day * (1.0 + lam) * (1.0 + spec.length_extra)
    return Moved(
        spec=spec,
        events=events,
        ledger_yaml=ledger_yaml(spec),
        units={"bucket": bucket, "level": level, "activity": activity, "p_day": p_day, "lam": lam},
        turns={
            "unit": unit,
            "ts": ts,
            "served2": served2,
            "memory": memory,
            "tagged": tagged,
            "treat": treat,
            "conv": conv,
            "rating": rating,
        },
    )


def achieved_correlation(data: Moved) -> tuple[float, float]:
    """Latent and realised correlation of activity with the unit's mean rating.

    Latent: expected turns per day against the unit level ``a`` over the drawn units. Realised:
    over units with turns in the exposure window, their turns per active exposure day against
    the mean rating of those turns.
    """
    u = data.units
    latent = float(np.corrcoef(u["activity"], u["level"])[0, 1])
    t = data.turns
    s0 = int(START.timestamp() * _US)
    w = (t["ts"] >= s0) & (t["ts"] < s0 + _EXPOSURE_DAYS * _DAY)
    unit = t["unit"][w]
    n = u["bucket"].size
    count = np.bincount(unit, minlength=n).astype(float)
    total = np.bincount(unit, weights=t["rating"][w], minlength=n)
    day = (t["ts"][w] - s0) // _DAY
    active_days = np.bincount(
        np.unique(unit * _EXPOSURE_DAYS + day) // _EXPOSURE_DAYS, minlength=n
    ).astype(float)
    seen = count > 0
    realised = float(np.corrcoef(count[seen] / active_days[seen], total[seen] / count[seen])[0, 1])
    return latent, realised
