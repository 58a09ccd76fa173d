"""``promptstate report --mde`` and ``report --sequential --planned-units N`` (issue 22, items 2
and 4): the report's recommendation reads the planned power, and its regressions, guardrails and
SRM are the always-valid ones, through ``analysis.cli.main`` on the embedded sample.

The expected numbers are not copied from the code under test: the planned MDE that separates a
fixed-horizon from a sequential analysis is derived from the report's own ``mde``/``se`` columns
with :func:`analysis.stats.sequential.sequential_mde`, and the always-valid regressions are
recomputed from the JSON effects (harmful, ``pvalue_sequential_adjusted < alpha``, 100 units
per arm).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from analysis.cli import main
from analysis.errors import PromptstateError
from analysis.reporting.batch import REPORT_FILES, report
from analysis.stats.sequential import sequential_mde

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"
PLANNED = "6000"
#: A fixed run time (the late-data note would otherwise depend on the clock).
NOW = "2026-11-30T00:00:00Z"

Run = tuple[int, str, dict[str, Any], Path]


def _main(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured (usable in module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's ledger without the consumer whose contract is at risk, an empty baseline
    store and two one-metric files: nothing but the metric can need attention."""
    d = tmp_path_factory.mktemp("decisions")
    led = yaml.safe_load((SAMPLES / "ledger.yaml").read_text())
    led["consumers"].pop("ticket-router")
    (d / "ledger.yaml").write_text(yaml.safe_dump(led))
    (d / "store").mkdir()
    (d / "cost.yaml").write_text(
        "metrics:\n  - {type: mean, column: cost_usd, direction: lower, cuped: true}\n"
    )
    (d / "thumbs.yaml").write_text(
        "metrics:\n  - {type: proportion, column: thumbs_up, direction: higher}\n"
    )
    return d


@pytest.fixture(scope="module")
def run(work: Path) -> Callable[..., Run]:
    """Report on the sample's export with ``metrics`` (a file of ``work``) into a fresh
    directory: exit code, stderr, report.json and the directory (each run once per module)."""
    done: dict[tuple[str, ...], Run] = {}

    def go(metrics: str, *extra: str) -> Run:
        key = (metrics, *extra)
        if key not in done:
            out = work / f"out-{len(done)}"
            argv = [
                "report", str(SAMPLES / "events.parquet"), "--ledger", str(work / "ledger.yaml"),
                "--metrics", str(work / metrics), "--store", str(work / "store"),
                "--out", str(out), "--now", NOW, *extra,
            ]  # fmt: skip
            code, _, err = _main(argv)
            data = json.loads((out / "report.json").read_text()) if code != 2 else {}
            done[key] = (code, err, data, out)
        return done[key]

    return go


def _clean_combined(data: dict[str, Any], metric: str) -> dict[str, Any]:
    rows = [
        e
        for e in data["effects"]
        if (e["analysis"], e["phase"], e["metric"]) == ("clean", "combined", metric)
    ]
    assert len(rows) == 1
    return rows[0]


def _planned_between(data: dict[str, Any]) -> float:
    """A planned MDE of cost_usd that the fixed-horizon test reaches and the always-valid one
    (about 1.4x the fixed MDE at the same SE) does not."""
    row = _clean_combined(data, "cost_usd")
    fixed, always_valid = row["mde"], sequential_mde(row["se"])
    planned = math.sqrt(fixed * always_valid)
    assert fixed < planned < always_valid
    return planned


def _validate(data: dict[str, Any], name: str) -> None:
    """``data`` validates against the committed schema ``name``."""
    data = json.loads(json.dumps(data))
    schema = json.loads((ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text())
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(data)]
    assert not errors, errors[:5]


# -- --mde ---------------------------------------------------------------------------------


def test_without_mde_the_planned_power_is_unknown(run: Callable[..., Run]) -> None:
    code, _, data, out = run("cost.yaml")
    assert code == 0
    rec = data["recommendation"]
    assert rec["action"] == "continue"
    assert rec["missing"] == [
        "cost_usd on treatment: planned power unknown (no plan or --mde given)"
    ]
    assert data["inputs"]["mde"] is None
    md = (out / "report.md").read_text()
    assert "planned power unknown" in md


def test_mde_reached_turns_continue_into_ramp(run: Callable[..., Run]) -> None:
    """The same report with a planned MDE the test can detect: every guardrail ok (none),
    power reached at a 25% treatment share → ramp, in report.json and report.md."""
    planned = _planned_between(run("cost.yaml")[2])
    code, err, data, out = run("cost.yaml", "--mde", repr(planned))
    assert code == 0, err
    rec = data["recommendation"]
    assert rec["action"] == "ramp"
    assert rec["missing"] == []
    assert any("reached its planned power" in r for r in rec["reasons"])
    assert data["inputs"]["mde"] == pytest.approx(planned)
    md = (out / "report.md").read_text()
    assert "planned power unknown" not in md
    assert "ramp" in md


def test_mde_too_small_is_power_not_reached(run: Callable[..., Run]) -> None:
    fixed = _clean_combined(run("cost.yaml")[2], "cost_usd")["mde"]
    code, _, data, _ = run("cost.yaml", "--mde", repr(fixed / 3))
    assert code == 0
    rec = data["recommendation"]
    assert rec["action"] == "continue"
    assert len(rec["missing"]) == 1
    assert rec["missing"][0].startswith("cost_usd on treatment: power not reached")


def test_mde_under_sequential_needs_the_always_valid_power(run: Callable[..., Run]) -> None:
    """``--mde`` and ``--sequential`` reach ``decide`` together: the MDE a fixed-horizon report
    reaches is not reached by the always-valid test at the same size."""
    planned = _planned_between(run("cost.yaml")[2])
    code, err, data, _ = run(
        "cost.yaml", "--mde", repr(planned), "--sequential", "--planned-units", PLANNED
    )
    assert code == 0, err
    rec = data["recommendation"]
    assert rec["action"] == "continue"
    (missing,) = rec["missing"]
    assert missing.startswith("cost_usd on treatment: power not reached")
    row = _clean_combined(data, "cost_usd")
    assert f"{sequential_mde(row['se']):.4g}" in missing


def test_bad_mde_is_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    for bad in ("five", "-1", "0%"):
        code = main(["report", "--mde", bad, "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2, bad
        assert "--mde" in err
        assert not out.exists()


# -- --sequential ----------------------------------------------------------------------------


def test_sequential_without_planned_units_is_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["report", "--sequential", "--out", str(out), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2
    assert "--planned-units" in captured.err
    assert captured.err.count("\n") == 1
    assert captured.out == ""
    assert not out.exists()
    for bad in ("0", "-5", "nan"):
        code = main(["report", "--sequential", "--planned-units", bad, "--out", str(out)])
        assert code == 2
        assert "--planned-units" in capsys.readouterr().err
        assert not out.exists()


def test_api_sequential_without_planned_units_fails_before_reading(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-export.parquet"  # never opened: the options fail first
    with pytest.raises(PromptstateError, match="planned_units"):
        report(missing, tmp_path / "no-ledger.yaml", "exp-17", sequential=True)
    with pytest.raises(PromptstateError, match="--mde"):
        report(missing, tmp_path / "no-ledger.yaml", "exp-17", mde="five")


def test_exit_code_follows_the_always_valid_decisions(run: Callable[..., Run]) -> None:
    """thumbs_up regresses at the fixed horizon (exit 1) but not under always-valid inference
    at this look (exit 0): the report judges with the sequential decision."""
    code, err, data, _ = run("thumbs.yaml")
    assert code == 1
    assert [a["kind"] for a in data["attention"]] == ["regression"]
    assert "[regression] clean regression of treatment on thumbs_up" in err
    code, err, data, _ = run("thumbs.yaml", "--sequential", "--planned-units", PLANNED)
    row = _clean_combined(data, "thumbs_up")
    assert row["pvalue_adjusted"] < 0.05 <= row["pvalue_sequential_adjusted"]
    assert row["cs_lower"] < 0 < row["cs_upper"]
    assert code == 0, err
    assert data["attention"] == []
    assert data["ok"] is True
    assert data["inputs"]["sequential"] is True
    assert data["inputs"]["planned_units"] == float(PLANNED)
    assert data["recommendation"]["action"] == "continue"


@pytest.fixture(scope="module")
def sequential_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """The sample with its own metrics, monitored: ``report --sequential --planned-units N``."""
    out = tmp_path_factory.mktemp("seq") / "report"
    argv = ["report", "--sequential", "--planned-units", PLANNED, "--out", str(out),
            "--now", NOW, "--format", "json"]  # fmt: skip
    code, _, err = _main(argv)
    return code, err, out


def test_sequential_report_json_carries_the_always_valid_columns(
    sequential_sample: tuple[int, str, Path],
) -> None:
    code, err, out = sequential_sample
    data = json.loads((out / "report.json").read_text())
    _validate(data, "report-json")
    clean = [e for e in data["effects"] if e["analysis"] == "clean"]
    quantile = {"latency_ms_p95"}
    for e in clean:
        assert {"cs_lower", "cs_upper", "pvalue_sequential", "pvalue_sequential_adjusted"} <= set(e)
        if e["metric"] in quantile:
            assert e["pvalue_sequential"] is None  # no sequential decision for quantiles
        elif e["n_control"] and e["n_arm"]:
            assert e["cs_lower"] <= e["effect"] <= e["cs_upper"]
            assert 0 <= e["pvalue_sequential"] <= e["pvalue_sequential_adjusted"] <= 1
            # the confidence sequence is wider than the fixed-horizon interval
            assert e["cs_lower"] < e["effect_ci_lower"]
            assert e["cs_upper"] > e["effect_ci_upper"]
    # the regressions are exactly the always-valid ones, recomputed from the rows
    directions = {"helpfulness": "higher", "thumbs_up": "higher", "cost_usd": "lower"}
    want = sorted(
        e["metric"]
        for e in clean
        if e["phase"] == "combined"
        and e["metric"] in directions
        and (e["effect"] > 0) != (directions[e["metric"]] == "higher")
        and min(e["n_control"], e["n_arm"]) >= 100
        and e["pvalue_sequential_adjusted"] < 0.05
    )
    got = sorted(
        a["message"].split(" on ", 1)[1].split(":", 1)[0]
        for a in data["attention"]
        if a["kind"] == "regression"
    )
    assert got == want == ["helpfulness"]  # thumbs_up and the p95 latency only at fixed horizon
    fixed_only = [
        e["metric"] for e in clean if e["phase"] == "combined" and e["pvalue_adjusted"] < 0.05
    ]
    assert {"thumbs_up", "latency_ms_p95"} <= set(fixed_only)
    assert code == 1  # the regression, the stale baseline and the contract risk remain
    assert "always-valid" in err
    assert data["inputs"]["sequential"] is True
    assert "always-valid adjusted p" in " ".join(data["recommendation"]["reasons"])


def test_sequential_report_md_and_html_show_the_sequences(
    sequential_sample: tuple[int, str, Path],
) -> None:
    from analysis._render import fmt

    _, _, out = sequential_sample
    data = json.loads((out / "report.json").read_text())
    row = _clean_combined(data, "helpfulness")
    md = (out / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| analysis | metric |"))
    assert header.rstrip(" |").endswith("cs_lower | cs_upper | pvalue_sequential_adjusted")
    assert "Monitoring that allows peeking" in md
    assert "always-valid one of the sequential multinomial test" in md
    html = (out / "report.html").read_text()
    assert "<th>always-valid CS</th><th>always-valid p adjusted</th>" in html
    # the first look of the helpfulness regression: JSON, Markdown and HTML
    (first,) = [r for r in data["first_looks"] if r["decision"] == "regression"]
    assert first["metric"] == "helpfulness"
    assert first["now"] is True
    assert 1 <= first["look"] <= first["looks"]
    assert "### First looks" in md
    assert "<h2>First looks</h2>" in html.replace("h3>", "h2>")
    assert f"[{fmt(row['cs_lower'])},\u00a0{fmt(row['cs_upper'])}]" in html
    for name in REPORT_FILES:
        assert (out / name).is_file()


def test_fixed_report_tables_have_no_sequential_columns(run: Callable[..., Run]) -> None:
    out = run("cost.yaml")[3]
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "cs_lower" not in md
    assert "Monitoring that allows peeking" not in md
    assert "always-valid" not in html


def test_every_experiment_of_a_multi_report_gets_the_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --experiment on a ledger of several: --mde and --sequential reach every
    experiment's section (its analysis and its recommendation)."""
    from test_completeness import T0
    from test_multi_experiment import _ledger_text, two_experiments

    export, ledger = tmp_path / "events.parquet", tmp_path / "ledger.yaml"
    two_experiments().write_parquet(export)  # the ledger's two active experiments
    ledger.write_text(_ledger_text())
    metrics = tmp_path / "metrics.yaml"
    metrics.write_text("metrics:\n  - {type: ratio, numerator: score, direction: higher}\n")
    out = tmp_path / "rep"
    argv = [str(export), "--ledger", str(ledger), "--metrics", str(metrics),
            "--since", (T0 - timedelta(days=1)).isoformat(), "--out", str(out), "--format", "json",
            "--sequential", "--planned-units", "20000", "--mde", "50%"]  # fmt: skip
    code = main(["report", *argv])
    summary = json.loads(capsys.readouterr().out)
    assert code == summary["exit_code"]
    data = json.loads((out / "report.json").read_text())
    _validate(data, "report-json-multi")
    sections = [s for s in data["experiments"] if "effects" in s]
    assert sorted(s["experiment"] for s in sections) == ["exp-logs", "exp-route"]
    for s in sections:
        assert s["inputs"]["sequential"] is True
        assert s["inputs"]["planned_units"] == 20000
        assert s["inputs"]["mde"] == "50%"
        row = _clean_combined(s, "score")
        assert row["cs_lower"] <= row["effect"] <= row["cs_upper"]
        assert 0 <= row["pvalue_sequential"] <= 1
        missing = " ".join(s["recommendation"]["missing"])
        assert "planned power unknown" not in missing
