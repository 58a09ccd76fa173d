"""Crossover at ramps: do units change arm only as the ledger's ramps allow?

A unit's *arm pattern* is its arm in each exposure phase: ``None`` where it has no tagged
exposure in the phase, :data:`MIXED` (``"*"``) where it carries two arms within the phase.

**What a ramp may move.** A hash-bucket ramp keeps every unit's bucket and redraws the arms'
bucket ranges. Done with minimal movement, a ramp from allocation ``s(p)`` to ``s(q)`` moves
units only from an arm ``X`` whose share shrinks (``s_X(q) < s_X(p)``) to arms whose share
grows, and it moves the bucket fraction ``c_X = (s_X(p) − s_X(q)) / s_X(p)`` of ``X``'s units;
no other unit changes arm. Because the bucket is independent of when a unit is active, every
unit of ``X`` seen in ``p`` and again in ``q`` moves with probability exactly ``c_X``.

**The checks**, for each pair of consecutive exposure phases ``p < q`` in which a unit appears
(a unit seen in phases 1 and 3 only is compared across 1 → 3) and each arm ``X`` (the units
with the single arm ``X`` in ``p``, the *eligible* units):

* *ramp moves* — estimand ``π_ramp``: the probability that an eligible unit has a single,
  growing arm ``Y ≠ X`` in ``q`` (``0`` allowed unless ``X`` shrinks). H0: ``π_ramp ≤ c_X``
  against H1: ``π_ramp > c_X``; exact one-sided binomial test. A bucket ramp sits exactly on
  the boundary, so the false-alarm rate is at most the threshold.
* *stray moves* — estimand ``π_stray``: the probability that an eligible unit has a single arm
  ``Y ≠ X`` in ``q`` that the ramp does not allow (the other direction, or between phases with
  the same share). H0: ``π_stray ≤ τ`` against H1: ``π_stray > τ``, exact one-sided binomial.
* *mixed* — estimand ``π_mixed``: the probability that a unit present in phase ``p`` carries two
  arms within it. H0: ``π_mixed ≤ τ``, exact one-sided binomial.

``τ`` (``tolerance``) is the share of units whose tags may disagree with the ledger for reasons
other than the assignment service (device switching, stale client caches); ``τ = 0`` makes any
stray or mixed unit an alert. A unit that is mixed in ``q`` counts as eligible but not as moved
(it is judged by the mixed check of ``q``); a unit mixed in ``p`` is not eligible from ``p``.
Each group is tested at ``threshold`` (0.001 by default, as the sample-ratio check).

Without a ramp (every exposure phase has the same allocation) no move is explained, and the
flat rule applies: the crossover units (any unit with two arms) must not exceed ``tolerance``
of the enrolled units.

References:
    Kohavi, R., Tang, D., Xu, Y. (2020). Trustworthy Online Controlled Experiments, ch. 21
    (sample ratio mismatch and other trust-related guardrails). Cambridge University Press.
    Clopper, C. J., Pearson, E. S. (1934). The use of confidence or fiducial limits illustrated
    in the case of the binomial. Biometrika 26(4), 404-413 (the exact binomial tail).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import NamedTuple

from scipy import stats as _st

__all__ = [
    "MIXED",
    "CrossoverCheck",
    "CrossoverRow",
    "RampRule",
    "TransitionCounts",
    "count_transitions",
    "crossed_units",
    "crossover_check",
    "excess_pvalue",
    "is_ramped",
    "ramp_rule",
]

#: Pattern value of a unit that carries two arms within one phase.
MIXED = "*"

#: Shares closer than this are equal (ledger shares are decimal fractions).
_EPS = 1e-9

#: An arm pattern: the unit's arm in each exposure phase (``None`` absent, ``"*"`` mixed).
Pattern = tuple[str | None, ...]


class RampRule(NamedTuple):
    """What a minimal-movement bucket ramp from one allocation to the next may move.

    Attributes:
        cap: Arm -> the largest share of its units the ramp moves,
            ``(s_X(p) − s_X(q)) / s_X(p)`` for a shrinking arm, ``0`` otherwise.
        growing: Arms whose share grows: the only arms units may move to.
    """

    cap: dict[str, float]
    growing: frozenset[str]


def ramp_rule(old: Mapping[str, float], new: Mapping[str, float]) -> RampRule:
    """The moves a ramp from allocation ``old`` to ``new`` allows.

    >>> ramp_rule({"c": 0.8, "t": 0.2}, {"c": 0.5, "t": 0.5})
    RampRule(cap={'c': 0.375, 't': 0.0}, growing=frozenset({'t'}))
    """
    arms = list(dict.fromkeys([*old, *new]))
    cap: dict[str, float] = {}
    growing: set[str] = set()
    for a in arms:
        s_old, s_new = float(old.get(a, 0.0)), float(new.get(a, 0.0))
        shrinks = s_old > 0 and s_new < s_old - _EPS
        cap[a] = 1.0 - max(s_new, 0.0) / s_old if shrinks else 0.0
        if s_new > s_old + _EPS:
            growing.add(a)
    return RampRule(cap, frozenset(growing))


def is_ramped(allocations: Sequence[Mapping[str, float]]) -> bool:
    """Whether two consecutive allocations differ (the experiment was ramped)."""
    for old, new in pairwise(allocations):
        arms = set(old) | set(new)
        if any(abs(old.get(a, 0.0) - new.get(a, 0.0)) > _EPS for a in arms):
            return True
    return False


class TransitionCounts(NamedTuple):
    """Units counted by their arms in consecutive phases of appearance.

    Attributes:
        moves: ``(p, q, X, Y) -> units`` with the single arm ``X`` in ``p`` whose next phase of
            appearance is ``q``, where they have ``Y`` (``Y == X`` stayed, :data:`MIXED` mixed).
        present: Phase -> units with a tagged exposure in it.
        mixed: Phase -> units carrying two arms within it.
    """

    moves: dict[tuple[int, int, str, str], int]
    present: dict[int, int]
    mixed: dict[int, int]


def count_transitions(
    patterns: Mapping[Pattern, int], phase_ids: Sequence[int]
) -> TransitionCounts:
    """Count the transitions of ``patterns`` (pattern -> units), aligned with ``phase_ids``.

    Raises:
        ValueError: a pattern's length differs from ``phase_ids``'s, or a count is negative.
    """
    moves: dict[tuple[int, int, str, str], int] = {}
    present = dict.fromkeys(phase_ids, 0)
    mixed = dict.fromkeys(phase_ids, 0)
    for pattern, n in patterns.items():
        if len(pattern) != len(phase_ids):
            raise ValueError(f"pattern {pattern!r} has {len(pattern)} phases, not {len(phase_ids)}")
        if n < 0:
            raise ValueError(f"pattern {pattern!r} has a negative count {n}")
        if n == 0:
            continue
        seen = [(p, a) for p, a in zip(phase_ids, pattern, strict=True) if a is not None]
        for p, a in seen:
            present[p] += n
            if a == MIXED:
                mixed[p] += n
        for (p, x), (q, y) in pairwise(seen):
            if x != MIXED:
                key = (p, q, x, y)
                moves[key] = moves.get(key, 0) + n
    return TransitionCounts(moves, present, mixed)


def crossed_units(patterns: Mapping[Pattern, int]) -> int:
    """Units tagged with more than one arm across the exposure phases (the split's
    ``crossover`` units): mixed in some phase, or with different arms in two phases."""
    out = 0
    for pattern, n in patterns.items():
        arms = {a for a in pattern if a is not None}
        if MIXED in arms or len(arms) > 1:
            out += n
    return out


def excess_pvalue(k: int, n: int, share: float) -> float:
    """One-sided exact binomial p-value ``P(Bin(n, share) ≥ k)`` of H0: probability ≤ ``share``.

    Estimand: the probability that one of ``n`` independent units has the property counted by
    ``k``; the p-value is that of ``scipy.stats.binomtest(k, n, share, alternative="greater")``.
    """
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if k == 0 or share >= 1.0:
        return 1.0
    if share <= 0.0:
        return 0.0
    return float(min(1.0, _st.binom.sf(k - 1, n, share)))


class CrossoverRow(NamedTuple):
    """Units that changed arm between two phases (or within one), and the verdict.

    Attributes:
        from_phase: Phase ``p`` the units were seen in (for ``mixed``: the phase).
        to_phase: Their next phase of appearance ``q`` (for ``mixed``: the same phase).
        from_arm: Their single arm in ``p`` (``*`` for ``mixed``).
        to_arm: Their single arm in ``q`` (``*`` for ``mixed``).
        eligible: Units of ``from_arm`` in ``p`` that appear again in ``q`` (for ``mixed``:
            units present in the phase).
        moved: Of them, units with ``to_arm`` in ``q`` (for ``mixed``: units with two arms).
        kind: ``ramp`` (a move the ramp allows), ``stray`` (a move it does not allow) or
            ``mixed`` (two arms within one phase).
        max_share: The largest share H0 allows for the group: the ramp's cap ``c_X`` for
            ``ramp`` rows, the tolerance otherwise.
        group_moved: Units moved in the row's group (``p``, ``q``, ``from_arm``, ``kind``): the
            test's count; ``eligible`` is its number of trials.
        pvalue: One-sided exact binomial p-value of the group (NaN without a ramp: the flat
            rule applies).
        verdict: ``expected`` (a ramp move within its cap), ``tolerated`` (stray or mixed
            units within the tolerance) or ``unexpected`` (an assignment-service alert).
    """

    from_phase: int
    to_phase: int
    from_arm: str
    to_arm: str
    eligible: int
    moved: int
    kind: str
    max_share: float
    group_moved: int
    pvalue: float
    verdict: str


class CrossoverCheck(NamedTuple):
    """The crossover check of one experiment.

    Attributes:
        rows: One row per observed move (and per allowed ramp move, also when none happened).
        ramped: Whether the allocation changed between exposure phases; without a ramp the
            flat rule decides.
        crossed: Units with more than one arm across the exposure phases.
        enrolled: Units with a tagged exposure.
        share: ``crossed / enrolled`` (0 without units).
        alert: Whether some row is ``unexpected``.
    """

    rows: list[CrossoverRow]
    ramped: bool
    crossed: int
    enrolled: int
    share: float
    alert: bool


def crossover_check(
    patterns: Mapping[Pattern, int],
    allocations: Mapping[int, Mapping[str, float]],
    *,
    threshold: float = 0.001,
    tolerance: float = 0.02,
) -> CrossoverCheck:
    """Judge arm changes against the ramps of the ledger (see the module docstring).

    Args:
        patterns: Arm pattern -> units; patterns are aligned with ``allocations``' phases in
            increasing order.
        allocations: Exposure phase id -> its allocation (arm -> share).
        threshold: A group is ``unexpected`` at ``pvalue < threshold``.
        tolerance: ``τ``: the tolerated share of stray and mixed units (per group) in a ramped
            experiment; the largest share of crossover units among enrolled units otherwise.

    Returns:
        The rows (ordered by from phase, to phase, from arm and to arm) and the verdict.
    """
    phase_ids = sorted(allocations)
    counts = count_transitions(patterns, phase_ids)
    ramped = is_ramped([allocations[p] for p in phase_ids])
    crossed = crossed_units(patterns)
    enrolled = sum(n for pat, n in patterns.items() if any(a is not None for a in pat))
    share = crossed / enrolled if enrolled else 0.0
    flat_alert = not ramped and share > tolerance
    flat_verdict = "unexpected" if flat_alert else "tolerated"

    groups: dict[tuple[int, int, str], dict[str, int]] = {}
    for (p, q, x, y), n in counts.moves.items():
        group = groups.setdefault((p, q, x), {})
        group[y] = group.get(y, 0) + n
    rows: list[CrossoverRow] = []
    for (p, q, x), to in sorted(groups.items()):
        eligible = sum(to.values())
        rule = ramp_rule(allocations[p], allocations[q])
        cap = rule.cap.get(x, 0.0)
        ramp_to = sorted(rule.growing - {x}) if cap > 0 else []
        stray_to = sorted(y for y in to if y not in (x, MIXED) and y not in ramp_to)
        for kind, targets, bound in (("ramp", ramp_to, cap), ("stray", stray_to, tolerance)):
            if not targets:
                continue
            k = sum(to.get(y, 0) for y in targets)
            if ramped:
                pv = excess_pvalue(k, eligible, bound)
                good = "expected" if kind == "ramp" else "tolerated"
                verdict = "unexpected" if pv < threshold else good
            else:
                pv, verdict = math.nan, flat_verdict
            rows.extend(
                CrossoverRow(p, q, x, y, eligible, to.get(y, 0), kind, bound, k, pv, verdict)
                for y in targets
            )
    for p in phase_ids:
        m = counts.mixed[p]
        if m == 0:
            continue
        if ramped:
            pv = excess_pvalue(m, counts.present[p], tolerance)
            verdict = "unexpected" if pv < threshold else "tolerated"
        else:
            pv, verdict = math.nan, flat_verdict
        rows.append(
            CrossoverRow(
                p, p, MIXED, MIXED, counts.present[p], m, "mixed", tolerance, m, pv, verdict
            )
        )
    rows.sort(key=lambda r: (r.from_phase, r.to_phase, r.kind == "mixed", r.from_arm, r.to_arm))
    alert = flat_alert or any(r.verdict == "unexpected" for r in rows)
    return CrossoverCheck(rows, ramped, crossed, enrolled, share, alert)
