"""The five legs of a rollback plan (private; the public API is :mod:`analysis.rollback.planning`).

Each ``*_leg`` function returns a :class:`Leg`. Event work is lazy (narwhals); only counts and
small tables are collected. The exports apply writes (cohort, semantic-cache expiry list) are
lazy frames built here and written by :mod:`analysis.rollback.planning`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import narwhals as nw

from analysis.errors import PromptstateError, RollbackError
from analysis.ledger import Ledger, parse_ledger, revision_state

if TYPE_CHECKING:
    from analysis.evals.store import BaselineStore
    from analysis.events.loading import Events

__all__ = ["Leg", "LegAction", "Target"]

Status = Literal["ok", "action", "needs-confirmation"]
LEGS: tuple[str, ...] = ("text", "caches", "cohort", "baseline", "contracts")
_RANK = {"ok": 0, "action": 1, "needs-confirmation": 2}


@dataclass(frozen=True)
class LegAction:
    """One thing a leg asks to be done.

    Attributes:
        kind: Short machine name (``append-transition``, ``expire-prefix``, ``expire-keys``,
            ``export-cohort``, ``truncate-histories``, ``hold-out``, ``check-store``, ``pin``,
            ``reanchor``, ``confirm``, ``notify``).
        description: What to do, in words.
        command: A command to run, when the action is not automatic.
        automatic: Whether ``rollback apply`` performs it.
    """

    kind: str
    description: str
    command: str | None = None
    automatic: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "description": self.description,
            "automatic": self.automatic,
        }
        if self.command is not None:
            out["command"] = self.command
        return out


@dataclass(frozen=True)
class Leg:
    """One leg of a rollback plan.

    Attributes:
        name: ``text``, ``caches``, ``cohort``, ``baseline`` or ``contracts``.
        status: ``ok`` (nothing to do), ``action`` (actions to take) or ``needs-confirmation``
            (a person must confirm before apply proceeds).
        findings: JSON-friendly facts the leg found (read-only mapping).
        actions: What to do.
    """

    name: str
    status: Status
    findings: Mapping[str, Any] = field(default_factory=dict)
    actions: tuple[LegAction, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", MappingProxyType(dict(self.findings)))

    def to_dict(self) -> dict[str, Any]:
        """``{"status", "findings", "actions"}``."""
        return {
            "status": self.status,
            "findings": _plain(dict(self.findings)),
            "actions": [a.to_dict() for a in self.actions],
        }


def worst(statuses: Sequence[str]) -> Status:
    """The most demanding status."""
    best: Status = "ok"
    for s in statuses:
        if _RANK[s] > _RANK[best]:
            best = s  # type: ignore[assignment]
    return best


@dataclass(frozen=True)
class Target:
    """What is rolled back.

    Attributes:
        prompt: The prompt.
        reverted: Revisions that stop serving (the canary's arm revisions, or the live one).
        to: The revision every unit is served afterwards.
        at: The instant the rollback takes effect.
        experiment: The running experiment that ends, or ``None`` for a prompt-level rollback.
        unit: The unit column (the experiment's unit, else ``user_id``).
        transition: The ledger entry to append.
        candidate: The ledger with the transition appended (validated).
    """

    prompt: str
    reverted: tuple[str, ...]
    to: str
    at: datetime
    experiment: str | None
    unit: str
    transition: Mapping[str, Any]
    candidate: Ledger


def resolve(
    ledger: Ledger,
    prompt: str,
    at: datetime,
    to: str | None,
    revision: str | None,
    *,
    reason: str | None = None,
    actor: str | None = None,
) -> Target:
    """Work out from which revision(s) to which the rollback goes, and its ledger entry."""
    where = str(ledger.path or "ledger")
    last = ledger.transitions[-1].at if ledger.transitions else None
    if last is not None and at < last:
        raise RollbackError(
            f"{where}: the rollback time {at.isoformat()} is before the ledger's last "
            f"transition ({last.isoformat()}); pass --at at or after it"
        )
    running = ledger.running_experiment(prompt, at)
    live = ledger.live_revision(prompt, at)
    served = ledger.served_revisions(prompt)
    entry: dict[str, Any] = {"at": at.isoformat().replace("+00:00", "Z"), "action": "rollback"}
    if running is not None:
        exp = ledger.experiments[running]
        control_rev = exp.arms[exp.control]
        target = to or control_rev
        reverted = tuple(r for r in dict.fromkeys(exp.arms.values()) if r != target)
        entry.update({"experiment": running, "to": target})
        unit = exp.unit
        canary = ", ".join(reverted)
        if revision is not None and revision not in reverted:
            raise RollbackError(
                f"{where}: revision {revision!r} is not served by the running experiment "
                f"{running!r} (it serves {canary} besides {target}); name one of those or leave "
                "--revision out"
            )
    else:
        if live is None:
            raise RollbackError(f"{where}: prompt {prompt!r} has no live revision to roll back")
        if revision is not None and revision != live:
            state = revision_state(ledger, revision, at).rollout_state
            raise RollbackError(
                f"{where}: revision {revision!r} is not live (it is {state}); the live revision "
                f"of {prompt!r} is {live!r} and no experiment is running — nothing to roll back "
                f"for {revision!r}"
            )
        previous = to or _previous_live(ledger, prompt, live)
        if previous is None:
            raise RollbackError(
                f"{where}: {live!r} is the only revision {prompt!r} has served live and it has "
                "no parent that served; name the target with --to"
            )
        target = previous
        reverted = (live,)
        entry.update({"prompt": prompt, "to": target})
        unit = prompt_unit(ledger, prompt)
    if target not in ledger.prompts[prompt].revisions:
        raise RollbackError(
            f"{where}: --to {target!r} is not a revision of prompt {prompt!r} (revisions: "
            f"{', '.join(ledger.prompts[prompt].revisions)})"
        )
    if target not in served:
        raise RollbackError(
            f"{where}: --to {target!r} never served traffic (served: "
            f"{', '.join(sorted(served)) or 'none'}); roll back to a revision that was live or "
            "an arm of an experiment"
        )
    if not reverted:
        raise RollbackError(f"{where}: {target!r} is already what every unit is served")
    if reason:
        entry["reason"] = reason
    if actor:
        entry["actor"] = actor
    data = ledger.to_dict()
    data["transitions"] = [*data["transitions"], entry]
    candidate = parse_ledger(data, path=ledger.path)
    return Target(prompt, reverted, target, at, running, unit, entry, candidate)


def prompt_unit(ledger: Ledger, prompt: str) -> str:
    """The unit column of a prompt-level rollback: the unit the prompt's experiments declare
    when they agree, else the ledger's (:func:`analysis.events.loading.default_unit`)."""
    from analysis.events.loading import default_unit

    units = {e.unit for e in ledger.experiments.values() if e.prompt == prompt}
    return units.pop() if len(units) == 1 else default_unit(ledger)


def _previous_live(ledger: Ledger, prompt: str, live: str) -> str | None:
    history = [rev for _, rev in ledger.live_history(prompt) if rev is not None]
    for rev in reversed(history):
        if rev != live:
            return rev
    parent = ledger.revisions[live].parent
    return parent if parent in ledger.served_revisions(prompt) else None


# ------------------------------------------------------------------------------------ text


def text_leg(ledger: Ledger, t: Target, recorded: int | None = None) -> Leg:
    """From which revision to which, their states, and the ledger entry to append.

    ``recorded``: the index of the ledger transition that already records this rollback (the
    plan of a recorded rollback); then there is nothing to append and the leg is ``ok``.
    """
    states = {r: revision_state(ledger, r, t.at) for r in (*t.reverted, t.to)}
    findings = {
        "at": t.at,
        "experiment": t.experiment,
        "from": {
            r: {
                "rollout_state": states[r].rollout_state,
                "text_sha256": states[r].text_sha256,
                "contract": states[r].contract_version,
            }
            for r in t.reverted
        },
        "to": {
            "revision": t.to,
            "rollout_state": states[t.to].rollout_state,
            "text_sha256": states[t.to].text_sha256,
            "contract": states[t.to].contract_version,
        },
        "transition": dict(t.transition),
        "recorded_transition": recorded,
    }
    if recorded is not None:
        return Leg("text", "ok", findings)
    what = f"end {t.experiment}" if t.experiment else f"revert {t.prompt}"
    action = LegAction(
        "append-transition",
        f"append to the ledger: rollback at {t.transition['at']} ({what}; every unit "
        f"is served {t.to})",
        automatic=True,
    )
    return Leg("text", "action", findings, (action,))


# ---------------------------------------------------------------------------------- events


def served_frame(events: Events, ledger: Ledger, t: Target) -> nw.LazyFrame[Any]:
    """The prompt's turns before ``t.at`` with ``served_revision`` (logged or inferred)."""
    frame = events.frame
    names = frame.collect_schema().names()
    revs = list(ledger.prompts[t.prompt].revisions)
    if "revision_id" in names:
        frame = frame.with_columns(nw.col("revision_id").alias("served_revision"))
    elif t.experiment is not None:
        from analysis.events.labelling import split

        frame = split(events, ledger, t.experiment).frame
    else:
        frame = _with_live_revision(frame, ledger, t.prompt)
    return frame.filter(nw.col("served_revision").is_in(revs) & (nw.col("ts") < nw.lit(t.at)))


def _with_live_revision(frame: nw.LazyFrame[Any], ledger: Ledger, prompt: str) -> nw.LazyFrame[Any]:
    """``served_revision``: the prompt's live revision at each event's time (from the ledger).

    One join, linear in events + transitions (:func:`~analysis.rollback._windows.window_join`
    over the live intervals, their span cut into at most 4,096 buckets); events before the
    first deploy, or while no revision is live, get no row (they are not the prompt's turns).
    """
    from analysis.rollback._windows import Window, window_join

    history = list(ledger.live_history(prompt))
    windows = [
        Window(at, history[i + 1][0] if i + 1 < len(history) else None, {"served_revision": rev})
        for i, (at, rev) in enumerate(history)
        if rev is not None
    ]
    span_us = int((history[-1][0] - history[0][0]).total_seconds() * 1e6) if history else 0
    width = max(span_us // 4096, 60_000_000)
    return window_join(frame, windows, width_us=width, dtypes={"served_revision": str})


def exposed_expr(frame: nw.LazyFrame[Any], reverted: Sequence[str]) -> nw.Expr:
    """A turn exposed to a reverted revision: served by it or answered from its cache entry."""
    expr = nw.col("served_revision").is_in(list(reverted))
    if "response_revision_id" in frame.collect_schema().names():
        expr = expr | nw.col("response_revision_id").is_in(list(reverted)).fill_null(value=False)
    return expr


def cohort_units(frame: nw.LazyFrame[Any], t: Target) -> nw.LazyFrame[Any]:
    """Exposed units (served a reverted revision before ``t.at``): ``unit``, ``first_exposed``,
    ``last_exposed``, ``exposed_turns``.

    Semantic-cache hits that returned a reverted revision's response do not make a unit
    exposed (they reach units of every arm at random; the recovery analysis counts them per
    conversation instead), but they do taint the conversation (see
    :func:`cohort_conversations`).
    """
    return (
        frame.filter(nw.col("served_revision").is_in(list(t.reverted)))
        .group_by(t.unit)
        .agg(
            nw.col("ts").min().alias("first_exposed"),
            nw.col("ts").max().alias("last_exposed"),
            nw.len().alias("exposed_turns"),
        )
        .sort(t.unit)
    )


def cohort_conversations(
    frame: nw.LazyFrame[Any], t: Target, open_hours: float
) -> nw.LazyFrame[Any]:
    """Tainted conversations: ``conversation_id``, unit, first exposed turn, last turn, ``open``.

    A conversation is *tainted* when its history holds a turn of a reverted revision: served by
    it, or answered with a response it wrote (semantic-cache hit) — before ``t.at``. It is
    *open* at ``t.at`` when its last turn before ``t.at`` is less than ``open_hours`` earlier.
    """
    has_conv = ~nw.col("conversation_id").is_null()
    tainted = (
        frame.filter(exposed_expr(frame, t.reverted) & has_conv)
        .group_by("conversation_id")
        .agg(
            nw.col(t.unit).min().alias(t.unit),
            nw.col("ts").min().alias("first_exposed"),
            nw.len().alias("exposed_turns"),
        )
    )
    last = (
        frame.filter(has_conv)
        .group_by("conversation_id")
        .agg(nw.col("ts").max().alias("last_turn"), nw.len().alias("turns"))
    )
    cutoff = t.at - timedelta(hours=open_hours)
    return (
        tainted.join(last, on="conversation_id", how="inner")
        .with_columns((nw.col("last_turn") >= nw.lit(cutoff)).alias("open"))
        .sort("conversation_id")
    )


# ---------------------------------------------------------------------------------- caches


def caches_leg(
    ledger: Ledger,
    t: Target,
    events: Events | None,
    *,
    idle_minutes: float,
) -> Leg:
    """Prefix region to expire, observed warm-up, predicted cold window, semantic-cache keys."""
    from analysis.rollback.cache import (
        cache_impact,
        cache_region,
        cache_region_source,
        prompt_turns,
        semantic_cache_writes,
    )

    findings: dict[str, Any] = {
        "prefixes_to_expire": [
            {
                "revision": r,
                "cache_prefix": cache_region(ledger, r),
                "source": cache_region_source(ledger, r),
            }
            for r in t.reverted
        ],
        "restored_prefix": cache_region(ledger, t.to),
    }
    actions = [_expire_prefix(ledger, r) for r in t.reverted]
    if events is None:
        findings["events"] = "not given: no observed hit rates, warm-up or semantic-cache keys"
        return Leg("caches", "action", findings, tuple(actions))
    names = events.frame.collect_schema().names()
    if "revision_id" in names and "cache_hit" in names:
        impact = cache_impact(events, ledger, prompt=t.prompt, at=t.at, idle_minutes=idle_minutes)
        frame, _ = prompt_turns(events, ledger, t.prompt, at=t.at)
        rate = _rate_per_minute(frame, t.at)
        prediction = impact.predict(t.to, rate_per_minute=rate, at=t.at)
        findings["hit_rate"] = {
            getattr(r, "revision", ""): getattr(r, "hit_rate", None) for r in impact.revisions.rows
        }
        findings["observed_warmup"] = [
            {
                "revision": r.revision,
                "boundary": r.action,
                "at": r.boundary_at,
                "plateau": r.plateau,
                "warmup_minutes": r.warmup_minutes,
                "extra_cost_usd": r.extra_cost_usd,
            }
            for r in impact.cold_starts()
        ]
        findings["restored_cache"] = prediction.to_dict()
        if prediction.cold and not math.isnan(prediction.warmup_minutes):
            actions.append(
                LegAction(
                    "warm-cache",
                    f"expect a cold prefix cache for {t.to}: about "
                    f"{prediction.warmup_minutes:.0f} min to reach "
                    f"{impact.plateau_share:.0%} of its plateau, "
                    f"~{prediction.extra_uncached_tokens:,.0f} extra uncached tokens, "
                    f"${prediction.extra_cost_usd:,.2f} extra cost; pre-warm it or accept",
                )
            )
    else:
        findings["prompt_cache"] = "not observed: the export has no revision_id / cache_hit"
    if "cache_key" in names and "semantic_cache_hit" in names:
        frame = served_frame(events, ledger, t)
        writes = semantic_cache_writes(frame, t.reverted, served="served_revision")
        n_keys = int(writes.select(nw.len()).collect().item())
        findings["semantic_cache_keys"] = n_keys
        if n_keys:
            actions.append(
                LegAction(
                    "expire-keys",
                    f"expire {n_keys} semantic-cache entries written by "
                    f"{', '.join(t.reverted)} (expiry list written by apply)",
                    automatic=True,
                )
            )
    else:
        findings["semantic_cache_keys"] = None
    return Leg("caches", "action" if actions else "ok", findings, tuple(actions))


def _expire_prefix(ledger: Ledger, revision: str) -> LegAction:
    """Expire a reverted revision's prompt-cache region, or say that the ledger does not know
    it (never a made-up region name)."""
    from analysis.rollback.cache import cache_region

    region = cache_region(ledger, revision)
    if region is not None:
        return LegAction("expire-prefix", f"expire the prompt-cache region {region} of {revision}")
    return LegAction(
        "expire-prefix",
        f"prompt-cache region of {revision} unknown (the ledger has no cache_prefix or text "
        f"for it): expire it by hand, and declare cache_prefix of {revision} in the ledger",
    )


def _rate_per_minute(frame: nw.LazyFrame[Any], at: datetime, minutes: int = 60) -> float:
    n = frame.filter(nw.col("ts") >= nw.lit(at - timedelta(minutes=minutes))).select(nw.len())
    return float(n.collect().item()) / minutes


# ---------------------------------------------------------------------------------- cohort


def cohort_leg(
    ledger: Ledger,
    t: Target,
    events: Events | None,
    *,
    open_hours: float,
    holdout_days: float,
    recovery: bool,
    metrics: Sequence[Any] | None = None,
) -> Leg:
    """Exposed units and conversations, open tainted conversations, options, residual effect."""
    if events is None:
        return Leg(
            "cohort",
            "action",
            {"units": None, "conversations": None, "open_tainted_conversations": None,
             "events": "not given: the cohort cannot be counted"},
            (LegAction("export-cohort", "pass --events to count and export the exposed cohort"),),
        )  # fmt: skip
    frame = served_frame(events, ledger, t)
    names = frame.collect_schema().names()
    units = cohort_units(frame, t)
    counts: dict[str, Any] = {"units": int(units.select(nw.len()).collect().item())}
    if "conversation_id" in names:
        convs = cohort_conversations(frame, t, open_hours)
        row = convs.select(
            nw.len().alias("conversations"),
            nw.col("open").cast(nw.Int64).sum().alias("open"),
        ).collect()
        counts["conversations"] = int(row["conversations"][0])
        counts["open_tainted_conversations"] = int(row["open"][0] or 0)
        counts["continued_after"] = _continued(events, convs, t)
    else:
        counts["conversations"] = None
        counts["open_tainted_conversations"] = None
    findings: dict[str, Any] = {
        **counts,
        "unit": t.unit,
        "open_hours": open_hours,
        "exposed": f"units served {', '.join(t.reverted)} before {t.at.isoformat()}; "
        "conversations holding a turn it served or a response it wrote (semantic cache)",
        "options": {
            "histories": ["truncate", "reset", "leave"],
            "holdout_days": holdout_days,
        },
    }
    findings["residual_effect"] = _residual(events, t, metrics) if recovery else None
    actions: list[LegAction] = []
    if counts["units"]:
        actions.append(
            LegAction(
                "export-cohort",
                f"export the {counts['units']} exposed units and "
                f"{counts['conversations'] or 0} tainted conversations (written by apply)",
                automatic=True,
            )
        )
        until = t.at + timedelta(days=holdout_days)
        actions.append(
            LegAction(
                "hold-out",
                f"hold the {counts['units']} exposed units out of new experiments of "
                f"{t.prompt} for {holdout_days:g} days (until {until.date().isoformat()}), or "
                "stratify on exposure",
            )
        )
    if counts.get("open_tainted_conversations"):
        actions.append(
            LegAction(
                "truncate-histories",
                f"{counts['open_tainted_conversations']} open conversations hold turns of "
                f"{', '.join(t.reverted)}: truncate their histories to before the first exposed "
                "turn (or reset them, or leave them and exclude them from analyses)",
            )
        )
    return Leg("cohort", "action" if actions else "ok", findings, tuple(actions))


def _continued(events: Events, convs: nw.LazyFrame[Any], t: Target) -> int | None:
    """Tainted conversations with a turn at or after ``t.at`` (None when the export ends first)."""
    later = events.frame.filter(nw.col("ts") >= nw.lit(t.at))
    if not later.select(nw.len()).collect().item():
        return None
    ids = later.select("conversation_id").unique()
    return int(convs.join(ids, on="conversation_id", how="inner").select(nw.len()).collect().item())


def _residual(events: Events, t: Target, metrics: Sequence[Any] | None = None) -> Any:
    """Exposed − never-exposed after ``t.at`` from the recovery analysis, when measurable."""
    if t.experiment is None:
        return {"available": False, "why": "prompt-level rollback: no randomized cohort"}
    after = events.frame.filter(nw.col("ts") >= nw.lit(t.at)).select(nw.len()).collect().item()
    if not after:
        return {"available": False, "why": f"no events at or after {t.at.isoformat()} yet"}
    try:
        from analysis.metrics import analyze
    except ImportError:  # pragma: no cover - the recovery analysis is optional
        return {"available": False, "why": "the recovery analysis is not installed"}
    try:
        result = analyze(events, t.candidate, t.experiment, metrics=metrics, explain=False)
    except PromptstateError as exc:  # e.g. the export lacks the default metrics' columns
        return {"available": False, "why": f"recovery analysis not possible: {exc}"}
    summary = {(r.metric, r.group): r for r in result.recovery_summary.rows}  # type: ignore[attr-defined]
    rows = []
    for r in result.recovery.rows:
        if getattr(r, "bin", 0) is not None:
            continue
        s = summary.get((r.metric, r.group))  # type: ignore[attr-defined]
        rows.append(
            {
                "metric": r.metric,  # type: ignore[attr-defined]
                "group": r.group,  # type: ignore[attr-defined]
                "effect": r.effect,  # type: ignore[attr-defined]
                "ci": [r.effect_ci_lower, r.effect_ci_upper],  # type: ignore[attr-defined]
                "n_group": r.n_group,  # type: ignore[attr-defined]
                "recovered_after_hours": getattr(s, "recovered_after_hours", None),
            }
        )
    return {
        "available": True,
        "events_after": int(after),
        "reference": "never_exposed",
        "rows": rows,
    }


# -------------------------------------------------------------------------------- baseline


def baseline_leg(ledger: Ledger, t: Target, store: BaselineStore | None) -> Leg:
    """Suites whose reference is anchored to a reverted revision, and the action that applies."""
    if store is None:
        note = (
            "no baseline store: no --store, PROMPTSTATE_STORE, [tool.promptstate] store in "
            "pyproject.toml or ./baselines; eval suites anchored to "
            f"{', '.join(t.reverted)} are not checked"
        )
        action = LegAction(
            "check-store",
            f"{note} — pass --store PATH to check them (or start one with baseline init "
            "--store PATH)",
        )
        return Leg("baseline", "action", {"suites": [], "store": None, "note": note}, (action,))
    suites: list[dict[str, Any]] = []
    actions: list[LegAction] = []
    index = len(ledger.transitions)
    opt = store.store_option()
    for name in store.suite_names():
        suite = store.suite(name)
        cfg = suite.config
        if cfg.prompt != t.prompt:
            continue
        ref = suite.reference()
        item: dict[str, Any] = {
            "suite": name,
            "reference": ref.version,
            "revision": ref.revision,
            "pinned": ref.pinned,
            "policy": cfg.on_revert,
        }
        if ref.revision not in t.reverted:
            item["action"] = "none"
            suites.append(item)
            continue
        target = suite.latest_version(t.to)
        if cfg.on_revert == "pin" and target is not None:
            item["action"] = "pin"
            item["target"] = target
            actions.append(
                LegAction(
                    "pin",
                    f"suite {name}: reference {ref.version} is anchored to {ref.revision}; pin "
                    f"{target} ({t.to}) (policy pin)",
                    automatic=True,
                )
            )
        else:
            why = "policy reanchor" if cfg.on_revert == "reanchor" else f"no baseline of {t.to}"
            cmd = (
                f"promptstate baseline revert {name} --reverted {ref.revision} --restored {t.to} "
                f"--policy reanchor --results FILE --ledger-transition {index}{opt}"
            )
            item["action"] = "reanchor"
            item["command"] = cmd
            actions.append(
                LegAction(
                    "reanchor",
                    f"suite {name}: reference {ref.version} is anchored to {ref.revision}; "
                    f"evaluate {t.to} and re-anchor ({why}); apply reports it as pending",
                    command=cmd,
                )
            )
        suites.append(item)
    return Leg(
        "baseline", "action" if actions else "ok", {"store": str(store.root), "suites": suites},
        tuple(actions),
    )  # fmt: skip


# ------------------------------------------------------------------------------- contracts


def contracts_leg(
    ledger: Ledger, t: Target, events: Events | None, confirmed: Sequence[str]
) -> Leg:
    """Consumers whose accepted contracts exclude the restored revision's contract."""
    from analysis.rollback.contracts import contract_check

    check = contract_check(ledger, t.prompt, events=events, at=t.at)
    changes = check.change(t.reverted, t.to)
    consumers = []
    actions: list[LegAction] = []
    pending = False
    to_contract = ledger.revisions[t.to].contract
    for c in changes:
        status: str = c.status
        if c.status in ("breaks", "incompatible"):
            if c.name in confirmed:
                status = "confirmed"
                actions.append(
                    LegAction(
                        "notify",
                        f"{c.name} accepts {', '.join(c.accepts)} but will receive "
                        f"{to_contract} outputs (confirmed)",
                    )
                )
            else:
                status = "needs-confirmation"
                pending = True
                actions.append(
                    LegAction(
                        "confirm",
                        f"{c.name} accepts {', '.join(c.accepts)}, not {to_contract} from "
                        f"{t.to}: confirm it can take {t.to}'s output (--confirm {c.name})",
                    )
                )
        consumers.append({"name": c.name, "accepts": list(c.accepts), "status": status})
    unknown = sorted(set(confirmed) - {c.name for c in changes})
    if unknown:
        raise RollbackError(
            f"--confirm {', '.join(unknown)}: not a consumer of {t.prompt!r} (consumers: "
            f"{', '.join(c.name for c in changes) or 'none'})"
        )
    findings: dict[str, Any] = {
        "contract": {"from": {r: ledger.revisions[r].contract for r in t.reverted},
                     "to": to_contract},
        "consumers": consumers,
        "parse_failures": check.parse_failures.to_records() if check.parse_checked else None,
    }  # fmt: skip
    leg_status: Status = "needs-confirmation" if pending else ("action" if actions else "ok")
    return Leg("contracts", leg_status, findings, tuple(actions))


# ---------------------------------------------------------------------------------- helpers


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value
