"""The report's presentation (issues 19 and 20): exports with one arm, windows without the
experiment, no empty headline, optional-column panels said once, no matplotlib message on
stderr, and the sample report's words (method, thresholds, per unit vs per turn, two clean
numbers, empty cells). Numbers are recomputed from the API, not copied."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis._render import fmt
from analysis.cli import main
from analysis.metrics import Ratio
from analysis.reporting.batch import Report, report

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"
LEDGER = SAMPLES / "ledger.yaml"
METRICS = SAMPLES / "metrics.yaml"
EMPTY_NUMBER = re.compile(r"\[\s*,\s*\]|:\s{2,}|said\s*;|said\s*$")


def _page(path: Path) -> Any:
    html5lib = pytest.importorskip("html5lib", reason="html5lib is not installed")
    return html5lib.parse(path.read_text(), namespaceHTMLElements=False)


def _section(doc: Any, sid: str) -> Any:
    found = [s for s in doc.iter("section") if s.get("id") == sid]
    assert found, f"no section {sid}"
    return found[0]


def _text(el: Any) -> str:
    return " ".join("".join(el.itertext()).split())


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    from analysis.reporting._plotkit import MATPLOTLIB_MESSAGES

    out = tmp_path_factory.mktemp("sample-report")
    MATPLOTLIB_MESSAGES.clear()
    rep = report(out=out)
    assert isinstance(rep, Report)
    assert [m for m in MATPLOTLIB_MESSAGES if "Warning" in m] == []  # drawing warned nothing
    return rep, out


# -- one arm only (issue 19, item 4) --------------------------------------------------------


@pytest.mark.parametrize(("kept", "missing"), [("treatment", "control"), ("control", "treatment")])
def test_one_arm_export_exits_1_with_srm_and_says_which_arm_is_missing(
    kept: str, missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "events.parquet"
    pl.read_parquet(SAMPLES / "events.parquet").filter(pl.col("arm") == kept).write_parquet(export)
    out = tmp_path / "rep"
    code = main(["report", str(export), "--ledger", str(LEDGER), "--metrics", str(METRICS),
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    assert "internal error" not in err
    assert "[srm] sample ratio mismatch" in err
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    doc = _page(out / "report.html")
    headline = _text(next(p for p in doc.iter("p") if p.get("id") == "headline"))
    assert f"arm {missing} has no events" in headline
    assert not EMPTY_NUMBER.search(headline), headline
    effects = _section(doc, "effects")
    assert effects.find(".//figure") is None  # the forest plot needs both arms
    assert f"No effects plot: arm {missing} has no events" in _text(effects)
    recovery = _section(doc, "recovery")
    if kept == "treatment":  # no never-exposed units at all after the rollback
        assert recovery.find(".//figure") is None
        assert "No recovery plot: no never-exposed units" in _text(recovery)
    md = (out / "report.md").read_text()
    assert f"No effects plot: arm {missing} has no events" in md


def test_recovery_plot_without_a_reference_draws_a_line_not_a_crash() -> None:
    """The crash of issue 19: NaN margin and effects (no never-exposed units)."""
    from datetime import UTC, datetime

    from analysis.metrics.recovery import RecoveryRow
    from analysis.reporting.plots import draw_recovery

    at = datetime(2026, 1, 1, tzinfo=UTC)
    nan = math.nan
    fields = ("m", "exposed", "never_exposed")
    rows = [
        RecoveryRow(*fields, b, 2.0 * b, at, 10, 0, 1.0, nan, nan, nan, nan, nan, nan, False)
        for b in (0, 1, 2)
    ]
    fig = draw_recovery(rows)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no never-exposed units" in t for t in texts)


# -- no empty headline (issue 20, item 4) ---------------------------------------------------


def test_window_after_the_end_says_why_there_is_no_clean_number() -> None:
    ledger_end = "2026-11-03T08:15:00+00:00"
    rep = report(SAMPLES / "events.parquet", LEDGER, "exp-17", metrics=METRICS,
                 since="2026-11-04T00:00:00Z")  # fmt: skip
    assert not EMPTY_NUMBER.search(rep.headline), rep.headline
    assert rep.headline.startswith("no clean effect of r42 on helpfulness: the experiment ended")
    assert ledger_end in rep.headline
    md = rep.to_markdown()
    assert "[, ]" not in md


def test_overview_headline_of_an_experiment_without_a_clean_number_says_why() -> None:
    from analysis.reporting._multi import MultiReport

    rep = report(SAMPLES / "events.parquet", LEDGER, "exp-17", metrics=METRICS,
                 since="2026-11-04T00:00:00Z")  # fmt: skip
    assert isinstance(rep, Report)
    (row,) = MultiReport((rep,), (), {}, None, None).overview()
    assert not EMPTY_NUMBER.search(row.headline), row.headline
    assert "the experiment ended at" in row.headline


def test_window_before_the_start_says_why() -> None:
    rep = report(SAMPLES / "events.parquet", LEDGER, "exp-17", metrics=METRICS,
                 until="2026-11-02T08:00:00Z")  # fmt: skip
    assert not EMPTY_NUMBER.search(rep.headline), rep.headline
    assert "before the experiment started at 2026-11-02T09:00:00+00:00" in rep.headline


# -- optional columns said once (issue 20, item 8) ------------------------------------------


def test_panels_without_their_optional_columns_say_so_once(tmp_path: Path) -> None:
    events = pl.read_parquet(SAMPLES / "events.parquet").drop("cache_hit", "cost_usd")
    out = tmp_path / "rep"
    rep = report(events, LEDGER, "exp-17", metrics=[Ratio("helpfulness", direction="higher")],
                 out=out)  # fmt: skip
    page = (out / "report.html").read_text()
    assert "no cache_hit / cost_usd columns" not in page
    cache = _section(_page(out / "report.html"), "cache")
    assert cache.find(".//figure") is None
    line = _text(cache)
    assert line.count("the export has no cache_hit or cost_usd column") == 1
    assert "cache_hit: a boolean per event, for the hit rate" in line
    assert "cost_usd: a number per event, for the cost per event" in line
    md = (out / "report.md").read_text()
    assert md.count("the export has no cache_hit or cost_usd column") == 1
    assert not rep.cache


def test_cache_plot_without_rows_is_one_panel() -> None:
    from analysis.reporting.plots import draw_cache

    fig = draw_cache([], [])
    assert len(fig.axes) == 1
    assert sum("cache_hit" in t.get_text() for t in fig.axes[0].texts) == 1


# -- no matplotlib message on stderr (issue 20, item 11) ------------------------------------


def test_report_prints_no_matplotlib_message_with_an_unwritable_home(tmp_path: Path) -> None:
    """A cron job's HOME that cannot hold matplotlib's cache: matplotlib logs a warning on
    stderr at import; the report keeps it off stderr."""
    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"}
    env.update(HOME="/proc/promptstate-no-home", XDG_CONFIG_HOME="/proc/promptstate-no-home",
               XDG_CACHE_HOME="/proc/promptstate-no-home")  # fmt: skip
    code = "import sys; from analysis.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "report", "--out", str(tmp_path / "rep")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert "matplotlib" not in done.stderr.lower(), done.stderr[-2000:]
    assert (tmp_path / "rep" / "report.html").exists()


def test_matplotlib_warnings_are_kept_off_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    import logging

    from analysis.reporting._plotkit import MATPLOTLIB_MESSAGES, style

    with style():
        logging.getLogger("matplotlib.font_manager").warning("building the font cache")
    assert "building the font cache" in MATPLOTLIB_MESSAGES[-1]
    assert "font cache" not in capfd.readouterr().err


# -- the multi-experiment overview (issue 20, item 11) --------------------------------------


def test_overview_cells_wrap_so_a_long_headline_is_not_clipped(
    sample: tuple[Report, Path],
) -> None:
    from analysis.metrics._experiments import ExperimentError
    from analysis.reporting._multi import MultiReport

    rep, _ = sample
    long = "events.parquet: no event is tagged with experiment 'exp-old'; " * 4
    multi = MultiReport((rep,), (ExperimentError("exp-old", 2, long),), {}, None, None)
    page = multi.to_html()
    css = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    assert css is not None
    assert re.search(r"#overview td\{[^}]*white-space:normal", css.group(1))


# -- the sample report's words (issue 20, item 7) -------------------------------------------


def test_effects_caption_names_the_method_as_run(sample: tuple[Report, Path]) -> None:
    rep, out = sample
    text = _text(_section(_page(out / "report.html"), "effects"))
    hours = rep.analysis.options["block_hours"]
    assert f"compared within {fmt(float(hours))}-hour time strata inside each exposure phase" in (
        text
    )
    assert "stratified by enrollment cohort" not in text
    nb = (ROOT / "notebooks" / "01-why-the-dashboard-did-not-recover.ipynb").read_text()
    assert "stratified by enrollment cohort" not in nb
    assert "6-hour time strata" in nb


def test_srm_threshold_stands_beside_the_p_value(sample: tuple[Report, Path]) -> None:
    rep, out = sample
    effects = _section(_page(out / "report.html"), "effects")
    table = next(t for t in effects.iter("table") if "Sample ratio" in _text(t.find("caption")))
    head = [_text(th) for th in table.iter("th")]
    assert head.index("threshold") == head.index("pvalue") + 1
    assert head[head.index("threshold") + 1] == "mismatch (p < threshold)"
    cells = [[_text(td) for td in tr.iter("td")] for tr in table.find("tbody").iter("tr")]
    threshold = rep.inputs["srm_threshold"]
    for row, srm in zip(cells, rep.analysis.srm.to_dicts(), strict=True):
        assert row[head.index("threshold")] == fmt(threshold)
        assert row[head.index("pvalue")] == fmt(srm["pvalue"])
        assert row[-1] == fmt(srm["pvalue"] < threshold)


def test_the_two_clean_numbers_are_explained(sample: tuple[Report, Path]) -> None:
    rep, out = sample
    step0: Any = next(r for r in rep.analysis.explain.rows if getattr(r, "step", None) == 0)
    clean = rep.analysis.effect(step0.metric, analysis="clean", phase="combined", arm=step0.arm)
    assert not math.isclose(step0.effect, clean.effect)  # two numbers: both must be named
    for text in (_text(_section(_page(out / "report.html"), "effects")),
                 (out / "report.md").read_text()):  # fmt: skip
        assert "Two clean numbers, one estimand" in text
        assert fmt(step0.effect).replace("-", "−") in text
        assert fmt(clean.effect).replace("-", "−") in text
        assert "time strata" in text


def test_per_user_and_per_turn_are_stated_where_both_appear(sample: tuple[Report, Path]) -> None:
    _, out = sample
    doc = _page(out / "report.html")
    by_time = _text(_section(doc, "metric_by_time"))
    assert "cost_usd is per user in the effects table and mean per turn here" in by_time
    assert "thumbs_up is share of users in the effects table and share of turns here" in by_time
    assert "the effects table's cost_usd is per user" in _text(_section(doc, "cache"))
    md = (out / "report.md").read_text()
    assert "| analysis | metric | measured_on |" in md
    assert re.search(r"\| clean \| cost_usd \| per user \|", md)


def test_an_empty_recovered_after_hours_is_explained(sample: tuple[Report, Path]) -> None:
    rep, out = sample
    rows_: list[Any] = list(rep.analysis.recovery_summary.rows)
    never = [r for r in rows_ if r.recovered_after_hours is None]
    assert never  # the sample has groups still outside the margin
    recovery = _section(_page(out / "report.html"), "recovery")
    table = recovery.find(".//table")
    rows = [[_text(td) for td in tr.iter("td")] for tr in table.find("tbody").iter("tr")]
    explained = [r for r in rows if "not back within ±margin by the last bin" in r]
    assert len(explained) == len(never)
    assert all(r[4] for r in rows)  # no blank recovered_after_hours cell
    assert (out / "report.md").read_text().count("not back within ±margin") == len(never)
