"""Metric definitions: what each metric is, and which unit-level aggregates it needs.

A metric names its columns and options; it does not touch data. It declares the unit-level
variables to aggregate (:meth:`unit_aggs`, narwhals expressions evaluated per unit in one
``group_by``) and the function of their means that is the metric (:meth:`statistic`). The data
work is in :mod:`analysis.metrics.aggregation`, the statistics in :mod:`analysis.stats`.

Estimands (``u`` runs over the units of an arm, ``e`` over a unit's events in the window):

- :class:`Mean` — ``E_u[Σ_e x]``: the per-unit total averaged over units (cost per user).
- :class:`Ratio` — ``Σ_u Σ_e num / Σ_u Σ_e den``; ``den=None`` counts the events with a non-null
  numerator (helpfulness per turn). Variance by the delta method over units.
- :class:`Proportion` — ``P_u[any_e x]``: share of units with at least one true (non-zero) value.
- :class:`Quantile` — the ``q``-quantile of the event values, with the clustered outer interval
  of Deng, Knoblich and Lu (2018) (see :mod:`analysis.stats.quantile`).

Options (keyword-only, on every metric):

- ``name`` — the metric's name in results (default: the column, ``{col}_p95`` for quantiles).
- ``direction`` — ``higher`` or ``lower`` is better (reported, used for the ``better`` column).
- ``cap=(lower, upper)`` — clip event values at absolute bounds (either may be ``None``).
- ``winsorize=upper`` or ``(lower, upper)`` — clip event values at these percentiles of the
  analysed events of both arms (one extra small pass computes the bounds).
- ``cuped=True`` — CUPED with the same metric over a pre-exposure window of ``cuped_days``
  (default 14) days before each unit's first exposure; or ``covariate="col"`` — CUPED with the
  per-unit mean of a given column (for example a pre-computed pre-period value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import narwhals as nw

from analysis.errors import PromptstateError
from analysis.stats.delta import Identity, RatioOf, Statistic

__all__ = ["Mean", "Metric", "MomentMetric", "Proportion", "Quantile", "Ratio", "load_metrics"]

Direction = Literal["higher", "lower"]
Bounds = tuple[float | None, float | None]


def _check_common(m: Any) -> None:
    where = f"{type(m).__name__}({m.column!r})"
    if m.direction not in ("higher", "lower"):
        raise PromptstateError(f"{where}: direction must be 'higher' or 'lower'")
    if m.cap is not None and (len(m.cap) != 2):
        raise PromptstateError(f"{where}: cap must be (lower, upper), either may be None")
    if m.winsorize is not None:
        lo, hi = m.winsorize_bounds
        for v in (lo, hi):
            if v is not None and not 0 < v < 1:
                raise PromptstateError(f"{where}: winsorize percentiles must lie in (0, 1)")
    if m.cuped and m.covariate is not None:
        raise PromptstateError(f"{where}: use either cuped=True or covariate=..., not both")
    if not (m.cuped_days > 0 and math.isfinite(m.cuped_days)):
        raise PromptstateError(f"{where}: cuped_days must be a positive number of days")


@dataclass(frozen=True)
class _Options:
    _: KW_ONLY
    name: str | None = None
    direction: Direction = "higher"
    cap: Bounds | None = None
    winsorize: float | Bounds | None = None
    cuped: bool = False
    cuped_days: float = 14.0
    covariate: str | None = None

    @property
    def winsorize_bounds(self) -> Bounds:
        """Percentile bounds ``(lower, upper)`` of winsorization (``None``: not clipped)."""
        w = self.winsorize
        if w is None:
            return (None, None)
        if isinstance(w, int | float):
            return (None, float(w))
        return (w[0], w[1])

    @property
    def has_covariate(self) -> bool:
        """Whether the metric is CUPED-adjusted."""
        return self.cuped or self.covariate is not None

    def value_expr(self, column: str) -> nw.Expr:
        """Event-level value of ``column``: numeric, clipped at ``cap`` (absolute bounds)."""
        expr = nw.col(column).cast(nw.Float64)
        if self.cap is not None and (self.cap[0] is not None or self.cap[1] is not None):
            expr = expr.clip(self.cap[0], self.cap[1])
        return expr


@dataclass(frozen=True)
class Mean(_Options):
    """Per-unit total of ``column``, averaged over units (e.g. cost per user).

    Examples:
        >>> Mean("cost_usd", cuped=True).label
        'cost_usd'
    """

    column: str

    def __post_init__(self) -> None:
        _check_common(self)

    @property
    def label(self) -> str:
        """Name in results."""
        return self.name or self.column

    @property
    def columns(self) -> tuple[str, ...]:
        """Event columns the metric reads."""
        return (self.column,) + ((self.covariate,) if self.covariate else ())

    def unit_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit aggregates of the analysis window, named with prefix ``p``."""
        out = [self.value_expr(self.column).sum().alias(f"{p}y")]
        if self.covariate:
            out.append(nw.col(self.covariate).cast(nw.Float64).mean().alias(f"{p}z"))
        return out

    def pre_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit aggregates of the pre-exposure window (CUPED)."""
        return [self.value_expr(self.column).sum().alias(f"{p}z")] if self.cuped else []

    def variables(self, p: str) -> tuple[str, ...]:
        """Unit-level variables of the sufficient statistics."""
        return (f"{p}y", f"{p}z") if self.has_covariate else (f"{p}y",)

    def statistic(self, p: str) -> Statistic:
        """The metric as a function of unit-level means."""
        return Identity(f"{p}y")

    def covariate_statistic(self, p: str) -> Statistic | None:
        """The CUPED covariate as a function of unit-level means, or None."""
        return Identity(f"{p}z") if self.has_covariate else None


@dataclass(frozen=True)
class Proportion(Mean):
    """Share of units with at least one true (non-zero) value of ``column``.

    Examples:
        >>> Proportion("thumbs_up").label
        'thumbs_up'
    """

    def _indicator(self) -> nw.Expr:
        return (self.value_expr(self.column) > 0).cast(nw.Float64).max().fill_null(0.0)

    def unit_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit indicator (and given covariate)."""
        out = [self._indicator().alias(f"{p}y")]
        if self.covariate:
            out.append(nw.col(self.covariate).cast(nw.Float64).mean().alias(f"{p}z"))
        return out

    def pre_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit indicator over the pre-exposure window (CUPED)."""
        return [self._indicator().alias(f"{p}z")] if self.cuped else []


@dataclass(frozen=True)
class Ratio(_Options):
    """``Σ numerator / Σ denominator`` over the units of an arm (e.g. helpfulness per turn).

    ``den=None`` divides by the number of events with a non-null numerator. The unit is the
    independent observation: the variance is the delta method over unit totals.

    Examples:
        >>> Ratio("helpfulness").label
        'helpfulness'
        >>> Ratio("cached_tokens", "prompt_tokens").label
        'cached_tokens/prompt_tokens'
    """

    num: str
    den: str | None = None

    def __post_init__(self) -> None:
        _check_common(self)

    @property
    def column(self) -> str:
        """The numerator column."""
        return self.num

    @property
    def label(self) -> str:
        """Name in results."""
        return self.name or (self.num if self.den is None else f"{self.num}/{self.den}")

    @property
    def columns(self) -> tuple[str, ...]:
        """Event columns the metric reads."""
        cols = (self.num,) if self.den is None else (self.num, self.den)
        return cols + ((self.covariate,) if self.covariate else ())

    def _pair(self, p: str, y: str, x: str) -> list[nw.Expr]:
        num = self.value_expr(self.num)
        den = (
            num.is_null().__invert__().cast(nw.Float64)
            if self.den is None
            else (nw.col(self.den).cast(nw.Float64))
        )
        return [num.sum().alias(f"{p}{y}"), den.sum().alias(f"{p}{x}")]

    def unit_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit numerator and denominator totals (and given covariate)."""
        out = self._pair(p, "y", "x")
        if self.covariate:
            out.append(nw.col(self.covariate).cast(nw.Float64).mean().alias(f"{p}z"))
        return out

    def pre_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit pre-exposure numerator and denominator (CUPED)."""
        return self._pair(p, "zy", "zx") if self.cuped else []

    def variables(self, p: str) -> tuple[str, ...]:
        """Unit-level variables of the sufficient statistics."""
        if self.cuped:
            return (f"{p}y", f"{p}x", f"{p}zy", f"{p}zx")
        if self.covariate:
            return (f"{p}y", f"{p}x", f"{p}z")
        return (f"{p}y", f"{p}x")

    def statistic(self, p: str) -> Statistic:
        """``mean(y) / mean(x)``."""
        return RatioOf(f"{p}y", f"{p}x")

    def covariate_statistic(self, p: str) -> Statistic | None:
        """Pre-period ratio, or the given covariate's mean, or None."""
        if self.cuped:
            return RatioOf(f"{p}zy", f"{p}zx")
        return Identity(f"{p}z") if self.covariate else None


@dataclass(frozen=True)
class Quantile(_Options):
    """The ``q``-quantile of the event values of ``column`` (e.g. p95 latency).

    The interval respects clustering by unit (Deng, Knoblich and Lu 2018; Woodruff outer
    interval); CUPED does not apply.

    Examples:
        >>> Quantile("latency_ms", 0.95, direction="lower").label
        'latency_ms_p95'
    """

    column: str
    q: float = 0.5

    def __post_init__(self) -> None:
        _check_common(self)
        where = f"Quantile({self.column!r})"
        if not 0 < self.q < 1:
            raise PromptstateError(f"{where}: q must lie in (0, 1), e.g. 0.95")
        if self.has_covariate:
            raise PromptstateError(f"{where}: CUPED is not available for quantiles")

    @property
    def label(self) -> str:
        """Name in results."""
        return self.name or f"{self.column}_p{round(self.q * 100, 1):g}"

    @property
    def columns(self) -> tuple[str, ...]:
        """Event columns the metric reads."""
        return (self.column,)


Metric = Mean | Proportion | Ratio | Quantile
#: Metrics computed from unit-level moments (every kind but quantiles).
MomentMetric = Mean | Proportion | Ratio


def with_bounds(metric: Metric, lower: float | None, upper: float | None) -> Metric:
    """The metric with winsorization resolved to absolute ``cap`` bounds."""
    lo0, hi0 = metric.cap if metric.cap is not None else (None, None)
    lo = lower if lo0 is None else (lo0 if lower is None else max(lo0, lower))
    hi = upper if hi0 is None else (hi0 if upper is None else min(hi0, upper))
    return replace(metric, cap=(lo, hi), winsorize=None)


# ------------------------------------------------------------------------------------------
# metrics files

_KINDS: dict[str, type[Any]] = {
    "mean": Mean,
    "proportion": Proportion,
    "ratio": Ratio,
    "quantile": Quantile,
}
_OPTION_KEYS = {"name", "direction", "cap", "winsorize", "cuped", "cuped_days", "covariate"}


def _entry(where: str, item: Any) -> Metric:
    if not isinstance(item, dict):
        raise PromptstateError(f"{where}: expected a mapping with a 'type' key")
    kind = item.get("type")
    if kind not in _KINDS:
        raise PromptstateError(f"{where}: 'type' must be one of {', '.join(_KINDS)}, got {kind!r}")
    options = {k: v for k, v in item.items() if k in _OPTION_KEYS}
    if isinstance(options.get("cap"), list):
        options["cap"] = tuple(options["cap"])
    if isinstance(options.get("winsorize"), list):
        options["winsorize"] = tuple(options["winsorize"])
    positional: dict[str, set[str]] = {
        "mean": {"column"},
        "proportion": {"column"},
        "ratio": {"numerator", "denominator", "num", "den"},
        "quantile": {"column", "q"},
    }
    unknown = set(item) - _OPTION_KEYS - positional[kind] - {"type"}
    if unknown:
        raise PromptstateError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        if kind == "ratio":
            num = item.get("numerator", item.get("num"))
            if not isinstance(num, str):
                raise PromptstateError(f"{where}: a ratio needs 'numerator' (a column name)")
            metric: Metric = Ratio(num, item.get("denominator", item.get("den")), **options)
        elif kind == "quantile":
            if not isinstance(item.get("column"), str) or "q" not in item:
                raise PromptstateError(f"{where}: a quantile needs 'column' and 'q'")
            metric = Quantile(item["column"], float(item["q"]), **options)
        else:
            if not isinstance(item.get("column"), str):
                raise PromptstateError(f"{where}: a {kind} needs 'column' (a column name)")
            metric = _KINDS[kind](item["column"], **options)
    except PromptstateError as exc:
        raise PromptstateError(f"{where}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise PromptstateError(f"{where}: {exc}") from exc
    return metric


def load_metrics(path: str | Path) -> tuple[Metric, ...]:
    """Read metric definitions from a YAML (or JSON) file.

    The file holds ``metrics:``, a list of entries such as::

        metrics:
          - {type: ratio, numerator: helpfulness}
          - {type: proportion, column: thumbs_up}
          - {type: mean, column: cost_usd, cuped: true, direction: lower}
          - {type: quantile, column: latency_ms, q: 0.95, direction: lower}

    Raises:
        PromptstateError: the file is unreadable or an entry is invalid (the message names it).
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PromptstateError(f"{path}: cannot read the metrics file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise PromptstateError(f"{path}: not valid YAML/JSON: {exc}") from exc
    items = data.get("metrics") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise PromptstateError(f"{path}: expected 'metrics:' with a list of metric entries")
    metrics = tuple(_entry(f"{path}: metrics[{i}]", item) for i, item in enumerate(items))
    check_names(metrics, where=str(path))
    return metrics


def check_names(metrics: Sequence[Metric], *, where: str = "metrics") -> None:
    """Raise when two metrics share a name (set ``name=`` to tell them apart)."""
    seen: set[str] = set()
    for m in metrics:
        if m.label in seen:
            raise PromptstateError(f"{where}: two metrics are named {m.label!r}; set name=")
        seen.add(m.label)
