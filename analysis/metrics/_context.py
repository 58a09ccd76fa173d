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

from analysis.metrics._inference import check_metric_columns, reserved_columns

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
    # ids and the split's own columns are never metrics (a mean of integer user ids is a number,
    # but not a measurement)
    check_metric_columns(
        metrics,
        schema,
        where=res.load_report.source,
        reserved=reserved_columns(exp.unit, res.unit_key),
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
