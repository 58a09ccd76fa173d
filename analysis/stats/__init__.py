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

import importlib
from typing import TYPE_CHECKING, Any

# Re-exports are imported on first use, so that importing one submodule (e.g. the gate's
# ``analysis.stats.paired``) does not pull in scipy.stats through the others. ``power`` is not
# re-exported: the submodule of the same name would shadow it; use analysis.stats.power.power.
_EXPORTS: dict[str, str] = {
    "ArmEstimate": "analysis.stats.effect",
    "EffectResult": "analysis.stats.effect",
    "Identity": "analysis.stats.delta",
    "Moments": "analysis.stats.moments",
    "QuantileEstimate": "analysis.stats.quantile",
    "RatioOf": "analysis.stats.delta",
    "SRMResult": "analysis.stats.srm",
    "Statistic": "analysis.stats.delta",
    "adjust_pvalues": "analysis.stats.multiplicity",
    "combine_strata": "analysis.stats.combine",
    "compare": "analysis.stats.effect",
    "confidence_sequence_halfwidth": "analysis.stats.sequential",
    "mde": "analysis.stats.power",
    "quantile_effect": "analysis.stats.quantile",
    "srm_test": "analysis.stats.srm",
}

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
    "quantile_effect",
    "srm_test",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis.stats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from analysis.stats.combine import combine_strata
    from analysis.stats.delta import Identity, RatioOf, Statistic
    from analysis.stats.effect import ArmEstimate, EffectResult, compare
    from analysis.stats.moments import Moments
    from analysis.stats.multiplicity import adjust_pvalues
    from analysis.stats.power import mde
    from analysis.stats.quantile import QuantileEstimate, quantile_effect
    from analysis.stats.sequential import confidence_sequence_halfwidth
    from analysis.stats.srm import SRMResult, srm_test
