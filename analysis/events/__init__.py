"""Event exports: loading from any engine, and the contamination split.

Modules:

- :mod:`~analysis.events.loading` — reading files, directories, globs and in-memory frames
  (pandas, polars, pyarrow, DuckDB, PySpark) through narwhals; column maps; validation;
  duplicate ids.
- :mod:`~analysis.events._engines` (private) — the few steps that differ per engine (collects,
  small tables, grouping keys, duplicate ids, materializing the labelled events).
- :mod:`~analysis.events.labelling` — :func:`split`: one phase and one contamination label per
  event, and :func:`contamination_summary`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis._lazy import attach

_EXPORTS: dict[str, str] = {
    "CANONICAL_COLUMNS": ".loading",
    "REQUIRED_COLUMNS": ".loading",
    "Events": ".loading",
    "LoadReport": ".loading",
    "load_events": ".loading",
    "CONTAMINATED": ".labelling",
    "LABELS": ".labelling",
    "ContaminationSummary": ".labelling",
    "LabelTotal": ".labelling",
    "SplitResult": ".labelling",
    "SummaryRow": ".labelling",
    "clean": ".labelling",
    "contamination_summary": ".labelling",
    "split": ".labelling",
}

__all__ = [
    "CANONICAL_COLUMNS",
    "CONTAMINATED",
    "LABELS",
    "REQUIRED_COLUMNS",
    "ContaminationSummary",
    "Events",
    "LabelTotal",
    "LoadReport",
    "SplitResult",
    "SummaryRow",
    "clean",
    "contamination_summary",
    "load_events",
    "split",
]

__getattr__, __dir__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from analysis.events.labelling import (
        CONTAMINATED,
        LABELS,
        ContaminationSummary,
        LabelTotal,
        SplitResult,
        SummaryRow,
        clean,
        contamination_summary,
        split,
    )
    from analysis.events.loading import (
        CANONICAL_COLUMNS,
        REQUIRED_COLUMNS,
        Events,
        LoadReport,
        load_events,
    )
