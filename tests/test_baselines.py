"""The baseline store: operations, journal, reference, revert policies, sync, integrity."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from analysis.cli import main
from analysis.errors import BaselineError, ResultsError
from analysis.evals.store import BaselineStore, Reference, RepairWarning, SuiteConfig
from analysis.ledger import load_ledger, parse_ledger

ROOT = Path(__file__).resolve().parent.parent
EVALS = ROOT / "data_samples" / "evals"
SUITE_YAML = EVALS / "support-qa.suite.yaml"
LEDGER = ROOT / "data_samples" / "ledger.yaml"


def results(
    n: int = 50, shift: float = 0.0, seed: int = 0, grader: str | None = None
) -> pl.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        "example_id": [f"e{i:03d}" for i in range(n)],
        "correct": (rng.random(n) < 0.7 + shift).astype(int),
        "rubric": rng.normal(3.5 + shift, 0.5, n),
    }
    if grader is not None:
        data["grader"] = [grader] * n
    return pl.DataFrame(data)


@pytest.fixture
def store(tmp_path: Path) -> BaselineStore:
    s = BaselineStore(tmp_path / "store")
    s.init("qa", SuiteConfig.load(SUITE_YAML), actor="tester")
    return s


@pytest.fixture
def sample_store(tmp_path: Path) -> BaselineStore:
    """A copy of the committed sample store (state before sync)."""
    dst = tmp_path / "baselines"
    shutil.copytree(ROOT / "baselines", dst)
    return BaselineStore(dst)


def tree_digest(root: Path) -> str:
    """SHA-256 over every path and file content under ``root`` (to prove nothing changed)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def write(df: pl.DataFrame, path: Path) -> Path:
    df.write_parquet(path)
    return path


def test_suite_config_validation(tmp_path: Path) -> None:
    cfg = SuiteConfig.load(SUITE_YAML)
    assert cfg.prompt == "support-assistant"
    assert cfg.on_revert == "pin"
    assert [m.name for m in cfg.metrics] == ["correct", "rubric"]
    assert cfg.metric("correct").kind == "binary"
    assert cfg.metric("rubric").margin == 0.1
    assert SuiteConfig.from_mapping(cfg.to_mapping()) == cfg
    bad = [
        ({"grader": "g", "metrics": {"x": {"margin": 1}}}, "'prompt' is required"),
        ({"prompt": "p", "grader": "g", "metrics": {}}, "'metrics' must map"),
        ({"prompt": "p", "grader": "g", "metrics": {"x": {"margin": 0}}}, "margin must be"),
        (
            {"prompt": "p", "grader": "g", "metrics": {"x": {"margin": 1, "kind": "ordinal"}}},
            "kind must be",
        ),
        (
            {"prompt": "p", "grader": "g", "metrics": {"x": {"margin": 1, "direction": "up"}}},
            "direction must be",
        ),
        (
            {"prompt": "p", "grader": "g", "on_revert": "drop", "metrics": {"x": {"margin": 1}}},
            "on_revert",
        ),
        (
            {"prompt": "p", "grader": "g", "metrics": {"x": {"margin": 1}}, "extra": 1},
            "unknown key",
        ),
        (
            {"prompt": "p", "grader": "g", "metrics": {"x": {"margin": 1}}, "primary": "y"},
            "primary",
        ),
    ]
    for data, msg in bad:
        with pytest.raises(BaselineError, match=msg):
            SuiteConfig.from_mapping(data, where="s.yaml")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(BaselineError, match="not found"):
        SuiteConfig.load(missing)


@pytest.mark.parametrize(
    "name", ["../x", "/abs/path", "a/b", "..", ".hidden", "", "a..b", "x" * 101]
)
def test_suite_names_that_escape_the_store_are_refused(tmp_path: Path, name: str) -> None:
    store = BaselineStore(tmp_path / "store")
    cfg = SuiteConfig.load(SUITE_YAML)
    with pytest.raises(BaselineError, match="invalid suite name"):
        store.init(name, cfg)
    with pytest.raises(BaselineError, match="invalid suite name"):
        store.suite(name)
    assert not (tmp_path / "x").exists()


def test_init_is_idempotent_and_refuses_other_config(store: BaselineStore) -> None:
    cfg = SuiteConfig.load(SUITE_YAML)
    store.init("qa", cfg)
    assert len(store.suite("qa").journal()) == 1
    other = SuiteConfig.from_mapping({**cfg.to_mapping(), "grader": "judge-2027"})
    with pytest.raises(BaselineError, match="already exists"):
        store.init("qa", other)
    with pytest.raises(BaselineError, match=r"no suite 'nope'.*suites: qa"):
        store.suite("nope")


def test_anchor_reanchor_pin_unpin(store: BaselineStore, tmp_path: Path) -> None:
    s = store.suite("qa")
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    v1, ref = s.anchor(
        "r41", write(results(), tmp_path / "a.parquet"), actor="a", at=t0, reason="first"
    )
    assert (v1.id, ref) == ("v0001", Reference("v0001", "r41", False))
    assert v1.parent is None
    assert v1.n_examples == 50
    assert v1.grader == "judge-2026-10"
    v2, ref = s.anchor("r42", results(seed=1), actor="b")
    assert ref == Reference("v0002", "r42", False)
    assert v2.parent == "v0001"
    assert s.pin("v0001", actor="c").pinned
    _v3, ref = s.anchor("r43", results(seed=2))
    assert ref == Reference("v0001", "r41", True), "a pinned reference does not move"
    assert s.unpin().pinned is False
    assert s.reference() == Reference("v0001", "r41", False)
    actions = [e.action for e in s.journal()]
    assert actions == ["init", "anchor", "reanchor", "pin", "anchor", "unpin"]
    assert [v.id for v in s.versions()] == ["v0001", "v0002", "v0003"]
    assert s.journal()[1].actor == "a"
    assert s.journal()[1].reason == "first"
    assert s.journal()[1].at == t0
    assert s.latest_version("r41") == "v0001"
    # reference.json mirrors the journal
    pointer = json.loads((s.path / "reference.json").read_text())
    assert pointer["version"] == "v0001"
    assert pointer["journal_seq"] == 6
    # scores round-trip
    scores = s.scores("v0001")
    assert scores.metrics == ("correct", "rubric")
    assert scores.n_examples == 50
    with pytest.raises(BaselineError, match="no version 'v0009'"):
        s.version("v0009")


def test_actor_from_environment(store: BaselineStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTSTATE_ACTOR", "ci-bot")
    s = store.suite("qa")
    s.anchor("r41", results())
    assert s.journal()[-1].actor == "ci-bot"
    monkeypatch.delenv("PROMPTSTATE_ACTOR")
    monkeypatch.setenv("USER", "alice")
    s.pin()
    assert s.journal()[-1].actor == "alice"


def test_anchor_validates_results(store: BaselineStore) -> None:
    s = store.suite("qa")
    with pytest.raises(ResultsError, match="missing metric"):
        s.anchor("r41", results().drop("rubric"))
    with pytest.raises(ResultsError, match="binary in the suite"):
        s.anchor("r41", results().with_columns(pl.col("correct") * 2))
    with pytest.raises(ResultsError, match="graded by 'other'"):
        s.anchor("r41", results(grader="other"))
    with pytest.raises(BaselineError, match="revision"):
        s.anchor("", results())
    assert s.versions() == ()


def test_revert_policies(store: BaselineStore) -> None:
    s = store.suite("qa")
    s.anchor("r41", results())
    s.anchor("r42", results(seed=1))
    ref = s.revert("r42", "r41", policy="pin")
    assert ref == Reference("v0001", "r41", True)
    e = s.journal()[-1]
    assert (e.action, e.reverted, e.restored, e.policy) == ("revert", "r42", "r41", "pin")
    with pytest.raises(BaselineError, match="no baseline of r40.*--policy reanchor"):
        s.revert("r41", "r40", policy="pin")
    with pytest.raises(BaselineError, match="needs fresh results"):
        s.revert("r42", "r41", policy="reanchor")
    ref = s.revert("r42", "r41", policy="reanchor", results=results(seed=5))
    assert ref == Reference("v0003", "r41", False)
    assert s.journal()[-1].created
    assert s.version("v0003").parent == "v0001"


def test_sync_pins_and_is_idempotent(sample_store: BaselineStore) -> None:
    ledger = load_ledger(LEDGER)
    s = sample_store.suite("support-qa")
    assert s.reference() == Reference("v0002", "r42", False)
    report = sample_store.sync(ledger)
    assert [(i.status, i.reverted, i.restored, i.version) for i in report.items] == [
        ("applied", "r42", "r41", "v0001")
    ]
    assert s.reference() == Reference("v0001", "r41", True)
    entry = s.journal()[-1]
    assert entry.ledger_key == "3:r42"
    assert entry.action == "revert"
    n = len(s.journal())
    again = sample_store.sync(ledger, ["support-qa"])
    assert [i.status for i in again.items] == ["already"]
    assert len(s.journal()) == n


def test_sync_noop_when_reference_is_not_the_reverted_revision(store: BaselineStore) -> None:
    s = store.suite("qa")
    s.anchor("r41", results())
    report = store.sync(load_ledger(LEDGER))
    assert [i.status for i in report.items] == ["noop"]
    assert s.reference() == Reference("v0001", "r41", False)
    assert [i.status for i in store.sync(load_ledger(LEDGER)).items] == ["already"]


def test_sync_reanchor_policy_is_pending_until_fresh_results(
    tmp_path: Path, sample_store: BaselineStore
) -> None:
    cfg_path = sample_store.root / "support-qa" / "suite.yaml"
    cfg_path.write_text(cfg_path.read_text().replace("on_revert: pin", "on_revert: reanchor"))
    ledger = load_ledger(LEDGER)
    report = sample_store.sync(ledger)
    (item,) = report.pending
    assert item.command is not None
    assert "baseline revert support-qa --reverted r42 --restored r41 --policy reanchor" in (
        item.command
    )
    assert "--ledger-transition 3" in item.command
    assert f"--store {sample_store.root}" in item.command
    code = main(["baseline", "sync", "--ledger", str(LEDGER), "--store", str(sample_store.root)])
    assert code == 3
    # the command printed by sync, run with fresh results
    fresh = EVALS / "support-qa" / "r41.csv"
    argv = item.command.replace("FILE", str(fresh)).split()[1:]
    assert main(argv) == 0
    s = sample_store.suite("support-qa")
    assert s.reference() == Reference("v0003", "r41", False)
    assert [i.status for i in sample_store.sync(ledger).items] == ["already"]


def test_sync_reanchor_accepts_a_fresh_version_anchored_after_the_rollback(
    sample_store: BaselineStore,
) -> None:
    cfg_path = sample_store.root / "support-qa" / "suite.yaml"
    cfg_path.write_text(cfg_path.read_text().replace("on_revert: pin", "on_revert: reanchor"))
    s = sample_store.suite("support-qa")
    # anchored r43?  no: a fresh r41 evaluation after the rollback, without the ledger key
    s.pin("v0002")
    s.unpin()
    s.anchor("r41", EVALS / "support-qa" / "r41.csv", at=datetime(2026, 11, 4, tzinfo=UTC))
    s.anchor("r42", EVALS / "support-qa" / "r42.csv", at=datetime(2026, 11, 4, 1, tzinfo=UTC))
    report = sample_store.sync(load_ledger(LEDGER))
    assert [(i.status, i.version) for i in report.items] == [("applied", "v0003")]
    assert s.reference() == Reference("v0003", "r41", False)


def test_prompt_level_rollback_is_synced(store: BaselineStore) -> None:
    ledger = parse_ledger(
        {
            "version": 1,
            "prompts": {"support-assistant": {"revisions": {"r41": {}, "r42": {"parent": "r41"}}}},
            "transitions": [
                {
                    "at": "2026-11-01T00:00:00Z",
                    "action": "deploy",
                    "prompt": "support-assistant",
                    "revision": "r41",
                },
                {
                    "at": "2026-11-02T00:00:00Z",
                    "action": "deploy",
                    "prompt": "support-assistant",
                    "revision": "r42",
                },
                {
                    "at": "2026-11-03T00:00:00Z",
                    "action": "rollback",
                    "prompt": "support-assistant",
                    "to": "r41",
                },
            ],
        }
    )
    s = store.suite("qa")
    s.anchor("r41", results())
    s.anchor("r42", results(seed=1))
    report = store.sync(ledger)
    assert [(i.status, i.ledger_key) for i in report.items] == [("applied", "2:r42")]
    assert s.reference() == Reference("v0001", "r41", True)


def test_tampered_scores_are_detected(sample_store: BaselineStore) -> None:
    s = sample_store.suite("support-qa")
    path = s.path / "versions" / "v0001" / "scores.parquet"
    df = pl.read_parquet(path).with_columns(pl.lit(1.0).alias("correct"))
    df.write_parquet(path)
    with pytest.raises(
        BaselineError,
        match=r"v0001/scores\.parquet: content hash mismatch.*git "
        r"checkout",
    ):
        s.scores("v0001")
    path.unlink()
    with pytest.raises(BaselineError, match="missing"):
        s.scores("v0001")


def test_tampered_metadata_is_detected(sample_store: BaselineStore) -> None:
    s = sample_store.suite("support-qa")
    meta_path = s.path / "versions" / "v0002" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["scores_sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BaselineError, match="differs from the journal"):
        s.version("v0002")
    meta_path.write_text("{")
    with pytest.raises(BaselineError, match="malformed metadata"):
        s.version("v0002")


def test_corrupt_journal_line_is_an_error(sample_store: BaselineStore) -> None:
    s = sample_store.suite("support-qa")
    lines = s.journal_path.read_text().splitlines(keepends=True)
    s.journal_path.write_text(lines[0] + "garbage\n" + "".join(lines[1:]))
    with pytest.raises(BaselineError, match="line 2 is not a valid journal entry"):
        s.reference()


def test_crash_leftovers_are_ignored_then_repaired(sample_store: BaselineStore) -> None:
    """Torn journal tail, orphan version dir and stale reference.json (a writer that died)."""
    s = sample_store.suite("support-qa")
    before = s.reference()
    with open(s.journal_path, "ab") as fh:
        fh.write(b'{"seq": 4, "action": "reanch')
    orphan = s.path / "versions" / "v0003"
    orphan.mkdir()
    (orphan / "scores.parquet").write_bytes(b"partial")
    (s.path / "reference.json").write_text('{"version": "v0003"}')
    # readers: the journal is the commit log
    assert s.reference() == before
    assert [v.id for v in s.versions()] == ["v0001", "v0002"]
    # the next writer repairs, and says so
    with pytest.warns(RepairWarning) as record:
        meta, _ = s.anchor("r43", EVALS / "support-qa" / "r43.csv")
    assert any("quarantined" in str(w.message) for w in record)
    assert any("v0003: removed" in str(w.message) for w in record)
    (torn,) = (s.path / "quarantine").iterdir()
    assert torn.read_bytes() == b'{"seq": 4, "action": "reanch'
    assert meta.id == "v0003"
    assert s.scores("v0003").n_examples == 1500
    lines = s.journal_path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)
    assert len(lines) == 4
    assert json.loads((s.path / "reference.json").read_text())["version"] == "v0003"


def test_cli_walkthrough(
    sample_store: BaselineStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    st = ["--store", str(sample_store.root)]
    assert main(["baseline", "list", *st]) == 0
    assert "support-qa" in capsys.readouterr().out
    assert main(["baseline", "show", "support-qa", "--format", "json", *st]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reference"] == {"version": "v0002", "revision": "r42", "pinned": False}
    assert main(["baseline", "show", "support-qa", "--version", "v0001", *st]) == 0
    assert "r41" in capsys.readouterr().out
    assert main(["baseline", "history", "support-qa", "--format", "markdown", *st]) == 0
    assert "| reanchor |" in capsys.readouterr().out.replace("  ", " ")
    assert main(["baseline", "sync", "--ledger", str(LEDGER), *st]) == 0
    assert "applied" in capsys.readouterr().out
    assert main(["baseline", "unpin", "support-qa", "--actor", "me", *st]) == 0
    assert main(["baseline", "pin", "support-qa", "--version", "v0001", "--reason", "x", *st]) == 0
    out = capsys.readouterr().out
    assert "pinned to v0001" in out
    new = tmp_path / "suite.yaml"
    new.write_text(SUITE_YAML.read_text())
    assert main(["baseline", "init", "qa2", "--config", str(new), *st]) == 0
    assert (
        main(
            [
                "baseline",
                "anchor",
                "qa2",
                "--revision",
                "r41",
                "--results",
                str(EVALS / "support-qa" / "r41.csv"),
                *st,
            ]
        )
        == 0
    )
    assert "v0001" in capsys.readouterr().out
    # bad input (nothing to pin, a name that escapes the store): exit 2, nothing changed
    before = tree_digest(sample_store.root)
    assert main(["baseline", "revert", "qa2", "--reverted", "r41", "--restored", "r40", *st]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1  # an error is one line (the store is named only on completion)
    assert err[0].startswith("promptstate: error:")
    assert "--policy reanchor" in err[0]
    assert main(["baseline", "init", "../evil", "--config", str(new), *st]) == 2
    assert main(["baseline", "show", "qa2", "--version", "v0009", *st]) == 2
    assert main(["baseline", "pin", "qa2", "--version", "v0009", *st]) == 2
    assert main(["baseline", "anchor", "nope", "--revision", "r", "--results", "x.csv", *st]) == 2
    assert tree_digest(sample_store.root) == before
    assert main(["baseline", "verify", *st]) == 0
