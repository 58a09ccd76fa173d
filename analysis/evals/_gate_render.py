"""Renderings of a :class:`~analysis.evals.gating.GateResult`: terminal text, Markdown, JUnit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.evals.gating import GateResult

__all__ = ["TABLE_COLUMNS", "junit", "junit_refusal", "markdown", "text", "title", "undecided"]

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
        f"CI: two-sided {(1 - result.alpha) * 100:.4g}% score interval (variance under "
        f"δ = −margin), alpha={result.alpha:g} two-sided; each decision one-sided at alpha/2="
        f"{result.alpha / 2:g}: pass = lower bound above −margin, regression = Holm-adjusted "
        f"p below alpha/2; mde at power {result.power:.0%}"
    )


def _reasons(result: GateResult) -> list[str]:
    return [f"{m.metric}: {m.verdict} — {m.reason}" for m in result.metrics if m.reason]


def undecided(result: GateResult) -> list[str]:
    """One line per inconclusive metric: how many examples would decide it (``n_required``).

    ``n_required`` is the number of examples at which a regression of twice the margin is
    flagged with the gate's power (and an unchanged candidate passes); the JSON output carries
    it for every metric, the text and Markdown renderings say it where the verdict is open.
    """
    out = []
    for m in result.metrics:
        if m.verdict != "inconclusive":
            continue
        if m.n_required is None:
            out.append(
                f"{m.metric}: inconclusive with {m.n:,} examples; how many would decide it "
                "cannot be estimated from these scores (no spread)"
            )
        else:
            out.append(
                f"{m.metric}: inconclusive with {m.n:,} examples — about {m.n_required:,} "
                f"examples would decide it (n_required at power {result.power:.0%})"
            )
    return out


def text(result: GateResult) -> str:
    """Terminal table with the conventions, withheld decisions, checks and notes."""
    from analysis._render import to_text

    lines = [to_text(result.rows(), TABLE_COLUMNS, title=title(result)), _conventions(result)]
    lines.extend(_reasons(result))
    lines.extend(undecided(result))
    lines.extend(f"check {c.name}: {c.status} — {c.detail}" for c in result.checks)
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


def markdown(result: GateResult) -> str:
    """Markdown for a pull-request comment or a CI step summary."""
    from analysis._render import md_text, to_markdown

    icon = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}[result.verdict]
    out = [
        f"### {icon} {md_text(title(result))}",
        "",
        to_markdown(result.rows(), TABLE_COLUMNS),
        "",
    ]
    out.append(f"_{_conventions(result)}._")
    out.append("")
    out.extend(f"- **{md_text(r)}**" for r in _reasons(result))
    out.extend(f"- **{md_text(r)}**" for r in undecided(result))
    out.extend(
        f"- **{md_text(c.name)}** ({md_text(c.status)}): {md_text(c.detail)}" for c in result.checks
    )
    out.extend(f"- note: {md_text(n)}" for n in result.notes)
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
                + (
                    f"; about {m.n_required:,} examples would decide it (n_required)"
                    if m.verdict == "inconclusive" and m.n_required is not None
                    else ""
                )
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


def junit_refusal(suite: str, kind: str, message: str, command: str = "") -> str:
    """JUnit XML for a gate that refused to grade (a stale or invalid baseline, exit code 3).

    One ``<testsuite errors="1">`` holding one ``<testcase>`` whose ``<error type=KIND>`` says why
    and, when there is one, the exact command to run — so CI shows the refusal, not "no test
    report".

    Args:
        suite: The suite the gate was asked to grade against.
        kind: The error type shown by CI, e.g. ``StaleBaseline``.
        message: Why the gate refused (the error's one-line message).
        command: The command that fixes it (``""`` when the message has none).
    """
    from xml.sax.saxutils import escape, quoteattr

    name = quoteattr("promptstate.gate." + suite)
    short = message if not command or command in message else f"{message} (run: {command})"
    body = message + (f"\n\nRun:\n  {command}" if command else "")
    return "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<testsuite name={name} tests="1" failures="0" errors="1" skipped="0">',
            f'  <testcase classname={name} name="reference baseline">',
            f"    <error type={quoteattr(kind)} message={quoteattr(short)}>{escape(body)}</error>",
            "  </testcase>",
            "</testsuite>",
        ]
    )
