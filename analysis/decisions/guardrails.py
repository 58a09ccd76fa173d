"""Guardrail verdicts on the clean effects of an :class:`~analysis.metrics.AnalysisResult`.

A metric with a ``direction`` and a ``guardrail`` margin (``Mean("cost", direction="lower",
guardrail=20)`` or ``guardrail="2%"``) is judged on two clean effect rows of every treatment
arm: the ``combined`` row and the row of the **latest exposure phase** (the last phase with a
finite clean effect). The statistics are those of :mod:`analysis.stats.guardrail`: ``ok`` when
``H0: harm ≥ margin`` is rejected one-sided at ``α/2``, ``breach`` when ``H0: harm ≤ margin`` is
rejected one-sided at ``α/2``, else ``inconclusive``; ``harm`` is the effect oriented so that
positive is worse. Holm's adjustment runs across the guardrails (metrics × arms) separately in
four families: {combined, latest phase} × {``p_ok``, ``p_breach``}.

**Estimand and variance.** ``harm`` is the clean (regression-adjusted, time-stratified)
effect of the row, oriented, and ``se`` its standard error (for a row without one, half the
width of its two-sided interval over ``z_{1−α/2}``). An absolute margin ``m`` is a constant:
the statistic is ``(harm − m) / se``. A relative margin ``p%`` is ``p × |c|`` with ``c`` the
control arm's value of the same row — an *estimate*, so the statistic is
``(harm − p·|c|) / se₀`` with the variance of ``harm − p·c``, which is larger than ``se²``:
``(t − c) − p·c = t − (1 + p)·c`` has variance ``V_t + (1 + p)² V_c`` (arms independent), that is
``se² + (2p + p²)·V_c``. The effects table does not give ``V_c`` (the control's share of
``se²``) on its own; it is taken as ``se² · n_arm / (n_arm + n_control)`` (equal per-unit
variances in the arms), an approximation whose error enters only at order ``p``. This is the
Fieller-type (null-variance) form of the relative test. The two simpler forms fail the size
check of ``benchmarks/sim_guardrails.py`` (harm at a 10% margin, log-normal costs, 2 000 units per
arm, α/2 = 2.5%): the control value treated as fixed (``se₀ = se``) gives 3.1% false ``breach``
and 3.2% false ``ok``; the relative effect with the delta-method SE evaluated at the estimated
ratio gives 2.1% and 3.1% (the SE shrinks exactly when the estimate moves towards ``ok``); this
form gives the rates in docs/decisions.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis._table import Table
from analysis.errors import PromptstateError
from analysis.stats.guardrail import GuardrailTest, guardrail_test, guardrail_verdicts, harm_of

if TYPE_CHECKING:
    from analysis.metrics import AnalysisResult
    from analysis.metrics.definitions import Metric

__all__ = [
    "GUARDRAIL_COLUMNS",
    "GuardrailRow",
    "evaluate_guardrails",
    "guardrail_first_looks",
    "margin_text",
]


class GuardrailRow(NamedTuple):
    """One guardrail × treatment arm × phase verdict.

    Attributes:
        metric: Metric name.
        arm: Treatment arm.
        phase: ``combined`` or the latest exposure phase's id.
        verdict: ``ok``, ``breach`` or ``inconclusive``.
        margin: The margin, absolute in the metric's unit.
        margin_text: The margin as given (``"2%"``, ``"20"``).
        harm: The effect oriented so that positive is worse.
        se: Its standard error.
        bound: One-sided ``1 − α/2`` upper confidence bound of the harm.
        p_ok: Holm-adjusted p-value of ``H0: harm ≥ margin``.
        p_breach: Holm-adjusted p-value of ``H0: harm ≤ margin``.
        direction: ``higher`` or ``lower`` is better.
    """

    metric: str
    arm: str
    phase: str
    verdict: str
    margin: float
    margin_text: str
    harm: float
    se: float
    bound: float
    p_ok: float
    p_breach: float
    direction: str


GUARDRAIL_COLUMNS: tuple[str, ...] = GuardrailRow._fields


def margin_text(metric: Metric) -> str:
    """The margin as written: ``"2%"`` for a relative margin, ``"20"`` for an absolute one."""
    parsed = metric.margin
    if parsed is None:
        return ""
    value, relative = parsed
    return f"{value * 100:g}%" if relative else f"{value:g}"


def _se(row: Any, alpha: float) -> float:
    """The row's standard error, or the half-width of its interval over ``z_{1−α/2}``."""
    from scipy import special

    se = float(getattr(row, "se", math.nan))
    if math.isfinite(se) and se > 0:
        return se
    lo, hi = float(row.effect_ci_lower), float(row.effect_ci_upper)
    z = float(special.ndtri(1 - alpha / 2))
    return (hi - lo) / (2 * z) if math.isfinite(lo) and math.isfinite(hi) else math.nan


def _test(
    m: Metric, row: Any, margin: float, alpha: float, sequential: Mapping[str, Any] | None = None
) -> GuardrailTest:
    """The two one-sided tests of one row (see the module doc for a relative margin's
    variance); ``sequential`` (``planned_units``, ``ready``): the always-valid versions."""
    assert m.direction is not None
    assert m.margin is not None
    share, relative = m.margin
    harm = harm_of(float(row.effect), m.direction)
    se = _se(row, alpha)
    if relative:
        n_c, n_t = float(row.n_control), float(row.n_arm)
        v_c = se * se * n_t / (n_t + n_c) if n_t + n_c > 0 else se * se / 2
        se = math.sqrt(se * se + (2 * share + share * share) * v_c)
    if sequential is not None and math.isfinite(margin):
        return _sequential_test(harm, se, margin, alpha, row, sequential)
    return guardrail_test(harm, se, margin, alpha=alpha)


def _sequential_test(
    harm: float, se: float, margin: float, alpha: float, row: Any, seq: Mapping[str, Any]
) -> GuardrailTest:
    """The always-valid one-sided tests at this look (one-sided normal mixtures tuned at
    ``planned_units``, :mod:`analysis.stats.sequential`), each at ``α/2``; before the burn-in
    (one full time block, 100 units per arm) both p-values are 1 (``inconclusive``)."""
    from analysis.stats.sequential import one_sided_radius, planned_se_from_units, pvalue_at_look

    units = float(row.n_control) + float(row.n_arm)
    if not (math.isfinite(harm) and math.isfinite(se) and se > 0 and units > 0):
        return guardrail_test(harm, se, margin, alpha=alpha)
    planned = planned_se_from_units(se, units, float(seq["planned_units"]))
    half = alpha / 2
    bound = harm + float(one_sided_radius(se, planned_se=planned, alpha=half))
    if not (seq["ready"] and min(float(row.n_control), float(row.n_arm)) >= 100):
        return GuardrailTest(harm, se, margin, bound, 1.0, 1.0)
    p_ok = pvalue_at_look(harm, se, null=margin, planned_se=planned, alternative="less", alpha=half)
    p_breach = pvalue_at_look(
        harm, se, null=margin, planned_se=planned, alternative="greater", alpha=half
    )
    return GuardrailTest(harm, se, margin, bound, float(p_ok), float(p_breach))


def _quantile(m: Metric) -> bool:
    from analysis.metrics.definitions import Quantile

    return isinstance(m, Quantile)


def _guardrail_row(
    m: Metric, row: Any, margin: float, t: GuardrailTest, verdict: str, p_ok: float, p_breach: float
) -> GuardrailRow:
    return GuardrailRow(
        metric=m.label,
        arm=str(row.arm),
        phase=str(row.phase),
        verdict=verdict,
        margin=margin,
        margin_text=margin_text(m),
        harm=t.harm,
        se=t.se,
        bound=t.bound,
        p_ok=p_ok,
        p_breach=p_breach,
        direction=str(m.direction),
    )


def _undecided(m: Metric, row: Any, margin: float, alpha: float) -> GuardrailRow:
    """A quantile guardrail's row under ``sequential``: its fixed-horizon bound shown, verdict
    ``inconclusive`` (no always-valid test for quantiles)."""
    t = guardrail_test(harm_of(float(row.effect), str(m.direction)), _se(row, alpha), margin,
                       alpha=alpha)  # fmt: skip
    return _guardrail_row(m, row, margin, t, "inconclusive", math.nan, math.nan)


#: One Holm family of guardrail tests: (metric, its effect row, the absolute margin).
_Family = list[tuple["Metric", Any, float]]


def _judge(
    family: _Family, alpha: float, sequential: Mapping[str, Any] | None
) -> list[tuple[Metric, Any, float, GuardrailTest, str, float, float]]:
    """Each member's test and its verdict with the family's Holm-adjusted p-values."""
    tests = [_test(m, row, margin, alpha, sequential) for m, row, margin in family]
    verdicts = guardrail_verdicts(tests, alpha=alpha)
    return [(*x, t, *v) for x, t, v in zip(family, tests, verdicts, strict=True)]


def _latest_phase(rows: Sequence[Any], metric: str, arm: str) -> Any | None:
    """The clean row of the last exposure phase with a finite effect (None: no such phase)."""
    best: tuple[int, Any] | None = None
    for r in rows:
        e = r
        if (e.analysis, e.metric, e.arm) != (
            "clean",
            metric,
            arm,
        ):
            continue
        phase = str(e.phase)
        if not phase.isdigit() or not math.isfinite(float(e.effect)):
            continue
        if best is None or int(phase) > best[0]:
            best = (int(phase), e)
    return None if best is None else best[1]


def _absolute_margin(metric: Metric, row: Any, where: str) -> float:
    parsed = metric.margin
    assert parsed is not None
    value, relative = parsed
    if not relative:
        return value
    control = float(row.control_mean)
    if not math.isfinite(control):
        # no estimate yet (e.g. the first look of a canary: too few units in every block): the
        # margin is unknown and the verdict inconclusive, not a bad input
        return math.nan
    if control == 0:
        raise PromptstateError(
            f"{where}: metric {metric.label!r} has a relative guardrail margin "
            f"({margin_text(metric)} of the control arm's value), but the control arm's value "
            f"in phase {row.phase} is {control!r}; give an absolute margin "
            "(guardrail: {margin: NUMBER} in the metric's unit)"
        )
    return value * abs(control)


def evaluate_guardrails(
    result: AnalysisResult, metrics: Sequence[Metric], *, where: str = "metrics"
) -> Table:
    """The verdict of every guardrail metric × treatment arm, combined and in the latest phase.

    Args:
        result: The analysis (its clean effect rows and ``options["alpha"]``).
        metrics: The metric definitions the analysis ran with (those with a ``guardrail``).
        where: What to name in an error (the metrics file).

    Returns:
        A table of :class:`GuardrailRow` (empty when no metric is a guardrail).

    Raises:
        PromptstateError: a relative margin whose control value is not available (or zero).
    """
    alpha = float(result.options.get("alpha", 0.05))
    sequential = (
        {
            "planned_units": result.options.get("planned_units"),
            "ready": bool(result.options.get("sequential_ready")),
        }
        if result.options.get("sequential") and result.options.get("planned_units")
        else None
    )
    rows: list[Any] = list(result.effects.rows)
    families: dict[str, _Family] = {"combined": [], "latest": []}
    for m in metrics:
        if m.margin is None or m.direction is None:
            continue
        arms = [
            r for r in rows if (r.analysis, r.metric, r.phase) == ("clean", m.label, "combined")
        ]
        for combined in arms:
            arm = str(combined.arm)
            families["combined"].append((m, combined, _absolute_margin(m, combined, where)))
            latest = _latest_phase(rows, m.label, arm)
            if latest is not None:
                families["latest"].append((m, latest, _absolute_margin(m, latest, where)))
    out: list[GuardrailRow] = []
    for family in families.values():
        decided = family
        if sequential is not None:
            # quantile metrics get no sequential decision (docs/decisions.md): shown, never in a
            # Holm family, never a verdict
            out += [_undecided(m, row, margin, alpha) for m, row, margin in family if _quantile(m)]
            decided = [x for x in family if not _quantile(x[0])]
        out += [_guardrail_row(*judged) for judged in _judge(decided, alpha, sequential)]
    return Table(tuple(out), GUARDRAIL_COLUMNS, title="guardrails (non-inferiority margins)")


def guardrail_first_looks(
    result: AnalysisResult, metrics: Sequence[Metric], *, where: str = "metrics"
) -> list[Any]:
    """The first look at which each guardrail would have breached (a sequential analysis).

    At every look (:attr:`~analysis.metrics.AnalysisResult.looks`) the verdicts are those of
    :func:`evaluate_guardrails` on the look's combined and latest-phase rows: the always-valid
    one-sided tests tuned at ``planned_units``, Holm within each family, no decision before the
    burn-in. A look where a relative margin's control value is unusable is skipped.

    Returns:
        :class:`~analysis.metrics.results.FirstLookRow` rows (decision ``guardrail_breach``,
        phase ``combined`` or ``latest``); empty without looks.
    """
    from analysis.metrics.results import FirstLookRow

    looks: list[Any] = list(result.looks.rows)
    if not looks:
        return []
    alpha = float(result.options.get("alpha", 0.05))
    planned = result.options.get("planned_units")
    guarded = {m.label: m for m in metrics if m.margin is not None and m.direction is not None}
    total = max(int(r.look) for r in looks)
    at = {int(r.look): str(r.at) for r in looks}
    current: list[Any] = list(evaluate_guardrails(result, metrics, where=where).rows)
    now = {
        (g.metric, g.arm, "combined" if g.phase == "combined" else "latest")
        for g in current
        if g.verdict == "breach"
    }
    families: dict[tuple[int, str], _Family] = {}
    for r in looks:
        m = guarded.get(str(r.metric))
        if m is None or not (math.isfinite(float(r.se)) and float(r.se) > 0):
            continue
        try:
            margin = _absolute_margin(m, r, where)
        except PromptstateError:  # a zero control value at this look
            continue
        families.setdefault((int(r.look), str(r.scope)), []).append((m, r, margin))
    found: dict[tuple[str, str, str], int] = {}
    for (k, scope), family in sorted(families.items()):
        # every row of a look shares its time half of the burn-in; the units half is per row
        seq = {"planned_units": planned, "ready": any(r.ready for _, r, _ in family)}
        for m, r, *_, verdict, _, _ in _judge(family, alpha, seq):
            if verdict == "breach":
                found.setdefault((m.label, str(r.arm), scope), k)
    return [
        FirstLookRow("guardrail_breach", metric, arm, scope, k, total, at[k], key in now)
        for key, k in found.items()
        for metric, arm, scope in [key]
    ]
