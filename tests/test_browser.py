"""``report.html`` in headless Chromium: no console errors, every plot rendered with a size,
no table wider than its container at 1400 px, and a screenshot saved as a CI artifact
(``.ci/artifacts/report.png``).

Skipped — with the reason printed — when Chromium is not installed (``.ci/run`` installs
Debian's ``chromium`` where it can). The page's own inline script measures every plot's
bounding box and every table's ``scrollWidth`` and ``clientWidth`` after load and writes them
into ``<output id="render-check">``, which ``--dump-dom`` shows; console messages come from
``--enable-logging=stderr``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from analysis.reporting.batch import PLOTS, report

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".ci" / "artifacts"

pytestmark = pytest.mark.browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    reason = (
        "headless Chromium not found (looked for chromium, chromium-browser, google-chrome); "
        "install Debian's `chromium` package (.ci/run does where it can) to run the browser check"
    )
    print(f"SKIPPED test_browser: {reason}")
    pytest.skip(reason)


def _run(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    binary = _chromium()
    out = tmp_path / "report"
    report(out=out)
    url = (out / "report.html").resolve().as_uri()

    dom = _run(binary, tmp_path / "profile", "--window-size=1400,900", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "console messages:\n" + "\n".join(console)
    found = re.search(r'<output id="render-check"[^>]*>(.*?)</output>', dom.stdout, re.DOTALL)
    assert found, "the page's render check did not run"
    check = json.loads(html.unescape(found.group(1)))
    sizes = check["plots"]
    assert [s["id"] for s in sizes] == [
        f"plot-{n.replace('_', '-')}"
        for n in (
            "effects",
            "metric_by_time",
            "contamination",
            "exposure_days",
            "recovery",
            "cache",
            "baselines",
        )
    ]
    assert len(sizes) == len(PLOTS) - 1  # every plot but the forest plot (needs --segment)
    for s in sizes:
        assert s["width"] > 100, s
        assert s["height"] > 50, s
    # at 1400 px no table scrolls sideways (each table is its own scroll container)
    tables = check["tables"]
    sections = {t["section"] for t in tables}
    assert {"effects", "contamination", "recovery", "cache", "baselines", "notes"} <= sections
    wide = [t for t in tables if t["scrollWidth"] > t["clientWidth"]]
    assert wide == [], f"tables overflow their container at 1400 px: {wide}"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    taken = _run(
        binary, tmp_path / "profile2", "--window-size=1400,7000", f"--screenshot={shot}", url
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def _render_check(binary: str, profile: Path, url: str) -> dict[str, Any]:
    """The page's own render check (plots' sizes, tables' widths) at 1400 px."""
    dom = _run(binary, profile, "--window-size=1400,900", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "console messages:\n" + "\n".join(console)
    found = re.search(r'<output id="render-check"[^>]*>(.*?)</output>', dom.stdout, re.DOTALL)
    assert found, "the page's render check did not run"
    check: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return check


def test_multi_experiment_overview_is_not_clipped(tmp_path: Path) -> None:
    """The overview's headline cells wrap: a long headline (here a failed experiment's error)
    does not make the overview table scroll sideways (issue 20, item 11)."""
    from analysis.metrics._experiments import ExperimentError
    from analysis.reporting._multi import MultiReport
    from analysis.reporting.batch import Report

    binary = _chromium()
    one = report()
    assert isinstance(one, Report)
    error = (
        "events.parquet: no event is tagged with experiment 'exp-old'; the export holds: "
        "exp-17 (76636 events), exp-logs (11900 events), exp-route (9055 events). Check "
        "--experiment and the experiment_id column map"
    )
    multi = MultiReport((one,), (ExperimentError("exp-old", 2, error),), {}, None, None)
    out = tmp_path / "multi"
    multi.write(out)
    check = _render_check(binary, tmp_path / "profile", (out / "report.html").resolve().as_uri())
    overview = [t for t in check["tables"] if t["section"] == "overview"]
    assert overview, check["tables"]
    wide = [t for t in check["tables"] if t["scrollWidth"] > t["clientWidth"]]
    assert wide == [], f"tables overflow their container at 1400 px: {wide}"
