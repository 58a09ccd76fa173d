"""The decisions about one analysed experiment: guardrail verdicts and a recommendation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis._table import Table
from analysis.decisions.alert_state import breach_message
from analysis.decisions.guardrails import evaluate_guardrails, guardrail_first_looks
from analysis.decisions.recommendation import CommandContext, Recommendation, recommend

if TYPE_CHECKING:
    from analysis.ledger import Ledger
    from analysis.metrics import AnalysisResult
    from analysis.metrics.definitions import Metric

__all__ = ["Decisions", "decide"]


@dataclass(frozen=True)
class Decisions:
    """Guardrail verdicts and the recommendation of one experiment.

    Attributes:
        experiment: Experiment id.
        guardrails: One :class:`~analysis.decisions.guardrails.GuardrailRow` per guardrail
            metric × treatment arm × {combined, latest exposure phase}.
        recommendation: What to do next.
        has_guardrails: Whether some metric carries a guardrail margin (the ``guardrails`` key
            of the JSON output is there only then).
        first_looks: A sequential analysis: the first look at which each decision would have
            fired — the analysis' regressions and SRM, and the guardrail breaches
            (:class:`~analysis.metrics.results.FirstLookRow`); ``None`` otherwise.
    """

    experiment: str
    guardrails: Table
    recommendation: Recommendation
    has_guardrails: bool = False
    first_looks: Table | None = None

    @property
    def breaches(self) -> tuple[Any, ...]:
        """The breaching guardrail rows."""
        rows: list[Any] = list(self.guardrails.rows)
        return tuple(r for r in rows if r.verdict == "breach")

    @property
    def breach_messages(self) -> tuple[str, ...]:
        """One line per breach."""
        return tuple(breach_message(r) for r in self.breaches)

    @property
    def exit_code(self) -> int:
        """1 on a guardrail breach, else 0."""
        return 1 if self.breaches else 0

    def to_dict(self) -> dict[str, Any]:
        """``{"guardrails": [...]}`` (only when some metric is a guardrail) and
        ``{"recommendation": {...}}``."""
        out: dict[str, Any] = {}
        if self.has_guardrails:
            out["guardrails"] = self.guardrails.to_records()
        if self.first_looks is not None:
            out["first_looks"] = self.first_looks.to_records()
        out["recommendation"] = self.recommendation.to_dict()
        return out

    @property
    def breach_first_looks(self) -> tuple[Any, ...]:
        """The guardrail rows of :attr:`first_looks`."""
        rows: list[Any] = list(self.first_looks.rows) if self.first_looks is not None else []
        return tuple(r for r in rows if r.decision == "guardrail_breach")

    def _first_look_lines(self) -> list[str]:
        return [
            f"first look: guardrail {r.metric} ({r.arm}, {r.phase}) would have breached at look "
            f"{r.look} of {r.looks} ({r.at})"
            for r in self.breach_first_looks
        ]

    def head_text(self) -> str:
        """The guardrail section that leads the text output ('' without guardrails)."""
        if not self.has_guardrails:
            return ""
        lines = [str(self.guardrails)]
        lines += [f"ALERT: {m}" for m in self.breach_messages]
        lines += self._first_look_lines()
        return "\n\n".join(lines)

    def head_markdown(self) -> str:
        """The guardrail section that leads the Markdown output ('' without guardrails)."""
        if not self.has_guardrails:
            return ""
        from analysis._render import md_text

        parts = [f"- **guardrail breach**: {md_text(m)}" for m in self.breach_messages]
        parts += [f"- {md_text(line)}" for line in self._first_look_lines()]
        return "\n\n".join([*parts, self.guardrails.to_markdown()])

    def tail_text(self) -> str:
        """The recommendation, as text."""
        return str(self.recommendation)

    def __str__(self) -> str:
        return "\n\n".join(p for p in (self.head_text(), self.tail_text()) if p)

    def _repr_html_(self) -> str:
        """Notebooks: the guardrail table (when there are guardrails), the breaches, then the
        recommendation."""
        import html

        parts = [f"<h4>decisions: {html.escape(self.experiment)}</h4>"]
        if self.has_guardrails:
            parts.append(self.guardrails._repr_html_())
            parts += [f"<p><b>breach:</b> {html.escape(m)}</p>" for m in self.breach_messages]
        if self.first_looks is not None and len(self.first_looks):
            parts.append(self.first_looks._repr_html_())
        parts.append(f"<pre>{html.escape(str(self.recommendation))}</pre>")
        return f"<div>{''.join(parts)}</div>"


def decide(
    result: AnalysisResult,
    metrics: Sequence[Metric],
    ledger: Ledger,
    *,
    mde: float | str | None = None,
    power: Mapping[str, bool] | None = None,
    next_step: str | None = None,
    context: CommandContext | None = None,
    where: str = "metrics",
) -> Decisions:
    """Guardrail verdicts and the recommendation of one analysed experiment.

    Args:
        result: The analysis.
        metrics: The metric definitions it ran with.
        ledger: The ledger.
        mde: Planned minimum detectable effect of the primary metrics (optional).
        power: Metric → planned power reached (optional; from a plan).
        next_step: A later ramp step of the experiment's plan, if any.
        context: Paths the advised commands name.
        where: What an error names (the metrics file).

    Examples:
        >>> import analysis as ps
        >>> from analysis.decisions import decide
        >>> from analysis.metrics.definitions import Mean
        >>> ms = [Mean("cost_usd", direction="lower", guardrail="50%")]
        >>> res = ps.analyze("data_samples/events.parquet", "data_samples/ledger.yaml",
        ...                  metrics=ms, explain=False, recovery=False)  # doctest: +SKIP
        >>> decide(res, ms, ps.load_ledger("data_samples/ledger.yaml")).guardrails  # doctest: +SKIP
    """
    table = evaluate_guardrails(result, metrics, where=where)
    rec = recommend(
        result, metrics, ledger, table, mde=mde, power=power, next_step=next_step, context=context
    )
    first: Table | None = None
    if len(result.looks):
        rows = [*result.first_looks.rows, *guardrail_first_looks(result, metrics, where=where)]
        first = dataclasses.replace(result.first_looks, rows=tuple(rows))
    return Decisions(
        experiment=result.experiment,
        guardrails=table,
        recommendation=rec,
        has_guardrails=any(m.margin is not None for m in metrics),
        first_looks=first,
    )
