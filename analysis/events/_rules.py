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
from analysis.stats.crossover import ramp_rule

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
    """A small lookup table computed once where that keeps plans lean (polars; on DuckDB and
    Spark the table stays lazy: see :func:`analysis.events._engines.small`)."""
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
    are compared as :mod:`analysis.stats.crossover` does.
    """
    phases = sorted(allocations)
    allowed = allowed_moves(allocations)
    per_unit = (
        frame.filter(nw.col("__exposed") & ~nw.col("arm").is_null())
        .select(
            nw.col(unit),
            *[nw.when(nw.col("phase") == p).then(nw.col("arm")).alias(f"__a{p}") for p in phases],
        )
        .group_by(unit)
        .agg(
            *[nw.col(f"__a{p}").min().alias(f"__lo{p}") for p in phases],
            *[nw.col(f"__a{p}").max().alias(f"__hi{p}") for p in phases],
        )
    )
    no = nw.lit(value=False)
    mixed: nw.Expr = no
    for p in phases:
        mixed = mixed | (nw.col(f"__lo{p}") != nw.col(f"__hi{p}")).fill_null(value=False)
    changed: nw.Expr = no
    bad: nw.Expr = no
    for p, q in combinations(phases, 2):
        lo_p, lo_q = nw.col(f"__lo{p}"), nw.col(f"__lo{q}")
        adjacent = ~lo_p.is_null() & ~lo_q.is_null()
        for r in phases:
            if p < r < q:
                adjacent = adjacent & nw.col(f"__lo{r}").is_null()
        moves = adjacent & (lo_p != lo_q).fill_null(value=False)
        ok: nw.Expr = no
        for x, y in sorted(allowed[(p, q)]):
            ok = ok | ((lo_p == nw.lit(x)) & (lo_q == nw.lit(y))).fill_null(value=False)
        changed = changed | moves
        bad = bad | (moves & ~ok)
    crossed = mixed | bad
    return per_unit.select(
        nw.col(unit), crossed.alias("__crossed"), (changed & ~crossed).alias("__moved")
    ).filter(nw.col("__crossed") | nw.col("__moved"))


def phase_start_expr(starts: Mapping[int, datetime]) -> nw.Expr:
    """The start of the event's exposure phase (null outside the exposure phases)."""
    out: nw.Expr = nw.lit(None)
    for p, start in sorted(starts.items(), reverse=True):
        out = nw.when(nw.col("phase") == p).then(nw.lit(start)).otherwise(out)
    return out


def prior_table(
    frame: nw.LazyFrame[Any], conv: str, starts: Sequence[datetime]
) -> nw.LazyFrame[Any]:
    """``conversation → __c0``: the first instant of each conversation (any event of the export,
    tagged or not) that began before some exposure phase's start in ``starts`` and has an exposed
    turn at or after that start; only those conversations appear."""
    spans: nw.Expr = nw.lit(value=False)
    for b in starts:
        spans = spans | ((nw.col("__c0") < nw.lit(b)) & (nw.col("__cx") >= nw.lit(b)))
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
