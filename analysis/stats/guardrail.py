"""Guardrail verdicts: two one-sided tests of a harm against a non-inferiority margin.

A guardrail metric may get worse, but not by more than a margin ``m > 0``. With ``harm`` the
estimated effect oriented so that positive is worse (``direction="lower"``: ``harm = effect``;
``direction="higher"``: ``harm = -effect``) and ``se`` its standard error (normal
approximation), two one-sided tests at level ``α/2`` each:

* ``ok`` (the harm is shown to stay below the margin): ``H0: harm ≥ m`` is rejected,
  ``p_ok = Φ((harm − m) / se) < α/2``;
* ``breach`` (the harm is shown to exceed the margin): ``H0: harm ≤ m`` is rejected,
  ``p_breach = 1 − Φ((harm − m) / se) < α/2``;
* otherwise ``inconclusive``.

``bound = harm + z_{1−α/2} · se`` is the one-sided ``1 − α/2`` upper confidence bound of the
harm (``ok`` without adjustment ⇔ ``bound < m``). Across several guardrails each family (the
``p_ok`` values, the ``p_breach`` values) is Holm-adjusted on its own
(:func:`analysis.stats.multiplicity.adjust_pvalues`) before it is compared with ``α/2``; at
``harm = m`` each verdict is then wrong with probability at most ``α/2``.

References:
    Schuirmann, D. J. (1987). A comparison of the two one-sided tests procedure and the power
    approach for assessing the equivalence of average bioavailability. J. Pharmacokinetics and
    Biopharmaceutics 15, 657–680.
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J. Stat. 6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

from scipy import special

from analysis.stats.multiplicity import adjust_pvalues

__all__ = ["VERDICTS", "GuardrailTest", "guardrail_test", "guardrail_verdicts", "harm_of"]

Verdict = Literal["ok", "breach", "inconclusive"]
VERDICTS: tuple[str, ...] = ("ok", "breach", "inconclusive")


class GuardrailTest(NamedTuple):
    """The two one-sided tests of one harm against its margin (unadjusted p-values).

    Attributes:
        harm: The effect oriented so that positive is worse.
        se: Its standard error.
        margin: The margin (absolute, > 0).
        bound: One-sided ``1 − α/2`` upper confidence bound of the harm.
        p_ok: p-value of ``H0: harm ≥ margin`` (small: the harm stays below the margin).
        p_breach: p-value of ``H0: harm ≤ margin`` (small: the harm exceeds the margin).
    """

    harm: float
    se: float
    margin: float
    bound: float
    p_ok: float
    p_breach: float


def harm_of(effect: float, direction: str) -> float:
    """The effect oriented so that positive is worse (``lower`` is better: the effect itself)."""
    if direction == "lower":
        return float(effect)
    if direction == "higher":
        return -float(effect)
    raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")


def guardrail_test(harm: float, se: float, margin: float, *, alpha: float = 0.05) -> GuardrailTest:
    """The two one-sided normal tests of ``harm`` against ``margin`` (NaN when undefined).

    Args:
        harm: Estimated harm (positive is worse).
        se: Its standard error (> 0).
        margin: The non-inferiority margin (> 0, absolute).
        alpha: Two-sided level; each one-sided test runs at ``alpha / 2``.

    Examples:
        >>> t = guardrail_test(1.0, 1.0, 4.0)
        >>> round(t.p_ok, 5), round(t.bound, 4)
        (0.00135, 2.96)
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1)")
    if not (math.isfinite(harm) and math.isfinite(se) and se > 0 and math.isfinite(margin)):
        nan = float("nan")
        return GuardrailTest(float(harm), float(se), float(margin), nan, nan, nan)
    z = (harm - margin) / se
    p_ok = float(special.ndtr(z))
    p_breach = float(special.ndtr(-z))
    bound = harm + float(special.ndtri(1 - alpha / 2)) * se
    return GuardrailTest(float(harm), float(se), float(margin), bound, p_ok, p_breach)


def guardrail_verdicts(
    tests: Sequence[GuardrailTest], *, alpha: float = 0.05, multiplicity: str = "holm"
) -> list[tuple[Verdict, float, float]]:
    """Verdicts of one family of guardrail tests: ``(verdict, p_ok_adj, p_breach_adj)`` each.

    The ``p_ok`` values and the ``p_breach`` values are adjusted separately (``holm`` by
    default); a test with NaN p-values is ``inconclusive`` and does not count towards the
    family size.
    """
    p_ok = adjust_pvalues([t.p_ok for t in tests], multiplicity)
    p_breach = adjust_pvalues([t.p_breach for t in tests], multiplicity)
    out: list[tuple[Verdict, float, float]] = []
    for a, b in zip(p_ok, p_breach, strict=True):
        verdict: Verdict = "inconclusive"
        if a < alpha / 2:
            verdict = "ok"
        elif b < alpha / 2:
            verdict = "breach"
        out.append((verdict, a, b))
    return out
