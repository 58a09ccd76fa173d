"""Segments: the clean effects per value of a unit attribute fixed at the unit's first exposure.

``analyze(..., segments=["plan", "country"])`` analyses each column on its own (columns are not
crossed). For one column:

* **A unit's value** is the column's value on the unit's *first exposure*: its earliest event
  tagged with the experiment and an arm, in an exposure phase, labelled anything but
  ``outside_window`` or ``after_end`` (the events :mod:`analysis.metrics._assignment` counts
  for enrollment). Ties at that instant go to the smallest value; a null value is ``unknown``.
  A later change of the column never moves a unit: a segment is a set of units fixed before
  the treatment could change the attribute (conditioning on a post-treatment value would
  break the randomisation).
* **Values** with fewer than :data:`MIN_UNITS` units in some arm (counted by the arm of the
  first exposure) are pooled into ``other``; at most :data:`MAX_VALUES` values are reported
  (the largest; the rest join ``other``). A value written ``unknown`` is the same segment as
  null; one written ``other`` joins the pool when anything is pooled.
* **Per value**, the clean effects are those of the whole analysis run on that value's units
  alone — every event of those units (pre-period included), the same window — so they equal
  a brute-force analysis of the export filtered to those units. Estimand: the per-value
  clean effect, the same estimand as the experiment's but over the value's units.
* **Multiplicity**: Benjamini–Hochberg across the values, per column × metric × arm × phase
  (``pvalue_bh``).
* **Heterogeneity**: does the effect differ between the values? Cochran's Q on the values'
  clean estimates, ``Q = Σ w_v (θ_v − θ̄_w)²`` with ``w_v = 1/se_v²`` and ``θ̄_w`` their
  inverse-variance mean, against χ² with ``k − 1`` degrees of freedom (``k`` values with a
  finite estimate). The values hold disjoint units and each estimate is clustered by unit, so
  the estimates are independent and Q is χ²(k − 1) under equal effects (asymptotically).
  A value enters the test of a row only with at least :data:`TEST_MIN_UNITS` units in each arm
  of that row (phase): with fewer, its clustered SE is too noisy — Q squares the estimate over
  an estimated variance, and skewed, activity-weighted per-unit contributions make that
  variance's effective degrees of freedom far below the unit count — and the test rejected 7–9%
  at α = 5% in ``benchmarks/sim_segments.py``. Fewer than two such values: no test (a note).

Only the small aggregates reach Python: per value × arm unit counts of the (at most
``MAX_VALUES + 1``) largest values, then each value's analysis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import narwhals as nw

from analysis.errors import PromptstateError
from analysis.metrics.results import EffectRow, HeterogeneityRow, SegmentRow

if TYPE_CHECKING:  # pragma: no cover
    from analysis.metrics.results import AnalysisResult

__all__ = [
    "MAX_VALUES",
    "MIN_UNITS",
    "OTHER",
    "TEST_MIN_UNITS",
    "UNKNOWN",
    "SegmentValues",
    "check_segments",
    "heterogeneity",
    "heterogeneity_notes",
    "segment_rows",
    "segment_values",
    "testable",
    "unit_segments",
    "untested_notes",
]

#: Fewest units per arm for a value to be reported on its own.
MIN_UNITS = 200
#: Fewest units in each arm of a row for its value to enter the heterogeneity test.
TEST_MIN_UNITS = 300
#: Most values reported per column (``other`` included).
MAX_VALUES = 20
#: The value of a unit whose column is null at its first exposure.
UNKNOWN = "unknown"
#: The pooled small (or beyond-``MAX_VALUES``) values.
OTHER = "other"

_SEG = "__segment"
_ARM = "__first_arm"
_T0 = "__first_ts"
_NOT_EXPOSED = ("outside_window", "after_end")


@dataclass(frozen=True)
class SegmentValues:
    """The values of one column and the units behind each.

    Attributes:
        column: The column.
        kept: Reported values, largest first (``unknown`` may be one).
        pooled: Values pooled into ``other`` (empty when nothing is pooled); the small values
            are listed only when they are few (``pooled_count`` counts them all).
        pooled_count: How many distinct values went into ``other``.
        units: Units per reported value (``other`` included), all arms.
        total_units: Units with a first exposure.
    """

    column: str
    kept: tuple[str, ...]
    pooled: tuple[str, ...]
    pooled_count: int
    units: Mapping[str, int]
    total_units: int

    @property
    def labels(self) -> tuple[str, ...]:
        """The rows' ``segment_value``: the kept values, then ``other`` when anything pooled."""
        return (*self.kept, OTHER) if self.pooled_count else self.kept


def check_segments(segments: Any, names: Sequence[str], *, where: str) -> tuple[str, ...]:
    """The segment columns as a tuple, or a :class:`PromptstateError` naming what is wrong.

    Args:
        segments: ``None``, a column name or a sequence of them.
        names: The export's columns.
        where: The export, for the message.
    """
    if segments is None:
        return ()
    cols = (segments,) if isinstance(segments, str) else tuple(segments)
    bad = [c for c in cols if not isinstance(c, str) or not c]
    if bad:
        raise PromptstateError(f"segments: {bad[0]!r} is not a column name")
    missing = [c for c in cols if c not in names]
    if missing:
        raise PromptstateError(
            f"{where}: segment column {missing[0]!r} is not in the export (its columns: "
            f"{', '.join(sorted(names))}); name a unit attribute such as a plan or a country"
        )
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise PromptstateError(f"segments: {dup[0]!r} is given twice")
    return cols


def unit_segments(
    frame: nw.LazyFrame[Any], *, unit: str, experiment_id: str, exposure: Sequence[int], column: str
) -> nw.LazyFrame[Any]:
    """Per unit with a first exposure: ``unit``, its value (``__segment``, text, null →
    ``unknown``) and its arm (``__first_arm``) at that first exposure (lazy)."""
    events = frame.filter(
        (nw.col("experiment_id") == experiment_id)
        & ~nw.col("arm").is_null()
        & nw.col("phase").is_in(list(exposure))
        & ~nw.col("contamination").is_in(list(_NOT_EXPOSED))
    ).select(nw.col(unit), nw.col("ts"), nw.col("arm"), nw.col(column).cast(nw.String).alias(_SEG))
    first = events.group_by(unit).agg(nw.col("ts").min().alias(_T0))
    at_first = events.join(first, on=unit).filter(nw.col("ts") == nw.col(_T0))
    return at_first.group_by(unit).agg(
        nw.col(_SEG).min().fill_null(UNKNOWN).alias(_SEG), nw.col("arm").min().alias(_ARM)
    )


def segment_values(
    units: nw.LazyFrame[Any],
    *,
    column: str,
    arms: Sequence[str],
    collect: Callable[[list[nw.LazyFrame[Any]]], list[list[dict[str, Any]]]],
) -> SegmentValues:
    """Choose the reported values of ``column`` from the per-unit table of
    :func:`unit_segments` (two small collects: the largest eligible values, and totals)."""
    counts = units.group_by(_SEG).agg(
        nw.len().alias("__n"),
        *[(nw.col(_ARM) == a).cast(nw.Int64).sum().alias(f"__n{i}") for i, a in enumerate(arms)],
    )
    smallest = nw.min_horizontal(*[nw.col(f"__n{i}") for i in range(len(arms))])
    eligible = (
        counts.filter(smallest >= MIN_UNITS)
        .sort(["__n", _SEG], descending=[True, False])  # largest first, then by name
        .head(MAX_VALUES + 1)
        .select(_SEG, "__n")
    )
    totals = counts.select(nw.len().alias("__values"), nw.col("__n").sum().alias("__units"))
    small = counts.filter(smallest < MIN_UNITS).sort(_SEG).head(MAX_VALUES).select(_SEG)
    top, tot, few = collect([eligible, totals, small])
    total_units = int(tot[0]["__units"] or 0) if tot else 0
    n_values = int(tot[0]["__values"] or 0) if tot else 0
    sizes = [(str(r[_SEG]), int(r["__n"])) for r in top]
    covered = sum(n for _, n in sizes)
    leftover = n_values > len(sizes) or covered < total_units
    if leftover or len(sizes) > MAX_VALUES:
        sizes = sizes[: MAX_VALUES - 1]
        # a real value named like the pool joins it (one 'other' row, never two)
        sizes = [(v, n) for v, n in sizes if v != OTHER]
    kept = tuple(v for v, _ in sizes)
    units_by = dict(sizes)
    pooled_count = n_values - len(kept)
    if pooled_count:
        units_by[OTHER] = total_units - sum(units_by.values())
    beyond = tuple(str(r[_SEG]) for r in top if str(r[_SEG]) not in kept)
    shown = beyond + tuple(str(r[_SEG]) for r in few)
    return SegmentValues(
        column=column,
        kept=kept,
        pooled=tuple(dict.fromkeys(shown)) if pooled_count else (),
        pooled_count=pooled_count,
        units=units_by,
        total_units=total_units,
    )


def units_of(units: nw.LazyFrame[Any], values: SegmentValues, label: str, unit: str) -> Any:
    """The unit keys of one reported value (``other``: every value not kept), lazily."""
    if label == OTHER and values.pooled_count:
        pick = ~nw.col(_SEG).is_in(list(values.kept))
    else:
        pick = nw.col(_SEG) == label
    return units.filter(pick).select(unit)


def segment_rows(
    column: str,
    values: SegmentValues,
    results: Mapping[str, AnalysisResult],
    *,
    alpha: float,
) -> list[SegmentRow]:
    """The clean rows of each value's analysis, with BH across the values."""
    from analysis.stats.multiplicity import adjust_pvalues

    raw: list[tuple[str, EffectRow]] = []
    for label in values.labels:
        res = results.get(label)
        if res is None:
            continue
        for r in res.effects.rows:
            assert isinstance(r, EffectRow)
            if r.analysis == "clean":
                raw.append((label, r))
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, (_, r) in enumerate(raw):
        groups.setdefault((r.metric, r.arm, r.phase), []).append(i)
    bh = [math.nan] * len(raw)
    for idx in groups.values():
        for i, p in zip(idx, adjust_pvalues([raw[i][1].pvalue for i in idx], "bh"), strict=True):
            bh[i] = p
    pooled = ", ".join(values.pooled) + (
        f" (+{values.pooled_count - len(values.pooled)} more)"
        if values.pooled_count > len(values.pooled)
        else ""
    )
    out = []
    for (label, r), p in zip(raw, bh, strict=True):
        out.append(
            SegmentRow(
                segment=column,
                segment_value=label,
                values=pooled if label == OTHER and values.pooled_count else label,
                metric=r.metric,
                phase=r.phase,
                control=r.control,
                arm=r.arm,
                n_control=r.n_control,
                n_arm=r.n_arm,
                control_mean=r.control_mean,
                arm_mean=r.arm_mean,
                effect=r.effect,
                effect_ci_lower=r.effect_ci_lower,
                effect_ci_upper=r.effect_ci_upper,
                se=r.se,
                pvalue=r.pvalue,
                pvalue_bh=p,
                significant=bool(math.isfinite(p) and p < alpha),
            )
        )
    return out


def testable(r: SegmentRow) -> bool:
    """Whether a value's row enters the heterogeneity test: a finite estimate, a positive
    finite SE and at least :data:`TEST_MIN_UNITS` units in each arm."""
    return (
        math.isfinite(r.effect)
        and math.isfinite(r.se)
        and r.se > 0
        and min(r.n_control, r.n_arm) >= TEST_MIN_UNITS
    )


def heterogeneity(rows: Sequence[SegmentRow]) -> list[HeterogeneityRow]:
    """Cochran's Q per column × metric × arm × phase over the values that are
    :func:`testable` (fewer than two: no row)."""
    from scipy.stats import chi2

    groups: dict[tuple[str, str, str, str], list[SegmentRow]] = {}
    for r in rows:
        groups.setdefault((r.segment, r.metric, r.phase, r.arm), []).append(r)
    out = []
    for (segment, metric, phase, arm), rs in groups.items():
        ok = [r for r in rs if testable(r)]
        if len(ok) < 2:
            continue
        w = [1.0 / r.se**2 for r in ok]
        mean = sum(wi * r.effect for wi, r in zip(w, ok, strict=True)) / sum(w)
        q = sum(wi * (r.effect - mean) ** 2 for wi, r in zip(w, ok, strict=True))
        df = len(ok) - 1
        out.append(
            HeterogeneityRow(segment, metric, phase, arm, len(ok), q, df, float(chi2.sf(q, df)))
        )
    return out


def untested_notes(rows: Sequence[SegmentRow]) -> list[str]:
    """Per column: the combined rows of values left out of the heterogeneity test for having
    fewer than :data:`TEST_MIN_UNITS` units in an arm."""
    out: dict[str, set[str]] = {}
    for r in rows:
        small = min(r.n_control, r.n_arm) < TEST_MIN_UNITS
        if r.phase == "combined" and math.isfinite(r.effect) and small:
            out.setdefault(r.segment, set()).add(r.segment_value)
    return [
        f"segments: {column!r}: {', '.join(sorted(values))} left out of the heterogeneity test "
        f"(fewer than {TEST_MIN_UNITS} units in an arm; too few for Cochran's Q)"
        for column, values in out.items()
    ]


def heterogeneity_notes(rows: Sequence[HeterogeneityRow], *, alpha: float) -> list[str]:
    """One note per combined-row test that rejects at ``alpha``."""
    return [
        f"segments: the clean effect of {r.metric} ({r.arm}) differs between the values of "
        f"{r.segment!r} (Cochran's Q={r.statistic:.3g}, df={r.df}, p={r.pvalue:.2g})"
        for r in rows
        if r.phase == "combined" and math.isfinite(r.pvalue) and r.pvalue < alpha
    ]


def pooled_notes(values: SegmentValues) -> list[str]:
    """What was pooled, and a real value named like a pooled label."""
    out = []
    if values.pooled_count:
        out.append(
            f"segments: {values.column!r}: {values.pooled_count} value(s) with fewer than "
            f"{MIN_UNITS} units in an arm, or beyond the {MAX_VALUES} largest, pooled into "
            f"'{OTHER}' ({values.units.get(OTHER, 0)} units)"
        )
    return out
