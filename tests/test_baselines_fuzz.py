"""Property-based and fuzz tests of the baseline commands: the exit-code contract holds.

Every generated suite config and results file goes through the CLI in-process
(``analysis.cli.main``). The contract: exit 0 (accepted) or 2 (bad input) — never a traceback,
never 1 or 4 for a crash; one line on stderr on exit 2; on exit 2 the store is byte-for-byte
unchanged (a digest of every path and file before and after). For structured inputs an
independent validator written here (the rules of docs/baselines.md, not the code) predicts the
outcome.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analysis.cli import main

ROOT = Path(__file__).resolve().parent.parent
SUITE_YAML = ROOT / "data_samples" / "evals" / "support-qa.suite.yaml"
R43 = ROOT / "data_samples" / "evals" / "support-qa" / "r43.csv"
GRADER = "judge-2026-10"
#: Examples per fuzz test: 40 by default (reproducible, a few seconds each);
#: ``PROMPTSTATE_FUZZ_EXAMPLES=2000`` runs a longer, random search.
_EXAMPLES = int(os.environ.get("PROMPTSTATE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize="PROMPTSTATE_FUZZ_EXAMPLES" not in os.environ,
    database=None,
)


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    if not root.exists():
        return "absent"
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def run(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` in-process; returns the exit code and stderr (no exception escapes)."""
    err = io.StringIO()
    out = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    return code, err.getvalue()


def assert_contract(code: int, err: str, before: str, after: str, *, fuzzed: bool = True) -> None:
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert all(line.startswith("promptstate: ") for line in lines), err
    if code == 2:
        errors = [line for line in lines if line.startswith("promptstate: error: ")]
        assert len(errors) == 1, err  # one line naming the file and what to do
        assert after == before, "exit 2 must change nothing"
    if fuzzed:
        event(f"exit {code}")  # --hypothesis-show-statistics shows the mix of outcomes


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


# ----------------------------------------------------------------------------- suite configs

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
)
_METRIC = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.one_of(st.sampled_from(["binary", "continuous"]), _SCALAR),
        "direction": st.one_of(st.sampled_from(["higher", "lower"]), _SCALAR),
        "margin": st.one_of(
            st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 5), _SCALAR
        ),
        "extra": _SCALAR,
    },
)
_NAME = st.one_of(st.sampled_from(["correct", "rubric", "sample", "example_id", ""]), _TEXT)
_CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.one_of(st.just("support-assistant"), _SCALAR),
        "grader": st.one_of(st.just(GRADER), _SCALAR),
        "on_revert": st.one_of(st.sampled_from(["pin", "reanchor"]), _SCALAR),
        "metrics": st.one_of(
            st.dictionaries(_NAME, st.one_of(_METRIC, _SCALAR), max_size=3), _SCALAR
        ),
        "primary": st.one_of(st.sampled_from(["correct", "rubric"]), _SCALAR),
        "unknown": _SCALAR,
    },
)


def valid_config(data: dict[str, Any]) -> bool:
    """The suite-config rules of docs/baselines.md, written independently of the code."""

    def text(v: object) -> bool:
        return isinstance(v, str) and v != ""

    if set(data) - {"prompt", "grader", "on_revert", "metrics", "primary"}:
        return False
    if not (text(data.get("prompt")) and text(data.get("grader"))):
        return False
    if data.get("on_revert", "pin") not in ("pin", "reanchor"):
        return False
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return False
    for name, spec in metrics.items():
        if not text(name) or name in ("example_id", "sample", "grader"):
            return False
        if not isinstance(spec, dict) or set(spec) - {"kind", "direction", "margin"}:
            return False
        if spec.get("kind", "continuous") not in ("binary", "continuous"):
            return False
        if spec.get("direction", "higher") not in ("higher", "lower"):
            return False
        m = spec.get("margin")
        if isinstance(m, bool) or not isinstance(m, int | float) or not math.isfinite(m) or m <= 0:
            return False
    primary = data.get("primary", next(iter(metrics)))
    return primary in metrics


@FUZZ
@given(data=_CONFIG)
def test_fuzzed_suite_configs_follow_the_contract(data: dict[str, Any]) -> None:
    with workdir() as tmp:
        cfg = tmp / "suite.yaml"
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        store = tmp / "store"
        before = tree_digest(store)
        code, err = run(["baseline", "init", "qa", "--config", str(cfg), "--store", str(store)])
        assert_contract(code, err, before, tree_digest(store))
        assert (code == 0) == valid_config(data), (data, err)
        if code == 2:
            assert str(cfg) in err  # the message names the file


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text_as_a_suite_config(text: str) -> None:
    with workdir() as tmp:
        cfg = tmp / "suite.yaml"
        cfg.write_text(text, encoding="utf-8")
        store = tmp / "store"
        before = tree_digest(store)
        code, err = run(["baseline", "init", "qa", "--config", str(cfg), "--store", str(store)])
        assert_contract(code, err, before, tree_digest(store))


def test_a_suite_config_is_also_fuzzed_in_place(tmp_path: Path) -> None:
    """A config edited inside the store (margin .nan and friends): readers refuse with 2."""
    store = tmp_path / "store"
    assert (
        run(["baseline", "init", "qa", "--config", str(SUITE_YAML), "--store", str(store)])[0] == 0
    )
    cfg = store / "qa" / "suite.yaml"
    edits = [
        ("margin: 0.02", "margin: .nan"),
        ("margin: 0.02", "margin: -1"),
        ("margin: 0.02", "margin: .inf"),
        ("kind: binary", "kind: ordinal"),
        ("kind: binary", "kind: binary, kind: continuous"),  # a duplicate key
    ]
    for old, bad in edits:
        cfg.write_text(SUITE_YAML.read_text().replace(old, bad))
        before = tree_digest(store)
        for argv in (
            ["baseline", "show", "qa"],
            ["baseline", "list"],
            ["baseline", "anchor", "qa", "--revision", "r1", "--results", str(R43)],
            ["gate", "qa", "--candidate", str(R43)],
        ):
            code, err = run([*argv, "--store", str(store)])
            assert_contract(code, err, before, tree_digest(store), fuzzed=False)
            assert code == 2
            assert "metrics.correct" in err or "duplicate key 'kind'" in err


# ----------------------------------------------------------------------------- results files

_IDS = st.one_of(
    st.sampled_from(["e1", "e2", "e3", " ", "", "a\nb", "tab\t", "é"]), st.text(max_size=4)
)
_BINARY = st.one_of(st.sampled_from([0, 1]), st.none(), st.sampled_from([2, -1]))
_SCORE = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.none())


@st.composite
def results_frames(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 5))
    cols: dict[str, Any] = {}
    if draw(st.booleans()) or n == 0:
        cols["example_id"] = draw(
            st.one_of(
                st.lists(_IDS, min_size=n, max_size=n),
                st.lists(st.integers(0, 3), min_size=n, max_size=n),
            )
        )
    if draw(st.booleans()):
        cols["sample"] = draw(
            st.lists(st.one_of(st.integers(0, 1), st.none()), min_size=n, max_size=n)
        )
    if draw(st.integers(0, 5)) > 0:
        cols["correct"] = draw(st.lists(_BINARY, min_size=n, max_size=n))
    if draw(st.integers(0, 5)) > 0:
        cols["rubric"] = draw(st.lists(_SCORE, min_size=n, max_size=n))
    if draw(st.integers(0, 3)) == 0:
        cols["grader"] = draw(
            st.lists(st.sampled_from([GRADER, "other", None]), min_size=n, max_size=n)
        )
    if draw(st.integers(0, 4)) == 0:
        cols["note"] = draw(st.lists(st.sampled_from(["x", "y"]), min_size=n, max_size=n))
    return cols


_SCHEMA = {
    "example_id": None,  # inferred: String or Int64
    "sample": pl.Int64,
    "correct": pl.Int64,
    "rubric": pl.Float32,
    "grader": pl.String,
    "note": pl.String,
}


def valid_results(cols: dict[str, Any]) -> bool:
    """The results rules of docs/baselines.md for the sample suite, written independently."""
    n = len(next(iter(cols.values()))) if cols else 0
    ids = cols.get("example_id")
    if n == 0 or ids is None:
        return False
    for i in ids:
        if i is None or str(i).strip() == "":
            return False
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in str(i)):
            return False
    samples = cols.get("sample", [0] * n)
    if any(s is None for s in samples):
        return False
    if len({(str(i), s) for i, s in zip(ids, samples, strict=True)}) != n:
        return False
    graders = {g for g in cols.get("grader", []) if g is not None}
    if len(graders) > 1 or graders - {GRADER}:
        return False
    if "note" in cols:  # every other column is a score and must be numeric
        return False
    if "correct" not in cols or "rubric" not in cols:
        return False
    if any(v not in (0, 1) for v in cols["correct"]):
        return False
    return all(v is not None and math.isfinite(v) for v in cols["rubric"])


def _frame(cols: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(
        {k: pl.Series(k, v, dtype=_SCHEMA[k]) if _SCHEMA[k] else v for k, v in cols.items()}
    )


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "store"
    code, err = run(["baseline", "init", "qa", "--config", str(SUITE_YAML), "--store", str(root)])
    assert code == 0, err
    return root


@FUZZ
@given(cols=results_frames(), fmt=st.sampled_from(["parquet", "csv", "jsonl"]))
def test_fuzzed_results_files_follow_the_contract(
    base_store: Path, cols: dict[str, Any], fmt: str
) -> None:
    with workdir() as tmp:
        store = tmp / "store"
        shutil.copytree(base_store, store)
        path = tmp / f"results.{fmt}"
        try:
            df = _frame(cols)
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            return  # not a frame polars can build: nothing to write
        if fmt == "parquet":
            df.write_parquet(path)
        elif fmt == "csv":
            df.write_csv(path)
        else:
            df.write_ndjson(path)
        before = tree_digest(store)
        code, err = run(
            [
                "baseline",
                "anchor",
                "qa",
                "--revision",
                "r1",
                "--results",
                str(path),
                "--store",
                str(store),
            ]
        )
        assert_contract(code, err, before, tree_digest(store))
        if fmt == "parquet":  # types survive exactly: the independent rules predict the outcome
            assert (code == 0) == valid_results(cols), (cols, err)
        if code == 0:
            assert run(["baseline", "verify", "--store", str(store)])[0] == 0
        else:
            assert str(path) in err  # the message names the file


@FUZZ
@given(blob=st.binary(max_size=300), fmt=st.sampled_from(["parquet", "csv", "jsonl"]))
def test_arbitrary_bytes_as_results(base_store: Path, blob: bytes, fmt: str) -> None:
    with workdir() as tmp:
        store = tmp / "store"
        shutil.copytree(base_store, store)
        path = tmp / f"results.{fmt}"
        path.write_bytes(blob)
        before = tree_digest(store)
        code, err = run(
            [
                "baseline",
                "anchor",
                "qa",
                "--revision",
                "r1",
                "--results",
                str(path),
                "--store",
                str(store),
            ]
        )
        assert_contract(code, err, before, tree_digest(store))


@FUZZ
@given(cols=results_frames())
def test_fuzzed_gate_candidates_never_crash_or_write(
    base_store: Path, cols: dict[str, Any]
) -> None:
    with workdir() as tmp:
        store = tmp / "store"
        shutil.copytree(base_store, store)
        reference = tmp / "reference.parquet"
        pl.DataFrame(
            {"example_id": ["e1", "e2", "e3"], "correct": [1, 0, 1], "rubric": [3.0, 4.0, 5.0]}
        ).write_parquet(reference)
        code, err = run(
            [
                "baseline",
                "anchor",
                "qa",
                "--revision",
                "r1",
                "--results",
                str(reference),
                "--store",
                str(store),
            ]
        )
        assert code == 0, err
        path = tmp / "candidate.parquet"
        try:
            _frame(cols).write_parquet(path)
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            return
        before = tree_digest(store)
        code, err = run(["gate", "qa", "--candidate", str(path), "--store", str(store)])
        assert code in (0, 1, 2), (code, err)  # 1: the verdict found a regression
        assert "Traceback" not in err
        assert tree_digest(store) == before
