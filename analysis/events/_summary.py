"""The contamination summary of a split: events, units and conversations by phase × arm ×
label, the units affected, and the ramp-moved units (:func:`contamination_summary`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import narwhals as nw

from analysis import _render
from analysis.errors import SCHEMA_VERSION
from analysis.events import _engines
from analysis.events._rules import CONTAMINATED, LABELS
from analysis.events._rules import small as _small

if TYPE_CHECKING:  # pragma: no cover
    from analysis.events.labelling import SplitResult

__all__ = ["ContaminationSummary", "LabelTotal", "SummaryRow", "contamination_summary"]


@dataclass(frozen=True)
class SummaryRow:
    """Counts of one phase × arm × label cell.

    Attributes:
        phase: Phase id. ``phase_kind``: ``pre``, ``exposure`` or ``after_end``.
        arm: The experiment's arm tag, ``None`` for events not tagged with the experiment.
        label: Contamination label.
        n_events: Events in the cell; ``share``: of all events of that phase × arm.
        n_units, n_conversations: Distinct units and conversations with an event in the cell.
    """

    phase: int
    phase_kind: str
    arm: str | None
    label: str
    n_events: int
    share: float
    n_units: int
    n_conversations: int


@dataclass(frozen=True)
class LabelTotal:
    """Totals of one label over the whole export: events, and units/conversations affected."""

    label: str
    n_events: int
    share: float
    n_units: int
    n_conversations: int


_ROW_COLUMNS = (
    "phase",
    "phase_kind",
    "arm",
    "label",
    "n_events",
    "share",
    "n_units",
    "n_conversations",
)
_TOTAL_COLUMNS = ("label", "n_events", "share", "n_units", "n_conversations")


@dataclass(frozen=True)
class ContaminationSummary:
    """Counts and shares by phase × arm × label, and the units and conversations affected.

    Attributes:
        experiment: The experiment id.
        rows: One :class:`SummaryRow` per non-empty phase × arm × label cell, ordered by phase,
            arm, then label precedence.
        totals: One :class:`LabelTotal` per label (all eight, zero where absent).
        n_events: Events in the export after dropping duplicates.
        contaminated_units: Units with at least one event labelled ``after_end``,
            ``crossover``, ``served_mismatch``, ``stale_cache``, ``carryover`` or
            ``prior_conversation``.
        contaminated_conversations: Conversations with at least one such event.
        notes: Loading notes and rules that could not be checked.
        moved_units: Ramp-moved units (one arm per exposure phase, changed only as a ramp
            allows; kept with their event-level labels, see the split's ``ramp_moved``).
        moved_events: Their events (all labels).
    """

    experiment: str
    rows: tuple[SummaryRow, ...]
    totals: tuple[LabelTotal, ...]
    n_events: int
    contaminated_units: int
    contaminated_conversations: int
    notes: tuple[str, ...] = ()
    moved_units: int = 0
    moved_events: int = 0

    def total(self, label: str) -> LabelTotal:
        """The totals of one label."""
        for t in self.totals:
            if t.label == label:
                return t
        raise KeyError(f"unknown label {label!r}; labels are {', '.join(LABELS)}")

    def contaminated_share(self, arm: str | None = None) -> float:
        """Share of the experiment's tagged events (after its start) that are not ``clean``."""
        rows = [
            r
            for r in self.rows
            if r.arm is not None and r.label != "outside_window" and (arm is None or r.arm == arm)
        ]
        n = sum(r.n_events for r in rows)
        return sum(r.n_events for r in rows if r.label != "clean") / n if n else 0.0

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as dictionaries (tidy table)."""
        return [{c: getattr(r, c) for c in _ROW_COLUMNS} for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view: ``{"schema_version": 1, "experiment", "n_events",
        "contaminated_units", "contaminated_conversations", "moved_units", "moved_events",
        "totals": [{label, n_events, share,
        n_units, n_conversations}], "rows": [{phase, phase_kind, arm, label, n_events, share,
        n_units, n_conversations}], "notes": [...]}``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "experiment": self.experiment,
            "n_events": self.n_events,
            "contaminated_units": self.contaminated_units,
            "contaminated_conversations": self.contaminated_conversations,
            "moved_units": self.moved_units,
            "moved_events": self.moved_events,
            "totals": [{c: getattr(t, c) for c in _TOTAL_COLUMNS} for t in self.totals],
            "rows": self.to_dicts(),
            "notes": list(self.notes),
        }

    def to_polars(self) -> Any:
        """The tidy table as a polars DataFrame."""
        import polars as pl

        schema = {
            "phase": pl.Int32,
            "phase_kind": pl.String,
            "arm": pl.String,
            "label": pl.String,
            "n_events": pl.Int64,
            "share": pl.Float64,
            "n_units": pl.Int64,
            "n_conversations": pl.Int64,
        }
        return pl.DataFrame(self.to_dicts(), schema=schema)

    def to_pandas(self) -> Any:
        """The tidy table as a pandas DataFrame."""
        return self.to_polars().to_pandas()

    def _totals_rows(self) -> list[dict[str, Any]]:
        return [{c: getattr(t, c) for c in _TOTAL_COLUMNS} for t in self.totals]

    def __str__(self) -> str:
        head = (
            f"Contamination of {self.experiment}: {self.n_events} events; "
            f"{self.contaminated_units} units and {self.contaminated_conversations} "
            "conversations affected"
        )
        if self.moved_units:
            head += f"; {self._moved_line()}"
        parts = [
            head,
            "",
            _render.to_text(
                self._totals_rows(), _TOTAL_COLUMNS, percent=("share",), title="By label"
            ),
            "",
            _render.to_text(
                self.to_dicts(), _ROW_COLUMNS, percent=("share",), title="By phase x arm x label"
            ),
        ]
        if self.notes:
            parts += ["", "Notes:", *(f"- {n}" for n in self.notes)]
        return "\n".join(parts)

    def _moved_line(self) -> str:
        return (
            f"{self.moved_units} ramp-moved units ({self.moved_events} events) kept with their "
            "event-level labels"
        )

    def to_markdown(self) -> str:
        """Markdown rendering (for reports and CI step summaries)."""
        parts = [
            f"### Contamination of {_render.md_code(self.experiment)}",
            "",
            f"{self.n_events} events; {self.contaminated_units} units and "
            f"{self.contaminated_conversations} conversations affected."
            + (f" {self._moved_line()}." if self.moved_units else ""),
            "",
            _render.to_markdown(self._totals_rows(), _TOTAL_COLUMNS, percent=("share",)),
            "",
            _render.to_markdown(self.to_dicts(), _ROW_COLUMNS, percent=("share",)),
        ]
        if self.notes:
            parts += ["", *(f"- {_render.md_text(n)}" for n in self.notes)]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{n}</li>" for n in self.notes)
        return (
            f"<div><strong>Contamination of {self.experiment}</strong>: {self.n_events} events"
            + _render.to_html(self._totals_rows(), _TOTAL_COLUMNS, percent=("share",))
            + _render.to_html(self.to_dicts(), _ROW_COLUMNS, percent=("share",))
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )


def contamination_summary(result: SplitResult) -> ContaminationSummary:
    """Count events, units and conversations by phase × arm × label (one pass in the engine).

    Shares are of the events of the same phase × arm. ``arm`` is ``None`` for events not
    tagged with the experiment.
    """
    exp = result.experiment
    unit, conv = result.unit_key, result.conversation_key
    arms = list(exp.arms)
    bad_codes = [LABELS.index(label) for label in CONTAMINATED]
    frame = result.keyed.select(
        nw.col("phase"),
        nw.when(nw.col("experiment_id") == nw.lit(exp.id))
        .then(
            nw.col("arm").replace_strict(
                arms, list(range(len(arms))), default=-1, return_dtype=nw.Int16
            )
        )
        .otherwise(nw.lit(-1, dtype=nw.Int16))
        .alias("__arm"),
        nw.col("__code").alias("__label"),
        nw.col("ramp_moved"),
        nw.col(unit),
        *([nw.col(conv)] if conv is not None else []),
    )
    # Two passes aggregate to one row per cell x unit and per cell x conversation (far fewer
    # rows than events); every count and distinct count below is derived from those.
    cell = ["phase", "__arm", "__label"]
    # ramp_moved is a property of the unit: the same on all its rows
    per_unit = _small(
        frame.group_by(*cell, unit).agg(
            nw.len().alias("n"), nw.col("ramp_moved").max().alias("__moved")
        )
    )
    queries = [
        per_unit.group_by(*cell).agg(
            nw.col("n").sum().alias("n_events"), nw.len().alias("n_units")
        ),
        per_unit.filter(nw.col("__label").is_in(bad_codes)).select(
            nw.col(unit).n_unique().alias("units")
        ),
        per_unit.group_by("__label").agg(
            nw.col("n").sum().alias("n_events"), nw.col(unit).n_unique().alias("n_units")
        ),
        per_unit.filter(nw.col("__moved")).select(
            nw.col(unit).n_unique().alias("units"), nw.col("n").sum().alias("events")
        ),
    ]
    if conv is not None:
        convs = frame.filter(~nw.col(conv).is_null())
        if conv.startswith("__"):
            # hashed keys: aggregate in two halves of the key space, one streaming pass each,
            # which halves the largest hash table the summary needs
            halves = [
                _small(
                    convs.filter((nw.col(conv) % 2) == part)
                    .group_by(*cell, conv)
                    .agg(nw.len().alias("n"))
                )
                for part in (0, 1)
            ]
            per_conv = nw.concat(halves, how="vertical")
        else:  # read three times below: computed once
            per_conv = _small(convs.group_by(*cell, conv).agg(nw.len().alias("n")))
        queries += [
            per_conv.group_by(*cell).agg(nw.len().alias("n_conversations")),
            per_conv.filter(nw.col("__label").is_in(bad_codes)).select(
                nw.col(conv).n_unique().alias("conversations")
            ),
            per_conv.group_by("__label").agg(nw.col(conv).n_unique().alias("n_conversations")),
        ]
    out = _collect_all(queries)
    cells, affected, labels = out[0], out[1], out[2]
    moved = out[3][0] if out[3] else {"units": 0, "events": 0}
    conv_cells = (
        {(r["phase"], r["__arm"], r["__label"]): r["n_conversations"] for r in out[4]}
        if conv
        else {}
    )
    conv_labels = {r["__label"]: r["n_conversations"] for r in out[6]} if conv else {}
    for r in cells:
        r["n_conversations"] = conv_cells.get((r["phase"], r["__arm"], r["__label"]), 0)
    for r in labels:
        r["n_conversations"] = conv_labels.get(r["__label"], 0)
    affected[0]["conversations"] = out[5][0]["conversations"] if conv else 0
    for r in cells:
        r["__arm"] = None if r["__arm"] < 0 else arms[int(r["__arm"])]
        r["contamination"] = LABELS[int(r["__label"])]
    for r in labels:
        r["contamination"] = LABELS[int(r["__label"])]
    kinds = {p.id: p.kind for p in result.phases}
    per_group: dict[tuple[int, str | None], int] = {}
    for r in cells:
        key = (int(r["phase"]), r["__arm"])
        per_group[key] = per_group.get(key, 0) + int(r["n_events"])
    order = {label: i for i, label in enumerate(LABELS)}
    rows = sorted(
        (
            SummaryRow(
                phase=int(r["phase"]),
                phase_kind=kinds[int(r["phase"])],
                arm=r["__arm"],
                label=r["contamination"],
                n_events=int(r["n_events"]),
                share=int(r["n_events"]) / per_group[(int(r["phase"]), r["__arm"])],
                n_units=int(r["n_units"]),
                n_conversations=int(r["n_conversations"]),
            )
            for r in cells
        ),
        key=lambda r: (r.phase, r.arm is not None, r.arm or "", order[r.label]),
    )
    n_total = sum(r.n_events for r in rows)
    found = {r["contamination"]: r for r in labels}
    totals = tuple(
        LabelTotal(
            label=label,
            n_events=int(found[label]["n_events"]) if label in found else 0,
            share=(int(found[label]["n_events"]) / n_total) if label in found and n_total else 0.0,
            n_units=int(found[label]["n_units"]) if label in found else 0,
            n_conversations=int(found[label]["n_conversations"]) if label in found else 0,
        )
        for label in LABELS
    )
    return ContaminationSummary(
        experiment=exp.id,
        rows=tuple(rows),
        totals=totals,
        n_events=n_total,
        contaminated_units=int(affected[0]["units"]) if affected else 0,
        contaminated_conversations=int(affected[0]["conversations"]) if affected else 0,
        notes=tuple(result.notes()),
        moved_units=int(moved["units"] or 0),
        moved_events=int(moved["events"] or 0),
    )


def _collect_all(frames: Sequence[nw.LazyFrame[Any]]) -> list[list[dict[str, Any]]]:
    """Collect several small aggregates of one plan, sharing the scan on polars."""
    return _engines.collect_all(frames)
