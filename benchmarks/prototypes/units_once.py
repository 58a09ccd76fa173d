"""Prototype: compute the clean per-stratum × unit table once, not twice.

``analysis.metrics._plan.build_plan`` keeps ``units`` (per phase × stratum × arm × unit
aggregates of the clean events, with the pre-period covariates joined in) lazy; the first
``collect_all`` reduces it to per-stratum moments and the second pass
(``_plan.influence_plan``) reads it again — recomputing the per-unit aggregation and the
pre-period join over every event of the export. This prototype collects ``units`` once
(streaming; a few rows per enrolled unit) and builds both passes on the collected table.
Executed by ``bench_e2e.py --patch`` (nothing in the package is edited).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import narwhals as nw

from analysis.metrics import _plan
from analysis.metrics import aggregation as agg

_original = _plan.build_plan


def build_plan(ctx: Any, fr: Any) -> Any:
    """``_plan.build_plan`` with ``units`` collected once and both passes built on it."""
    plan = _original(ctx, fr)
    if not plan.units.implementation.is_polars():
        return plan
    units = nw.from_native(plan.units.to_native().collect(engine="streaming").lazy())
    frames = dict(plan.frames)
    frames["strata"] = agg.group_moments(units, ["phase", "stratum", "arm"], ctx.metrics)
    return dataclasses.replace(plan, frames=frames, units=units)


_plan.build_plan = build_plan
