"""What to do next with a canary: ``rollback``, ``ramp``, ``promote`` or ``continue``.

* ``rollback`` — a primary metric regresses (the regression check of ``analyze``: clean combined
  effect significant after the multiplicity adjustment, in the wrong direction) or a guardrail
  breaches. The recommendation names the revision to restore (the experiment's control arm's
  revision) and the commands ``promptstate rollback plan …`` then ``promptstate rollback apply
  …`` (``apply`` appends the rollback transition to the ledger itself: no ``ledger record
  rollback`` is needed, nor advised).
* ``ramp`` — every guardrail is ``ok`` and every primary metric reached its planned power, and
  the treatment's share is below 50% (or a later ramp step is given, ``next_step``).
* ``promote`` — the same, at 50% or more.
* ``continue`` — otherwise; ``missing`` says what is missing (inconclusive guardrails, power not
  reached, planned power unknown).

**Primary metrics** are those marked ``primary=True``; when none is, every metric with a
direction counts as primary (and a reason says so). **Planned power** is optional: a mapping
``power`` (metric → reached, e.g. from a plan or a sequential decision) wins; else a planned
minimum detectable effect ``mde`` (absolute, or ``"5%"`` of the control value) is reached when the
row's ``mde`` column (the MDE at the analysis' power and the current sizes; under
``sequential=True`` the always-valid test's detectable effect, ``sequential_mde``) is at or below
it; with neither, "planned power unknown" is missing and the action is ``continue``.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from analysis.errors import PromptstateError

if TYPE_CHECKING:
    from analysis._table import Table
    from analysis.ledger import Ledger
    from analysis.metrics import AnalysisResult
    from analysis.metrics.definitions import Metric

__all__ = ["ACTIONS", "CommandContext", "Recommendation", "recommend"]

Action = Literal["rollback", "ramp", "promote", "continue"]
ACTIONS: tuple[str, ...] = ("rollback", "ramp", "promote", "continue")


@dataclass(frozen=True)
class CommandContext:
    """The inputs the advised commands name (placeholders where unknown).

    Attributes:
        events: The event export as given on the command line (``None``: ``EVENTS``).
        ledger: The ledger path (``None``: ``LEDGER``).
        metrics: The metrics file, if one was given.
    """

    events: str | None = None
    ledger: str | None = None
    metrics: str | None = None


@dataclass(frozen=True)
class Recommendation:
    """What to do next.

    Attributes:
        action: ``rollback``, ``ramp``, ``promote`` or ``continue``.
        reasons: Why, one sentence each.
        missing: What is missing before the canary may be ramped or promoted.
        commands: The shell commands to run, in order (rollback: plan, then apply).
        restore: The revision to restore (rollback only).
    """

    action: Action
    reasons: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    restore: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"action", "reasons", "missing", "commands", "restore"}``."""
        return {
            "action": self.action,
            "reasons": list(self.reasons),
            "missing": list(self.missing),
            "commands": list(self.commands),
            "restore": self.restore,
        }

    def lines(self) -> list[str]:
        """The recommendation as plain text lines."""
        head = f"recommendation: {self.action}"
        if self.restore:
            head += f" (restore {self.restore})"
        out = [head]
        out += [f"  because: {r}" for r in self.reasons]
        out += [f"  missing: {m}" for m in self.missing]
        out += [f"  run: {c}" for c in self.commands]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_markdown(self) -> str:
        """A Markdown section (data-derived text escaped)."""
        from analysis._render import md_code, md_text

        head = f"**Recommendation: {md_code(self.action)}**"
        if self.restore:
            head += f" (restore {md_code(self.restore)})"
        parts = [head, ""]
        parts += [f"- because: {md_text(r)}" for r in self.reasons]
        parts += [f"- missing: {md_text(m)}" for m in self.missing]
        if self.commands:  # a fence longer than any run of backticks in a path
            runs = [len(r) for c in self.commands for r in re.findall(r"`+", c)]
            fence = "`" * max(3, max(runs, default=0) + 1)
            parts += ["", f"{fence}bash", *self.commands, fence]
        return "\n".join(parts)


def _relative(text: str) -> str:
    """`` (2% of the control value)`` for a relative margin, else nothing."""
    return f" ({text} of the control value)" if text.endswith("%") else ""


def _planned_mde(mde: float | str | None, row: Any) -> float | None:
    """The planned MDE of a row, absolute (``"5%"``: of the row's control value)."""
    if mde is None:
        return None
    from analysis.metrics.definitions import parse_margin

    value, relative = parse_margin(mde, where="mde")
    if not relative:
        return value
    control = float(row.control_mean)
    return value * abs(control) if math.isfinite(control) and control != 0 else None


def _commands(
    context: CommandContext, prompt: str, revisions: Sequence[str], restore: str
) -> tuple[str, ...]:
    q = shlex.quote
    base = f"{q(context.events) if context.events else 'EVENTS'} --ledger " + (
        q(context.ledger) if context.ledger else "LEDGER"
    )
    extra = f" --metrics {q(context.metrics)}" if context.metrics else ""
    out: list[str] = []
    for rev in revisions:
        tail = f"{base} --prompt {q(prompt)} --revision {q(rev)} --to {q(restore)}{extra}"
        out.append(f"promptstate rollback plan {tail}")
        out.append(f"promptstate rollback apply {tail}")
    return tuple(out)


def recommend(
    result: AnalysisResult,
    metrics: Sequence[Metric],
    ledger: Ledger,
    guardrails: Table,
    *,
    mde: float | str | None = None,
    power: Mapping[str, bool] | None = None,
    next_step: str | None = None,
    context: CommandContext | None = None,
) -> Recommendation:
    """The recommendation for one analysed experiment (see the module doc).

    Args:
        result: The analysis.
        metrics: Its metric definitions (``primary``, ``direction``).
        ledger: The ledger (the experiment's arms, control revision and phases).
        guardrails: The guardrail verdicts (:func:`~analysis.decisions.evaluate_guardrails`).
        mde: Planned minimum detectable effect of the primary metrics (absolute or ``"5%"``).
        power: Metric → whether it reached its planned power (wins over ``mde``).
        next_step: A later ramp step of the experiment's plan (e.g. ``"50%"``), if any.
        context: The paths the advised commands name.

    Raises:
        PromptstateError: ``mde`` is not a positive number or percent.
    """
    if mde is not None:
        from analysis.metrics.definitions import parse_margin

        parse_margin(mde, where="--mde")
    context = context or CommandContext()
    exp = ledger.experiment(result.experiment)
    phases = ledger.phases(exp.id)
    exposure = [p for p in phases if p.kind == "exposure"]
    ended = next((p for p in phases if p.kind == "after_end"), None)
    restore = exp.arms[exp.control]
    marked = [m for m in metrics if m.primary]
    primaries = marked or [m for m in metrics if m.direction is not None]
    names = {m.label for m in primaries}
    reasons: list[str] = []
    if not marked and primaries:
        reasons.append(
            "no metric is marked primary: every metric with a direction counts as primary"
        )
    bad_arms: list[str] = []
    for r in result.regressions:
        if r.metric in names:
            sequential = bool(result.options.get("sequential"))
            lo, hi = (
                (r.cs_lower, r.cs_upper) if sequential else (r.effect_ci_lower, r.effect_ci_upper)
            )
            p_text = (
                f"always-valid adjusted p={r.pvalue_sequential_adjusted:.2g}"
                if sequential
                else f"adjusted p={r.pvalue_adjusted:.2g}"
            )
            reasons.append(
                f"primary metric {r.metric} regresses on {r.arm}: {r.effect:+.4g} "
                f"[{lo:+.4g}, {hi:+.4g}] ({r.direction} is better, {p_text})"
            )
            bad_arms.append(r.arm)
    rows: list[Any] = list(guardrails.rows)
    for g in rows:
        if g.verdict == "breach":
            reasons.append(
                f"guardrail {g.metric} breaches on {g.arm} (phase "
                f"{g.phase}): harm {g.harm:+.4g} exceeds the margin "
                f"{g.margin:.4g}{_relative(g.margin_text)}"
            )
            bad_arms.append(str(g.arm))
    done = (
        f"the ledger already records the end of {exp.id} ({ended.start_action} at "
        f"{ended.start.isoformat() if ended.start else '?'}): nothing to run"
        if ended is not None
        else None
    )
    if bad_arms:
        revisions = [exp.arms[a] for a in dict.fromkeys(bad_arms) if a in exp.arms]
        if done:
            return Recommendation("rollback", (*reasons, done), (), (), restore)
        cmds = _commands(context, exp.prompt, revisions, restore)
        reasons.append(
            f"restore {restore} (the control arm {exp.control}'s revision); rollback apply "
            "records the transition in the ledger"
        )
        return Recommendation("rollback", tuple(reasons), (), cmds, restore)

    missing: list[str] = []
    for g in rows:
        if g.verdict != "ok":
            missing.append(
                f"guardrail {g.metric} on {g.arm} (phase "
                f"{g.phase}) is inconclusive: upper bound of the harm "
                f"{g.bound:.4g} against the margin {g.margin:.4g}"
            )
    if not primaries:
        missing.append("no primary metric (mark one with primary: true and a direction)")
    effect_rows: list[Any] = list(result.effects.rows)
    for m in primaries:
        for e in effect_rows:
            if (e.analysis, e.metric, e.phase) != ("clean", m.label, "combined"):
                continue
            if power is not None and m.label in power:
                if not power[m.label]:
                    missing.append(f"{m.label} on {e.arm}: planned power not reached")
                continue
            planned = _planned_mde(mde, e)
            detectable = _detectable(result, e)
            if planned is None:
                missing.append(
                    f"{m.label} on {e.arm}: planned power unknown (no plan or --mde given)"
                )
            elif not (math.isfinite(detectable) and detectable <= planned):
                missing.append(
                    f"{m.label} on {e.arm}: power not reached (detectable effect "
                    f"{detectable:.4g} at the current size, planned {planned:.4g})"
                )
    if done:
        reasons.append(done)
    if missing:
        return Recommendation("continue", tuple(reasons), tuple(missing))
    share = min(
        (
            sum(v for a, v in exposure[-1].allocation.items() if a != exp.control)
            if exposure
            else 1.0
        ),
        1.0,
    )
    if next_step is not None or share < 0.5:
        step = f"the plan's next step {next_step}" if next_step else "50%"
        reasons.append(
            f"every guardrail is ok and every primary metric reached its planned power at a "
            f"treatment share of {share:.0%}: ramp to {step}"
        )
        return Recommendation("ramp", tuple(reasons))
    reasons.append(
        f"every guardrail is ok and every primary metric reached its planned power at a "
        f"treatment share of {share:.0%}"
    )
    return Recommendation("promote", tuple(reasons))


def _detectable(result: AnalysisResult, row: Any) -> float:
    """The effect detectable at the current size: the row's fixed-horizon ``mde``, or under a
    sequential analysis the always-valid test's (:func:`analysis.stats.sequential.
    sequential_mde` at the current SE: about 1.4× the fixed-horizon one at α = 0.05)."""
    if not result.options.get("sequential"):
        return float(row.mde)
    from analysis.stats.sequential import sequential_mde

    se = float(row.se)
    if not (math.isfinite(se) and se > 0):
        return math.nan
    alpha = float(result.options.get("alpha", 0.05))
    power = float(result.options.get("power", 0.8))
    return sequential_mde(se, alpha=alpha, power=power)


def check_mde(mde: float | str | None) -> None:
    """Raise when a planned MDE is not a positive number or percent (exit 2 in the CLI)."""
    if mde is None:
        return
    from analysis.metrics.definitions import parse_margin

    try:
        parse_margin(mde, where="--mde")
    except PromptstateError as exc:
        raise PromptstateError(str(exc).replace("guardrail margin", "MDE")) from None
