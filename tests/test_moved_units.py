"""Ramp-moved units (issue 21): labels, the symmetric ``prior_conversation`` exclusion, the
estimator with moved units kept (one cluster per unit), ``moved_units="exclude"``, the
fresh-cohort estimate and the phase-equality test — each against an independent reference
(numpy brute force over per-unit rows rebuilt here, statsmodels cluster-robust OLS)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from _generators import END, RAMP, START, RampSpec, generate, ledger_file

from analysis.errors import PromptstateError
from analysis.events.labelling import split
from analysis.ledger import load_ledger
from analysis.metrics import analyze
from analysis.metrics.definitions import Mean, Proportion, Ratio

# -- a small generator ---------------------------------------------------------------------
# Hash-bucket ramp from 0.8/0.2 to 0.5/0.5 at RAMP (the ledger of tests/_generators): every
# unit keeps its bucket, so control units with buckets in [0.2, 0.5) active on both sides of
# the ramp are ramp-moved. Conversations are runs of a unit's turns that may span the start
# (from untagged pre-period turns) and the ramp. Optional stray units (treatment back to
# control) and mixed units (two arms within phase 1). Heavier units rate higher.

_US = 1_000_000
_H = 3600 * _US


def generate_moved(
    n_units: int = 800,
    seed: int = 0,
    *,
    effect: float = -0.3,
    strays: int = 0,
    mixed: int = 0,
    pre_share: float = 0.5,
) -> tuple[Any, dict[str, Any]]:
    """``(events, truth)``: a polars export and, per unit id, its bucket and activity."""
    import polars as pl

    rng = np.random.default_rng(seed)
    s0 = int(START.timestamp() * _US)
    ramp, end = int(RAMP.timestamp() * _US), int(END.timestamp() * _US)
    bucket = rng.random(n_units)
    rate = rng.gamma(2.0, 0.15, n_units)
    u = rng.normal(0, 0.5, n_units) + 0.8 * (rate - rate.mean())
    arrive = s0 + (rng.random(n_units) * (end - s0 - 6 * _H)).astype(np.int64)
    leave = np.minimum(arrive + (rng.exponential(30.0, n_units) * _H).astype(np.int64), end - 1)
    k = rng.poisson(rate * (leave - arrive) / _H) + 1
    unit = np.repeat(np.arange(n_units), k)
    ts = arrive[unit] + (rng.random(unit.size) * (leave - arrive)[unit]).astype(np.int64)
    has_pre = rng.random(n_units) < pre_share
    k_pre = np.where(has_pre, rng.poisson(2.0, n_units), 0)
    unit_pre = np.repeat(np.arange(n_units), k_pre)
    ts_pre = s0 - (rng.random(unit_pre.size) * 48 * _H).astype(np.int64)
    unit = np.concatenate([unit_pre, unit])
    ts = np.concatenate([ts_pre, ts])
    order = np.lexsort((ts, unit))
    unit, ts = unit[order], ts[order]
    m = ts.size
    share = np.where(ts < ramp, 0.2, 0.5)
    treat = bucket[unit] < share
    exposed = ts >= s0
    # strays: treatment units of phase 1 active in phase 2 are put back into control there
    both = np.zeros(n_units, dtype=bool)
    for i in np.unique(unit[exposed & (ts < ramp)]):
        both[i] = True
    late = np.zeros(n_units, dtype=bool)
    late[np.unique(unit[ts >= ramp])] = True
    cand = np.flatnonzero(both & late & (bucket < 0.2))
    stray_ids = cand[:strays]
    treat[np.isin(unit, stray_ids) & (ts >= ramp)] = False
    cand_m = np.flatnonzero(both & (bucket >= 0.5))
    mixed_ids = cand_m[:mixed]
    flip = np.isin(unit, mixed_ids) & exposed & (ts < ramp) & (rng.random(m) < 0.5)
    treat[flip] = True
    # conversations: a new one starts with probability 0.35 at each turn of a unit
    new = np.r_[True, (unit[1:] != unit[:-1]) | (rng.random(m - 1) < 0.35)]
    cid = np.cumsum(new) - 1
    served = np.where(exposed & treat, 2, 1)
    days = (ts - s0) / (24 * _H)
    y = 3.0 + u[unit] + 0.15 * days + effect * (served == 2) + rng.normal(0, 1.0, m)
    events = pl.DataFrame(
        {
            "event_id": [f"e{j}" for j in range(m)],
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "user_id": [f"u{i}" for i in unit],
            "experiment_id": pl.Series(np.where(exposed, "exp-ramp", "")).replace("", None),
            "arm": pl.Series(
                np.where(exposed, np.where(treat, "treatment", "control"), "")
            ).replace("", None),
            "conversation_id": [f"c{c}" for c in cid],
            "revision_id": [f"r{s}" for s in served],
            "helpfulness": y,
        }
    )
    truth = {
        "bucket": {f"u{i}": float(b) for i, b in enumerate(bucket)},
        "strays": {f"u{i}" for i in stray_ids},
        "mixed": {f"u{i}" for i in mixed_ids},
        "ramp": RAMP,
        "start": START,
        "end": END,
    }
    return events, truth


OLD_NUMBERS = {
    "6.0|helpfulness|1": [
        -0.3667077757811872,
        0.08424215333543453,
        380,
        106,
        3.6787994618698616,
        0.05921387219557493,
    ],
    "6.0|helpfulness|2": [
        -0.3536827786538992,
        0.0521739598510129,
        435,
        350,
        3.889872237393612,
        0.05103839957526677,
    ],
    "6.0|helpfulness|combined": [
        -0.36155667177102924,
        0.04883256275867443,
        673,
        410,
        3.8214377772530255,
        0.05546211136940794,
    ],
    "6.0|h_unit|1": [
        -1.508045541408209,
        0.35272849616496493,
        380,
        106,
        7.348425327870536,
        0.05853693375102061,
    ],
    "6.0|h_unit|2": [
        -0.7774217607386245,
        0.30380271680536575,
        435,
        350,
        8.158062421675924,
        0.10378040587112511,
    ],
    "6.0|h_unit|combined": [
        -1.0248774346546243,
        0.25615520127743585,
        673,
        410,
        7.882671776388597,
        0.09118803204606091,
    ],
    "6.0|h_any|1": [0.0, 0.0, 380, 106, 1.0, 0.0],
    "6.0|h_any|2": [0.0, 0.0, 435, 350, 1.0, 0.0],
    "6.0|h_any|combined": [0.0, 0.0, 673, 410, 1.0, 0.0],
    "None|helpfulness|1": [
        -0.3729641956838283,
        0.0927336271935949,
        380,
        106,
        3.678949029240996,
        0.054932107740222884,
    ],
    "None|helpfulness|2": [
        -0.3173740830568019,
        0.05717941582436841,
        435,
        350,
        3.8847195136446535,
        0.05541349895334828,
    ],
    "None|helpfulness|combined": [
        -0.33615823637422526,
        0.053779027227932576,
        673,
        410,
        3.818004173506215,
        0.06004618592095341,
    ],
    "None|h_unit|1": [
        -3.0729850919731145,
        1.1527544113044648,
        380,
        106,
        14.609300224012271,
        0.1940777578370695,
    ],
    "None|h_unit|2": [
        -2.2227017461907934,
        1.1986507521073617,
        435,
        350,
        19.628996531013676,
        0.3317962381392214,
    ],
    "None|h_unit|combined": [
        -2.5241179468249335,
        0.9315398766707882,
        673,
        410,
        17.70958472518938,
        0.29306074961039136,
    ],
    "None|h_any|1": [0.0, 0.0, 380, 106, 1.0, 0.0],
    "None|h_any|2": [0.0, 0.0, 435, 350, 1.0, 0.0],
    "None|h_any|combined": [0.0, 0.0, 673, 410, 1.0, 0.0],
}
"""Clean rows of ``analyze`` before ramp-moved units were kept (commit 14e085e, before issue 21), on ``generate(RampSpec(n_units=1500, seed=5))`` with the three metrics of
:func:`_old_metrics`: ``"<block_hours>|<metric>|<phase>" -> [effect, se, n_control, n_arm,
control_mean, cuped_theta]``. ``moved_units="exclude"`` must reproduce them."""


def _old_metrics() -> list[Any]:
    return [
        Ratio("helpfulness"),
        Mean("helpfulness", name="h_unit"),
        Proportion("helpfulness", name="h_any"),
    ]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_ledger(ledger_file(tmp_path_factory.mktemp("moved")))


@pytest.fixture(scope="module")
def moved(ledger: Any) -> tuple[Any, dict[str, Any]]:
    events, truth = generate_moved(900, seed=3, strays=4, mixed=4)
    return split(events, ledger), truth


def _rows(table: Any) -> list[Any]:
    return list(table.rows)


def _labelled(res: Any) -> pl.DataFrame:
    return res.frame.collect().to_polars()


# -- labels -------------------------------------------------------------------------------------


def test_ramp_moved_units_keep_their_labels_strays_and_mixed_stay_crossover(
    moved: tuple[Any, dict[str, Any]],
) -> None:
    res, truth = moved
    df = _labelled(res)
    start, ramp = truth["start"], truth["ramp"]
    exposed = df.filter(pl.col("experiment_id") == "exp-ramp")
    per_unit = exposed.group_by("user_id").agg(
        pl.col("arm").filter(pl.col("ts") < ramp).unique().alias("a1"),
        pl.col("arm").filter(pl.col("ts") >= ramp).unique().alias("a2"),
    )
    # expected, from the buckets: control in phase 1 (bucket >= 0.2), treatment in phase 2
    # (bucket < 0.5), seen in both phases, neither stray nor mixed
    want_moved = {
        r["user_id"]
        for r in per_unit.iter_rows(named=True)
        if r["a1"] == ["control"]
        and r["a2"] == ["treatment"]
        and 0.2 <= truth["bucket"][r["user_id"]] < 0.5
    }
    assert len(want_moved) > 20
    got_moved = set(df.filter(pl.col("ramp_moved"))["user_id"].unique().to_list())
    assert got_moved == want_moved
    # every event of a moved unit carries the flag, also its untagged pre-period turns
    assert df.filter(pl.col("user_id").is_in(list(want_moved)))["ramp_moved"].all()
    assert df.filter(pl.col("ramp_moved"))["contamination"].is_in(["crossover"]).sum() == 0
    assert df.filter(pl.col("ramp_moved") & (pl.col("contamination") == "clean")).height > 0
    crossed = set(df.filter(pl.col("contamination") == "crossover")["user_id"].unique())
    assert crossed == truth["strays"] | truth["mixed"]
    # every exposed event of a stray or mixed unit is crossover
    bad = exposed.filter(pl.col("user_id").is_in(list(crossed)) & (pl.col("ts") >= start))
    assert (bad["contamination"] == "crossover").all()
    summary = res.summary()
    assert summary.moved_units == len(want_moved)
    assert summary.moved_events == df.filter(pl.col("ramp_moved")).height
    assert "ramp-moved units" in str(summary)
    assert "ramp-moved units" in summary.to_markdown()
    assert summary.to_dict()["moved_units"] == len(want_moved)


def test_prior_conversation_is_symmetric_across_arms(ledger: Any) -> None:
    """Conversations that began before a phase's start: without the new label only the
    moved units' (phase 2) and the treatment units' (phase 1, begun under the pre-period's
    control revision) would be left out (``carryover``); now every arm loses them alike."""
    events, truth = generate_moved(4000, seed=11, pre_share=0.8)
    df = _labelled(split(events, ledger))
    ev = events.select("event_id", "conversation_id", "ts")
    c0 = ev.group_by("conversation_id").agg(pl.col("ts").min().alias("c0"))
    df = df.join(c0, on="conversation_id")
    starts = {1: truth["start"], 2: truth["ramp"]}
    out = {}
    for phase, start in starts.items():
        ph = df.filter((pl.col("phase") == phase) & ~pl.col("contamination").is_in(["crossover"]))
        # independent: turns of conversations begun before the phase's start
        spanning = ph.filter(pl.col("c0") < start)
        assert set(spanning["contamination"].unique()) <= {
            "carryover",
            "prior_conversation",
            "stale_cache",
            "served_mismatch",
        }
        later = ph.filter(pl.col("c0") >= start)
        assert "prior_conversation" not in set(later["contamination"].unique())
        for arm in ("control", "treatment"):
            a = ph.filter(pl.col("arm") == arm)
            k = a.filter(pl.col("contamination").is_in(["carryover", "prior_conversation"]))
            out[(phase, arm)] = (k.height, a.height)
        # carryover now only where the revision changed inside the conversation
        carry = ph.filter(pl.col("contamination") == "carryover")
        if phase == 2:  # conversations begun in phase 1: only moved units change revision
            assert carry.filter(pl.col("c0") >= truth["start"])["ramp_moved"].all()
        else:
            assert (carry["arm"] == "treatment").all()
    for phase in starts:
        (kc, nc), (kt, nt) = out[(phase, "control")], out[(phase, "treatment")]
        pc, pt = kc / nc, kt / nt
        pooled = (kc + kt) / (nc + nt)
        se = math.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt))
        assert pc > 0.02
        assert pt > 0.02
        # the excluded share is the same in both arms (turns are clustered in units and
        # conversations, so allow a generous 6 binomial SEs)
        assert abs(pc - pt) < 6 * se, (phase, pc, pt, se)


# -- the estimator: brute force and statsmodels ---------------------------------------------


def _unit_phase_rows(res: Any) -> pl.DataFrame:
    """Per unit × exposure phase (one stratum each): arm, helpfulness total, turns, first
    enrollment phase; from the labelled clean events."""
    df = _labelled(res)
    enrolled = (
        df.filter(
            (pl.col("experiment_id") == "exp-ramp")
            & ~pl.col("contamination").is_in(["outside_window", "after_end"])
        )
        .group_by("user_id")
        .agg(pl.col("phase").min().alias("cohort"))
    )
    return (
        df.filter(pl.col("contamination") == "clean")
        .group_by("user_id", "phase", "arm")
        .agg(pl.col("helpfulness").sum().alias("y"), pl.len().alias("x"))
        .join(enrolled, on="user_id")
        .sort("user_id", "phase")
    )


def _psi(
    rows: pl.DataFrame, *, ratio: bool, phases: tuple[int, ...] = (1, 2), fresh: bool = False
) -> dict[str, Any]:
    """The stratified estimate and each unit's influence on each arm, by hand (loops)."""
    rows = rows.filter(pl.col("phase").is_in(list(phases)))
    keep = rows.filter(pl.col("cohort") == pl.col("phase")) if fresh else rows
    totals = {
        p: float(rows.filter(pl.col("phase") == p)["x" if ratio else "y"].len())
        if not ratio
        else float(rows.filter(pl.col("phase") == p)["x"].sum())
        for p in phases
    }
    w = {p: totals[p] / sum(totals.values()) for p in phases}
    est = {"control": 0.0, "treatment": 0.0}
    psi: dict[str, dict[str, float]] = {"control": {}, "treatment": {}}
    units: dict[str, set[str]] = {"control": set(), "treatment": set()}
    for p in phases:
        for arm in ("control", "treatment"):
            cell = keep.filter((pl.col("phase") == p) & (pl.col("arm") == arm))
            y, x = cell["y"].to_numpy(), cell["x"].to_numpy().astype(float)
            n = len(y)
            if ratio:
                r = y.sum() / x.sum()
                contrib = (y - r * x) / x.sum()
            else:
                r = y.mean()
                contrib = (y - r) / n
            est[arm] += w[p] * r
            for uid, c in zip(cell["user_id"].to_list(), contrib, strict=True):
                psi[arm][uid] = psi[arm].get(uid, 0.0) + w[p] * float(c)
                units[arm].add(uid)
    return {"est": est, "psi": psi, "n": {a: len(units[a]) for a in units}}


def _variance(b: dict[str, Any], *, factors: bool = True) -> float:
    """``Σ_i (√k_t ψ_i^t − √k_c ψ_i^c)²`` (``k_a = N_a/(N_a − 1)``; 1 without factors)."""
    ids = set(b["psi"]["control"]) | set(b["psi"]["treatment"])
    kt = b["n"]["treatment"] / (b["n"]["treatment"] - 1) if factors else 1.0
    kc = b["n"]["control"] / (b["n"]["control"] - 1) if factors else 1.0
    d = np.array(
        [
            math.sqrt(kt) * b["psi"]["treatment"].get(i, 0.0)
            - math.sqrt(kc) * b["psi"]["control"].get(i, 0.0)
            for i in ids
        ]
    )
    return float(np.sum(d * d))


@pytest.mark.parametrize("ratio", [True, False])
def test_moved_units_kept_match_brute_force_sandwich(
    moved: tuple[Any, dict[str, Any]], ratio: bool
) -> None:
    res, _ = moved
    m = Ratio("helpfulness", cuped=False) if ratio else Mean("helpfulness", cuped=False)
    out = analyze(res, metrics=[m], block_hours=0, explain=False, recovery=False)
    rows = _unit_phase_rows(res)
    assert rows.group_by("user_id").agg(pl.col("arm").n_unique())["arm"].max() == 2
    for phases, label in (((1, 2), "combined"), ((1,), "1"), ((2,), "2")):
        b = _psi(rows, ratio=ratio, phases=phases)
        e = out.effect("helpfulness", phase=label)
        assert e.effect == pytest.approx(b["est"]["treatment"] - b["est"]["control"], rel=1e-9)
        assert e.control_mean == pytest.approx(b["est"]["control"], rel=1e-9)
        assert e.se == pytest.approx(math.sqrt(_variance(b)), rel=1e-9)
        assert (e.n_control, e.n_arm) == (b["n"]["control"], b["n"]["treatment"])
    # a moved unit is in both arms of the combined row
    b = _psi(rows, ratio=ratio)
    both = set(b["psi"]["control"]) & set(b["psi"]["treatment"])
    assert len(both) > 20


def test_clustered_variance_equals_statsmodels_cluster_ols(
    moved: tuple[Any, dict[str, Any]],
) -> None:
    """Unit-level outcomes, one stratum per phase: the combined estimator is ``cᵀβ`` of the
    saturated OLS ``y ~ 0 + phase:arm`` on unit × phase rows, and its unit-clustered CR0
    variance ``cᵀVc`` is the sandwich ``Σ_i (ψ_i^t − ψ_i^c)²`` (1e-9); ``analyze`` adds each
    arm's ``N/(N−1)``."""
    import statsmodels.api as sm

    res, _ = moved
    rows = _unit_phase_rows(res).with_columns(
        (pl.col("arm") + "_" + pl.col("phase").cast(pl.String)).alias("cell")
    )
    cells = sorted(rows["cell"].unique().to_list())
    x = np.column_stack([(rows["cell"] == c).to_numpy().astype(float) for c in cells])
    fit = sm.OLS(rows["y"].to_numpy(), x).fit(
        cov_type="cluster",
        cov_kwds={
            "groups": rows["user_id"].cast(pl.Categorical).to_physical().to_numpy(),
            "use_correction": False,
        },
    )
    per_phase = rows.group_by("phase").len()
    n = {int(r["phase"]): r["len"] for r in per_phase.iter_rows(named=True)}
    w = {p: n[p] / sum(n.values()) for p in n}
    c = np.array(
        [(1 if cl.startswith("treatment") else -1) * w[int(cl.split("_")[1])] for cl in cells]
    )
    b = _psi(_unit_phase_rows(res), ratio=False)
    assert float(c @ fit.params) == pytest.approx(
        b["est"]["treatment"] - b["est"]["control"], rel=1e-9
    )
    assert float(c @ fit.cov_params() @ c) == pytest.approx(_variance(b, factors=False), rel=1e-9)
    out = analyze(
        res,
        metrics=[Mean("helpfulness", cuped=False)],
        block_hours=0,
        explain=False,
        recovery=False,
    )
    assert out.effect("helpfulness").se ** 2 == pytest.approx(_variance(b), rel=1e-9)


def test_block_hours_zero_is_one_stratum_per_phase(moved: tuple[Any, dict[str, Any]]) -> None:
    res, _ = moved
    kw: dict[str, Any] = {"metrics": [Ratio("helpfulness")], "explain": False, "recovery": False}
    a = analyze(res, block_hours=0, **kw).effect("helpfulness")
    b = analyze(res, block_hours=None, **kw).effect("helpfulness")
    assert a.strata == b.strata == 2
    for name in ("effect", "se", "control_mean", "effect_fresh", "cuped_theta"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9)


def test_invalid_moved_units_option(moved: tuple[Any, dict[str, Any]]) -> None:
    with pytest.raises(PromptstateError, match="moved_units='drop'"):
        analyze(moved[0], metrics=[Ratio("helpfulness")], moved_units="drop")


# -- exclude mode: the numbers of before -----------------------------------------------------


def test_exclude_reproduces_the_estimates_of_before(ledger: Any) -> None:
    res = split(generate(RampSpec(n_units=1500, seed=5)), ledger)
    for hours in (6.0, None):
        out = analyze(
            res, metrics=_old_metrics(), explain=False, block_hours=hours, moved_units="exclude"
        )
        keep = analyze(res, metrics=_old_metrics(), explain=False, block_hours=hours)
        for row in _rows(out.effects):
            if row.analysis != "clean":
                continue
            want = OLD_NUMBERS[f"{hours}|{row.metric}|{row.phase}"]
            got = [row.effect, row.se, row.n_control, row.n_arm, row.control_mean, row.cuped_theta]
            for g, v in zip(got, want, strict=True):
                assert g == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True), (row, want)
        # keeping the moved units changes the numbers (more units in both arms)
        k = keep.effect("helpfulness", phase="combined")
        o = out.effect("helpfulness", phase="combined")
        assert k.n_control > o.n_control
        assert k.n_arm > o.n_arm
        assert any("ramp-moved units kept" in n for n in keep.notes)
        assert any("left out of the clean estimates" in n for n in out.notes)


# -- fresh cohort and phase equality ---------------------------------------------------------


def test_fresh_cohort_estimate_matches_brute_force(moved: tuple[Any, dict[str, Any]]) -> None:
    res, _ = moved
    out = analyze(
        res,
        metrics=[Ratio("helpfulness", cuped=False)],
        block_hours=0,
        explain=False,
        recovery=False,
    )
    rows = _unit_phase_rows(res)
    b = _psi(rows, ratio=True, fresh=True)
    e = out.effect("helpfulness")
    assert e.effect_fresh == pytest.approx(b["est"]["treatment"] - b["est"]["control"], rel=1e-9)
    assert e.effect_fresh_ci_lower < e.effect_fresh < e.effect_fresh_ci_upper
    # phase 1: everyone is fresh
    p1 = out.effect("helpfulness", phase=1)
    assert p1.effect_fresh == pytest.approx(p1.effect, rel=1e-12)


def test_phase_equality_wald_matches_brute_force(moved: tuple[Any, dict[str, Any]]) -> None:
    res, _ = moved
    out = analyze(
        res,
        metrics=[Ratio("helpfulness", cuped=False)],
        block_hours=0,
        explain=False,
        recovery=False,
    )
    rows = _unit_phase_rows(res)
    b1, b2 = _psi(rows, ratio=True, phases=(1,)), _psi(rows, ratio=True, phases=(2,))
    ids = set()
    for b in (b1, b2):
        ids |= set(b["psi"]["control"]) | set(b["psi"]["treatment"])

    def d(b: dict[str, Any], i: str) -> float:
        kt = b["n"]["treatment"] / (b["n"]["treatment"] - 1)
        kc = b["n"]["control"] / (b["n"]["control"] - 1)
        return math.sqrt(kt) * b["psi"]["treatment"].get(i, 0.0) - math.sqrt(kc) * b["psi"][
            "control"
        ].get(i, 0.0)

    diff_psi = np.array([d(b2, i) - d(b1, i) for i in ids])
    e1 = b1["est"]["treatment"] - b1["est"]["control"]
    e2 = b2["est"]["treatment"] - b2["est"]["control"]
    w = (e2 - e1) ** 2 / float(np.sum(diff_psi**2))
    (row,) = _rows(out.phase_equality)
    assert row.statistic == pytest.approx(w, rel=1e-9)
    assert row.df == 1
    assert row.phases == "1, 2"
    from scipy import stats

    assert row.pvalue == pytest.approx(float(stats.chi2.sf(w, 1)), rel=1e-9)
    assert row.effects == pytest.approx((e1, e2), rel=1e-9)


def test_duckdb_agrees_with_polars_with_moved_units(ledger: Any) -> None:
    """Labels (with ``ramp_moved`` and ``prior_conversation``) exact, every estimate, the
    fresh-cohort columns, the phase-equality test and the exposure-day table at 1e-9."""
    import duckdb

    ev, _ = generate_moved(700, seed=5, strays=2, mixed=2)
    con = duckdb.connect()
    con.register("ev", ev.to_arrow())
    rel = con.sql("select * from ev")
    cols = ["event_id", "phase", "contamination", "ramp_moved"]
    want_labels = split(ev, ledger).frame.collect().to_polars().select(cols).sort("event_id")
    got_labels = split(rel, ledger).frame.collect().to_polars().select(cols).sort("event_id")
    assert got_labels.equals(want_labels)
    assert want_labels["contamination"].is_in(["prior_conversation"]).any()
    metrics = [Ratio("helpfulness"), Mean("helpfulness", name="h_sum", cuped=False)]
    kw: dict[str, Any] = {"metrics": metrics, "explain": False, "recovery": False}
    want = analyze(ev, ledger, **kw)
    got = analyze(con.sql("select * from ev"), ledger, **kw)
    fields = ("effect", "se", "effect_fresh", "effect_fresh_ci_lower", "cuped_theta")
    for g, w in zip(_rows(got.effects), _rows(want.effects), strict=True):
        assert (g.metric, g.phase, g.n_control, g.n_arm) == (
            w.metric,
            w.phase,
            w.n_control,
            w.n_arm,
        )
        for name in fields:
            assert getattr(g, name) == pytest.approx(
                getattr(w, name), rel=1e-9, abs=1e-12, nan_ok=True
            )
    for g, w in zip(_rows(got.phase_equality), _rows(want.phase_equality), strict=True):
        assert g.statistic == pytest.approx(w.statistic, rel=1e-9)
    assert len(want.by_exposure_day) > 0
    for g, w in zip(_rows(got.by_exposure_day), _rows(want.by_exposure_day), strict=True):
        assert (g.day, g.n_control, g.n_arm) == (w.day, w.n_control, w.n_arm)
        assert g.effect == pytest.approx(w.effect, rel=1e-9, abs=1e-12)


def test_plot_effect_by_exposure_day(moved: tuple[Any, dict[str, Any]]) -> None:
    from analysis.reporting._plot_exposure import plot_effect_by_exposure_day

    out = analyze(moved[0], metrics=[Ratio("helpfulness")], explain=False, recovery=False)
    fig = plot_effect_by_exposure_day(out, "helpfulness")
    ax = fig.axes[0]
    assert ax.get_title() == "helpfulness"
    assert len(ax.get_xticks()) == len({r.day for r in _rows(out.by_exposure_day)})
    empty = plot_effect_by_exposure_day(out, "nope")
    assert "no effect by exposure day" in empty.axes[0].texts[0].get_text()


def test_pre_period_infinite_values_are_counted(ledger: Any) -> None:
    """19.10: a NaN or inf in a pre-period event is left out of the covariate, counted in
    ``res.missing`` (``pre_period``) and noted; before, it vanished silently."""
    ev, _ = generate_moved(400, seed=8, pre_share=1.0)
    start = ev.filter(pl.col("experiment_id").is_not_null())["ts"].min()
    pre_ids = ev.filter(pl.col("ts") < start)["event_id"].head(3).to_list()
    bad = ev.with_columns(
        pl.when(pl.col("event_id") == pre_ids[0])
        .then(float("inf"))
        .when(pl.col("event_id") == pre_ids[1])
        .then(float("nan"))
        .otherwise(pl.col("helpfulness"))
        .alias("helpfulness")
    )
    out = analyze(bad, ledger, metrics=[Ratio("helpfulness")], explain=False, recovery=False)
    (row,) = _rows(out.missing)
    assert row.pre_period == 2
    assert row.events == 0
    assert any("2 pre-period events" in n for n in out.notes)
    clean = analyze(ev, ledger, metrics=[Ratio("helpfulness")], explain=False, recovery=False)
    assert _rows(clean.missing)[0].pre_period == 0
    assert not any("pre-period events" in n for n in clean.notes)
