"""Small aggregates behind the report's time plots, built lazily in the events' engine.

Two tables that :func:`analysis.metrics.analyze` does not produce:

* **metric by time** — per time bin × arm tag (``untagged`` for events not tagged with the
  experiment), for every metric: events, and the sums needed for the bin's event-level value and a
  normal 95% interval (delta method for ratios). Event-level: turns of one unit are correlated,
  so the band is narrower than a unit-level interval would be; it shows the shape, the effect
  table gives the inference.
* **cache around boundaries** — for each boundary of the experiment (start, ramps, end), events
  within ``± window`` of it in ``bin_minutes`` bins by served revision: prompt-cache hit rate and
  mean cost per event.

Both are lazy frames: :func:`collect` runs them (and any others) together, sharing the scan on
polars. The statistics on the collected sums are plain Python (:func:`timeseries_rows`,
:func:`cache_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import narwhals as nw

from analysis.events import _engines
from analysis.metrics.definitions import Mean, Metric, Proportion, Quantile, Ratio

__all__ = [
    "CacheRow",
    "ContaminationRow",
    "TimeRow",
    "cache_frame",
    "cache_rows",
    "collect",
    "measured_by_time",
    "measured_on",
    "metric_columns",
    "timeseries_frame",
    "timeseries_rows",
]

UNTAGGED = "untagged"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def measured_on(metric: Metric, unit: str = "user_id") -> str:
    """What the metric's effect is measured on, as the effects table estimates it.

    A mean is the per-unit total averaged over units (``per user``), a proportion the share of
    units with any true value (``share of users``), a ratio a ratio of sums over the arm's turns
    (``per turn``), a quantile one of the arm's turns (see :mod:`analysis.metrics.definitions`).

    Examples:
        >>> measured_on(Proportion("thumbs_up"))
        'share of users'
        >>> measured_on(Ratio("helpfulness"))
        'per turn'
    """
    who = unit.removesuffix("_id") or unit
    if isinstance(metric, Ratio):
        return "per turn" if metric.den is None else f"per {metric.den}"
    if isinstance(metric, Quantile):
        return f"p{round(metric.q * 100, 1):g} of turns"
    if isinstance(metric, Proportion):
        return f"share of {who}s"
    if isinstance(metric, Mean):
        return f"per {who}"
    return ""  # pragma: no cover


def measured_by_time(metric: Metric) -> str:
    """What the metric-by-time plot shows per bin: every metric at the level of turns (events).

    Examples:
        >>> measured_by_time(Proportion("thumbs_up"))
        'share of turns'
    """
    if isinstance(metric, Ratio):
        return "mean per turn" if metric.den is None else f"per {metric.den}"
    if isinstance(metric, Quantile):
        return f"p{round(metric.q * 100, 1):g} of turns"
    if isinstance(metric, Proportion):
        return "share of turns"
    if isinstance(metric, Mean):
        return "mean per turn"
    return ""  # pragma: no cover


_Z = 1.959963984540054


class TimeRow(NamedTuple):
    """One metric × time bin × arm tag.

    Attributes:
        metric: Metric name.
        arm: Arm tag, or ``untagged``.
        bin_start: Start of the bin (UTC).
        n_events: Events in the bin with a value.
        value: Event-level value (ratio of sums, mean, share or quantile).
        ci_lower: Lower bound of the event-level normal 95% interval (NaN for quantiles).
        ci_upper: Upper bound.
    """

    metric: str
    arm: str
    bin_start: datetime
    n_events: int
    value: float
    ci_lower: float
    ci_upper: float


class CacheRow(NamedTuple):
    """One boundary × time bin × served revision around a rollout boundary.

    Attributes:
        boundary: Index of the boundary (0 = the experiment's start).
        action: The transition at the boundary (``start``, ``ramp``, ``rollback``, ...).
        at: The boundary instant.
        minutes: Start of the bin in minutes relative to the boundary.
        served_revision: Revision that served the events.
        n_events: Events in the bin.
        hit_rate: Share of events with a prompt-cache hit (NaN without ``cache_hit``).
        cost_mean: Mean ``cost_usd`` per event (NaN without ``cost_usd``).
    """

    boundary: int
    action: str
    at: datetime
    minutes: float
    served_revision: str
    n_events: int
    hit_rate: float
    cost_mean: float


class ContaminationRow(NamedTuple):
    """Events of one phase × arm tag × label (the counts of
    :func:`~analysis.events.labelling.contamination_summary`, without its distinct-unit counts).

    Attributes:
        phase: Phase id.
        phase_kind: ``pre``, ``exposure`` or ``after_end``.
        arm: The experiment's arm tag, ``None`` for events not tagged with the experiment.
        label: Contamination label.
        n_events: Events.
        share: Of the events of the same phase × arm.
    """

    phase: int
    phase_kind: str
    arm: str | None
    label: str
    n_events: int
    share: float


def contamination_frame(frame: nw.LazyFrame[Any], experiment: str) -> nw.LazyFrame[Any]:
    """Events per phase × arm tag × label (one lazy aggregate)."""
    tag = nw.when(nw.col("experiment_id") == nw.lit(experiment)).then(nw.col("arm"))
    return (
        frame.with_columns(tag.alias("_tag"))
        .group_by("phase", "_tag", "contamination", drop_null_keys=False)
        .agg(nw.len().alias("n"))
    )


def contamination_rows(
    rows: Sequence[dict[str, Any]], phases: Sequence[Any]
) -> list[ContaminationRow]:
    """Counts with shares per phase × arm, ordered like the contamination summary."""
    from analysis.events.labelling import LABELS

    kinds = {p.id: p.kind for p in phases}
    totals: dict[tuple[int, str | None], int] = {}
    for r in rows:
        key = (int(r["phase"]), r["_tag"])
        totals[key] = totals.get(key, 0) + int(r["n"])
    order = {label: i for i, label in enumerate(LABELS)}
    out = [
        ContaminationRow(
            phase=int(r["phase"]),
            phase_kind=kinds[int(r["phase"])],
            arm=r["_tag"],
            label=str(r["contamination"]),
            n_events=int(r["n"]),
            share=int(r["n"]) / totals[(int(r["phase"]), r["_tag"])],
        )
        for r in rows
    ]
    out.sort(key=lambda r: (r.phase, r.arm is not None, r.arm or "", order[r.label]))
    return out


def contaminated_share(rows: Sequence[ContaminationRow], arm: str) -> float:
    """Share of the arm's tagged events after the start that are not ``clean``."""
    mine = [r for r in rows if r.arm == arm and r.label != "outside_window"]
    n = sum(r.n_events for r in mine)
    return sum(r.n_events for r in mine if r.label != "clean") / n if n else 0.0


def metric_columns(metric: Metric) -> tuple[str, str | None]:
    """The event columns of a metric's by-time value: (numerator, denominator or None)."""
    if isinstance(metric, Ratio):
        return metric.num, metric.den
    if isinstance(metric, Mean | Proportion | Quantile):
        return metric.column, None
    raise TypeError(f"unsupported metric {metric!r}")  # pragma: no cover


def _arm_tag(experiment: str) -> nw.Expr:
    return (
        nw.when(nw.col("experiment_id") == nw.lit(experiment))
        .then(nw.col("arm"))
        .otherwise(nw.lit(UNTAGGED))
        .fill_null(UNTAGGED)
        .alias("_arm")
    )


def timeseries_frame(
    frame: nw.LazyFrame[Any],
    experiment: str,
    metrics: Sequence[Metric],
    *,
    bin_minutes: int = 60,
) -> nw.LazyFrame[Any]:
    """Per time bin × arm tag: counts and sums for every metric (one lazy aggregate).

    Bins are ``bin_minutes`` wide, counted from the Unix epoch (UTC): ``_bin`` is the bin's
    index, an integer computed in the events' engine (bin ``k`` starts at epoch + k·width, as
    polars' ``dt.truncate`` would give).
    """
    names = frame.collect_schema().names()
    aggs: list[nw.Expr] = [nw.len().alias("n")]
    for i, m in enumerate(metrics):
        num, den = metric_columns(m)
        if num not in names or (den is not None and den not in names):
            continue
        y = nw.col(num).cast(nw.Float64)
        if isinstance(m, Proportion):
            y = (y != 0).cast(nw.Float64)
        x = nw.col(den).cast(nw.Float64) if den is not None else None
        valid = ~y.is_null() if x is None else ~y.is_null() & ~x.is_null()
        yv = nw.when(valid).then(y)
        if isinstance(m, Quantile):
            aggs += [
                yv.count().alias(f"m{i}_n"),
                yv.quantile(m.q, interpolation="linear").alias(f"m{i}_q"),
            ]
            continue
        xv = nw.when(valid).then(x if x is not None else nw.lit(1.0))
        aggs += [
            yv.count().alias(f"m{i}_n"),
            yv.sum().alias(f"m{i}_y"),
            (yv * yv).sum().alias(f"m{i}_yy"),
            xv.sum().alias(f"m{i}_x"),
            (xv * xv).sum().alias(f"m{i}_xx"),
            (xv * yv).sum().alias(f"m{i}_xy"),
        ]
    binned = _engines.with_bins_since(frame, "ts", EPOCH, timedelta(minutes=bin_minutes), "_bin")
    return binned.with_columns(_arm_tag(experiment)).group_by("_bin", "_arm").agg(*aggs)


def timeseries_rows(
    rows: Sequence[dict[str, Any]], metrics: Sequence[Metric], *, bin_minutes: int = 60
) -> list[TimeRow]:
    """Values and event-level intervals per metric × arm × bin, sorted (``bin_minutes``: the
    width :func:`timeseries_frame` binned by; its ``_bin`` is the bin's index since the epoch)."""
    width = timedelta(minutes=bin_minutes)
    out: list[TimeRow] = []
    for i, m in enumerate(metrics):
        for r in rows:
            n = int(r.get(f"m{i}_n") or 0)
            if n == 0:
                continue
            if isinstance(m, Quantile):
                q = r[f"m{i}_q"]
                value = float(q) if q is not None else math.nan
                lo = hi = math.nan
            else:
                y, yy = float(r[f"m{i}_y"]), float(r[f"m{i}_yy"])
                x, xx, xy = float(r[f"m{i}_x"]), float(r[f"m{i}_xx"]), float(r[f"m{i}_xy"])
                value, lo, hi = _ratio_ci(n, y, yy, x, xx, xy)
            start = EPOCH + int(r["_bin"]) * width
            out.append(TimeRow(m.label, str(r["_arm"]), start, n, value, lo, hi))
    order = {m.label: i for i, m in enumerate(metrics)}
    out.sort(key=lambda t: (order[t.metric], t.arm, t.bin_start))
    return out


def _ratio_ci(
    n: int, y: float, yy: float, x: float, xx: float, xy: float
) -> tuple[float, float, float]:
    """Σy/Σx with a delta-method 95% interval treating events as independent."""
    if x == 0:
        return math.nan, math.nan, math.nan
    r = y / x
    if n < 2:
        return r, math.nan, math.nan
    my, mx = y / n, x / n
    vy = max(yy / n - my * my, 0.0) * n / (n - 1)
    vx = max(xx / n - mx * mx, 0.0) * n / (n - 1)
    cxy = (xy / n - mx * my) * n / (n - 1)
    var = max(vy - 2 * r * cxy + r * r * vx, 0.0) / (n * mx * mx)
    half = _Z * math.sqrt(var)
    return r, r - half, r + half


def boundaries(split: Any) -> list[tuple[datetime, str]]:
    """The experiment's boundaries: (instant, action) of every transition, in order."""
    out: list[tuple[datetime, str]] = []
    for p in split.phases:
        if p.start is not None and p.start_action is not None:
            out.append((p.start, p.start_action))
    return out


def cache_frame(
    frame: nw.LazyFrame[Any],
    bounds: Sequence[tuple[datetime, str]],
    *,
    window: timedelta = timedelta(hours=2),
    bin_minutes: int = 10,
) -> nw.LazyFrame[Any] | None:
    """Around each boundary: events, cache hits and cost per bin × served revision.

    ``_bin`` is ``floor((ts − boundary) / bin_minutes)``, exact integer arithmetic in the
    events' engine (negative before the boundary).
    """
    names = frame.collect_schema().names()
    if not bounds or ("cache_hit" not in names and "cost_usd" not in names):
        return None
    aggs: list[nw.Expr] = [nw.len().alias("n")]
    if "cache_hit" in names:
        hit = nw.col("cache_hit").cast(nw.Float64)
        aggs += [hit.count().alias("hit_n"), hit.sum().alias("hit_sum")]
    if "cost_usd" in names:
        cost = nw.col("cost_usd").cast(nw.Float64)
        aggs += [cost.count().alias("cost_n"), cost.sum().alias("cost_sum")]
    parts = []
    for i, (at, _action) in enumerate(bounds):
        lo, hi = at - window, at + window
        near = frame.filter((nw.col("ts") >= nw.lit(lo)) & (nw.col("ts") < nw.lit(hi)))
        parts.append(
            _engines.with_bins_since(near, "ts", at, timedelta(minutes=bin_minutes), "_bin")
            .with_columns(
                nw.lit(i, dtype=nw.Int64).alias("_boundary"),
                nw.col("served_revision").fill_null("unknown").alias("_rev"),
            )
            .select(
                "_boundary", "_bin", "_rev", *(c for c in ("cache_hit", "cost_usd") if c in names)
            )
        )
    return nw.concat(parts, how="vertical").group_by("_boundary", "_bin", "_rev").agg(*aggs)


def cache_rows(
    rows: Sequence[dict[str, Any]], bounds: Sequence[tuple[datetime, str]], *, bin_minutes: int = 10
) -> list[CacheRow]:
    """Hit rate and mean cost per boundary × bin × served revision, sorted."""
    out = []
    for r in rows:
        b = int(r["_boundary"])
        hit_n = int(r.get("hit_n") or 0)
        cost_n = int(r.get("cost_n") or 0)
        out.append(
            CacheRow(
                boundary=b,
                action=bounds[b][1],
                at=bounds[b][0],
                minutes=float(int(r["_bin"]) * bin_minutes),
                served_revision=str(r["_rev"]),
                n_events=int(r["n"]),
                hit_rate=float(r["hit_sum"]) / hit_n if hit_n else math.nan,
                cost_mean=float(r["cost_sum"]) / cost_n if cost_n else math.nan,
            )
        )
    out.sort(key=lambda c: (c.boundary, c.served_revision, c.minutes))
    return out


def collect(frames: Sequence[nw.LazyFrame[Any]]) -> list[list[dict[str, Any]]]:
    """Collect several small aggregates, as rows: on polars together on its streaming engine
    (one shared scan), elsewhere one by one in the frames' own engine (DuckDB, Spark)."""
    if frames and all(f.implementation.is_polars() for f in frames):
        import polars as pl

        outs = pl.collect_all([f.to_native() for f in frames], engine="streaming")
        return [o.to_dicts() for o in outs]
    return [f.collect().rows(named=True) for f in frames]
