"""Guardrail metrics (issue 22 item 1): definitions, verdicts against an independent reference,
the ``analyze`` and ``report`` outputs and exit codes."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from _generators import RampSpec, generate, ledger_file
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis import load_ledger
from analysis.cli import main
from analysis.decisions import decide, evaluate_guardrails
from analysis.errors import PromptstateError
from analysis.events.labelling import split
from analysis.metrics import analyze
from analysis.metrics.definitions import Mean, Proportion, Quantile, Ratio, load_metrics
from analysis.stats.guardrail import guardrail_test, guardrail_verdicts, harm_of

ALPHA = 0.05


# -- definitions ------------------------------------------------------------------------------


def test_api_margins_absolute_and_relative() -> None:
    assert Mean("cost", direction="lower", guardrail=20).margin == (20.0, False)
    assert Mean("cost", direction="lower", guardrail="2%").margin == (0.02, True)
    assert Ratio("h", direction="higher", guardrail=" 2.5 %").margin == (0.025, True)
    assert Mean("cost").margin is None
    assert Ratio("h", direction="higher", primary=True).primary is True


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"guardrail": 20}, "needs a direction"),
        ({"direction": "lower", "guardrail": 0}, "positive finite number"),
        ({"direction": "lower", "guardrail": -3}, "positive finite number"),
        ({"direction": "lower", "guardrail": math.inf}, "positive finite number"),
        ({"direction": "lower", "guardrail": "two%"}, "not a percent"),
        ({"direction": "lower", "guardrail": "2"}, "not a percent"),
        ({"direction": "lower", "guardrail": "0%"}, "above 0%"),
        ({"direction": "lower", "guardrail": True}, "positive number"),
        ({"primary": True}, "primary metric needs a direction"),
        ({"direction": "lower", "primary": "yes"}, "primary must be true or false"),
    ],
)
def test_api_refuses_bad_guardrails(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(PromptstateError, match=needle) as info:
        Mean("cost_usd", **kwargs)
    assert "Mean('cost_usd')" in str(info.value)


def test_metrics_file_guardrail_and_primary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text(
        "metrics:\n"
        "  - {type: mean, column: cost, direction: lower, guardrail: {margin: 20}}\n"
        "  - {type: ratio, numerator: h, direction: higher, guardrail: {margin: '2%'}}\n"
        "  - {type: proportion, column: t, direction: higher, primary: true}\n"
    )
    cost, h, t = load_metrics(path)
    assert cost.margin == (20.0, False)
    assert h.margin == (0.02, True)
    assert t.primary
    assert not cost.primary


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("{type: mean, column: cost, guardrail: {margin: 20}}", "needs a direction"),
        ("{type: mean, column: cost, direction: lower, guardrail: {margin: 0}}", "positive"),
        ("{type: mean, column: cost, direction: lower, guardrail: {margin: '2 pct'}}", "percent"),
        ("{type: mean, column: cost, direction: lower, guardrail: {limit: 2}}", "limit"),
        ("{type: mean, column: cost, direction: lower, guardrail: {}}", "margin"),
    ],
)
def test_metrics_file_errors_name_the_file_and_entry(
    tmp_path: Path, entry: str, needle: str
) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text(f"metrics:\n  - {{type: ratio, numerator: h}}\n  - {entry}\n")
    with pytest.raises(PromptstateError, match=needle) as info:
        load_metrics(path)
    assert str(path) in str(info.value)
    assert "metrics[1]" in str(info.value)


# -- the statistics against an independent reference ------------------------------------------


@pytest.mark.parametrize(
    ("harm", "se", "margin"), [(1.0, 1.0, 4.0), (5.0, 0.5, 4.0), (3.9, 0.2, 4.0), (-2.0, 3.0, 1.0)]
)
def test_one_sided_tests_match_scipy(harm: float, se: float, margin: float) -> None:
    t = guardrail_test(harm, se, margin, alpha=ALPHA)
    # H0: harm >= margin, rejected for small harm: the lower tail
    assert t.p_ok == pytest.approx(stats.norm.cdf(harm, loc=margin, scale=se), rel=1e-12)
    # H0: harm <= margin, rejected for large harm: the upper tail
    assert t.p_breach == pytest.approx(stats.norm.sf(harm, loc=margin, scale=se), rel=1e-12)
    assert t.bound == pytest.approx(harm + stats.norm.ppf(1 - ALPHA / 2) * se, rel=1e-12)
    assert (t.bound < margin) == (t.p_ok < ALPHA / 2)


def test_harm_orientation() -> None:
    assert harm_of(2.0, "lower") == 2.0
    assert harm_of(2.0, "higher") == -2.0


def test_verdicts_holm_match_statsmodels() -> None:
    tests = [guardrail_test(h, 1.0, 3.0) for h in (0.0, 0.6, 1.0, 5.5, 6.2, 9.0, 3.0)]
    out = guardrail_verdicts(tests, alpha=ALPHA)
    ok_rej, ok_adj, _, _ = multipletests([t.p_ok for t in tests], alpha=ALPHA / 2, method="holm")
    br_rej, br_adj, _, _ = multipletests(
        [t.p_breach for t in tests], alpha=ALPHA / 2, method="holm"
    )
    for (verdict, p_ok, p_breach), a, b, ra, rb in zip(
        out, ok_adj, br_adj, ok_rej, br_rej, strict=True
    ):
        assert p_ok == pytest.approx(a, rel=1e-12)
        assert p_breach == pytest.approx(b, rel=1e-12)
        assert verdict == ("ok" if ra else "breach" if rb else "inconclusive")
    assert {v for v, _, _ in out} == {"ok", "breach", "inconclusive"}


def test_undefined_se_is_inconclusive() -> None:
    ((verdict, p_ok, _),) = guardrail_verdicts([guardrail_test(1.0, float("nan"), 2.0)])
    assert verdict == "inconclusive"
    assert math.isnan(p_ok)


# -- on a real analysis -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated canary (true helpfulness effect −0.30 per turn) on disk."""
    d = tmp_path_factory.mktemp("guardrails")
    generate(RampSpec(n_units=1500, seed=5)).write_parquet(d / "events.parquet")
    ledger_file(d)
    return {"dir": d, "events": d / "events.parquet", "ledger": d / "ledger.yaml"}


@pytest.fixture(scope="module")
def analysed(data: dict[str, Path]) -> Any:
    metrics = [
        Ratio("helpfulness", direction="higher", guardrail=0.05, name="h_abs"),
        Ratio("helpfulness", direction="higher", guardrail="20%", name="h_rel"),
        Mean("helpfulness", direction="higher", guardrail=0.5, name="h_total"),
        Quantile("helpfulness", 0.5, direction="higher", guardrail="5%"),
        Proportion("helpfulness", direction="higher"),  # no guardrail
    ]
    ledger = load_ledger(data["ledger"])
    res = analyze(split(data["events"], ledger), metrics=metrics, explain=False, recovery=False)
    return res, metrics, ledger


def _reference(res: Any, metrics: list[Any]) -> dict[tuple[str, str, str], tuple[str, float]]:
    """Verdicts computed by hand from the effect rows: scipy one-sided tests, statsmodels Holm
    per family (combined; latest phase) and per hypothesis (ok; breach)."""
    guard = {m.label: m for m in metrics if m.guardrail is not None}
    clean = [r for r in res.effects.rows if r.analysis == "clean" and r.metric in guard]
    latest = max(int(r.phase) for r in clean if r.phase.isdigit())
    out = {}
    for family in ("combined", str(latest)):
        rows = [r for r in clean if r.phase == family]
        p_ok, p_br, margins = [], [], []
        for r in rows:
            m = guard[r.metric]
            value, relative = m.margin
            margin = value * abs(r.control_mean) if relative else value
            harm = -r.effect  # direction higher
            se = r.se
            if relative:  # Var(t − (1 + p) c) with the control's share n_arm / (n_arm + n_c)
                v_c = r.se**2 * r.n_arm / (r.n_arm + r.n_control)
                se = math.sqrt(r.se**2 + ((1 + value) ** 2 - 1) * v_c)
            p_ok.append(stats.norm.cdf((harm - margin) / se))
            p_br.append(stats.norm.sf((harm - margin) / se))
            margins.append(margin)
        ok = multipletests(p_ok, alpha=ALPHA / 2, method="holm")[0]
        br = multipletests(p_br, alpha=ALPHA / 2, method="holm")[0]
        for r, a, b, margin in zip(rows, ok, br, margins, strict=True):
            out[(r.metric, r.arm, r.phase)] = (
                "ok" if a else "breach" if b else "inconclusive",
                margin,
            )
    return out


def test_verdicts_on_the_effect_rows_match_a_hand_computation(analysed: Any) -> None:
    res, metrics, _ = analysed
    table = evaluate_guardrails(res, metrics)
    ref = _reference(res, metrics)
    got = {(g.metric, g.arm, g.phase): (g.verdict, g.margin) for g in table.rows}
    assert set(got) == set(ref)
    for key, (verdict, margin) in ref.items():
        assert got[key][0] == verdict, key
        assert got[key][1] == pytest.approx(margin, rel=1e-12)
    assert {g.metric for g in table.rows} == {"h_abs", "h_rel", "h_total", "helpfulness_p50"}
    assert {g.phase for g in table.rows} == {"combined", "2"}
    assert {g.margin_text for g in table.rows} == {"0.05", "20%", "0.5", "5%"}
    # the true harm (0.30 per turn) is well beyond 0.05, well below 20% of ~3.6
    verdicts = {(g.metric, g.phase): g.verdict for g in table.rows}
    assert verdicts[("h_abs", "combined")] == "breach"
    assert verdicts[("h_rel", "combined")] == "ok"


def test_a_relative_margin_of_a_zero_control_value_is_an_error(analysed: Any) -> None:
    res, metrics, _ = analysed
    rows = tuple(
        r._replace(control_mean=0.0) if r.metric == "helpfulness_p50" else r
        for r in res.effects.rows
    )
    broken = dataclasses.replace(res, effects=dataclasses.replace(res.effects, rows=rows))
    with pytest.raises(PromptstateError, match="helpfulness_p50.*absolute margin") as info:
        evaluate_guardrails(broken, metrics, where="m.yaml")
    assert "m.yaml" in str(info.value)


@pytest.mark.parametrize("sequential", [False, True])
def test_a_relative_margin_without_a_control_value_yet_is_inconclusive(
    analysed: Any, sequential: bool
) -> None:
    """No control estimate yet (the first look of a canary: too few units in every block): the
    margin is unknown, the verdict inconclusive — not an error (it made an hourly job exit 2),
    and the other guardrails' Holm family does not count it."""
    res, metrics, _ = analysed
    rows = tuple(
        r._replace(control_mean=float("nan")) if r.metric == "helpfulness_p50" else r
        for r in res.effects.rows
    )
    options = {**res.options, "sequential": sequential, "planned_units": 5000.0,
               "sequential_ready": True}  # fmt: skip
    broken = dataclasses.replace(
        res, effects=dataclasses.replace(res.effects, rows=rows), options=options
    )
    table = evaluate_guardrails(broken, metrics, where="m.yaml")
    p50 = [g for g in table.rows if g.metric == "helpfulness_p50"]
    assert p50
    assert all(g.verdict == "inconclusive" and math.isnan(g.margin) for g in p50)


def test_decisions_exit_1_on_a_breach_and_0_without(analysed: Any) -> None:
    res, metrics, ledger = analysed
    dec = decide(res, metrics, ledger)
    assert dec.exit_code == 1
    assert dec.breaches
    assert dec.has_guardrails
    none = [dataclasses.replace(m, guardrail=None) for m in metrics]
    dec = decide(res, none, ledger)
    assert dec.exit_code == 0
    assert not dec.has_guardrails
    assert "guardrails" not in dec.to_dict()


# -- the CLI --------------------------------------------------------------------------------------


def _metrics_file(d: Path, body: str, name: str = "metrics.yaml") -> Path:
    path = d / name
    path.write_text("metrics:\n" + body)
    return path


def _argv(data: dict[str, Path], metrics: Path, *extra: str) -> list[str]:
    return [
        "analyze", str(data["events"]), "--ledger", str(data["ledger"]), "--metrics",
        str(metrics), "--no-explain", "--no-completeness", *extra,
    ]  # fmt: skip


def test_analyze_json_text_and_markdown_lead_with_a_breach(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = _metrics_file(
        data["dir"],
        "  - {type: ratio, numerator: helpfulness, direction: higher, guardrail: {margin: 0.05}}\n",
    )
    code = main(_argv(data, metrics, "--format", "json"))
    out, err = capsys.readouterr()
    payload = json.loads(out)
    assert code == 1
    assert payload["exit_code"] == 1
    assert payload["ok"] is False
    assert [g["verdict"] for g in payload["guardrails"]] == ["breach", "breach"]
    assert payload["guardrails"][0]["phase"] == "combined"
    assert set(payload["guardrails"][0]) >= {
        "metric", "arm", "phase", "verdict", "margin", "margin_text", "harm", "bound", "p_ok",
        "p_breach",
    }  # fmt: skip
    assert "promptstate: alert: guardrail breach: helpfulness (treatment, phase combined)" in err
    assert payload["recommendation"]["action"] == "rollback"

    out_md = data["dir"] / "out.md"
    assert main(_argv(data, metrics, "--format", "markdown", "--out", str(out_md))) == 1
    text = out_md.read_text()
    assert text.startswith("- **guardrail breach**: guardrail breach: helpfulness")
    assert main(_argv(data, metrics)) == 1
    out, _ = capsys.readouterr()
    assert out.startswith("guardrails (non-inferiority margins)")
    assert "recommendation: rollback (restore r1)" in out


def test_analyze_ok_guardrail_exits_0(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # the total per unit: a generous margin, and no direction-bearing regression elsewhere
    metrics = _metrics_file(
        data["dir"],
        "  - {type: mean, column: helpfulness, name: h, guardrail: {margin: 100}, "
        "direction: lower}\n",
        "ok.yaml",
    )
    code = main(_argv(data, metrics, "--format", "json"))
    payload = json.loads(capsys.readouterr().out)
    assert {g["verdict"] for g in payload["guardrails"]} == {"ok"}
    assert code == payload["exit_code"] == 0


def test_analyze_without_guardrails_only_gains_the_recommendation(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = _metrics_file(
        data["dir"], "  - {type: ratio, numerator: helpfulness}\n", "plain.yaml"
    )
    code = main(_argv(data, metrics, "--format", "json"))
    payload = json.loads(capsys.readouterr().out)
    res = analyze(
        split(data["events"], load_ledger(data["ledger"])),
        metrics=load_metrics(metrics),
        explain=False,
        completeness=False,
    )
    assert set(payload) - set(res.to_dict()) == {"recommendation"}
    assert "guardrails" not in payload
    assert code == 0


def test_report_leads_with_the_breach(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = _metrics_file(
        data["dir"],
        "  - {type: ratio, numerator: helpfulness, direction: higher, guardrail: {margin: 0.05}}\n",
        "report.yaml",
    )
    out = tmp_path / "rep"
    argv = ["report", str(data["events"]), "--ledger", str(data["ledger"]), "--metrics",
            str(metrics), "--out", str(out), "--format", "json"]  # fmt: skip
    assert main(argv) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["headline"].startswith("Guardrail breach: helpfulness of treatment")
    assert summary["attention"][0]["kind"] == "guardrail_breach"
    md = (out / "report.md").read_text()
    assert md.split("\n")[2].startswith("**Guardrail breach: helpfulness")
    assert "### Guardrails" in md
    assert "**Recommendation: `rollback`**" in md
    html = (out / "report.html").read_text()
    assert html.index("Guardrail breach") < html.index("Needs attention")
    report = json.loads((out / "report.json").read_text())
    assert report["guardrails"][0]["verdict"] == "breach"
    assert report["recommendation"]["restore"] == "r1"
