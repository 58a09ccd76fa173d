"""Write the three notebooks of this folder from the cell sources below (outputs empty).

    python notebooks/build_notebooks.py          # rewrite the .ipynb files
    python notebooks/build_notebooks.py --check  # exit 1 if a notebook has outputs or differs

Editing a notebook in Jupyter is fine too: strip its outputs before committing
(``python notebooks/build_notebooks.py --strip``); ``tests/test_notebooks.py`` checks that the
committed notebooks have no outputs and runs each one end to end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SETUP = """\
%matplotlib inline
from pathlib import Path

from analysis import sample

SAMPLE = sample.path()   # the embedded sample: data_samples/ in a checkout, or the installed copy
STORE = sample.store()   # its eval-baseline store (read only here; copied before any write)
"""

WHY = [
    ("md", """\
# Why the dashboard did not recover

On 2026-11-02 `r42` of `support-assistant` went out as a 10% canary (`exp-17`), was ramped to 25%
at 21:00 and rolled back to `r41` the next morning at 08:15. The experiment dashboard showed a
helpfulness drop of about −0.25 — smaller than what users experienced — and after the rollback
the dashboard's treatment line did not come back to control for a day.

This notebook shows why, on the embedded sample: the events are **contaminated** by the rollout
boundaries, the **naive** number mixes them in, and the **recovery** after the rollback depends
on which conversations the exposed users continued."""),
    ("code", SETUP),
    ("md", """\
## 1. Split the export at the rollout boundaries

`split` gives every event a phase (pre, each allocation, after the end) and exactly one
contamination label; `contamination_summary` counts them."""),
    ("code", """\
from analysis import contamination_summary, load_ledger, split

ledger = load_ledger(SAMPLE / "ledger.yaml")
res = split(SAMPLE / "events.parquet", ledger)
summary = contamination_summary(res)
summary"""),
    ("md", """\
Most of the treatment arm's contaminated events are `after_end`: the assignment service kept
tagging turns with `treatment` for up to a day after the rollback, although `r41` served them.
A dashboard that trusts the tag counts them as treatment."""),
    ("code", """\
from analysis import plot_contamination

plot_contamination(summary)"""),
    ("code", """\
from analysis import load_metrics
from analysis import plot_metric_by_time

metrics = load_metrics(SAMPLE / "metrics.yaml")
plot_metric_by_time(res, metrics)"""),
    ("md", """\
## 2. Naive vs clean

`analyze` computes the clean effect per phase and combined — clean events only, compared within
6-hour time strata inside each exposure phase (`block_hours`) and regression-adjusted on each
user's pre-period (CUPED) — next to the naive pooled number, and rebuilds the naive number label
by label (`explain`)."""),
    ("code", """\
from analysis import analyze

result = analyze(res, metrics=metrics)
clean = result.effect("helpfulness", analysis="clean", phase="combined")
naive = result.effect("helpfulness", analysis="naive", phase="pooled")
assert clean.effect < naive.effect  # the dashboard understated the harm
effects = result.effects.to_polars()
effects.filter(
    (effects["metric"] == "helpfulness") & effects["phase"].is_in(["combined", "pooled"])
).select("analysis", "phase", "effect", "effect_ci_lower", "effect_ci_upper", "rel_effect")"""),
    ("code", """\
from analysis import plot_effects

plot_effects(result)"""),
    ("md", """\
The explanation table attributes the gap: adding the `after_end` events (stale tags, served by
`r41`) moves the helpfulness effect most of the way from clean to naive. Its step 0 is also
clean, but pooled in one window without strata or adjustment (so that each later step adds one
label to the same simple comparison): it differs from the clean combined effect above by the
strata and the CUPED adjustment, not by which events count."""),
    ("code", """\
explain = result.explain.to_polars()
explain.filter(explain["metric"] == "helpfulness")"""),
    ("md", """\
## 3. Recovery after the rollback

After the rollback, users who had been served `r42` are compared with users who never were.
Turns in **tainted** conversations (their history holds `r42` turns) stay worse; fresh
conversations of the same users are back within the margin."""),
    ("code", """\
result.recovery_summary"""),
    ("code", """\
from analysis import plot_recovery

plot_recovery(result)"""),
    ("md", """\
## 4. What to decide during the canary

A metric with a direction can be a **guardrail** (it may get worse, but not by more than a
margin) or **primary** (it drives the recommendation). With `sequential=True` the decisions are
always valid, so the analysis may be repeated every hour while the canary runs; it is tuned at
the units the canary is planned to reach. `decide` gives the guardrail verdicts (`ok`,
`breach`, `inconclusive`) and what to do next — here: roll back to `r41`, with the commands."""),
    ("code", """\
from analysis import Mean, Ratio, decide

canary_metrics = [
    Ratio("helpfulness", direction="higher", primary=True),
    Mean("cost_usd", direction="lower", guardrail="5%"),
]
monitored = analyze(
    res, metrics=canary_metrics, sequential=True, planned_units=4000, explain=False
)
decision = decide(monitored, canary_metrics, ledger)
assert decision.recommendation.action == "rollback"
decision"""),
    ("md", """\
## 5. The same story as the morning report

`analysis.report` runs all of this (plus the prompt cache, eval baselines and contracts) and
writes `report.html`, `report.md` and `report.json`."""),
    ("code", """\
from analysis import report

rep = report()
rep"""),
]

BASELINES = [
    ("md", """\
# The eval baseline lifecycle: anchor, re-anchor, revert, gate

An eval baseline belongs to a revision. When the rollout ledger records that the revision was
rolled back, the baseline must stop being the reference — otherwise the next candidate is graded
against the wrong bar. This notebook replays the sample suite `support-qa` in a temporary store:
anchor `r41`, re-anchor `r42` before its canary, the canary is rolled back, and a new candidate
`r43` is gated."""),
    ("code", SETUP),
    ("code", """\
import tempfile
from datetime import datetime, timezone

from analysis import BaselineStore, SuiteConfig, load_ledger

EVALS = SAMPLE / "evals"
tmp = Path(tempfile.mkdtemp(prefix="promptstate-baselines-"))
store = BaselineStore(tmp / "baselines")
suite = store.init("support-qa", SuiteConfig.load(EVALS / "support-qa.suite.yaml"))
suite.config"""),
    ("md", """\
## Anchor and re-anchor

`r41` is live: its eval results become the first version (`anchor`). `r42` scores better on the
eval set, so before its canary it is re-anchored (`reanchor`) — the reference moves to `v0002`."""),
    ("code", """\
utc = timezone.utc
suite.anchor("r41", EVALS / "support-qa" / "r41.csv", actor="ml-platform",
             reason="baseline of the live revision r41", at=datetime(2026, 10, 28, 14, tzinfo=utc))
suite.anchor("r42", EVALS / "support-qa" / "r42.csv", actor="dana",
             reason="re-anchor before the canary", at=datetime(2026, 11, 1, 16, 30, tzinfo=utc))
suite.reference()"""),
    ("md", """\
## The canary is rolled back — the reference is now stale

The ledger records the rollback of `exp-17` to `r41`. Graded against `v0002` (r42's scores),
`r43` would look like a regression. The gate refuses to grade against a reverted revision's
baseline and says what to run."""),
    ("code", """\
from analysis import StaleBaselineError, gate

ledger = load_ledger(SAMPLE / "ledger.yaml")
candidate = EVALS / "support-qa" / "r43.csv"
try:
    gate("support-qa", candidate, revision="r43", ledger=ledger, store=store)
except StaleBaselineError as exc:
    print("refused:", exc)"""),
    ("md", """\
## Revert: sync the store with the ledger

`sync` applies every rollback of the ledger the store has not seen. The suite's policy is
`on_revert: pin`: the newest baseline of the restored revision (`v0001`, r41) becomes the pinned
reference, and the journal records the revert."""),
    ("code", """\
report = store.sync(ledger, at=datetime(2026, 11, 3, 9, 0, tzinfo=utc))
report"""),
    ("code", """\
suite.reference()"""),
    ("code", """\
import polars as pl

pl.DataFrame([entry.to_dict() for entry in suite.journal()]).select(
    "seq", "at", "action", "version", "reason"
)"""),
    ("md", """\
## Gate the candidate against the right baseline

Against `r41`'s baseline, `r43` (about as good as `r41`) passes."""),
    ("code", """\
result = gate("support-qa", candidate, revision="r43", ledger=ledger, store=store)
result"""),
    ("md", """\
The history plot shows the reference over time: hatched while it belonged to the rolled-back
revision (between the rollback and the sync)."""),
    ("code", """\
from analysis import plot_baseline_history

plot_baseline_history(store, ledger)"""),
    ("code", """\
import shutil

shutil.rmtree(tmp)"""),
]

ROLLBACK = [
    ("md", """\
# Planning a rollback over the five legs

Rolling back a prompt is more than restoring its text. `rollback_plan` walks the five legs of
the revision's state — **text**, **caches**, **cohort**, **baseline**, **contracts** — and says
what each needs. We replay the morning of 2026-11-03 on the sample: the ledger *before* the
rollback (`data_samples/rollback/ledger.yaml`, `r42` still a 25% canary), the event export and
the eval baselines."""),
    ("code", SETUP),
    ("code", """\
from datetime import datetime, timezone

from analysis import rollback_plan

at = datetime(2026, 11, 3, 8, 15, tzinfo=timezone.utc)  # the recorded rollback instant
plan = rollback_plan(
    SAMPLE / "rollback" / "ledger.yaml",
    events=SAMPLE / "events.parquet",
    baselines=STORE,
    at=at,
)
plan"""),
    ("md", """\
## Text and caches

The text leg appends the `rollback` transition that ends `exp-17`. The caches leg lists the
prompt-cache region of `r42` to expire and every semantic-cache entry `r42` wrote — served from
cache, they would keep answering with `r42`'s text after the rollback."""),
    ("code", """\
import polars as pl

pl.DataFrame(
    [{"leg": name, **action.to_dict()} for name in ("text", "caches")
     for action in plan.leg(name).actions]
)"""),
    ("md", """\
## Cohort

The units and conversations that were served `r42`: the exposed cohort to hold out of new
experiments, and the tainted conversations whose histories still hold `r42` turns."""),
    ("code", """\
cohort = plan.leg("cohort").findings
pl.DataFrame([{k: cohort[k] for k in ("units", "conversations", "open_tainted_conversations")}])"""),
    ("md", """\
## Baseline and contracts

The eval suite's reference is anchored to `r42`, so the baseline leg pins `r41`'s baseline.
`ticket-router` only accepts contract `v4`, which `r41` does not emit: the plan needs a person to
confirm before it can be applied."""),
    ("code", """\
pl.DataFrame([action.to_dict() for action in plan.leg("baseline").actions])"""),
    ("code", """\
pl.DataFrame(plan.leg("contracts").findings["consumers"])"""),
    ("code", """\
confirmed = rollback_plan(
    SAMPLE / "rollback" / "ledger.yaml",
    events=SAMPLE / "events.parquet",
    baselines=STORE,
    at=at,
    confirm=["ticket-router"],
)
pl.DataFrame([{"leg": leg.name, "status": leg.status} for leg in confirmed.legs])"""),
    ("md", """\
## Apply, dry run

`rollback_apply(..., dry_run=True)` checks everything and reports what it would write (exports,
the ledger transition, the baseline pin) without touching anything. We run it on a copy of the
ledger and the store."""),
    ("code", """\
import shutil
import tempfile

from analysis import rollback_apply

tmp = Path(tempfile.mkdtemp(prefix="promptstate-rollback-"))
shutil.copy(SAMPLE / "rollback" / "ledger.yaml", tmp / "ledger.yaml")
shutil.copytree(STORE, tmp / "baselines")
applied = rollback_apply(
    tmp / "ledger.yaml",
    events=SAMPLE / "events.parquet",
    baselines=tmp / "baselines",
    at=at,
    confirm=["ticket-router"],
    dry_run=True,
)
shutil.rmtree(tmp)
applied"""),
]

NOTEBOOKS = {
    "01-why-the-dashboard-did-not-recover.ipynb": WHY,
    "02-eval-baseline-lifecycle.ipynb": BASELINES,
    "03-planning-a-rollback.ipynb": ROLLBACK,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, source) in enumerate(cells):
        cell = (
            nbformat.v4.new_markdown_cell(source)
            if kind == "md"
            else nbformat.v4.new_code_cell(source)
        )
        cell.id = f"cell-{i:02d}"
        nb.cells.append(cell)
    return nb


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs and execution counts (what is committed)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata = {}
    return nb


def main(argv: list[str]) -> int:
    if "--strip" in argv:
        for path in sorted(HERE.glob("*.ipynb")):
            nbformat.write(strip(nbformat.read(path, as_version=4)), path)
        return 0
    bad = 0
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = nbformat.writes(build(cells)) + "\n"
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                print(f"{path}: differs from build_notebooks.py (or has outputs)")
                bad = 1
        else:
            path.write_text(text)
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
