"""No HTML from the data in the Markdown outputs (issue 19, item 8): ``report.md`` of one
experiment and of several escape data-derived text — column names, reasons, contract versions,
consumer names, notes, headlines.

One real run on the sample with a hostile metric column and hostile contract versions, then a
seeded fuzz of the renderers over hostile strings in every text field of the report. The check:
outside code spans, no ``<`` opens a tag, comment or declaration.
"""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import polars as pl
import pytest

from analysis._render import md_cell, md_code, md_text
from analysis.metrics import Ratio
from analysis.reporting._common import Attention
from analysis.reporting.batch import Report, report

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"

HOSTILE = (
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "</td></tr></table><b>",
    "<!-- x -->",
    "<!DOCTYPE html>",
    "<?php ?>",
    "`",
    "``",
    "` <b>` x",
    "|",
    "&lt;",
    "&",
    "\n<p>",
    "\r\n# heading",
    "*",
    "_",
    "[x](javascript:alert(1))",
    "<a href='x'>",
    "<\tdiv>",
    ">",
)
TAG = re.compile(r"<[A-Za-z/!?]")


def _strip_spans(text: str) -> str:
    """``text`` (one inline run) without its code spans: a run of n backticks up to the next
    run of exactly n, left to right (CommonMark); an unmatched run is literal backticks."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "`":
            out.append(text[i])
            i += 1
            continue
        j = i
        while j < len(text) and text[j] == "`":
            j += 1
        fence = text[i:j]
        close = re.compile(rf"(?<!`){fence}(?!`)").search(text, j)
        if close is None:
            out.append(fence)
            i = j
            continue
        i = close.end()
    return "".join(out)


def strip_code_spans(markdown: str) -> str:
    """The text outside code spans, where a renderer would render HTML. Code spans do not cross
    blocks: each line here is one block (the renderers flatten newlines), and each cell of a
    table row is parsed on its own (GFM splits the row at unescaped ``|`` first)."""
    lines = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line)
            lines.append("|".join(_strip_spans(c) for c in cells))
        else:
            lines.append(_strip_spans(line))
    return "\n".join(lines)


def assert_no_tag(markdown: str) -> None:
    outside = strip_code_spans(markdown)
    found = TAG.search(outside)
    assert found is None, outside[max(found.start() - 80, 0) : found.end() + 80]


def hostile(rng: random.Random) -> str:
    return "".join(
        rng.choice(HOSTILE) + rng.choice(("", " ", "x")) for _ in range(rng.randint(1, 4))
    )


def test_strip_code_spans_keeps_what_a_renderer_would_render() -> None:
    assert strip_code_spans("a `<b>` c") == "a  c"
    assert strip_code_spans("a `` x ` <b> `` c") == "a  c"
    assert strip_code_spans("a ` <b>") == "a ` <b>"
    assert strip_code_spans("| ` | <b> ` |") == "| ` | <b> ` |"  # no span across cells


@pytest.mark.parametrize("seed", range(200))
def test_helpers_leave_no_tag(seed: int) -> None:
    rng = random.Random(seed)
    value = hostile(rng)
    assert_no_tag(md_text(value))
    assert_no_tag(md_cell(value))
    assert_no_tag(f"before {md_code(value)} after {md_text(value)}")
    assert "\n" not in md_text(value) + md_cell(value) + md_code(value)


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    """The sample with a metric column named like a tag and contracts that hold HTML."""
    tmp = tmp_path_factory.mktemp("hostile")
    column = "<img src=x onerror=alert(1)>"
    events = pl.read_parquet(SAMPLES / "events.parquet").rename({"helpfulness": column})
    ledger = (SAMPLES / "ledger.yaml").read_text()
    ledger = ledger.replace("r41: {contract: v3}", "r41: {contract: '<script>v3</script>'}")
    ledger = ledger.replace("accepts: [v4]}", "accepts: ['<b>v4</b>']}")
    path = tmp / "ledger.yaml"
    path.write_text(ledger)
    out = tmp / "rep"
    rep = report(events, path, "exp-17", metrics=[Ratio(column, direction="higher")], out=out)
    return rep, out


def test_report_md_of_hostile_data_has_no_tag(hostile_report: tuple[Report, Path]) -> None:
    rep, out = hostile_report
    md = (out / "report.md").read_text()
    assert "&lt;img src=x onerror=alert(1)>" in md  # shown, as text
    assert "&lt;script>v3&lt;/script>" in md  # the contract version, in the risk item
    assert any(a.kind == "contract_risk" for a in rep.attention)
    assert_no_tag(md)


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_report_markdown_over_every_text_field(
    hostile_report: tuple[Report, Path], seed: int
) -> None:
    rep, _ = hostile_report
    rng = random.Random(seed)
    fuzzed = dataclasses.replace(
        rep,
        prompt=hostile(rng),
        headline=hostile(rng),
        attention=tuple(Attention(hostile(rng), hostile(rng)) for _ in range(3)),
        notes=tuple(hostile(rng) for _ in range(3)),
        baselines=tuple(b._replace(detail=hostile(rng), suite=hostile(rng)) for b in rep.baselines),
        contracts=tuple(
            c._replace(name=hostile(rng), contract=hostile(rng), accepts=(hostile(rng),))
            for c in rep.contracts
        ),
    )
    assert_no_tag(fuzzed.to_markdown())


@pytest.mark.parametrize("seed", range(20))
def test_fuzz_multi_experiment_markdown(hostile_report: tuple[Report, Path], seed: int) -> None:
    from analysis.metrics._experiments import ExperimentError
    from analysis.reporting._multi import MultiReport

    rep, _ = hostile_report
    rng = random.Random(seed)
    one = dataclasses.replace(
        rep, headline=hostile(rng), attention=(Attention("srm", hostile(rng)),)
    )
    multi = MultiReport(
        reports=(one,),
        errors=(ExperimentError("exp-x", 2, hostile(rng)),),
        states={"exp-17": hostile(rng), "exp-x": hostile(rng)},
        since=None,
        until=None,
    )
    assert_no_tag(multi.to_markdown())
