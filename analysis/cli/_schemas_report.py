"""Output models of ``promptstate report``: its stdout summary and the ``report.json`` it writes.

See :mod:`analysis.cli._schemas_base` for the conventions. ``report.json`` has two forms: one
experiment (:meth:`analysis.reporting.batch.Report.to_dict`), or every active experiment of a
ledger with several (:meth:`analysis.reporting._multi.MultiReport.to_dict`), whose
``experiments`` holds one one-experiment object per experiment (with its ``state``) or, for an
experiment whose report failed, a short error object. The tables (effects, SRM, ...) are lists
of row objects whose columns are documented in ``docs/metrics.md`` and ``docs/report.md``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from analysis.cli._schemas_base import Output, Row, omittable
from analysis.cli._schemas_results import (
    FailedSection,
    GuardrailRow,
    OverviewRow,
    RecommendationRow,
    SplitPhaseRow,
)

__all__ = ["ReportFileOutput", "ReportMultiFileOutput", "ReportOutput"]

AttentionKind = Literal[
    "guardrail_breach", "completeness", "srm", "crossover", "missing_values", "regression",
    "stale_baseline", "invalid_baseline", "contract_risk", "error",
]  # fmt: skip
_TABLE = "One row per {what}; columns in docs/metrics.md and docs/report.md."


class AttentionRow(Row):
    """One thing that needs attention (the report exits 1)."""

    kind: AttentionKind = Field(
        description="guardrail_breach (first), completeness, srm, crossover, missing_values, "
        "regression, stale_baseline, invalid_baseline, contract_risk, or error (an experiment "
        "that could not be analysed)."
    )
    message: str = Field(description="What was found, in one sentence.")


class ReportOutput(Output):
    """``promptstate report --format json``: the summary printed on stdout.

    Exit 1 when something needs attention, 2 when an experiment could not be analysed (the
    others are still reported), else 0.
    """

    experiments: list[str] = Field(
        description="The reported experiment, or every active one when no --experiment is "
        "given and the ledger has several."
    )
    headline: str = Field(description="One sentence: the clean effect, or the run's counts.")
    ok: bool = Field(description="Whether nothing needs attention.")
    exit_code: Literal[0, 1, 2, 3] = Field(description="The command's exit code.")
    attention: list[AttentionRow] = Field(description="What needs attention, in order.")
    notes: list[str] = Field(
        description="What the reader should know (prefixed with the experiment's id when "
        "several are reported)."
    )
    files: list[str] = Field(
        min_length=3, max_length=3, description="Paths of report.html, report.md, report.json."
    )


class ContaminationTotals(Row):
    """The contamination table of the report."""

    n_events: int = Field(ge=0, description="Events of the experiment.")
    rows: list[dict[str, Any]] = Field(description=_TABLE.format(what="phase × arm × label"))


class ReportFileOutput(Output):
    """``report.json`` written by ``promptstate report`` into --out for one experiment.

    (With several active experiments and no --experiment: `report-json-multi`.)
    """

    report_version: Literal[1] = Field(description="Version of the report's layout.")
    experiment: str = Field(description="Experiment id.")
    prompt: str = Field(description="Its prompt.")
    control: str = Field(description="The control arm.")
    arms: list[str] = Field(description="Every arm.")
    headline: str = Field(description="One sentence: the clean effect next to the naive one.")
    ok: bool = Field(description="Whether nothing needs attention.")
    exit_code: Literal[0, 1, 2, 3] = Field(description="The report's exit code.")
    attention: list[AttentionRow] = Field(description="What needs attention, in order.")
    completeness: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="data-completeness finding")
    )
    inputs: dict[str, Any] = Field(description="The inputs and options the report ran with.")
    phases: list[SplitPhaseRow] = Field(description="The experiment's phases.")
    metrics: list[str] = Field(description="The metrics' labels.")
    effects: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="analysis × metric × phase × arm")
    )
    srm: list[dict[str, Any]] = Field(description=_TABLE.format(what="phase × arm (SRM)"))
    exclusions: list[dict[str, Any]] = Field(description=_TABLE.format(what="label × arm"))
    explain: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="step of the naive-to-clean walk")
    )
    contamination: ContaminationTotals = Field(description="Events by phase × arm × label.")
    recovery: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="metric × group × time bin after the rollback")
    )
    recovery_summary: list[dict[str, Any]] = Field(description=_TABLE.format(what="metric × group"))
    segments: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="segment column × value × metric × phase × arm (--segment)")
    )
    segment_heterogeneity: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="segment column × metric × phase × arm (Cochran's Q)")
    )
    metric_by_time: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="metric × arm × time bin")
    )
    cache: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="boundary × minute (prompt-cache hit rate)")
    )
    baselines: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="eval suite of the prompt (with its journal)")
    )
    contracts: list[dict[str, Any]] = Field(
        description=_TABLE.format(what="downstream consumer of the prompt")
    )
    notes: list[str] = Field(description="What the reader should know.")
    guardrails: list[GuardrailRow] | None = omittable(
        "Guardrail verdicts (only when some metric has a guardrail margin; docs/decisions.md)."
    )
    first_looks: list[dict[str, Any]] | None = omittable(
        "--sequential: the first look at which each regression, sample ratio mismatch and "
        "guardrail breach would have fired (docs/decisions.md)."
    )
    recommendation: RecommendationRow | None = omittable(
        "What to do next: rollback, ramp, promote or continue (docs/decisions.md)."
    )


class ReportSection(ReportFileOutput):
    """One experiment's report.json object inside the several-experiment report.json."""

    state: str = Field(description="running, 'rolled back', promoted or stopped.")


class ReportMultiFileOutput(Output):
    """``report.json`` written by ``promptstate report`` for every active experiment.

    Written when no --experiment is given and the ledger has several active in the window.
    """

    headline: str = Field(description="How many experiments, how many need attention.")
    ok: bool = Field(description="Whether every experiment reported and nothing needs attention.")
    exit_code: int = Field(ge=0, le=4, description="The worst exit code of the experiments.")
    since: str | None = Field(description="Window start (null: unbounded).")
    until: str | None = Field(description="Window end.")
    inactive: list[str] = Field(description="Experiments without exposure in the window.")
    overview: list[OverviewRow] = Field(description="One row per active experiment.")
    attention: list[AttentionRow] = Field(
        description="Every experiment's attention items, prefixed with its id."
    )
    experiments: list[ReportSection | FailedSection] = Field(
        description="Each experiment's report.json object, by id."
    )
