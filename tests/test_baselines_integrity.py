"""Tampering is detected everywhere; ``baseline verify``; exit codes; versioned eval-set hash."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.cli import main
from analysis.errors import BaselineError, InvalidBaselineError
from analysis.evals.gating import gate
from analysis.evals.results import eval_set_hash
from analysis.evals.store import BaselineStore, SuiteConfig
from analysis.ledger import parse_ledger

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "baselines"
EVALS = ROOT / "data_samples" / "evals"
SUITE_YAML = EVALS / "support-qa.suite.yaml"
LEDGER = ROOT / "data_samples" / "ledger.yaml"
R43 = EVALS / "support-qa" / "r43.csv"


def tree_digest(root: Path) -> str:
    """SHA-256 over every path and file content under ``root``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.name == ".lock":
            continue
        h.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def sample(tmp_path: Path) -> BaselineStore:
    dst = tmp_path / "baselines"
    shutil.copytree(SHIPPED, dst)
    return BaselineStore(dst)


def _meta(store: BaselineStore, version: str) -> Path:
    return store.root / "support-qa" / "versions" / version / "meta.json"


def _edit_meta(store: BaselineStore, version: str, **changes: Any) -> None:
    path = _meta(store, version)
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta, indent=2))


# ----------------------------------------------------------------------------- tampering

TAMPERINGS: dict[str, Callable[[BaselineStore], str]] = {}


def tampering(name: str) -> Callable[[Callable[[BaselineStore], str]], Callable[..., str]]:
    def register(fn: Callable[[BaselineStore], str]) -> Callable[[BaselineStore], str]:
        TAMPERINGS[name] = fn
        return fn

    return register


@tampering("meta revision")
def _meta_revision(store: BaselineStore) -> str:
    # the classic: make the reverted r42 baseline look like a baseline of the live r41
    _edit_meta(store, "v0002", revision="r41")
    return "its metadata says revision 'r41', the journal entry 3 that created it says 'r42'"


@tampering("meta scores hash")
def _meta_hash(store: BaselineStore) -> str:
    _edit_meta(store, "v0002", scores_sha256="0" * 64)
    return "its metadata records scores sha256 000000000000…"


@tampering("scores")
def _scores(store: BaselineStore) -> str:
    path = store.root / "support-qa" / "versions" / "v0002" / "scores.parquet"
    pl.read_parquet(path).with_columns(pl.col("correct") * 0).write_parquet(path)
    return "content hash mismatch"


@tampering("journal reference revision")
def _journal_reference(store: BaselineStore) -> str:
    path = store.root / "support-qa" / "journal.jsonl"
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    last["reference"]["revision"] = "r41"  # v0002 passed off as r41's
    path.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    return "as a baseline of 'r41', but entry 3 created it for 'r42'"


@tampering("meta missing")
def _meta_missing(store: BaselineStore) -> str:
    _meta(store, "v0002").unlink()
    return "metadata of committed version v0002 is missing"


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_tampering_is_detected_by_every_command(sample: BaselineStore, name: str) -> None:
    expected = TAMPERINGS[name](sample)
    st = ["--store", str(sample.root)]
    s = sample.suite("support-qa")
    # API: every read that involves v0002 refuses with InvalidBaselineError (exit code 3)
    with pytest.raises(InvalidBaselineError):
        s.reference() if name == "journal reference revision" else s.version("v0002")
    with pytest.raises(InvalidBaselineError):
        gate("support-qa", R43, store=sample, stale_check=False)
    before = tree_digest(sample.root)
    # CLI: gate, verify and sync exit 3; list, show and pin exit 2 (only the baseline-checking
    # commands exit 3); nothing is written
    assert main(["gate", "support-qa", "--candidate", str(R43), *st, "--no-stale-check"]) == 3
    assert main(["gate", "support-qa", "--candidate", str(R43), *st, "--ledger", str(LEDGER)]) == 3
    assert main(["baseline", "verify", *st, "--format", "json"]) == 3
    assert main(["baseline", "sync", "--ledger", str(LEDGER), *st]) == 3
    assert main(["baseline", "list", *st]) == 2
    assert main(["baseline", "show", "support-qa", *st]) == 2
    assert main(["baseline", "pin", "support-qa", "--version", "v0001", *st]) == 2
    assert tree_digest(sample.root) == before
    report = sample.verify()
    assert report.exit_code() == 3
    assert any(expected in f.problem for f in report.findings if f.kind == "invalid"), [
        f.problem for f in report.findings
    ]


def test_verify_lists_every_mismatch(
    sample: BaselineStore, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_meta(sample, "v0001", revision="r40", n_examples=7)
    _scores(sample)
    (sample.root / "support-qa" / "versions" / "v0009").mkdir()
    st = ["--store", str(sample.root)]
    capsys.readouterr()
    assert main(["baseline", "verify", "support-qa", *st, "--format", "json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 3
    assert out["suites"] == [
        {"suite": "support-qa", "status": "invalid", "entries": 3, "versions": 2}
    ]
    problems = [(f["kind"], Path(f["path"]).name, f["problem"]) for f in out["findings"]]
    assert [p[:2] for p in problems] == [
        ("invalid", "meta.json"),  # v0001: revision
        ("invalid", "meta.json"),  # v0001: example count
        ("invalid", "scores.parquet"),  # v0002: content
        ("note", "v0009"),  # an uncommitted directory: repaired by the next writer
    ]
    assert "says revision 'r40'" in problems[0][2]
    assert "records 7 examples / 3000 rows, the scores hold 1500 / 3000" in problems[1][2]
    assert main(["baseline", "verify", *st, "--format", "markdown"]) == 3
    md = capsys.readouterr()
    assert "| support-qa | invalid |" in md.out
    assert md.err.count("promptstate: invalid:") == 3
    assert main(["baseline", "verify", *st]) == 3
    assert "INVALID stored baseline" in capsys.readouterr().out


def test_verify_passes_on_the_shipped_store_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = tree_digest(SHIPPED)
    assert main(["baseline", "verify", "--store", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert "all is well" in out
    assert "3 journal entries, 2 versions checked" in out
    assert tree_digest(SHIPPED) == before


def test_verify_reports_a_bad_suite_config_as_bad_input(sample: BaselineStore) -> None:
    cfg = sample.root / "support-qa" / "suite.yaml"
    cfg.write_text(cfg.read_text().replace("margin: 0.02", "margin: .nan"))
    report = sample.verify()
    assert report.exit_code() == 2
    assert [f.kind for f in report.findings] == ["config"]
    assert (
        "metrics.correct.margin: margin must be a finite number > 0" in report.findings[0].problem
    )
    assert main(["baseline", "verify", "--store", str(sample.root)]) == 2
    # every later command refuses it as bad input instead of crashing
    assert main(["gate", "support-qa", "--candidate", str(R43), "--store", str(sample.root)]) == 2
    assert main(["baseline", "show", "support-qa", "--store", str(sample.root)]) == 2


def test_verify_of_an_unknown_suite_is_bad_input(sample: BaselineStore) -> None:
    assert main(["baseline", "verify", "nope", "--store", str(sample.root)]) == 2


def test_journal_tampering_found_by_verify(sample: BaselineStore) -> None:
    path = sample.root / "support-qa" / "journal.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2], lines[1]]) + "\n")  # reordered
    problems = [f.problem for f in sample.verify().findings]
    assert "entry 2 is numbered 3: lines were removed, reordered or duplicated" in problems[0]
    with pytest.raises(InvalidBaselineError, match="entry 2 is numbered 3"):
        sample.suite("support-qa").journal()
    path.write_text("\n".join([*lines, lines[2].replace('"seq": 3', '"seq": 4')]) + "\n")
    problems = [f.problem for f in sample.verify().findings]
    assert any("entry 4 creates v0002 again (entry 3 created it)" in p for p in problems)


# ----------------------------------------------------------------------------- eval-set hash


def test_old_versions_keep_their_hash_scheme_and_new_ones_use_scheme_2(
    sample: BaselineStore,
) -> None:
    shipped = {
        v: (SHIPPED / "support-qa" / "versions" / v / "meta.json").read_bytes()
        for v in ("v0001", "v0002")
    }
    s = sample.suite("support-qa")
    ids = pl.read_csv(R43, columns=["example_id"]).get_column("example_id").to_list()
    old = s.version("v0001")
    assert old.eval_set_hash_scheme == 1  # absent from the shipped meta.json
    assert old.eval_set_sha256 == eval_set_hash(ids, scheme=1)
    # the gate compares the candidate with the reference's own scheme: same eval set
    res = gate("support-qa", R43, store=sample, stale_check=False)
    assert {c.name: c.status for c in res.checks}["eval_set"] == "ok"
    # a new version is written with scheme 2
    meta, _ = s.anchor("r43", R43, at=datetime(2026, 12, 1, tzinfo=UTC))
    stored = json.loads(_meta(sample, meta.id).read_text())
    assert stored["eval_set_hash_scheme"] == 2
    assert stored["eval_set_sha256"] == eval_set_hash(ids) != old.eval_set_sha256
    res = gate("support-qa", R43, store=sample, stale_check=False)
    assert {c.name: c.status for c in res.checks}["eval_set"] == "ok"
    # committed meta.json files are never rewritten (the shipped store included)
    for v, data in shipped.items():
        assert _meta(sample, v).read_bytes() == data
        assert (SHIPPED / "support-qa" / "versions" / v / "meta.json").read_bytes() == data
    assert sample.verify().exit_code() == 0


# ----------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("margin", "shown"),
    [
        (".nan", "nan"),
        (".inf", "inf"),
        ("-.inf", "-inf"),
        ("-0.1", "-0.1"),
        ("0", "0"),
        ("'0.1'", "'0.1'"),
        ("true", "True"),
        ("null", "None"),
        ("1.0e+999", "inf"),
    ],
)
def test_bad_margins_are_bad_input_naming_file_and_metric(
    tmp_path: Path, margin: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "suite.yaml"
    cfg.write_text(SUITE_YAML.read_text().replace("margin: 0.1", f"margin: {margin}"))
    store = tmp_path / "store"
    assert main(["baseline", "init", "qa", "--config", str(cfg), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{cfg}: metrics.rubric.margin: margin must be a finite number > 0" in err
    assert f"not {shown}" in err
    assert not store.exists()


def test_config_errors_name_the_entry() -> None:
    cases = [
        ({"grader": "g", "metrics": {"x": {"margin": 1}}}, "s.yaml: prompt: 'prompt' is required"),
        ({"prompt": "p", "grader": "g", "metrics": {}}, "s.yaml: metrics: 'metrics' must map"),
        ({"prompt": "p", "grader": "g", "metrics": {"x": None}}, "metrics.x: expected {kind"),
        ({"prompt": "p", "grader": "", "metrics": {"x": {"margin": 1}}}, "grader: 'grader' is"),
        (
            {"prompt": "p", "grader": "g", "metrics": {"x": {"margin": 1, "k": 1}}},
            "metrics.x.k: unknown key (allowed in metrics.x: kind, direction, margin)",
        ),
        ({"prompt": "p", "grader": "g", "metrics": {1: {"margin": 1}}}, "metric name 1 must be"),
        (
            {"prompt": "p", "grader": "g", "metrics": {"sample": {"margin": 1}}},
            "metrics.sample: invalid metric name",
        ),
        (
            {"prompt": "p", "grader": "g", "on_revert": "x", "metrics": {"x": {"margin": 1}}},
            "on_revert: on_revert must be 'pin' or 'reanchor', not 'x'",
        ),
        ([1, 2], "expected a mapping"),
    ]
    for data, message in cases:
        with pytest.raises(
            BaselineError, match=message.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")
        ) as info:
            SuiteConfig.from_mapping(data, where="s.yaml")
        assert info.value.exit_code == 2


def test_every_bad_request_exits_2_and_changes_nothing(
    sample: BaselineStore, tmp_path: Path
) -> None:
    """The audit: config and name mistakes are bad input (2), never 3."""
    st = ["--store", str(sample.root)]
    good_cfg = tmp_path / "suite.yaml"
    good_cfg.write_text(SUITE_YAML.read_text())
    other_cfg = tmp_path / "other.yaml"
    other_cfg.write_text(SUITE_YAML.read_text().replace("judge-2026-10", "judge-2027"))
    r41 = str(EVALS / "support-qa" / "r41.csv")
    requests = [
        ["baseline", "init", "../evil", "--config", str(good_cfg)],
        ["baseline", "init", "support-qa", "--config", str(other_cfg)],
        ["baseline", "init", "x", "--config", str(tmp_path / "missing.yaml")],
        ["baseline", "anchor", "nope", "--revision", "r1", "--results", r41],
        ["baseline", "anchor", "support-qa", "--revision", "", "--results", r41],
        ["baseline", "anchor", "support-qa", "--revision", "r1", "--results", "missing.csv"],
        ["baseline", "show", "nope"],
        ["baseline", "show", "support-qa", "--version", "v0042"],
        ["baseline", "history", "a/b"],
        ["baseline", "pin", "support-qa", "--version", "v0042"],
        ["baseline", "revert", "support-qa", "--reverted", "r42", "--restored", "r40"],
        [
            "baseline",
            "revert",
            "support-qa",
            "--reverted",
            "r42",
            "--restored",
            "r41",
            "--policy",
            "reanchor",
        ],
        ["baseline", "sync", "nope", "--ledger", str(LEDGER)],
        ["baseline", "sync", "--ledger", str(tmp_path / "missing.yaml")],
        ["baseline", "verify", "nope"],
        ["baseline", "unpin", "nope"],
    ]
    before = tree_digest(sample.root)
    codes = {" ".join(r[:3]): main([*r, *st]) for r in requests}
    assert codes == dict.fromkeys(codes, 2)
    assert tree_digest(sample.root) == before


# ----------------------------------------------------------------------------- sync


def _rollbacks(n: int) -> dict[str, Any]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    trans = [
        {"at": t0.isoformat(), "action": "deploy", "prompt": "support-assistant", "revision": "r41"}
    ]
    for i in range(1, n):
        at = (t0 + timedelta(minutes=i)).isoformat()
        trans.append(
            {"at": at, "action": "deploy", "prompt": "support-assistant", "revision": "r42"}
            if i % 2
            else {"at": at, "action": "rollback", "prompt": "support-assistant", "to": "r41"}
        )
    return {
        "version": 1,
        "prompts": {"support-assistant": {"revisions": {"r41": {}, "r42": {"parent": "r41"}}}},
        "transitions": trans,
    }


def test_sync_is_linear_in_the_transitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal and each version's metadata are read a fixed number of times, whatever the
    number of rollbacks; 10,000 transitions (4,999 rollbacks) sync in well under 5 s."""
    import analysis.evals._files as low
    import analysis.evals._suite as reading

    reads = {"journal": 0, "meta": 0}
    real_repair, real_meta = low.repair_journal, reading.SuiteReader._read_meta

    def count_journal(*args: Any) -> Any:
        reads["journal"] += 1
        return real_repair(*args)

    def count_meta(self: Any, version: str, state: Any) -> Any:
        reads["meta"] += 1
        return real_meta(self, version, state)

    import analysis.evals.store as store_module

    monkeypatch.setattr(store_module, "repair_journal", count_journal)
    monkeypatch.setattr(reading.SuiteReader, "_read_meta", count_meta)
    counts, timings = [], []
    for n in (100, 10_000):
        root = tmp_path / f"s{n}"
        shutil.copytree(SHIPPED, root)
        store = BaselineStore(root)
        ledger = parse_ledger(_rollbacks(n))
        reads.update(journal=0, meta=0)
        start = time.perf_counter()
        report = store.sync(ledger)
        timings.append(time.perf_counter() - start)
        counts.append(dict(reads))
        assert len(report.items) == (n - 1) // 2
        assert [i.status for i in report.items[:2]] == ["applied", "noop"]
        s = store.suite("support-qa")
        # brute force: one journal entry per ledger revert, in ledger order
        keys = [e.ledger_key for e in s.journal()[3:]]
        assert keys == [f"{rv.transition_index}:{rv.reverted}" for rv in ledger.reverts()]
        assert {i.status for i in store.sync(ledger).items} == {"already"}
        assert store.verify().exit_code() == 0
    assert counts[0] == counts[1]
    assert counts[0]["journal"] == 1
    assert timings[1] < 5.0, f"sync of 10,000 transitions took {timings[1]:.1f}s"


@pytest.mark.parametrize("name", ["qa\n", "qa\r", "v0001\n", "a/b", "..", "-qa", "q" * 101])
def test_suite_names_are_checked_whole(name: str) -> None:
    """A trailing newline must not slip through a ``$``-anchored pattern."""
    from analysis.errors import BaselineError
    from analysis.evals._files import check_suite_name

    with pytest.raises(BaselineError, match="invalid suite name"):
        check_suite_name(name)
