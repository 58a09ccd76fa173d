"""Pure statistics on sufficient statistics: no dataframes here.

Modules:

- :mod:`~analysis.stats.moments` — :class:`Moments`, additive unit-level sufficient statistics.
- :mod:`~analysis.stats.delta` — smooth functions of means (identity, ratio) and the delta method.
- :mod:`~analysis.stats.effect` — Welch / delta-method / CUPED comparison of two arms.
- :mod:`~analysis.stats.combine` — inverse-variance combination of independent strata.
- :mod:`~analysis.stats.quantile` — clustered quantile CIs (Deng, Knoblich and Lu 2018).
- :mod:`~analysis.stats.srm` — sample-ratio-mismatch chi-square test.
- :mod:`~analysis.stats.multiplicity` — Holm and Benjamini–Hochberg adjustments.
- :mod:`~analysis.stats.sequential` — always-valid asymptotic confidence sequences.
- :mod:`~analysis.stats.power` — power and minimum detectable effect.
"""

from __future__ import annotations

from analysis.stats.combine import combine_strata
from analysis.stats.delta import Identity, RatioOf, Statistic
from analysis.stats.effect import ArmEstimate, EffectResult, compare
from analysis.stats.moments import Moments
from analysis.stats.multiplicity import adjust_pvalues
from analysis.stats.power import mde, power
from analysis.stats.quantile import QuantileEstimate, quantile_effect
from analysis.stats.sequential import confidence_sequence_halfwidth
from analysis.stats.srm import SRMResult, srm_test

__all__ = [
    "ArmEstimate",
    "EffectResult",
    "Identity",
    "Moments",
    "QuantileEstimate",
    "RatioOf",
    "SRMResult",
    "Statistic",
    "adjust_pvalues",
    "combine_strata",
    "compare",
    "confidence_sequence_halfwidth",
    "mde",
    "power",
    "quantile_effect",
    "srm_test",
]
