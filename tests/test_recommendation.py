"""The recommendation (issue 22 item 4): rollback with the real commands, ramp, promote, or
continue with what is missing."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from _generators import LEDGER, RampSpec, generate

from analysis import load_ledger
from analysis.cli import main
from analysis.decisions import decide
from analysis.errors import PromptstateError
from analysis.events.labelling import split
from analysis.metrics import analyze
from analysis.metrics.definitions import Mean, Ratio

#: The generator's ledger while the canary still runs (no rollback yet).
RUNNING = "\n".join(line for line in LEDGER.splitlines() if "action: rollback" not in line)
#: The same canary before its ramp: 20% treatment.
FIRST_STEP = "\n".join(line for line in RUNNING.splitlines() if "action: ramp" not in line)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("recommend")
    generate(RampSpec(n_units=1500, seed=5)).write_parquet(d / "events.parquet")
    for name, text in (("running", RUNNING), ("ended", LEDGER), ("first", FIRST_STEP)):
        (d / f"{name}.yaml").write_text(text)
    (d / "metrics.yaml").write_text(
        "metrics:\n  - {type: ratio, numerator: helpfulness, direction: higher, primary: true}\n"
    )
    return {"dir": d, "events": d / "events.parquet", "metrics": d / "metrics.yaml"}


@pytest.fixture(scope="module")
def better(data: dict[str, Path]) -> Any:
    """An analysis where the primary metric does not regress and the guardrail is ok (lower is
    better, so the true −0.30 effect is an improvement)."""
    metrics = [
        Ratio("helpfulness", direction="lower", primary=True, name="h"),
        Mean("helpfulness", direction="lower", guardrail=100, name="total"),
    ]
    ledger = load_ledger(data["dir"] / "running.yaml")
    res = analyze(split(data["events"], ledger), metrics=metrics, explain=False, recovery=False)
    return res, metrics, ledger


def test_rollback_names_the_restore_and_the_real_commands(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = data["dir"] / "running.yaml"
    argv = ["analyze", str(data["events"]), "--ledger", str(ledger), "--metrics",
            str(data["metrics"]), "--no-explain", "--no-completeness", "--format", "json"]  # fmt: skip
    assert main(argv) == 1
    rec = json.loads(capsys.readouterr().out)["recommendation"]
    assert rec["action"] == "rollback"
    assert rec["restore"] == "r1"
    assert set(rec) == {"action", "reasons", "missing", "commands", "restore"}
    plan, apply = rec["commands"]
    assert plan.startswith("promptstate rollback plan ")
    assert apply.startswith("promptstate rollback apply ")
    for cmd in rec["commands"]:
        assert "--to r1" in cmd
        assert "--revision r2" in cmd
        assert "--prompt assistant" in cmd
        assert "ledger record" not in cmd
    assert any("regresses" in r for r in rec["reasons"])
    # the advised plan is a valid command line of the real CLI (plan is read-only)
    code = main([*shlex.split(plan)[1:], "--no-recovery", "--format", "json"])
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    assert json.loads(out.out)["prompt"] == "assistant"


def test_rollback_already_recorded_advises_nothing_to_run(data: dict[str, Path]) -> None:
    ledger = load_ledger(data["dir"] / "ended.yaml")
    metrics = [Ratio("helpfulness", direction="higher", primary=True)]
    res = analyze(split(data["events"], ledger), metrics=metrics, explain=False, recovery=False)
    rec = decide(res, metrics, ledger).recommendation
    assert rec.action == "rollback"
    assert rec.commands == ()
    assert "already records the end of exp-ramp" in rec.reasons[-1]


def test_continue_when_planned_power_is_unknown(better: Any) -> None:
    res, metrics, ledger = better
    dec = decide(res, metrics, ledger)
    assert [g.verdict for g in dec.guardrails.rows] == ["ok", "ok"]
    rec = dec.recommendation
    assert rec.action == "continue"
    assert rec.missing == ("h on treatment: planned power unknown (no plan or --mde given)",)
    assert rec.commands == ()


def test_continue_when_power_is_not_reached_then_promote_or_ramp(
    better: Any, data: dict[str, Path]
) -> None:
    res, metrics, ledger = better
    row = res.effect("h")
    small = decide(res, metrics, ledger, mde=row.mde / 2).recommendation
    assert small.action == "continue"
    assert "power not reached" in small.missing[0]
    relative = decide(res, metrics, ledger, mde="0.1%").recommendation  # of ~3.6: too small
    assert relative.action == "continue"
    # reached, at 50% treatment: promote
    assert decide(res, metrics, ledger, mde=row.mde * 2).recommendation.action == "promote"
    # reached at 20% treatment (the ledger before its ramp): ramp
    first = load_ledger(data["dir"] / "first.yaml")
    rec = decide(res, metrics, first, mde=row.mde * 2).recommendation
    assert rec.action == "ramp"
    assert "20%" in rec.reasons[-1]
    # a plan's power input wins over the MDE
    rec = decide(res, metrics, ledger, mde=row.mde * 2, power={"h": False}).recommendation
    assert rec.action == "continue"
    assert rec.missing == ("h on treatment: planned power not reached",)


def test_inconclusive_guardrail_is_missing(better: Any) -> None:
    res, metrics, ledger = better
    harm = -res.effect("total").effect  # were higher better: a harm exactly at the margin
    tight = [metrics[0], Mean("helpfulness", direction="higher", guardrail=harm, name="total")]
    rec = decide(res, tight, ledger, power={"h": True}).recommendation
    assert rec.action == "continue"
    assert all(m.startswith("guardrail total on treatment") for m in rec.missing)


def test_bad_mde_is_exit_2_and_nothing_written(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    argv = ["analyze", str(data["events"]), "--ledger", str(data["dir"] / "running.yaml"),
            "--metrics", str(data["metrics"]), "--mde", "five", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--mde" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_mde_in_the_api(better: Any) -> None:
    with pytest.raises(PromptstateError, match="--mde"):
        decide(*better, mde=-1)


def test_markdown_escapes_paths_and_reasons() -> None:
    from analysis.decisions import Recommendation

    rec = Recommendation(
        "rollback",
        reasons=("metric <b>x</b> regresses",),
        commands=("promptstate rollback plan 'a```b' --ledger L",),
        restore="r1",
    )
    md = rec.to_markdown()
    assert "<b>" not in md
    assert "\n````bash\n" in md
    assert md.rstrip().endswith("````")


def test_cli_mde_accepts_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    """``--mde 0.05`` is an absolute effect (it was refused as 'not a percent')."""
    from analysis.cli import main

    code = main(["analyze", "--mde", "0.05", "--no-explain", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1, err  # the sample's regressions
    assert "not a percent" not in err
    assert json.loads(out)["recommendation"]["action"] == "rollback"
