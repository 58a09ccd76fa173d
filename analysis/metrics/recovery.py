"""Residual effects after a rollback: exposed vs never-exposed units, tainted vs fresh
conversations, and the recovery curve by time since the rollback.

Estimands (each metric as defined in :mod:`analysis.metrics.definitions`, on events at or after
the end of the experiment — every event of the after-end phase, tagged or not):

- ``exposed`` − ``never_exposed``: the difference between units that were served a rolled-back
  revision during the experiment and units that never were (the control arm's units and units
  that were not in the experiment). This is an observational contrast once the experiment has
  ended — the exposed units were randomized in, but who keeps coming back after the rollback is
  not — so read it as a residual-effect *indicator*, not a causal estimate;
- ``exposed_tainted`` − ``never_exposed``: after-end turns of exposed units in conversations that
  hold turns served (or answered from cache) by a rolled-back revision;
- ``exposed_fresh`` − ``never_exposed``: after-end turns of exposed units in other conversations;
- the same per time bin since the rollback (the recovery curve), with Welch / delta-method CIs.

The exposed cohort is *back within the margin* from the first time bin after which, in every bin,
the estimated difference lies inside ``[−margin, +margin]`` and is not significant at ``alpha``
(default margin: 5% of the never-exposed overall value). This is a practical reading of a
noisy curve, not an equivalence test: bins are small, so a strict equivalence criterion (whole
CI inside the margin) rarely holds; bins with fewer than two units in a group are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import narwhals as nw

from analysis.events import _engines

__all__ = ["GROUPS", "RecoveryRow", "RecoverySummaryRow", "after_end_events", "recovered_after"]

GROUPS = ("exposed", "exposed_tainted", "exposed_fresh")
REFERENCE = "never_exposed"


class RecoveryRow(NamedTuple):
    """One comparison of an exposed group with the never-exposed units after the rollback.

    Attributes:
        metric: Metric name.
        group: ``exposed``, ``exposed_tainted`` or ``exposed_fresh``.
        reference: ``never_exposed``.
        bin: Time bin since the rollback (0 = the first ``bin_hours``); None for all bins.
        hours_since_end: Start of the bin in hours after the rollback (0 for all bins).
        bin_start: Start of the bin (the rollback instant for all bins).
        n_group: Units of the group in the bin.
        n_reference: Never-exposed units in the bin.
        group_mean: The metric in the group.
        reference_mean: The metric in the reference.
        effect: group − reference.
        effect_ci_lower: Lower bound.
        effect_ci_upper: Upper bound.
        pvalue: Two-sided p-value of no difference.
        margin: The equivalence margin of the metric.
        within_margin: ``|effect| < margin`` and not significant at ``alpha``.
    """

    metric: str
    group: str
    reference: str
    bin: int | None
    hours_since_end: float
    bin_start: datetime
    n_group: int
    n_reference: int
    group_mean: float
    reference_mean: float
    effect: float
    effect_ci_lower: float
    effect_ci_upper: float
    pvalue: float
    margin: float
    within_margin: bool


class RecoverySummaryRow(NamedTuple):
    """When an exposed group is back within the margin of the never-exposed units.

    Attributes:
        metric: Metric name.
        group: Exposed group.
        margin: Equivalence margin (absolute, the metric's unit).
        overall_effect: group − reference over the whole after-end window.
        recovered_after_hours: Hours after the rollback from which every bin is within the
            margin; None when that never happens in the data.
        recovered_at: The corresponding instant, or None.
    """

    metric: str
    group: str
    margin: float
    overall_effect: float
    recovered_after_hours: float | None
    recovered_at: datetime | None


def after_end_events(
    frame: nw.LazyFrame[Any],
    *,
    unit: str,
    end: datetime,
    after_phase: int,
    exposure_phases: Sequence[int],
    rolled_back: Sequence[str],
    bin_width: timedelta,
    has_conversations: bool,
    has_response_revision: bool,
    conversation: str = "conversation_id",
) -> nw.LazyFrame[Any]:
    """After-end events with ``group`` (exposed groups and ``never_exposed``) and ``bin``.

    Events of exposed units appear twice: once in ``exposed`` and once in ``exposed_tainted``
    or ``exposed_fresh`` (the groups are compared with the reference one at a time).
    ``conversation``: the column identifying conversations (the split's conversation key: on
    polars the 64-bit hash ``__ck``, whose table of tainted conversations is far smaller than
    one of the id strings).
    """
    rolled = list(rolled_back)
    served_rolled = nw.col("served_revision").is_in(rolled)
    if has_response_revision:
        served_rolled = served_rolled | nw.col("response_revision_id").is_in(rolled).fill_null(
            value=False
        )
    exposed_units = (
        frame.filter(
            nw.col("phase").is_in(list(exposure_phases)) & nw.col("served_revision").is_in(rolled)
        )
        .select(unit)
        .unique()
        .with_columns(nw.lit(value=True).alias("_exposed"))
    )
    after = frame.filter(nw.col("phase") == after_phase).join(exposed_units, on=unit, how="left")
    exposed = nw.col("_exposed").fill_null(value=False)
    if has_conversations:
        tainted = (
            frame.filter(
                (nw.col("ts") < nw.lit(end)) & served_rolled & ~nw.col(conversation).is_null()
            )
            .select(conversation)
            .unique()
            .with_columns(nw.lit(value=True).alias("_tainted"))
        )
        after = after.join(tainted, on=conversation, how="left")
        detail = (
            nw.when(exposed & nw.col("_tainted").fill_null(value=False))
            .then(nw.lit("exposed_tainted"))
            .otherwise(nw.when(exposed).then(nw.lit("exposed_fresh")).otherwise(nw.lit(REFERENCE)))
        )
    else:
        detail = nw.when(exposed).then(nw.lit("exposed_fresh")).otherwise(nw.lit(REFERENCE))
    minutes = bin_width.total_seconds() / 60.0
    after = _engines.with_minutes_since(after, "ts", end, "_minutes")
    after = after.with_columns(
        (nw.col("_minutes") / minutes).floor().cast(nw.Int64).alias("bin")
    ).drop("_minutes")
    return nw.concat(
        [
            after.with_columns(detail.alias("group")),
            after.filter(exposed).with_columns(nw.lit("exposed").alias("group")),
        ],
        how="vertical",
    ).drop("_exposed", *(["_tainted"] if has_conversations else []))


def recovered_after(rows: Sequence[RecoveryRow]) -> int | None:
    """First bin from which every later bin with an estimate is within the margin."""
    binned = sorted(
        (r for r in rows if r.bin is not None and not math.isnan(r.effect_ci_lower)),
        key=lambda r: r.bin if r.bin is not None else -1,
    )
    if not binned:
        return None
    first: int | None = None
    for r in binned:
        if r.within_margin:
            if first is None:
                first = r.bin
        else:
            first = None
    return first
