"""The report's figures, also for notebooks: each function returns a matplotlib ``Figure``.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``, so no global
figure registry and nothing to close); in a notebook, return it from a cell to show it, or
``fig.savefig("x.svg")``. One style for all: arms keep their colour across plots (control blue,
treatment orange, untagged grey), rollout boundaries are dashed lines labelled with their action,
the after-end phase is shaded, axes carry units, times are UTC.

=========================  ===============================================================
function                   shows
=========================  ===============================================================
plot_metric_by_time        each metric per hour and arm tag, boundaries, after-end shaded
plot_contamination         events by phase × label per arm (stacked bars, with counts)
plot_effects               naive vs clean relative effects with 95% CIs (forest plot)
plot_recovery              exposed (tainted / fresh) − never-exposed by hours since rollback
plot_cache                 prompt-cache hit rate and cost per event around each boundary
plot_baseline_history      eval baseline journal per suite on a time line with the ledger
=========================  ===============================================================
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analysis.evals.store import BaselineStore
    from analysis.events.labelling import ContaminationSummary, SplitResult
    from analysis.ledger import Ledger, Phase
    from analysis.metrics import AnalysisResult
    from analysis.metrics.definitions import Metric
    from analysis.reporting._data import CacheRow, TimeRow

__all__ = [
    "PLOTS",
    "STYLE",
    "plot_baseline_history",
    "plot_cache",
    "plot_contamination",
    "plot_effects",
    "plot_metric_by_time",
    "plot_recovery",
]

from analysis.reporting._plotkit import (
    ARM_COLORS,
    GROUP_COLORS,
    LABEL_COLORS,
    PLOTS,
    STYLE,
    _arm_colors,
    _boundaries,
    _empty,
    _figure,
    _legend,
    _time_axis,
    _x,
    style,
)

# ------------------------------------------------------------------------------------------
# metric by time


def plot_metric_by_time(
    split: SplitResult,
    metrics: Sequence[Metric] | None = None,
    *,
    bin_minutes: int = 60,
) -> Figure:
    """Each metric per time bin and arm tag, with the rollout boundaries and after-end shaded.

    Values are event-level per bin (ratio of sums, mean per event, share of events, or the
    quantile); the band is an event-level 95% interval, which ignores that a unit's turns are
    correlated — read the shape here and the inference in the effects table.

    Args:
        split: The experiment's :class:`~analysis.events.labelling.SplitResult`.
        metrics: Metrics to plot (default: inferred from the export's columns,
            :func:`analysis.metrics.infer_metrics`).
        bin_minutes: Bin width.
    """
    from analysis.metrics import infer_metrics
    from analysis.reporting import _data as data

    ms = tuple(metrics) if metrics is not None else infer_metrics(split).metrics
    (rows,) = data.collect(
        [data.timeseries_frame(split.frame, split.experiment.id, ms, bin_minutes=bin_minutes)]
    )
    return draw_metric_by_time(
        data.timeseries_rows(rows, ms, bin_minutes=bin_minutes),
        split.phases,
        tuple(split.experiment.arms),
        ms,
    )


def _metric_unit(metric: Metric) -> str:
    from analysis.reporting._data import measured_by_time

    return measured_by_time(metric)


def _gaps(rows: Sequence[TimeRow], min_events: int) -> list[TimeRow]:
    """Rows in time order with a NaN row wherever bins are missing or too thin (breaks lines)."""
    if not rows:
        return []
    ordered = sorted(rows, key=lambda r: r.bin_start)
    steps = [b.bin_start - a.bin_start for a, b in itertools.pairwise(ordered)]
    step = min(steps) if steps else timedelta(hours=1)
    out: list[TimeRow] = []
    for r in ordered:
        if out and r.bin_start - out[-1].bin_start > step:
            out.append(out[-1]._replace(bin_start=out[-1].bin_start + step, value=math.nan,
                                        ci_lower=math.nan, ci_upper=math.nan))  # fmt: skip
        thin = r.n_events < min_events
        out.append(r._replace(value=math.nan, ci_lower=math.nan, ci_upper=math.nan) if thin else r)
    return out if any(math.isfinite(r.value) for r in out) else []


def draw_metric_by_time(
    rows: Sequence[TimeRow],
    phases: Sequence[Phase],
    arms: Sequence[str],
    metrics: Sequence[Metric],
    *,
    min_events: int = 20,
) -> Figure:
    """Draw :func:`plot_metric_by_time` from precomputed rows (bins under ``min_events``
    events are left out: a handful of stale-tagged turns says nothing)."""
    colors = _arm_colors(arms)
    with style():
        fig = _figure(9.0, 1.9 * max(len(metrics), 1) + 0.4)
        axes = fig.subplots(max(len(metrics), 1), 1, sharex=True, squeeze=False)[:, 0]
        last = max((r.bin_start for r in rows), default=None)
        for ax, m in zip(axes, metrics, strict=False):
            mine = [r for r in rows if r.metric == m.label]
            for arm in (*arms, "untagged"):
                pts = _gaps([r for r in mine if r.arm == arm], min_events)
                if not pts:
                    continue
                xs = [r.bin_start for r in pts]
                ys = [r.value for r in pts]
                ax.plot(xs, ys, color=colors[arm], linewidth=1.2, label=arm, marker=".", ms=2)
                lo = [r.ci_lower for r in pts]
                if not all(math.isnan(v) for v in lo):
                    hi = [r.ci_upper for r in pts]
                    ax.fill_between(xs, lo, hi, color=colors[arm], alpha=0.15, linewidth=0)
            _boundaries(ax, phases, label=ax is axes[0], end=last)
            ax.set_ylabel(f"{m.label}\n({_metric_unit(m)})")
            if not mine:
                _empty(ax, f"no values of {m.label}")
        axes[0].set_title("Metrics by hour and arm tag (shaded: after the experiment ended)")
        _legend(axes[0], loc="upper left", ncols=len(arms) + 1, bbox_to_anchor=(0.0, 1.0))
        _time_axis(axes[-1])
        axes[-1].set_xlabel("time (UTC)")
    return fig


# ------------------------------------------------------------------------------------------
# contamination


def plot_contamination(summary: ContaminationSummary | SplitResult) -> Figure:
    """Tagged events by phase and contamination label, one panel per arm (stacked counts).

    Args:
        summary: A :class:`~analysis.events.labelling.ContaminationSummary`, or a split (the
            summary is computed).
    """
    from analysis.events.labelling import ContaminationSummary, contamination_summary

    if not isinstance(summary, ContaminationSummary):
        summary = contamination_summary(summary)
    return draw_contamination(summary.rows, summary.experiment)


def draw_contamination(rows: Sequence[Any], experiment: str) -> Figure:
    """Draw :func:`plot_contamination` from rows with ``phase, phase_kind, arm, label,
    n_events`` (:class:`~analysis.events.labelling.SummaryRow` or the report's counts)."""
    from analysis.events.labelling import LABELS

    tagged = [r for r in rows if r.arm is not None]
    arms = list(dict.fromkeys(r.arm for r in tagged if r.arm is not None))
    phases = sorted({(r.phase, r.phase_kind) for r in tagged})
    with style():
        fig = _figure(9.0, 3.2)
        axes = fig.subplots(1, max(len(arms), 1), squeeze=False)[0]
        if not arms:
            _empty(axes[0], "no events tagged with the experiment")
        for ax, arm in zip(axes, arms, strict=False):
            xs = list(range(len(phases)))
            bottoms = [0] * len(phases)
            total = [
                sum(r.n_events for r in tagged if r.arm == arm and r.phase == p) for p, _ in phases
            ]
            top = max(total) if total else 1
            for label in LABELS:
                counts = [
                    sum(
                        r.n_events
                        for r in tagged
                        if r.arm == arm and r.phase == p and r.label == label
                    )
                    for p, _ in phases
                ]
                if not any(counts):
                    continue
                ax.bar(
                    xs, counts, bottom=bottoms, color=LABEL_COLORS[label], label=label, width=0.7
                )
                for x, c, b in zip(xs, counts, bottoms, strict=True):
                    if c and c >= 0.06 * top:
                        ax.text(x, b + c / 2, f"{c:,}", ha="center", va="center", fontsize=7)
                bottoms = [b + c for b, c in zip(bottoms, counts, strict=True)]
            for x, t in zip(xs, total, strict=True):
                ax.text(x, t, f"{t:,}", ha="center", va="bottom", fontsize=7, fontweight="bold")
            ax.set_xticks(xs, [f"{p}\n{kind.replace('_', '-')}" for p, kind in phases])
            ax.set_xlabel("phase")
            ax.set_ylabel("tagged events (count)")
            ax.set_title(f"arm tag: {arm}")
            ax.set_ylim(0, top * 1.12)
        handles: dict[str, Any] = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(lab, h)
        order = [lab for lab in LABELS if lab in handles]
        fig.legend([handles[lab] for lab in order], order, loc="outside right upper", title="label")
        fig.suptitle(f"Contamination of {experiment} by phase and label", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------
# effects


def plot_effects(result: AnalysisResult) -> Figure:
    """Naive vs clean relative effect (arm / control − 1) per metric with 95% CIs.

    One row per metric × estimate: clean combined, clean per phase, naive pooled.
    """
    rows = [r for r in result.effects.rows if r.analysis in ("clean", "naive")]  # type: ignore[attr-defined]
    return draw_effects(rows)


def draw_effects(rows: Sequence[Any]) -> Figure:
    """Draw :func:`plot_effects` from effect rows (:class:`~analysis.metrics.EffectRow`)."""
    metrics = list(dict.fromkeys(r.metric for r in rows))
    arms = list(dict.fromkeys(r.arm for r in rows))

    def rank(r: Any) -> tuple[int, int, str]:
        kind = (
            0
            if (r.analysis, r.phase) == ("clean", "combined")
            else (2 if r.analysis == "naive" else 1)
        )
        return (metrics.index(r.metric), arms.index(r.arm), f"{kind}{r.phase}")

    ordered = sorted(rows, key=rank)
    n = len(ordered)
    with style():
        fig = _figure(9.0, 0.9 + 0.24 * max(n, 1))
        ax = fig.subplots()
        if not ordered:
            _empty(ax, "no effects")
            return fig
        if not any(math.isfinite(r.rel_effect) for r in ordered):
            _empty(ax, "no effect could be estimated: an arm has no (clean) events")
            return fig
        ys = list(range(n))[::-1]
        labels = []
        for y, r in zip(ys, ordered, strict=True):
            naive = r.analysis == "naive"
            combined = r.phase == "combined"
            color = "#d1495b" if naive else ("#1f5fa8" if combined else "#8fb3dc")
            est = 100 * r.rel_effect
            lo, hi = 100 * r.rel_effect_ci_lower, 100 * r.rel_effect_ci_upper
            if all(math.isfinite(v) for v in (est, lo, hi)):
                ax.errorbar(
                    est,
                    y,
                    xerr=[[est - lo], [hi - est]],
                    fmt="D" if combined else ("s" if naive else "o"),
                    color=color,
                    ms=5 if combined or naive else 3.5,
                    capsize=2,
                    lw=1.2,
                )
            what = (
                "naive (dashboard)"
                if naive
                else ("clean, combined" if combined else f"clean, phase {r.phase}")
            )
            arm = f" [{r.arm}]" if len(arms) > 1 else ""
            labels.append(f"{r.metric}{arm}: {what}")
        for i in range(1, n):
            if ordered[i].metric != ordered[i - 1].metric:
                ax.axhline(ys[i] + 0.5, color="#cccccc", lw=0.8)
        ax.axvline(0, color="#333333", lw=0.8)
        ax.set_yticks(ys, labels)
        ax.set_ylabel("metric: estimate")
        ax.set_xlabel("relative effect, arm vs control (%), 95% CI")
        ax.set_title("Naive vs clean effect per metric")
        ax.grid(axis="y", visible=False)
    return fig


# ------------------------------------------------------------------------------------------
# recovery


def plot_recovery(result: AnalysisResult, metrics: Sequence[str] | None = None) -> Figure:
    """Exposed − never-exposed units after the rollback, by hours since the rollback.

    Lines for all exposed units, their turns in conversations tainted by the rolled-back
    revision, and in fresh conversations, with 95% CIs and the ±margin band of "recovered".
    """
    return draw_recovery(list(result.recovery.rows), metrics)


def _recovery_ylim(rows: Sequence[Any], margin: float) -> tuple[float, float]:
    """Y-limits that hold every plotted point, its whole interval and the ±margin band (5% pad)."""
    band = (-margin, margin) if math.isfinite(margin) else ()
    values = [
        v
        for r in rows
        if math.isfinite(r.effect)
        for v in (r.effect, r.effect_ci_lower, r.effect_ci_upper, *band)
        if math.isfinite(v)
    ]
    lo, hi = (min(values), max(values)) if values else (-1.0, 1.0)
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
    return lo - pad, hi + pad


def _no_recovery_reason(rows: Sequence[Any]) -> str:
    """Why no exposed − never-exposed difference could be drawn (which side had no units)."""
    if all(r.n_reference == 0 for r in rows):
        return "no never-exposed units after the rollback:\nnothing to compare the exposed with"
    if all(r.n_group == 0 for r in rows):
        return "no exposed units after the rollback"
    return "too few units per bin for a difference"


def draw_recovery(rows: Sequence[Any], metrics: Sequence[str] | None = None) -> Figure:
    """Draw :func:`plot_recovery` from :class:`~analysis.metrics.recovery.RecoveryRow` rows."""
    binned = [r for r in rows if r.bin is not None]
    names = list(metrics) if metrics is not None else list(dict.fromkeys(r.metric for r in binned))
    with style():
        ncol = max(len(names), 1)
        fig = _figure(9.0, 3.0)
        axes = fig.subplots(1, ncol, squeeze=False)[0]
        if not names:
            _empty(axes[0], "no recovery analysis (the experiment was not rolled back)")
            return fig
        for ax, name in zip(axes, names, strict=True):
            mine = [r for r in binned if r.metric == name]
            if not mine:
                _empty(ax, f"no recovery rows for {name}")
                continue
            if not any(math.isfinite(r.effect) for r in mine):
                _empty(ax, _no_recovery_reason(mine))
                ax.set_title(name)
                continue
            width = max((r.hours_since_end for r in mine), default=0.0)
            steps = sorted({r.hours_since_end for r in mine})
            step = steps[1] - steps[0] if len(steps) > 1 else 1.0
            margin = mine[0].margin
            if math.isfinite(margin):
                ax.axhspan(-margin, margin, color="#e8f1e4", lw=0, zorder=0, label="±margin")
            ax.axhline(0, color="#333333", lw=0.8)
            groups = list(dict.fromkeys(r.group for r in mine))
            for k, g in enumerate(groups):
                pts = sorted(
                    (r for r in mine if r.group == g and math.isfinite(r.effect)),
                    key=lambda r: r.hours_since_end,
                )
                if not pts:
                    continue
                off = (k - (len(groups) - 1) / 2) * step * 0.12
                xs = [r.hours_since_end + step / 2 + off for r in pts]
                ys = [r.effect for r in pts]
                err = [
                    [
                        max(r.effect - r.effect_ci_lower, 0.0)
                        if math.isfinite(r.effect_ci_lower)
                        else 0.0
                        for r in pts
                    ],
                    [
                        max(r.effect_ci_upper - r.effect, 0.0)
                        if math.isfinite(r.effect_ci_upper)
                        else 0.0
                        for r in pts
                    ],
                ]
                ax.errorbar(
                    xs,
                    ys,
                    yerr=err,
                    color=GROUP_COLORS.get(g, "#777777"),
                    marker="o",
                    ms=3,
                    lw=1.0,
                    capsize=1.5,
                    label=g.replace("_", " "),
                )
            ax.set_xlim(0, width + step)
            ax.set_ylim(*_recovery_ylim(mine, margin))
            ax.set_xlabel("hours since rollback")
            ax.set_ylabel(f"{name}: group − never exposed")
            ax.set_title(name)
        _legend(axes[0], loc="lower right")
        fig.suptitle("Recovery after the rollback (95% CIs)", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------
# cache


def plot_cache(
    split: SplitResult,
    *,
    window_hours: float = 2.0,
    bin_minutes: int = 10,
) -> Figure:
    """Prompt-cache hit rate and cost per event around each boundary, by served revision.

    Needs the ``cache_hit`` and/or ``cost_usd`` columns of the export.
    """
    from analysis.reporting import _data as data

    bounds = data.boundaries(split)
    frame = data.cache_frame(
        split.frame, bounds, window=timedelta(hours=window_hours), bin_minutes=bin_minutes
    )
    rows = (
        data.cache_rows(data.collect([frame])[0], bounds, bin_minutes=bin_minutes)
        if frame is not None
        else []
    )
    return draw_cache(rows, bounds, bin_minutes=bin_minutes)


def draw_cache(
    rows: Sequence[CacheRow], bounds: Sequence[tuple[datetime, str]], *, bin_minutes: int = 10
) -> Figure:
    """Draw :func:`plot_cache` from precomputed rows."""
    revisions = sorted({r.served_revision for r in rows})
    colors = {rev: ARM_COLORS[i % len(ARM_COLORS)] for i, rev in enumerate(revisions)}
    with style():
        if not rows:  # one line, not one per panel
            fig = _figure(9.0, 1.2)
            _empty(fig.subplots(), "no prompt-cache data: needs a cache_hit and/or cost_usd "
                   "column and events within the window of a boundary")  # fmt: skip
            return fig
        ncol = max(len(bounds), 1)
        fig = _figure(9.0, 4.2)
        axes = fig.subplots(2, ncol, squeeze=False, sharey="row")
        for row, attr, column in ((0, "hit_rate", "cache_hit"), (1, "cost_mean", "cost_usd")):
            if not any(math.isfinite(getattr(r, attr)) for r in rows):
                for ax in axes[row]:
                    ax.set_yticks([])
                axes[row][0].text(0.02, 0.5, f"no {column} column (optional): this row stays "
                                  "empty", transform=axes[row][0].transAxes, va="center",
                                  color="#666666")  # fmt: skip
        for j, (at, action) in enumerate(bounds):
            top, bottom = axes[0][j], axes[1][j]
            for rev in revisions:
                pts = [r for r in rows if r.boundary == j and r.served_revision == rev]
                if not pts:
                    continue
                xs = [r.minutes + bin_minutes / 2 for r in pts]
                top.plot(
                    xs,
                    [100 * r.hit_rate for r in pts],
                    color=colors[rev],
                    lw=1.2,
                    marker=".",
                    ms=3,
                    label=rev,
                )
                bottom.plot(
                    xs,
                    [1000 * r.cost_mean for r in pts],
                    color=colors[rev],
                    lw=1.2,
                    marker=".",
                    ms=3,
                    label=rev,
                )
            for ax in (top, bottom):
                ax.axvline(0, color="#555555", linestyle="--", lw=0.9)
            top.set_title(f"{action} at {at.astimezone(UTC):%m-%d %H:%M} UTC")
            bottom.set_xlabel("minutes from boundary")
        axes[0][0].set_ylabel("prompt-cache hit rate (%)")
        axes[1][0].set_ylabel("cost per event (USD × 10⁻³)")
        _legend(axes[0][0], title="served revision", loc="lower left")
        fig.suptitle("Prompt cache around each rollout boundary", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------
# baseline history

_ACTION_MARKERS: dict[str, str] = {
    "init": "|",
    "anchor": "o",
    "reanchor": "D",
    "pin": "^",
    "unpin": "v",
    "revert": "X",
}


def plot_baseline_history(
    store: BaselineStore | str | Path,
    ledger: Ledger | str | Path | None = None,
    *,
    suites: Sequence[str] | None = None,
    until: datetime | None = None,
) -> Figure:
    """Each suite's journal on a time line: which version was the reference, and when.

    A bar per suite shows the reference version over time (coloured by revision, hatched red
    while it belongs to a revision the ledger had rolled back — a stale reference); markers show
    anchors, re-anchors, pins, unpins and reverts; the ledger's transitions of the suite's prompt
    are dashed lines.
    """
    from analysis.evals.store import BaselineStore
    from analysis.ledger import Ledger, load_ledger

    st = store if isinstance(store, BaselineStore) else BaselineStore(store)
    led = ledger if ledger is None or isinstance(ledger, Ledger) else load_ledger(ledger)
    names = list(suites) if suites is not None else list(st.suite_names())
    journals = {n: tuple(st.suite(n).journal()) for n in names}
    prompts = {n: st.suite(n).config.prompt for n in names}
    return draw_baseline_history(journals, prompts, led, until=until)


def draw_baseline_history(
    journals: Mapping[str, Sequence[Any]],
    prompts: Mapping[str, str],
    ledger: Ledger | None,
    *,
    until: datetime | None = None,
) -> Figure:
    """Draw :func:`plot_baseline_history` from journals (:class:`JournalEntry` tuples).

    The time axis spans the entries that set a reference (anchor, re-anchor, pin, unpin, revert)
    and the ledger's transitions of the suites' prompts; ``init`` entries (stamped whenever the
    suite was created, often long before or after the story) do not stretch it. Transition
    labels sit above the axes, journal labels alternate above and below their markers, and the
    stale-reference hatch is explained in the legend, so no label covers another.
    """
    from matplotlib.patches import Patch

    names = list(journals)
    transitions = [
        t
        for t in (ledger.transitions if ledger is not None else ())
        if t.prompt in prompts.values()
    ]
    reverts = ledger.reverts() if ledger is not None else ()
    times = [e.at for j in journals.values() for e in j if e.action != "init"]
    times += [t.at for t in transitions]
    with style():
        fig = _figure(9.0, 2.2 + 0.75 * max(len(names), 1))
        ax = fig.subplots()
        if not times:
            _empty(ax, "no baseline suites in the store")
            return fig
        lo, hi = min(times), max(times)
        end = until or hi + max((hi - lo) * 0.08, timedelta(hours=6))
        start_x = lo - max((end - lo) * 0.04, timedelta(hours=2))
        revisions = sorted(
            {e.reference.revision for j in journals.values() for e in j if e.reference.revision}
        )
        colors = {r: ARM_COLORS[i % len(ARM_COLORS)] for i, r in enumerate(revisions)}
        handles: list[Any] = []
        stale_drawn = False
        for y, name in enumerate(names):
            entries = list(journals[name])
            for k, e in enumerate(entries):
                begin = max(e.at, start_x)
                stop = entries[k + 1].at if k + 1 < len(entries) else end
                rev = e.reference.revision
                if rev is None or stop <= begin:
                    continue
                ax.barh(y, stop - begin, left=begin, height=0.36, color=colors[rev], alpha=0.55,
                        lw=0)  # fmt: skip
                for r in reverts:
                    if r.reverted == rev and r.prompt == prompts[name] and r.at < stop:
                        s = max(r.at, begin)
                        ax.barh(y, stop - s, left=s, height=0.36, fill=False, hatch="////",
                                edgecolor="#d1495b", lw=0.8)  # fmt: skip
                        stale_drawn = True
                        break
            shown = [e for e in entries if e.at >= start_x]
            for k, e in enumerate(shown):
                marker = _ACTION_MARKERS.get(e.action, "o")
                ax.plot([e.at], [y], marker=marker, color="#222222", ms=6, ls="none")
                text = e.action + (f" {e.version}" if e.version else "")
                if e.action == "revert" and e.reverted:
                    text += f" ({e.reverted}→{e.restored})"
                up = k % 2 == 0
                ax.annotate(text, xy=(e.at, y), xytext=(0, 9 if up else -9),
                            textcoords="offset points", ha="center",
                            va="bottom" if up else "top", fontsize=7)  # fmt: skip
        handles += [Patch(color=colors[r], alpha=0.55, label=f"reference: {r}") for r in revisions]
        if stale_drawn:
            handles.append(Patch(fill=False, hatch="////", edgecolor="#d1495b",
                                 label="stale: reference of a reverted revision"))  # fmt: skip
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(-0.8, len(names) - 0.2)
        ax.set_xlim(_x(start_x), _x(end))
        ax.set_ylabel("suite")
        ax.set_xlabel("time (UTC)")
        ax.grid(axis="y", visible=False)
        _time_axis(ax)
        for t in transitions:
            ax.axvline(_x(t.at), color="#777777", linestyle="--", lw=0.8, zorder=1)
        if transitions:
            # one label per group of transitions closer than 3% of the axis, so none overlap
            span = (end - start_x) * 0.03
            groups: list[tuple[datetime, list[str]]] = []
            for t in transitions:
                what = (
                    t.action
                    if t.action not in ("deploy", "rollback")
                    else f"{t.action} → {t.revision or t.to}"
                )
                if groups and t.at - groups[-1][0] < span:
                    groups[-1][1].append(what)
                else:
                    groups.append((t.at, [what]))
            top = ax.secondary_xaxis("top")
            top.set_xticks([_x(at) for at, _ in groups], [", ".join(w) for _, w in groups],
                           rotation=90, fontsize=7, color="#555555")  # fmt: skip
            top.tick_params(length=0, pad=1)
        ax.set_title("Eval baseline history: reference version over time, journal actions")
        if handles:
            fig.legend(handles=handles, loc="outside lower center", ncols=len(handles),
                       frameon=False)  # fmt: skip
    return fig
