from __future__ import annotations

import numpy as np
import pytest

from analysis.stats import Moments


def _data(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.poisson(3, n).astype(float) + 1
    y = x * 0.7 + rng.normal(0, 1, n)
    return {"y": y, "x": x, "z": rng.exponential(2, n)}


def test_moments_match_numpy_cov() -> None:
    d = _data(1, 500)
    m = Moments.from_arrays(d)
    raw = np.column_stack([d["y"], d["x"], d["z"]])
    np.testing.assert_allclose(m.covariance, np.cov(raw, rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(m.means, raw.mean(axis=0), rtol=1e-12)
    assert m.var("x") == pytest.approx(np.var(d["x"], ddof=1), rel=1e-10)
    assert m.cov("y", "z") == pytest.approx(np.cov(d["y"], d["z"])[0, 1], rel=1e-10)


def test_add_pools_disjoint_groups() -> None:
    a, b = _data(2, 300), _data(3, 200)
    pooled = Moments.from_arrays(a) + Moments.from_arrays(b)
    both = Moments.from_arrays({k: np.concatenate([a[k], b[k]]) for k in a})
    assert pooled.n == 500
    np.testing.assert_allclose(pooled.covariance, both.covariance, rtol=1e-10)
    assert (Moments.empty(("y", "x", "z")) + pooled).n == 500


def test_from_sums_round_trip() -> None:
    d = _data(4, 50)
    m = Moments.from_arrays(d)
    cross = {(a, b): float(np.sum(d[a] * d[b])) for a in d for b in d}
    m2 = Moments.from_sums(50, {k: float(np.sum(v)) for k, v in d.items()}, cross)
    np.testing.assert_allclose(m2.cross, m.cross)


def test_add_rejects_other_variables() -> None:
    with pytest.raises(ValueError, match="cannot add"):
        _ = Moments.empty(("a",)) + Moments.empty(("b",))


def test_small_groups_are_nan() -> None:
    m = Moments.from_arrays({"y": [1.0]})
    assert np.isnan(m.var("y"))
    assert np.isnan(Moments.empty(("y",)).mean("y"))
