"""The report's forest plot of the clean effect by segment.

Draws the combined rows of :attr:`analysis.metrics.results.AnalysisResult.segments` for one
metric: one line per segment column × value (fixed at each unit's first exposure) with its 95%
interval, one colour per treatment arm, the experiment's combined clean effect as a dashed
reference and zero as a solid line. Each column's Cochran test p-value is in its labels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from analysis.reporting._plot_exposure import _r
from analysis.reporting._plotkit import _arm_colors, _empty, _figure, _legend, style

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from analysis.metrics.results import AnalysisResult

__all__ = ["plot_segments", "segment_metric"]


def segment_metric(result: AnalysisResult, preferred: str) -> str:
    """The metric of the forest plot: ``preferred`` when it has segment rows, else the first
    metric that has."""
    names = list(dict.fromkeys(getattr(r, "metric", "") for r in result.segments.rows))
    return preferred if preferred in names or not names else names[0]


def plot_segments(result: AnalysisResult, metric: str, ax: Axes | None = None) -> Figure:
    """Forest plot of the combined clean effect of ``metric`` per segment value.

    Args:
        result: An :func:`~analysis.metrics.analyzing.analyze` result with ``segments=``.
        metric: The metric's name.
        ax: Draw into this axes (its figure is returned); a new figure otherwise.

    Returns:
        The figure.
    """
    rows: list[Any] = [
        r
        for r in result.segments.rows
        if getattr(r, "metric", None) == metric and getattr(r, "phase", None) == "combined"
    ]
    tests: list[Any] = list(result.segment_heterogeneity.rows)
    effects: list[Any] = list(result.effects.rows)
    het = {
        (r.segment, r.arm): r.pvalue
        for r in tests
        if (getattr(r, "metric", None), getattr(r, "phase", None)) == (metric, "combined")
    }
    overall = {
        r.arm: r.effect
        for r in effects
        if (r.analysis, r.phase, r.metric) == ("clean", "combined", metric)
    }
    labels = list(dict.fromkeys((r.segment, r.segment_value) for r in rows))
    with style():
        fig: Any
        if ax is None:
            fig = _figure(5.5, 1.2 + 0.28 * max(len(labels), 1))
            ax = fig.subplots()
        else:
            fig = ax.figure
        assert ax is not None
        if not rows:
            _empty(ax, f"no segment rows for {metric}")
            ax.set_title(metric)
            return fig
        arms = list(dict.fromkeys(r.arm for r in rows))
        colors = _arm_colors(arms)
        position = {key: len(labels) - 1 - i for i, key in enumerate(labels)}
        ax.axvline(0, color="#333333", lw=0.8)
        for k, arm in enumerate(arms):
            shift = (k - (len(arms) - 1) / 2) * 0.18
            pts = [r for r in rows if r.arm == arm and math.isfinite(r.effect)]
            ax.errorbar(
                [_r(r.effect) for r in pts],
                [position[(r.segment, r.segment_value)] + shift for r in pts],
                xerr=[
                    [_r(r.effect - r.effect_ci_lower) for r in pts],
                    [_r(r.effect_ci_upper - r.effect) for r in pts],
                ],
                color=colors[arm],
                fmt="o",
                ms=3.5,
                lw=1.2,
                capsize=2,
                label=f"{arm} − {result.control}",
            )
            if arm in overall and math.isfinite(overall[arm]):
                ax.axvline(_r(overall[arm]), color=colors[arm], ls="--", lw=0.8, alpha=0.7)
        ticks = []
        for segment, value in labels:
            p = [het[(segment, a)] for a in arms if (segment, a) in het]
            tag = f" (Q p={min(p):.2g})" if p and value == labels_first(labels, segment) else ""
            ticks.append(f"{segment}: {value}{tag}")
        ax.set_yticks([position[key] for key in labels])
        ax.set_yticklabels(ticks)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_xlabel("clean combined effect, 95% interval (dashed: all units)")
        ax.set_title(metric)
        ax.grid(axis="y", visible=False)
        _legend(ax, loc="best")
    return fig


def labels_first(labels: list[tuple[str, str]], segment: str) -> str:
    """The first value of ``segment`` among ``labels`` (its line carries the column's test)."""
    return next(v for s, v in labels if s == segment)
