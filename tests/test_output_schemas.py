"""Every JSON output of ``promptstate`` validates against its published JSON Schema.

The schemas in ``docs/schemas/`` are generated from the models of ``analysis.cli._schemas``
(``promptstate schema --out docs/schemas``); these tests check that the committed files are
exactly what the models generate, that each is a valid draft 2020-12 schema, and that each
command's ``--format json`` output on the sample — in a temporary directory, on copies of the
ledger and the baseline store — starts with ``schema_version`` and validates against its
committed file (with ``jsonschema``, independent of pydantic), in the ok case and where a check
finds a problem (exit 1). A mutated output is rejected, so the validation can fail.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from analysis.cli import main
from analysis.errors import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "docs" / "schemas"
SAMPLES = ROOT / "data_samples"
#: Committed files of docs/schemas/ that are not outputs of a command.
NOT_OUTPUTS = {"ledger.schema.json"}
#: Time of the sample's rollback (data_samples/ledger.yaml).
ROLLBACK_AT = "2026-11-03T08:15:00Z"


def _outputs() -> dict[str, Any]:
    from analysis.cli._schemas import OUTPUTS

    return OUTPUTS


def validator(name: str) -> Draft202012Validator:
    """The validator of the committed schema of output ``name``."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def check(name: str, payload: Any) -> None:
    """``payload`` is an object starting with ``schema_version`` that validates as ``name``."""
    assert isinstance(payload, dict)
    assert next(iter(payload)) == "schema_version"
    assert payload["schema_version"] == SCHEMA_VERSION
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(name).iter_errors(payload)
    ]
    assert not errors, f"{name}: " + "; ".join(errors[:10])


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any]:
    """Run the CLI in-process; the exit code and the JSON it printed."""
    code = main(argv)
    captured = capsys.readouterr()
    assert captured.out.strip(), f"{argv}: nothing on stdout; stderr: {captured.err}"
    return code, json.loads(captured.out)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A temporary working directory with copies of the sample's ledgers and store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    store = tmp_path / "store"
    shutil.copytree(ROOT / "baselines", store, ignore=shutil.ignore_patterns(".lock", "*.tmp*"))
    ledger = tmp_path / "ledger.yaml"
    shutil.copy(SAMPLES / "ledger.yaml", ledger)
    before = tmp_path / "before-rollback.yaml"
    shutil.copy(SAMPLES / "rollback" / "ledger.yaml", before)
    return {"dir": tmp_path, "store": store, "ledger": ledger, "before": before}


# --- the committed files ------------------------------------------------------------------------


def test_committed_schemas_are_what_the_models_generate(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    assert main(["schema", "--out", str(out)]) == 0
    generated = {p.name: p.read_bytes() for p in out.glob("*.schema.json")}
    assert set(generated) == {f"{name}.schema.json" for name in _outputs()}
    committed = {p.name for p in SCHEMAS.glob("*.schema.json")} - NOT_OUTPUTS
    assert committed == set(generated), "run `promptstate schema --out docs/schemas`"
    for file, data in generated.items():
        assert (SCHEMAS / file).read_bytes() == data, (
            f"docs/schemas/{file} is stale: run `promptstate schema --out docs/schemas`"
        )


@pytest.mark.parametrize("name", sorted(_outputs()))
def test_each_schema_is_a_draft_2020_12_schema_with_id_title_and_description(name: str) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"docs/schemas/{name}.schema.json"
    assert schema["title"]
    assert schema["description"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert next(iter(schema["properties"])) == "schema_version"
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert "schema_version" in schema["required"]
    for prop in schema["properties"].values():
        assert prop.get("description"), f"{name}: a top-level key has no description"


def test_schema_prints_one_schema_and_lists_the_outputs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "rollback-plan"]) == 0
    printed = capsys.readouterr().out
    assert printed == (SCHEMAS / "rollback-plan.schema.json").read_text(encoding="utf-8")
    assert main(["schema"]) == 0
    listed = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == sorted(_outputs())


def test_schema_of_an_unknown_output_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["schema", "no-such-output", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "no-such-output" in err
    assert "rollback-plan" in err
    assert not (tmp_path / "s").exists()


# --- the validation can fail --------------------------------------------------------------------


def _ledger_show(capsys: pytest.CaptureFixture[str], work: dict[str, Path]) -> Any:
    code, payload = run(capsys, ["ledger", "show", str(work["ledger"]), "--store",
                                 str(work["store"]), "--format", "json"])  # fmt: skip
    assert code == 0
    return payload


def _mutations(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    extra = copy.deepcopy(payload)
    extra["surprise"] = 1
    out["an undeclared top-level key"] = extra
    missing = copy.deepcopy(payload)
    del missing["counts"]
    out["a missing key"] = missing
    version = copy.deepcopy(payload)
    version["schema_version"] = SCHEMA_VERSION + 1
    out["another schema_version"] = version
    nested = copy.deepcopy(payload)
    nested["revisions"][0]["rollout_state"] = "reverted"
    out["a value outside the documented ones"] = nested
    typed = copy.deepcopy(payload)
    typed["experiments"][0]["phases"][0]["phase"] = "0"
    out["a number as text"] = typed
    row = copy.deepcopy(payload)
    row["prompts"][0]["owner"] = "me"
    out["an undeclared key in a row"] = row
    return out


def test_a_mutated_output_is_rejected(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    payload = _ledger_show(capsys, work)
    check("ledger-show", payload)
    v = validator("ledger-show")
    for what, mutated in _mutations(payload).items():
        assert not v.is_valid(mutated), f"{what} was accepted"


# --- ledger and state ---------------------------------------------------------------------------


def test_ledger_validate(capsys: pytest.CaptureFixture[str], work: dict[str, Path]) -> None:
    code, payload = run(capsys, ["ledger", "validate", str(work["ledger"]), "--format", "json"])
    assert code == 0
    check("ledger-validate", payload)
    assert payload["counts"]["transitions"] == 4
    bad = work["dir"] / "bad.yaml"
    bad.write_text(work["ledger"].read_text().replace("version: 1", "version: 2", 1))
    assert main(["ledger", "validate", str(bad), "--format", "json"]) == 2
    assert capsys.readouterr().out == ""  # an invalid ledger prints no JSON, one line on stderr


def test_ledger_record_and_its_dry_run(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    argv = ["ledger", "record", "deploy", "--ledger", str(work["ledger"]), "--prompt",
            "support-assistant", "--revision", "r42", "--at", "2026-11-05T00:00:00Z",
            "--reason", "schema test", "--format", "json"]  # fmt: skip
    before = work["ledger"].read_bytes()
    code, dry = run(capsys, [*argv, "--dry-run"])
    assert code == 0
    assert work["ledger"].read_bytes() == before
    check("ledger-record", dry)
    assert dry["dry_run"] is True
    assert dry["diff"].startswith("---")
    code, done = run(capsys, argv)
    assert code == 0
    assert work["ledger"].read_bytes() != before
    check("ledger-record", done)
    assert done["written"] is True
    assert "diff" not in done
    assert done["transition"] == {"at": "2026-11-05T00:00:00Z", "action": "deploy",
                                  "prompt": "support-assistant", "revision": "r42",
                                  "reason": "schema test"}  # fmt: skip


def test_ledger_record_declaring_a_new_experiment(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    argv = ["ledger", "record", "start", "--ledger", str(work["ledger"]), "--experiment",
            "exp-18", "--arms", "control=r41", "treatment=r42", "--allocation", "control=0.5",
            "treatment=0.5", "--at", "2026-11-06T00:00:00Z", "--format", "json"]  # fmt: skip
    code, payload = run(capsys, argv)
    assert code == 0
    check("ledger-record", payload)
    assert payload["declared"] == ["experiments.exp-18"]
    assert payload["transition"]["allocation"] == {"control": 0.5, "treatment": 0.5}


def test_ledger_show_with_and_without_a_store(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    payload = _ledger_show(capsys, work)
    check("ledger-show", payload)
    states = {r["revision"]: r["rollout_state"] for r in payload["revisions"]}
    assert states == {"r41": "live", "r42": "rolled_back"}
    # during the canary, at an instant, with no store found (baseline_id null)
    argv = ["ledger", "show", str(work["before"]), "--at", "2026-11-02T22:00:00Z",
            "--format", "json"]  # fmt: skip
    code, payload = run(capsys, argv)
    assert code == 0
    check("ledger-show", payload)
    states = {r["revision"]: r["rollout_state"] for r in payload["revisions"]}
    assert states == {"r41": "live", "r42": "canary 25%"}
    assert payload["at"] == "2026-11-02T22:00:00Z"


@pytest.mark.parametrize("revision", ["r41", "r42"])
def test_state(capsys: pytest.CaptureFixture[str], work: dict[str, Path], revision: str) -> None:
    argv = ["state", revision, "--ledger", str(work["ledger"]), "--store", str(work["store"]),
            "--format", "json"]  # fmt: skip
    code, payload = run(capsys, argv)
    assert code == 0
    check("state", payload)
    assert payload["revision"] == revision


# --- rollback -----------------------------------------------------------------------------------


def test_rollback_plan_needing_confirmation(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    code, payload = run(capsys, ["rollback", "plan", "--store", str(work["store"]),
                                 "--format", "json"])  # fmt: skip
    assert code == 1  # ticket-router cannot read r41's contract
    check("rollback-plan", payload)
    assert payload["legs"]["contracts"]["status"] == "needs-confirmation"


def test_rollback_apply_dry_run_refused(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    argv = ["rollback", "apply", "--dry-run", "--store", str(work["store"]), "--no-recovery",
            "--format", "json"]  # fmt: skip
    code, payload = run(capsys, argv)
    assert code == 1
    check("rollback-apply", payload)
    assert payload["refused"] == ["ticket-router"]
    assert payload["dry_run"] is True


def _actions_file(work: dict[str, Path]) -> Path:
    script = work["dir"] / "notify.py"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.stdin.read()\n")
    script.chmod(0o755)
    actions = work["dir"] / "actions.yaml"
    actions.write_text("any:\n  - {kind: command, run: ['./notify.py']}\n")
    return actions


def test_rollback_apply_with_an_action_then_again(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    out = work["dir"] / "out"
    argv = ["rollback", "apply", str(SAMPLES / "events.parquet"), "--ledger", str(work["before"]),
            "--store", str(work["store"]), "--at", ROLLBACK_AT, "--confirm", "ticket-router",
            "--actions", str(_actions_file(work)), "--no-recovery", "--out", str(out),
            "--format", "json"]  # fmt: skip
    code, first = run(capsys, argv)
    assert code == 0
    check("rollback-apply", first)
    assert first["changed"] is True
    assert [a["status"] for a in first["actions"]] == ["done"]
    assert [a["name"] for a in first["plan"]["actions"]] == ["any[0]"]
    check("rollback-plan", json.loads((out / "plan.json").read_text(encoding="utf-8")))
    code, again = run(capsys, argv)
    assert code == 0
    check("rollback-apply", again)
    assert again["changed"] is False
    assert again["ledger_diff"] == ""
    assert {s["status"] for s in again["steps"]} <= {"unchanged", "skipped"}


# --- gate ---------------------------------------------------------------------------------------


def _gate(work: dict[str, Path], candidate: Path, revision: str) -> list[str]:
    return ["gate", "support-qa", "--candidate", str(candidate), "--revision", revision,
            "--store", str(work["store"]), "--ledger", str(work["ledger"]),
            "--format", "json"]  # fmt: skip


def _worse(work: dict[str, Path]) -> Path:
    """r43's eval results with every rubric score 1 point lower: a regression."""
    lines = (SAMPLES / "evals" / "support-qa" / "r43.csv").read_text().splitlines()
    rows = [lines[0]]
    for line in lines[1:]:
        *head, rubric = line.split(",")
        rows.append(",".join([*head, f"{float(rubric) - 1:.2f}"]))
    path = work["dir"] / "r44.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_gate_refused_then_synced_then_pass_and_regression(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    r43 = SAMPLES / "evals" / "support-qa" / "r43.csv"
    assert main(_gate(work, r43, "r43")) == 3  # the reference is anchored to rolled-back r42
    assert capsys.readouterr().out == ""  # a refusal prints no JSON
    argv = ["baseline", "sync", "--store", str(work["store"]), "--ledger", str(work["ledger"]),
            "--format", "json"]  # fmt: skip
    code, payload = run(capsys, argv)
    assert code == 0
    check("baseline-sync", payload)
    assert [i["status"] for i in payload["items"]] == ["applied"]
    code, payload = run(capsys, _gate(work, r43, "r43"))
    assert code == 0
    check("gate", payload)
    assert payload["verdict"] == "pass"
    out = work["dir"] / "gate.json"  # --out writes the same JSON to a file
    assert main([*_gate(work, _worse(work), "r44"), "--out", str(out)]) == 1
    payload = json.loads(out.read_text(encoding="utf-8"))
    check("gate", payload)
    assert payload["verdict"] == "regression"


# --- baseline -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("baseline-list", ["list"]),
        ("baseline-show", ["show", "support-qa"]),
        ("baseline-show-version", ["show", "support-qa", "--version", "v0001"]),
        ("baseline-history", ["history", "support-qa"]),
        ("baseline-verify", ["verify"]),
    ],
)
def test_baseline_reading_commands(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path], name: str, argv: list[str]
) -> None:
    code, payload = run(capsys, ["baseline", *argv, "--store", str(work["store"]),
                                 "--format", "json"])  # fmt: skip
    assert code == 0
    check(name, payload)


def test_baseline_verify_finding_a_tampered_version(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    meta = work["store"] / "support-qa" / "versions" / "v0001" / "meta.json"
    data = json.loads(meta.read_text(encoding="utf-8"))
    data["n_examples"] += 1
    meta.write_text(json.dumps(data, indent=2), encoding="utf-8")
    code, payload = run(capsys, ["baseline", "verify", "--store", str(work["store"]),
                                 "--format", "json"])  # fmt: skip
    assert code == 3
    check("baseline-verify", payload)
    assert payload["exit_code"] == 3
    assert {f["kind"] for f in payload["findings"]} >= {"invalid"}


# --- split and report ---------------------------------------------------------------------------


def test_split(capsys: pytest.CaptureFixture[str], work: dict[str, Path]) -> None:
    code, payload = run(capsys, ["split", "--format", "json"])
    assert code == 0
    check("split", payload)
    summary = payload["summary"]
    assert sum(t["n_events"] for t in summary["totals"]) == summary["n_events"]


def test_plan(capsys: pytest.CaptureFixture[str], work: dict[str, Path]) -> None:
    code, payload = run(capsys, ["plan", "--mde", "5%", "--schedule", "0.2:1d,0.5", "--format",
                                 "json"])  # fmt: skip
    assert code == 0
    check("plan", payload)
    assert payload["steps"]


def test_report_needing_attention(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    out = work["dir"] / "report"
    argv = ["report", "--store", str(work["store"]), "--out", str(out), "--format", "json"]
    code, payload = run(capsys, argv)
    assert code == 1  # a clean regression, a stale baseline, a contract risk
    check("report", payload)
    assert payload["files"] == [str(out / n) for n in ("report.html", "report.md", "report.json")]
    check("report-json", json.loads((out / "report.json").read_text(encoding="utf-8")))


def _second_experiment(capsys: pytest.CaptureFixture[str], work: dict[str, Path]) -> list[str]:
    """Declare and start exp-18 (no event is tagged with it) in the ledger copy; the arguments
    of a run on the sample's export with one cheap metric and no --experiment."""
    argv = ["ledger", "record", "start", "--ledger", str(work["ledger"]), "--experiment",
            "exp-18", "--arms", "control=r41", "treatment=r42", "--allocation", "control=0.5",
            "treatment=0.5", "--at", "2026-11-03T12:00:00Z"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    metrics = work["dir"] / "metrics.yaml"
    metrics.write_text("metrics:\n  - {type: mean, column: cost_usd, direction: lower}\n")
    return [str(SAMPLES / "events.parquet"), "--ledger", str(work["ledger"]),
            "--metrics", str(metrics), "--format", "json"]  # fmt: skip


def test_report_of_several_experiments_one_failing(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    out = work["dir"] / "report"
    argv = ["report", *_second_experiment(capsys, work), "--store", str(work["store"]),
            "--out", str(out)]  # fmt: skip
    code, payload = run(capsys, argv)
    # exp-18 started long before the window's end and has no events: a completeness finding
    # (exit 1, a failed section); exp-17 is still reported
    assert code == 1
    check("report", payload)
    assert payload["experiments"] == ["exp-17", "exp-18"]
    assert "completeness" in {a["kind"] for a in payload["attention"]}
    multi = json.loads((out / "report.json").read_text(encoding="utf-8"))
    check("report-json-multi", multi)
    assert [e["experiment"] for e in multi["experiments"]] == ["exp-17", "exp-18"]
    assert "error" in multi["experiments"][1]


# --- analyze ------------------------------------------------------------------------------------


def test_analyze_finding_regressions(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    code, payload = run(capsys, ["analyze", "--format", "json"])
    assert code == 1
    check("analyze", payload)
    assert payload["regressions"]


def test_analyze_ok(capsys: pytest.CaptureFixture[str], work: dict[str, Path]) -> None:
    metrics = work["dir"] / "metrics.yaml"
    metrics.write_text("metrics:\n  - {type: mean, column: cost_usd, direction: lower}\n")
    argv = ["analyze", str(SAMPLES / "events.parquet"), "--ledger", str(work["ledger"]),
            "--metrics", str(metrics), "--format", "json"]  # fmt: skip
    code, payload = run(capsys, argv)
    assert code == 0
    check("analyze", payload)
    assert payload["ok"] is True


def test_analyze_of_several_experiments_one_failing(
    capsys: pytest.CaptureFixture[str], work: dict[str, Path]
) -> None:
    code, payload = run(capsys, ["analyze", *_second_experiment(capsys, work)])
    assert code == 1  # exp-18 has no events: a completeness finding, a failed section
    check("analyze-multi", payload)
    assert [o["experiment"] for o in payload["overview"]] == ["exp-17", "exp-18"]
    assert payload["experiments"][0]["state"] == "rolled back"
    assert "error" in payload["experiments"][1]


# --- coverage and agreement with the code -------------------------------------------------------

#: Output name → the tests above that validate it (every output must have one).
COVERED = {
    "analyze": test_analyze_finding_regressions,
    "analyze-multi": test_analyze_of_several_experiments_one_failing,
    "baseline-history": test_baseline_reading_commands,
    "baseline-list": test_baseline_reading_commands,
    "baseline-show": test_baseline_reading_commands,
    "baseline-show-version": test_baseline_reading_commands,
    "baseline-sync": test_gate_refused_then_synced_then_pass_and_regression,
    "baseline-verify": test_baseline_verify_finding_a_tampered_version,
    "gate": test_gate_refused_then_synced_then_pass_and_regression,
    "ledger-record": test_ledger_record_and_its_dry_run,
    "ledger-show": test_ledger_show_with_and_without_a_store,
    "ledger-validate": test_ledger_validate,
    "plan": test_plan,
    "rollback-apply": test_rollback_apply_with_an_action_then_again,
    "rollback-plan": test_rollback_plan_needing_confirmation,
    "report": test_report_needing_attention,
    "report-json": test_report_needing_attention,
    "report-json-multi": test_report_of_several_experiments_one_failing,
    "split": test_split,
    "state": test_state,
}


def test_every_output_is_validated_by_a_test() -> None:
    assert set(COVERED) == set(_outputs())


def test_the_documented_values_are_the_codes() -> None:
    """The models' enumerations equal the constants of the code that writes the outputs."""
    from analysis.cli import _schemas_baseline as bl
    from analysis.cli import _schemas_ledger as led
    from analysis.cli import _schemas_results as res
    from analysis.cli import _schemas_rollback as rb
    from analysis.evals import gating, models
    from analysis.events.labelling import LABELS
    from analysis.ledger.model import ACTIONS
    from analysis.rollback._journal import ResultStatus
    from analysis.rollback._kinds import ACTION_LEGS
    from analysis.rollback._legs import LEGS, Status
    from analysis.rollback.applying import StepStatus

    assert typing.get_args(led.Action) == ACTIONS
    assert typing.get_args(rb.LegStatus) == typing.get_args(Status)
    assert typing.get_args(rb.StepStatus) == typing.get_args(StepStatus)
    assert typing.get_args(rb.ActionStatus) == typing.get_args(ResultStatus)
    assert typing.get_args(rb.ActionLeg) == ACTION_LEGS
    assert tuple(rb.Legs.model_fields) == LEGS
    assert typing.get_args(res.Verdict) == typing.get_args(gating.Verdict)
    assert typing.get_args(res.GateOutput.model_fields["method"].annotation) == typing.get_args(
        gating.Method
    )
    assert set(res.GateMetricRow.model_fields) == set(gating.MetricResult._fields)
    assert set(res.GateCheck.model_fields) == set(gating.Check._fields)
    assert typing.get_args(bl.Policy) == typing.get_args(models.Policy)
    assert typing.get_args(bl.JournalAction) == models.ACTIONS
    assert typing.get_args(res.Label) == LABELS
    sync_status = typing.get_type_hints(models.SyncItem)["status"]
    assert typing.get_args(bl.SyncStatus) == typing.get_args(sync_status)
