"""The report's figure of the clean effect by days since each unit's first exposure.

Draws :attr:`analysis.metrics.results.AnalysisResult.by_exposure_day` (fresh units, compared
within the exposure phases, descriptive): one line per treatment arm with its 95% interval, the
combined clean effect as a dashed reference. An effect that fades or grows with exposure
(novelty, learning) shows as a slope; later days hold fewer units and wider intervals.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from analysis.reporting._plotkit import _arm_colors, _empty, _figure, _legend, style

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from analysis.metrics.results import AnalysisResult

__all__ = ["plot_effect_by_exposure_day"]


def plot_effect_by_exposure_day(
    result: AnalysisResult, metric: str, ax: Axes | None = None
) -> Figure:
    """The clean effect of ``metric`` by whole days since the unit's first exposure.

    Args:
        result: An :func:`~analysis.metrics.analyzing.analyze` result.
        metric: The metric's name (a moment metric; quantiles have no rows).
        ax: Draw into this axes (its figure is returned); a new figure otherwise.

    Returns:
        The figure.
    """
    rows: list[Any] = [
        r for r in result.by_exposure_day.rows if getattr(r, "metric", None) == metric
    ]
    effects: list[Any] = list(result.effects.rows)
    combined = {
        r.arm: r.effect
        for r in effects
        if (r.analysis, r.phase, r.metric) == ("clean", "combined", metric)
    }
    with style():
        fig: Any
        if ax is None:
            fig = _figure(5.0, 3.0)
            ax = fig.subplots()
        else:
            fig = ax.figure
        assert ax is not None
        if not rows:
            _empty(ax, f"no effect by exposure day for {metric}")
            ax.set_title(metric)
            return fig
        arms = list(dict.fromkeys(r.arm for r in rows))
        colors = _arm_colors(arms)
        ax.axhline(0, color="#333333", lw=0.8)
        for k, arm in enumerate(arms):
            pts = sorted((r for r in rows if r.arm == arm), key=lambda r: r.day)
            pts = [r for r in pts if math.isfinite(r.effect)]
            shift = (k - (len(arms) - 1) / 2) * 0.08
            xs = [r.day + shift for r in pts]
            ax.errorbar(
                xs,
                [_r(r.effect) for r in pts],
                yerr=[
                    [_r(r.effect - r.effect_ci_lower) for r in pts],
                    [_r(r.effect_ci_upper - r.effect) for r in pts],
                ],
                color=colors[arm],
                marker="o",
                ms=3.5,
                lw=1.2,
                capsize=2,
                label=f"{arm} − {result.control}",
            )
            if arm in combined and math.isfinite(combined[arm]):
                ax.axhline(_r(combined[arm]), color=colors[arm], ls="--", lw=0.8, alpha=0.7)
        ax.set_xlabel("days since the unit's first exposure (fresh units)")
        ax.set_ylabel("clean effect")
        ax.set_title(metric)
        days = sorted({r.day for r in rows})
        ax.set_xticks(days)
        _legend(ax, loc="best")
    return fig


def _r(value: float) -> float:
    """``value`` to 10 significant digits: sums computed in parallel differ in their last bits
    from run to run, and the figure (its SVG in the report) must not."""
    return float(f"{value:.10g}")
