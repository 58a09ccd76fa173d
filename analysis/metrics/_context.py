"""What one run of :func:`~analysis.metrics.analyzing.analyze` works on: the experiment, its
phases, the unit key, the metrics and the options.

:class:`_Context` is read by both halves of the analysis, :mod:`analysis.metrics._plan` (the lazy
frames) and :mod:`analysis.metrics._estimates` (the statistics), which do not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import narwhals as nw

from analysis.errors import PromptstateError
from analysis.events.loading import CANONICAL_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    from analysis.events.labelling import SplitResult
    from analysis.ledger import Experiment, Phase
    from analysis.metrics.definitions import Metric

__all__ = ["_Context", "make_context"]


@dataclass(frozen=True)
class _Context:
    """One analysis run.

    Attributes:
        experiment: The experiment.
        control: Its control arm.
        arms: Its treatment arms.
        phases: Its phases.
        exposure: Ids of the exposure phases.
        unit: The split's unit key (a 64-bit hash of the unit id on polars).
        names: Columns of the labelled events.
        metrics: The metrics (with their winsorizing bounds once
            :func:`~analysis.metrics._plan.winsorized` has run).
        options: The options of :func:`~analysis.metrics.analyzing.analyze` (``alpha``, ...).
        strata: The time strata of the clean analysis, in time order: ``(phase id, first
            instant)`` of each block (:func:`~analysis.metrics._plan.block_starts`); stratum
            ``s`` runs from its start to the next one's.
    """

    experiment: Experiment
    control: str
    arms: tuple[str, ...]
    phases: tuple[Phase, ...]
    exposure: tuple[int, ...]
    unit: str
    names: frozenset[str]
    metrics: tuple[Metric, ...]
    options: Mapping[str, Any]
    strata: tuple[tuple[int, datetime], ...] = ()


def make_context(
    res: SplitResult, metrics: tuple[Metric, ...], options: Mapping[str, Any]
) -> _Context:
    """The context of a run on the split ``res``.

    Raises:
        PromptstateError: a metric reads a column the events do not have, or one that is not
            numeric or boolean.
    """
    exp = res.experiment
    schema = res.frame.collect_schema()
    names = set(schema.names())
    missing = sorted({c for m in metrics for c in m.columns} - names)
    if missing:
        raise PromptstateError(
            f"metrics read column(s) {', '.join(missing)} that the export does not have; "
            f"it has: {', '.join(sorted(names))}"
        )
    # ids and the split's own columns are never metrics (a mean of integer user ids is a number,
    # but not a measurement)
    reserved = {*CANONICAL_COLUMNS, exp.unit, res.unit_key, "phase", "contamination"}
    reserved |= {"served_revision"}
    for m in metrics:
        for c in m.columns:
            if c in reserved or c.startswith("__"):
                raise PromptstateError(
                    f"metric {m.label!r} reads column {c!r}, an id or a column of the split: "
                    "give a measured column (e.g. helpfulness, latency_ms, cost_usd)"
                )
            dtype = schema[c]
            if not (dtype.is_numeric() or dtype in (nw.Boolean, nw.Unknown)):
                raise PromptstateError(
                    f"metric {m.label!r} reads column {c!r}, which holds {dtype} values: give "
                    "a numeric or boolean column (null, NaN and inf values are allowed and "
                    "left out)"
                )
    return _Context(
        experiment=exp,
        control=exp.control,
        arms=exp.treatment_arms,
        phases=tuple(res.phases),
        exposure=tuple(p.id for p in res.phases if p.kind == "exposure"),
        unit=res.unit_key,
        names=frozenset(names),
        metrics=metrics,
        options=options,
    )
