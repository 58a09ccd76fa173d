"""``analyze(sequential=True)`` (issue 22, item 2): monitoring that allows peeking.

Every always-valid number of a sequential analysis is recomputed here from the effect row by
an independent route: the confidence sequence and the mixture likelihood ratio from their closed
forms (Robbins' normal mixture, tuned at the planned information), Holm from statsmodels, the
sequential SRM's Bayes factor from the Dirichlet-multinomial marginal likelihood written out
with ``scipy.special.gammaln``. The decisions (regression, guardrail, SRM) must follow those
numbers, never before the burn-in.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.special import gammaln
from statsmodels.stats.multitest import multipletests

import analysis as ps
from analysis.errors import PromptstateError
from analysis.events import split

ALPHA = 0.05
PLANNED = 6000.0


@pytest.fixture(scope="module")
def split_sample(events_path: Path, ledger_path: Path) -> Any:
    return split(events_path, ledger_path)


@pytest.fixture(scope="module")
def seq(split_sample: Any) -> ps.AnalysisResult:
    metrics = [
        ps.Ratio("helpfulness", direction="higher"),
        ps.Mean("cost_usd", direction="lower"),
        ps.Quantile("latency_ms", 0.95, direction="lower"),
    ]
    return ps.analyze(
        split_sample, metrics=metrics, sequential=True, planned_units=PLANNED, explain=False
    )


def _rho2(planned_se: float, alpha: float) -> float:
    la = -2 * math.log(alpha)
    return (la + math.log(la + 1)) * planned_se**2


def test_sequential_needs_planned_units(split_sample: Any) -> None:
    with pytest.raises(PromptstateError, match="planned_units=N"):
        ps.analyze(split_sample, metrics=[ps.Ratio("helpfulness")], sequential=True)
    for bad in (0, -5, float("nan"), True):
        with pytest.raises(PromptstateError, match="planned_units"):
            ps.analyze(
                split_sample, metrics=[ps.Ratio("helpfulness")], sequential=True, planned_units=bad
            )


def test_cli_sequential_without_planned_units_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.cli import main

    out = tmp_path / "a.json"
    code = main(["analyze", "--sequential", "--format", "json", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--sequential needs --planned-units N" in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_confidence_sequences_and_always_valid_pvalues(seq: ps.AnalysisResult) -> None:
    """``cs_*`` and ``pvalue_sequential`` from their closed forms, tuned at the planned
    information ``I* = 1 / (se · sqrt(n / N))²``."""
    checked = 0
    for r in seq.effects.rows:
        if r.analysis != "clean" or r.metric == "latency_ms_p95":
            continue
        n = r.n_control + r.n_arm
        planned_se = r.se * math.sqrt(n / PLANNED)
        ratio = _rho2(planned_se, ALPHA) / r.se**2
        hw = r.se * math.sqrt((1 + ratio) / ratio * math.log((1 + ratio) / ALPHA**2))
        assert r.cs_lower == pytest.approx(r.effect - hw, rel=1e-10)
        assert r.cs_upper == pytest.approx(r.effect + hw, rel=1e-10)
        z = r.effect / r.se
        log_m = -0.5 * math.log1p(ratio) + ratio * z * z / (2 * (1 + ratio))
        assert r.pvalue_sequential == pytest.approx(min(1.0, math.exp(-log_m)), rel=1e-9)
        # wider than the fixed-horizon interval, never narrower
        assert r.cs_lower < r.effect_ci_lower
        checked += 1
    assert checked >= 6


def test_holm_on_always_valid_pvalues(seq: ps.AnalysisResult) -> None:
    families: dict[tuple[str, str], list[Any]] = {}
    for r in seq.effects.rows:
        families.setdefault((r.analysis, r.phase), []).append(r)
    for rows in families.values():
        finite = [r for r in rows if math.isfinite(r.pvalue_sequential)]
        if not finite:
            continue
        want = multipletests([r.pvalue_sequential for r in finite], method="holm")[1]
        got = [r.pvalue_sequential_adjusted for r in finite]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert all(math.isnan(r.pvalue_sequential_adjusted) for r in rows if r not in finite)


def test_quantiles_get_no_sequential_decision(seq: ps.AnalysisResult) -> None:
    q = seq.effect("latency_ms_p95")
    assert math.isnan(q.pvalue_sequential)
    assert math.isnan(q.cs_lower)
    assert any("quantile metric(s) get no sequential decision" in n for n in seq.notes)
    assert q not in seq.regressions


def test_regression_decided_by_the_always_valid_pvalue(seq: ps.AnalysisResult) -> None:
    """The sample's helpfulness drop (−0.39 per turn) is a regression under always-valid
    inference too; every regression is a harmful row with adjusted always-valid p < α."""
    h = seq.effect("helpfulness")
    assert h.pvalue_sequential_adjusted < ALPHA
    assert h in seq.regressions
    for r in seq.regressions:
        assert r.pvalue_sequential_adjusted < ALPHA
        assert (r.effect > 0) != (r.direction == "higher")
    assert any("always-valid adjusted p=" in m for m in seq.regression_messages)
    assert seq.options["sequential_ready"] is True


def test_no_decision_before_the_burn_in(split_sample: Any) -> None:
    """A window that ends inside the first 6-hour block: rows are computed, nothing decides."""
    start = split_sample.phases[1].start
    res = ps.analyze(
        split_sample,
        metrics=[ps.Ratio("helpfulness", direction="higher")],
        sequential=True,
        planned_units=PLANNED,
        explain=False,
        completeness=False,
        until=start + timedelta(hours=5),
        late_hours=0.0,
    )
    assert res.options["sequential_ready"] is False
    assert res.regressions == ()
    assert any("burn-in" in n for n in res.notes)


def _log_bf(counts: list[int], shares: list[float], kappa: float = 100.0) -> float:
    """Dirichlet-multinomial marginal likelihood over the multinomial at ``shares``."""
    a = [kappa * s for s in shares]
    n = sum(counts)
    log_ml = (
        gammaln(sum(a))
        - gammaln(sum(a) + n)
        + sum(gammaln(ai + x) - gammaln(ai) for ai, x in zip(a, counts, strict=True))
    )
    return float(log_ml - sum(x * math.log(s) for x, s in zip(counts, shares, strict=True)))


def test_srm_uses_the_sequential_test(seq: ps.AnalysisResult) -> None:
    by_phase: dict[int, list[Any]] = {}
    for r in seq.srm.rows:
        by_phase.setdefault(r.phase, []).append(r)
    for rows in by_phase.values():
        counts = [r.observed for r in rows]
        shares = [r.expected / sum(counts) for r in rows]
        want = min(1.0, math.exp(-max(_log_bf(counts, shares), 0.0)))
        for r in rows:
            assert r.pvalue == pytest.approx(want, rel=1e-9, abs=1e-300)
            assert r.mismatch == (want < 0.001)


def test_guardrails_use_the_always_valid_tests(split_sample: Any) -> None:
    from analysis.stats.sequential import pvalue_at_look

    metrics = [ps.Mean("cost_usd", direction="lower", guardrail=0.05)]
    res = ps.analyze(
        split_sample, metrics=metrics, sequential=True, planned_units=PLANNED, explain=False
    )
    table = ps.evaluate_guardrails(res, metrics)
    row = next(r for r in table.rows if r.phase == "combined")
    e = res.effect("cost_usd")
    planned = e.se * math.sqrt((e.n_control + e.n_arm) / PLANNED)
    p_ok = pvalue_at_look(
        e.effect, e.se, null=0.05, planned_se=planned, alternative="less", alpha=0.025
    )
    p_breach = pvalue_at_look(
        e.effect, e.se, null=0.05, planned_se=planned, alternative="greater", alpha=0.025
    )
    assert row.harm == pytest.approx(e.effect)
    # one guardrail per family: Holm leaves the p-values as they are
    assert row.p_ok == pytest.approx(p_ok, rel=1e-12)
    assert row.p_breach == pytest.approx(p_breach, rel=1e-12)
    fixed = ps.evaluate_guardrails(
        ps.analyze(split_sample, metrics=metrics, explain=False), metrics
    )
    # always valid costs evidence: never a smaller p-value than the fixed-horizon test
    fixed_row = next(r for r in fixed.rows if r.phase == "combined")
    assert row.p_ok >= fixed_row.p_ok
    assert row.p_breach >= fixed_row.p_breach


@pytest.mark.parametrize("engine", ["duckdb", "pyspark"])
def test_sequential_and_guardrails_are_engine_independent(
    engine: str, events_path: Path, ledger_path: Path, request: pytest.FixtureRequest
) -> None:
    """Always-valid rows, SRM p-values and guardrail verdicts agree on polars, DuckDB, Spark."""
    import duckdb

    metrics = [
        ps.Ratio("helpfulness", direction="higher", guardrail="5%"),
        ps.Mean("cost_usd", direction="lower", guardrail=0.05),
    ]
    kw: dict[str, Any] = {
        "metrics": metrics,
        "sequential": True,
        "planned_units": PLANNED,
        "explain": False,
        "recovery": False,
    }
    if engine == "duckdb":
        source: Any = duckdb.read_parquet(str(events_path))
    else:
        source = request.getfixturevalue("spark").read.parquet(str(events_path))
    base = ps.analyze(events_path, ledger_path, **kw)
    run = ps.analyze(source, ledger_path, **kw)
    fields = ("cs_lower", "cs_upper", "pvalue_sequential", "pvalue_sequential_adjusted")
    for a, b in zip(base.effects.rows, run.effects.rows, strict=True):
        assert (a.metric, a.phase, a.arm) == (b.metric, b.phase, b.arm)
        for f in fields:
            np.testing.assert_allclose(getattr(b, f), getattr(a, f), rtol=1e-9, err_msg=f)
    for a, b in zip(base.srm.rows, run.srm.rows, strict=True):
        assert b.pvalue == pytest.approx(a.pvalue, rel=1e-9, abs=1e-300)
    # the looks (one window pass per unit on every engine) and the first looks
    assert len(run.looks) == len(base.looks) > 0
    key = lambda r: (r.look, r.metric, r.scope, r.arm)  # noqa: E731
    for a, b in zip(sorted(base.looks.rows, key=key), sorted(run.looks.rows, key=key), strict=True):
        assert key(a) == key(b)
        assert (a.n_control, a.n_arm, a.ready) == (b.n_control, b.n_arm, b.ready)
        for f in ("effect", "se", "pvalue_sequential"):
            assert getattr(b, f) == pytest.approx(getattr(a, f), rel=1e-9, abs=1e-300), f
    assert sorted(run.first_looks.rows) == sorted(base.first_looks.rows)
    ga = ps.evaluate_guardrails(base, metrics).to_dicts()
    gb = ps.evaluate_guardrails(run, metrics).to_dicts()
    assert [r["verdict"] for r in gb] == [r["verdict"] for r in ga]
    for x, y in zip(ga, gb, strict=True):
        for f in ("harm", "bound", "p_ok", "p_breach"):
            assert y[f] == pytest.approx(x[f], rel=1e-9, abs=1e-300), f
    assert [str(r) for r in run.regressions] == [str(r) for r in base.regressions] or [
        r.metric for r in run.regressions
    ] == [r.metric for r in base.regressions]


def test_planned_power_under_sequential_uses_the_always_valid_test(
    split_sample: Any, ledger_path: Path
) -> None:
    """A planned MDE between the fixed-horizon MDE (2.80 SE) and the always-valid one (about
    3.88 SE) counts as reached by a fixed analysis and not by a sequential one."""
    from analysis.stats.sequential import sequential_mde

    metrics = [ps.Mean("cost_usd", direction="lower", primary=True)]
    ledger = ps.load_ledger(ledger_path)
    kw: dict[str, Any] = {"metrics": metrics, "explain": False}
    fixed = ps.analyze(split_sample, **kw)
    seq = ps.analyze(split_sample, sequential=True, planned_units=PLANNED, **kw)
    e = seq.effect("cost_usd")
    planned = 3.3 * e.se
    assert e.mde < planned < sequential_mde(e.se)

    def missing(res: ps.AnalysisResult) -> list[str]:
        rec = ps.recommend(res, metrics, ledger, ps.evaluate_guardrails(res, metrics), mde=planned)
        return [m for m in rec.missing if "power not reached" in m]

    assert missing(fixed) == []
    assert missing(seq), "the sequential test needs more units for the same MDE"


def test_decisions_show_in_a_notebook(split_sample: Any, ledger_path: Path) -> None:
    """``decide(...)`` renders as text and as HTML (guardrail table, then the recommendation)."""
    metrics = [
        ps.Ratio("helpfulness", direction="higher", primary=True),
        ps.Mean("cost_usd", direction="lower", guardrail="5%"),
    ]
    res = ps.analyze(
        split_sample, metrics=metrics, sequential=True, planned_units=PLANNED, explain=False
    )
    d = ps.decide(res, metrics, ps.load_ledger(ledger_path))
    assert d.recommendation.action == "rollback"
    text = str(d)
    assert text.index("guardrails") < text.index("recommendation: rollback (restore r41)")
    page = d._repr_html_()
    assert "<table>" in page
    assert page.index("<table>") < page.index("recommendation: rollback")
