"""Any unit column (issue 20, item 2): the ledger's experiment ``unit`` is honoured by every
command, with or without ``--experiment``, and by column maps (``user_id`` names the unit
column whatever it is called); a missing column is bad input (exit 2) naming the column, the
file and the ``--column`` fix — never a crash.

Run on a generated export (tests/_generators.py, not the sample) whose unit column is
``account``, and on one whose unit column is ``acct_id`` mapped with ``--column``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from analysis.cli import main
from analysis.ledger import parse_ledger

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _generators import LEDGER, RampSpec, generate

#: The generator's ledger with the unit ``account``, and a later deploy of r2 (so that a
#: prompt-level rollback of r2 can be planned after the experiment's recorded rollback).
ACCOUNT_LEDGER = LEDGER.replace("unit: user_id", "unit: account")
REDEPLOY = "  - {at: 2026-01-08T06:00:00Z, action: deploy, prompt: assistant, revision: r2}\n"
PROMPT_LEVEL_AT = "2026-01-08T12:00:00Z"
AT = datetime.fromisoformat(PROMPT_LEVEL_AT)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``account.parquet`` (unit column ``account``), ``acct_id.parquet`` (``acct_id``, to map),
    the ledger with the unit ``account`` and the same ledger with r2 deployed again."""
    root = tmp_path_factory.mktemp("unit-column")
    frame = generate(RampSpec(n_units=300, seed=3))
    frame.rename({"user_id": "account"}).write_parquet(root / "account.parquet")
    frame.rename({"user_id": "acct_id"}).write_parquet(root / "acct_id.parquet")
    (root / "ledger.yaml").write_text(ACCOUNT_LEDGER)
    (root / "redeployed.yaml").write_text(ACCOUNT_LEDGER.rstrip("\n") + "\n" + REDEPLOY)
    return {
        "account": root / "account.parquet",
        "acct_id": root / "acct_id.parquet",
        "ledger": root / "ledger.yaml",
        "redeployed": root / "redeployed.yaml",
        "root": root,
    }


#: (export, extra flags): the unit column as it is, named by the ledger; or mapped.
VARIANTS = {
    "own-name": ("account", []),
    "own-name-mapped": ("account", ["--column", "user_id=account"]),
    "mapped": ("acct_id", ["--column", "user_id=acct_id"]),
    "mapped-by-unit-name": ("acct_id", ["--column", "account=acct_id"]),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("experiment", [False, True])
def test_split_honours_the_ledger_unit(
    variant: str, experiment: bool, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    name, flags = VARIANTS[variant]
    argv = ["split", str(exports[name]), "--ledger", str(exports["ledger"]), *flags]
    argv += ["--experiment", "exp-ramp"] if experiment else []
    code, out, err = _run([*argv, "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["experiment"] == "exp-ramp"
    assert data["load"]["n_events"] == pl.read_parquet(exports[name]).height
    # the unit is there under the ledger's name: user_id is not an optional column it lacks
    assert "user_id" not in data["load"]["missing_optional"]
    assert "user_id" not in err


@pytest.mark.parametrize("variant", ["own-name", "mapped"])
def test_analyze_honours_the_ledger_unit(
    variant: str, exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    name, flags = VARIANTS[variant]
    argv = ["analyze", str(exports[name]), "--ledger", str(exports["ledger"]), *flags]
    code, out, err = _run([*argv, "--format", "json", "--no-explain"], capsys)
    assert code in (0, 1), err
    assert "required column" not in err
    # the unit column is the unit id, never a metric, whatever it is called in the export
    note = next(line for line in err.splitlines() if "inferred metrics" in line)
    assert "account (unit id)" in note
    assert "user_id" not in note
    assert json.loads(out)["experiment"] == "exp-ramp"


def test_report_honours_a_mapped_unit(
    exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "report"
    argv = ["report", str(exports["acct_id"]), "--ledger", str(exports["ledger"])]
    argv += ["--column", "user_id=acct_id", "--out", str(out_dir)]
    code, _, err = _run(argv, capsys)
    assert code in (0, 1), err
    assert (out_dir / "report.json").is_file()
    assert "required column" not in err


def test_rollback_plan_without_experiment_uses_the_unit(
    exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A prompt-level rollback (no experiment running) counts the cohort by the ledger's unit:
    the old code crashed here (exit 4, a polars ColumnNotFoundError on ``user_id``)."""
    for name, flags in (VARIANTS["own-name"], VARIANTS["mapped"]):
        argv = ["rollback", "plan", str(exports[name]), "--ledger", str(exports["redeployed"])]
        argv += [*flags, "--at", PROMPT_LEVEL_AT, "--no-recovery", "--format", "json"]
        code, out, err = _run(argv, capsys)
        assert code == 0, err
        plan = json.loads(out)
        assert plan["from"] == "r2"
        assert plan["to"] == "r1"
        cohort = plan["legs"]["cohort"]["findings"]
        assert cohort["unit"] == "account"
        assert cohort["units"] > 0


def test_rollback_apply_dry_run_uses_the_unit(
    exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = exports["redeployed"]
    before = ledger.read_bytes()
    listing = sorted(p.name for p in exports["root"].iterdir())
    argv = ["rollback", "apply", str(exports["account"]), "--ledger", str(ledger)]
    argv += ["--at", PROMPT_LEVEL_AT, "--no-recovery"]
    code, out, err = _run([*argv, "--dry-run", "--format", "json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["dry_run"] is True
    assert {s["name"]: s["status"] for s in result["steps"]}["cohort_units"] == "would-apply"
    assert ledger.read_bytes() == before
    assert sorted(p.name for p in exports["root"].iterdir()) == listing


# -------------------------------------------------------------------- missing columns: exit 2


@pytest.mark.parametrize(
    "command",
    [
        ["split"],
        ["analyze", "--no-explain"],
        ["report"],
        ["rollback", "plan", "--at", PROMPT_LEVEL_AT],
        ["rollback", "apply", "--dry-run", "--at", PROMPT_LEVEL_AT],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_missing_unit_column_is_bad_input_naming_the_fix(
    command: list[str], exports: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out_dir = tmp_path / "out"
    ledger = exports["redeployed"] if command[0] == "rollback" else exports["ledger"]
    argv = [*command, str(exports["acct_id"]), "--ledger", str(ledger)]
    if command[0] == "report":
        argv += ["--out", str(out_dir)]
    code, out, err = _run(argv, capsys)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert "'account' is the unit column" in line
    assert str(exports["acct_id"].name) in line
    assert "--column account=<your column>" in line
    assert "acct_id" in line  # the export's columns are listed
    assert "internal error" not in err
    assert out == ""
    assert not out_dir.exists()


def test_a_column_map_naming_an_absent_column_names_the_fix(
    exports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["split", str(exports["acct_id"]), "--ledger", str(exports["ledger"])]
    code, _, err = _run([*argv, "--column", "user_id=acount"], capsys)
    assert code == 2
    assert "'acount'" in err
    assert "--column account=<your column>" in err


# ------------------------------------------------------------------------------------ the API


def test_default_unit_and_the_unit_column_map() -> None:
    from analysis.events.loading import default_unit, unit_column_map

    led = parse_ledger(
        {
            "version": 1,
            "prompts": {"p": {"revisions": {"a": {}, "b": {}}}},
            "experiments": {
                "e1": {"prompt": "p", "unit": "team", "arms": {"control": "a", "treatment": "b"}},
                "e2": {"prompt": "p", "unit": "org", "arms": {"control": "a", "treatment": "b"}},
            },
        }
    )
    assert default_unit(led) == "org"  # the first by name
    assert default_unit(led, ["event_id", "team"]) == "team"  # the one the export has
    assert unit_column_map({"user_id": "x", "ts": "time"}, "team") == {"ts": "time", "team": "x"}
    assert unit_column_map({"user_id": "x", "team": "y"}, "team") == {"team": "y"}
    assert unit_column_map({"user_id": "x"}, "user_id") == {"user_id": "x"}


def test_load_events_reads_the_ledger_unit(exports: dict[str, Path]) -> None:
    from analysis.events.loading import load_events
    from analysis.ledger import load_ledger

    led = load_ledger(exports["ledger"])
    events = load_events(exports["acct_id"], columns={"user_id": "acct_id"}, ledger=led)
    assert events.report.unit == "account"
    assert events.report.renamed == {"account": "acct_id"}
    assert "account" in events.columns
    # the same on a frame, with the unit given by its own name
    frame = pl.read_parquet(exports["account"])
    assert load_events(frame, unit="account").report.unit == "account"


def test_rollback_plan_refuses_loaded_events_without_the_unit(exports: dict[str, Path]) -> None:
    """Events loaded under another unit name are bad input naming the unit, not a crash."""
    from analysis.errors import EventsError
    from analysis.events.loading import load_events
    from analysis.rollback.planning import rollback_plan

    frame = pl.read_parquet(exports["account"]).rename({"account": "user_id"})
    loaded = load_events(frame, unit="user_id")
    with pytest.raises(EventsError, match="unit column 'account'") as info:
        rollback_plan(exports["redeployed"], events=loaded, at=AT, recovery=False)
    assert info.value.exit_code == 2
    assert "--column account=<your column>" in str(info.value)
