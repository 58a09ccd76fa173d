"""The data work of :func:`~analysis.metrics.analyzing.analyze`: the lazy frames and the plan.

Everything here builds lazy narwhals frames — the events views (:func:`build_frames`), the
aggregates to collect in one go (:func:`build_plan`: moments per time stratum × arm and per
pooled arm, missing values, SRM counts, exclusions, the explanation steps, the recovery groups,
event-level quantiles), the second pass of the stratified estimates (:func:`influence_plan`:
per-unit influence functions from per-stratum constants) and the two follow-up queries of the
clustered quantile CIs (:func:`below_count_plans`, :func:`outer_quantile_plans`). The
exceptions are :func:`winsorized`, which collects the winsorizing bounds (a single row) before
the plan is built, and :func:`block_starts`, which collects the last clean instant when an
exposure phase is still open. The statistics on the collected aggregates are in
:mod:`analysis.metrics._estimates`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import narwhals as nw

from analysis.events import _engines
from analysis.metrics import aggregation as agg
from analysis.metrics._assignment import assignment_plan
from analysis.metrics._context import _Context
from analysis.metrics.definitions import Metric, Proportion, Quantile, with_bounds
from analysis.metrics.recovery import after_end_events
from analysis.metrics.results import EXPLAIN_ORDER

if TYPE_CHECKING:  # pragma: no cover
    from analysis.ledger import Phase

__all__ = [
    "Frames",
    "Plan",
    "QuantileViews",
    "below_count_plans",
    "block_starts",
    "build_frames",
    "build_plan",
    "explain_plan",
    "exposure_day_plan",
    "influence_plan",
    "keyed_by_stratum",
    "outer_quantile_plans",
    "read_columns",
    "recovery_plan",
    "small_frame",
    "thresholds_frame",
    "winsorized",
]

#: View name -> (events, group keys) of the quantile metrics (``phase``, ``naive``).
QuantileViews = Mapping[str, tuple[nw.LazyFrame[Any], list[str]]]


@dataclass(frozen=True)
class Frames:
    """The lazy views of the labelled events one run works on.

    Attributes:
        frame: The keyed events, reduced to the columns the analysis reads.
        tagged: Events tagged with the experiment and an arm (what the naive analysis reads).
        clean: Clean events of the exposure phases.
        enroll: Per unit: first tagged exposure turn (``first_ts``), its phase (``cohort``) and
            the smallest and largest arm tag (``first_arm``, ``last_arm``).
        conversation: The column of ``frame`` identifying conversations (the split's
            conversation key; ``conversation_id`` when the split has none).
    """

    frame: nw.LazyFrame[Any]
    tagged: nw.LazyFrame[Any]
    clean: nw.LazyFrame[Any]
    enroll: nw.LazyFrame[Any]
    conversation: str = "conversation_id"


@dataclass(frozen=True)
class Plan:
    """The aggregates to collect.

    Attributes:
        frames: Name -> lazy aggregate; collect them together
            (:func:`~analysis.metrics.aggregation.collect_all`).
        quantile_views: The views the quantile metrics are estimated on.
        after_phase: The after-end phase the recovery analysis reads (``None`` without one).
        units: Per ``phase`` × ``stratum`` × ``arm`` × unit aggregates of the clean events
            (read again by :func:`influence_plan`; on polars already collected).
    """

    frames: dict[str, nw.LazyFrame[Any]]
    quantile_views: dict[str, tuple[nw.LazyFrame[Any], list[str]]]
    after_phase: Phase | None
    units: nw.LazyFrame[Any]


#: Columns of the labelled events a run reads besides the unit and the metrics' columns (the
#: last two where the export has them).
BASE_COLUMNS = (
    "ts",
    "experiment_id",
    "arm",
    "phase",
    "contamination",
    "served_revision",
    "ramp_moved",
)
OPTIONAL_COLUMNS = ("conversation_id", "response_revision_id")


def read_columns(metrics: Sequence[Metric]) -> tuple[str, ...]:
    """The event columns a run with ``metrics`` reads, the unit and conversation keys aside
    (what :func:`~analysis.events.labelling.materialized` needs to write)."""
    extra = sorted({c for m in metrics for c in m.columns} - set(BASE_COLUMNS))
    return (*BASE_COLUMNS, *OPTIONAL_COLUMNS, *extra)


def build_frames(
    ctx: _Context, keyed: nw.LazyFrame[Any], conversation: str | None = None
) -> Frames:
    """The views of ``keyed`` (the split's keyed events) the analysis reads; ``conversation``:
    the split's conversation key (a column of ``keyed``), if any."""
    unit, exp_id = ctx.unit, ctx.experiment.id
    keep = {*BASE_COLUMNS, unit, *(c for m in ctx.metrics for c in m.columns)}
    keep |= set(OPTIONAL_COLUMNS) & ctx.names
    conv = conversation if conversation is not None else "conversation_id"
    if "conversation_id" in ctx.names:
        keep.add(conv)
    f = keyed.select(*sorted(keep))
    in_exposure = nw.col("phase").is_in(list(ctx.exposure))
    tagged = f.filter((nw.col("experiment_id") == exp_id) & ~nw.col("arm").is_null())
    if ctx.options.get("moved_units", "keep") == "exclude":
        # the estimates of before: ramp-moved units left out, their conversations' turns of
        # the other units not told apart (prior_conversation counted as clean)
        usable = nw.col("contamination").is_in(["clean", "prior_conversation"]) & ~nw.col(
            "ramp_moved"
        )
    else:
        usable = nw.col("contamination") == "clean"
    clean = f.filter(usable & in_exposure)
    enrolled = tagged.filter(
        in_exposure & ~nw.col("contamination").is_in(["outside_window", "after_end"])
    )
    enroll = _engines.shared(
        enrolled.group_by(unit).agg(
            nw.col("ts").min().alias("first_ts"),
            nw.col("phase").min().alias("cohort"),
            nw.col("arm").min().alias("first_arm"),
            nw.col("arm").max().alias("last_arm"),
        )
    )
    return Frames(frame=f, tagged=tagged, clean=clean, enroll=enroll, conversation=conv)


def winsorized(metrics: tuple[Metric, ...], clean: nw.LazyFrame[Any]) -> tuple[Metric, ...]:
    """``metrics`` with the winsorizing bounds of the clean events (one small collect)."""
    todo = [(i, m) for i, m in enumerate(metrics) if m.winsorize is not None]
    if not todo:
        return metrics
    exprs = []
    for i, m in todo:
        lo, hi = m.winsorize_bounds
        v = m.value_expr(m.column)
        if lo is not None:
            exprs.append(v.quantile(lo, interpolation="linear").alias(f"lo{i}"))
        if hi is not None:
            exprs.append(v.quantile(hi, interpolation="linear").alias(f"hi{i}"))
    row = clean.select(*exprs).collect().rows(named=True)[0]
    out = list(metrics)
    for i, m in todo:
        out[i] = with_bounds(m, row.get(f"lo{i}"), row.get(f"hi{i}"))
    return tuple(out)


def block_starts(ctx: _Context, clean: nw.LazyFrame[Any]) -> tuple[tuple[int, datetime], ...]:
    """The time strata: ``(phase id, start)`` of each block of each exposure phase.

    Blocks are ``block_hours`` long, aligned to the phase's start; a trailing block shorter than
    half a block joins the one before. ``block_hours=None`` makes each exposure phase one
    stratum. An exposure phase still open ends at the last clean event (one small collect).
    """
    hours = ctx.options.get("block_hours")
    exposure = [p for p in ctx.phases if p.kind == "exposure"]
    last: datetime | None = None
    if hours is not None and any(p.end is None for p in exposure):
        row = clean.select(nw.col("ts").max().alias("last")).collect().rows(named=True)
        last = row[0]["last"] if row else None
    out: list[tuple[int, datetime]] = []
    for p in exposure:
        assert p.start is not None
        out.append((p.id, p.start))
        end = p.end if p.end is not None else last
        if hours is None or end is None or end <= p.start:
            continue
        width = timedelta(hours=hours)
        n_full = int((end - p.start) / width)
        rest = (end - p.start) - n_full * width
        n_blocks = max(1, n_full + (1 if rest >= width / 2 else 0))
        out.extend((p.id, p.start + k * width) for k in range(1, n_blocks))
    return tuple(out)


def build_plan(ctx: _Context, fr: Frames) -> Plan:
    """Every aggregate :func:`~analysis.metrics.analyzing.analyze` collects in one go."""
    M, unit = ctx.metrics, ctx.unit
    cov = agg.pre_exposure(fr.frame, fr.enroll, unit, M)
    clean_cohort = fr.clean.join(fr.enroll.select(unit, "cohort"), on=unit, how="inner")
    plan: dict[str, nw.LazyFrame[Any]] = {}
    starts = [b for _, b in ctx.strata]
    # fresh: the unit was first enrolled in the stratum's phase (the fresh-cohort estimate)
    strata = clean_cohort.with_columns(
        agg.stratum_expr(starts).alias("stratum"),
        (nw.col("cohort") == nw.col("phase")).fill_null(value=False).alias("fresh"),
    ).drop("cohort")
    keys = ["phase", "stratum", "arm", "fresh"]
    # computed once (read again by the influence pass and the looks): a few rows per enrolled
    # unit, held by the engine (_engines.small)
    units = _engines.small(agg.unit_level(strata, keys, unit, M, covariates=cov))
    plan["strata"] = agg.group_moments(units, keys, M)
    plan["missing"] = agg.missing_counts(fr.clean, unit, M)
    exposure_day = exposure_day_plan(ctx, fr)
    if exposure_day is not None:
        plan["exposure_day"] = exposure_day
    for k, frame in enumerate(agg.pre_missing(fr.frame, fr.enroll, unit, M)):
        plan[f"pre_missing:{k}"] = frame
    plan["naive"] = agg.group_moments(
        agg.unit_level(fr.tagged, ["arm"], unit, M, use_covariates=False),
        ["arm"],
        M,
        use_covariates=False,
    )
    # SRM by the arm of first exposure (crossover units included) and the ramp-aware
    # crossover check read one small per-unit pattern table
    plan.update(
        assignment_plan(
            fr.frame,
            unit=unit,
            experiment_id=ctx.experiment.id,
            exposure_phases=ctx.exposure,
            arms=ctx.experiment.arms,
            starts=starts if ctx.options.get("sequential") else None,
        )
    )
    plan["excl"] = fr.tagged.group_by("contamination", "arm").agg(
        nw.len().alias("events"), nw.col(unit).n_unique().alias("units")
    )
    if ctx.options["explain"]:
        plan["explain"] = explain_plan(ctx, fr.tagged)
    after_phase = recovery_plan(ctx, fr.frame, plan, conversation=fr.conversation)
    # quantiles: per phase (each unit in the arm it had there), combined over the phases as
    # time strata with their shares of the clean turns
    plan["phase_turns"] = fr.clean.group_by("phase").agg(nw.len().alias("n"))
    quantile_views = {
        "phase": (fr.clean, ["phase", "arm"]),
        "naive": (fr.tagged, ["arm"]),
    }
    for name, (ev, keys) in quantile_views.items():
        q = agg.quantiles(ev, keys, M)
        if q is not None:
            plan[f"q:{name}"] = q
    return Plan(frames=plan, quantile_views=quantile_views, after_phase=after_phase, units=units)


def exposure_day_plan(ctx: _Context, fr: Frames) -> nw.LazyFrame[Any] | None:
    """Moments per exposure phase × day since the unit's first exposure × arm, over the clean
    events of *fresh* units (first enrolled in the event's phase; each unit is fresh in one
    phase only, so the phases' units are disjoint). Days are whole days of whole minutes."""
    starts = [p.start for p in ctx.phases if p.kind == "exposure" and p.start is not None]
    if not starts or not agg.moment_metrics(ctx.metrics):
        return None
    unit = ctx.unit
    ev = fr.clean.join(fr.enroll.select(unit, "first_ts", "cohort"), on=unit, how="inner")
    ev = ev.filter(nw.col("cohort") == nw.col("phase"))
    ev = _engines.with_minutes_since(ev, "ts", starts[0], "__m")
    ev = _engines.with_minutes_since(ev, "first_ts", starts[0], "__f")
    ev = ev.with_columns(((nw.col("__m") - nw.col("__f")) // 1440).cast(nw.Int32).alias("day"))
    keys = ["phase", "day", "arm"]
    units = agg.unit_level(ev, keys, unit, ctx.metrics, use_covariates=False)
    return agg.group_moments(units, keys, ctx.metrics, use_covariates=False)


def small_frame(data: Mapping[str, Sequence[Any]], like: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """A small table (columns of Python values) as a lazy frame on ``like``'s backend; integer
    key columns ``phase``, ``cohort`` and ``stratum`` are Int32 like the labelled events',
    ``arm`` is text, and the other columns of an empty table are floats."""
    import polars as pl

    df = pl.DataFrame(dict(data))
    ints = ("phase", "cohort", "stratum")
    casts = [pl.col(k).cast(pl.Int32) for k in ints if k in df.columns]
    casts += [pl.col(k).cast(pl.String) for k in ("arm",) if k in df.columns]
    # columns of an empty table have no type: values are floats
    casts += [
        pl.col(k).cast(pl.Float64)
        for k, t in df.schema.items()
        if t == pl.Null and k not in (*ints, "arm")
    ]
    if casts:
        df = df.with_columns(casts)
    return _engines.table(df.to_dict(as_series=False), like, df.schema)


def influence_plan(
    ctx: _Context,
    units: nw.LazyFrame[Any],
    constants: Mapping[str, Sequence[Any]],
    terms: Mapping[str, Sequence[str]],
    presence: Mapping[str, tuple[int | None, bool]],
    products: Sequence[tuple[str, str]],
) -> nw.LazyFrame[Any]:
    """The second pass of the stratified estimates: one row of sums over units of products of
    their per-unit influence functions (one cluster per unit; see
    :func:`~analysis.metrics.aggregation.influence_sums`)."""
    conds: dict[str, nw.Expr] = {}
    for name, (phase, fresh_only) in presence.items():
        cond = nw.lit(value=True) if phase is None else nw.col("phase") == phase
        conds[name] = cond & nw.col("fresh") if fresh_only else cond
    return agg.influence_sums(
        keyed_by_stratum(units),
        constants,
        ctx.unit,
        terms,
        arms=(ctx.control, *ctx.arms),
        presence=conds,
        products=products,
        key="skey",
    )


def keyed_by_stratum(units: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """``units`` with ``skey``, the second pass' constants key (stratum × fresh cohort; see
    :func:`~analysis.metrics._stratified.stratum_key`)."""
    return units.with_columns(
        (nw.col("stratum").cast(nw.Int32) * 2 + nw.col("fresh").cast(nw.Int32))
        .cast(nw.Int32)
        .alias("skey")
    )


def explain_plan(ctx: _Context, tagged: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Pooled moments per step × arm: clean events, then each label of
    :data:`~analysis.metrics.results.EXPLAIN_ORDER` added in turn.

    The events are reduced once, per label × arm × unit; each step's per-unit variables are
    then sums (indicators of a :class:`~analysis.metrics.definitions.Proportion`: maxima) over
    the step's labels of that small table — the same numbers as grouping the step's events,
    without eight passes over them.
    """
    unit, M = ctx.unit, ctx.metrics
    per_label = agg.unit_level(tagged, ["contamination", "arm"], unit, M, use_covariates=False)
    per_label = _engines.small(per_label)  # read eight times below: computed once
    reduce: list[nw.Expr] = []
    for i, m in agg.moment_metrics(M):
        for v in agg.variables(m, i, use_covariates=False):
            indicator = isinstance(m, Proportion) and v == f"{agg.prefix(i)}y"
            reduce.append(nw.col(v).max() if indicator else nw.col(v).sum())
    steps: list[nw.LazyFrame[Any]] = []
    labels = ["clean"]
    for k in range(len(EXPLAIN_ORDER) + 1):
        if k:
            labels.append(EXPLAIN_ORDER[k - 1])
        steps.append(
            per_label.filter(nw.col("contamination").is_in(list(labels)))
            .group_by("arm", unit)
            .agg(*reduce)
            .with_columns(nw.lit(k, dtype=nw.Int32).alias("step"))
        )
    units = nw.concat(steps, how="vertical")
    return agg.group_moments(units, ["step", "arm"], M, use_covariates=False)


def recovery_plan(
    ctx: _Context,
    frame: nw.LazyFrame[Any],
    plan: dict[str, nw.LazyFrame[Any]],
    conversation: str = "conversation_id",
) -> Phase | None:
    """Add the recovery aggregates (``rec_bin``, ``rec_all``) to ``plan`` when the experiment
    was rolled back and recovery is asked for; return the after-end phase (else ``None``).
    ``conversation``: the column of ``frame`` identifying conversations."""
    last = ctx.phases[-1]
    if not ctx.options["recovery"] or last.kind != "after_end" or last.start_action != "rollback":
        return None
    rolled = sorted({ctx.experiment.arms[a] for a in ctx.arms} - {last.served_after_end})
    if not rolled:
        return None
    assert last.start is not None
    ev = after_end_events(
        frame,
        unit=ctx.unit,
        end=last.start,
        after_phase=last.id,
        exposure_phases=list(ctx.exposure),
        rolled_back=rolled,
        bin_width=timedelta(hours=ctx.options["recovery_bin_hours"]),
        has_conversations="conversation_id" in ctx.names,
        has_response_revision="response_revision_id" in ctx.names,
        conversation=conversation,
    )
    M, unit = ctx.metrics, ctx.unit
    plan["rec_bin"] = agg.group_moments(
        agg.unit_level(ev, ["group", "bin"], unit, M, use_covariates=False),
        ["group", "bin"],
        M,
        use_covariates=False,
    )
    plan["rec_all"] = agg.group_moments(
        agg.unit_level(ev, ["group"], unit, M, use_covariates=False),
        ["group"],
        M,
        use_covariates=False,
    )
    return last


# -- the clustered quantile CIs ---------------------------------------------------------------


def below_count_plans(
    ctx: _Context,
    frame: nw.LazyFrame[Any],
    views: QuantileViews,
    collected: Mapping[str, list[dict[str, Any]]],
) -> list[nw.LazyFrame[Any]]:
    """Per view (in order): per-unit counts at or below each collected sample quantile."""
    qs = [(i, m) for i, m in enumerate(ctx.metrics) if isinstance(m, Quantile)]
    plans: list[nw.LazyFrame[Any]] = []
    for name, (ev, keys) in views.items():
        thresholds = thresholds_frame(collected[f"q:{name}"], keys, qs, frame)
        plans.append(agg.below_counts(ev, thresholds, keys, ctx.unit, ctx.metrics))
    return plans


def thresholds_frame(
    rows: list[dict[str, Any]],
    keys: list[str],
    qs: Sequence[tuple[int, Quantile]],
    frame: nw.LazyFrame[Any],
) -> nw.LazyFrame[Any]:
    """The collected sample quantiles ``rows`` as a lazy frame on ``frame``'s backend."""
    cols = [*keys, *(f"q|{i}" for i, _ in qs)]
    return small_frame({c: [r[c] for r in rows] for c in cols}, frame)


def outer_quantile_plans(
    ctx: _Context,
    views: QuantileViews,
    bounds: Mapping[tuple[str, Any, int], tuple[float, float, int, float]],
) -> tuple[list[tuple[str, Any, int]], list[list[int]], list[nw.LazyFrame[Any]]]:
    """The outer quantiles of the CIs: the lower order statistic at the lower probability and
    the higher one at the upper probability, per group and metric, picked by rank
    (:func:`~analysis.metrics.aggregation.ranked`), one single-row frame per view × metric.

    Args:
        ctx: The run.
        views: The quantile views.
        bounds: ``(view, group key, metric index) -> (lower, upper probability, units, value)``
            (:func:`~analysis.metrics._estimates.quantile_bounds`).

    Returns:
        ``(labels, groups, frames)``: label ``j`` is read from columns ``lo<j>``, ``hi<j>`` of
        the single row of ``frames[g]`` for the ``g`` with ``j in groups[g]``.
    """
    labels: list[tuple[str, Any, int]] = []
    exprs: dict[tuple[str, int], list[nw.Expr]] = {}
    for (name, key, i), (lo, hi, _, _) in bounds.items():
        _, keys = views[name]
        cond = nw.lit(value=True)
        for k, v in zip(keys, key, strict=True):
            cond = cond & (nw.col(k) == v)
        j = len(labels)
        value = nw.col("__v")
        exprs.setdefault((name, i), []).extend(
            [
                nw.when(cond & agg.at_rank(lo, "lower")).then(value).min().alias(f"lo{j}"),
                nw.when(cond & agg.at_rank(hi, "higher")).then(value).min().alias(f"hi{j}"),
            ]
        )
        labels.append((name, key, i))
    groups: dict[tuple[str, int], list[int]] = {}
    for j, (name, _, i) in enumerate(labels):
        groups.setdefault((name, i), []).append(j)
    frames = []
    for (name, i), cols in exprs.items():
        ev, keys = views[name]
        metric = ctx.metrics[i]
        assert isinstance(metric, Quantile)
        frames.append(agg.ranked(ev, keys, metric).select(*cols))
    return labels, list(groups.values()), frames
