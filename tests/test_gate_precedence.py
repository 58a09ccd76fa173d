"""Issue 19.3 and 20.11: the gate's exit-code precedence (4 > 2 > 3 > 1) and ``n_required``.

With a stale reference, a malformed candidate, a wrong ``--grader`` or an ``--out`` that cannot be
written is bad input (exit 2, nothing written), not the stale refusal (exit 3): every input is
validated before the staleness verdict decides the exit code. An inconclusive verdict says in
the table and Markdown how many examples would decide it (the ``n_required`` of the JSON).
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.cli import main
from analysis.evals.store import BaselineStore, SuiteConfig

ROOT = Path(__file__).resolve().parent.parent
EVALS = ROOT / "data_samples" / "evals" / "support-qa"
LEDGER = ROOT / "data_samples" / "ledger.yaml"
R43 = EVALS / "r43.csv"


@pytest.fixture
def stale(tmp_path: Path) -> Path:
    """A copy of the sample store before sync: its reference v0002 (r42) is stale."""
    dst = tmp_path / "store"
    shutil.copytree(ROOT / "baselines", dst)
    return dst


def _gate(store: Path, candidate: Path, *extra: str) -> list[str]:
    return ["gate", "support-qa", "--candidate", str(candidate), "--revision", "r43",
            "--store", str(store), "--ledger", str(LEDGER), *extra]  # fmt: skip


def _bad_candidates(tmp_path: Path) -> dict[str, tuple[Path, list[str], str]]:
    """name -> (candidate, extra argv, text the one error line must hold)."""
    table = pl.read_csv(R43)
    no_id = tmp_path / "no_id.csv"
    table.drop("example_id").write_csv(no_id)
    nan = tmp_path / "nan.csv"
    table.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pl.col("rubric"))
        .alias("rubric")
    ).write_csv(nan)  # fmt: skip
    return {
        "no example_id": (no_id, [], "example_id"),
        "NaN score": (nan, [], "rubric"),
        "missing file": (tmp_path / "nope.csv", [], "nope.csv"),
        "wrong --grader": (
            tmp_path / "no_grader.csv",
            ["--grader", "judge-1999"],
            "graded by 'judge-1999'",
        ),
    }


def test_bad_input_wins_over_a_stale_reference(
    stale: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pl.read_csv(R43).drop("grader").write_csv(tmp_path / "no_grader.csv")
    # the reference is stale: valid inputs exit 3
    assert main(_gate(stale, R43)) == 3
    assert "rolled back to r41" in capsys.readouterr().err
    for name, (candidate, extra, expected) in _bad_candidates(tmp_path).items():
        for fmt in ("table", "junit"):
            out = tmp_path / f"{name}.{fmt}"
            code = main(_gate(stale, candidate, *extra, "--format", fmt, "--out", str(out)))
            err = capsys.readouterr().err
            assert code == 2, (name, fmt, err)
            (line,) = err.splitlines()
            assert expected in line, (name, line)
            assert "rolled back" not in line, name
            assert not out.exists(), (name, fmt)  # no JUnit refusal on bad input either


def test_out_on_a_folder_or_under_a_file_is_bad_input_before_the_stale_verdict(
    stale: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    assert main(_gate(stale, R43, "--format", "junit", "--out", str(folder))) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"--out {folder}: is a folder" in line
    assert list(folder.iterdir()) == []
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(_gate(stale, R43, "--out", str(blocker / "gate.xml"))) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "is a file, not a folder" in line
    assert blocker.read_text() == "x"
    # valid inputs and a writable --out: the stale refusal, with its JUnit report
    report = tmp_path / "gate.xml"
    assert main(_gate(stale, R43, "--format", "junit", "--out", str(report))) == 3
    assert ET.parse(report).getroot().get("errors") == "1"


def test_bad_input_wins_over_an_invalid_reference(
    stale: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = stale / "support-qa" / "versions" / "v0002" / "scores.parquet"
    scores.write_bytes(scores.read_bytes()[:-20] + b"\0" * 20)
    argv = _gate(stale, R43, "--no-stale-check")
    argv.remove("--ledger")
    argv.remove(str(LEDGER))
    assert main(argv) == 3
    assert "content hash mismatch" in capsys.readouterr().err
    no_id = tmp_path / "no_id.csv"
    pl.read_csv(R43).drop("example_id").write_csv(no_id)
    argv[argv.index(str(R43))] = str(no_id)
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "example_id" in line


def test_a_ledger_that_does_not_exist_wins_over_a_stale_reference(
    stale: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _gate(stale, R43)
    argv[argv.index(str(LEDGER))] = str(tmp_path / "missing.yaml")
    assert main(argv) == 2
    assert "missing.yaml" in capsys.readouterr().err


# ---------------------------------------------------------------- n_required when inconclusive


def _small_suite(tmp_path: Path) -> Path:
    """A suite whose 40-example candidate is too small to decide: inconclusive."""
    rng = np.random.default_rng(7)
    ids = [f"e{i:03d}" for i in range(40)]
    ref = rng.normal(3.0, 0.8, size=40)
    cand = ref + rng.normal(0.0, 0.8, size=40)
    store = tmp_path / "store"
    st = BaselineStore(store)
    cfg = SuiteConfig.from_mapping(
        {"prompt": "p", "grader": "g",
         "metrics": {"score": {"kind": "continuous", "direction": "higher", "margin": 0.1}}}
    )  # fmt: skip
    st.init("qa", cfg)
    st.suite("qa").anchor("r1", pl.DataFrame({"example_id": ids, "score": ref}))
    pl.DataFrame({"example_id": ids, "score": cand}).write_csv(tmp_path / "cand.csv")
    return store


def test_inconclusive_says_how_many_examples_would_decide_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _small_suite(tmp_path)
    argv = ["gate", "qa", "--candidate", str(tmp_path / "cand.csv"), "--store", str(store),
            "--no-stale-check"]  # fmt: skip
    assert main([*argv, "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "inconclusive"
    (metric,) = data["metrics"]
    n_required = metric["n_required"]
    assert isinstance(n_required, int)
    assert n_required > 40
    phrase = f"about {n_required:,} examples would decide it"
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "INCONCLUSIVE" in out
    assert f"score: inconclusive with 40 examples — {phrase}" in out
    assert main([*argv, "--format", "markdown"]) == 1
    assert phrase in capsys.readouterr().out
    assert main([*argv, "--format", "junit"]) == 1
    assert phrase in capsys.readouterr().out
    assert main([*argv, "--allow-inconclusive"]) == 0
    assert phrase in capsys.readouterr().out


def test_a_decided_gate_prints_no_n_required_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["gate", "support-qa", "--candidate", str(R43), "--store", str(ROOT / "baselines"),
            "--no-stale-check"]  # fmt: skip
    assert main(argv) == 1  # a regression against the stale r42 baseline: decided
    assert "would decide it" not in capsys.readouterr().out


# ---------------------------------------------------------------- --results-format plumbing


def test_results_format_reaches_load_results(
    stale: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--results-format`` of ``gate`` and ``baseline anchor`` is passed to ``load_results``."""
    from analysis.evals import results

    real = results.load_results
    seen: list[str] = []

    def load_results(source: object, *, results_format: str = "auto", **kw: object) -> object:
        seen.append(results_format)
        return real(source, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(results, "load_results", load_results)
    st = ["--store", str(stale)]
    for fmt in ("table", "promptfoo", "inspect", "auto"):
        assert main(["gate", "support-qa", "--candidate", str(R43), *st, "--no-stale-check",
                     "--results-format", fmt]) == 1  # fmt: skip
        assert seen[-1] == fmt
    assert main(["baseline", "anchor", "support-qa", "--revision", "r43", "--results", str(R43),
                 *st, "--results-format", "inspect"]) == 0  # fmt: skip
    assert seen[-1] == "inspect"
    assert main(["gate", "support-qa", "--candidate", str(R43), *st, "--no-stale-check"]) == 0
    assert seen[-1] == "auto"  # the default


def test_an_unknown_results_format_is_a_usage_error(
    stale: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["gate", "support-qa", "--candidate", str(R43), "--store", str(stale),
            "--no-stale-check", "--results-format", "xml"]  # fmt: skip
    assert main(argv) == 2
    assert "--results-format" in capsys.readouterr().err


def test_results_formats_of_the_cli_are_those_of_the_loader(
    stale: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.cli.baseline import RESULTS_FORMATS
    from analysis.evals import results

    assert results.RESULTS_FORMATS == RESULTS_FORMATS
    argv = ["gate", "support-qa", "--candidate", str(R43), "--store", str(stale),
            "--no-stale-check"]  # fmt: skip
    assert main([*argv, "--results-format", "table"]) == 1  # r43 vs the stale r42: regression
    capsys.readouterr()
    assert main([*argv, "--results-format", "promptfoo"]) == 2  # a CSV is no promptfoo output
    (line,) = capsys.readouterr().err.splitlines()
    assert str(R43) in line
