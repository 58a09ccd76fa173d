"""A small typed table of NamedTuple rows with the renderings every result offers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from analysis import _render

__all__ = ["Table"]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Table:
    """Rows (NamedTuples of one type) with stable column names.

    Attributes:
        rows: The rows.
        columns: Column names (the NamedTuple's fields, in order).
        title: Caption in text/Markdown/HTML renderings.
        shown: Columns shown in the text renderings (default: all).
        percent: Columns rendered as percentages.
    """

    rows: tuple[NamedTuple, ...]
    columns: tuple[str, ...]
    title: str = ""
    shown: tuple[str, ...] | None = None
    percent: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.rows)

    def to_dicts(self) -> list[dict[str, Any]]:
        """Rows as dictionaries (NaN kept as float NaN)."""
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-friendly rows: NaN → None, datetimes → ISO text."""
        return [{k: _plain(v) for k, v in d.items()} for d in self.to_dicts()]

    def to_polars(self) -> Any:
        """A polars DataFrame with the table's columns."""
        import polars as pl

        data = {c: [getattr(r, c) for r in self.rows] for c in self.columns}
        return pl.DataFrame(data, strict=False, nan_to_null=False)

    def to_pandas(self) -> Any:
        """A pandas DataFrame with the table's columns."""
        import pandas as pd

        return pd.DataFrame(self.to_dicts(), columns=list(self.columns))

    def _view(self) -> tuple[list[dict[str, Any]], Sequence[str]]:
        return self.to_dicts(), self.shown or self.columns

    def __str__(self) -> str:
        rows, cols = self._view()
        return _render.to_text(rows, cols, percent=self.percent, title=self.title)

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table."""
        rows, cols = self._view()
        return _render.to_markdown(rows, cols, percent=self.percent, title=self.title)

    def _repr_html_(self) -> str:
        rows, cols = self._view()
        return _render.to_html(rows, cols, percent=self.percent, title=self.title)
