"""Clean per-arm effects: :func:`analyze` and its result types.

(Transitional re-export: the implementation currently lives in ``analysis/analyze.py``; it moves
here so that the module name does not shadow the ``analysis.analyze`` function.)
"""

from __future__ import annotations

from analysis.analyze import AnalysisResult, EffectRow, analyze, default_metrics

__all__ = ["AnalysisResult", "EffectRow", "analyze", "default_metrics"]
