"""Prompt-cache and semantic-cache impact of rollout boundaries: :func:`cache_impact`.

Definitions (all computed from the event export; one lazy pass per question, only per-minute
aggregates reach Python):

* **served revision** — ``revision_id`` (required here); only revisions of the prompt count.
* **boundary** — every ledger transition of the prompt (deploy, start, ramp, rollback, promote,
  stop), at its ``at``.
* **hit rate** — share of turns with ``cache_hit`` (the provider's prompt-prefix cache).
* **cold start** — a revision is *cold* at a boundary when it served no turn in the
  ``idle_minutes`` (default 60, a typical prefix-cache lifetime) before the boundary and serves
  turns after it; its prefix cache starts empty.
* **warm-up time** — the time after the boundary until the revision's hit rate reaches
  ``plateau_share`` (default 90%) of its plateau. It is estimated by fitting the saturation
  curve ``h(t) = plateau · (1 − exp(−t / tau))`` to the per-minute hit counts of the turns after
  the boundary (binomial maximum likelihood, up to the next boundary or ``fit_hours``), so
  ``warm-up = tau · ln(1 / (1 − plateau_share))`` (``tau · ln 10`` at 90%).
* **cold window** — ``[boundary, boundary + warm-up)``. Its **extra** uncached tokens, cost and
  latency are the turns' shortfall of cache hits against the plateau,
  ``(plateau · turns − hits)``, times what one hit saves: cached tokens per hit, cost per hit
  and latency per hit. The cost a hit saves is estimated from the revision's events by least
  squares of ``cost_usd`` on uncached prompt tokens, cached tokens and output tokens (the
  prices), times the cached tokens per hit; without token columns it is the difference of the
  mean cost of misses and hits. Latency per hit is the difference of mean latency of misses and
  hits. (Counting the shortfall, not the raw cost difference of early and late turns, keeps the
  estimate free of changes in the turn mix, such as conversations that are young right after
  a deploy.)
* **prediction** (:meth:`CacheImpact.predict`) — for a revision about to serve all traffic cold:
  the warm-up and plateau of its own last cold start (else the median over the prompt's cold
  starts), and the expected shortfall ``rate · plateau · tau · plateau_share`` hits (the
  integral of ``plateau − h(t)`` over the cold window at ``rate`` turns per minute).
* **semantic-cache writes** (:func:`semantic_cache_writes`) — a turn that is not a semantic
  hit (``semantic_cache_hit`` false) writes the entry ``cache_key``; the keys written by a
  revision are the ones to expire when it is rolled back.
* **cache region** (:func:`cache_region`) — the prompt-cache prefix of a revision as the ledger
  records it: its declared ``cache_prefix``, else ``prefix-`` and 12 hex digits of its text hash;
  unknown (``None``) when the ledger has neither — never a name made up from the revision id.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import narwhals as nw

from analysis._table import Table
from analysis.errors import EventsError, PromptstateError
from analysis.events import _engines
from analysis.ledger import Ledger, load_ledger
from analysis.rollback._cache_stats import (
    ColdStartPrediction,
    CurveRow,
    RevisionCacheRow,
    WarmupRow,
    as_float,
    curve_rows,
    median,
    price_gap,
    warmup_row,
)
from analysis.rollback._windows import Window, window_join

if TYPE_CHECKING:
    from pathlib import Path


__all__ = [
    "CacheImpact",
    "ColdStartPrediction",
    "CurveRow",
    "RevisionCacheRow",
    "WarmupRow",
    "cache_impact",
    "cache_region",
    "cache_region_source",
    "semantic_cache_writes",
]

_US_PER_MIN = 60_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class CacheImpact:
    """Result of :func:`cache_impact`.

    Attributes:
        prompt: The prompt.
        curve: Hit rate and cost per revision by time bin around every boundary.
        warmup: One row per (boundary, revision) serving after it; cold starts have a fit.
        revisions: Per-revision totals and what one hit saves.
        plateau_share: Share of the plateau that defines the warm-up time.
        idle_minutes: Idle time after which a revision's cache counts as cold.
        last_turn: Time of the last served turn per revision (before ``at``).
        at: The instant the impact was cut at (``None``: every event was used).
    """

    prompt: str
    curve: Table
    warmup: Table
    revisions: Table
    plateau_share: float
    idle_minutes: float
    last_turn: Mapping[str, datetime]
    at: datetime | None = None
    _rebuild: Callable[[datetime], CacheImpact] | None = field(
        default=None, repr=False, compare=False
    )

    def cold_starts(self) -> list[WarmupRow]:
        """The rows of cold starts with a fitted warm-up."""
        return [
            r
            for r in self.warmup.rows
            if isinstance(r, WarmupRow) and r.cold and not math.isnan(r.warmup_minutes)
        ]

    def revision(self, revision: str) -> RevisionCacheRow | None:
        """The totals of one revision, if it served."""
        for r in self.revisions.rows:
            if isinstance(r, RevisionCacheRow) and r.revision == revision:
                return r
        return None

    def predict(
        self, revision: str, *, rate_per_minute: float, at: datetime | None = None
    ) -> ColdStartPrediction:
        """Predict the cold window of ``revision`` taking ``rate_per_minute`` turns from ``at``.

        The cache is expected warm (no cold window) when the revision served a turn in the
        ``idle_minutes`` before ``at``. Nothing logged at or after ``at`` is used: an impact
        built without ``at`` (or with a later one) is rebuilt from the same events cut at
        ``at`` first.
        """
        if at is not None and (self.at is None or at < self.at) and self._rebuild is not None:
            return self._rebuild(at).predict(revision, rate_per_minute=rate_per_minute, at=at)
        last = self.last_turn.get(revision)
        warm = (
            at is not None
            and last is not None
            and (at - last) <= timedelta(minutes=self.idle_minutes)
        )
        totals = self.revision(revision)
        starts = self.cold_starts()
        own = [r for r in starts if r.revision == revision]
        if warm:
            assert last is not None
            return ColdStartPrediction(
                revision,
                False,
                f"{revision} served a turn at {last.isoformat()}, within "
                f"{self.idle_minutes:g} min: its prefix cache is warm",
                rate_per_minute,
                totals.hit_rate if totals else math.nan,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
            )
        if own:
            ref = own[-1]
            basis = f"its own cold start at {ref.boundary_at.isoformat()} ({ref.action})"
            plateau, tau = ref.plateau, ref.tau_minutes
        elif starts:
            plateau = float(median([r.plateau for r in starts]))
            tau = float(median([r.tau_minutes for r in starts]))
            basis = "median of the prompt's observed cold starts: " + ", ".join(
                f"{r.revision} at {r.boundary_at.isoformat()}" for r in starts
            )
        else:
            nan = math.nan
            return ColdStartPrediction(
                revision,
                True,
                "no cold start observed in the export; warm-up unknown",
                rate_per_minute,
                nan,
                nan,
                nan,
                nan,
                nan,
                nan,
            )
        share = self.plateau_share
        warmup = tau * math.log(1.0 / (1.0 - share))
        missed = rate_per_minute * plateau * tau * share
        per_hit = totals if totals is not None else _pooled(self)
        return ColdStartPrediction(
            revision=revision,
            cold=True,
            basis=basis,
            rate_per_minute=rate_per_minute,
            plateau=plateau,
            warmup_minutes=warmup,
            missed_hits=missed,
            extra_uncached_tokens=missed * per_hit.cached_tokens_per_hit,
            extra_cost_usd=missed * per_hit.cost_saved_per_hit,
            extra_latency_ms=missed * per_hit.latency_saved_per_hit_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "prompt": self.prompt,
            "plateau_share": self.plateau_share,
            "idle_minutes": self.idle_minutes,
            "revisions": self.revisions.to_records(),
            "warmup": self.warmup.to_records(),
            "curve": self.curve.to_records(),
        }

    def to_polars(self) -> Any:
        """The warm-up table as a polars DataFrame (``curve`` and ``revisions`` have theirs)."""
        return self.warmup.to_polars()

    def to_pandas(self) -> Any:
        """The warm-up table as a pandas DataFrame."""
        return self.warmup.to_pandas()

    def __str__(self) -> str:
        return f"{self.revisions}\n\n{self.warmup}"

    def to_markdown(self) -> str:
        """Markdown tables (revisions, warm-up)."""
        return f"{self.revisions.to_markdown()}\n\n{self.warmup.to_markdown()}"

    def _repr_html_(self) -> str:
        return self.revisions._repr_html_() + self.warmup._repr_html_()


def cache_impact(
    events: Any,
    ledger: Ledger | str | Path,
    *,
    prompt: str | None = None,
    at: datetime | None = None,
    columns: Mapping[str, str] | None = None,
    curve_bin_minutes: int = 10,
    before_minutes: int = 60,
    after_minutes: int = 240,
    idle_minutes: float = 60.0,
    fit_hours: float = 6.0,
    plateau_share: float = 0.9,
) -> CacheImpact:
    """Prompt-cache hit rate, cost and warm-up of each revision around every boundary.

    Args:
        events: An :class:`~analysis.events.loading.Events` or anything
            :func:`~analysis.events.loading.load_events` reads; needs ``revision_id`` and
            ``cache_hit``
            (``cost_usd``, ``latency_ms``, ``prompt_tokens``, ``cached_tokens``,
            ``output_tokens`` are used when present).
        ledger: A :class:`~analysis.ledger.Ledger` or a ledger path.
        prompt: The prompt (default: the ledger's only prompt).
        at: Ignore events at or after this instant (default: use every event).
        columns: Column map when ``events`` is not loaded yet.
        curve_bin_minutes: Width of the bins of :attr:`CacheImpact.curve`.
        before_minutes: Minutes before each boundary shown in the curve.
        after_minutes: Minutes after each boundary shown in the curve.
        idle_minutes: A revision idle this long before a boundary starts cold.
        fit_hours: Longest window after a boundary used to fit the warm-up.
        plateau_share: Share of the plateau that ends the warm-up (default 0.9).

    Returns:
        A :class:`CacheImpact`; see the module docstring for every definition.

    Raises:
        EventsError: the export lacks ``revision_id`` or ``cache_hit``.
        PromptstateError: an option is out of range.
    """
    if not 0.0 < plateau_share < 1.0:
        raise PromptstateError(f"plateau_share={plateau_share}: must lie strictly between 0 and 1")
    for name, value in (
        ("curve_bin_minutes", curve_bin_minutes),
        ("idle_minutes", idle_minutes),
        ("fit_hours", fit_hours),
    ):
        if value <= 0:
            raise PromptstateError(f"{name}={value}: must be positive")
    from analysis.events.loading import Events, default_unit, load_events

    if not isinstance(ledger, Ledger):
        ledger = load_ledger(ledger)
    prompt = _prompt(ledger, prompt)
    if not isinstance(events, Events):
        events = load_events(events, columns=columns, unit=default_unit(ledger))
    frame, names = prompt_turns(events, ledger, prompt, at=at, columns=columns)
    revisions = _revision_totals(frame, names)
    last_turn = _last_turns(frame)
    boundaries = [t for t in ledger.transitions if t.prompt == prompt and (at is None or t.at < at)]
    before = max(before_minutes, math.ceil(idle_minutes))
    horizon = max(after_minutes, math.ceil(fit_hours * 60))
    cells = _minute_cells(frame, names, [t.at for t in boundaries], before, horizon)
    curve: list[CurveRow] = []
    warm: list[WarmupRow] = []
    totals = {r.revision: r for r in revisions}
    for i, t in enumerate(boundaries):
        nxt = boundaries[i + 1].at if i + 1 < len(boundaries) else None
        limit = horizon if nxt is None else min(horizon, (nxt - t.at).total_seconds() / 60)
        if at is not None:
            limit = min(limit, (at - t.at).total_seconds() / 60)
        mine = cells.get(i, {})
        for rev, minutes in sorted(mine.items()):
            curve.extend(
                curve_rows(
                    t.index,
                    t.at,
                    t.action,
                    rev,
                    minutes,
                    curve_bin_minutes,
                    before_minutes,
                    after_minutes,
                )
            )
            row = warmup_row(
                t.index,
                t.at,
                t.action,
                rev,
                minutes,
                totals[rev],
                idle_minutes,
                limit,
                fit_hours,
                plateau_share,
            )
            if row is not None:
                warm.append(row)
    return CacheImpact(
        prompt=prompt,
        curve=Table(tuple(curve), CurveRow._fields, title="prompt cache around boundaries"),
        warmup=Table(
            tuple(warm),
            WarmupRow._fields,
            title="prompt-cache warm-up after boundaries",
            shown=(
                "boundary_at",
                "action",
                "revision",
                "cold",
                "turns",
                "plateau",
                "warmup_minutes",
                "cold_turns",
                "extra_uncached_tokens",
                "extra_cost_usd",
                "extra_latency_ms",
            ),
            percent=("plateau",),
        ),
        revisions=Table(
            tuple(revisions),
            RevisionCacheRow._fields,
            title="prompt cache by revision",
            percent=("hit_rate",),
        ),
        plateau_share=plateau_share,
        idle_minutes=idle_minutes,
        last_turn=last_turn,
        at=at,
        _rebuild=functools.partial(
            _cut,
            events,
            ledger,
            prompt,
            curve_bin_minutes=curve_bin_minutes,
            before_minutes=before_minutes,
            after_minutes=after_minutes,
            idle_minutes=idle_minutes,
            fit_hours=fit_hours,
            plateau_share=plateau_share,
        ),
    )


def _cut(events: Any, ledger: Ledger, prompt: str, at: datetime, **options: Any) -> CacheImpact:
    """:func:`cache_impact` of the same events cut at ``at``."""
    return cache_impact(events, ledger, prompt=prompt, at=at, **options)


def semantic_cache_writes(
    frame: nw.LazyFrame[Any], revisions: Sequence[str], *, served: str = "revision_id"
) -> nw.LazyFrame[Any]:
    """Semantic-cache entries written by ``revisions``: ``cache_key``, ``revision``, ``first``,
    ``last``, ``writes`` — lazily, one row per key, sorted by key.

    A write is a turn that is not a semantic-cache hit; its ``cache_key`` names the entry.
    """
    names = frame.collect_schema().names()
    missing = [c for c in ("cache_key", "semantic_cache_hit") if c not in names]
    if missing:
        raise EventsError(
            f"events: semantic-cache writes need the column(s) {', '.join(missing)}; map them "
            "with the column map or leave the semantic-cache part out"
        )
    return (
        frame.filter(
            nw.col(served).is_in(list(revisions))
            & ~nw.col("semantic_cache_hit").fill_null(value=False)
            & ~nw.col("cache_key").is_null()
        )
        .group_by("cache_key")
        .agg(
            nw.col(served).min().alias("revision"),
            nw.col("ts").min().alias("first"),
            nw.col("ts").max().alias("last"),
            nw.len().alias("writes"),
        )
        .sort("cache_key")
    )


# ------------------------------------------------------------------------------ data (lazy)


def prompt_turns(
    events: Any,
    ledger: Ledger,
    prompt: str,
    *,
    at: datetime | None = None,
    columns: Mapping[str, str] | None = None,
) -> tuple[nw.LazyFrame[Any], tuple[str, ...]]:
    """The lazy turns served by revisions of ``prompt`` before ``at``, and the column names."""
    from analysis.events.loading import Events, default_unit, load_events

    if isinstance(events, Events):
        loaded = events
    else:
        loaded = load_events(events, columns=columns, unit=default_unit(ledger))
    frame = loaded.frame
    names = tuple(frame.collect_schema().names())
    missing = [c for c in ("revision_id", "cache_hit") if c not in names]
    if missing:
        raise EventsError(
            f"{loaded.report.source}: cache impact needs the column(s) {', '.join(missing)} "
            "(served revision, prompt-cache hit); map them with the column map"
        )
    revs = list(ledger.prompts[prompt].revisions)
    frame = frame.filter(nw.col("revision_id").is_in(revs))
    if at is not None:
        frame = frame.filter(nw.col("ts") < nw.lit(at))
    return frame, names


def _num(name: str, names: Sequence[str]) -> nw.Expr:
    return nw.col(name).cast(nw.Float64) if name in names else nw.lit(None, dtype=nw.Float64)


def _revision_totals(frame: nw.LazyFrame[Any], names: Sequence[str]) -> list[RevisionCacheRow]:
    hit = nw.col("cache_hit").cast(nw.Float64)
    cost, lat = _num("cost_usd", names), _num("latency_ms", names)
    has_tokens = all(c in names for c in ("prompt_tokens", "cached_tokens", "output_tokens"))
    u = _num("prompt_tokens", names) - _num("cached_tokens", names)
    c, o = _num("cached_tokens", names), _num("output_tokens", names)
    aggs = [
        nw.len().alias("n"),
        hit.sum().alias("hits"),
        cost.sum().alias("cost"),
        (cost * hit).sum().alias("cost_hit"),
        lat.sum().alias("lat"),
        (lat * hit).sum().alias("lat_hit"),
        (c * hit).sum().alias("cached_hit"),
    ]
    if has_tokens:
        xs = {"u": u, "c": c, "o": o}
        keys = list(xs)
        for i, a in enumerate(keys):
            aggs.append((xs[a] * cost).sum().alias(f"x{a}y"))
            for b in keys[i:]:
                aggs.append((xs[a] * xs[b]).sum().alias(f"x{a}{b}"))
    rows = frame.group_by("revision_id").agg(*aggs).sort("revision_id").collect().rows(named=True)
    out = []
    for r in rows:
        n, hits = int(r["n"]), float(r["hits"] or 0.0)
        misses = n - hits
        cost_sum = as_float(r["cost"])
        per_hit_tokens = as_float(r["cached_hit"]) / hits if hits else math.nan
        saved = math.nan
        if has_tokens and hits:
            saved = price_gap(r) * per_hit_tokens
        if math.isnan(saved) and hits and misses:
            saved = (cost_sum - as_float(r["cost_hit"])) / misses - as_float(r["cost_hit"]) / hits
        lat_gap = math.nan
        if hits and misses:
            lat_gap = (as_float(r["lat"]) - as_float(r["lat_hit"])) / misses - as_float(
                r["lat_hit"]
            ) / hits
        out.append(
            RevisionCacheRow(
                revision=str(r["revision_id"]),
                turns=n,
                hit_rate=hits / n if n else math.nan,
                cost_per_turn=cost_sum / n if n else math.nan,
                cached_tokens_per_hit=per_hit_tokens,
                cost_saved_per_hit=saved,
                latency_saved_per_hit_ms=lat_gap,
            )
        )
    return out


def _last_turns(frame: nw.LazyFrame[Any]) -> dict[str, datetime]:
    rows = frame.group_by("revision_id").agg(nw.col("ts").max()).collect().rows()
    return {str(rev): ts for rev, ts in rows}


def _minute_cells(
    frame: nw.LazyFrame[Any],
    names: Sequence[str],
    boundaries: Sequence[datetime],
    before: int,
    horizon: int,
) -> dict[int, dict[str, dict[int, tuple[float, ...]]]]:
    """``boundary → revision → minute → (turns, hits, cost, latency)`` around each boundary.

    One lazy pass, linear in events + boundaries (:func:`~analysis.rollback._windows.window_join`
    with buckets as wide as a window): each turn is counted once per boundary whose window
    ``[boundary − before, boundary + horizon)`` holds it.
    """
    if not boundaries:
        return {}
    windows = [
        Window(b - timedelta(minutes=before), b + timedelta(minutes=horizon),
               {"boundary": i, "boundary_us": _epoch_us(b)})
        for i, b in enumerate(boundaries)
    ]  # fmt: skip
    paired = window_join(
        frame, windows, width_us=(before + horizon) * _US_PER_MIN,
        dtypes={"boundary": int, "boundary_us": int},
    )  # fmt: skip
    paired = _engines.with_micros_since(paired, "ts", _EPOCH, "__ps_epoch_us")
    since_epoch = nw.col("__ps_epoch_us")
    minute = ((since_epoch - nw.col("boundary_us")) / _US_PER_MIN).floor().cast(nw.Int64)
    rows = (
        paired.select(
            nw.col("boundary"),
            nw.col("revision_id"),
            minute.alias("minute"),
            nw.col("cache_hit").cast(nw.Float64).alias("hit"),
            _num("cost_usd", names).alias("cost"),
            _num("latency_ms", names).alias("lat"),
        )
        .group_by("boundary", "revision_id", "minute")
        .agg(
            nw.len().alias("n"),
            nw.col("hit").sum(),
            nw.col("cost").sum(),
            nw.col("lat").sum(),
        )
        .collect()
        .rows(named=True)
    )
    out: dict[int, dict[str, dict[int, tuple[float, ...]]]] = {}
    for r in rows:
        cell = (float(r["n"]), as_float(r["hit"]), as_float(r["cost"]), as_float(r["lat"]))
        out.setdefault(int(r["boundary"]), {}).setdefault(str(r["revision_id"]), {})[
            int(r["minute"])
        ] = cell
    return out


# ------------------------------------------------------------------------------ helpers


def _pooled(impact: CacheImpact) -> RevisionCacheRow:
    rows = [r for r in impact.revisions.rows if isinstance(r, RevisionCacheRow)]
    n = sum(r.turns for r in rows) or 1

    def avg(name: str) -> float:
        vals = [(getattr(r, name), r.turns) for r in rows if not math.isnan(getattr(r, name))]
        tot = sum(w for _, w in vals)
        return sum(v * w for v, w in vals) / tot if tot else math.nan

    return RevisionCacheRow(
        "pooled",
        n,
        avg("hit_rate"),
        avg("cost_per_turn"),
        avg("cached_tokens_per_hit"),
        avg("cost_saved_per_hit"),
        avg("latency_saved_per_hit_ms"),
    )


def cache_region_source(ledger: Ledger, revision: str) -> str:
    """Where the ledger's prompt-cache region of ``revision`` comes from: ``cache_prefix`` (its
    declared prefix), ``text hash`` (derived from the text's SHA-256) or ``unknown`` (neither:
    the ledger's ``prefix-<id>`` placeholder, which names no real cache region)."""
    rev = ledger.revisions[revision]
    if rev.text_sha256 is not None and rev.cache_prefix == f"prefix-{rev.text_sha256[:12]}":
        return "text hash"
    if rev.text_sha256 is None and rev.cache_prefix == f"prefix-{rev.id}":
        return "unknown"
    return "cache_prefix"


def cache_region(ledger: Ledger, revision: str) -> str | None:
    """The prompt-cache region (prefix id) of ``revision``: its declared ``cache_prefix``, or the
    one derived from its text hash; ``None`` when the ledger records neither.

    >>> from analysis.ledger import parse_ledger
    >>> led = parse_ledger({"version": 1, "prompts": {"p": {"revisions": {
    ...     "a": {"cache_prefix": "pfx-a"}, "b": {"text": "hi"}, "c": {}}}}})
    >>> cache_region(led, "a"), cache_region(led, "b"), cache_region(led, "c")
    ('pfx-a', 'prefix-8f434346648f', None)
    """
    if cache_region_source(ledger, revision) == "unknown":
        return None
    return ledger.revisions[revision].cache_prefix


def _prompt(ledger: Ledger, prompt: str | None) -> str:
    if prompt is None:
        if len(ledger.prompts) != 1:
            raise PromptstateError(
                f"{ledger.path or 'ledger'}: name the prompt (--prompt); the ledger defines: "
                f"{', '.join(sorted(ledger.prompts))}"
            )
        return next(iter(ledger.prompts))
    ledger._prompt(prompt)
    return prompt
