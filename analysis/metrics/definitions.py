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
- ``direction`` — ``higher`` or ``lower`` is better (used for the ``better`` column and the
  regression check of ``analyze``); left out, the metric has no direction and is never a
  regression.
- ``cap=(lower, upper)`` — clip event values at absolute bounds (either may be ``None``).
- ``winsorize=upper`` or ``(lower, upper)`` — clip event values at these percentiles of the
  analysed events of both arms (one extra small pass computes the bounds).
- ``cuped`` — regression adjustment (CUPED) with the same metric over a pre-exposure window of
  ``cuped_days`` (default 14) days before each unit's first exposure, plus an indicator "the
  unit has pre-period events" (its pre-period value is 0 when it has none). ``None`` (the
  default): adjust whenever some unit has pre-period events; ``True``: the same; ``False``: never.
  Or ``covariate="col"`` — adjust with the per-unit mean of a given column (for example a
  pre-computed pre-period value) instead.
- ``guardrail`` — a non-inferiority margin (needs a ``direction``): absolute in the metric's unit
  (``guardrail=20``) or relative to the control arm's value (``guardrail="2%"``); the metric is
  then judged ``ok``, ``breach`` or ``inconclusive`` against it
  (:mod:`analysis.decisions`). In a metrics file: ``guardrail: {margin: 20}``.
- ``primary`` — ``True`` marks a primary metric (needs a ``direction``): the recommendation
  rolls back when one regresses and waits for each to reach its planned power.

Missing values: NaN, ±inf and null values of a metric's columns are left out of that metric
only (an event of a ratio counts only when its numerator and denominator are both finite); the
analysis counts them (:func:`missing_expr`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import narwhals as nw

from analysis.errors import PromptstateError
from analysis.stats.delta import Identity, RatioOf, Statistic

__all__ = [
    "Mean",
    "Metric",
    "MomentMetric",
    "Proportion",
    "Quantile",
    "Ratio",
    "load_metrics",
    "parse_margin",
]

Direction = Literal["higher", "lower"]
Bounds = tuple[float | None, float | None]


def _check_common(m: Any) -> None:
    where = f"{type(m).__name__}({m.column!r})"
    if m.direction not in ("higher", "lower", None):
        raise PromptstateError(f"{where}: direction must be 'higher' or 'lower' (or left out)")
    if m.cap is not None and (len(m.cap) != 2):
        raise PromptstateError(f"{where}: cap must be (lower, upper), either may be None")
    if m.winsorize is not None:
        lo, hi = m.winsorize_bounds
        for v in (lo, hi):
            if v is not None and not 0 < v < 1:
                raise PromptstateError(f"{where}: winsorize percentiles must lie in (0, 1)")
    if m.cuped is not None and not isinstance(m.cuped, bool):
        raise PromptstateError(f"{where}: cuped must be true, false or left out (automatic)")
    if m.cuped and m.covariate is not None:
        raise PromptstateError(f"{where}: use either cuped=True or covariate=..., not both")
    if not (m.cuped_days > 0 and math.isfinite(m.cuped_days)):
        raise PromptstateError(f"{where}: cuped_days must be a positive number of days")
    if not isinstance(m.primary, bool):
        raise PromptstateError(f"{where}: primary must be true or false")
    if m.primary and m.direction is None:
        raise PromptstateError(
            f"{where}: a primary metric needs a direction (direction='higher' or 'lower')"
        )
    if m.guardrail is not None:
        if m.direction is None:
            raise PromptstateError(
                f"{where}: a guardrail needs a direction (direction='higher' or 'lower'), so "
                "that it is known which change is harm"
            )
        parse_margin(m.guardrail, where=where)


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def parse_margin(value: Any, *, where: str = "guardrail") -> tuple[float, bool]:
    """A guardrail margin as ``(value, relative)``: ``20`` → ``(20.0, False)``, ``"2%"`` →
    ``(0.02, True)`` (a share of the control arm's value).

    Raises:
        PromptstateError: not a positive finite number or a percent string such as ``"2%"``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PromptstateError(
            f"{where}: guardrail margin must be a positive number (absolute, in the metric's "
            f"unit) or a percent string such as '2%', got {value!r}"
        )
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match is None:
            raise PromptstateError(
                f"{where}: guardrail margin {value!r} is not a percent such as '2%' (or give an "
                "absolute number in the metric's unit)"
            )
        share = float(match.group(1)) / 100
        if not share > 0:
            raise PromptstateError(f"{where}: guardrail margin {value!r} must be above 0%")
        return share, True
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise PromptstateError(
            f"{where}: guardrail margin must be a positive finite number, got {value!r}"
        )
    return number, False


@dataclass(frozen=True)
class _Options:
    _: KW_ONLY
    name: str | None = None
    direction: Direction | None = None
    cap: Bounds | None = None
    winsorize: float | Bounds | None = None
    cuped: bool | None = None
    cuped_days: float = 14.0
    covariate: str | None = None
    guardrail: float | str | None = None
    primary: bool = False

    @property
    def margin(self) -> tuple[float, bool] | None:
        """The guardrail margin as ``(value, relative)`` (None: not a guardrail)."""
        return None if self.guardrail is None else parse_margin(self.guardrail)

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
    def pre_period(self) -> bool:
        """Whether the metric reads its own pre-period value as covariate (``cuped`` not False
        and no ``covariate`` column); it is used when some unit has pre-period events."""
        return self.cuped is not False and self.covariate is None

    @property
    def has_covariate(self) -> bool:
        """Whether the metric may be regression-adjusted (pre-period value or given column)."""
        return self.pre_period or self.covariate is not None

    def value_expr(self, column: str) -> nw.Expr:
        """Event-level value of ``column``: numeric, clipped at ``cap`` (absolute bounds); null
        where the value is NaN, ±inf or null (left out of the metric)."""
        raw = nw.col(column).cast(nw.Float64)
        expr = nw.when(raw.is_finite()).then(raw)
        if self.cap is not None and (self.cap[0] is not None or self.cap[1] is not None):
            expr = expr.clip(self.cap[0], self.cap[1])
        return expr

    def missing_expr(self) -> nw.Expr:
        """Event-level flag: some column the metric reads is NaN, ±inf or null."""
        out: nw.Expr | None = None
        for c in self.columns:  # type: ignore[attr-defined]
            bad = (~nw.col(c).cast(nw.Float64).is_finite()).fill_null(value=True)
            out = bad if out is None else out | bad
        assert out is not None
        return out

    def kind_exprs(self, p: str) -> list[nw.Expr]:
        """Event counts by kind of missing value (``{p}nan``, ``{p}inf``, ``{p}null``) over the
        metric's columns (an event counts once per kind, the first column that has it)."""
        nan = inf = null = nw.lit(value=False)
        for c in self.columns:  # type: ignore[attr-defined]
            v = nw.col(c).cast(nw.Float64)
            null = null | v.is_null()
            nan = nan | v.is_nan().fill_null(value=False)
            inf = inf | (v.abs() == float("inf")).fill_null(value=False)
        return [
            nan.cast(nw.Float64).sum().alias(f"{p}nan"),
            inf.cast(nw.Float64).sum().alias(f"{p}inf"),
            null.cast(nw.Float64).sum().alias(f"{p}null"),
        ]


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
            out.append(self.value_expr(self.covariate).mean().alias(f"{p}z"))
        return out

    def pre_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit aggregates of the pre-exposure window: the pre-period value and the
        indicator of pre-period events (regression adjustment)."""
        if not self.pre_period:
            return []
        return [self.value_expr(self.column).sum().alias(f"{p}z"), _has_events(p)]

    def variables(self, p: str) -> tuple[str, ...]:
        """Unit-level variables of the sufficient statistics."""
        return (f"{p}y", *self.covariates(p))

    def covariates(self, p: str) -> tuple[str, ...]:
        """The unit-level covariates of the regression adjustment (may be empty)."""
        if self.pre_period:
            return (f"{p}z", f"{p}d")
        return (f"{p}z",) if self.covariate else ()

    def statistic(self, p: str) -> Statistic:
        """The metric as a function of unit-level means."""
        return Identity(f"{p}y")

    def covariate_statistic(self, p: str) -> Statistic | None:
        """The covariate's mean (the pre-period value or the given column), or None."""
        cov = self.covariates(p)
        return Identity(cov[0]) if cov else None


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
            out.append(self.value_expr(self.covariate).mean().alias(f"{p}z"))
        return out

    def pre_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit indicator over the pre-exposure window and of pre-period events."""
        return [self._indicator().alias(f"{p}z"), _has_events(p)] if self.pre_period else []


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
        if self.den is None:
            den = num.is_null().__invert__().cast(nw.Float64)
        else:  # an event counts when both its numerator and its denominator are finite
            d = self.value_expr(self.den)
            both = ~num.is_null() & ~d.is_null()
            num, den = nw.when(both).then(num), nw.when(both).then(d)
        return [num.sum().alias(f"{p}{y}"), den.sum().alias(f"{p}{x}")]

    def unit_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit numerator and denominator totals (and given covariate)."""
        out = self._pair(p, "y", "x")
        if self.covariate:
            out.append(self.value_expr(self.covariate).mean().alias(f"{p}z"))
        return out

    def pre_aggs(self, p: str) -> list[nw.Expr]:
        """Per-unit pre-exposure numerator and denominator and the indicator of pre-period
        events (regression adjustment)."""
        return [*self._pair(p, "zy", "zx"), _has_events(p)] if self.pre_period else []

    def variables(self, p: str) -> tuple[str, ...]:
        """Unit-level variables of the sufficient statistics."""
        return (f"{p}y", f"{p}x", *self.covariates(p))

    def covariates(self, p: str) -> tuple[str, ...]:
        """The unit-level covariates of the regression adjustment: the pre-period numerator and
        denominator totals and the indicator of pre-period events (or the given column)."""
        if self.pre_period:
            return (f"{p}zy", f"{p}zx", f"{p}d")
        return (f"{p}z",) if self.covariate else ()

    def statistic(self, p: str) -> Statistic:
        """``mean(y) / mean(x)``."""
        return RatioOf(f"{p}y", f"{p}x")

    def covariate_statistic(self, p: str) -> Statistic | None:
        """Pre-period ratio, or the given covariate's mean, or None."""
        if self.pre_period:
            return RatioOf(f"{p}zy", f"{p}zx")
        return Identity(f"{p}z") if self.covariate else None


@dataclass(frozen=True)
class Quantile(_Options):
    """The ``q``-quantile of the event values of ``column`` (e.g. p95 latency).

    The interval respects clustering by unit (Deng, Knoblich and Lu 2018; Woodruff outer
    interval); quantiles are not regression-adjusted (``cuped`` is ignored unless ``True``,
    which is an error).

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
        if self.cuped is True or self.covariate is not None:
            raise PromptstateError(f"{where}: CUPED is not available for quantiles")

    @property
    def pre_period(self) -> bool:
        """Quantiles are never regression-adjusted."""
        return False

    @property
    def label(self) -> str:
        """Name in results."""
        return self.name or f"{self.column}_p{round(self.q * 100, 1):g}"

    @property
    def columns(self) -> tuple[str, ...]:
        """Event columns the metric reads."""
        return (self.column,)


def _has_events(p: str) -> nw.Expr:
    """Per-unit indicator of pre-period events (1.0 for every unit of the pre-period table)."""
    return nw.col("ts").is_null().__invert__().cast(nw.Float64).max().alias(f"{p}d")


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
_OPTION_KEYS = {
    "name",
    "direction",
    "cap",
    "winsorize",
    "cuped",
    "cuped_days",
    "covariate",
    "guardrail",
    "primary",
}


def _guardrail_entry(where: str, value: Any) -> Any:
    """The margin of a metrics file's ``guardrail: {margin: 20}`` (or ``guardrail: 20``)."""
    if isinstance(value, dict):
        unknown = set(value) - {"margin"}
        if unknown or "margin" not in value:
            raise PromptstateError(
                f"{where}: guardrail must be {{margin: NUMBER}} or {{margin: 'P%'}}"
                + (f"; unknown key(s) {', '.join(sorted(map(str, unknown)))}" if unknown else "")
            )
        return value["margin"]
    return value


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
    if "guardrail" in options:
        options["guardrail"] = _guardrail_entry(where, options["guardrail"])
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
          - {type: mean, column: cost_usd, direction: lower, guardrail: {margin: "2%"}}
          - {type: ratio, numerator: resolved, direction: higher, primary: true}

    Raises:
        PromptstateError: the file is unreadable or an entry is invalid (the message names it).
    """
    from analysis import _yaml

    path = Path(path)
    data = _yaml.load(path, what="metrics file", error=PromptstateError)
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
