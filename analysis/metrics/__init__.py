"""Metrics and clean per-arm effects.

Modules:

- :mod:`~analysis.metrics.definitions` — :class:`Mean`, :class:`Ratio`, :class:`Proportion`,
  :class:`Quantile` and the metrics file.
- :mod:`~analysis.metrics._inference` — :func:`infer_metrics`: metrics from an export's schema
  when the user names none (never the sample's).
- :mod:`~analysis.metrics.aggregation` — the one-pass, lazy aggregation to sufficient statistics.
- :mod:`~analysis.metrics.analyzing` — :func:`analyze`: per phase, combined, naive vs clean,
  SRM, explain, missing values, regressions (the lazy plan in ``_plan``, the statistics in
  ``_estimates`` and, for the time-stratified clean estimates, ``_stratified``).
- :mod:`~analysis.metrics.results` — :class:`AnalysisResult` and its row types.
- :mod:`~analysis.metrics.recovery` — recovery after a rollback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis._lazy import attach

_EXPORTS: dict[str, str] = {
    "Mean": ".definitions",
    "Metric": ".definitions",
    "MomentMetric": ".definitions",
    "Proportion": ".definitions",
    "Quantile": ".definitions",
    "Ratio": ".definitions",
    "load_metrics": ".definitions",
    "InferredMetrics": "._inference",
    "infer_metrics": "._inference",
    "EFFECT_COLUMNS": ".results",
    "AnalysisResult": ".results",
    "EffectRow": ".results",
    "ExclusionRow": ".results",
    "ExplainRow": ".results",
    "MissingRow": ".results",
    "SRMRow": ".results",
    "SegmentRow": ".results",
    "HeterogeneityRow": ".results",
    "FirstLookRow": ".results",
    "LookRow": ".results",
    "analyze": ".analyzing",
    "default_metrics": ".analyzing",
    "CompletenessRow": "._completeness",
    "ExperimentsResult": "._experiments",
    "analyze_experiments": "._experiments",
    "RecoveryRow": ".recovery",
    "RecoverySummaryRow": ".recovery",
}

__all__ = [
    "EFFECT_COLUMNS",
    "AnalysisResult",
    "CompletenessRow",
    "EffectRow",
    "ExclusionRow",
    "ExperimentsResult",
    "ExplainRow",
    "FirstLookRow",
    "HeterogeneityRow",
    "InferredMetrics",
    "LookRow",
    "Mean",
    "Metric",
    "MissingRow",
    "MomentMetric",
    "Proportion",
    "Quantile",
    "Ratio",
    "RecoveryRow",
    "RecoverySummaryRow",
    "SRMRow",
    "SegmentRow",
    "analyze",
    "analyze_experiments",
    "default_metrics",
    "infer_metrics",
    "load_metrics",
]

__getattr__, __dir__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from analysis.metrics._completeness import CompletenessRow
    from analysis.metrics._experiments import ExperimentsResult, analyze_experiments
    from analysis.metrics._inference import InferredMetrics, infer_metrics
    from analysis.metrics.analyzing import analyze, default_metrics
    from analysis.metrics.definitions import (
        Mean,
        Metric,
        MomentMetric,
        Proportion,
        Quantile,
        Ratio,
        load_metrics,
    )
    from analysis.metrics.recovery import (
        RecoveryRow,
        RecoverySummaryRow,
    )
    from analysis.metrics.results import (
        EFFECT_COLUMNS,
        AnalysisResult,
        EffectRow,
        ExclusionRow,
        ExplainRow,
        FirstLookRow,
        HeterogeneityRow,
        LookRow,
        MissingRow,
        SegmentRow,
        SRMRow,
    )
