"""Data work: events → unit-level aggregates → group-level sufficient statistics, lazily.

Everything here builds narwhals lazy queries; nothing but the small group-level aggregates is
collected (by :func:`collect_all`, which runs all queries of one plan together — on polars with
``polars.collect_all`` so that common sub-plans, such as the scan of the export, are shared).

Two reductions, both plain ``group_by`` aggregations:

1. :func:`unit_level` — per group key × unit, the unit-level variables every metric declares
   (:meth:`analysis.metrics.definitions.Mean.unit_aggs` and friends);
2. :func:`group_moments` — per group key, the number of units, the sum of each variable and the
   sum of each product of two variables of the same metric: the additive
   :class:`~analysis.stats.moments.Moments` the tests need.

Quantile metrics need event-level quantiles and counts at them (:func:`quantiles`,
:func:`below_counts`). Quantiles are order statistics picked by rank (:func:`ranked`,
:func:`at_rank`; the definition is in :mod:`analysis.stats.quantile`), never an engine's own
quantile function, so that polars, DuckDB and Spark return the same value.

The stratified clean analysis adds a second pass (:func:`influence_sums`): with small per-stratum
constants from the first pass, each unit's influence-function values are computed in the engine,
summed per unit over the strata it appears in (one cluster per unit, also for a ramp-moved unit
that was control in one stratum and treatment in another), and only sums of products reach
Python.
:func:`stratum_expr` numbers the time strata; :func:`missing_counts` counts NaN, ±inf and null
metric values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import narwhals as nw

from analysis.events import _engines
from analysis.metrics.definitions import Metric, MomentMetric, Quantile
from analysis.stats.moments import Moments

__all__ = [
    "Key",
    "at_rank",
    "below_counts",
    "collect_all",
    "group_moments",
    "influence_sums",
    "missing_counts",
    "moment_metrics",
    "pre_exposure",
    "pre_missing",
    "prefix",
    "quantiles",
    "ranked",
    "read_moments",
    "stratum_expr",
    "unit_level",
    "with_constants",
]

Key = tuple[Any, ...]


def prefix(i: int) -> str:
    """Column prefix of the ``i``-th metric's unit-level variables."""
    return f"m{i}_"


def moment_metrics(metrics: Sequence[Metric]) -> list[tuple[int, MomentMetric]]:
    """The metrics computed from moments (all but quantiles), with their index."""
    return [(i, m) for i, m in enumerate(metrics) if not isinstance(m, Quantile)]


def unit_level(
    events: nw.LazyFrame[Any],
    keys: Sequence[str],
    unit: str,
    metrics: Sequence[Metric],
    *,
    covariates: nw.LazyFrame[Any] | None = None,
    use_covariates: bool = True,
) -> nw.LazyFrame[Any]:
    """Per ``keys`` × unit, the unit-level variables of the moment metrics (lazy).

    Args:
        events: Event-level frame holding ``keys``, ``unit`` and the metrics' columns.
        keys: Group columns (e.g. ``phase``, ``arm``).
        unit: The randomization unit column.
        metrics: All metrics of the analysis (quantiles are skipped).
        covariates: Unit-level pre-exposure covariates (:func:`pre_exposure`), joined on the
            unit; units without pre-exposure events get 0.
        use_covariates: False drops CUPED variables (e.g. for the naive analysis).
    """
    aggs: list[nw.Expr] = []
    for i, m in moment_metrics(metrics):
        p = prefix(i)
        exprs = m.unit_aggs(p)
        if not use_covariates:
            exprs = exprs[: 2 if m.variables(p)[1:2] == (f"{p}x",) else 1]
        aggs.extend(exprs)
    out = events.group_by([*keys, unit]).agg(*aggs)
    if not use_covariates:
        return out
    names: list[str] = []
    if covariates is not None:
        names = [c for c in covariates.collect_schema().names() if c != unit]
        if names:
            out = out.join(covariates, on=unit, how="left").with_columns(
                nw.col(c).fill_null(0.0) for c in names
            )
    # pre-period variables without a pre-period table: no unit has pre-period events
    absent = [
        v
        for i, m in moment_metrics(metrics)
        if m.pre_period
        for v in m.covariates(prefix(i))
        if v not in names
    ]
    if absent:
        out = out.with_columns(nw.lit(0.0, dtype=nw.Float64).alias(v) for v in absent)
    return out


def variables(metric: MomentMetric, i: int, *, use_covariates: bool = True) -> tuple[str, ...]:
    """The unit-level variables of metric ``i`` that enter its moments."""
    p = prefix(i)
    names = metric.variables(p)
    if not use_covariates:
        names = tuple(v for v in names if v in (f"{p}y", f"{p}x"))
    return names


def group_moments(
    units: nw.LazyFrame[Any],
    keys: Sequence[str],
    metrics: Sequence[Metric],
    *,
    use_covariates: bool = True,
) -> nw.LazyFrame[Any]:
    """Per ``keys``: unit count, sums and within-metric cross-product sums (lazy, small)."""
    aggs: list[nw.Expr] = [nw.len().alias("n")]
    for i, m in moment_metrics(metrics):
        names = variables(m, i, use_covariates=use_covariates)
        cols = [nw.col(v).cast(nw.Float64).fill_null(0.0) for v in names]
        for v, c in zip(names, cols, strict=True):
            aggs.append(c.sum().alias(f"s|{v}"))
        for a in range(len(names)):
            for b in range(a, len(names)):
                aggs.append((cols[a] * cols[b]).sum().alias(f"c|{names[a]}|{names[b]}"))
    return units.group_by(list(keys)).agg(*aggs)


def read_moments(
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    metrics: Sequence[Metric],
    *,
    use_covariates: bool = True,
) -> dict[Key, dict[int, Moments]]:
    """Turn collected :func:`group_moments` rows into ``{key: {metric index: Moments}}``."""
    out: dict[Key, dict[int, Moments]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        per: dict[int, Moments] = {}
        for i, m in moment_metrics(metrics):
            names = variables(m, i, use_covariates=use_covariates)
            sums = {v: float(row[f"s|{v}"] or 0.0) for v in names}
            cross = {
                (names[a], names[b]): float(row[f"c|{names[a]}|{names[b]}"] or 0.0)
                for a in range(len(names))
                for b in range(a, len(names))
            }
            per[i] = Moments.from_sums(int(row["n"]), sums, cross)
        out[key] = per
    return out


def pre_exposure(
    events: nw.LazyFrame[Any],
    first_exposure: nw.LazyFrame[Any],
    unit: str,
    metrics: Sequence[Metric],
) -> nw.LazyFrame[Any] | None:
    """Unit-level pre-period covariates over each unit's pre-exposure window (lazy), or None.

    The window of a metric is ``[first − cuped_days, first)`` with ``first`` the unit's first
    exposure (column ``first_ts`` of ``first_exposure``); every event of the export counts,
    tagged or not. Each metric gets its pre-period value(s) and the indicator ``<p>d`` (1 for
    every unit with events in the window; units without get 0 from :func:`unit_level`). Metrics
    with different ``cuped_days`` get one aggregation each.
    """
    cuped = [(i, m) for i, m in moment_metrics(metrics) if m.pre_period]
    if not cuped:
        return None
    by_days: dict[float, list[tuple[int, MomentMetric]]] = {}
    for i, m in cuped:
        by_days.setdefault(m.cuped_days, []).append((i, m))
    joined = events.join(first_exposure.select(unit, "first_ts"), on=unit, how="inner")
    out: nw.LazyFrame[Any] | None = None
    for days, group in by_days.items():
        window = joined.filter(
            (nw.col("ts") < nw.col("first_ts"))
            & (nw.col("ts") >= nw.col("first_ts") - timedelta(days=days))
        )
        aggs = [e for i, m in group for e in m.pre_aggs(prefix(i))]
        part = window.group_by(unit).agg(*aggs)
        if out is None:
            out = part
        else:  # every unit of either part: the union of units, then both parts
            units = nw.concat([out.select(unit), part.select(unit)]).unique()
            out = units.join(out, on=unit, how="left").join(part, on=unit, how="left")
    return out


def pre_missing(
    events: nw.LazyFrame[Any],
    first_exposure: nw.LazyFrame[Any],
    unit: str,
    metrics: Sequence[Metric],
) -> list[nw.LazyFrame[Any]]:
    """Per group of pre-period metrics with the same ``cuped_days``, one row: events of the
    pre-period windows (:func:`pre_exposure`) with a NaN or ±inf value in a column the metric
    reads (``pre|<i>``; left out of the covariate) and the units with one (``preu|<i>``).
    Nulls are not counted: a pre-period turn without a rating is ordinary."""
    cuped = [(i, m) for i, m in moment_metrics(metrics) if m.pre_period]
    by_days: dict[float, list[tuple[int, MomentMetric]]] = {}
    for i, m in cuped:
        by_days.setdefault(m.cuped_days, []).append((i, m))
    joined = events.join(first_exposure.select(unit, "first_ts"), on=unit, how="inner")
    out: list[nw.LazyFrame[Any]] = []
    for days, group in by_days.items():
        window = joined.filter(
            (nw.col("ts") < nw.col("first_ts"))
            & (nw.col("ts") >= nw.col("first_ts") - timedelta(days=days))
        )
        aggs = []
        for i, m in group:
            bad: nw.Expr = nw.lit(value=False)
            for c in m.columns:
                v = nw.col(c).cast(nw.Float64)
                bad = bad | (~v.is_null() & ~v.is_finite()).fill_null(value=False)
            aggs.append(bad.cast(nw.Int64).sum().alias(f"pre|{i}"))
        per_unit = window.group_by(unit).agg(*aggs)
        out.append(
            per_unit.select(
                *(nw.col(f"pre|{i}").sum() for i, _ in group),
                *(
                    (nw.col(f"pre|{i}") > 0).cast(nw.Int64).sum().alias(f"preu|{i}")
                    for i, _ in group
                ),
            )
        )
    return out


def ranked(events: nw.LazyFrame[Any], keys: Sequence[str], metric: Quantile) -> nw.LazyFrame[Any]:
    """The events with a value of ``metric``, ranked within their ``keys`` group (lazy).

    Columns: ``keys``, ``__v`` (the value, finite), ``__r`` (its rank 1..n in ascending order;
    equal values in any order — the value at each rank is the same) and ``__n`` (the group's
    number of values). A window function in every engine (Spark: ``row_number`` over the
    group ordered by the value).
    """
    v = metric.value_expr(metric.column)
    return (
        events.select(*keys, v.alias("__v"))
        .filter(~nw.col("__v").is_null())
        .with_columns(
            nw.col("__v").rank(method="ordinal").over(*keys).cast(nw.Int64).alias("__r"),
            nw.len().over(*keys).cast(nw.Int64).alias("__n"),
        )
    )


def at_rank(p: float, side: str) -> nw.Expr:
    """Whether a :func:`ranked` row holds the ``side`` order statistic at probability ``p``.

    ``lower``: rank ``⌊p(n−1)⌋ + 1``; ``higher``: rank ``⌈p(n−1)⌉ + 1`` (numpy's
    ``method="lower"``/``"higher"``; :func:`analysis.stats.quantile.order_statistic_rank`),
    with ``p(n−1)`` one IEEE double product, written as comparisons of the integer rank with
    it, which every engine evaluates exactly alike (no engine-specific floor or cast).
    """
    x = nw.lit(float(p), dtype=nw.Float64) * (nw.col("__n") - 1).cast(nw.Float64)
    below = (nw.col("__r") - 1).cast(nw.Float64)  # rank - 1
    if side == "lower":
        return (below <= x) & (below + 1.0 > x)
    if side == "higher":
        return (below >= x) & (below - 1.0 < x)
    raise ValueError(f"side must be 'lower' or 'higher', not {side!r}")


def quantiles(
    events: nw.LazyFrame[Any], keys: Sequence[str], metrics: Sequence[Metric]
) -> nw.LazyFrame[Any] | None:
    """Per ``keys``: each quantile metric's event-level sample quantile (``q|<i>``), the lower
    order statistic of rank ``⌊q(n−1)⌋ + 1`` (null where the group has no finite value)."""
    qs = [(i, m) for i, m in enumerate(metrics) if isinstance(m, Quantile)]
    if not qs:
        return None
    out = events.select(*keys).unique()
    for i, m in qs:
        values = (
            ranked(events, keys, m)
            .filter(at_rank(m.q, "lower"))
            .group_by(*keys)
            .agg(nw.col("__v").min().alias(f"q|{i}"))
        )
        out = out.join(values, on=list(keys), how="left")
    return out


def below_counts(
    events: nw.LazyFrame[Any],
    thresholds: nw.LazyFrame[Any],
    keys: Sequence[str],
    unit: str,
    metrics: Sequence[Metric],
) -> nw.LazyFrame[Any]:
    """Per ``keys``: moments of the per-unit counts at or below each quantile (``b|i``, ``e|i``).

    ``thresholds`` holds ``keys`` and the ``q|<i>`` columns of :func:`quantiles`.
    """
    qs = [(i, m) for i, m in enumerate(metrics) if isinstance(m, Quantile)]
    joined = events.join(thresholds, on=list(keys), how="inner")
    unit_aggs: list[nw.Expr] = []
    for i, m in qs:
        v = m.value_expr(m.column)
        unit_aggs.append((v <= nw.col(f"q|{i}")).cast(nw.Float64).sum().alias(f"b|{i}"))
        unit_aggs.append((~v.is_null()).cast(nw.Float64).sum().alias(f"e|{i}"))
    units = joined.group_by([*keys, unit]).agg(*unit_aggs)
    aggs: list[nw.Expr] = [nw.len().alias("n")]
    for i, _ in qs:
        b, e = nw.col(f"b|{i}"), nw.col(f"e|{i}")
        aggs += [
            b.sum().alias(f"sb|{i}"),
            e.sum().alias(f"se|{i}"),
            (b * b).sum().alias(f"cbb|{i}"),
            (b * e).sum().alias(f"cbe|{i}"),
            (e * e).sum().alias(f"cee|{i}"),
        ]
    return units.group_by(list(keys)).agg(*aggs)


def read_below(row: Mapping[str, Any], i: int) -> Moments:
    """The :class:`Moments` of ``below``/``events`` of quantile metric ``i`` from a row."""
    return Moments.from_sums(
        int(row["n"]),
        {"below": float(row[f"sb|{i}"]), "events": float(row[f"se|{i}"])},
        {
            ("below", "below"): float(row[f"cbb|{i}"]),
            ("below", "events"): float(row[f"cbe|{i}"]),
            ("events", "events"): float(row[f"cee|{i}"]),
        },
    )


def collect_all(frames: Sequence[nw.LazyFrame[Any]]) -> list[list[dict[str, Any]]]:
    """Collect several small aggregates in one go (``polars.collect_all`` on polars; see
    :func:`analysis.events._engines.collect_all`)."""
    return _engines.collect_all(frames)


def stratum_expr(starts: Sequence[datetime], column: str = "ts") -> nw.Expr:
    """The time stratum of an event: the index of the last of ``starts`` (sorted block starts)
    at or before ``column`` (``-1`` before the first)."""
    expr = nw.lit(-1, dtype=nw.Int32)
    for b in starts:
        expr = expr + (nw.col(column) >= nw.lit(b)).cast(nw.Int32)
    return expr


def with_constants(
    units: nw.LazyFrame[Any], constants: Mapping[str, Sequence[Any]], key: str = "stratum"
) -> nw.LazyFrame[Any]:
    """``units`` with the columns of the small table ``constants`` (keys ``key``, ``arm``)
    looked up by ``key`` × ``arm``; null where the table has no row.

    On polars and DuckDB a left join with the table (on DuckDB built on the relation's own
    connection, :func:`analysis.events._engines.table`: the per-row lookups below cost DuckDB
    seconds per 100,000 rows); on other engines one ``replace_strict`` per arm and column (on
    Spark a join with a table built on the driver would add a broadcast job).
    """
    strata, arms = list(constants[key]), list(constants["arm"])
    cols = [c for c in constants if c not in (key, "arm")]
    if units.implementation.is_polars() or units.implementation.is_duckdb():
        import polars as pl

        schema = {key: pl.Int32, "arm": pl.String} | dict.fromkeys(cols, pl.Float64)
        data: dict[str, list[Any]] = {key: [int(x) for x in strata], "arm": [str(a) for a in arms]}
        data |= {c: [None if x is None else float(x) for x in constants[c]] for c in cols}
        table = _engines.table(data, units, schema)
        return units.join(table, on=[key, "arm"], how="left")
    exprs = []
    for c in cols:
        expr: nw.Expr = nw.lit(None, dtype=nw.Float64)
        for a in dict.fromkeys(arms):
            idx = [j for j, x in enumerate(arms) if x == a]
            mapped = nw.col(key).replace_strict(
                [strata[j] for j in idx],
                [float(constants[c][j]) for j in idx],
                default=None,
                return_dtype=nw.Float64,
            )
            expr = nw.when(nw.col("arm") == a).then(mapped).otherwise(expr)
        exprs.append(expr.alias(c))
    return units.with_columns(*exprs)


def psi_exprs(terms: Mapping[str, Sequence[str]]) -> list[nw.Expr]:
    """``psi|<c> = Σ_v k|c|v · v − o|c`` for every component ``c`` of ``terms``: a row's
    influence from the constants looked up by :func:`with_constants` (0 without an entry)."""
    psi: list[nw.Expr] = []
    for comp, names in terms.items():
        expr = -nw.col(f"o|{comp}").fill_null(0.0)
        for v in names:
            k = nw.col(f"k|{comp}|{v}").fill_null(0.0)
            expr = expr + k * nw.col(v).cast(nw.Float64).fill_null(0.0)
        psi.append(expr.alias(f"psi|{comp}"))
    return psi


def influence_sums(
    units: nw.LazyFrame[Any],
    constants: Mapping[str, Sequence[Any]],
    unit: str,
    terms: Mapping[str, Sequence[str]],
    *,
    arms: Sequence[str],
    presence: Mapping[str, nw.Expr],
    products: Sequence[tuple[str, str]],
    key: str = "stratum",
) -> nw.LazyFrame[Any]:
    """Sums over units of products of their influence functions, one cluster per unit.

    Each row of ``units`` (one unit in one stratum, in the arm it had there) gets, for every
    influence component ``c`` of ``terms``, ``ψ_c = Σ_v k|c|v · v − o|c`` from the constants
    of its ``key`` × ``arm``. The rows are summed *per unit* into ``u|<arm>|<c>`` — the unit's
    influence on arm ``arm``'s estimates (zero for an arm it never had) — so a unit that was
    control in one stratum and treatment in another is one cluster with both parts.

    Args:
        units: Per stratum × unit aggregates holding ``key``, ``arm`` and the variables.
        constants: Columns of a small table, one row per ``key`` × ``arm``: for each component
            ``c``, ``k|<c>|<var>`` and the offset ``o|<c>``; rows without an entry contribute 0.
        unit: The unit column.
        terms: Component name -> the unit-level variables it reads.
        arms: The arms (control first).
        presence: Name -> a row-level condition; ``n|<arm>|<name>`` counts the units with a row
            in ``arm`` that meets it, and ``b|<arm>|<arm2>|<name>`` (for every pair of arms) the
            units with rows in both.
        products: Pairs of per-unit columns (``u|<arm>|<c>``) whose products are summed, as
            ``x|<first>|<second>``.
        key: The constants' key column of ``units``.

    Returns:
        One row: ``n|…``, ``b|…``, ``s|<arm>|<c>`` (sums, zero by construction) and ``x|…``.
    """
    rows = with_constants(units, constants, key)
    psi = psi_exprs(terms)
    flags = [(nw.col("arm") == a) & cond for a in arms for cond in presence.values()]
    flag_names = [f"p|{a}|{name}" for a in arms for name in presence]
    rows = rows.select(
        unit,
        "arm",
        *psi,
        *(f.cast(nw.Int64).alias(n) for f, n in zip(flags, flag_names, strict=True)),
    )
    per_unit = rows.group_by(unit).agg(
        *(
            nw.when(nw.col("arm") == a)
            .then(nw.col(f"psi|{c}"))
            .otherwise(0.0)
            .sum()
            .alias(f"u|{a}|{c}")
            for a in arms
            for c in terms
        ),
        *(nw.col(n).max() for n in flag_names),
    )
    out: list[nw.Expr] = [nw.col(n).sum().alias(f"n{n[1:]}") for n in flag_names]
    for name in presence:
        for x, a in enumerate(arms):
            for b in arms[x + 1 :]:
                both = nw.col(f"p|{a}|{name}") * nw.col(f"p|{b}|{name}")
                out.append(both.sum().alias(f"b|{a}|{b}|{name}"))
    out += [nw.col(f"u|{a}|{c}").sum().alias(f"s|{a}|{c}") for a in arms for c in terms]
    out += [(nw.col(p) * nw.col(q)).sum().alias(f"x|{p}|{q}") for p, q in dict.fromkeys(products)]
    return per_unit.select(*out)


def missing_counts(
    events: nw.LazyFrame[Any], unit: str, metrics: Sequence[Metric]
) -> nw.LazyFrame[Any]:
    """Events and units, and per metric ``i``: events with a NaN, ±inf or null value in a column
    it reads (``miss|i``), by kind (``i|nan``, ``i|inf``, ``i|null``), and units with one
    (``units|i``). One row."""
    aggs: list[nw.Expr] = [nw.len().alias("events")]
    for i, m in enumerate(metrics):
        aggs.append(m.missing_expr().cast(nw.Float64).sum().alias(f"miss|{i}"))
        aggs.extend(m.kind_exprs(f"{i}|"))
    per_unit = events.group_by(unit).agg(*aggs)
    out: list[nw.Expr] = [nw.col("events").sum(), nw.len().alias("units")]
    for i, _ in enumerate(metrics):
        out.append(nw.col(f"miss|{i}").sum())
        out.append((nw.col(f"miss|{i}") > 0).cast(nw.Float64).sum().alias(f"units|{i}"))
        out.extend(nw.col(f"{i}|{k}").sum() for k in ("nan", "inf", "null"))
    return per_unit.select(*out)
