"""The batch report on the sample: files, validity, determinism, and one test per section
checking ``report.json`` against the API's own results (not against copied literals)."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import narwhals as nw
import polars as pl
import pytest

from analysis.events.labelling import contamination_summary, split
from analysis.metrics import analyze
from analysis.metrics.definitions import load_metrics
from analysis.reporting.batch import ATTENTION_KINDS, PLOTS, Report, report

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"
RESULT_COLUMNS = [
    "analysis",
    "metric",
    "phase",
    "control",
    "arm",
    "n_control",
    "n_arm",
    "control_mean",
    "arm_mean",
    "effect",
    "effect_ci_lower",
    "effect_ci_upper",
    "rel_effect",
    "rel_effect_ci_lower",
    "rel_effect_ci_upper",
    "pvalue",
    "pvalue_adjusted",
]


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report")


#: A fixed run time: the late-data note names the hours between the window's end and the run, so
#: two reports a clock tick apart could differ in that note.
NOW = "2026-11-30T00:00:00Z"


@pytest.fixture(scope="module")
def rep(out_dir: Path) -> Report:
    return report(out=out_dir, now=NOW)


@pytest.fixture(scope="module")
def data(rep: Report, out_dir: Path) -> dict[str, Any]:
    return json.loads((out_dir / "report.json").read_text())


@pytest.fixture(scope="module")
def sample_split() -> Any:
    return split(SAMPLES / "events.parquet", SAMPLES / "ledger.yaml")


@pytest.fixture(scope="module")
def windowed_split(sample_split: Any) -> Any:
    """The split as the report's own sections read it, cut here with polars independently of
    the report's window code: every event up to the newest, because the sample's window is
    historical (its newest event is far more than --fresh-hours before any run), so no late
    data is left out."""
    from analysis.events.labelling import with_frames

    newest = pl.read_parquet(SAMPLES / "events.parquet")["ts"].max()
    cutoff = newest + dt.timedelta(microseconds=1)
    return with_frames(sample_split, lambda f: f.filter(nw.col("ts") < cutoff))


@pytest.fixture(scope="module")
def api(sample_split: Any) -> Any:
    """The API's analysis, run independently of the report."""
    return analyze(sample_split, metrics=load_metrics(SAMPLES / "metrics.yaml"))


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _same_records(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w)
        for k in w:
            assert _close(g[k], w[k]), (k, g[k], w[k])


# -- files, validity, determinism ---------------------------------------------------------


def test_writes_three_files(out_dir: Path, rep: Report) -> None:
    for name in ("report.html", "report.md", "report.json"):
        assert (out_dir / name).stat().st_size > 0
    assert rep.headline in (out_dir / "report.md").read_text()
    assert rep.headline in (out_dir / "report.html").read_text()


class StrictHTML(HTMLParser):
    """Strict well-formedness: every non-void element closed in order, ids unique."""

    VOID = frozenset(
        ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr")
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: set[str] = set()
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def _id(self, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k == "id" and v is not None:
                if v in self.ids:
                    self.errors.append(f"duplicate id {v!r}")
                self.ids.add(v)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._id(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._id(attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()


def test_html_is_valid_self_contained_and_small(out_dir: Path) -> None:
    text = (out_dir / "report.html").read_text()
    parser = StrictHTML()
    parser.feed(text)
    parser.close()
    assert parser.doctype
    assert parser.errors == []
    assert parser.stack == []
    assert "http" not in text.lower()
    for tag in ("<img", "<link", "src="):
        assert tag not in text
    assert len(text.encode()) < 2_000_000
    shown = [p for p in PLOTS if p != "segments"]  # the forest plot needs --segment
    assert text.count("<svg") == len(shown)
    for name in shown:
        assert f"id='plot-{name.replace('_', '-')}'" in text
    assert "id='plot-segments'" not in text


def test_html_parses_with_html5lib_when_available(out_dir: Path) -> None:
    html5lib = pytest.importorskip("html5lib", reason="html5lib is not installed")
    parser = html5lib.HTMLParser(strict=True)
    parser.parse((out_dir / "report.html").read_text())


def test_output_is_deterministic(tmp_path: Path, out_dir: Path) -> None:
    report(out=tmp_path, now=NOW)
    for name in ("report.html", "report.md", "report.json"):
        assert (tmp_path / name).read_bytes() == (out_dir / name).read_bytes(), name


# -- sections vs the API ------------------------------------------------------------------


def test_headline_uses_api_numbers(rep: Report, api: Any, sample_split: Any) -> None:
    from analysis._render import fmt

    clean = api.effect("helpfulness", analysis="clean", phase="combined")
    naive = api.effect("helpfulness", analysis="naive", phase="pooled")
    share = contamination_summary(sample_split).contaminated_share("treatment")
    assert rep.headline.startswith("clean effect of r42 on helpfulness: ")
    assert fmt(clean.effect).replace("-", "−") in rep.headline
    assert fmt(clean.effect_ci_lower).replace("-", "−") in rep.headline
    assert f"naive dashboard said {fmt(naive.effect).replace('-', '−')}" in rep.headline
    # the relative effect follows the absolute one, to one decimal of a percent
    rel = f"{fmt(clean.effect).replace('-', '−')} ({clean.rel_effect * 100:.1f}%)"
    assert rel.replace("-", "−") in rep.headline
    assert clean.rel_effect == pytest.approx(
        (clean.arm_mean - clean.control_mean) / clean.control_mean, rel=0.2
    )
    assert f"({naive.rel_effect * 100:.1f}%)".replace("-", "−") in rep.headline
    assert f"{share:.0%} of treatment events were contaminated, mostly after_end" in rep.headline


def test_effects_section_matches_analyze(data: dict[str, Any], api: Any) -> None:
    assert list(data["effects"][0])[: len(RESULT_COLUMNS)] == RESULT_COLUMNS
    _same_records(data["effects"], json.loads(json.dumps(api.effects.to_records())))
    _same_records(data["srm"], api.srm.to_records())
    _same_records(data["explain"], api.explain.to_records())
    _same_records(data["exclusions"], api.exclusions.to_records())


def test_contamination_section_matches_summary(data: dict[str, Any], windowed_split: Any) -> None:
    want = contamination_summary(windowed_split)
    got = data["contamination"]
    assert got["n_events"] == want.n_events
    keys = ("phase", "phase_kind", "arm", "label", "n_events", "share")
    _same_records(got["rows"], [{k: getattr(r, k) for k in keys} for r in want.rows])


def test_recovery_section_matches_analyze(data: dict[str, Any], api: Any) -> None:
    _same_records(data["recovery"], api.recovery.to_records())
    _same_records(data["recovery_summary"], api.recovery_summary.to_records())
    assert data["recovery_summary"], "the sample was rolled back: recovery must be reported"


def test_metric_by_time_matches_brute_force(data: dict[str, Any], windowed_split: Any) -> None:
    frame = windowed_split.frame.to_native().collect()
    frame = frame.with_columns(
        pl.when(pl.col("experiment_id") == "exp-17")
        .then(pl.col("arm"))
        .otherwise(pl.lit("untagged"))
        .fill_null("untagged")
        .alias("tag"),
        pl.col("ts").dt.truncate("1h").alias("bin"),
    )
    want = (
        frame.filter(pl.col("helpfulness").is_not_null())
        .group_by("tag", "bin")
        .agg(pl.len().alias("n"), pl.col("helpfulness").mean().alias("mean"))
    )
    got = [r for r in data["metric_by_time"] if r["metric"] == "helpfulness"]
    assert len(got) == want.height
    lookup = {(r["tag"], r["bin"].isoformat()): r for r in want.iter_rows(named=True)}
    for r in got:
        w = lookup[(r["arm"], r["bin_start"])]
        assert r["n_events"] == w["n"]
        assert r["value"] == pytest.approx(w["mean"], rel=1e-9)
        if r["n_events"] >= 2 and r["ci_lower"] is not None:
            assert r["ci_lower"] <= r["value"] <= r["ci_upper"]
    shares = [r for r in data["metric_by_time"] if r["metric"] == "thumbs_up"]
    assert all(0 <= r["value"] <= 1 for r in shares)


def test_cache_section_matches_brute_force(data: dict[str, Any], sample_split: Any) -> None:
    frame = sample_split.frame.to_native().collect()
    rows = data["cache"]
    assert {r["action"] for r in rows} == {"start", "ramp", "rollback"}
    for r in rows[:: max(len(rows) // 15, 1)]:
        at = dt.datetime.fromisoformat(r["at"])
        start = at + dt.timedelta(minutes=r["minutes"])
        sub = frame.filter(
            (pl.col("ts") >= start)
            & (pl.col("ts") < start + dt.timedelta(minutes=10))
            & (pl.col("served_revision") == r["served_revision"])
        )
        assert sub.height == r["n_events"]
        assert sub["cache_hit"].cast(pl.Float64).mean() == pytest.approx(r["hit_rate"])
        assert sub["cost_usd"].mean() == pytest.approx(r["cost_mean"])


def test_baselines_section_matches_store_and_ledger(data: dict[str, Any], ledger: Any) -> None:
    from analysis.evals.store import BaselineStore

    store = BaselineStore(ROOT / "baselines")
    assert [b["suite"] for b in data["baselines"]] == sorted(store.suite_names())
    for b in data["baselines"]:
        suite = store.suite(b["suite"])
        ref = suite.reference()
        live = ledger.live_revision(suite.config.prompt)
        assert (b["version"], b["revision"], b["pinned"]) == (ref.version, ref.revision, ref.pinned)
        assert b["live_revision"] == live
        assert b["status"] == ("ok" if ref.revision == live else "stale")
        assert [e["seq"] for e in b["journal"]] == [e.seq for e in suite.journal()]
    kinds = {a["kind"] for a in data["attention"]}
    stale = any(b["status"] == "stale" for b in data["baselines"])
    assert ("stale_baseline" in kinds) == stale


def test_contracts_section_matches_ledger(data: dict[str, Any], ledger: Any) -> None:
    live = ledger.live_revision("support-assistant")
    contract = ledger.revisions[live].contract
    want = {
        n: ("ok" if contract in c.accepts else "risk")
        for n, c in ledger.consumers.items()
        if c.prompt == "support-assistant"
    }
    assert {c["name"]: c["status"] for c in data["contracts"]} == want
    risky = [a for a in data["attention"] if a["kind"] == "contract_risk"]
    assert len(risky) == sum(s == "risk" for s in want.values())


def test_attention_and_exit_code(data: dict[str, Any], api: Any) -> None:
    kinds = [a["kind"] for a in data["attention"]]
    assert set(kinds) <= set(ATTENTION_KINDS)
    regressions = [
        r
        for r in api.effects.rows
        if r.analysis == "clean" and r.phase == "combined" and r.significant and r.better is False
    ]
    assert kinds.count("regression") == len(regressions)
    assert kinds.count("srm") == len({r.phase for r in api.srm.rows if r.mismatch})
    assert data["exit_code"] == (1 if kinds else 0)
    assert data["ok"] is (not kinds)


def test_figures_from_report(rep: Report) -> None:
    from matplotlib.figure import Figure

    for name in PLOTS:
        assert isinstance(rep.figure(name), Figure)
    with pytest.raises(KeyError):
        rep.figure("nope")


# -- CLI ----------------------------------------------------------------------------------


def test_cli_no_arguments_writes_default_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["report"])
    assert code == 1  # the sample has a stale baseline, a contract risk and a regression
    for name in ("report.html", "report.md", "report.json"):
        assert (tmp_path / "promptstate-report" / name).is_file()


def test_cli_exit_0_when_nothing_needs_attention(tmp_path: Path) -> None:
    import yaml

    from analysis.cli import main

    led = yaml.safe_load((SAMPLES / "ledger.yaml").read_text())
    led["consumers"].pop("ticket-router")
    (tmp_path / "ledger.yaml").write_text(yaml.safe_dump(led))
    (tmp_path / "metrics.yaml").write_text(
        "metrics:\n  - {type: mean, column: cost_usd, direction: lower, cuped: true}\n"
    )
    (tmp_path / "store").mkdir()
    out = tmp_path / "out"
    code = main(
        [
            "report",
            str(SAMPLES / "events.parquet"),
            "--ledger",
            str(tmp_path / "ledger.yaml"),
            "--metrics",
            str(tmp_path / "metrics.yaml"),
            "--store",
            str(tmp_path / "store"),
            "--out",
            str(out),
        ]
    )
    data = json.loads((out / "report.json").read_text())
    assert data["attention"] == []
    assert code == 0


def test_cli_stale_baseline_fixed_by_sync(tmp_path: Path) -> None:
    from analysis.cli import main
    from analysis.evals.store import BaselineStore
    from analysis.ledger import load_ledger

    store = tmp_path / "store"
    shutil.copytree(ROOT / "baselines", store)
    BaselineStore(store).sync(load_ledger(SAMPLES / "ledger.yaml"))
    out = tmp_path / "out"
    main(["report", str(SAMPLES / "events.parquet"), "--ledger", str(SAMPLES / "ledger.yaml"),
          "--metrics", str(SAMPLES / "metrics.yaml"), "--store", str(store), "--out", str(out)])  # fmt: skip
    data = json.loads((out / "report.json").read_text())
    assert all(b["status"] == "ok" for b in data["baselines"])
    assert "stale_baseline" not in {a["kind"] for a in data["attention"]}


@pytest.mark.parametrize(
    "args",
    [
        ["report", "missing.parquet", "--ledger", "missing.yaml"],
        ["report", "--since", "yesterday"],
        ["report", "--since", "2026-11-03T00:00:00Z", "--until", "2026-11-02T00:00:00Z"],
        ["report", "--store", "no-such-store"],
    ],
)
def test_cli_bad_input_exits_2(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(args) == 2


def test_since_until_restrict_the_analysed_events(tmp_path: Path) -> None:
    rep = report(since="2026-11-02T00:00:00Z", until="2026-11-03T08:15:00Z")
    times = [r.bin_start for r in rep.timeseries]
    assert min(times).isoformat().startswith("2026-11-02T00")
    assert max(times).isoformat() < "2026-11-03T08:15"
    assert not len(rep.analysis.recovery_summary)
    assert any("restricted" in n for n in rep.notes)


def test_cli_invalid_baseline_store_is_attention_not_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tampered store seen by ``report`` needs attention (exit 1), the report is still
    written; exit 3 is for gate / baseline verify / baseline sync only."""
    from analysis.cli import main

    store = tmp_path / "store"
    shutil.copytree(ROOT / "baselines", store)
    (store / "support-qa" / "journal.jsonl").write_text('{"seq": 1}\n')
    out = tmp_path / "out"
    code = main(["report", str(SAMPLES / "events.parquet"), "--ledger", str(SAMPLES / "ledger.yaml"),
                 "--metrics", str(SAMPLES / "metrics.yaml"), "--store", str(store),
                 "--out", str(out)])  # fmt: skip
    assert code == 1
    data = json.loads((out / "report.json").read_text())
    (suite,) = data["baselines"]
    assert suite["status"] == "invalid"
    assert "journal.jsonl" in suite["detail"]
    assert "invalid_baseline" in {a["kind"] for a in data["attention"]}
    assert "[invalid_baseline]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--alpha", "nan"],
        ["report", "--alpha", "1"],
        ["report", "--crossover-threshold", "-0.5"],
        ["report", "--out", "data_samples"],  # the input directory of the default sample
    ],
)
def test_cli_bad_options_exit_2_and_write_nothing(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.cli import main

    monkeypatch.chdir(tmp_path)
    if "data_samples" in args:
        args = [*args[:-1], str(SAMPLES)]
        args = [args[0], str(SAMPLES), "--ledger", str(SAMPLES / "ledger.yaml"), *args[1:]]
    before = sorted(p.name for p in SAMPLES.iterdir())
    assert main(args) == 2
    assert list(tmp_path.iterdir()) == []
    assert sorted(p.name for p in SAMPLES.iterdir()) == before


def test_every_alert_of_analyze_has_an_attention_kind() -> None:
    """Each alert opening that analyze writes maps to its own attention kind (never silently
    to another: a missing-values alert used to show as an SRM)."""
    from analysis.reporting._common import _alert_kind

    cases = {
        "sample ratio mismatch in phase 1: newly enrolled control=1, treatment=9 (p=0.001)": "srm",
        "crossover units are 3.0% of enrolled units (threshold 2.0%): check": "crossover",
        "crossover within phase 2: 12 of 1,445 units (0.8%) carry two arms": "crossover",
        "crossover from phase 1 to 2: 300 of 900 control units (33%) moved": "crossover",
        "missing values: helpfulness has NaN/inf/null values in 2.0% of the clean": (
            "missing_values"
        ),
    }
    for alert, kind in cases.items():
        assert _alert_kind(alert) == kind
        assert kind in ATTENTION_KINDS
    with pytest.raises(ValueError, match="unknown alert kind"):
        _alert_kind("something new")


# -- issue 11: what a person reads -----------------------------------------------------------


def test_stale_advice_names_the_real_paths_and_works(tmp_path: Path) -> None:
    """The stale-baseline advice is a command that runs as printed (real ledger and store)
    and, once run, the baseline is no longer stale."""
    import shlex

    from analysis.cli import main

    store = tmp_path / "my store"  # a space: the advice must quote it
    shutil.copytree(ROOT / "baselines", store)
    args = ["--ledger", str(SAMPLES / "ledger.yaml"), "--metrics", str(SAMPLES / "metrics.yaml")]
    stale = report(SAMPLES / "events.parquet", args[1], metrics=args[3], store=store)
    (entry,) = [b for b in stale.baselines if b.status == "stale"]
    assert "LEDGER" not in entry.detail
    command = shlex.split(entry.detail.split("`")[1])
    assert command[:3] == ["promptstate", "baseline", "sync"]
    assert command[command.index("--ledger") + 1] == str(SAMPLES / "ledger.yaml")
    assert command[command.index("--store") + 1] == str(store)
    assert main(command[1:]) == 0
    fixed = report(SAMPLES / "events.parquet", args[1], metrics=args[3], store=store)
    assert all(b.status == "ok" for b in fixed.baselines)


def test_recovery_plot_holds_every_interval(rep: Report) -> None:
    from analysis.reporting.plots import draw_recovery

    rows = [r for r in rep.analysis.recovery.rows if r.bin is not None]
    fig = draw_recovery(rows)
    names = list(dict.fromkeys(r.metric for r in rows))
    assert len(fig.axes) == len(names) > 0
    for ax, name in zip(fig.axes, names, strict=True):
        lo, hi = ax.get_ylim()
        bounds = [
            v
            for r in rows
            if r.metric == name and math.isfinite(r.effect)
            for v in (r.effect, r.effect_ci_lower, r.effect_ci_upper)
            if math.isfinite(v)
        ]
        assert bounds
        assert lo < min(bounds), (name, lo, min(bounds))
        assert max(bounds) < hi, (name, hi, max(bounds))


def test_metrics_say_what_they_are_measured_on(rep: Report, out_dir: Path) -> None:
    """The effects table says per user / per turn; the time plot says share of / per turn."""
    from analysis.metrics.definitions import Mean, Proportion, Quantile, Ratio
    from analysis.reporting._html import _effect_html_rows
    from analysis.reporting.plots import _metric_unit

    want = {Proportion: "share of users", Ratio: "per turn", Mean: "per user"}
    kinds = {m.label: m for m in rep.metrics}
    rows = _effect_html_rows(rep)
    assert {r["metric"] for r in rows} == set(kinds)
    for r in rows:
        m = kinds[r["metric"]]
        expected = (
            f"p{m.q * 100:g} of turns" if isinstance(m, Quantile) else want[type(m)]  # type: ignore[attr-defined]
        )
        assert r["measured on"] == expected
        assert f"<td>{r['metric']}</td><td>{expected}</td>" in (out_dir / "report.html").read_text()
    assert _metric_unit(Proportion("thumbs_up")) == "share of turns"
    assert _metric_unit(Mean("cost_usd")) == "mean per turn"
    # the two thumbs_up numbers differ because they are different estimands: share of users
    # with any thumbs-up (effects) vs share of turns (time plot), here recomputed from events
    events = pl.read_parquet(SAMPLES / "events.parquet")
    control = events.filter(pl.col("arm") == "control")
    per_turn = float((control["thumbs_up"].fill_null(0) != 0).mean())  # type: ignore[arg-type]
    per_user = float(
        control.group_by("user_id")
        .agg((pl.col("thumbs_up").fill_null(0) != 0).any())["thumbs_up"]
        .mean()  # type: ignore[arg-type]
    )
    assert per_user > per_turn + 0.2


def test_html_effects_table_keeps_the_reader_columns(rep: Report, out_dir: Path) -> None:
    from analysis.reporting._html import EFFECT_HTML, _effect_html_rows

    page = (out_dir / "report.html").read_text()
    header = "".join(f"<th>{c}</th>" for c in EFFECT_HTML)
    assert header in page
    effects = rep.analysis.effects.to_dicts()
    rows = _effect_html_rows(rep)
    assert len(rows) == len(effects)
    from analysis._render import fmt

    for got, r in zip(rows, effects, strict=True):
        assert got["relative"] == r["rel_effect"]
        assert got["p adjusted"] == r["pvalue_adjusted"]
        assert got["95% CI"] == f"[{fmt(r['effect_ci_lower'])},\u00a0{fmt(r['effect_ci_upper'])}]"
    # the full set stays in report.json
    data = json.loads((out_dir / "report.json").read_text())
    assert {"effect_ci_lower", "rel_effect", "pvalue_adjusted", "se"} <= set(data["effects"][0])


def test_completeness_findings_lead_the_report(tmp_path: Path) -> None:
    """Issue 14: an export with a 12-hour hole in one arm's logging: the report's attention
    list starts with the completeness findings (window and arm named), exit code 1; the HTML
    and Markdown show the findings table and the JSON carries them."""
    from test_completeness import HOLE, LEDGER, generate

    from analysis.metrics import Ratio

    ledger = tmp_path / "ledger.yaml"
    ledger.write_text(LEDGER)
    holed = generate(n_units=6000, seed=4, hole=HOLE)
    rep = report(holed, ledger, metrics=[Ratio("score")], out=tmp_path / "out")
    assert isinstance(rep, Report)
    kinds = [a.kind for a in rep.attention]
    n = len(rep.analysis.completeness)
    assert n >= 1
    assert kinds[:n] == ["completeness"] * n
    assert "completeness" not in kinds[n:]
    assert "arm variant" in rep.attention[0].message
    assert HOLE[1].isoformat() in " ".join(a.message for a in rep.attention[:n])
    assert rep.exit_code == 1
    page = (tmp_path / "out" / "report.html").read_text()
    assert "id='completeness'" in page
    assert page.index("Needs attention") < page.index("id='completeness'")
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert next(iter(data)) == "schema_version"
    assert [r["kind"] for r in data["completeness"]] == [
        r.kind for r in rep.analysis.completeness.rows
    ]
    assert "### Completeness and freshness" in (tmp_path / "out" / "report.md").read_text()
    clean = report(generate(n_units=6000, seed=4), ledger, metrics=[Ratio("score")])
    assert isinstance(clean, Report)
    assert "completeness" not in [a.kind for a in clean.attention]


def test_store_lookup_follows_locate_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report finds its store like every store command (analysis.evals.locate_store):
    PROMPTSTATE_STORE is used; with nothing found, no baseline section and a note that names
    the lookup order."""
    events, ledger = SAMPLES / "events.parquet", SAMPLES / "ledger.yaml"
    metrics = SAMPLES / "metrics.yaml"
    monkeypatch.chdir(tmp_path)  # no ./baselines, no pyproject.toml with [tool.promptstate]
    monkeypatch.delenv("PROMPTSTATE_STORE", raising=False)
    none = report(events, ledger, metrics=metrics)
    assert isinstance(none, Report)
    assert none.baselines == ()
    note = next(n for n in none.notes if n.startswith("baseline section left out"))
    for way in ("--store", "PROMPTSTATE_STORE", "pyproject.toml", "./baselines"):
        assert way in note
    store = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "baselines", store)
    monkeypatch.setenv("PROMPTSTATE_STORE", str(store))
    found = report(events, ledger, metrics=metrics)
    assert isinstance(found, Report)
    assert found.inputs["store"] == str(store)
    assert found.inputs["store_source"] == "PROMPTSTATE_STORE"
    assert [b.suite for b in found.baselines] == sorted(
        p.name for p in store.iterdir() if p.is_dir()
    )
