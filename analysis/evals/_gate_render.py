"""Renderings of a :class:`~analysis.evals.gating.GateResult`: terminal text, Markdown, JUnit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.evals.gating import GateResult

__all__ = ["TABLE_COLUMNS", "junit", "markdown", "text", "title"]

TABLE_COLUMNS = (
    "metric",
    "n",
    "reference_mean",
    "candidate_mean",
    "diff",
    "ci_lower",
    "ci_upper",
    "margin",
    "p_regression_adjusted",
    "pvalue",
    "mde",
    "verdict",
)


def title(result: GateResult) -> str:
    """``gate SUITE: CANDIDATE vs VERSION (REVISION) — VERDICT``."""
    cand = result.revision or result.candidate
    ref = result.reference
    return (
        f"gate {result.suite}: {cand} vs {ref.version} ({ref.revision}) — {result.verdict.upper()}"
    )


def _conventions(result: GateResult) -> str:
    return (
        f"CI: two-sided {1 - 2 * result.alpha:.0%} score interval (variance under δ = −margin); "
        f"decisions one-sided at alpha={result.alpha:g}: pass = lower bound above −margin, "
        f"regression = Holm-adjusted p below alpha; mde at power {result.power:.0%}"
    )


def _reasons(result: GateResult) -> list[str]:
    return [f"{m.metric}: {m.verdict} — {m.reason}" for m in result.metrics if m.reason]


def text(result: GateResult) -> str:
    """Terminal table with the conventions, withheld decisions, checks and notes."""
    from analysis._render import to_text

    lines = [to_text(result.rows(), TABLE_COLUMNS, title=title(result)), _conventions(result)]
    lines.extend(_reasons(result))
    lines.extend(f"check {c.name}: {c.status} — {c.detail}" for c in result.checks)
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


def markdown(result: GateResult) -> str:
    """Markdown for a pull-request comment or a CI step summary."""
    from analysis._render import to_markdown

    icon = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}[result.verdict]
    out = [f"### {icon} {title(result)}", "", to_markdown(result.rows(), TABLE_COLUMNS), ""]
    out.append(f"_{_conventions(result)}._")
    out.append("")
    out.extend(f"- **{r}**" for r in _reasons(result))
    out.extend(f"- **{c.name}** ({c.status}): {c.detail}" for c in result.checks)
    out.extend(f"- note: {n}" for n in result.notes)
    return "\n".join(out)


def junit(result: GateResult) -> str:
    """JUnit XML: one test case per metric; regression and inconclusive are failures."""
    from xml.sax.saxutils import quoteattr

    from analysis._render import fmt

    cases = []
    failures = 0
    suite = quoteattr("promptstate.gate." + result.suite)
    for m in result.metrics:
        body = ""
        if m.verdict != "pass":
            failures += 1
            msg = (
                f"{m.metric}: {m.verdict}: diff {fmt(m.diff)} "
                f"[{fmt(m.ci_lower)}, {fmt(m.ci_upper)}], margin {fmt(m.margin)}, "
                f"p_regression_adjusted {fmt(m.p_regression_adjusted)}, mde {fmt(m.mde)}"
                + (f"; {m.reason}" if m.reason else "")
            )
            body = f"<failure type={quoteattr(m.verdict)} message={quoteattr(msg)}/>"
        cases.append(f"  <testcase classname={suite} name={quoteattr(m.metric)}>{body}</testcase>")
    head = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name={suite} '
        f'tests="{len(result.metrics)}" failures="{failures}" errors="0">'
    )
    props = "".join(
        f"<property name={quoteattr(k)} value={quoteattr(str(v))}/>"
        for k, v in (
            ("verdict", result.verdict),
            ("reference", result.reference.version),
            ("reference_revision", result.reference.revision),
            ("candidate_revision", result.revision),
        )
    )
    return "\n".join([head, f"  <properties>{props}</properties>", *cases, "</testsuite>"])
