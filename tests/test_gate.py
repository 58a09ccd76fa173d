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


def _copy_store(dst: Path) -> BaselineStore:
    """Copy the committed sample store and point its recorded ledger at the sample's ledger (the
    recorded path is relative to the store, so a copy elsewhere must be re-pointed)."""
    shutil.copytree(ROOT / "baselines", dst)
    cfg = dst / "support-qa" / "suite.yaml"
    text = cfg.read_text()
    assert "ledger: ../data_samples/ledger.yaml" in text
    cfg.write_text(text.replace("../data_samples/ledger.yaml", str(LEDGER)))
    return BaselineStore(dst)


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    """A copy of the committed sample store (state before sync), its ledger recorded."""
    return _copy_store(tmp_path / "baselines")


@pytest.fixture
def synced(store: BaselineStore) -> BaselineStore:
    store.sync(load_ledger(LEDGER))
    return store


# ---------------------------------------------------------------- the sample story


def test_story_naive_comparison_calls_r43_a_regression(store: BaselineStore) -> None:
    """With the check turned off the gate grades against the stale r42 baseline (and says so)."""
    res = gate("support-qa", R43, revision="r43", store=store, stale_check=False)
    assert res.reference == Reference("v0002", "r42", False)
    assert res.verdict == "regression"
    check = {c.name: c for c in res.checks}["ledger"]
    assert check.status == "skipped"
    assert "turned off" in check.detail
    assert json.loads(res.to_json())["stale_check"] is False


def test_story_recorded_ledger_is_checked_by_default(store: BaselineStore) -> None:
    """No ledger argument: the suite's recorded ledger catches the reverted r42 baseline."""
    with pytest.raises(StaleBaselineError, match="rolled back to r41") as info:
        gate("support-qa", R43, revision="r43", store=store)
    assert info.value.exit_code == 3
    assert f"--ledger {LEDGER}" in str(info.value)


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
    assert main([*args, "--no-stale-check"]) == 1
    captured = capsys.readouterr()
    assert "REGRESSION" in captured.out
    assert "stale-baseline check turned off" in captured.out
    assert f"store {store.root} (from --store)" in captured.err
    assert main(args) == 3  # the recorded ledger
    assert main([*args, "--ledger", str(LEDGER)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 2  # one error line per refusal
    assert "baseline sync" in err
    assert main([*args, "--ledger", str(LEDGER), "--no-stale-check"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main(["baseline", "sync", "--ledger", str(LEDGER), "--store", str(store.root)]) == 0
    capsys.readouterr()
    assert main([*args, "--ledger", str(LEDGER), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert next(iter(out)) == "schema_version"
    assert out["schema_version"] == 1
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


def _tango_reference(wins: int, losses: int, n: int, margin: float) -> float:
    """Tango's statistic with the restricted MLE found numerically (scipy), not in closed form."""
    from scipy import optimize

    d0 = -margin
    ties = n - wins - losses

    def nll(q: float) -> float:
        return -(
            losses * np.log(q)
            + ties * np.log(1 - 2 * q - d0)
            + (wins * np.log(q + d0) if wins else 0)
        )

    q = optimize.minimize_scalar(
        nll, bounds=(max(0.0, -d0) + 1e-12, (1 - d0) / 2 - 1e-12), method="bounded",
        options={"xatol": 1e-13},
    ).x  # fmt: skip
    return float((wins - losses - n * d0) / np.sqrt(n * (2 * q + d0 - d0 * d0)))


def test_compare_metrics_against_independent_references() -> None:
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
    # binary, one sample per example: Tango's score test (restricted MLE checked numerically)
    b = int(((ref["correct"] == 1) & (cand["correct"] == 0)).sum())
    c = int(((ref["correct"] == 0) & (cand["correct"] == 1)).sum())
    z = _tango_reference(c, b, n, 0.02)
    assert out[0].p_noninferior == pytest.approx(stats.norm.sf(z), rel=1e-6)
    assert out[0].p_regression == pytest.approx(stats.norm.cdf(z), rel=1e-6)
    assert out[0].test == "Tango score + McNemar exact"
    assert out[0].pvalue == pytest.approx(mcnemar([[0, b], [c, 0]], exact=True).pvalue, rel=1e-10)
    # continuous, n = 800, normal differences: near the margin the restricted variance is the
    # sample variance, so the score interval is the t interval; far from it the restricted fit
    # leans on the ends of the score range and the tail p-values are larger (conservative)
    for m, spec in zip(out[1:], _specs()[1:], strict=True):
        raw = cand[spec.name] - ref[spec.name]
        oriented = raw * spec.sign
        assert m.diff == pytest.approx(raw.mean())
        ci = stats.ttest_rel(cand[spec.name], ref[spec.name]).confidence_interval(1 - alpha)
        half = (ci.high - ci.low) / 2
        assert m.ci_lower == pytest.approx(ci.low, abs=0.02 * half)
        assert m.ci_upper == pytest.approx(ci.high, abs=0.02 * half)
        reg = stats.ttest_1samp(oriented, -spec.margin, alternative="less").pvalue
        assert (m.p_regression < alpha / 2) == (reg < alpha / 2)
        assert m.p_regression >= reg * 0.95
        assert m.pvalue == pytest.approx(
            stats.ttest_rel(cand[spec.name], ref[spec.name]).pvalue, rel=1e-9
        )
        # recentred exactly on the margin: p = 1/2 and the null sd is the sample sd
        at = oriented - oriented.mean() - spec.margin
        (b,) = compare_metrics(
            {"x": np.zeros(n)}, {"x": at}, [MetricSpec("x", "continuous", "higher", spec.margin)]
        )
        assert b.p_noninferior == pytest.approx(0.5)
        assert b.null_sd == pytest.approx(at.std(ddof=0), rel=1e-9)
    np.testing.assert_allclose(
        [m.p_regression_adjusted for m in out],
        multipletests([m.p_regression for m in out], method="holm")[1],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        [m.pvalue_adjusted for m in out],
        multipletests([m.pvalue for m in out], method="holm")[1],
        rtol=1e-9,
    )


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_alpha_is_two_sided_and_each_decision_is_one_sided_at_half_alpha(alpha: float) -> None:
    """ICH E9: the CI is the two-sided 1 − α interval; its lower bound is where Tango's
    one-sided test sits exactly at α/2 (restricted MLE found numerically, root by brentq);
    pass ⇔ that bound lies above −margin ⇔ p_noninferior < α/2."""
    from scipy import optimize

    rng = np.random.default_rng(11)
    n = 600
    ref = (rng.random(n) < 0.8).astype(float)
    cand = np.where(rng.random(n) < 0.06, 1 - ref, ref)
    wins = int(((cand == 1) & (ref == 0)).sum())
    losses = int(((cand == 0) & (ref == 1)).sum())
    for margin in (0.005, 0.02, 0.04):
        spec = [MetricSpec("c", "binary", "higher", margin)]
        (m,) = compare_metrics({"c": ref}, {"c": cand}, spec, alpha=alpha)
        diff = (wins - losses) / n
        lower = optimize.brentq(
            lambda d0: stats.norm.sf(_tango_reference(wins, losses, n, -d0)) - alpha / 2,
            -0.3,
            diff,
            xtol=1e-12,
        )
        assert m.ci_lower == pytest.approx(lower, abs=1e-6)
        assert (m.verdict == "pass") == (lower > -margin) == (m.p_noninferior < alpha / 2)
    # z_{1-alpha/2} in the minimum detectable difference
    (m,) = compare_metrics({"c": ref}, {"c": cand}, [MetricSpec("c", "binary", "higher", 0.02)],
                           alpha=alpha)  # fmt: skip
    d = cand - ref
    plan = min(m.null_sd, d.std(ddof=1))  # the planning sd (the lattice floor is below both)
    z = stats.norm.ppf(1 - alpha / 2) * plan + stats.norm.ppf(0.8) * d.std(ddof=1)
    assert m.mde == pytest.approx(z / np.sqrt(n), rel=1e-6)


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
    assert out[0].p_regression < 0.025 <= out[0].p_regression_adjusted  # alpha / 2
    assert out[0].verdict == "inconclusive"


def test_bootstrap_method_agrees_with_t(synced: BaselineStore) -> None:
    t = gate("support-qa", R43, store=synced)
    b = gate("support-qa", R43, store=synced, method="bootstrap", n_resamples=500)
    assert [m.verdict for m in b.metrics] == [m.verdict for m in t.metrics]
    for mt, mb in zip(t.metrics, b.metrics, strict=True):
        half = (mt.ci_upper - mt.ci_lower) / 2
        assert mb.ci_lower == pytest.approx(mt.ci_lower, abs=0.25 * half)
        assert mb.test.startswith("restricted bootstrap")


def test_several_samples_cluster_by_example(synced: BaselineStore) -> None:
    res = gate("support-qa", R43, store=synced)
    ref = pl.read_csv(R41).group_by("example_id").agg(pl.col("rubric").mean()).sort("example_id")
    cand = pl.read_csv(R43).group_by("example_id").agg(pl.col("rubric").mean()).sort("example_id")
    expected = stats.ttest_rel(cand["rubric"].to_numpy(), ref["rubric"].to_numpy())
    m = res.metrics[1]
    assert m.n == 1500
    assert m.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert "McNemar" not in res.metrics[0].test  # two samples per example


# ---------------------------------------------------------------- ties cannot pass (issue 15)


def test_identical_sparse_binary_candidate_does_not_pass() -> None:
    """The issue: 200 examples, 99% ones, margin 0.005, candidate identical: paired sd 0.

    The old Wald test passed with certainty; Tango's test gives Z = sqrt(n m / (1 − m)) ≈ 1.0.
    """
    ref = np.ones(200)
    ref[:2] = 0.0
    spec = [MetricSpec("correct", "binary", "higher", 0.005)]
    (m,) = compare_metrics({"correct": ref}, {"correct": ref.copy()}, spec)
    assert m.verdict == "inconclusive"
    assert m.p_noninferior == pytest.approx(stats.norm.sf(np.sqrt(200 * 0.005 / 0.995)))
    assert m.ci_lower < -0.005 < 0.005 < m.ci_upper
    assert m.null_sd == pytest.approx(np.sqrt(0.005 * 0.995))


def test_identical_tied_likert_candidate_passes_only_when_the_data_can_tell() -> None:
    """Tied Likert 1–5, margin 0.1: all-tied pairs pass once sqrt(n m / (R − m)) > z (n ≥ 106).

    Below that, a null with 2.5% drops of 4 points leaves every pair tied with probability
    0.975^n (0.22 at n = 60): passing would not be a level-α decision.
    """
    spec = [MetricSpec("l", "continuous", "higher", 0.1)]
    rng = np.random.default_rng(9)
    for n, expected in ((60, "inconclusive"), (200, "pass")):
        ref = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], size=n)
        ref[:2] = [1.0, 5.0]
        (m,) = compare_metrics({"l": ref}, {"l": ref.copy()}, spec)
        assert m.verdict == expected, n
        assert m.null_sd == pytest.approx(np.sqrt(0.1 * 3.9))
        assert "lattice 1" in m.test
    assert (1 - 0.1 / 4) ** 60 > 0.2


def test_constant_scores_cannot_be_tested() -> None:
    spec = [MetricSpec("s", "continuous", "higher", 0.1)]
    (m,) = compare_metrics({"s": np.full(300, 5.0)}, {"s": np.full(300, 5.0)}, spec)
    assert m.verdict == "inconclusive"
    assert "every score is 5 on both sides" in m.reason


def test_several_samples_use_the_lattice_of_their_means() -> None:
    """Binary scores with 3 samples per example: differences on the lattice 1/3."""
    rng = np.random.default_rng(2)
    n = 400
    ref = (rng.random((n, 3)) < 0.97).mean(axis=1)
    spec = [MetricSpec("ok", "binary", "higher", 0.02)]
    (m,) = compare_metrics({"ok": ref}, {"ok": ref.copy()}, spec, binary_single_sample=False)
    assert "lattice 0.3333" in m.test
    assert m.null_sd > 0
    # an all-tied candidate passes only if the restricted variance (binary range [0, 1]) allows
    z = 0.02 / np.sqrt(0.02 * 0.98 / n)
    assert (m.verdict == "pass") == (z > stats.norm.ppf(0.95))


def test_skewed_continuous_differences_withhold_the_skewed_side() -> None:
    """n < 25 g²: left skew withholds pass, right skew withholds regression (Cochran's rule)."""
    spec = [MetricSpec("s", "continuous", "higher", 0.1)]
    n = 300
    rng = np.random.default_rng(11)
    ref = rng.normal(3.0, 0.5, n)
    d = np.full(n, 0.05) + rng.normal(0, 0.01, n)
    d[:3] = -2.0  # rare large losses: strongly left-skewed, mean still above −m
    (m,) = compare_metrics({"s": ref}, {"s": ref + d}, spec)
    g = stats.skew(d, bias=True)
    assert g < 0
    assert n < 25 * g * g
    assert m.p_noninferior < 0.05  # the test alone would pass
    assert m.verdict == "inconclusive"
    assert "left-skewed" in m.reason
    assert "pass is not decided" in m.reason
    (r,) = compare_metrics({"s": ref}, {"s": ref - d - 0.2}, spec)
    assert r.p_regression < 0.05
    assert r.verdict == "inconclusive"
    assert "right-skewed" in r.reason


def test_restricted_bootstrap_does_not_pass_ties() -> None:
    ref = np.ones(200)
    ref[:2] = 0.0
    spec = [MetricSpec("correct", "binary", "higher", 0.005)]
    (m,) = compare_metrics(
        {"correct": ref}, {"correct": ref.copy()}, spec, method="bootstrap", n_resamples=4000
    )
    assert m.verdict == "inconclusive"
    # all tied: resampled from {0: 1 − m, −1: m}, P*(mean* >= 0) = (1 − m)^n
    assert m.p_noninferior == pytest.approx(0.995**200, abs=4 * np.sqrt(0.37 * 0.63 / 4000))


def test_candidate_sharing_no_example_is_refused(synced: BaselineStore, tmp_path: Path) -> None:
    p = tmp_path / "other.csv"
    pl.read_csv(R43).with_columns(("z" + pl.col("example_id")).alias("example_id")).write_csv(p)
    with pytest.raises(ResultsError, match="shares no example with reference v0001") as info:
        gate("support-qa", p, store=synced, min_coverage=1e-9)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("min_coverage", 0.0, "min_coverage"),
        ("min_coverage", float("nan"), "min_coverage"),
        ("min_coverage", 1.5, "min_coverage"),
        ("power", 1.0, "power"),
        ("power", float("nan"), "power"),
        ("alpha", float("nan"), "alpha"),
        ("n_resamples", 0, "n_resamples"),
    ],
)
def test_out_of_range_options_are_refused(
    synced: BaselineStore, option: str, value: float, match: str
) -> None:
    with pytest.raises(ResultsError, match=match) as info:
        gate("support-qa", R43, store=synced, **{option: value})  # type: ignore[arg-type]
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--alpha", "nan"],
        ["--alpha", "0.5"],
        ["--alpha", "-0.1"],
        ["--power", "inf"],
        ["--power", "0"],
        ["--resamples", "-5"],
        ["--resamples", "1.5"],
        ["--min-coverage", "0"],
        ["--min-coverage", "nan"],
        ["--min-coverage", "1.01"],
    ],
)
def test_cli_numeric_options_exit_2(
    store: BaselineStore, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["gate", "support-qa", "--candidate", str(R43), "--store", str(store.root)]
    base.append("--no-stale-check")
    assert main([*base, *args]) == 2
    assert args[0] in capsys.readouterr().err
    assert main([*base, "--min-coverage", "1", "--allow-inconclusive"]) == 1  # r43 vs r42


def test_help_states_the_alpha_convention(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--alpha is the two-sided level" in out
    assert "two-sided 1-alpha one" in out
    assert "one-sided decision is a test at alpha/2" in out
    assert "lower bound lies above -margin" in out
    assert "ICH E9" in out
    assert "--output" not in out  # the hidden alias of --out
    assert "--no-stale-check" in out


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
    with pytest.raises(StaleBaselineError, match="anchored to r43"):  # r43 is not live
        gate("support-qa", worse, revision="r45", store=synced, anchor_on_pass=True)
    res = gate(
        "support-qa", worse, revision="r45", store=synced, anchor_on_pass=True, stale_check=False
    )
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
    assert next(iter(data)) == "schema_version"
    assert data["alpha"] == 0.05
    assert data["confidence"] == pytest.approx(0.95)
    assert data["stale_check"] is True
    assert "two-sided 95% score interval" in text
    assert "one-sided at alpha/2=0.025" in text
    assert [m["metric"] for m in data["metrics"]] == ["correct", "rubric"]
    xml = ET.fromstring(res.to_junit())
    assert [c.get("name") for c in xml.iter("testcase")] == ["correct", "rubric"]
    assert res.to_polars().height == 2
    assert next(iter(res.to_pandas().columns)) == "metric"
    assert "<table>" in res._repr_html_()
    bad = gate("support-qa", R42.parent / "r41.csv", store=synced)
    assert bad.verdict == "pass"


def test_junit_failures_and_exit_codes(store: BaselineStore, tmp_path: Path) -> None:
    res = gate("support-qa", R43, store=store, stale_check=False)
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
        "--out",
        str(out),
        "--no-stale-check",
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
    """pass ⇔ lower bound > −margin; regression ⇔ upper bound < −margin (score interval)."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, n)
    cand = ref + shift + rng.normal(0, 0.7, n)
    spec = MetricSpec("m", "continuous", direction, margin)  # type: ignore[arg-type]
    (m,) = compare_metrics({"m": ref}, {"m": cand}, [spec])
    lo, hi = (m.ci_lower, m.ci_upper) if direction == "higher" else (-m.ci_upper, -m.ci_lower)
    if m.reason:  # a decision withheld (skewness rule): the interval would have made it
        assert m.verdict == "inconclusive"
        assert lo > -margin or hi < -margin
    else:
        assert (m.verdict == "pass") == (lo > -margin)
        assert (m.verdict == "regression") == (hi < -margin)
    assert m.p_regression_adjusted == pytest.approx(m.p_regression)
    assert m.p_noninferior + m.p_regression == pytest.approx(1.0)


def test_gate_output_onto_its_candidate_is_bad_input(
    store: BaselineStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out`` (or its hidden alias ``--output``) equal to the candidate file would overwrite
    the input: exit 2, unchanged."""
    candidate = tmp_path / "candidate.csv"
    shutil.copy(R43, candidate)
    before = candidate.read_bytes()
    for option in ("--out", "--output"):
        argv = ["gate", "support-qa", "--candidate", str(candidate), "--revision", "r43",
                "--store", str(store.root), option, str(candidate)]  # fmt: skip
        assert main(argv) == 2
        assert "--out " in capsys.readouterr().err
        assert candidate.read_bytes() == before
