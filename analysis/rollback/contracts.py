"""Downstream output contracts: which consumers break for which revision, and observed parse
failures: :func:`contract_check`.

Definitions:

* a revision's **contract** is the output-schema version it emits (``contract`` in the ledger);
* a consumer **accepts** a revision when the revision's contract is one of the consumer's
  ``accepts`` versions; a revision with no recorded contract is ``unknown`` for every consumer
  (not a break, but said so);
* a **change** from revision A to revision B **breaks** a consumer that accepts A's contract
  but not B's (a consumer that accepted neither was already broken: ``incompatible``);
* the **parse-failure rate** of a contract version × consumer is the share of events with
  ``parse_ok`` false among the events that carry both ``contract_version`` and ``consumer``
  (only when the export has ``contract_version``, ``consumer`` and ``parse_ok``); events after
  ``at`` are left out when it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import narwhals as nw

from analysis._table import Table
from analysis.errors import PromptstateError
from analysis.ledger import Ledger, load_ledger

__all__ = [
    "CompatibilityRow",
    "ContractCheck",
    "ParseFailureRow",
    "contract_check",
]

Compatibility = Literal["ok", "breaks", "incompatible", "unknown"]


class CompatibilityRow(NamedTuple):
    """Whether one consumer accepts one revision of its prompt.

    Attributes:
        consumer: Consumer name.
        accepts: Contract versions it accepts (comma-separated).
        revision: The revision.
        contract: The revision's contract (``None`` when not recorded).
        accepted: Whether the consumer accepts it (``None`` when the contract is unknown).
    """

    consumer: str
    accepts: str
    revision: str
    contract: str | None
    accepted: bool | None


class ParseFailureRow(NamedTuple):
    """Observed parse failures of one contract version × consumer.

    Attributes:
        contract_version: The version the events carry.
        consumer: The consumer that parsed them.
        events: Events.
        failures: Events with ``parse_ok`` false.
        failure_rate: ``failures / events``.
    """

    contract_version: str
    consumer: str
    events: int
    failures: int
    failure_rate: float


@dataclass(frozen=True)
class ConsumerChange:
    """What a change from one revision to another does to one consumer.

    Attributes:
        name: Consumer.
        accepts: Versions it accepts.
        status: ``ok``, ``breaks`` (accepts the old contract, not the new one), ``incompatible``
            (accepts neither) or ``unknown`` (a contract is not recorded).
    """

    name: str
    accepts: tuple[str, ...]
    status: Compatibility

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "accepts": list(self.accepts), "status": self.status}


@dataclass(frozen=True)
class ContractCheck:
    """Result of :func:`contract_check`.

    Attributes:
        prompt: The prompt.
        matrix: Consumer × revision compatibility.
        parse_failures: Observed parse failures by contract version × consumer (empty when the
            export lacks the columns or no events were given).
        parse_checked: Whether the export had the columns for the parse-failure table.
        ledger: The ledger the check was made against.
    """

    prompt: str
    matrix: Table
    parse_failures: Table
    parse_checked: bool
    ledger: Ledger = field(repr=False)

    def change(self, old: str | Sequence[str], new: str) -> tuple[ConsumerChange, ...]:
        """Every consumer of the prompt and what changing from ``old`` to ``new`` does to it.

        ``old`` may name several revisions (e.g. both arms of a canary): a consumer breaks when
        it accepts any of their contracts but not ``new``'s.
        """
        olds = [old] if isinstance(old, str) else list(old)
        new_contract = self.ledger.revision(new).contract
        old_contracts = [self.ledger.revision(r).contract for r in olds]
        out = []
        for c in self.ledger.consumers.values():
            if c.prompt != self.prompt:
                continue
            status: Compatibility
            if new_contract is None:
                status = "unknown"
            elif new_contract in c.accepts:
                status = "ok"
            elif any(oc is None for oc in old_contracts):
                status = "unknown"
            elif any(oc in c.accepts for oc in old_contracts):
                status = "breaks"
            else:
                status = "incompatible"
            out.append(ConsumerChange(c.name, tuple(c.accepts), status))
        return tuple(out)

    def breaking(self, old: str | Sequence[str], new: str) -> tuple[str, ...]:
        """Names of the consumers a change from ``old`` to ``new`` breaks."""
        return tuple(c.name for c in self.change(old, new) if c.status == "breaks")

    def failure_rate(self, contract_version: str, consumer: str) -> float | None:
        """Observed parse-failure rate of a version × consumer (``None`` when unobserved)."""
        for r in self.parse_failures.rows:
            if isinstance(r, ParseFailureRow) and (r.contract_version, r.consumer) == (
                contract_version,
                consumer,
            ):
                return r.failure_rate
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "prompt": self.prompt,
            "matrix": self.matrix.to_records(),
            "parse_failures": self.parse_failures.to_records(),
            "parse_checked": self.parse_checked,
        }

    def to_polars(self) -> Any:
        """The compatibility matrix as a polars DataFrame."""
        return self.matrix.to_polars()

    def to_pandas(self) -> Any:
        """The compatibility matrix as a pandas DataFrame."""
        return self.matrix.to_pandas()

    def __str__(self) -> str:
        return f"{self.matrix}\n\n{self.parse_failures}"

    def to_markdown(self) -> str:
        """Markdown tables."""
        return f"{self.matrix.to_markdown()}\n\n{self.parse_failures.to_markdown()}"

    def _repr_html_(self) -> str:
        return self.matrix._repr_html_() + self.parse_failures._repr_html_()


def contract_check(
    ledger: Ledger | str | Path,
    prompt: str | None = None,
    *,
    events: Any = None,
    at: datetime | None = None,
    columns: Mapping[str, str] | None = None,
) -> ContractCheck:
    """Which consumers of a prompt accept which revisions, and the observed parse failures.

    Args:
        ledger: A :class:`~analysis.ledger.Ledger` or a ledger path.
        prompt: The prompt (default: the ledger's only prompt).
        events: Optional event export (anything :func:`~analysis.events.loading.load_events` reads)
            for the parse-failure table.
        at: Leave out events at or after this instant.
        columns: Column map when ``events`` is not loaded yet.

    Returns:
        A :class:`ContractCheck`; ``.change(old, new)`` says which consumers a revision change
        breaks.

    Examples:
        >>> from analysis.ledger import parse_ledger
        >>> led = parse_ledger({"version": 1, "prompts": {"p": {"revisions": {
        ...     "a": {"contract": "v1"}, "b": {"contract": "v2"}}}},
        ...     "consumers": {"etl": {"prompt": "p", "accepts": ["v2"]}}})
        >>> contract_check(led).breaking("b", "a")
        ('etl',)
    """
    if not isinstance(ledger, Ledger):
        ledger = load_ledger(ledger)
    if prompt is None:
        if len(ledger.prompts) != 1:
            raise PromptstateError(
                f"{ledger.path or 'ledger'}: name the prompt; the ledger defines: "
                f"{', '.join(sorted(ledger.prompts))}"
            )
        prompt = next(iter(ledger.prompts))
    ledger._prompt(prompt)
    rows = [
        CompatibilityRow(
            c.name,
            ", ".join(c.accepts),
            r.id,
            r.contract,
            None if r.contract is None else r.contract in c.accepts,
        )
        for c in ledger.consumers.values()
        if c.prompt == prompt
        for r in ledger.prompts[prompt].revisions.values()
    ]
    failures: list[ParseFailureRow] = []
    checked = False
    if events is not None:
        failures, checked = _parse_failures(events, ledger, prompt, at, columns)
    return ContractCheck(
        prompt=prompt,
        matrix=Table(tuple(rows), CompatibilityRow._fields, title="consumers x revisions"),
        parse_failures=Table(
            tuple(failures),
            ParseFailureRow._fields,
            title="observed parse failures",
            percent=("failure_rate",),
        ),
        parse_checked=checked,
        ledger=ledger,
    )


def _parse_failures(
    events: Any,
    ledger: Ledger,
    prompt: str,
    at: datetime | None,
    columns: Mapping[str, str] | None,
) -> tuple[list[ParseFailureRow], bool]:
    from analysis.events.loading import Events, default_unit, load_events

    if isinstance(events, Events):
        loaded = events
    else:
        loaded = load_events(events, columns=columns, unit=default_unit(ledger))
    frame = loaded.frame
    names = frame.collect_schema().names()
    if not all(c in names for c in ("contract_version", "consumer", "parse_ok")):
        return [], False
    if "revision_id" in names:
        frame = frame.filter(nw.col("revision_id").is_in(list(ledger.prompts[prompt].revisions)))
    if at is not None:
        frame = frame.filter(nw.col("ts") < nw.lit(at))
    rows = (
        frame.filter(~nw.col("contract_version").is_null() & ~nw.col("consumer").is_null())
        .group_by("contract_version", "consumer")
        .agg(
            nw.len().alias("events"),
            (~nw.col("parse_ok").fill_null(value=True)).cast(nw.Int64).sum().alias("failures"),
        )
        .sort("contract_version", "consumer")
        .collect()
        .rows(named=True)
    )
    return [
        ParseFailureRow(
            str(r["contract_version"]),
            str(r["consumer"]),
            int(r["events"]),
            int(r["failures"]),
            int(r["failures"]) / int(r["events"]),  # DuckDB sums integers as DECIMAL
        )
        for r in rows
    ], True
