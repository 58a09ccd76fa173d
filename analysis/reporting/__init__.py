"""The batch report, its HTML/Markdown renderings and its plots.

Modules:

- :mod:`~analysis.reporting.batch` — :func:`report` and :class:`Report`.
- :mod:`~analysis.reporting._multi` — :class:`MultiReport`: every active experiment (overview
  and one section each), what :func:`report` returns without an experiment over a ledger of
  several experiments.
- :mod:`~analysis.reporting.plots` — the ``plot_*`` functions (matplotlib figures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis._lazy import attach

_EXPORTS: dict[str, str] = {
    "ATTENTION_KINDS": ".batch",
    "Attention": ".batch",
    "BaselineStatus": ".batch",
    "ContractStatus": ".batch",
    "MultiReport": "._multi",
    "Report": ".batch",
    "report": ".batch",
    "plot_baseline_history": ".plots",
    "plot_cache": ".plots",
    "plot_contamination": ".plots",
    "plot_effects": ".plots",
    "plot_metric_by_time": ".plots",
    "plot_recovery": ".plots",
}

__all__ = [
    "ATTENTION_KINDS",
    "Attention",
    "BaselineStatus",
    "ContractStatus",
    "MultiReport",
    "Report",
    "plot_baseline_history",
    "plot_cache",
    "plot_contamination",
    "plot_effects",
    "plot_metric_by_time",
    "plot_recovery",
    "report",
]

__getattr__, __dir__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from analysis.reporting._multi import MultiReport
    from analysis.reporting.batch import (
        ATTENTION_KINDS,
        Attention,
        BaselineStatus,
        ContractStatus,
        Report,
        report,
    )
    from analysis.reporting.plots import (
        plot_baseline_history,
        plot_cache,
        plot_contamination,
        plot_effects,
        plot_metric_by_time,
        plot_recovery,
    )
