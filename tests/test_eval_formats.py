"""Issue 25: promptfoo output and Inspect AI logs, produced by the real tools run offline, read
into the results table and gated: anchor, an equal candidate (pass), a planted regression of
twice the margin (exit 1), another judge (refused), and the stale-baseline story (exit 3 until
``baseline sync``).

The tools: promptfoo from npm (``.ci/install_eval_tools.sh`` installs the pinned version into
``.ci/tools``; or ``PROMPTSTATE_PROMPTFOO=/path/to/promptfoo``) and inspect-ai from PyPI. Without
them these tests skip, saying why — unless ``PROMPTSTATE_REQUIRE_EVAL_TOOLS=1`` (CI), when they
fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from analysis.cli import main
from analysis.errors import ResultsError
from analysis.evals._promptfoo import vars_id
from analysis.evals.results import load_results

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(__file__).resolve().parent / "eval_tools"
LEDGER = ROOT / "data_samples" / "ledger.yaml"
REQUIRE = os.environ.get("PROMPTSTATE_REQUIRE_EVAL_TOOLS") == "1"
TOOL_TIMEOUT = 900

sys.path.insert(0, str(TOOLS))
from promptfoo_qa import N_TESTS, config  # noqa: E402

Files = dict[str, Path]


def _missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (PROMPTSTATE_REQUIRE_EVAL_TOOLS=1)")
    pytest.skip(reason)


def _inspect_python() -> str | None:
    """A Python with inspect-ai: ``$PROMPTSTATE_INSPECT_PYTHON``, the tools venv that
    ``.ci/install_eval_tools.sh`` makes, or this interpreter when it has inspect-ai (Inspect's
    dependency tree is large, so it is kept out of the test environment)."""
    env = os.environ.get("PROMPTSTATE_INSPECT_PYTHON")
    if env:
        return env
    local = ROOT / ".ci" / "tools" / "inspect-venv" / "bin" / "python"
    if local.exists():
        return str(local)
    import importlib.util

    return sys.executable if importlib.util.find_spec("inspect_ai") is not None else None


def _promptfoo_bin() -> str | None:
    env = os.environ.get("PROMPTSTATE_PROMPTFOO")
    if env:
        return env
    local = ROOT / ".ci" / "tools" / "node_modules" / ".bin" / "promptfoo"
    return str(local) if local.exists() else shutil.which("promptfoo")


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], what: str, ok: tuple[int, ...] = (0,)
) -> None:
    try:
        done = subprocess.run(
            cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{what} did not run: {exc}")
    if done.returncode not in ok:
        tail = (done.stdout[-1500:] + "\n" + done.stderr[-1500:]).strip()
        pytest.fail(f"{what} exited {done.returncode}: {tail}")


@pytest.fixture(scope="session")
def promptfoo_files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """promptfoo output JSON of five runs (80 tests × 2 repeats each), offline."""
    exe = _promptfoo_bin()
    if exe is None:
        _missing(
            "promptfoo is not installed: run .ci/install_eval_tools.sh or set PROMPTSTATE_PROMPTFOO"
        )
    assert exe is not None
    work = tmp_path_factory.mktemp("promptfoo")
    home = work / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PROMPTFOO_CONFIG_DIR": str(home / ".promptfoo"),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_CACHE_ENABLED": "false",
        "NO_COLOR": "1",
    }
    runs: dict[str, dict[str, Any]] = {
        "r41": {},
        "r42": {},
        "r43": {},
        "r43-worse": {"worse": True},
        "r43-judge-b": {"judge": "judge-b"},
    }
    files: Files = {}
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        # the runs go side by side (most of a run is Node starting promptfoo), each with its
        # own promptfoo directory (its SQLite database)
        for name, kwargs in runs.items():
            revision = name.split("-")[0]
            cfg = work / f"{name}.yaml"
            cfg.write_text(yaml.safe_dump(config(revision, **kwargs), sort_keys=False))
            out = work / f"{name}.json"
            cmd = [exe, "eval", "-c", str(cfg), "-o", str(out), "--repeat", "2", "--no-cache"]
            cmd += ["--no-progress-bar", "--no-table", "--max-concurrency", "4"]
            run_env = {**env, "PROMPTFOO_CONFIG_DIR": str(home / f".promptfoo-{name}")}
            try:
                procs[name] = subprocess.Popen(
                    cmd,
                    cwd=work,
                    env=run_env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            except OSError as exc:
                pytest.fail(f"promptfoo eval ({name}) did not run: {exc}")
            files[name] = out
        for name, proc in procs.items():
            try:
                output, _ = proc.communicate(timeout=TOOL_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"promptfoo eval ({name}) did not finish in {TOOL_TIMEOUT} s")
            # exit 100: some tests failed their assertions (as planned), the output is complete
            if proc.returncode not in (0, 100):
                pytest.fail(f"promptfoo eval ({name}) exited {proc.returncode}: {output[-3000:]}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return files


@pytest.fixture(scope="session")
def inspect_files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """Inspect AI logs (.eval and .json) of five runs (80 samples × 2 epochs each), offline."""
    python = _inspect_python()
    if python is None:
        _missing(
            "Inspect AI is not installed: run .ci/install_eval_tools.sh (a venv in "
            ".ci/tools/inspect-venv), or set PROMPTSTATE_INSPECT_PYTHON to a Python that has "
            "inspect-ai"
        )
        raise AssertionError  # unreachable: _missing skips or fails
    work = tmp_path_factory.mktemp("inspect")
    env = {**os.environ, "HOME": str(work), "INSPECT_LOG_DIR": str(work / "logs")}
    env.pop("INSPECT_EVAL_MODEL", None)
    _run([python, str(TOOLS / "run_inspect.py"), str(work)], work, env, "inspect eval")
    return {
        "r41": work / "r41.eval",
        "r42": work / "r42.eval",
        "r43": work / "r43.json",
        "r43-worse": work / "r43-worse.eval",
        "r43-judge-b": work / "r43-judge-b.json",
    }


TOOL_FIXTURES = {"promptfoo": "promptfoo_files", "inspect": "inspect_files"}
GRADERS = {"promptfoo": "judge-a", "inspect": "correct+quality(mockllm/judge-a)"}


@pytest.fixture(params=sorted(TOOL_FIXTURES))
def tool(request: pytest.FixtureRequest) -> tuple[str, Files]:
    name = str(request.param)
    return name, request.getfixturevalue(TOOL_FIXTURES[name])


def _suite_yaml(path: Path, tool_name: str, grader: str | None = None) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "prompt": "support-assistant",
                "grader": grader or GRADERS[tool_name],
                "on_revert": "pin",
                "metrics": {
                    "quality": {"kind": "continuous", "direction": "higher", "margin": 0.05},
                    "correct": {"kind": "binary", "direction": "higher", "margin": 0.1},
                },
            }
        )
    )
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _versions(store: Path, suite: str) -> list[str]:
    vdir = store / suite / "versions"
    return sorted(p.name for p in vdir.iterdir()) if vdir.is_dir() else []


# ------------------------------------------------------------------------- the mapping


def test_promptfoo_mapping(promptfoo_files: Files) -> None:
    res = load_results(promptfoo_files["r41"])
    assert res.n_examples == N_TESTS
    assert res.n_rows == 2 * N_TESTS
    assert res.max_samples == 2
    assert res.table.get_column("sample").unique().sort().to_list() == [0, 1]
    ids = set(res.table.get_column("example_id").to_list())
    assert {"case-000", "case-019", "m-020", "m-039"} <= ids
    assert vars_id({"q": "What is item 40?", "level": 40 % 7}) in ids
    assert sum(i.startswith("vars:") for i in ids) == N_TESTS - 40
    for m in ("score", "pass", "quality", "quality.pass", "correct", "correct.pass", "contains"):
        assert m in res.metrics
    assert res.grader == "judge-a"
    assert res.revision == "r41"
    summary = res.summary()
    assert summary["quality"] == pytest.approx(
        sum(0.5 + 0.05 * (i % 7) for i in range(N_TESTS)) / N_TESTS
    )
    assert summary["correct"] == pytest.approx(
        1 - sum(i % 7 == 6 for i in range(N_TESTS)) / N_TESTS
    )
    worse = load_results(promptfoo_files["r43-worse"])
    assert worse.revision == "r43"
    assert worse.summary()["quality"] == pytest.approx(summary["quality"] - 0.1)
    # the ids do not depend on the prompt revision
    assert worse.eval_set_sha256 == res.eval_set_sha256
    assert load_results(promptfoo_files["r43-judge-b"]).grader == "judge-b"


def test_inspect_mapping(inspect_files: Files) -> None:
    res = load_results(inspect_files["r41"])
    assert (res.n_examples, res.n_rows, res.max_samples) == (N_TESTS, 2 * N_TESTS, 2)
    assert res.table.get_column("sample").unique().sort().to_list() == [1, 2]
    assert res.metrics == ("correct", "quality")
    assert res.grader == "correct+quality(mockllm/judge-a)"
    assert res.revision == "r41"
    # C/I mapped to 1/0 as Inspect does: every seventh sample is answered wrong
    assert res.summary()["correct"] == pytest.approx(
        1 - sum(i % 7 == 6 for i in range(N_TESTS)) / N_TESTS
    )
    as_json = load_results(inspect_files["r43"])  # --log-format json: the same scores
    assert as_json.revision == "r43"
    assert as_json.table.equals(res.table)
    assert load_results(inspect_files["r43-judge-b"]).grader == "correct+quality(mockllm/judge-b)"
    for name in ("r41", "r43"):
        assert load_results(inspect_files[name], results_format="inspect").n_rows == 2 * N_TESTS


# ------------------------------------------------------------------------- the gate story


def test_anchor_then_gate_equal_worse_and_other_judge(
    tool: tuple[str, Files], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, files = tool
    store = tmp_path / "store"
    cfg = _suite_yaml(tmp_path / "suite.yaml", name)
    code, _, err = _cli(
        capsys,
        "baseline",
        "init",
        "qa",
        "--config",
        str(cfg),
        "--ledger",
        str(LEDGER),
        "--store",
        str(store),
    )
    assert code == 0, err
    code, out, err = _cli(
        capsys,
        "baseline",
        "anchor",
        "qa",
        "--revision",
        "r41",
        "--results",
        str(files["r41"]),
        "--store",
        str(store),
    )
    assert code == 0, err
    assert f"anchored r41 as qa v0001 ({N_TESTS} examples)" in out

    def gate(candidate: str, *extra: str) -> tuple[int, str, str]:
        return _cli(
            capsys,
            "gate",
            "qa",
            "--candidate",
            str(files[candidate]),
            "--revision",
            "r43",
            "--store",
            str(store),
            *extra,
        )

    code, out, err = gate("r43", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["verdict"] == "pass"
    assert {m["metric"]: m["verdict"] for m in report["metrics"]} == {
        "quality": "pass",
        "correct": "pass",
    }

    code, out, err = gate("r43-worse", "--format", "json")
    assert code == 1, err
    report = json.loads(out)
    assert report["verdict"] == "regression"
    quality = next(m for m in report["metrics"] if m["metric"] == "quality")
    assert quality["diff"] == pytest.approx(-0.1)
    assert quality["verdict"] == "regression"

    code, out, err = gate("r43-judge-b")
    assert code == 2
    assert out == ""
    assert str(files["r43-judge-b"]) in err
    assert "judge-b" in err
    assert "not comparable" in err


def test_stale_baseline_story(
    tool: tuple[str, Files], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: r42 was anchored as the reference, the ledger rolled it back to r41 — the gate
    refuses the stale reference (exit 3) until `baseline sync` pins r41's baseline."""
    name, files = tool
    store = tmp_path / "store"
    cfg = _suite_yaml(tmp_path / "suite.yaml", name)
    assert (
        _cli(capsys, "baseline", "init", "qa", "--config", str(cfg), "--store", str(store))[0] == 0
    )
    for rev in ("r41", "r42"):
        code, _, err = _cli(
            capsys,
            "baseline",
            "anchor",
            "qa",
            "--revision",
            rev,
            "--results",
            str(files[rev]),
            "--store",
            str(store),
        )
        assert code == 0, err
    gate = [
        "gate",
        "qa",
        "--candidate",
        str(files["r43"]),
        "--revision",
        "r43",
        "--ledger",
        str(LEDGER),
        "--store",
        str(store),
    ]
    code, _, err = _cli(capsys, *gate)
    assert code == 3
    assert "baseline sync qa" in err
    code, _, err = _cli(
        capsys, "baseline", "sync", "qa", "--ledger", str(LEDGER), "--store", str(store)
    )
    assert code == 0, err
    code, out, err = _cli(capsys, *gate, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["reference"] == {"version": "v0001", "revision": "r41", "pinned": True}


def test_api_gate_reads_the_tools_files(tool: tuple[str, Files], tmp_path: Path) -> None:
    from analysis.evals.gating import gate
    from analysis.evals.store import BaselineStore, SuiteConfig

    name, files = tool
    store = BaselineStore(tmp_path / "store")
    suite = store.init("qa", SuiteConfig.load(_suite_yaml(tmp_path / "suite.yaml", name)))
    suite.anchor("r41", files["r41"], results_format=name)
    res = gate(
        "qa", files["r43"], revision="r43", store=store, stale_check=False, results_format=name
    )
    assert res.verdict == "pass"
    with pytest.raises(ResultsError, match="not comparable"):
        gate("qa", files["r43-judge-b"], revision="r43", store=store, stale_check=False)


# ------------------------------------------------------------------------- bad files


def _edit_json(src: Path, dst: Path, edit: Callable[[Any], None]) -> Path:
    obj = json.loads(src.read_text())
    edit(obj)
    dst.write_text(json.dumps(obj))
    return dst


def _anchor_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tool_name: str, results: Path
) -> str:
    tmp_path.mkdir()
    store = tmp_path / "store"
    cfg = _suite_yaml(tmp_path / "suite.yaml", tool_name)
    assert (
        _cli(capsys, "baseline", "init", "qa", "--config", str(cfg), "--store", str(store))[0] == 0
    )
    code, _out, err = _cli(
        capsys,
        "baseline",
        "anchor",
        "qa",
        "--revision",
        "r41",
        "--results",
        str(results),
        "--store",
        str(store),
    )
    assert code == 2, err
    assert _versions(store, "qa") == []  # nothing written
    assert str(results) in err
    return err


def test_promptfoo_duplicate_and_missing_ids(
    promptfoo_files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = promptfoo_files["r41"]
    rows = json.loads(src.read_text())["results"]["results"]
    i, j = next(
        (a, b)
        for a, r in enumerate(rows)
        for b, s in enumerate(rows)
        if r["testCase"].get("description") == "case-000"
        and s["testCase"].get("description") == "case-001"
    )

    def duplicate(obj: Any) -> None:
        obj["results"]["results"][j]["testCase"]["description"] = "case-000"

    err = _anchor_refused(
        capsys, tmp_path / "dup", "promptfoo", _edit_json(src, tmp_path / "dup.json", duplicate)
    )
    assert "duplicated example id 'case-000'" in err
    assert f"results.results[{j}]" in err
    assert "description" in err

    def no_id(obj: Any) -> None:
        tc = obj["results"]["results"][i]["testCase"]
        del tc["description"]
        tc["vars"] = {}
        obj["results"]["results"][i]["vars"] = {}

    err = _anchor_refused(
        capsys, tmp_path / "noid", "promptfoo", _edit_json(src, tmp_path / "noid.json", no_id)
    )
    assert f"results.results[{i}]" in err
    assert "no example id" in err

    def bad_metadata_id(obj: Any) -> None:
        row = next(
            r for r in obj["results"]["results"] if "id" in r["testCase"].get("metadata", {})
        )
        row["testCase"]["metadata"]["id"] = ""

    err = _anchor_refused(
        capsys,
        tmp_path / "emptyid",
        "promptfoo",
        _edit_json(src, tmp_path / "emptyid.json", bad_metadata_id),
    )
    assert "testCase.metadata.id is ''" in err


def test_promptfoo_two_prompts_in_one_file_are_refused(
    promptfoo_files: Files, tmp_path: Path
) -> None:
    a = json.loads(promptfoo_files["r41"].read_text())
    b = json.loads(promptfoo_files["r43-worse"].read_text())
    a["results"]["results"].extend(b["results"]["results"])
    path = tmp_path / "both.json"
    path.write_text(json.dumps(a))
    with pytest.raises(ResultsError, match=r"both\.json: 2 prompt/provider combinations"):
        load_results(path)


def test_promptfoo_partial_metric_is_ignored_unless_gated(
    promptfoo_files: Files, tmp_path: Path
) -> None:
    rows = json.loads(promptfoo_files["r41"].read_text())["results"]["results"]
    target = rows[5]["testCase"]["description"]
    first = next(k for k, r in enumerate(rows) if r["testCase"].get("description") == target)

    def drop_correct(obj: Any) -> None:
        """Test `target` (both repeats) without the `correct` assertion (the second one)."""
        for row in obj["results"]["results"]:
            if row["testCase"].get("description") == target:
                assert row["testCase"]["assert"][1]["metric"] == "correct"
                del row["testCase"]["assert"][1]
                del row["gradingResult"]["componentResults"][1]

    path = _edit_json(promptfoo_files["r41"], tmp_path / "partial.json", drop_correct)
    res = load_results(path)
    assert "correct" not in res.metrics
    assert "quality" in res.metrics
    where = f"results.results[{first}]"
    assert any(f"metric 'correct' is not scored on {where}" in n for n in res.notes)
    with pytest.raises(ResultsError, match=rf"{re.escape(where)}.*componentResults"):
        load_results(path, metrics=["quality", "correct"])
    with pytest.raises(
        ResultsError, match=rf"missing metric column\(s\) correct.*{re.escape(where)}"
    ):
        res.check_metrics(["quality", "correct"])


def test_inspect_duplicate_and_missing_ids(
    inspect_files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = inspect_files["r43"]

    def duplicate(obj: Any) -> None:
        obj["samples"][1]["id"] = obj["samples"][0]["id"]
        obj["samples"][1]["epoch"] = obj["samples"][0]["epoch"]

    err = _anchor_refused(
        capsys, tmp_path / "dup", "inspect", _edit_json(src, tmp_path / "dup.json", duplicate)
    )
    first = json.loads(src.read_text())["samples"][0]
    assert f"sample {first['id']!r} epoch {first['epoch']} appears twice" in err

    def no_id(obj: Any) -> None:
        obj["samples"][3]["id"] = None

    err = _anchor_refused(
        capsys, tmp_path / "noid", "inspect", _edit_json(src, tmp_path / "noid.json", no_id)
    )
    assert "samples[3]: field id is None" in err

    def bad_value(obj: Any) -> None:
        obj["samples"][2]["scores"]["correct"]["value"] = "maybe"

    err = _anchor_refused(
        capsys, tmp_path / "bad", "inspect", _edit_json(src, tmp_path / "bad.json", bad_value)
    )
    assert "field scores.correct.value is 'maybe', not a score" in err

    def unfinished(obj: Any) -> None:
        obj["status"] = "error"
        obj["error"] = {"message": "boom", "traceback": ""}

    err = _anchor_refused(
        capsys, tmp_path / "err", "inspect", _edit_json(src, tmp_path / "err.json", unfinished)
    )
    assert "status is 'error' (boom)" in err


def test_inspect_eval_zip_without_header_is_unfinished(
    inspect_files: Files, tmp_path: Path
) -> None:
    src = inspect_files["r41"]
    dst = tmp_path / "running.eval"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename != "header.json":
                zout.writestr(
                    info,
                    zin.open(info).read() if info.compress_type in (0, 8) else _raw(src, info),
                    compress_type=zipfile.ZIP_STORED,
                )
    with pytest.raises(ResultsError, match=r"running\.eval: the \.eval log has no header\.json"):
        load_results(dst)


def _raw(path: Path, info: zipfile.ZipInfo) -> bytes:
    from analysis.evals._inspect import _Zip

    z = _Zip(path)
    return json.dumps(z.json(info.filename)).encode()


def test_inspect_dict_scores_and_letters(inspect_files: Files, tmp_path: Path) -> None:
    def edit(obj: Any) -> None:
        for k, s in enumerate(obj["samples"]):
            s["scores"]["correct"]["value"] = "CIPN"[k % 4]
            s["scores"]["multi"] = {"value": {"f1": 0.5, "exact": True}}

    path = _edit_json(inspect_files["r43"], tmp_path / "letters.json", edit)
    res = load_results(path)
    assert {"multi.f1", "multi.exact"} <= set(res.metrics)
    values = res.table.sort("example_id", "sample").get_column("correct")
    assert set(values.to_list()) == {1.0, 0.0, 0.5}
    assert res.table.get_column("multi.exact").to_list() == [1.0] * 2 * N_TESTS


def test_copy_of_promptfoo_file_keeps_ids(promptfoo_files: Files) -> None:
    """Ids are stable across runs: two runs of the same tests give the same example ids."""
    a = load_results(promptfoo_files["r41"]).table.select("example_id", "sample")
    b = load_results(promptfoo_files["r42"]).table.select("example_id", "sample")
    assert a.equals(b)
    assert copy.deepcopy(a).height == 2 * N_TESTS
    assert isinstance(a, pl.DataFrame)


# ------------------------------------------------------------------------- without the tools


def _pf_entry(i: int, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "testIdx": i,
        "promptId": "p1",
        "prompt": {"raw": "Q: {{q}}", "label": "file://prompts/qa.txt"},
        "provider": {"id": "echo", "label": ""},
        "score": 1,
        "success": True,
        "failureReason": 0,
        "testCase": {"vars": {"q": f"q{i}"}, "assert": [{"type": "javascript", "value": "1"}]},
        "gradingResult": {
            "pass": True,
            "score": 1,
            "componentResults": [{"pass": True, "score": 1}],
        },
    }
    entry.update(extra)
    return entry


def test_promptfoo_small_files_without_the_tool(tmp_path: Path) -> None:
    path = tmp_path / "pf.json"
    errored = _pf_entry(1, success=False, score=0, failureReason=2, error="timeout")
    errored["gradingResult"] = None
    odd = _pf_entry(2)
    odd["gradingResult"]["componentResults"] = ["not an object"]
    path.write_text(json.dumps({"results": {"results": [_pf_entry(0), errored, odd]}}))
    res = load_results(path, results_format="promptfoo")
    assert res.revision is None  # promptfoo's default label of a prompt file is not a revision
    assert res.grader is None
    assert res.metrics == ("score", "pass")  # `javascript` is scored on result 0 only
    assert any("1 result(s) ended in an error" in n for n in res.notes)
    assert any("1 assertion result(s) without their assertion" in n for n in res.notes)
    assert any("metric 'javascript' is not scored on results.results[1]" in n for n in res.notes)

    bad = _pf_entry(0, score="high")
    path.write_text(json.dumps({"results": {"results": [bad]}}))
    with pytest.raises(ResultsError, match=r"pf\.json: results\.results\[0\] \(test #0\): score"):
        load_results(path)
    clash = _pf_entry(0)
    clash["testCase"]["assert"][0]["metric"] = "score"
    path.write_text(json.dumps({"results": {"results": [clash]}}))
    with pytest.raises(ResultsError, match="metric name 'score', which collides"):
        load_results(path)
    path.write_text(json.dumps({"results": {"results": []}}))
    with pytest.raises(ResultsError, match=r"results\.results\[\] is empty"):
        load_results(path)
