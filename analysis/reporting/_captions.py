"""The report's words around its numbers: captions that name the method, thresholds beside the
values they judge, per-user vs per-turn stated where both appear, empty cells explained.

Used by :mod:`analysis.reporting._html` for ``report.html`` and ``report.md``; every sentence is
built from the report's own numbers and options, so that it cannot drift from what was run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from analysis._render import fmt

if TYPE_CHECKING:
    from analysis.reporting.batch import Report

__all__ = [
    "cache_cost_note",
    "effects_caption",
    "explain_note",
    "is_sequential",
    "levels_note",
    "recovery_rows",
    "srm_columns",
    "srm_rows",
]


def _option(rep: Report, name: str, default: Any) -> Any:
    opts = rep.analysis.options
    return opts.get(name, rep.inputs.get(name, default)) if opts else rep.inputs.get(name, default)


def strata(rep: Report) -> str:
    """How the clean estimates compare the arms (the time strata of :func:`analyze`)."""
    hours = _option(rep, "block_hours", 6.0)
    if hours is None:
        return "within each exposure phase (one stratum per phase)"
    return f"within {fmt(float(hours))}-hour time strata inside each exposure phase"


def is_sequential(rep: Report) -> bool:
    """Whether the report's analysis is the always-valid one (``sequential=True``)."""
    return bool(rep.analysis.options.get("sequential")) if rep.analysis.options else False


def effects_caption(rep: Report) -> str:
    """The effects section's caption: what *clean* and *naive* are, as they were computed (and,
    for a sequential analysis, what its decisions rest on)."""
    alpha = fmt(_option(rep, "alpha", 0.05))
    text = (
        "Relative effect of each treatment arm per metric: clean per phase and combined across "
        f"phases (clean events only, compared {strata(rep)}, regression-adjusted on each "
        "unit's pre-period where units have one; quantiles per phase, combined over the phases), "
        "and the naive number a dashboard shows (arm tags at face value, every tagged event, "
        f"one window). Significant when the adjusted p < {alpha}."
    )
    if not is_sequential(rep):
        return text
    planned = _option(rep, "planned_units", None)
    tuned = f", tuned at {fmt(float(planned))} planned units" if planned is not None else ""
    return text + (
        f" Monitoring that allows peeking (sequential{tuned}): a regression is decided on the "
        "always-valid confidence sequence (cs_lower, cs_upper) and the Holm-adjusted "
        f"always-valid p-value (pvalue_sequential_adjusted < {alpha}, after the burn-in), the "
        "guardrails and the sample ratio likewise, valid however often the report runs; "
        "quantile metrics get no sequential decision."
    )


def explain_note(rep: Report) -> str:
    """Why step 0 of the explain table is not the clean combined effect (or "" when there is
    nothing to compare): step 0 pools the clean events in one window, unadjusted; the clean
    effect compares within time strata and adjusts for the pre-period."""
    steps: list[Any] = [r for r in rep.analysis.explain.rows if getattr(r, "step", None) == 0]
    if not steps:
        return ""
    first = steps[0]
    try:
        clean = rep.analysis.effect(first.metric, analysis="clean", phase="combined", arm=first.arm)
    except KeyError:
        return ""
    if not (math.isfinite(first.effect) and math.isfinite(clean.effect)):
        return ""
    theta = getattr(clean, "cuped_theta", None)
    adjusted = isinstance(theta, float) and math.isfinite(theta)
    how = strata(rep) + (" and regression-adjusted on the pre-period (CUPED)" if adjusted else "")
    return (
        f"Two clean numbers, one estimand: step 0 ({_num(first.effect)} for {first.metric}) "
        "pools the clean events in one window without adjustment, to rebuild the naive number "
        f"label by label; the headline's clean effect ({_num(clean.effect)}) is the same "
        f"comparison made {how}, which keeps time trends and pre-period differences out of it "
        f"(difference {_num(clean.effect - first.effect)})."
    )


def _num(value: float) -> str:
    return fmt(value).replace("-", "−")


def levels_note(rep: Report, where: str) -> str:
    """Which metrics this event-level plot shows at another level than the effects table
    (``cost_usd``: per user in the table, per turn in the plot), or "" when none does."""
    from analysis.reporting._data import measured_by_time, measured_on

    unit = rep.ledger.experiment(rep.experiment).unit
    pairs = [
        f"{m.label} is {measured_on(m, unit)} in the effects table and {measured_by_time(m)} "
        f"{where}"
        for m in rep.metrics
        if measured_on(m, unit) != measured_by_time(m)
    ]
    if not pairs:
        return ""
    return (
        "Per unit vs per turn: "
        + "; ".join(pairs)
        + " — a unit with more turns weighs more here, so the two can differ in size and even "
        "in sign."
    )


def cache_cost_note(rep: Report) -> str:
    """The cache plot's cost is per event; say so when the effects table has ``cost_usd`` at
    another level (a mean: per user)."""
    from analysis.reporting._data import measured_on

    unit = rep.ledger.experiment(rep.experiment).unit
    for m in rep.metrics:
        if m.label == "cost_usd" and measured_on(m, unit) != "per turn":
            return (
                "Cost here is per event (turn); the effects table's cost_usd is "
                f"{measured_on(m, unit)}."
            )
    return ""


def srm_columns() -> tuple[str, ...]:
    """The SRM table's columns with the threshold beside the p-value it judges."""
    return (
        "phase",
        "arm",
        "allocation",
        "observed",
        "expected",
        "statistic",
        "pvalue",
        "threshold",
        "mismatch (p < threshold)",
    )


def srm_rows(rep: Report) -> list[dict[str, Any]]:
    """The SRM rows with the threshold they were judged against."""
    threshold = _option(rep, "srm_threshold", 0.001)
    return [
        {**r, "threshold": threshold, "mismatch (p < threshold)": r["mismatch"]}
        for r in rep.analysis.srm.to_dicts()
    ]


#: The recovery summary as shown (the empty ``recovered_after_hours`` cell explained).
RECOVERY_COLUMNS = (
    "metric",
    "group",
    "margin",
    "overall_effect",
    "recovered_after_hours",
    "recovered_at",
)


def recovery_rows(rep: Report) -> list[dict[str, Any]]:
    """The recovery summary with an empty ``recovered_after_hours`` spelled out."""
    out = []
    for r in rep.analysis.recovery_summary.to_dicts():
        row = dict(r)
        if r.get("recovered_after_hours") is None:
            row["recovered_after_hours"] = "not back within ±margin by the last bin"
            row["recovered_at"] = "—"
        out.append(row)
    return out
