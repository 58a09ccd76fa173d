"""The scheduled batch report: :func:`report` and :class:`Report`.

``report()`` runs the whole story on one export and one ledger — the contamination split, clean
vs naive effects, recovery after a rollback, the prompt cache around each boundary, the eval
baselines of the prompt and its downstream contracts — and returns a :class:`Report` that writes

* ``report.html`` — one self-contained file: a headline, what needs attention, then one section
  per question with its plot (inline SVG, no network fetch) and its table;
* ``report.md`` — the headline, attention items and the key tables (a chat message or a CI step
  summary);
* ``report.json`` — the same numbers, machine-readable; effect rows use the result-table columns
  of docs/metrics.md (``analysis, metric, phase, control, arm, n_control, ...``).

**Attention** (exit code 1 of ``promptstate report``): a sample-ratio mismatch in a phase, the
crossover share above its threshold, a clean regression (clean combined effect significant
after the multiple-testing adjustment and in the worse direction), a stale baseline (a suite's
reference is not anchored to the prompt's live revision — e.g. still the reverted revision's),
a contract risk (a consumer of the prompt does not accept the contract its live revision emits).

**Window.** ``since``/``until`` restrict the events analysed *after* the split: labels use the
whole export (carryover needs the turns before the window), effects, counts and plots use the
events in ``[since, until)``.

**Determinism.** Same inputs → same bytes: no wall-clock time is written, tables are sorted,
SVGs are rendered with a fixed hash salt, no date metadata and ids prefixed per figure. The
engine's parallel sums may differ in the last bits from run to run, so every number of the
report is rounded to 10 significant digits, and the label-by-label ``change`` of the explain
table is set to 0 where it is below 1e-9 of the effects' scale (a difference of equal numbers).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from analysis._render import fmt
from analysis.errors import PromptstateError
from analysis.reporting.plots import PLOTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analysis.evals.store import JournalEntry
    from analysis.events.labelling import SplitResult
    from analysis.ledger import Ledger
    from analysis.metrics import AnalysisResult
    from analysis.metrics.definitions import Metric
    from analysis.reporting._data import CacheRow, ContaminationRow, TimeRow

__all__ = [
    "ATTENTION_KINDS",
    "PLOTS",
    "Attention",
    "BaselineStatus",
    "ContractStatus",
    "Report",
    "report",
]

REPORT_FILES = ("report.html", "report.md", "report.json")
ATTENTION_KINDS = (
    "srm",
    "crossover",
    "missing_values",
    "regression",
    "stale_baseline",
    "invalid_baseline",
    "contract_risk",
)


class Attention(NamedTuple):
    """One thing that needs attention.

    Attributes:
        kind: ``srm``, ``crossover``, ``regression``, ``stale_baseline``, ``invalid_baseline``
            (a tampered or torn store entry) or ``contract_risk``.
        message: What was found, in one sentence.
    """

    kind: str
    message: str


class BaselineStatus(NamedTuple):
    """The reference of one eval suite against the ledger.

    Attributes:
        suite: Suite name.
        prompt: Its prompt.
        version: Reference version (``None`` before the first anchor).
        revision: Revision the reference is anchored to.
        pinned: Whether the reference is pinned.
        live_revision: The prompt's live revision per the ledger.
        status: ``ok`` (reference of the live revision), ``stale`` (of a reverted revision or
            not of the live one), ``empty`` (nothing anchored) or ``invalid`` (the store's
            files disagree with its journal: ``promptstate baseline verify``).
        detail: Why, and what to run.
    """

    suite: str
    prompt: str
    version: str | None
    revision: str | None
    pinned: bool
    live_revision: str | None
    status: str
    detail: str


class ContractStatus(NamedTuple):
    """One downstream consumer of the prompt against the live revision's contract.

    Attributes:
        name: Consumer name.
        prompt: The prompt it reads.
        accepts: Contract versions it accepts.
        live_revision: The prompt's live revision.
        contract: The contract version the live revision emits.
        status: ``ok``, ``risk`` (does not accept it) or ``unknown`` (no contract recorded).
    """

    name: str
    prompt: str
    accepts: tuple[str, ...]
    live_revision: str | None
    contract: str | None
    status: str


@dataclass(frozen=True)
class Report:
    """Everything the report shows; :meth:`write` renders the three files.

    Attributes:
        experiment: Experiment id.
        prompt: Its prompt.
        headline: One-sentence summary (clean vs naive effect of the primary metric, and the
            treatment arm's contaminated share).
        attention: What needs attention (empty: exit code 0).
        analysis: The :class:`~analysis.metrics.AnalysisResult`.
        contamination: Events by phase × arm tag × label
            (:class:`~analysis.reporting._data.ContaminationRow`).
        timeseries: Metric by hour × arm tag (:class:`~analysis.reporting._data.TimeRow`).
        cache: Prompt cache around boundaries (:class:`~analysis.reporting._data.CacheRow`).
        boundaries: ``(instant, action)`` of the experiment's boundaries.
        baselines: One :class:`BaselineStatus` per suite of the store.
        journals: Suite → its journal (for the history plot).
        contracts: One :class:`ContractStatus` per consumer of the prompt.
        metrics: The metrics analysed.
        phases: The experiment's phases.
        arms: The experiment's arms (control first).
        inputs: What was read (paths as given; options).
        notes: What the reader should know.
    """

    experiment: str
    prompt: str
    headline: str
    attention: tuple[Attention, ...]
    analysis: AnalysisResult
    contamination: tuple[ContaminationRow, ...]
    timeseries: tuple[TimeRow, ...]
    cache: tuple[CacheRow, ...]
    boundaries: tuple[tuple[datetime, str], ...]
    baselines: tuple[BaselineStatus, ...]
    journals: Mapping[str, tuple[JournalEntry, ...]]
    contracts: tuple[ContractStatus, ...]
    metrics: tuple[Metric, ...]
    phases: tuple[Any, ...]
    arms: tuple[str, ...]
    ledger: Ledger
    inputs: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Nothing needs attention."""
        return not self.attention

    @property
    def exit_code(self) -> int:
        """0 when nothing needs attention, 1 otherwise (what ``promptstate report`` exits with)."""
        return 0 if self.ok else 1

    # -- figures ---------------------------------------------------------------------------
    def figure(self, name: str) -> Figure:
        """One of the report's figures by name (see :data:`PLOTS`), built from its numbers."""
        from analysis.reporting import plots

        if name == "metric_by_time":
            return plots.draw_metric_by_time(self.timeseries, self.phases, self.arms, self.metrics)
        if name == "contamination":
            return plots.draw_contamination(self.contamination, self.experiment)
        if name == "effects":
            return plots.draw_effects(list(self.analysis.effects.rows))
        if name == "recovery":
            return plots.draw_recovery(list(self.analysis.recovery.rows))
        if name == "cache":
            return plots.draw_cache(self.cache, self.boundaries)
        if name == "baselines":
            prompts = {b.suite: b.prompt for b in self.baselines}
            return plots.draw_baseline_history(self.journals, prompts, self.ledger)
        raise KeyError(f"unknown plot {name!r}; plots are {', '.join(PLOTS)}")

    # -- renderings ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The report's numbers (what ``report.json`` holds)."""
        return _to_dict(self)

    def to_json(self) -> str:
        """``report.json``'s text (NaN as null)."""
        return json.dumps(_jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        """``report.md``'s text."""
        from analysis.reporting._html import render_markdown

        return render_markdown(self)

    def to_html(self) -> str:
        """``report.html``'s text: self-contained, plots as inline SVG."""
        from analysis.reporting._html import render_html

        return render_html(self)

    def _repr_html_(self) -> str:
        from analysis.reporting._html import render_summary_html

        return render_summary_html(self)

    def __str__(self) -> str:
        lines = [self.headline, ""]
        if self.attention:
            lines += ["Needs attention:", *(f"- [{a.kind}] {a.message}" for a in self.attention)]
        else:
            lines.append("Nothing needs attention.")
        return "\n".join(lines)

    def write(self, out: str | Path) -> tuple[Path, ...]:
        """Write ``report.html``, ``report.md`` and ``report.json`` into ``out`` (atomically).

        The three texts are rendered before anything is created, so a failure while rendering
        leaves no ``out`` directory behind.
        """
        from analysis._io import atomic_write_text

        out = Path(out)
        texts = (self.to_html(), self.to_markdown(), self.to_json())
        out.mkdir(parents=True, exist_ok=True)
        paths = tuple(out / name for name in REPORT_FILES)
        for path, text in zip(paths, texts, strict=True):
            atomic_write_text(path, text)
        return paths


# ------------------------------------------------------------------------------------------


def _parse_time(value: datetime | str | None, name: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        out = value
    else:
        try:
            out = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PromptstateError(
                f"{name}={value!r}: not an ISO-8601 time, e.g. 2026-11-03T00:00:00Z"
            ) from None
    if out is not None and out.tzinfo is None:
        out = out.replace(tzinfo=UTC)
    return out


def report(
    events: Any = None,
    ledger: Any = None,
    experiment: str | None = None,
    *,
    metrics: Sequence[Metric] | str | Path | None = None,
    store: str | Path | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    columns: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    multiplicity: str = "holm",
    srm_threshold: float = 0.001,
    crossover_threshold: float = 0.02,
    recovery_bin_hours: float = 2.0,
    materialize: bool | None = None,
    out: str | Path | None = None,
) -> Report:
    """Build the batch report of one experiment (and write it when ``out`` is given).

    Args:
        events: The export (anything :func:`~analysis.events.labelling.split` reads, or a
            :class:`~analysis.events.labelling.SplitResult`); default: the embedded sample.
        ledger: Ledger path or object; default: the sample's (only with the sample's events).
        experiment: Experiment id (may be left out when unambiguous).
        metrics: Metric objects or a metrics file; default: the sample's ``metrics.yaml`` with
            the sample, :func:`~analysis.metrics.default_metrics` otherwise.
        store: Baseline store; default ``baselines/`` in the working directory, or the
            sample's store next to ``data_samples/`` with the sample; no baseline section when
            none exists.
        since: Analyse events at or after this instant (after the split, see the module doc).
        until: Analyse events before this instant.
        columns: Column map for loading ``events``.
        alpha: 1 − confidence level.
        multiplicity: ``holm``, ``bh`` or ``none``.
        srm_threshold: SRM flagged at ``p < srm_threshold``.
        crossover_threshold: Attention when crossover units exceed this share of enrolled units.
        recovery_bin_hours: Bin width of the recovery curve.
        materialize: Write the labelled events once to a temporary Parquet file and aggregate
            from it (default: on polars-backed inputs; see
            :func:`analysis.events.labelling.materialized`).
        out: Directory to write ``report.html``, ``report.md``, ``report.json`` into.

    Returns:
        A :class:`Report`; ``report.exit_code`` is 1 when something needs attention.

    Raises:
        PromptstateError: bad input (exit code 2 in the CLI).
    """
    import narwhals as nw

    from analysis._paths import sample_path
    from analysis.events.labelling import SplitResult, materialized, split, with_frames
    from analysis.metrics import default_metrics
    from analysis.metrics.definitions import load_metrics

    start = _parse_time(since, "since")
    stop = _parse_time(until, "until")
    if start is not None and stop is not None and stop <= start:
        raise PromptstateError(
            f"until ({stop.isoformat()}) must be after since ({start.isoformat()})"
        )
    use_sample = events is None
    if use_sample:
        if ledger is not None:
            raise PromptstateError("report: pass the events together with --ledger")
        events, ledger = sample_path("events.parquet"), sample_path("ledger.yaml")
        if metrics is None:
            metrics = sample_path("metrics.yaml")
    if isinstance(metrics, str | Path):
        ms = tuple(load_metrics(metrics))
    else:
        ms = tuple(metrics) if metrics is not None else default_metrics()
    if isinstance(events, SplitResult):
        res = events
    else:
        if ledger is None:
            raise PromptstateError("report: pass the ledger (--ledger FILE) with the events")
        res = split(events, ledger, experiment, columns=columns)
    notes: list[str] = []
    if start is not None or stop is not None:
        cond = nw.lit(value=True)
        if start is not None:
            cond = cond & (nw.col("ts") >= nw.lit(start))
        if stop is not None:
            cond = cond & (nw.col("ts") < nw.lit(stop))
        res = with_frames(res, lambda f: f.filter(cond))
        notes.append(
            f"events restricted to [{start.isoformat() if start else '…'}, "
            f"{stop.isoformat() if stop else '…'}) after labelling (labels used the whole export)"
        )
    with materialized(res, materialize) as res:
        rep = _build(
            res, ms, store, use_sample, notes, events, ledger, start, stop, alpha, multiplicity,
            srm_threshold, crossover_threshold, recovery_bin_hours,
        )  # fmt: skip
    if out is not None:
        rep.write(out)
    return rep


def _build(
    res: SplitResult,
    ms: tuple[Metric, ...],
    store: str | Path | None,
    use_sample: bool,
    notes: list[str],
    events: Any,
    ledger: Any,
    start: datetime | None,
    stop: datetime | None,
    alpha: float,
    multiplicity: str,
    srm_threshold: float,
    crossover_threshold: float,
    recovery_bin_hours: float,
) -> Report:
    from analysis._paths import sample_store
    from analysis.metrics import analyze
    from analysis.reporting import _data as data

    exp = res.experiment
    led = res.ledger
    result = analyze(
        res,
        metrics=ms,
        alpha=alpha,
        multiplicity=multiplicity,
        srm_threshold=srm_threshold,
        crossover_threshold=crossover_threshold,
        recovery_bin_hours=recovery_bin_hours,
        materialize=False,  # already materialised above
    )
    result = _canonical_result(result)
    bounds = data.boundaries(res)
    frames = [
        data.timeseries_frame(res.frame, exp.id, ms),
        data.contamination_frame(res.frame, exp.id),
    ]
    cframe = data.cache_frame(res.frame, bounds, window=timedelta(hours=2))
    if cframe is not None:
        frames.append(cframe)
    collected = data.collect(frames)
    series = tuple(_canon(r) for r in data.timeseries_rows(collected[0], ms))
    counts = tuple(_canon(r) for r in data.contamination_rows(collected[1], res.phases))
    cache = tuple(_canon(r) for r in data.cache_rows(collected[2], bounds)) if cframe else ()

    store_path = _find_store(store, sample_store() if use_sample else None)
    baselines, journals = (
        _baselines(store_path, led, _ledger_arg(ledger if ledger is not None else led))
        if store_path is not None
        else ((), {})
    )
    if store_path is None:
        notes.append("no baseline store found (pass --store DIR): baseline section left out")
    contracts = _contracts(led, exp.prompt)

    attention = _attention(result, baselines, contracts)
    inputs = {
        "events": "sample" if use_sample else _describe(events),
        "ledger": "sample" if use_sample else _describe(ledger),
        "store": None
        if store_path is None
        else ("sample" if use_sample and store is None else str(store_path)),
        "experiment": exp.id,
        "since": start.isoformat() if start else None,
        "until": stop.isoformat() if stop else None,
        "alpha": alpha,
        "multiplicity": multiplicity,
        "srm_threshold": srm_threshold,
        "crossover_threshold": crossover_threshold,
        "recovery_bin_hours": recovery_bin_hours,
    }
    return Report(
        experiment=exp.id,
        prompt=exp.prompt,
        headline=_headline(result, counts, exp, ms),
        attention=tuple(attention),
        analysis=result,
        contamination=counts,
        timeseries=series,
        cache=cache,
        boundaries=tuple(bounds),
        baselines=tuple(baselines),
        journals=journals,
        contracts=tuple(contracts),
        metrics=ms,
        phases=tuple(res.phases),
        arms=(exp.control, *exp.treatment_arms),
        ledger=led,
        inputs=inputs,
        notes=tuple(dict.fromkeys([*result.notes, *notes])),
    )


def _round(value: Any) -> Any:
    """Floats to 10 significant digits (run-to-run noise of parallel sums is ~1e-16)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0.0:
        return float(f"{value:.10g}")
    return value


def _canon(row: Any) -> Any:
    """A NamedTuple row with every float rounded by :func:`_round`."""
    return row._replace(**{k: _round(v) for k, v in row._asdict().items() if isinstance(v, float)})


def _canonical_result(result: AnalysisResult) -> AnalysisResult:
    """The analysis with rounded numbers and exact zeros for no-change explain steps."""

    def table(t: Any) -> Any:
        return dataclasses.replace(t, rows=tuple(_canon(r) for r in t.rows))

    explain = table(result.explain)
    scale = max((abs(r.effect) for r in explain.rows if math.isfinite(r.effect)), default=0.0)
    explain = dataclasses.replace(
        explain,
        rows=tuple(
            r._replace(change=0.0)
            if isinstance(r.change, float) and abs(r.change) < 1e-9 * scale
            else r
            for r in explain.rows
        ),
    )
    return dataclasses.replace(
        result,
        effects=table(result.effects),
        srm=table(result.srm),
        exclusions=table(result.exclusions),
        explain=explain,
        recovery=table(result.recovery),
        recovery_summary=table(result.recovery_summary),
    )


def _describe(value: Any) -> str:
    if isinstance(value, str | Path):
        return str(value)
    path = getattr(value, "path", None)
    if path is not None:
        return str(path)
    return type(value).__name__


def _find_store(store: str | Path | None, sample_store: Path | None) -> Path | None:
    from analysis.evals.store import DEFAULT_STORE

    if store is not None:
        path = Path(store)
        if not path.is_dir():
            raise PromptstateError(f"--store {path}: no such directory (a baseline store)")
        return path
    if sample_store is not None and sample_store.is_dir():
        return sample_store
    default = Path(DEFAULT_STORE)
    return default if default.is_dir() else None


def _ledger_arg(ledger: Any) -> str:
    """The ledger the report ran with, as a shell word for advice (``LEDGER`` when unknown)."""
    import shlex

    if isinstance(ledger, str | Path) or getattr(ledger, "path", None) is not None:
        return shlex.quote(_describe(ledger))
    return "LEDGER"


def _baselines(
    store_path: Path, ledger: Ledger, ledger_arg: str = "LEDGER"
) -> tuple[list[BaselineStatus], dict[str, tuple[JournalEntry, ...]]]:
    import shlex

    from analysis.errors import InvalidBaselineError
    from analysis.evals.store import BaselineStore

    st = BaselineStore(store_path)
    out: list[BaselineStatus] = []
    journals: dict[str, tuple[JournalEntry, ...]] = {}
    for name in sorted(st.suite_names()):
        suite = st.suite(name)
        prompt = suite.config.prompt
        if prompt not in ledger.prompts:
            continue
        live = ledger.live_revision(prompt)
        try:
            journals[name] = tuple(suite.journal())
            ref = suite.reference()
        except InvalidBaselineError as exc:  # tampered or torn: report it, keep reporting
            journals.pop(name, None)
            detail = f"{exc} (check it with `promptstate baseline verify {name}`)"
            out.append(BaselineStatus(name, prompt, None, None, False, live, "invalid", detail))
            continue
        if ref.version is None:
            status, detail = "empty", f"nothing anchored yet; anchor a baseline of {live}"
        elif ref.revision == live:
            status, detail = "ok", f"{ref.version} is a baseline of the live revision {live}"
        else:
            reverted = [r for r in ledger.reverts(prompt) if r.reverted == ref.revision]
            applied = {e.ledger_key for e in journals[name]}
            if reverted:
                rv = reverted[-1]
                done = f"{rv.transition_index}:{rv.reverted}" in applied
                fix = (
                    f"run `promptstate baseline sync {shlex.quote(name)} --ledger {ledger_arg} "
                    f"--store {shlex.quote(str(store_path))}`"
                    if not done
                    else f"run `promptstate baseline revert {name} --reverted {rv.reverted} "
                    f"--restored {rv.restored}`"
                )
                detail = (
                    f"reference {ref.version} is anchored to {ref.revision}, which the ledger "
                    f"rolled back to {rv.restored} at {rv.at.isoformat()}; {fix}"
                )
            else:
                detail = (
                    f"reference {ref.version} is anchored to {ref.revision}, but the live "
                    f"revision is {live}"
                )
            status = "stale"
        out.append(
            BaselineStatus(
                name, prompt, ref.version, ref.revision, ref.pinned, live, status, detail
            )
        )
    return out, journals


def _contracts(ledger: Ledger, prompt: str) -> list[ContractStatus]:
    live = ledger.live_revision(prompt)
    contract = (
        ledger.revisions[live].contract if live is not None and live in ledger.revisions else None
    )
    out = []
    for name in sorted(ledger.consumers):
        c = ledger.consumers[name]
        if c.prompt != prompt:
            continue
        status = "unknown" if contract is None else ("ok" if contract in c.accepts else "risk")
        out.append(ContractStatus(name, prompt, tuple(c.accepts), live, contract, status))
    return out


def _alert_kind(alert: str) -> str:
    """The attention kind of one of :attr:`AnalysisResult.alerts` (by its fixed opening)."""
    for opening, kind in (
        ("sample ratio mismatch", "srm"),
        ("crossover", "crossover"),
        ("missing values", "missing_values"),
    ):
        if alert.startswith(opening):
            return kind
    raise ValueError(f"unknown alert kind: {alert!r}")


def _attention(
    result: AnalysisResult,
    baselines: Sequence[BaselineStatus],
    contracts: Sequence[ContractStatus],
) -> list[Attention]:
    out: list[Attention] = []
    for alert in result.alerts:
        out.append(Attention(_alert_kind(alert), alert))
    for r in result.effects.rows:
        e: Any = r
        if e.analysis == "clean" and e.phase == "combined" and e.significant and e.better is False:
            out.append(
                Attention(
                    "regression",
                    f"clean regression of {e.arm} on {e.metric}: {_num(e.effect)} "
                    f"[{_num(e.effect_ci_lower)}, {_num(e.effect_ci_upper)}] "
                    f"({e.direction} is better; adjusted p={fmt(e.pvalue_adjusted)})",
                )
            )
    for b in baselines:
        if b.status == "stale":
            out.append(Attention("stale_baseline", f"suite {b.suite}: {b.detail}"))
        elif b.status == "invalid":
            out.append(Attention("invalid_baseline", f"suite {b.suite}: {b.detail}"))
    for c in contracts:
        if c.status == "risk":
            out.append(
                Attention(
                    "contract_risk",
                    f"consumer {c.name} accepts {', '.join(c.accepts)} but the live revision "
                    f"{c.live_revision} of {c.prompt} emits {c.contract}",
                )
            )
    return out


def _num(value: float) -> str:
    """3 significant digits with a true minus sign."""
    return fmt(value).replace("-", "−")


def _rel(value: float | None) -> str:
    """`` (−10.9%)``: a relative effect to one decimal of a percent, or nothing when undefined."""
    if value is None or not math.isfinite(value):
        return ""
    return f" ({value * 100:.1f}%)".replace("-", "−")


def _headline(
    result: AnalysisResult,
    counts: Sequence[ContaminationRow],
    exp: Any,
    metrics: Sequence[Metric],
) -> str:
    from analysis.events.labelling import CONTAMINATED
    from analysis.reporting._data import contaminated_share

    arm = exp.treatment_arms[0] if exp.treatment_arms else exp.control
    revision = exp.arms.get(arm, arm)
    name = metrics[0].label
    parts = []
    try:
        clean = result.effect(name, analysis="clean", phase="combined", arm=arm)
        parts.append(
            f"clean effect of {revision} on {name}: {_num(clean.effect)}{_rel(clean.rel_effect)} "
            f"[{_num(clean.effect_ci_lower)}, {_num(clean.effect_ci_upper)}]"
        )
    except KeyError:
        parts.append(f"no clean effect of {revision} on {name} could be estimated")
    try:
        naive = result.effect(name, analysis="naive", phase="pooled", arm=arm)
        parts.append(f"naive dashboard said {_num(naive.effect)}{_rel(naive.rel_effect)}")
    except KeyError:
        pass
    share = contaminated_share(counts, arm)
    by_label: dict[str, int] = {}
    for r in counts:
        if r.arm == arm and r.label in CONTAMINATED:
            by_label[r.label] = by_label.get(r.label, 0) + r.n_events
    text = f"{share:.0%} of {arm} events were contaminated"
    if by_label:
        text += f", mostly {max(sorted(by_label), key=lambda k: by_label[k])}"
    parts.append(text)
    return "; ".join(parts)


def _rows(table_rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [dict(r._asdict()) for r in table_rows]


def _to_dict(rep: Report) -> dict[str, Any]:
    res = rep.analysis
    return {
        "report_version": 1,
        "experiment": rep.experiment,
        "prompt": rep.prompt,
        "control": res.control,
        "arms": list(rep.arms),
        "headline": rep.headline,
        "ok": rep.ok,
        "exit_code": rep.exit_code,
        "attention": _rows(rep.attention),
        "inputs": dict(rep.inputs),
        "phases": [p.to_dict() for p in rep.phases],
        "metrics": [m.label for m in rep.metrics],
        "effects": res.effects.to_records(),
        "srm": res.srm.to_records(),
        "exclusions": res.exclusions.to_records(),
        "explain": res.explain.to_records(),
        "contamination": {
            "n_events": sum(r.n_events for r in rep.contamination),
            "rows": _rows(rep.contamination),
        },
        "recovery": res.recovery.to_records(),
        "recovery_summary": res.recovery_summary.to_records(),
        "metric_by_time": _rows(rep.timeseries),
        "cache": _rows(rep.cache),
        "baselines": [
            {**b._asdict(), "journal": [e.to_dict() for e in rep.journals.get(b.suite, ())]}
            for b in rep.baselines
        ],
        "contracts": [{**c._asdict(), "accepts": list(c.accepts)} for c in rep.contracts],
        "notes": list(rep.notes),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)
