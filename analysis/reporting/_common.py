"""Pieces of the report shared by the one- and the multi-experiment report: the attention
items, the headline, the output files, rounding and JSON conversion."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis._render import fmt

if TYPE_CHECKING:
    from analysis.metrics import AnalysisResult
    from analysis.metrics.definitions import Metric
    from analysis.reporting._data import ContaminationRow
    from analysis.reporting._sections import BaselineStatus, ContractStatus

__all__ = ["REPORT_FILES", "Attention"]

REPORT_FILES = ("report.html", "report.md", "report.json")


class Attention(NamedTuple):
    """One thing that needs attention.

    Attributes:
        kind: ``completeness`` (coverage, gap or an arm's lost logging; listed first),
            ``srm``, ``crossover``, ``missing_values``, ``regression``, ``stale_baseline``,
            ``invalid_baseline`` (a tampered or torn store entry) or ``contract_risk``.
        message: What was found, in one sentence.
    """

    kind: str
    message: str


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def _round(value: Any) -> Any:
    """Floats to 10 significant digits (run-to-run noise of parallel sums is ~1e-16)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0.0:
        return float(f"{value:.10g}")
    return value


def _canon(row: Any) -> Any:
    """A NamedTuple row with every float rounded by :func:`_round`."""
    return row._replace(**{k: _round(v) for k, v in row._asdict().items() if isinstance(v, float)})


def _canonical_result(result: AnalysisResult) -> AnalysisResult:
    """The analysis with rounded numbers and exact zeros for no-change explain steps."""

    def table(t: Any) -> Any:
        return dataclasses.replace(t, rows=tuple(_canon(r) for r in t.rows))

    explain = table(result.explain)
    scale = max((abs(r.effect) for r in explain.rows if math.isfinite(r.effect)), default=0.0)
    explain = dataclasses.replace(
        explain,
        rows=tuple(
            r._replace(change=0.0)
            if isinstance(r.change, float) and abs(r.change) < 1e-9 * scale
            else r
            for r in explain.rows
        ),
    )
    return dataclasses.replace(
        result,
        effects=table(result.effects),
        srm=table(result.srm),
        exclusions=table(result.exclusions),
        explain=explain,
        recovery=table(result.recovery),
        recovery_summary=table(result.recovery_summary),
    )


def _alert_kind(alert: str) -> str:
    """The attention kind of one of :attr:`AnalysisResult.alerts` (by its fixed opening)."""
    for opening, kind in (
        ("sample ratio mismatch", "srm"),
        ("crossover", "crossover"),
        ("missing values", "missing_values"),
    ):
        if alert.startswith(opening):
            return kind
    raise ValueError(f"unknown alert kind: {alert!r}")


def _attention(
    result: AnalysisResult,
    baselines: Sequence[BaselineStatus],
    contracts: Sequence[ContractStatus],
) -> list[Attention]:
    out: list[Attention] = []
    for finding in result.completeness_messages:  # the report leads with them
        out.append(Attention("completeness", finding))
    for alert in result.alerts:
        out.append(Attention(_alert_kind(alert), alert))
    sequential = bool(result.options.get("sequential"))
    for e in result.regressions:  # the always-valid decision under ``sequential``
        if sequential:
            found = (
                f"always-valid [{_num(e.cs_lower)}, {_num(e.cs_upper)}] ({e.direction} is "
                f"better; always-valid adjusted p={fmt(e.pvalue_sequential_adjusted)})"
            )
        else:
            found = (
                f"[{_num(e.effect_ci_lower)}, {_num(e.effect_ci_upper)}] "
                f"({e.direction} is better; adjusted p={fmt(e.pvalue_adjusted)})"
            )
        out.append(
            Attention(
                "regression", f"clean regression of {e.arm} on {e.metric}: {_num(e.effect)} {found}"
            )
        )
    for b in baselines:
        if b.status == "stale":
            out.append(Attention("stale_baseline", f"suite {b.suite}: {b.detail}"))
        elif b.status == "invalid":
            out.append(Attention("invalid_baseline", f"suite {b.suite}: {b.detail}"))
    for c in contracts:
        if c.status == "risk":
            out.append(
                Attention(
                    "contract_risk",
                    f"consumer {c.name} accepts {', '.join(c.accepts)} but the live revision "
                    f"{c.live_revision} of {c.prompt} emits {c.contract}",
                )
            )
    return out


def _num(value: float) -> str:
    """3 significant digits with a true minus sign."""
    return fmt(value).replace("-", "−")


def _rel(value: float | None) -> str:
    """`` (−10.9%)``: a relative effect to one decimal of a percent, or nothing when undefined."""
    if value is None or not math.isfinite(value):
        return ""
    return f" ({value * 100:.1f}%)".replace("-", "−")


def _headline(
    result: AnalysisResult,
    counts: Sequence[ContaminationRow],
    exp: Any,
    metrics: Sequence[Metric],
    phases: Sequence[Any] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> str:
    """The report's one sentence; never an empty number: when the clean effect (or the naive
    one) is missing, the sentence says why (:func:`analysis.reporting._gaps.missing_reason`)."""
    from analysis.events.labelling import CONTAMINATED
    from analysis.reporting._data import contaminated_share
    from analysis.reporting._gaps import arm_events, missing_reason

    arm = exp.treatment_arms[0] if exp.treatment_arms else exp.control
    arms = (exp.control, *exp.treatment_arms)
    revision = exp.arms.get(arm, arm)
    name = metrics[0].label if metrics else "its metrics"
    parts = []
    clean = _effect_or_none(result, name, "clean", "combined", arm)
    if clean is not None:
        parts.append(
            f"clean effect of {revision} on {name}: {_num(clean.effect)}{_rel(clean.rel_effect)} "
            f"[{_num(clean.effect_ci_lower)}, {_num(clean.effect_ci_upper)}]"
            + _always_valid(result, clean)
        )
    else:
        why = missing_reason(counts, arms, phases, since, until)
        parts.append(f"no clean effect of {revision} on {name}: {why}")
    naive = _effect_or_none(result, name, "naive", "pooled", arm)
    if naive is not None:
        parts.append(f"naive dashboard said {_num(naive.effect)}{_rel(naive.rel_effect)}")
    elif clean is not None:
        parts.append("no naive number")
    tagged = sum(arm_events(counts, [arm]).values()) + sum(
        r.n_events for r in counts if r.arm == arm and r.phase_kind == "after_end"
    )
    if not tagged:
        if clean is not None:  # otherwise the reason above already says it
            parts.append(f"no {arm} events in the window")
        return "; ".join(parts)
    share = contaminated_share(counts, arm)
    by_label: dict[str, int] = {}
    for r in counts:
        if r.arm == arm and r.label in CONTAMINATED:
            by_label[r.label] = by_label.get(r.label, 0) + r.n_events
    text = f"{share:.0%} of {arm} events were contaminated"
    if by_label:
        text += f", mostly {max(sorted(by_label), key=lambda k: by_label[k])}"
    parts.append(text)
    return "; ".join(parts)


def _always_valid(result: AnalysisResult, row: Any) -> str:
    """`` (always-valid [lo, hi])``: the confidence sequence of a sequential analysis' row, or
    nothing (not sequential, or a row without one, e.g. a quantile)."""
    lo, hi = getattr(row, "cs_lower", math.nan), getattr(row, "cs_upper", math.nan)
    if not result.options.get("sequential") or not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    return f" (always-valid [{_num(lo)}, {_num(hi)}])"


def _effect_or_none(
    result: AnalysisResult, metric: str, analysis: str, phase: str, arm: str
) -> Any:
    """The effect row, or ``None`` when there is none or its effect or interval is not a
    number (an arm or a window without events)."""
    try:
        row = result.effect(metric, analysis=analysis, phase=phase, arm=arm)
    except KeyError:
        return None
    values = (row.effect, row.effect_ci_lower, row.effect_ci_upper)
    if not all(isinstance(v, float | int) and math.isfinite(v) for v in values):
        return None
    return row
