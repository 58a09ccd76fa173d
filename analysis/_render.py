"""Plain-text, Markdown and HTML renderings of small tidy tables.

Shared by every result type so that tables look the same everywhere. Numbers are shown with
3 significant digits (integers in full); ``None``/NaN as an empty cell.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["fmt", "md_cell", "md_code", "md_text", "to_html", "to_markdown", "to_text"]

Row = Mapping[str, Any]


def fmt(value: Any, *, digits: int = 3, percent: bool = False) -> str:
    """Format one cell: 3 significant digits for floats, integers in full, '' for missing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if percent:
            return (
                f"{value * 100:.{max(digits - 2, 1)}g}%"
                if abs(value) < 0.01
                else (f"{value * 100:.{digits}g}%")
            )
        if value == 0:
            return "0"
        if abs(value) >= 10**digits:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def md_text(text: object) -> str:
    """Escape data-derived prose for Markdown so that no HTML from the data is rendered.

    ``&`` and ``<`` become entities (every CommonMark renderer shows them as the characters;
    without a ``<`` nothing can open a tag, so ``->`` stays readable as it is); newlines become
    spaces so one value cannot start a new block. Use it for every value that comes from user
    data or user files (column names, reasons, contract versions, notes that quote them) before
    it goes into a Markdown document.
    """
    flat = " ".join(str(text).splitlines())
    return flat.replace("&", "&amp;").replace("<", "&lt;")


def md_cell(text: object) -> str:
    """Escape one Markdown table cell: :func:`md_text` plus ``|``, which would end the cell."""
    return md_text(text).replace("|", "\\|")


def md_code(text: object) -> str:
    """A Markdown code span holding ``text`` literally, whatever backticks it contains.

    The fence is one backtick longer than the longest run of backticks inside (CommonMark's
    rule), padded with a space when the text starts or ends with a backtick. HTML inside a code
    span is shown as text, never rendered, so nothing else needs escaping.
    """
    flat = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _cells(rows: Sequence[Row], columns: Sequence[str], percent: Sequence[str]) -> list[list[str]]:
    return [[fmt(r.get(c), percent=c in percent) for c in columns] for r in rows]


def to_text(
    rows: Sequence[Row], columns: Sequence[str], *, percent: Sequence[str] = (), title: str = ""
) -> str:
    """Render rows as an aligned plain-text table (numbers right-aligned)."""
    cells = _cells(rows, columns, percent)
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(r.get(c), int | float) or r.get(c) is None for r in rows) for c in columns
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out.append(line(list(columns)))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def to_markdown(
    rows: Sequence[Row], columns: Sequence[str], *, percent: Sequence[str] = (), title: str = ""
) -> str:
    """Render rows as a GitHub-flavoured Markdown table."""
    cells = _cells(rows, columns, percent)
    out = [f"**{md_text(title)}**", ""] if title else []
    out.append("| " + " | ".join(md_cell(c) for c in columns) + " |")
    out.append("|" + "|".join("---" for _ in columns) + "|")
    out.extend("| " + " | ".join(md_cell(v) for v in r) + " |" for r in cells)
    return "\n".join(out)


def to_html(
    rows: Sequence[Row], columns: Sequence[str], *, percent: Sequence[str] = (), title: str = ""
) -> str:
    """Render rows as a small HTML table (for ``_repr_html_`` and reports)."""
    cells = _cells(rows, columns, percent)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in cells
    )
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
