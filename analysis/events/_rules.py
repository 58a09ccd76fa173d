"""The label rules of the contamination split that need unit- or conversation-level facts.

Each rule is a small aggregate table joined back to the events (a hash join against a small
table, not a window function over every row):

* :func:`assignment_table` — per unit with a tagged exposure whose arms are not one arm
  throughout: ``__crossed`` (two arms within one exposure phase, or a change of arm between
  consecutive phases of appearance that no ramp of the ledger explains) and ``__moved``
  (*ramp-moved*: one arm in each phase, and every change goes from an arm whose share shrinks
  to one whose share grows at that ramp);
* :func:`carryover_table` — the first instant of a conversation's second served revision;
* :func:`prior_table` — the first instant of conversations that began before an exposure
  phase's start and have exposed turns at or after it (``prior_conversation``).

:data:`LABELS` is the first-match order of the labels (their codes are the indices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import combinations
from typing import Any

import narwhals as nw

from analysis.events import _engines
from analysis.events._lookup import _table
from analysis.stats.crossover import _EPS, ramp_rule

__all__ = [
    "CONTAMINATED",
    "LABELS",
    "allowed_moves",
    "assignment_table",
    "carryover_table",
    "phase_start_expr",
    "prior_table",
    "small",
]

LABELS: tuple[str, ...] = (
    "outside_window",
    "after_end",
    "crossover",
    "served_mismatch",
    "stale_cache",
    "carryover",
    "prior_conversation",
    "clean",
)
#: Labels of events that were tagged with the experiment but cannot be used for clean metrics.
CONTAMINATED: tuple[str, ...] = LABELS[1:-1]


def small(table: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """A small lookup table computed once, so that the plans joining it stay lean (see
    :func:`analysis.events._engines.small`)."""
    return _engines.small(table)


def allowed_moves(
    allocations: Mapping[int, Mapping[str, float]],
) -> dict[tuple[int, int], set[tuple[str, str]]]:
    """``(p, q) -> {(X, Y)}``: for every pair of exposure phases ``p < q``, the arm changes a
    minimal-movement bucket ramp from ``p``'s allocation to ``q``'s allows (``X`` shrinks, ``Y``
    grows; :func:`analysis.stats.crossover.ramp_rule`)."""
    out: dict[tuple[int, int], set[tuple[str, str]]] = {}
    for p, q in combinations(sorted(allocations), 2):
        rule = ramp_rule(allocations[p], allocations[q])
        out[(p, q)] = {
            (x, y) for x, cap in rule.cap.items() if cap > 0 for y in rule.growing if y != x
        }
    return out


def assignment_table(
    frame: nw.LazyFrame[Any], unit: str, allocations: Mapping[int, Mapping[str, float]]
) -> nw.LazyFrame[Any]:
    """``unit → __crossed, __moved`` for the units whose exposed turns carry more than one arm.

    ``frame`` needs ``__exposed`` (tagged with the experiment, inside its window), ``phase`` and
    ``arm``. A unit's arm in an exposure phase is the single arm of its exposed turns there
    (two arms: mixed). Consecutive phases of appearance ``p < q`` (no exposed turn in between)
    are compared as :mod:`analysis.stats.crossover` does: a change of arm is a ramp move when
    its arm ``X`` shrinks and its arm ``Y`` grows from ``p``'s allocation to ``q``'s
    (:func:`allowed_moves`), anything else crosses over.

    Linear in the number of phases: one row per unit × phase of appearance, its previous
    appearance by a window over the unit, and the allocations as a small table of shares
    (parts per million) joined on (phase, arm) — an experiment ramped hundreds of times costs
    hundreds of rows, not an expression per pair of phases.
    """
    ppm = 1_000_000
    rows: dict[str, list[Any]] = {"__sp": [], "__sa": [], "__ss": []}
    for ph, alloc in sorted(allocations.items()):
        for arm, value in alloc.items():
            rows["__sp"].append(ph)
            rows["__sa"].append(arm)
            rows["__ss"].append(round(float(value) * ppm))
    shares = _table(frame, rows, {"__sp": "int32", "__ss": "int"}, None)
    per_phase = (
        frame.filter(nw.col("__exposed") & ~nw.col("arm").is_null())
        .group_by(unit, "phase")
        .agg(nw.col("arm").min().alias("__lo"), nw.col("arm").max().alias("__hi"))
        .with_columns(
            nw.col("phase").shift(1).over(unit, order_by="phase").alias("__pp"),
            nw.col("__lo").shift(1).over(unit, order_by="phase").alias("__plo"),
        )
        .with_columns(nw.col("phase").cast(nw.Int32), nw.col("__pp").cast(nw.Int32))
    )

    def shares_as(phase: str, arm: str, name: str) -> nw.LazyFrame[Any]:
        return shares.rename({"__sp": phase, "__sa": arm, "__ss": name})

    joined = (
        per_phase.join(shares_as("__pp", "__plo", "__ox"), on=["__pp", "__plo"], how="left")
        .join(shares_as("phase", "__plo", "__nx"), on=["phase", "__plo"], how="left")
        .join(shares_as("__pp", "__lo", "__oy"), on=["__pp", "__lo"], how="left")
        .join(shares_as("phase", "__lo", "__ny"), on=["phase", "__lo"], how="left")
    )
    eps = round(_EPS * ppm)
    ox, nx = nw.col("__ox").fill_null(0), nw.col("__nx").fill_null(0)
    oy, ny = nw.col("__oy").fill_null(0), nw.col("__ny").fill_null(0)
    allowed = (ox > 0) & (nx < ox - eps) & (ny > oy + eps)
    move = ~nw.col("__plo").is_null() & (nw.col("__plo") != nw.col("__lo")).fill_null(value=False)
    per_unit = joined.group_by(unit).agg(
        (nw.col("__lo") != nw.col("__hi")).fill_null(value=False).max().alias("__mixed"),
        move.max().alias("__changed"),
        (move & ~allowed.fill_null(value=False)).max().alias("__bad"),
    )
    crossed = nw.col("__mixed") | nw.col("__bad")
    return per_unit.select(
        nw.col(unit), crossed.alias("__crossed"), (nw.col("__changed") & ~crossed).alias("__moved")
    ).filter(nw.col("__crossed") | nw.col("__moved"))


def phase_start_expr(starts: Mapping[int, datetime]) -> nw.Expr:
    """The start of the event's exposure phase (null outside the exposure phases).

    A binary search over the phase ids as nested ``when``s: the depth grows with the logarithm
    of the number of phases (an experiment ramped hundreds of times stays far from any
    recursion limit).
    """
    items = sorted(starts.items())

    def tree(lo: int, hi: int) -> nw.Expr:
        if hi - lo == 1:
            ph, start = items[lo]
            return nw.when(nw.col("phase") == ph).then(nw.lit(start))
        mid = (lo + hi) // 2
        return nw.when(nw.col("phase") < items[mid][0]).then(tree(lo, mid)).otherwise(tree(mid, hi))

    return tree(0, len(items)) if items else nw.lit(None)


def _any(terms: Sequence[nw.Expr]) -> nw.Expr:
    """``terms[0] | terms[1] | ...`` as a balanced tree (depth log2 of their number)."""
    if not terms:
        return nw.lit(value=False)
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    return _any(terms[:mid]) | _any(terms[mid:])


def prior_table(
    frame: nw.LazyFrame[Any], conv: str, starts: Sequence[datetime]
) -> nw.LazyFrame[Any]:
    """``conversation → __c0``: the first instant of each conversation (any event of the export,
    tagged or not) that began before some exposure phase's start in ``starts`` and has an exposed
    turn at or after that start; only those conversations appear."""
    spans = _any([(nw.col("__c0") < nw.lit(b)) & (nw.col("__cx") >= nw.lit(b)) for b in starts])
    return (
        frame.filter(~nw.col(conv).is_null())
        .group_by(conv)
        .agg(
            nw.col("ts").min().alias("__c0"),
            nw.when(nw.col("__exposed")).then(nw.col("ts")).max().alias("__cx"),
        )
        .filter(~nw.col("__cx").is_null())
        .filter(spans)
        .select(conv, "__c0")
    )


def carryover_table(frame: nw.LazyFrame[Any], conv: str) -> nw.LazyFrame[Any]:
    """``conversation_id → __t2``: the first instant of the conversation's second revision.

    For each conversation the first turn of every served revision is found; ``__t2`` is the
    second-earliest of those instants (equal to the first when two revisions share the first
    instant). Only conversations served by two or more revisions and holding an exposed turn
    of the experiment appear (carryover is only ever asked of those).
    """
    exposed = frame.filter(nw.col("__exposed") & ~nw.col(conv).is_null()).select(conv).unique()
    firsts = (
        frame.filter(~nw.col(conv).is_null() & ~nw.col("served_revision").is_null())
        .join(small(exposed), on=conv, how="semi")
        .group_by(conv, "served_revision")
        .agg(nw.col("ts").min().alias("__m"))
    )
    multi = (
        firsts.group_by(conv)
        .agg(nw.col("__m").min().alias("__t1"), nw.len().alias("__n"))
        .filter(nw.col("__n") > 1)
    )
    return (
        firsts.join(multi, on=conv, how="inner")
        .group_by(conv)
        .agg(
            nw.col("__t1").min().alias("__t1"),
            nw.when(nw.col("__m") > nw.col("__t1")).then(nw.col("__m")).min().alias("__next"),
            (nw.col("__m") == nw.col("__t1")).cast(nw.Int64).sum().alias("__at_t1"),
        )
        .select(
            conv,
            nw.when(nw.col("__at_t1") > 1)
            .then(nw.col("__t1"))
            .otherwise(nw.col("__next"))
            .alias("__t2"),
        )
    )
