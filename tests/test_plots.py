"""The figure functions of :mod:`analysis.reporting.plots`: each returns a Figure with labelled axes,
built without pyplot's global state, from the API's results."""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from analysis.events.labelling import contamination_summary, split
from analysis.metrics import analyze
from analysis.metrics.definitions import load_metrics
from analysis.reporting import plots

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"


@pytest.fixture(scope="module")
def sample_split() -> Any:
    return split(SAMPLES / "events.parquet", SAMPLES / "ledger.yaml")


@pytest.fixture(scope="module")
def result(sample_split: Any) -> Any:
    return analyze(sample_split, metrics=load_metrics(SAMPLES / "metrics.yaml"))


def _check(fig: Figure, *, time_axis: bool = False) -> None:
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.has_data()]
    assert axes, "the figure has no data"
    assert any(ax.get_ylabel() for ax in axes), "the y axis is labelled (with its unit)"
    assert any(ax.get_xlabel() for ax in axes), "the x axis is labelled"
    if time_axis:
        assert any("UTC" in ax.get_xlabel() for ax in axes)


def test_no_pyplot_state() -> None:
    # building figures must not import pyplot (no global figure registry to leak into)
    before = set(sys.modules)
    plots.draw_effects([])
    assert "matplotlib.pyplot" not in set(sys.modules) - before


def test_metric_by_time(sample_split: Any) -> None:
    metrics = load_metrics(SAMPLES / "metrics.yaml")
    fig = plots.plot_metric_by_time(sample_split, metrics)
    _check(fig, time_axis=True)
    assert len(fig.axes) == len(metrics)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert {"start", "ramp", "rollback"} <= set(labels)  # boundaries are labelled


def test_contamination(sample_split: Any) -> None:
    summary = contamination_summary(sample_split)
    fig = plots.plot_contamination(summary)
    _check(fig)
    counts = {t.get_text() for ax in fig.axes for t in ax.texts}
    # bar totals are written on the bars
    for arm in ("control", "treatment"):
        total = sum(r.n_events for r in summary.rows if r.arm == arm and r.phase == 3)
        assert f"{total:,}" in counts
    _check(plots.plot_contamination(sample_split))


def test_effects(result: Any) -> None:
    fig = plots.plot_effects(result)
    _check(fig)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(ticks) == len(result.effects.rows)
    assert "helpfulness: naive (dashboard)" in ticks
    assert "%" in fig.axes[0].get_xlabel()


def test_recovery(result: Any) -> None:
    fig = plots.plot_recovery(result)
    _check(fig)
    assert len(fig.axes) == len({r.metric for r in result.recovery.rows})
    assert all(ax.get_xlabel() == "hours since rollback" for ax in fig.axes)


def test_cache(sample_split: Any) -> None:
    fig = plots.plot_cache(sample_split)
    _check(fig)
    assert len(fig.axes) == 6  # 2 rows × 3 boundaries
    assert "(%)" in fig.axes[0].get_ylabel()


def _legend_texts(fig: Figure) -> set[str]:
    return {t.get_text() for leg in fig.legends for t in leg.get_texts()}


def _overlapping_texts(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of visible texts of the axes (annotations, tick labels) whose boxes overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        texts = [*ax.texts, *ax.get_xticklabels(), *ax.get_yticklabels()]
        for child in ax.get_children():  # the transition labels of the secondary x axis
            if hasattr(child, "get_xticklabels") and child is not ax:
                texts += list(child.get_xticklabels())
        for t in texts:
            if t.get_visible() and t.get_text():
                boxes.append((t.get_text(), t.get_window_extent(renderer)))
    return [
        (a, b)
        for i, (a, box_a) in enumerate(boxes)
        for b, box_b in boxes[i + 1 :]
        if box_a.overlaps(box_b)
    ]


def test_baseline_history(tmp_path: Path, ledger: Any) -> None:
    from analysis.evals.store import BaselineStore

    fig = plots.plot_baseline_history(ROOT / "baselines", ledger)
    _check(fig, time_axis=True)
    assert "stale: reference of a reverted revision" in _legend_texts(fig)
    assert _overlapping_texts(fig) == []
    store = tmp_path / "store"
    shutil.copytree(ROOT / "baselines", store)
    BaselineStore(store).sync(ledger)
    fig = plots.plot_baseline_history(store, ledger)
    texts = {t.get_text() for t in fig.axes[0].texts}
    # the stale span (rollback → sync) stays in the history; the revert entry ends it
    assert any(t.startswith("revert v0001 (r42→r41)") for t in texts)
    assert _overlapping_texts(fig) == []


def test_baseline_history_axis_ignores_the_init_stamp(tmp_path: Path, ledger: Any) -> None:
    """A suite created today (``init`` at the real clock) does not stretch a 2026-11 story."""
    import matplotlib.dates as mdates

    from analysis.evals.models import SuiteConfig
    from analysis.evals.store import BaselineStore

    evals = ROOT / "data_samples" / "evals"
    store = BaselineStore(tmp_path / "store")
    suite = store.init("qa", SuiteConfig.load(evals / "support-qa.suite.yaml"))
    at = datetime(2026, 10, 28, 14, tzinfo=UTC)
    suite.anchor("r41", evals / "support-qa" / "r41.csv", at=at)
    assert suite.journal()[0].at > datetime(2026, 11, 20, tzinfo=UTC)  # stamped by the clock
    fig = plots.plot_baseline_history(store, ledger)
    lo, hi = (mdates.num2date(x) for x in fig.axes[0].get_xlim())
    assert hi - lo < timedelta(days=14)
    assert lo < at < hi


def test_empty_inputs_do_not_fail() -> None:
    for fig in (
        plots.draw_effects([]),
        plots.draw_recovery([]),
        plots.draw_cache([], []),
        plots.draw_baseline_history({}, {}, None),
    ):
        assert isinstance(fig, Figure)
