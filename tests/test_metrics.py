from __future__ import annotations

from pathlib import Path

import pytest

from analysis.errors import PromptstateError
from analysis.metrics.definitions import (
    Mean,
    Proportion,
    Quantile,
    Ratio,
    load_metrics,
    with_bounds,
)


def test_labels_and_defaults() -> None:
    assert Ratio("helpfulness").label == "helpfulness"
    assert Ratio("a", "b").label == "a/b"
    assert Mean("cost_usd", name="cost").label == "cost"
    assert Quantile("latency_ms", 0.95).label == "latency_ms_p95"
    assert Quantile("latency_ms", 0.5).label == "latency_ms_p50"
    assert Proportion("thumbs_up").columns == ("thumbs_up",)
    assert Ratio("y", "x", covariate="z").columns == ("y", "x", "z")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Mean("x", direction="up"), "direction"),  # type: ignore[arg-type]
        (lambda: Mean("x", cuped=True, covariate="z"), "either cuped"),
        (lambda: Quantile("x", 1.5), "q must lie"),
        (lambda: Quantile("x", 0.9, cuped=True), "CUPED is not available"),
        (lambda: Mean("x", winsorize=1.2), "winsorize"),
        (lambda: Mean("x", cuped_days=0), "cuped_days"),
        (lambda: Mean("x", cuped="yes"), "cuped must be"),  # type: ignore[arg-type]
        (lambda: Quantile("x", 0.5, covariate="z"), "CUPED is not available"),
    ],
)
def test_invalid_options_name_the_metric(make, match: str) -> None:
    with pytest.raises(PromptstateError, match=match):
        make()


def test_load_sample_metrics(sample_dir: Path) -> None:
    metrics = load_metrics(sample_dir / "metrics.yaml")
    assert [m.label for m in metrics] == [
        "helpfulness",
        "thumbs_up",
        "cost_usd",
        "latency_ms_p95",
    ]
    assert isinstance(metrics[2], Mean)
    assert metrics[2].cuped
    assert metrics[3].direction == "lower"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("metrics: []", "expected 'metrics:'"),
        ("metrics: [{type: median, column: x}]", r"metrics\[0\]: 'type' must be"),
        ("metrics: [{type: ratio}]", "needs 'numerator'"),
        ("metrics: [{type: mean}]", "needs 'column'"),
        ("metrics: [{type: quantile, column: x}]", "needs 'column' and 'q'"),
        ("metrics: [{type: mean, column: x, colour: red}]", "unknown key"),
        ("metrics: [{type: mean, column: x}, {type: mean, column: x}]", "two metrics"),
        ("metrics: [{type: mean, column: x, direction: up}]", r"metrics\[0\].*direction"),
        ("metrics: [", "not valid YAML"),
    ],
)
def test_metrics_file_errors(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(body)
    with pytest.raises(PromptstateError, match=match):
        load_metrics(path)


def test_metrics_file_options(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "metrics:\n"
        "  - {type: ratio, numerator: y, denominator: x, cap: [null, 10], name: yx}\n"
        "  - {type: mean, column: c, winsorize: [0.01, 0.99], cuped: true, cuped_days: 7}\n"
    )
    r, m = load_metrics(path)
    assert isinstance(r, Ratio)
    assert r.cap == (None, 10)
    assert r.den == "x"
    assert m.winsorize_bounds == (0.01, 0.99)
    assert m.cuped_days == 7


def test_missing_file() -> None:
    with pytest.raises(PromptstateError, match="cannot read"):
        load_metrics("/nonexistent/metrics.yaml")


def test_with_bounds_intersects_caps() -> None:
    m = with_bounds(Mean("x", cap=(0.0, 5.0), winsorize=0.99), None, 3.0)
    assert m.cap == (0.0, 3.0)
    assert m.winsorize is None


def test_adjustment_and_direction_defaults() -> None:
    """Pre-period adjustment is on unless ``cuped=False`` or a covariate column is given;
    quantiles are never adjusted; a metric has no direction unless one is given."""
    assert Mean("x").pre_period
    assert Mean("x").covariates("m0_") == ("m0_z", "m0_d")
    assert not Mean("x", cuped=False).pre_period
    assert Mean("x", cuped=False).variables("m0_") == ("m0_y",)
    assert Mean("x", covariate="c").covariates("m0_") == ("m0_z",)
    assert Ratio("y").variables("m0_") == ("m0_y", "m0_x", "m0_zy", "m0_zx", "m0_d")
    assert Ratio("y", "x", cuped=False).variables("m0_") == ("m0_y", "m0_x")
    assert not Quantile("x", 0.5).pre_period
    assert Mean("x").direction is None
    assert Mean("x", direction="lower").direction == "lower"


def test_metrics_file_can_turn_adjustment_off(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("metrics:\n  - {type: mean, column: c, cuped: false}\n")
    (m,) = load_metrics(path)
    assert m.cuped is False
    assert not m.pre_period


def test_a_constant_column_is_no_crash() -> None:
    """An inferred metric may be constant (every turn 800 tokens): the delta-method variance of
    its arm is then 0 up to rounding (−2e-12 was seen), which must not reach ``sqrt``."""
    import numpy as np

    from analysis.stats.effect import ArmEstimate, effect_from_arms

    values = np.full(17, 800.0)
    rounding = float(np.var(values, ddof=1) - 2.064628554301703e-12)  # the exact variance is 0
    res = effect_from_arms(
        ArmEstimate(17, 800.0, 800.0, rounding), ArmEstimate(2, 800.0, 800.0, 0.0)
    )
    assert res.effect == 0.0
    assert res.se == 0.0
    assert res.effect_ci_lower == res.effect_ci_upper == 0.0
