"""Renderings of a :class:`~analysis.reporting.batch.Report`: self-contained HTML and Markdown.

The HTML embeds each figure as inline SVG, cleaned so that the page is deterministic and makes
no network reference: no XML declaration, DOCTYPE, ``xmlns`` or metadata (which carry
``http://`` URLs), ids prefixed per figure (several figures in one document must not share ids),
``xlink:href`` written as SVG 2 ``href``. A small inline script measures every plot once the page
is rendered and writes the sizes into ``<output id="render-check">`` (used by the browser test;
harmless otherwise).
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from analysis import _render
from analysis._render import md_code, md_text
from analysis.metrics.results import SEGMENT_SHOWN
from analysis.reporting import _captions
from analysis.reporting.plots import PLOTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analysis.reporting.batch import Report

__all__ = [
    "article_html",
    "figure_svg",
    "page_html",
    "render_html",
    "render_markdown",
    "render_summary_html",
]

EFFECT_SHOWN = (
    "analysis",
    "metric",
    "phase",
    "arm",
    "n_control",
    "n_arm",
    "control_mean",
    "arm_mean",
    "effect",
    "effect_ci_lower",
    "effect_ci_upper",
    "rel_effect",
    "pvalue_adjusted",
)

SECTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "effects",
        "Naive vs clean effects",
        "Relative effect of each treatment arm per metric: clean per phase and combined across "
        "phases (compared within time strata of each phase), and the naive number a dashboard "
        "shows (arm tags at face value, every tagged event, one window).",
    ),
    (
        "metric_by_time",
        "Metrics over time",
        "Each metric per hour and arm tag as the events carry it. Dashed lines are rollout "
        "boundaries; the shaded span is after the experiment ended (arm tags that keep "
        "flowing there are stale). Bands are event-level 95% intervals.",
    ),
    (
        "contamination",
        "Contamination by phase and label",
        "Events tagged with the experiment, by phase and the first contamination rule that "
        "matched. Only clean events enter the clean effects.",
    ),
    (
        "exposure_days",
        "Effect by days since first exposure",
        "The clean effect of the first metric on fresh units (first enrolled in the phase), by "
        "whole days since each unit's first exposure, compared within the exposure phases; the "
        "dashed line is the combined clean effect. A slope means the effect fades or grows "
        "with exposure (novelty, learning); later days hold fewer units. Descriptive: no "
        "multiplicity adjustment.",
    ),
    (
        "segments",
        "Effects by segment",
        "The clean combined effect of the first metric for the units of each segment value, "
        "a value being the unit's attribute at its first exposure (a later change never moves "
        "a unit); values with fewer than 200 units in an arm are pooled into 'other'. Each "
        "line's interval is not adjusted; report.json has Benjamini-Hochberg p-values across "
        "a column's values and Cochran's test that the effect is the same for every value (its "
        "p-value on the column's first line).",
    ),
    (
        "recovery",
        "Recovery after the rollback",
        "After the rollback: units that were served the rolled-back revision minus units that "
        "never were, overall and in conversations tainted by its turns vs fresh ones, by hours "
        "since the rollback. Observational once the experiment has ended.",
    ),
    (
        "cache",
        "Prompt cache around the boundaries",
        "Prompt-cache hit rate and cost per event by served revision, two hours either side of "
        "each boundary: a new revision starts with a cold cache.",
    ),
    (
        "baselines",
        "Eval baselines",
        "Each suite's journal and which version was the reference over time. A reference "
        "anchored to a revision the ledger rolled back is stale: gates must not grade against "
        "it.",
    ),
)

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1000px;
padding:1rem 1.5rem;color:#222;line-height:1.4}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}
.headline{font-size:1.1rem;background:#f5f7fa;border-left:4px solid #1f5fa8;padding:.6rem .8rem}
.attention{border-left:4px solid #d1495b;background:#fdf1f0;padding:.4rem .8rem}
.ok{border-left:4px solid #2a9d55;background:#eef8f1;padding:.4rem .8rem}
.kind{font-family:ui-monospace,monospace;font-size:.85rem;background:#fff;padding:0 .3rem;
border:1px solid #ddd;border-radius:3px}
figure{margin:.5rem 0}figure svg{width:100%;height:auto;display:block}
table{border-collapse:collapse;font-size:.8rem;margin:.6rem 0;display:block;overflow-x:auto}
th,td{border-bottom:1px solid #e5e5e5;padding:.15rem .35rem;text-align:right}
td{white-space:nowrap}th{vertical-align:bottom}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
caption{text-align:left;font-weight:600;padding:.2rem 0}
nav a{margin-right:.8rem}.muted{color:#666;font-size:.85rem}
#overview td{white-space:normal;overflow-wrap:anywhere}
"""

_SCRIPT = """
(function(){
  function measure(){
    var out=[];var svgs=document.querySelectorAll('figure svg');
    for(var i=0; i < svgs.length; i++){var r=svgs[i].getBoundingClientRect();
      out.push({id:svgs[i].parentNode.id,width:Math.round(r.width),height:Math.round(r.height)});}
    var tables=[];var ts=document.querySelectorAll('table');
    for(var j=0; j < ts.length; j++){var sec=ts[j].closest('section');
      var cap=ts[j].querySelector('caption');
      tables.push({section:sec ? sec.id : '',caption:cap ? cap.textContent : '',
        scrollWidth:ts[j].scrollWidth,clientWidth:ts[j].clientWidth});}
    document.getElementById('render-check').textContent=
      JSON.stringify({plots:out,tables:tables});
  }
  if(document.readyState==='complete'){measure();}else{window.addEventListener('load',measure);}
})();
"""


def figure_svg(fig: Figure, prefix: str) -> str:
    """Render ``fig`` as an inline-ready, deterministic SVG element with ids under ``prefix``."""
    from analysis.reporting.plots import style

    buf = io.StringIO()
    with style():
        fig.savefig(
            buf,
            format="svg",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    text = buf.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", text)
    text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', text)
    text = re.sub(r"<svg\s+width=\"[^\"]*\"\s+height=\"[^\"]*\"", '<svg role="img"', text, count=1)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    return text.strip()


def _figures(
    rep: Report, prefix: str = "", gaps: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each plot as inline SVG, except those that ``gaps`` replaces by a line."""
    out = {}
    for name in PLOTS:
        if (name == "baselines" and not rep.baselines) or name in (gaps or {}):
            continue
        if name == "segments" and not len(rep.analysis.segments):
            continue  # no --segment asked: no section
        out[name] = figure_svg(rep.figure(name), f"{prefix}fig-{name.replace('_', '-')}")
    return out


def _effect_rows(rep: Report) -> list[dict[str, Any]]:
    return rep.analysis.effects.to_dicts()


#: The HTML effects table: the columns a reader needs, the interval in one cell, short headers
#: (report.json and report.md keep every column).
EFFECT_HTML = (
    "analysis",
    "metric",
    "measured on",
    "phase",
    "arm",
    "units control\u00a0/ arm",
    "control mean",
    "arm mean",
    "effect",
    "95% CI",
    "relative",
    "p adjusted",
)

#: :data:`EFFECT_HTML` of a sequential report: the confidence sequence in one cell and the
#: always-valid adjusted p-value its decisions rest on.
EFFECT_HTML_SEQUENTIAL = (*EFFECT_HTML, "always-valid CS", "always-valid p adjusted")


def _effect_html_rows(rep: Report) -> list[dict[str, Any]]:
    """The effects as :data:`EFFECT_HTML` rows (``measured on`` from the metric's kind)."""
    from analysis._render import fmt
    from analysis.reporting._data import measured_on

    unit = rep.ledger.experiment(rep.experiment).unit
    kinds = {m.label: measured_on(m, unit) for m in rep.metrics}
    out = []
    for r in _effect_rows(rep):
        lo, hi = fmt(r["effect_ci_lower"]), fmt(r["effect_ci_upper"])
        cs_lo, cs_hi = fmt(r["cs_lower"]), fmt(r["cs_upper"])
        out.append(
            {
                "analysis": r["analysis"],
                "metric": r["metric"],
                "measured on": kinds.get(r["metric"], ""),
                "phase": r["phase"],
                "arm": r["arm"],
                "units control\u00a0/ arm": f"{fmt(r['n_control'])}\u00a0/ {fmt(r['n_arm'])}",
                "control mean": r["control_mean"],
                "arm mean": r["arm_mean"],
                "effect": r["effect"],
                "95% CI": f"[{lo},\u00a0{hi}]" if lo and hi else "",
                "relative": r["rel_effect"],
                "p adjusted": r["pvalue_adjusted"],
                "always-valid CS": f"[{cs_lo},\u00a0{cs_hi}]" if cs_lo and cs_hi else "",
                "always-valid p adjusted": r["pvalue_sequential_adjusted"],
            }
        )
    return out


def _key_effects(rep: Report) -> list[dict[str, Any]]:
    return [
        r
        for r in _effect_rows(rep)
        if (r["analysis"], r["phase"]) in (("clean", "combined"), ("naive", "pooled"))
    ]


def _section_tables(rep: Report, name: str) -> list[str]:
    esc = html.escape
    res = rep.analysis
    if name == "effects":
        return [
            _render.to_html(
                _effect_html_rows(rep),
                EFFECT_HTML_SEQUENTIAL if _captions.is_sequential(rep) else EFFECT_HTML,
                percent=("relative",),
                title="Effects (every column: report.json)",
            ),
            _render.to_html(
                res.explain.to_dicts(),
                res.explain.columns,
                title="Naive − clean, label by label (pooled window)",
            ),
            _paragraph(_captions.explain_note(rep)),
            _render.to_html(
                _captions.srm_rows(rep),
                _captions.srm_columns(),
                title="Sample ratio per phase (newly enrolled units; mismatch when p < threshold"
                + _srm_sequential(rep)
                + ")",
            ),
        ]
    if name == "contamination":
        n = sum(r.n_events for r in rep.contamination)
        tagged = [r._asdict() for r in rep.contamination if r.arm is not None]
        return [
            f"<p>{n:,} events in the export; units by label and arm in the second table.</p>",
            _render.to_html(
                tagged,
                ("phase", "phase_kind", "arm", "label", "n_events", "share"),
                percent=("share",),
                title="Tagged events by phase, arm and label",
            ),
            _render.to_html(
                res.exclusions.to_dicts(),
                res.exclusions.columns,
                percent=("share_events",),
                title="Tagged events and units by label and arm",
            ),
        ]
    if name == "recovery":
        if not len(res.recovery_summary):
            from analysis.reporting._gaps import rolled_back

            if rolled_back(rep.phases):
                return []  # the section's line (plot_gaps) says why
            return ["<p class='muted'>The experiment was not rolled back.</p>"]
        return [
            _render.to_html(
                _captions.recovery_rows(rep),
                _captions.RECOVERY_COLUMNS,
                title="When each exposed group is back within the margin",
            )
        ]
    if name == "cache":
        from analysis.reporting._gaps import cache_gap

        gap = cache_gap(rep)
        if not rep.cache:
            return []  # the section's line (plot_gaps) says why
        table = _render.to_html(_cache_summary(rep), _CACHE_COLUMNS, percent=_CACHE_PCT)
        return [_paragraph(gap), table]
    if name == "baselines":
        if not rep.baselines:
            return ["<p class='muted'>No baseline store (pass --store DIR).</p>"]
        return [
            _render.to_html(
                [b._asdict() for b in rep.baselines],
                ("suite", "prompt", "version", "revision", "pinned", "live_revision", "status"),
                title="Reference of each suite",
            ),
            "<ul>"
            + "".join(f"<li>{esc(b.suite)}: {esc(b.detail)}</li>" for b in rep.baselines)
            + "</ul>",
        ]
    return []


_CACHE_COLUMNS = (
    "action",
    "served_revision",
    "events_before",
    "hit_rate_before",
    "events_after",
    "hit_rate_after",
    "cost_before",
    "cost_after",
)
_CACHE_PCT = ("hit_rate_before", "hit_rate_after")


def _cache_summary(rep: Report) -> list[dict[str, Any]]:
    """Per boundary × served revision: the hour before vs the first 30 minutes after."""
    out = []
    keys = sorted({(c.boundary, c.served_revision) for c in rep.cache})
    for b, rev in keys:
        rows = [c for c in rep.cache if c.boundary == b and c.served_revision == rev]
        before = [c for c in rows if -60 <= c.minutes < 0]
        after = [c for c in rows if 0 <= c.minutes < 30]
        out.append(
            {
                "action": rows[0].action,
                "served_revision": rev,
                "events_before": sum(c.n_events for c in before),
                "hit_rate_before": _weighted(before, "hit_rate"),
                "events_after": sum(c.n_events for c in after),
                "hit_rate_after": _weighted(after, "hit_rate"),
                "cost_before": _weighted(before, "cost_mean"),
                "cost_after": _weighted(after, "cost_mean"),
            }
        )
    return out


def _weighted(rows: Sequence[Any], attr: str) -> float | None:
    pairs = [(getattr(r, attr), r.n_events) for r in rows if getattr(r, attr) == getattr(r, attr)]
    n = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / n if n else None


def _decisions_html(rep: Report, prefix: str, h2: str) -> str:
    """The guardrail verdicts (when some metric has a margin) and the recommendation."""
    dec = rep.decisions
    if dec is None:
        return ""
    esc = html.escape
    body = ""
    if dec.has_guardrails:
        body += f"<{h2}>Guardrails</{h2}>" + dec.guardrails._repr_html_()
    if dec.first_looks is not None and len(dec.first_looks):
        body += f"<{h2}>First looks</{h2}>" + dec.first_looks._repr_html_()
    rec = dec.recommendation
    items = "".join(f"<li>{esc(r)}</li>" for r in rec.reasons)
    items += "".join(f"<li>missing: {esc(m)}</li>" for m in rec.missing)
    cmds = "<pre><code>" + esc("\n".join(rec.commands)) + "</code></pre>" if rec.commands else ""
    restore = f" (restore {esc(rec.restore)})" if rec.restore else ""
    body += (
        f"<p><strong>Recommendation: {esc(rec.action)}</strong>{restore}</p><ul>{items}</ul>{cmds}"
    )
    return f"<section id='{prefix}decisions'>{body}</section>"


def _attention_html(rep: Report) -> str:
    esc = html.escape
    if not rep.attention:
        return "<div class='ok'><p>Nothing needs attention.</p></div>"
    items = "".join(
        f"<li><span class='kind'>{esc(a.kind)}</span> {esc(a.message)}</li>" for a in rep.attention
    )
    return f"<div class='attention'><p><strong>Needs attention</strong></p><ul>{items}</ul></div>"


def render_html(rep: Report) -> str:
    """The self-contained ``report.html``."""
    return page_html(f"promptstate report: {rep.experiment}", article_html(rep))


def page_html(title: str, body: str) -> str:
    """A self-contained HTML page around ``body`` (the report's style and render check)."""
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n"
        + body
        + "<output id='render-check' hidden></output>\n"
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def article_html(rep: Report, prefix: str = "", level: int = 1) -> str:
    """The report of one experiment as HTML (header, attention, sections, notes); element and
    figure ids start with ``prefix`` (several experiments on one page), headings at ``level``."""
    from analysis.reporting._gaps import plot_gaps

    esc = html.escape
    gaps = plot_gaps(rep)
    figures = _figures(rep, prefix, gaps)
    h1, h2 = f"h{level}", f"h{level + 1}"
    toc = (
        "".join(
            f"<a href='#{prefix}{name}'>{esc(title)}</a>"
            for name, title, _ in SECTIONS
            if name in figures or name in gaps
        )
        + f"<a href='#{prefix}contracts'>Contracts</a><a href='#{prefix}notes'>Notes</a>"
    )
    sections = [_decisions_html(rep, prefix, h2)]
    completeness = rep.analysis.completeness
    if len(completeness):
        table = _render.to_html(
            completeness.to_records(),
            ("kind", "phase", "start", "end", "arm", "detail"),
            title="Completeness and freshness findings",
        )
        sections.append(
            f"<section id='{prefix}completeness'><{h2}>Completeness and freshness</{h2}>"
            f"<p>{esc(_COMPLETENESS_TEXT)}</p>{table}</section>"
        )
    for name, title, default in SECTIONS:
        if name not in figures and name not in gaps and name != "baselines":
            continue
        fig = figures.get(name, "")
        text = _caption(rep, name, default)
        body = (
            f"<figure id='{prefix}plot-{name.replace('_', '-')}'>{fig}</figure>"
            if fig
            else (f"<p class='muted plot-gap'>{esc(gaps[name])}</p>" if name in gaps else "")
        ) + "".join(_section_tables(rep, name))
        sections.append(
            f"<section id='{prefix}{name}'><{h2}>{esc(title)}</{h2}><p>{esc(text)}</p>{body}"
            "</section>"
        )
    contracts = _render.to_html(
        [{**c._asdict(), "accepts": ", ".join(c.accepts)} for c in rep.contracts],
        ("name", "prompt", "accepts", "live_revision", "contract", "status"),
        title="Downstream consumers of the live revision's output",
    )
    phases = _render.to_html(
        [
            {
                **p.to_dict(),
                "start (UTC)": _utc(p.start),
                "end (UTC)": _utc(p.end),
                "allocation": _alloc(p.allocation),
                "arms": _alloc(p.arms),
            }
            for p in rep.phases
        ],
        (
            "phase",
            "kind",
            "start (UTC)",
            "end (UTC)",
            "start_action",
            "end_action",
            "allocation",
            "arms",
        ),
        title="Phases",
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in rep.notes)
    inputs = "".join(
        f"<li>{esc(k)}: {esc(str(v))}</li>" for k, v in rep.inputs.items() if v is not None
    )
    return (
        f"<header><{h1}>promptstate report: {esc(rep.experiment)} "
        f"<span class='muted'>({esc(rep.prompt)})</span></{h1}>\n"
        f"<p class='headline' id='{prefix}headline'>{esc(rep.headline)}</p>\n"
        f"{_attention_html(rep)}\n<nav>{toc}</nav>\n</header>\n<main>\n"
        + "\n".join(sections)
        + f"\n<section id='{prefix}contracts'><{h2}>Contracts</{h2}>{contracts}</section>\n"
        f"<section id='{prefix}notes'><{h2}>Notes</{h2}>{phases}<ul>{notes}</ul>"
        f"<p class='muted'>Inputs</p><ul class='muted'>{inputs}</ul></section>\n"
        "</main>\n"
    )


_COMPLETENESS_TEXT = (
    "The export checked against the ledger before any statistics: each exposure phase's window "
    "covered up to the end of the analysis, no run of empty hours (overall and per arm), and no "
    "arm whose newly enrolled units fall far and significantly below what the allocation and "
    "the other arms imply (lost logging). Effects computed on an incomplete export may be "
    "biased."
)


def _caption(rep: Report, name: str, text: str) -> str:
    """A section's caption for this report: the method as run, per-unit vs per-turn."""
    if name == "effects":
        return _captions.effects_caption(rep)
    if name == "metric_by_time":
        return " ".join(filter(None, [text, _captions.levels_note(rep, "here")]))
    if name == "cache":
        return " ".join(filter(None, [text, _captions.cache_cost_note(rep)]))
    return text


def _paragraph(text: str) -> str:
    return f"<p class='muted'>{html.escape(text)}</p>" if text else ""


def _utc(at: datetime | None) -> str:
    """``2026-11-02 09:00``: a phase boundary in UTC, short enough for the phases table."""
    return "" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M}"


def _alloc(mapping: Any) -> str:
    return ", ".join(f"{k}: {v}" for k, v in dict(mapping).items())


def render_summary_html(rep: Report) -> str:
    """A short HTML summary for notebooks (headline, attention, key effects)."""
    return (
        f"<div><p><strong>{html.escape(rep.headline)}</strong></p>{_attention_html(rep)}"
        + _render.to_html(
            _key_effects(rep), _effect_columns(rep, EFFECT_SHOWN), percent=("rel_effect",)
        )
        + "</div>"
    )


def render_markdown(rep: Report) -> str:
    """``report.md``: headline, attention, key effects, contamination, recovery, baselines.

    Every data-derived string is escaped (:func:`analysis._render.md_text` for prose,
    :func:`~analysis._render.md_code` for code spans; table cells by ``to_markdown``): no HTML
    from a column name, a reason, a contract version or a note is rendered.
    """
    from analysis.reporting._gaps import plot_gaps

    res = rep.analysis
    gaps = plot_gaps(rep)
    parts = [
        f"## promptstate report: {md_code(rep.experiment)} ({md_text(rep.prompt)})",
        "",
        f"**{md_text(rep.headline)}**",
        "",
    ]
    if rep.attention:
        parts += ["**Needs attention**", ""]
        parts += [f"- {md_code(a.kind)}: {md_text(a.message)}" for a in rep.attention]
    else:
        parts.append("Nothing needs attention.")
    if rep.decisions is not None:
        if rep.decisions.has_guardrails:
            parts += ["", "### Guardrails", "", rep.decisions.guardrails.to_markdown()]
        first = rep.decisions.first_looks
        if first is not None and len(first):
            parts += ["", "### First looks", "", first.to_markdown()]
        parts += ["", rep.decisions.recommendation.to_markdown()]
    if len(res.completeness):
        parts += [
            "",
            "### Completeness and freshness",
            "",
            _render.to_markdown(
                res.completeness.to_records(), ("kind", "phase", "start", "end", "arm")
            ),
        ]
    parts += [
        "",
        "### Effects (clean combined vs naive pooled)",
        "",
        md_text(_captions.effects_caption(rep)),
        "",
        _render.to_markdown(
            _key_effects_md(rep), _effect_columns(rep, EFFECT_MD), percent=("rel_effect",)
        ),
    ]
    for note in (_captions.explain_note(rep), gaps.get("effects", "")):
        if note:
            parts += ["", md_text(note)]
    if len(res.segments):
        combined = [r for r in res.segments.to_dicts() if r["phase"] == "combined"]
        parts += [
            "",
            "### Effects by segment (value at first exposure)",
            "",
            _render.to_markdown(combined, [c for c in SEGMENT_SHOWN if c != "phase"]),
            "",
            _render.to_markdown(
                [r for r in res.segment_heterogeneity.to_dicts() if r["phase"] == "combined"],
                ("segment", "metric", "arm", "values", "statistic", "df", "pvalue"),
                title="Does the effect differ between a segment's values? (Cochran's Q)",
            ),
        ]
    if len(res.srm):
        parts += [
            "",
            _render.to_markdown(
                _captions.srm_rows(rep),
                _captions.srm_columns(),
                title=f"Sample ratio per phase (mismatch when p < threshold{_srm_sequential(rep)})",
            ),
        ]
    parts += [
        "",
        "### Contamination",
        "",
        _render.to_markdown(
            res.exclusions.to_dicts(), res.exclusions.columns, percent=("share_events",)
        ),
    ]
    if len(res.recovery_summary) or "recovery" in gaps:
        parts += ["", "### Recovery after the rollback"]
    if len(res.recovery_summary):
        parts += [
            "",
            _render.to_markdown(_captions.recovery_rows(rep), _captions.RECOVERY_COLUMNS),
        ]
    if "recovery" in gaps:
        parts += ["", md_text(gaps["recovery"])]
    if rep.cache:
        parts += [
            "",
            "### Prompt cache (hour before vs first 30 minutes after each boundary)",
            "",
            _render.to_markdown(_cache_summary(rep), _CACHE_COLUMNS, percent=_CACHE_PCT),
        ]
    from analysis.reporting._gaps import cache_gap

    if cache_gap(rep):
        parts += ["", md_text(cache_gap(rep))]
    if rep.baselines:
        parts += [
            "",
            "### Eval baselines",
            "",
            _render.to_markdown(
                [b._asdict() for b in rep.baselines],
                ("suite", "version", "revision", "pinned", "live_revision", "status", "detail"),
            ),
        ]
    if rep.contracts:
        parts += [
            "",
            "### Contracts",
            "",
            _render.to_markdown(
                [{**c._asdict(), "accepts": ", ".join(c.accepts)} for c in rep.contracts],
                ("name", "accepts", "live_revision", "contract", "status"),
            ),
        ]
    if rep.notes:
        parts += ["", "### Notes", "", *(f"- {md_text(n)}" for n in rep.notes)]
    parts += ["", "_Plots and every table: report.html; numbers: report.json._"]
    return "\n".join(parts) + "\n"


#: report.md's key effects: :data:`EFFECT_SHOWN` with what each effect is measured on.
EFFECT_MD = (*EFFECT_SHOWN[:2], "measured_on", *EFFECT_SHOWN[2:])


def _key_effects_md(rep: Report) -> list[dict[str, Any]]:
    """The key effects with ``measured_on`` (per user, per turn, ...), as in the HTML table."""
    from analysis.reporting._data import measured_on

    unit = rep.ledger.experiment(rep.experiment).unit
    kinds = {m.label: measured_on(m, unit) for m in rep.metrics}
    return [{**r, "measured_on": kinds.get(r["metric"], "")} for r in _key_effects(rep)]


#: The always-valid columns a sequential report adds to its key effects (Markdown, notebook).
SEQUENTIAL_COLUMNS = ("cs_lower", "cs_upper", "pvalue_sequential_adjusted")


def _effect_columns(rep: Report, columns: tuple[str, ...]) -> tuple[str, ...]:
    """``columns``, with :data:`SEQUENTIAL_COLUMNS` when the report is sequential."""
    return (*columns, *SEQUENTIAL_COLUMNS) if _captions.is_sequential(rep) else columns


def _srm_sequential(rep: Report) -> str:
    """What the SRM p-value is in a sequential report (appended to the table's title)."""
    if not _captions.is_sequential(rep):
        return ""
    return "; p: the always-valid one of the sequential multinomial test"
