"""Always-valid (time-uniform) inference for effects that are looked at every hour.

**Estimand.** ``θ``, the effect the caller's estimator targets (arm − control: a difference of
means or ratios, absolute or relative), estimated at look ``t`` by ``θ̂_t`` with standard error
``se_t``. The only assumption is the usual one of the fixed-horizon z-test, made uniform in time:
``θ̂_t`` is asymptotically normal and the score ``S_t = I_t (θ̂_t − θ)`` with the *information*
``I_t = 1 / se_t²`` behaves like a Brownian motion in information time (independent increments,
``Var S_t = I_t``; the canonical joint distribution of group-sequential designs, Jennison &
Turnbull 2000, ch. 3). Waudby-Smith et al. (2024) show that Robbins' normal mixture applied to
such a running estimator gives an asymptotic confidence sequence (valid over all looks at once,
as the sample grows).

**The mixture.** With ``λ ~ N(0, ρ²)`` mixed over ``exp(λ S − λ² I / 2)`` (a martingale under
``θ``), the mixture likelihood ratio is, with ``z = (θ̂ − θ₀) / se`` and ``r = ρ² I``,

    M(θ₀) = (1 + r)^(−1/2) · exp( r z² / (2 (1 + r)) ).

By Ville's inequality ``P(∃t: M_t ≥ 1/α) ≤ α`` under ``θ = θ₀``. Hence

* the **confidence sequence** ``θ̂ ± se · sqrt( (1 + r)/r · log((1 + r)/α²) )`` (the ``θ₀`` with
  ``M < 1/α``; :func:`cs_halfwidth`), which covers ``θ`` at every look simultaneously;
* the **always-valid p-value** ``p_t = min(1, min_{s ≤ t} 1 / M_s(θ₀))`` (:func:`pvalue_at_look`
  for one look, :func:`sequential_test` / :func:`running_pvalues` for the running minimum over
  looks): ``P(∃t: p_t ≤ α) ≤ α`` at every level ``α``; ``p_t ≤ α`` exactly when ``θ₀`` has left
  the confidence sequence at some look up to ``t``.

**One-sided tests** (guardrails, non-inferiority, "no harm"): the mixture over ``λ ≥ 0`` only
(half-normal, scale ``ρ``),

    M⁺(θ₀) = 2 (1 + r)^(−1/2) · exp( r z² / (2 (1 + r)) ) · Φ( z · sqrt(r / (1 + r)) ),

tests ``H0: θ ≤ θ₀`` against ``θ > θ₀`` (``alternative="greater"``; ``"less"`` mirrors it). Each
``exp(λ S(θ₀) − λ² I/2)`` with ``λ ≥ 0`` is a *super*martingale for every ``θ ≤ θ₀``, so the test
is valid for the composite null — which is what a guardrail needs: ``H0: harm ≥ margin`` (reject
→ ``ok``) and ``H0: harm ≤ margin`` (reject → ``breach``) are both composite
(:func:`guardrail_tests`). Taking one side of the two-sided sequence instead would spend the
whole ``α`` on a side that the two-sided mixture only bounds by ``α`` (not ``α/2``), and would be
wider: the one-sided mixture puts all its mass where the alternative is.

**Why a two-sided mixture for regressions.** The regression check of ``analyze`` is two-sided
(Holm-adjusted p below ``α`` *and* the effect in the wrong direction), with the metric's
direction used only to label the sign; the two-sided mixture keeps that rule and its confidence
sequence is the interval the report shows.

**Why information time.** ``r = ρ² I`` makes the boundary a function of the information
fraction ``I / I*`` only: with ``ρ²`` tuned at the planned information ``I* = 1/se_planned²``
(below), ``r = c(α) · I / I*``. Counting units instead (``r ∝ n``) is the same clock only when
each unit adds the same information; a ramp from 10% to 50% treatment, a variance that changes
over the day, or regression adjustment all change the information per unit, while the
Brownian-motion approximation (and hence validity) holds in information time. The planned
variance comes from a plan (the SE expected at the planned size) or, with planned units ``N``
only, from the current look extrapolated: ``se_planned = se_t · sqrt(n_t / N)``
(:func:`planned_se_from_units`; then ``I_t / I* = n_t / N``, the unit-time sequence of
Waudby-Smith et al.).

**Tuning.** The mixture variance is fixed before the first look so that the boundary is
tightest at ``I*``: ``ρ² = (−2 log α + log(1 − 2 log α)) / I*`` (Howard et al. 2021, the
optimal normal-mixture variance for intrinsic time ``I*``), with ``2α`` in place of ``α`` for the
one-sided mixture (whose boundary at ``α`` is nearly the two-sided one at ``2α``, since
``Φ(·) → 1`` at the crossing). A mis-planned ``I*`` costs width, never validity.

**Several metrics.** :func:`holm_over_looks` applies Holm
(:func:`analysis.stats.multiplicity.adjust_pvalues`) to the always-valid p-values at each look;
the family-wise error stays ``≤ α`` over all looks. **Planning.** :func:`sequential_mde` is the
effect detected by the planned end with the wanted power (the boundary at ``I*`` is 3.04
standard errors at ``α = 0.05`` instead of 1.96: about 1.9× the units of a fixed-horizon plan).

The functions accept scalars or numpy arrays (broadcast elementwise); a NaN or non-positive
``se`` means "no evidence at this look" (p-value 1, infinite half-width).

:func:`confidence_sequence_halfwidth` / :func:`mixture_rho2` are the older unit-count API
(``n_star`` planned units) kept for :mod:`analysis.metrics._estimates`.

References:
    Robbins, H. (1970). Statistical methods related to the law of the iterated logarithm.
    Annals of Mathematical Statistics 41(5).
    Ville, J. (1939). Étude critique de la notion de collectif. Gauthier-Villars.
    Howard, S. R., Ramdas, A., McAuliffe, J., Sekhon, J. (2021). Time-uniform, nonparametric,
    nonasymptotic confidence sequences. Annals of Statistics 49(2).
    Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H., Ramdas, A. (2024). Time-uniform
    central limit theory and asymptotic confidence sequences. Annals of Statistics 52(6).
    Johari, R., Koomen, P., Pekelis, L., Walsh, D. (2022). Always valid inference: continuous
    monitoring of A/B tests. Operations Research 70(3) (always-valid p-values, mSPRT).
    Jennison, C., Turnbull, B. W. (2000). Group Sequential Methods with Applications to
    Clinical Trials, ch. 3 (information time). Chapman & Hall/CRC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple, overload

import numpy as np
import numpy.typing as npt
from scipy import special

from analysis.stats.multiplicity import adjust_pvalues

__all__ = [
    "ALTERNATIVES",
    "GuardrailTests",
    "SequentialTest",
    "confidence_sequence_halfwidth",
    "cs_halfwidth",
    "first_look",
    "guardrail_tests",
    "holm_over_looks",
    "log_mixture_lr",
    "look_inference",
    "mixture_precision",
    "mixture_rho2",
    "one_sided_radius",
    "planned_se_from_units",
    "pvalue_at_look",
    "running_pvalues",
    "sequential_mde",
    "sequential_test",
]

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")
FloatArray = npt.NDArray[np.float64]


def mixture_rho2(n_star: float, alpha: float = 0.05) -> float:
    """Mixture variance ``ρ²`` that makes the boundary tightest at ``n_star`` (units or
    information): ``(−2 log α + log(1 − 2 log α)) / n_star`` (Howard et al. 2021)."""
    la = -2.0 * math.log(alpha)
    return (la + math.log(la + 1.0)) / n_star


def confidence_sequence_halfwidth(
    se: float, n: int, *, alpha: float = 0.05, n_star: float = 10_000.0
) -> float:
    """Half-width of the always-valid interval around an estimate with standard error ``se``,
    tuned in units (older API; prefer :func:`cs_halfwidth`, tuned in information time).

    Args:
        se: Standard error of the estimate at this look.
        n: Units (observations) behind the estimate at this look.
        alpha: 1 − the time-uniform coverage.
        n_star: Planned number of units at which the sequence is tuned to be tightest.
    """
    if n <= 0 or not math.isfinite(se):
        return float("nan")
    r = n * mixture_rho2(n_star, alpha)
    return se * math.sqrt((r + 1.0) / r * math.log((r + 1.0) / alpha**2))


# ----------------------------------------------------------------------- information time


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"unknown alternative {alternative!r}; use one of {', '.join(ALTERNATIVES)}"
        )


def mixture_precision(planned_se: float, alpha: float = 0.05, *, one_sided: bool = False) -> float:
    """Mixture variance ``ρ²`` on the information scale, tightest at ``I* = 1/planned_se²``.

    ``ρ² = (−2 log a + log(1 − 2 log a)) · planned_se²`` with ``a = α`` (two-sided) or ``2α``
    (one-sided, ``α < 0.5``).

    Args:
        planned_se: Standard error expected at the planned size (fixed before the first look).
        alpha: Level the boundary is tuned for (the p-values are valid at every level).
        one_sided: Tune the half-normal (one-sided) mixture.
    """
    _check_alpha(alpha)
    if not (math.isfinite(planned_se) and planned_se > 0):
        raise ValueError(f"planned_se must be a positive finite number, got {planned_se}")
    a = 2.0 * alpha if one_sided else alpha
    if a >= 1.0:
        raise ValueError(f"a one-sided test needs alpha < 0.5, got {alpha}")
    return mixture_rho2(1.0 / planned_se**2, a)


def planned_se_from_units(se: float, n: float, planned_n: float) -> float:
    """Standard error expected at ``planned_n`` units, extrapolated from ``se`` at ``n`` units
    (``se · sqrt(n / planned_n)``; the per-unit variance and allocation assumed to stay)."""
    if n <= 0 or planned_n <= 0:
        raise ValueError(f"units must be positive, got n={n}, planned_n={planned_n}")
    return float(se * math.sqrt(n / planned_n))


def _ratio(se: npt.ArrayLike, rho2: float) -> FloatArray:
    """``r = ρ² I = ρ² / se²`` (NaN where ``se`` is not positive and finite)."""
    s = np.asarray(se, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = rho2 / (s * s)
    return np.where(np.isfinite(s) & (s > 0), r, np.nan)


@overload
def log_mixture_lr(
    estimate: float,
    se: float,
    *,
    null: float = ...,
    planned_se: float,
    alternative: Alternative = ...,
    alpha: float = ...,
) -> float: ...
@overload
def log_mixture_lr(
    estimate: npt.NDArray[np.float64],
    se: npt.ArrayLike,
    *,
    null: npt.ArrayLike = ...,
    planned_se: float,
    alternative: Alternative = ...,
    alpha: float = ...,
) -> FloatArray: ...
def log_mixture_lr(
    estimate: npt.ArrayLike,
    se: npt.ArrayLike,
    *,
    null: npt.ArrayLike = 0.0,
    planned_se: float,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> float | FloatArray:
    """``log M`` (two-sided) or ``log M⁺`` (one-sided) at one look; see the module docstring.

    NaN where ``se`` is NaN or not positive (no evidence).

    Args:
        estimate: ``θ̂`` at the look.
        se: Its standard error.
        null: ``θ₀``.
        planned_se: Standard error expected at the planned size (tunes ``ρ``).
        alternative: ``"two-sided"`` (``θ ≠ θ₀``), ``"greater"`` (``H0: θ ≤ θ₀``) or ``"less"``
            (``H0: θ ≥ θ₀``).
        alpha: Level the mixture is tuned for.
    """
    _check_alternative(alternative)
    one_sided = alternative != "two-sided"
    r = _ratio(se, mixture_precision(planned_se, alpha, one_sided=one_sided))
    s = np.asarray(se, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(estimate, dtype=np.float64) - np.asarray(null, dtype=np.float64)) / s
        out = -0.5 * np.log1p(r) + r * z * z / (2.0 * (1.0 + r))
        if one_sided:
            sign = 1.0 if alternative == "greater" else -1.0
            out = out + math.log(2.0) + special.log_ndtr(sign * z * np.sqrt(r / (1.0 + r)))
    out = np.where(np.isfinite(r), out, np.nan)
    return float(out) if out.ndim == 0 else out


@overload
def pvalue_at_look(
    estimate: float,
    se: float,
    *,
    null: float = ...,
    planned_se: float,
    alternative: Alternative = ...,
    alpha: float = ...,
) -> float: ...
@overload
def pvalue_at_look(
    estimate: npt.NDArray[np.float64],
    se: npt.ArrayLike,
    *,
    null: npt.ArrayLike = ...,
    planned_se: float,
    alternative: Alternative = ...,
    alpha: float = ...,
) -> FloatArray: ...
def pvalue_at_look(
    estimate: npt.ArrayLike,
    se: npt.ArrayLike,
    *,
    null: npt.ArrayLike = 0.0,
    planned_se: float,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
) -> float | FloatArray:
    """``min(1, 1/M)`` at one look (1 where there is no evidence). The always-valid p-value is
    its running minimum over looks (:func:`running_pvalues`); arguments as
    :func:`log_mixture_lr`."""
    lm = np.asarray(
        log_mixture_lr(
            np.asarray(estimate, dtype=np.float64),
            se,
            null=null,
            planned_se=planned_se,
            alternative=alternative,
            alpha=alpha,
        )
    )
    p = np.where(np.isnan(lm), 1.0, np.exp(-np.maximum(lm, 0.0)))
    return float(p) if p.ndim == 0 else p


@overload
def cs_halfwidth(se: float, *, planned_se: float, alpha: float = ...) -> float: ...
@overload
def cs_halfwidth(
    se: npt.NDArray[np.float64], *, planned_se: float, alpha: float = ...
) -> FloatArray: ...
def cs_halfwidth(
    se: npt.ArrayLike, *, planned_se: float, alpha: float = 0.05
) -> float | FloatArray:
    """Half-width of the two-sided ``1 − α`` confidence sequence in information time.

    ``se · sqrt( (1 + r)/r · log((1 + r)/α²) )`` with ``r = ρ² / se²`` and ``ρ²`` from
    :func:`mixture_precision` (``inf`` where ``se`` is not positive and finite). The running
    intersection of the intervals ``θ̂_t ± half-width_t`` is also a confidence sequence.

    Args:
        se: Standard error at the look.
        planned_se: Standard error expected at the planned size.
        alpha: 1 − the time-uniform coverage.
    """
    s = np.asarray(se, dtype=np.float64)
    r = _ratio(s, mixture_precision(planned_se, alpha))
    with np.errstate(divide="ignore", invalid="ignore"):
        hw = s * np.sqrt((1.0 + r) / r * np.log((1.0 + r) / alpha**2))
    hw = np.where(np.isfinite(r), hw, np.inf)
    return float(hw) if hw.ndim == 0 else hw


@overload
def one_sided_radius(se: float, *, planned_se: float, alpha: float = ...) -> float: ...
@overload
def one_sided_radius(
    se: npt.NDArray[np.float64], *, planned_se: float, alpha: float = ...
) -> FloatArray: ...
def one_sided_radius(
    se: npt.ArrayLike, *, planned_se: float, alpha: float = 0.05
) -> float | FloatArray:
    """Distance ``d`` from ``θ̂`` of the one-sided ``1 − α`` always-valid bound.

    ``θ̂ − d`` is a lower confidence sequence (``H0: θ ≤ θ̂ − d`` is rejected at ``α`` by the
    ``"greater"`` test exactly at that bound), ``θ̂ + d`` an upper one. ``d = z* · se`` where
    ``z*`` solves ``log M⁺(z*) = log(1/α)`` (bisection; ``log M⁺`` increases in ``z``).
    """
    s = np.asarray(se, dtype=np.float64)
    r = _ratio(s, mixture_precision(planned_se, alpha, one_sided=True))
    target = -math.log(alpha)
    ok = np.isfinite(r)
    rr = np.where(ok, r, 1.0)

    def log_m(z: FloatArray) -> FloatArray:
        out: FloatArray = (
            math.log(2.0)
            - 0.5 * np.log1p(rr)
            + rr * z * z / (2.0 * (1.0 + rr))
            + special.log_ndtr(z * np.sqrt(rr / (1.0 + rr)))
        )
        return out

    lo = np.zeros_like(rr)
    hi = np.full_like(rr, 1.0)
    while np.any(log_m(hi) < target):  # widen until bracketed
        hi = np.where(log_m(hi) < target, hi * 2.0, hi)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        below = log_m(mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    d = np.where(ok, 0.5 * (lo + hi) * s, np.inf)
    return float(d) if d.ndim == 0 else d


def look_inference(
    effect: float, se: float, units: float, planned_units: float, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """``(cs_lower, cs_upper, pvalue)`` of one look's estimate: the two-sided confidence
    sequence and the always-valid p-value of ``effect = 0``, tuned at ``planned_units`` through
    :func:`planned_se_from_units`; NaNs where ``se`` or ``units`` is not positive and finite."""
    nan = float("nan")
    if not (math.isfinite(se) and se > 0 and math.isfinite(units) and units > 0):
        return nan, nan, nan
    planned = planned_se_from_units(se, units, planned_units)
    hw = float(cs_halfwidth(se, planned_se=planned, alpha=alpha))
    p = float(pvalue_at_look(effect, se, planned_se=planned, alpha=alpha))
    return effect - hw, effect + hw, p


def sequential_mde(planned_se: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest effect the two-sided sequence detects by the planned end with probability at
    least ``power`` (approximately): ``(b + z_power) · planned_se`` with the boundary
    ``b = cs_halfwidth(planned_se) / planned_se`` at ``I*`` (3.04 at ``α = 0.05``, against 1.96
    for one fixed-horizon test). Crossings at earlier looks only add power, so this is
    conservative (hourly looks over a week: 85% for a target of 80%). With ``m`` metrics under
    Holm pass ``alpha / m`` for a bound that holds whatever the other metrics do. A plan for a
    monitored canary needs ``(sequential_mde / mde)²`` times the units of a fixed-horizon plan
    (1.9 at ``α = 0.05``, power 0.8).
    """
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    b = cs_halfwidth(planned_se, planned_se=planned_se, alpha=alpha) / planned_se
    return float((b + special.ndtri(power)) * planned_se)


# ----------------------------------------------------------------------------- over looks


def running_pvalues(pvalues: npt.ArrayLike, *, eligible: npt.ArrayLike | None = None) -> FloatArray:
    """Running minimum along the last axis (the looks) of per-look p-values.

    Looks where ``eligible`` is false (e.g. before a burn-in) neither decide nor enter the
    minimum (their running value is carried from the previous eligible look, 1 before the first).
    NaN counts as 1.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    p = np.where(np.isnan(p), 1.0, np.minimum(p, 1.0))
    if eligible is not None:
        p = np.where(np.broadcast_to(np.asarray(eligible, dtype=bool), p.shape), p, 1.0)
    out: FloatArray = np.minimum.accumulate(p, axis=-1)
    return out


def first_look(reject: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Index of the first true value along the last axis, −1 where there is none."""
    a = np.asarray(reject, dtype=bool)
    idx = np.argmax(a, axis=-1)
    out: npt.NDArray[np.int64] = np.where(a.any(axis=-1), idx, -1).astype(np.int64)
    return out


class SequentialTest(NamedTuple):
    """An always-valid test over looks.

    Attributes:
        pvalues: Always-valid p-value at each look (running minimum; 1 before the burn-in).
        pvalues_at_look: ``min(1, 1/M)`` at each look (not running; 1 before the burn-in).
        first_look: Index of the first look with ``p ≤ alpha`` (``None`` if none).
        alpha: The level of ``first_look``.
    """

    pvalues: FloatArray
    pvalues_at_look: FloatArray
    first_look: int | None
    alpha: float


def sequential_test(
    estimates: Sequence[float] | npt.NDArray[np.float64],
    ses: Sequence[float] | npt.NDArray[np.float64],
    *,
    planned_se: float,
    null: float = 0.0,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    eligible: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
) -> SequentialTest:
    """Always-valid test of ``H0: θ = θ₀`` (or a one-sided ``H0``) over a series of looks.

    Args:
        estimates: ``θ̂`` at each look (cumulative data, in time order).
        ses: Their standard errors.
        planned_se: Standard error expected at the planned size (fixed before the first look).
        null: ``θ₀``.
        alternative: ``"two-sided"``, ``"greater"`` (``H0: θ ≤ θ₀``) or ``"less"``
            (``H0: θ ≥ θ₀``).
        alpha: Level of ``first_look`` and of the mixture's tuning.
        eligible: Looks that may decide (false before the burn-in); default all.

    Returns:
        The running always-valid p-values and the first look where ``p ≤ alpha``.
    """
    est = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(ses, dtype=np.float64)
    if est.shape != se.shape or est.ndim != 1:
        raise ValueError(f"estimates and ses must be 1-D of equal length: {est.shape}, {se.shape}")
    at_look = np.asarray(
        pvalue_at_look(
            est, se, null=null, planned_se=planned_se, alternative=alternative, alpha=alpha
        )
    )
    if eligible is not None:
        el = np.asarray(eligible, dtype=bool)
        if el.shape != est.shape:
            raise ValueError(f"eligible has shape {el.shape}, the looks {est.shape}")
        at_look = np.where(el, at_look, 1.0)
    running = running_pvalues(at_look)
    k = int(first_look(running <= alpha))
    return SequentialTest(running, at_look, None if k < 0 else k, alpha)


def holm_over_looks(pvalues: npt.ArrayLike) -> FloatArray:
    """Holm-adjusted p-values at each look: ``pvalues`` has shape ``(metrics, looks)`` (the
    always-valid running p-values); each column is adjusted with
    :func:`analysis.stats.multiplicity.adjust_pvalues`. Holm on always-valid p-values controls
    the family-wise error over all looks: a true null is rejected at some look only if the
    smallest always-valid p-value of the true nulls ever falls to ``α / m₀``."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"pvalues must have shape (metrics, looks), got {p.shape}")
    out = np.empty_like(p)
    for t in range(p.shape[1]):
        out[:, t] = adjust_pvalues(p[:, t].tolist(), "holm")
    return out


class GuardrailTests(NamedTuple):
    """The two one-sided always-valid tests of a guardrail over looks.

    Attributes:
        ok: Test of ``H0: harm ≥ margin`` (rejected → ``ok``).
        breach: Test of ``H0: harm ≤ margin`` (rejected → ``breach``).
        bound: Upper always-valid bound of the harm at each look (level ``alpha``, one-sided).
    """

    ok: SequentialTest
    breach: SequentialTest
    bound: FloatArray


def guardrail_tests(
    estimates: Sequence[float] | npt.NDArray[np.float64],
    ses: Sequence[float] | npt.NDArray[np.float64],
    *,
    margin: float,
    direction: Literal["higher", "lower"],
    planned_se: float,
    alpha: float = 0.025,
    eligible: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
) -> GuardrailTests:
    """Always-valid one-sided tests of a guardrail with an absolute non-inferiority margin.

    The harm is the effect in the bad direction: ``harm = −θ`` when higher is better,
    ``+θ`` when lower is better (a relative margin is the caller's: pass relative effects).
    ``ok`` tests ``H0: harm ≥ margin`` and ``breach`` tests ``H0: harm ≤ margin``, each with the
    one-sided mixture at ``alpha`` (issue 22 uses ``α/2`` each; Holm across guardrails is the
    caller's, e.g. :func:`holm_over_looks`).

    Args:
        estimates: ``θ̂`` (arm − control) at each look.
        ses: Their standard errors.
        margin: Non-inferiority margin, in the effect's unit, ``≥ 0``.
        direction: Which direction of the metric is better.
        planned_se: Standard error expected at the planned size.
        alpha: Level of each one-sided test.
        eligible: Looks that may decide; default all.
    """
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    sign = -1.0 if direction == "higher" else 1.0
    harm = sign * np.asarray(estimates, dtype=np.float64)
    se = np.asarray(ses, dtype=np.float64)
    ok, breach = (
        sequential_test(
            harm,
            se,
            planned_se=planned_se,
            null=margin,
            alternative=alt,
            alpha=alpha,
            eligible=eligible,
        )
        for alt in ("less", "greater")
    )
    bound = harm + np.asarray(one_sided_radius(se, planned_se=planned_se, alpha=alpha))
    return GuardrailTests(ok, breach, np.asarray(bound, dtype=np.float64))
