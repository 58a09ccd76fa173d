"""Shared pieces of the report's figures: style, colours, time axis, boundaries, legends.

Split out of :mod:`analysis.reporting.plots` (which re-exports :data:`PLOTS` and :func:`style`).
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from analysis.ledger import Phase

#: The report's figures, by name, in the order the report shows them.
PLOTS = (
    "metric_by_time",
    "contamination",
    "effects",
    "exposure_days",
    "segments",
    "recovery",
    "cache",
    "baselines",
)

#: Matplotlib settings of every figure (applied with ``rc_context`` while building and saving).
STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "svg.fonttype": "none",
    "svg.hashsalt": "promptstate",
    "path.simplify": True,
}

ARM_COLORS = ("#1f5fa8", "#e07b1a", "#2a9d55", "#9b59b6", "#c0392b")
UNTAGGED_COLOR = "#9a9a9a"
AFTER_END_COLOR = "#f3d9d6"
LABEL_COLORS: dict[str, str] = {
    "clean": "#7fb77e",
    "carryover": "#f2c14e",
    "prior_conversation": "#e8dab2",
    "stale_cache": "#f78154",
    "served_mismatch": "#b56576",
    "crossover": "#6d597a",
    "after_end": "#d1495b",
    "outside_window": "#bdbdbd",
}
GROUP_COLORS: dict[str, str] = {
    "exposed": "#444444",
    "exposed_tainted": "#d1495b",
    "exposed_fresh": "#1f5fa8",
}


#: What matplotlib said while the figures were imported, built or saved (its logging warnings,
#: e.g. "created a temporary cache directory", and its Python warnings): kept here for
#: ``--debug``-style inspection instead of being printed on the report's stderr.
MATPLOTLIB_MESSAGES: deque[str] = deque(maxlen=100)


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        MATPLOTLIB_MESSAGES.append(record.getMessage())


@contextmanager
def quiet_matplotlib() -> Iterator[None]:
    """Keep matplotlib's own messages off stderr while the report imports, draws and saves.

    A scheduled report must not print "Matplotlib created a temporary cache directory ..." (a
    cron job's unwritable ``HOME``), "Matplotlib is building the font cache ..." (a first run)
    or a layout ``UserWarning`` on every run: they go to :data:`MATPLOTLIB_MESSAGES` instead.
    Only drawing code runs inside the block, so every Python warning caught there is
    matplotlib's (its ``warn_external`` points the warning at the caller, so the file name
    cannot tell).
    """
    logger = logging.getLogger("matplotlib")
    handler = _Collect(logging.WARNING)
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        MATPLOTLIB_MESSAGES.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


@contextmanager
def style() -> Iterator[None]:
    """The figures' matplotlib settings, restored on exit (no global state is left changed);
    matplotlib's own messages are kept off stderr (:func:`quiet_matplotlib`)."""
    with quiet_matplotlib():
        import matplotlib as mpl

        with mpl.rc_context(STYLE):  # type: ignore[arg-type]
            yield


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _arm_colors(arms: Sequence[str]) -> dict[str, str]:
    out = {a: ARM_COLORS[i % len(ARM_COLORS)] for i, a in enumerate(arms)}
    out["untagged"] = UNTAGGED_COLOR
    return out


def _time_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(tz=UTC, minticks=3)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=UTC))


def _boundaries(
    ax: Axes, phases: Sequence[Phase], *, label: bool = True, end: datetime | None = None
) -> None:
    """Dashed lines at each boundary (labelled with its action) and the after-end shading."""
    for p in phases:
        if p.start is None or p.start_action is None:
            continue
        ax.axvline(_x(p.start), color="#555555", linestyle="--", linewidth=0.9, zorder=1)
        if label:
            ax.annotate(
                p.start_action,
                xy=(p.start, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -2),
                textcoords="offset points",
                va="top",
                ha="left",
                fontsize=7,
                color="#333333",
            )
        stop = p.end or end
        if p.kind == "after_end" and stop is not None and stop > p.start:
            ax.axvspan(_x(p.start), _x(stop), color=AFTER_END_COLOR, zorder=0, lw=0)


def _x(at: datetime) -> float:
    """A time as matplotlib's date number (typed calls of ``axvline`` etc. want floats)."""
    import matplotlib.dates as mdates

    return float(mdates.date2num(at))


def _legend(ax: Axes, **kwargs: Any) -> None:
    """A legend for the labelled artists of ``ax``; none (and no warning) when there are none."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kwargs)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])
