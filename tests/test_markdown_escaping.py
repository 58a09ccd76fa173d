"""Markdown outputs escape HTML from the data: the shared helpers, and the renderings that use
them outside the report (split summary, analyze, rollback plan) — report.md has its own fuzz
test (tests/test_fuzz_markdown.py)."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from analysis._render import md_cell, md_code, md_text, to_markdown
from analysis.cli import main
from analysis.metrics._experiments import headline_effect

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"
TAG = re.compile(r"<[A-Za-z/!]")


def _outside_code(markdown: str) -> str:
    return re.sub(r"(`+)(?:(?!\1).)*?\1", "", markdown)


def test_md_text_leaves_no_tag_and_keeps_arrows() -> None:
    assert md_text("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)>"
    assert md_text("r42 -> r41 & more") == "r42 -> r41 &amp; more"
    assert md_text("a\nb") == "a b"  # one value cannot start a new block


def test_md_cell_escapes_the_pipe() -> None:
    assert md_cell("a|b<c") == "a\\|b&lt;c"
    table = to_markdown([{"<th>": "x|<script>"}], ["<th>"], title="<b>t</b>")
    assert not TAG.search(table)
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert [len(re.findall(r"(?<!\\)\|", line)) for line in rows] == [2, 2, 2]  # one column


@pytest.mark.parametrize(
    ("text", "span"),
    [("a", "`a`"), ("a`b", "``a`b``"), ("``x", "``` ``x ```"), ("<b>", "`<b>`")],
)
def test_md_code_fence_is_longer_than_any_backtick_run(text: str, span: str) -> None:
    assert md_code(text) == span


def test_split_and_plan_markdown_of_hostile_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = (SAMPLES / "ledger.yaml").read_text()
    ledger = ledger.replace("r41: {contract: v3}", "r41: {contract: '<script>v3</script>'}")
    path = tmp_path / "ledger.yaml"
    path.write_text(ledger)
    events = pl.read_parquet(SAMPLES / "events.parquet").rename(
        {"helpfulness": "<img src=x onerror=alert(1)>"}
    )
    events.write_parquet(tmp_path / "events.parquet")
    code = main(["split", str(tmp_path / "events.parquet"), "--ledger", str(path),
                 "--format", "markdown"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert not TAG.search(_outside_code(out))
    code = main(["rollback", "plan", "--ledger", str(SAMPLES / "rollback" / "ledger.yaml"),
                 "--format", "markdown", "--no-recovery"])  # fmt: skip
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "r42 -> r41" in out
    assert not TAG.search(_outside_code(out))


def test_a_headline_without_numbers_says_why() -> None:
    class Row:
        analysis, phase, metric, arm, control = "clean", "combined", "rating", "v8", "control"
        effect = rel_effect = effect_ci_lower = effect_ci_upper = float("nan")
        n_control, n_arm = 40, 0

    class Result:
        class effects:
            rows = (Row(),)

    from analysis.metrics.results import EffectRow

    row = EffectRow(**{f: getattr(Row, f, None) for f in EffectRow._fields})
    Result.effects.rows = (row,)
    text = headline_effect(Result)  # type: ignore[arg-type]
    assert "[, ]" not in text
    assert "fewer than two units" in text
