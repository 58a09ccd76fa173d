"""The gate: the sample story, the stale-baseline guard, validity checks, verdicts, outputs."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from analysis.cli import main
from analysis.errors import BaselineError, ResultsError, StaleBaselineError
from analysis.evals.gating import compare_metrics, gate
from analysis.evals.store import BaselineStore, MetricSpec, Reference, SuiteConfig
from analysis.ledger import load_ledger, parse_ledger

ROOT = Path(__file__).resolve().parent.parent
EVALS = ROOT / "data_samples" / "evals" / "support-qa"
LEDGER = ROOT / "data_samples" / "ledger.yaml"
R41, R42, R43 = (EVALS / f"{r}.csv" for r in ("r41", "r42", "r43"))


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    """A copy of the committed sample store (state before sync)."""
    dst = tmp_path / "baselines"
    shutil.copytree(ROOT / "baselines", dst)
    return BaselineStore(dst)


@pytest.fixture
def synced(store: BaselineStore) -> BaselineStore:
    store.sync(load_ledger(LEDGER))
    return store


# ---------------------------------------------------------------- the sample story


def test_story_naive_comparison_calls_r43_a_regression(store: BaselineStore) -> None:
    """Without the ledger the gate grades against the stale r42 baseline (and says so)."""
    res = gate("support-qa", R43, revision="r43", store=store)
    assert res.reference == Reference("v0002", "r42", False)
    assert res.verdict == "regression"
    assert {c.name: c.status for c in res.checks}["ledger"] == "skipped"


def test_story_gate_refuses_the_reverted_baseline(store: BaselineStore) -> None:
    with pytest.raises(StaleBaselineError) as info:
        gate("support-qa", R43, revision="r43", ledger=LEDGER, store=store)
    msg = str(info.value)
    assert "anchored to r42" in msg
    assert "rolled back to r41" in msg
    assert f"promptstate baseline sync support-qa --ledger {LEDGER} --store {store.root}" in msg
    assert info.value.exit_code == 3


def test_story_after_sync_r43_passes_against_r41(synced: BaselineStore) -> None:
    res = gate("support-qa", R43, revision="r43", ledger=LEDGER, store=synced)
    assert res.reference == Reference("v0001", "r41", True)
    assert res.verdict == "pass"
    assert [m.verdict for m in res.metrics] == ["pass", "pass"]
    assert all(c.status == "ok" for c in res.checks)
    assert res.exit_code() == 0


def test_story_through_the_cli(store: BaselineStore, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "gate",
        "support-qa",
        "--candidate",
        str(R43),
        "--revision",
        "r43",
        "--store",
        str(store.root),
    ]
    assert main(args) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert main([*args, "--ledger", str(LEDGER)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "baseline sync" in err
    assert main(["baseline", "sync", "--ledger", str(LEDGER), "--store", str(store.root)]) == 0
    capsys.readouterr()
    assert main([*args, "--ledger", str(LEDGER), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "pass"
    assert out["reference"]["version"] == "v0001"
    assert main([*args, "--ledger", str(LEDGER), "--format", "junit"]) == 0
    suite = ET.fromstring(capsys.readouterr().out)
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "0"


# ---------------------------------------------------------------- stale guard variants


def test_reference_not_of_the_live_revision(store: BaselineStore, tmp_path: Path) -> None:
    s = store.suite("support-qa")
    s.pin("v0001")
    ledger = parse_ledger(
        {
            "version": 1,
            "prompts": {"support-assistant": {"revisions": {"r41": {}, "r44": {"parent": "r41"}}}},
            "transitions": [
                {
                    "at": "2026-11-01T00:00:00Z",
                    "action": "deploy",
                    "prompt": "support-assistant",
                    "revision": "r41",
                },
                {
                    "at": "2026-11-05T00:00:00Z",
                    "action": "deploy",
                    "prompt": "support-assistant",
                    "revision": "r44",
                },
            ],
        }
    )
    with pytest.raises(StaleBaselineError, match=r"live revision .* is r44.*baseline anchor"):
        gate("support-qa", R43, ledger=ledger, store=store)
    s.anchor("r44", R41)  # pinned: stored, reference stays
    with pytest.raises(StaleBaselineError, match=r"baseline pin support-qa --version v0003"):
        gate("support-qa", R43, ledger=ledger, store=store)


def test_candidate_revision_of_another_prompt(synced: BaselineStore) -> None:
    ledger = parse_ledger(
        {
            "version": 1,
            "prompts": {
                "support-assistant": {"revisions": {"r41": {}}},
                "other": {"revisions": {"x1": {}}},
            },
            "transitions": [
                {
                    "at": "2026-11-01T00:00:00Z",
                    "action": "deploy",
                    "prompt": "support-assistant",
                    "revision": "r41",
                }
            ],
        }
    )
    with pytest.raises(ResultsError, match="revision of 'other'"):
        gate("support-qa", R43, revision="x1", ledger=ledger, store=synced)
    assert gate("support-qa", R43, revision="r43", ledger=ledger, store=synced).verdict == "pass"


# ---------------------------------------------------------------- validity checks


def test_validity_checks(synced: BaselineStore, tmp_path: Path) -> None:
    cand = pl.read_csv(R43)
    # other grader
    p = tmp_path / "g.csv"
    cand.with_columns(pl.lit("judge-2027").alias("grader")).write_csv(p)
    with pytest.raises(ResultsError, match="graded by 'judge-2027'"):
        gate("support-qa", p, store=synced)
    # missing metric
    p = tmp_path / "m.csv"
    cand.drop("rubric").write_csv(p)
    with pytest.raises(ResultsError, match="missing metric column"):
        gate("support-qa", p, store=synced)
    # too little coverage
    p = tmp_path / "c.csv"
    cand.filter(pl.col("example_id") < "q1200").write_csv(p)
    with pytest.raises(ResultsError, match=r"covers 1199 of the 1500 .*79\.9% < 95%"):
        gate("support-qa", p, store=synced)
    # enough coverage: compares the common examples, with a warning
    p = tmp_path / "ok.csv"
    cand.filter(pl.col("example_id") != "q0007").write_csv(p)
    res = gate("support-qa", p, store=synced)
    check = {c.name: c for c in res.checks}["eval_set"]
    assert check.status == "warn"
    assert "1499 common" in check.detail
    assert res.metrics[0].n == 1499
    # no grader column: assumed, with a warning; --grader
    p = tmp_path / "ng.csv"
    cand.drop("grader").write_csv(p)
    res = gate("support-qa", p, store=synced)
    assert {c.name: c.status for c in res.checks}["grader"] == "warn"
    with pytest.raises(ResultsError, match="graded by 'x'"):
        gate("support-qa", p, store=synced, grader="x")


def test_tampered_reference_is_refused(synced: BaselineStore) -> None:
    path = synced.root / "support-qa" / "versions" / "v0001" / "scores.parquet"
    pl.read_parquet(path).with_columns(pl.col("correct") * 0).write_parquet(path)
    with pytest.raises(BaselineError, match="content hash mismatch") as info:
        gate("support-qa", R43, store=synced)
    assert info.value.exit_code == 3


def test_no_reference_yet(tmp_path: Path) -> None:
    st = BaselineStore(tmp_path)
    st.init("qa", SuiteConfig.load(ROOT / "data_samples" / "evals" / "support-qa.suite.yaml"))
    with pytest.raises(BaselineError, match="no reference yet.*baseline anchor qa"):
        gate("qa", R43, store=st)


def test_grader_changed_since_the_reference(synced: BaselineStore) -> None:
    cfg = synced.root / "support-qa" / "suite.yaml"
    cfg.write_text(cfg.read_text().replace("judge-2026-10", "judge-2027-01"))
    with pytest.raises(BaselineError, match="graded by 'judge-2026-10' but the suite now uses"):
        gate("support-qa", R43, store=synced)


def test_bad_options(synced: BaselineStore) -> None:
    with pytest.raises(ResultsError, match="alpha"):
        gate("support-qa", R43, store=synced, alpha=0.7)
    with pytest.raises(ResultsError, match="method"):
        gate("support-qa", R43, store=synced, method="z")  # type: ignore[arg-type]
    with pytest.raises(ResultsError, match="needs --revision"):
        gate("support-qa", R43, store=synced, anchor_on_pass=True)


# ---------------------------------------------------------------- statistics


def _specs() -> list[MetricSpec]:
    return [
        MetricSpec("correct", "binary", "higher", 0.02),
        MetricSpec("rubric", "continuous", "higher", 0.1),
        MetricSpec("latency", "continuous", "lower", 50.0),
    ]


def test_compare_metrics_against_scipy_and_statsmodels() -> None:
    rng = np.random.default_rng(5)
    n = 800
    ref = {
        "correct": (rng.random(n) < 0.8).astype(float),
        "rubric": rng.normal(3.5, 0.6, n),
        "latency": rng.normal(900, 120, n),
    }
    flip = rng.random(n) < 0.1
    cand = {
        "correct": np.where(flip, 1 - ref["correct"], ref["correct"]),
        "rubric": ref["rubric"] + rng.normal(-0.05, 0.4, n),
        "latency": ref["latency"] + rng.normal(20, 60, n),
    }
    alpha = 0.05
    out = compare_metrics(ref, cand, _specs(), alpha=alpha)
    p_reg = []
    for m, spec in zip(out, _specs(), strict=True):
        raw = cand[spec.name] - ref[spec.name]
        ci = stats.ttest_rel(cand[spec.name], ref[spec.name]).confidence_interval(1 - 2 * alpha)
        assert (m.ci_lower, m.ci_upper) == pytest.approx((ci.low, ci.high), rel=1e-9)
        assert m.diff == pytest.approx(raw.mean())
        oriented = raw * spec.sign
        reg = stats.ttest_1samp(oriented, -spec.margin, alternative="less").pvalue
        ni = stats.ttest_1samp(oriented, -spec.margin, alternative="greater").pvalue
        assert m.p_regression == pytest.approx(reg, rel=1e-9)
        assert m.p_noninferior == pytest.approx(ni, rel=1e-9)
        p_reg.append(reg)
    np.testing.assert_allclose(
        [m.p_regression_adjusted for m in out], multipletests(p_reg, method="holm")[1], rtol=1e-9
    )
    b = int(((ref["correct"] == 1) & (cand["correct"] == 0)).sum())
    c = int(((ref["correct"] == 0) & (cand["correct"] == 1)).sum())
    exact = mcnemar([[0, b], [c, 0]], exact=True).pvalue
    assert out[0].pvalue == pytest.approx(exact, rel=1e-10)
    assert "McNemar" in out[0].test
    assert out[1].pvalue == pytest.approx(
        stats.ttest_rel(cand["rubric"], ref["rubric"]).pvalue, rel=1e-9
    )
    two = [m.pvalue for m in out]
    np.testing.assert_allclose(
        [m.pvalue_adjusted for m in out], multipletests(two, method="holm")[1], rtol=1e-9
    )


@pytest.mark.parametrize(
    ("shift", "expected"),
    [(0.0, "pass"), (-0.3, "regression"), (-0.1, "inconclusive"), (0.2, "pass")],
)
def test_verdict_conventions(shift: float, expected: str) -> None:
    """pass: lower bound > −margin; regression: Holm p of 'worse than margin' < alpha."""
    rng = np.random.default_rng(2)
    n = 400
    ref = rng.normal(3.5, 0.6, n)
    cand = ref + shift + rng.normal(0, 0.5, n)
    spec = MetricSpec("rubric", "continuous", "higher", 0.1)
    (m,) = compare_metrics({"rubric": ref}, {"rubric": cand}, [spec])
    assert m.verdict == expected
    assert (m.ci_lower > -0.1) == (expected == "pass")
    if expected == "regression":
        assert m.ci_upper < -0.1
    if expected == "inconclusive":
        assert m.mde > 0
        assert m.n_required is not None


def test_lower_is_better_orientation() -> None:
    ref = np.linspace(800, 1200, 300)
    rng = np.random.default_rng(4)
    spec = MetricSpec("latency", "continuous", "lower", 10.0)
    (slower,) = compare_metrics(
        {"latency": ref}, {"latency": ref + 40 + rng.normal(0, 5, 300)}, [spec]
    )
    assert slower.verdict == "regression"
    assert slower.diff > 0
    (faster,) = compare_metrics(
        {"latency": ref}, {"latency": ref - 40 + rng.normal(0, 5, 300)}, [spec]
    )
    assert faster.verdict == "pass"
    assert faster.ci_upper < 0


def test_holm_can_turn_a_marginal_regression_inconclusive() -> None:
    rng = np.random.default_rng(0)
    n = 500
    specs = [MetricSpec(f"m{i}", "continuous", "higher", 0.1) for i in range(5)]
    ref = {s.name: rng.normal(0, 1, n) for s in specs}
    noise = {s.name: rng.normal(0, 1, n) for s in specs}
    # one metric regressing so that its unadjusted p is ~0.02
    d0 = noise["m0"] - noise["m0"].mean()
    target = -0.1 - 2.2 * d0.std(ddof=1) / np.sqrt(n)
    cand = {s.name: ref[s.name] + noise[s.name] for s in specs}
    cand["m0"] = ref["m0"] + d0 + target
    out = compare_metrics(ref, cand, specs)
    assert out[0].p_regression < 0.05 <= out[0].p_regression_adjusted
    assert out[0].verdict == "inconclusive"


def test_bootstrap_method_agrees_with_t(synced: BaselineStore) -> None:
    t = gate("support-qa", R43, store=synced)
    b = gate("support-qa", R43, store=synced, method="bootstrap", n_resamples=500)
    assert [m.verdict for m in b.metrics] == [m.verdict for m in t.metrics]
    for mt, mb in zip(t.metrics, b.metrics, strict=True):
        half = (mt.ci_upper - mt.ci_lower) / 2
        assert mb.ci_lower == pytest.approx(mt.ci_lower, abs=0.25 * half)
        assert mb.test.startswith("paired bootstrap")


def test_several_samples_cluster_by_example(synced: BaselineStore) -> None:
    res = gate("support-qa", R43, store=synced)
    ref = pl.read_csv(R41).group_by("example_id").agg(pl.col("rubric").mean()).sort("example_id")
    cand = pl.read_csv(R43).group_by("example_id").agg(pl.col("rubric").mean()).sort("example_id")
    expected = stats.ttest_rel(cand["rubric"].to_numpy(), ref["rubric"].to_numpy())
    m = res.metrics[1]
    assert m.n == 1500
    assert m.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert "McNemar" not in res.metrics[0].test  # two samples per example


# ---------------------------------------------------------------- anchor on pass, outputs


def test_anchor_on_pass(synced: BaselineStore, tmp_path: Path) -> None:
    s = synced.suite("support-qa")
    res = gate("support-qa", R43, revision="r43", ledger=LEDGER, store=synced, anchor_on_pass=True)
    assert res.anchored is None
    assert "pinned" in res.notes[0]
    s.unpin()
    res = gate(
        "support-qa",
        R43,
        revision="r43",
        ledger=LEDGER,
        store=synced,
        anchor_on_pass=True,
        at=datetime(2026, 11, 5, tzinfo=UTC),
        actor="ci",
    )
    # r43 passes but is not better on the primary metric (correct): not anchored
    assert res.verdict == "pass"
    assert res.metrics[0].diff < 0
    assert res.anchored is None
    assert "not better" in res.notes[0]
    better = tmp_path / "better.csv"
    pl.read_csv(R43).with_columns(
        pl.when(pl.col("example_id") < "q0100")
        .then(1)
        .otherwise(pl.col("correct"))
        .alias("correct")
    ).write_csv(better)
    res = gate(
        "support-qa",
        better,
        revision="r43",
        ledger=LEDGER,
        store=synced,
        anchor_on_pass=True,
        actor="ci",
    )
    assert res.verdict == "pass"
    assert res.anchored == "v0003"
    e = s.journal()[-1]
    assert (e.action, e.version, e.revision, e.actor) == ("reanchor", "v0003", "r43", "ci")
    assert "anchor-on-pass" in e.reason
    assert s.reference() == Reference("v0003", "r43", False)
    # failing gate does not anchor
    worse = tmp_path / "worse.csv"
    pl.read_csv(R43).with_columns(pl.col("rubric") - 0.5).write_csv(worse)
    res = gate("support-qa", worse, revision="r45", store=synced, anchor_on_pass=True)
    assert res.verdict == "regression"
    assert res.anchored is None
    assert res.notes == ("not anchored: verdict is regression",)


def test_outputs(synced: BaselineStore) -> None:
    res = gate("support-qa", R43, revision="r43", ledger=LEDGER, store=synced)
    text = res.to_text()
    assert "PASS" in text
    assert "check ledger: ok" in text
    md = res.to_markdown()
    assert md.startswith("### ✅ gate support-qa: r43 vs v0001 (r41)")
    assert "| correct |" in md
    data = json.loads(res.to_json())
    assert data["confidence"] == pytest.approx(0.9)
    assert [m["metric"] for m in data["metrics"]] == ["correct", "rubric"]
    xml = ET.fromstring(res.to_junit())
    assert [c.get("name") for c in xml.iter("testcase")] == ["correct", "rubric"]
    assert res.to_polars().height == 2
    assert next(iter(res.to_pandas().columns)) == "metric"
    assert "<table>" in res._repr_html_()
    bad = gate("support-qa", R42.parent / "r41.csv", store=synced)
    assert bad.verdict == "pass"


def test_junit_failures_and_exit_codes(store: BaselineStore, tmp_path: Path) -> None:
    res = gate("support-qa", R43, store=store)
    xml = ET.fromstring(res.to_junit())
    failures = list(xml.iter("failure"))
    assert xml.get("failures") == str(len(failures)) == "2"
    assert failures[0].get("type") == "regression"
    assert res.exit_code() == 1
    small = tmp_path / "small.csv"
    pl.read_csv(R43).filter(pl.col("example_id") < "q0060").write_csv(small)
    out = tmp_path / "report.md"
    args = [
        "gate",
        "support-qa",
        "--candidate",
        str(small),
        "--store",
        str(store.root),
        "--min-coverage",
        "0.01",
        "--format",
        "markdown",
        "--output",
        str(out),
    ]
    store.suite("support-qa").pin("v0001")
    assert main(args) == 1  # inconclusive
    assert "inconclusive" in out.read_text()
    assert main([*args, "--allow-inconclusive"]) == 0
    assert (
        main(
            [
                "gate",
                "support-qa",
                "--candidate",
                str(tmp_path / "nope.csv"),
                "--store",
                str(store.root),
            ]
        )
        == 2
    )


# ---------------------------------------------------------------- properties

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(3, 300),
    shift=st.floats(-1.0, 1.0),
    margin=st.floats(0.01, 0.5),
    direction=st.sampled_from(["higher", "lower"]),
)
def test_verdicts_agree_with_the_interval(
    seed: int, n: int, shift: float, margin: float, direction: str
) -> None:
    """pass ⇔ oriented lower bound > −margin; a single-metric regression ⇔ upper bound < −margin."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, n)
    cand = ref + shift + rng.normal(0, 0.7, n)
    spec = MetricSpec("m", "continuous", direction, margin)  # type: ignore[arg-type]
    (m,) = compare_metrics({"m": ref}, {"m": cand}, [spec])
    lo, hi = (m.ci_lower, m.ci_upper) if direction == "higher" else (-m.ci_upper, -m.ci_lower)
    assert (m.verdict == "pass") == (lo > -margin)
    assert (m.verdict == "regression") == (hi < -margin)
    assert m.p_regression_adjusted == pytest.approx(m.p_regression)
    assert m.p_noninferior + m.p_regression == pytest.approx(1.0)
