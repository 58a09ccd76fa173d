"""The eval gate: grade a candidate's eval results against the suite's reference baseline.

Order of work, and what each step guarantees (every input is validated — options, the
candidate, the ledger, the revision, ``--out`` in the CLI — before a stale or invalid reference
decides the exit code: bad input, exit code 2, wins over a refusal, exit code 3):

1. **Stale-baseline guard**, on by default: the reference must be a baseline of the prompt's
   live revision in the ledger (the ``ledger`` argument, else the one recorded in the suite's
   ``suite.yaml``; :mod:`analysis.evals._staleness`). A reference anchored to a revision the
   ledger rolled back, or to any revision that is not live, is refused with
   :class:`~analysis.errors.StaleBaselineError` (exit code 3) naming the ``baseline sync`` /
   ``revert`` / ``pin`` command to run. Without a ledger the gate refuses (exit code 2) unless
   the check is turned off explicitly (``stale_check=False``), which the checks then show.
2. **Validity checks**: the stored reference scores match their content hash; the candidate has
   every metric of the suite (binary metrics 0/1); same grader; same eval set (identical
   example-id hash, or the candidate covers at least ``min_coverage`` of the reference's
   examples — the comparison then uses the common examples).
3. **Paired statistics** per metric on the common examples (:mod:`analysis.stats.margin`,
   :mod:`analysis.stats.noninferiority`); a candidate sharing no example with the reference is
   refused (it can never pass).

Conventions (oriented so that positive = candidate better; ``m`` = the metric's margin):

* Estimand: the mean over examples of the paired difference candidate − reference, where each
  example contributes its mean over samples (cluster by example). ``diff`` and its CI are shown
  in the metric's own direction (candidate − reference).
* ``alpha`` (default 0.05) is the **two-sided** level, as everywhere in promptstate (the ICH E9
  convention): the CI shown is the two-sided ``1 − alpha`` interval (95%), and each one-sided
  decision is a test at ``alpha / 2`` (each bound of the interval is a level-``alpha/2`` bound).
* Every margin test standardises by the variance **under the null** ``delta = −m`` (the
  restricted maximum-likelihood fit), never by the observed one alone, so ties cannot prove
  non-inferiority: Tango's score test for binary metrics with one sample per example, the
  restricted score test on the scores' support (with the lattice floor) otherwise; the CI is
  the matching score interval.
* ``pass`` (non-inferior): the lower bound of the two-sided ``1 − alpha`` interval of the
  oriented difference is above ``−m`` (``p_noninferior < alpha / 2``). Passing overall requires
  every metric to pass — an intersection–union test, which needs no multiplicity adjustment.
* ``regression``: the candidate is worse than the reference by more than the margin —
  ``H0: δ ≥ −m`` rejected with the **Holm-adjusted** ``p_regression < alpha / 2`` across the
  suite's metrics (family-wise control of false regressions). Unadjusted, that is "the upper
  bound of the ``1 − alpha`` interval is below ``−m``".
* ``inconclusive`` otherwise, or when a decision is withheld (``reason`` says why: fewer than 2
  examples, no spread in the scores, or continuous differences too skewed for their number,
  ``n < 25·skewness²``). ``mde`` is the minimum detectable difference
  ``(z_{1−α/2}·null_sd + z_{power}·sd)/√n``: regressions larger than ``m + mde`` are flagged with
  probability about ``power``; ``n_required`` is the number of examples at which a regression
  of ``2m`` would be.
* ``pvalue`` is the two-sided test of no difference (exact McNemar for binary metrics with one
  sample per example, else the paired t / bootstrap), with Holm-adjusted ``pvalue_adjusted``;
  they are descriptive, the verdicts use the margin tests above.
* Overall: ``regression`` when any metric regresses, ``pass`` when all pass, else
  ``inconclusive``. Exit codes: 0 pass, 1 regression or inconclusive (``allow_inconclusive``
  makes inconclusive exit 0), 2 bad input, 3 stale or invalid baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from analysis.errors import SCHEMA_VERSION, ResultsError
from analysis.evals.store import BaselineStore, MetricSpec, Reference
from analysis.stats.noninferiority import ScoreSupport

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from analysis.evals.results import EvalResults
    from analysis.ledger import Ledger

__all__ = ["Check", "GateResult", "MetricResult", "compare_metrics", "gate"]

Verdict = Literal["pass", "regression", "inconclusive"]
Method = Literal["t", "bootstrap"]


class MetricResult(NamedTuple):
    """The gate's result for one metric.

    Attributes:
        metric: Metric name.
        kind: ``binary`` or ``continuous``.
        direction: ``higher`` or ``lower`` is better.
        margin: Non-inferiority margin.
        n: Examples compared (pairs).
        reference_mean: Mean of the reference's example-level means.
        candidate_mean: Mean of the candidate's example-level means.
        diff: Mean paired difference candidate − reference.
        ci_lower: Lower bound of the two-sided ``1 − α`` CI of ``diff``.
        ci_upper: Upper bound of that CI.
        pvalue: Two-sided p-value of no difference (McNemar exact / paired t / bootstrap).
        pvalue_adjusted: Holm-adjusted ``pvalue`` across the suite's metrics.
        p_noninferior: One-sided p-value of ``H0: worse by at least the margin``.
        p_regression: One-sided p-value of ``H0: not worse than the margin``.
        p_regression_adjusted: Holm-adjusted ``p_regression`` (the regression decision).
        mde: Minimum detectable difference at the gate's power.
        n_required: Examples at which ``mde`` equals the margin (``None`` when not estimable).
        test: ``Tango score``, ``restricted score`` (``(lattice s)``) or ``restricted
            bootstrap``, with ``+ McNemar exact`` for binary metrics with one sample per
            example.
        verdict: ``pass``, ``regression`` or ``inconclusive``.
        null_sd: Standard deviation of one paired difference under ``δ = −margin`` (the
            restricted fit, at least the lattice floor): what the margin tests standardise by.
        skewness: Sample skewness of the oriented paired differences.
        reason: Why a decision was withheld (``""`` when none was).
    """

    metric: str
    kind: str
    direction: str
    margin: float
    n: int
    reference_mean: float
    candidate_mean: float
    diff: float
    ci_lower: float
    ci_upper: float
    pvalue: float
    pvalue_adjusted: float
    p_noninferior: float
    p_regression: float
    p_regression_adjusted: float
    mde: float
    n_required: int | None
    test: str
    verdict: Verdict
    null_sd: float = math.nan
    skewness: float = math.nan
    reason: str = ""


class Check(NamedTuple):
    """One validity check of the gate.

    Attributes:
        name: ``reference``, ``integrity``, ``ledger``, ``grader``, ``eval_set``, ``schema``.
        status: ``ok``, ``warn`` or ``skipped``.
        detail: What was checked.
    """

    name: str
    status: str
    detail: str


def _overall(verdicts: Sequence[str]) -> Verdict:
    if any(v == "regression" for v in verdicts):
        return "regression"
    if verdicts and all(v == "pass" for v in verdicts):
        return "pass"
    return "inconclusive"


def compare_metrics(
    reference: Mapping[str, npt.ArrayLike],
    candidate: Mapping[str, npt.ArrayLike],
    specs: Sequence[MetricSpec],
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    method: Method = "t",
    n_resamples: int = 2000,
    seed: int | None = 0,
    binary_single_sample: bool = True,
    supports: Mapping[str, ScoreSupport] | None = None,
) -> tuple[MetricResult, ...]:
    """Paired margin tests of example-level means, metric by metric, with Holm across metrics.

    Args:
        reference: Metric → example-level means of the reference (aligned with ``candidate``).
        candidate: Metric → example-level means of the candidate, same example order.
        specs: The metrics (kind, direction, margin).
        alpha: Two-sided level: the CI is the two-sided ``1 − alpha`` one and each one-sided
            decision is taken at ``alpha / 2``.
        power: Power for the minimum detectable difference.
        method: ``t`` (score tests and intervals) or ``bootstrap`` (restricted bootstrap
            p-values, percentile bootstrap interval).
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.
        binary_single_sample: Whether binary metrics have one sample per example on both sides
            (then Tango's test decides and the exact McNemar test gives the two-sided p-value).
        supports: Metric → range of its scores and lattice step of its differences (default:
            inferred from the example means, :func:`analysis.stats.margin.infer_support`).

    Returns:
        One :class:`MetricResult` per spec, in order.
    """
    from analysis.stats import paired
    from analysis.stats.margin import margin_test

    k = len(specs)
    tests = []
    for spec in specs:
        ref = np.asarray(reference[spec.name], dtype=np.float64)
        cand = np.asarray(candidate[spec.name], dtype=np.float64)
        if ref.shape != cand.shape:
            raise ValueError(f"{spec.name}: reference and candidate are not aligned")
        tests.append(
            margin_test(
                ref,
                cand,
                binary=spec.kind == "binary",
                sign=spec.sign,
                margin=spec.margin,
                support=None if supports is None else supports.get(spec.name),
                alpha=alpha,
                power=power,
                n_metrics=k,
                method=method,
                single_sample=binary_single_sample,
                n_resamples=n_resamples,
                seed=seed,
            )
        )
    adj_reg = paired.holm([mt.p_regression for mt in tests])
    adj_two = paired.holm([mt.p_two for mt in tests])
    out: list[MetricResult] = []
    for spec, mt, a_reg, a_two in zip(specs, tests, adj_reg, adj_two, strict=True):
        ref = np.asarray(reference[spec.name], dtype=np.float64)
        cand = np.asarray(candidate[spec.name], dtype=np.float64)
        regresses = not math.isnan(a_reg) and a_reg < alpha / 2
        passes = not math.isnan(mt.p_noninferior) and mt.p_noninferior < alpha / 2
        verdict: Verdict = "inconclusive"
        withheld = mt.blocked == "both"
        if regresses and mt.blocked not in ("regression", "both"):
            verdict = "regression"
        elif passes and mt.blocked not in ("pass", "both"):
            verdict = "pass"
        else:
            withheld = withheld or (regresses and mt.blocked == "regression")
            withheld = withheld or (passes and mt.blocked == "pass")
        # back to the metric's own direction (candidate − reference)
        lo, hi = (mt.ci_lower, mt.ci_upper) if spec.sign > 0 else (-mt.ci_upper, -mt.ci_lower)
        out.append(
            MetricResult(
                metric=spec.name,
                kind=spec.kind,
                direction=spec.direction,
                margin=spec.margin,
                n=mt.n,
                reference_mean=float(ref.mean()) if ref.size else math.nan,
                candidate_mean=float(cand.mean()) if cand.size else math.nan,
                diff=mt.mean * spec.sign if mt.n else math.nan,
                ci_lower=lo,
                ci_upper=hi,
                pvalue=mt.p_two,
                pvalue_adjusted=float(a_two),
                p_noninferior=mt.p_noninferior,
                p_regression=mt.p_regression,
                p_regression_adjusted=float(a_reg),
                mde=mt.mde,
                n_required=mt.n_required,
                test=mt.test,
                verdict=verdict,
                null_sd=mt.null_sd,
                skewness=mt.skewness,
                reason=mt.reason if withheld else "",
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class GateResult:
    """The outcome of :func:`gate`.

    Attributes:
        suite: Suite name.
        store: Store directory.
        reference: The reference graded against.
        candidate: Candidate results source.
        revision: Candidate revision (``None`` when not given).
        alpha: Two-sided level (CI ``1 − alpha``; one-sided decisions at ``alpha / 2``).
        power: Power used for the MDE.
        method: ``t`` or ``bootstrap``.
        checks: Validity checks, in order.
        metrics: Per-metric results.
        verdict: Overall verdict.
        anchored: Version anchored by ``anchor_on_pass`` (``None`` when not anchored).
        notes: Extra remarks (e.g. why ``anchor_on_pass`` did not anchor).
    """

    suite: str
    store: str
    reference: Reference
    candidate: str
    revision: str | None
    alpha: float
    power: float
    method: str
    checks: tuple[Check, ...]
    metrics: tuple[MetricResult, ...]
    verdict: Verdict
    anchored: str | None = None
    notes: tuple[str, ...] = ()

    def exit_code(self, *, allow_inconclusive: bool = False) -> int:
        """0 pass, 1 regression, 1 inconclusive (0 with ``allow_inconclusive``)."""
        if self.verdict == "pass" or (self.verdict == "inconclusive" and allow_inconclusive):
            return 0
        return 1

    def rows(self) -> list[dict[str, Any]]:
        """One tidy row per metric (every :class:`MetricResult` field)."""
        return [m._asdict() for m in self.metrics]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (NaN and infinities become ``None``).

        Shape: ``{"schema_version": 1, "suite", "store", "verdict", "reference": {version,
        revision, pinned}, "candidate": {source, revision}, "alpha" (two-sided),
        "confidence" (1 − alpha), "power", "method", "stale_check" (bool), "checks": [{name,
        status, detail}], "metrics": [MetricResult fields], "anchored", "notes": [...]}``.
        """

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        return {
            "schema_version": SCHEMA_VERSION,
            "suite": self.suite,
            "store": self.store,
            "verdict": self.verdict,
            "reference": self.reference.to_dict(),
            "candidate": {"source": self.candidate, "revision": self.revision},
            "alpha": self.alpha,
            "confidence": 1 - self.alpha,
            "power": self.power,
            "method": self.method,
            "stale_check": not any(
                c.name == "ledger" and c.status == "skipped" for c in self.checks
            ),
            "checks": [c._asdict() for c in self.checks],
            "metrics": [{k: clean(v) for k, v in r.items()} for r in self.rows()],
            "anchored": self.anchored,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        """JSON text."""
        import json

        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """Terminal table with the conventions, withheld decisions, checks and notes."""
        from analysis.evals._gate_render import text

        return text(self)

    def __str__(self) -> str:
        return self.to_text()

    def to_markdown(self) -> str:
        """Markdown for a pull-request comment or a CI step summary."""
        from analysis.evals._gate_render import markdown

        return markdown(self)

    def to_junit(self) -> str:
        """JUnit XML: one test case per metric; regression and inconclusive are failures."""
        from analysis.evals._gate_render import junit

        return junit(self)

    def to_polars(self) -> pl.DataFrame:
        """Per-metric results as a polars DataFrame."""
        import polars as pl

        return pl.DataFrame(self.rows(), infer_schema_length=None)

    def to_pandas(self) -> pd.DataFrame:
        """Per-metric results as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def _repr_html_(self) -> str:
        from analysis._render import to_html
        from analysis.evals._gate_render import TABLE_COLUMNS, title

        return to_html(self.rows(), TABLE_COLUMNS, title=title(self))


def _check_options(
    alpha: float, power: float, method: str, n_resamples: int, min_coverage: float
) -> None:
    """Refuse out-of-range options (NaN fails every comparison, so it is refused too)."""
    if not 0 < alpha < 0.5:
        raise ResultsError(f"alpha (the two-sided level) must be in (0, 0.5), not {alpha}")
    if not 0 < power < 1:
        raise ResultsError(f"power must be in (0, 1), not {power}")
    if method not in ("t", "bootstrap"):
        raise ResultsError(f"method must be 't' or 'bootstrap', not {method!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ResultsError(f"n_resamples must be a whole number >= 1, not {n_resamples!r}")
    if not 0 < min_coverage <= 1:
        raise ResultsError(
            f"min_coverage must be in (0, 1], not {min_coverage}: it is the share of the "
            "reference's examples the candidate must cover"
        )


_MAX_LATTICE_VALUES = 1001


class _Scores(NamedTuple):
    """A metric's raw scores over both runs: range and, when few, the distinct values."""

    lower: float
    upper: float
    distinct: npt.NDArray[np.float64] | None


def _score_values(
    reference: pl.DataFrame, candidate: pl.DataFrame, names: Sequence[str]
) -> dict[str, _Scores]:
    """Range and distinct raw scores of each metric over both runs (data work).

    The distinct values are kept only when there are at most ~1,000 (a lattice is possible);
    with more the metric is continuous and only its range matters.
    """
    import polars as pl

    both = pl.concat([reference.select(names), candidate.select(names)], how="vertical_relaxed")
    agg = both.select(
        *(pl.col(n).n_unique().alias(f"{n}__k") for n in names),
        *(pl.col(n).min().alias(f"{n}__lo") for n in names),
        *(pl.col(n).max().alias(f"{n}__hi") for n in names),
    ).row(0, named=True)
    out: dict[str, _Scores] = {}
    for n in names:
        distinct = None
        if agg[f"{n}__k"] <= _MAX_LATTICE_VALUES:
            distinct = both.get_column(n).unique().to_numpy().astype(np.float64)
        out[n] = _Scores(float(agg[f"{n}__lo"]), float(agg[f"{n}__hi"]), distinct)
    return out


def _sample_count_pairs(joined: pl.DataFrame) -> list[tuple[int, int]]:
    """Distinct (reference, candidate) sample counts of the common examples (data work)."""
    pairs = joined.select("n_samples", "n_samples__cand").unique().rows()
    return [(int(a), int(b)) for a, b in pairs]


def _support(kind: str, scores: _Scores, counts: Sequence[tuple[int, int]]) -> ScoreSupport:
    """Range of a metric's raw scores and the lattice step of its example-level differences.

    Raw scores on a lattice of step ``g`` (1 for a binary metric) give example means with ``k``
    samples on the lattice ``g / k``, and differences on ``g / lcm`` of the sample counts of
    every common example. Scores off any lattice give step 0 (continuous); a single distinct
    score gives ``nan`` (unknown).
    """
    from analysis.stats.noninferiority import lattice_step

    lcm = math.lcm(*(math.lcm(a, b) for a, b in counts)) if counts else 1
    if kind == "binary":
        return ScoreSupport(0.0, 1.0, 1.0 / lcm)
    if scores.distinct is None:
        return ScoreSupport(scores.lower, scores.upper, 0.0)
    step = lattice_step(scores.distinct)
    return ScoreSupport(scores.lower, scores.upper, step / lcm if step > 0 else step)


def gate(
    suite: str,
    candidate: str | Path | EvalResults | pl.DataFrame,
    *,
    revision: str | None = None,
    ledger: Ledger | str | Path | None = None,
    store: BaselineStore | str | Path | None = None,
    stale_check: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    method: Method = "t",
    n_resamples: int = 2000,
    seed: int | None = 0,
    min_coverage: float = 0.95,
    grader: str | None = None,
    anchor_on_pass: bool = False,
    actor: str | None = None,
    at: datetime | None = None,
    results_format: str = "auto",
) -> GateResult:
    """Grade a candidate's eval results against the suite's reference baseline.

    See the module docstring for the checks, the statistics and the verdict conventions.

    Args:
        suite: Suite name in the store.
        candidate: The candidate's eval results (file or loaded).
        revision: The candidate's revision (may be absent from the ledger: not deployed yet).
        ledger: Rollout ledger (object or path) for the stale-baseline guard (default: the
            ledger recorded in the suite's ``suite.yaml``).
        store: The baseline store (default: :func:`~analysis.evals.locate_store`, i.e.
            ``$PROMPTSTATE_STORE``, ``[tool.promptstate] store`` or ``./baselines``).
        stale_check: ``False`` skips the stale-baseline guard (explicitly; shown in the
            checks). With ``True`` and no ledger given or recorded, the gate refuses.
        alpha: Two-sided level (CI ``1 − alpha``; one-sided decisions at ``alpha / 2``).
        power: Power for the minimum detectable difference.
        method: ``t`` or ``bootstrap``.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.
        min_coverage: Share of the reference's examples the candidate must cover when the
            eval-set hashes differ.
        grader: The candidate's grader when its results carry no ``grader`` column.
        anchor_on_pass: Anchor the candidate as the new reference when it passes and is better
            on the primary metric (needs ``revision``).
        actor: Journal actor for ``anchor_on_pass``.
        at: Journal time for ``anchor_on_pass`` (default now).
        results_format: Format of a candidate file: ``auto``, ``table``, ``promptfoo`` or
            ``inspect`` (see :func:`~analysis.evals.results.load_results`).

    Every input — options, the candidate (file, ids, scores, metrics, grader), the ledger, the
    revision — is validated before a stale or invalid reference is reported, so bad input
    (``ResultsError``/``BaselineError``, exit code 2) wins over a refusal (exit code 3), as the
    precedence 4 > 2 > 3 > 1 wants. The candidate's coverage of the reference's eval set is
    judged only against a reference that may be graded against.

    Raises:
        StaleBaselineError: The reference is a reverted or non-live revision's baseline.
        BaselineError: No reference; no ledger to check staleness against and
            ``stale_check`` not turned off; a ledger given with ``stale_check=False``.
        InvalidBaselineError: The stored scores fail their content hash.
        ResultsError: Bad candidate input, other grader, too little eval-set overlap.
    """
    from analysis.errors import BaselineError, InvalidBaselineError
    from analysis.evals._staleness import check_live, choose_ledger
    from analysis.evals.results import EvalResults, load_results

    _check_options(alpha, power, method, n_resamples, min_coverage)
    if store is None:
        from analysis.evals._discovery import locate_store

        store = locate_store().path
    st = store if isinstance(store, BaselineStore) else BaselineStore(store)
    s = st.suite(suite)
    cfg = s.config
    opt = st.store_option()
    # Every input is validated before a stale or invalid reference (exit code 3) is reported:
    # bad input (exit code 2) wins (precedence 4 > 2 > 3 > 1). An invalid stored reference is
    # held back in ``refusal`` meanwhile.
    refusal: BaselineError | None = None
    ref: Reference | None = None
    try:
        ref = s.reference()
        if ref.version is not None:
            ref_res = s.scores(ref.version)
            meta = s.version(ref.version)
    except InvalidBaselineError as exc:
        refusal = exc
    if ref is not None and ref.version is None:
        raise BaselineError(
            f"{s.path}: suite {suite!r} has no reference yet; run `promptstate baseline anchor "
            f"{suite} --revision R --results FILE{opt}`"
        )
    if refusal is None and meta.grader != cfg.grader:
        raise BaselineError(
            f"{s.path}: reference {meta.id} was graded by {meta.grader!r} but the suite now "
            f"uses {cfg.grader!r}; re-evaluate and anchor a new baseline with the new grader"
        )
    if anchor_on_pass and revision is None:
        raise ResultsError("--anchor-on-pass needs --revision (the candidate's revision)")
    cand = (
        candidate
        if isinstance(candidate, EvalResults)
        else load_results(candidate, results_format=results_format)
    )
    names = [m.name for m in cfg.metrics]
    cand.check_metrics(names, [m.name for m in cfg.metrics if m.kind == "binary"])
    cand.check_revision(revision)
    cand_grader = grader or cand.grader
    if cand_grader is not None and cand_grader != cfg.grader:
        raise ResultsError(
            f"{cand.source}: graded by {cand_grader!r} but suite {suite!r} uses "
            f"{cfg.grader!r}; scores of different graders are not comparable"
        )
    choice = choose_ledger(s, st, ledger is not None, stale_check=stale_check)
    led: Ledger | None = None
    if choice.source != "off":
        source = ledger if ledger is not None else choice.path
        if isinstance(source, str | Path):
            from analysis.ledger import load_ledger

            led = load_ledger(source)
        else:
            assert source is not None
            led = source
        if revision is not None and revision in led.revisions:
            rp = led.revisions[revision].prompt
            if rp != cfg.prompt:
                raise ResultsError(
                    f"--revision {revision} is a revision of {rp!r} in {led.path}, but suite "
                    f"{suite!r} evaluates {cfg.prompt!r}"
                )
    if refusal is not None:
        raise refusal
    assert ref is not None
    checks: list[Check] = [
        Check(
            "reference", "ok", f"{ref.version} ({ref.revision}){', pinned' if ref.pinned else ''}"
        )
    ]
    if led is None:
        checks.append(
            Check(
                "ledger",
                "skipped",
                "stale-baseline check turned off (--no-stale-check): the reference was not "
                "checked against the ledger",
            )
        )
    else:
        detail = check_live(s, ref, led, st)  # a stale reference: the last refusal (exit 3)
        if choice.source != "argument":
            detail += f" (ledger recorded in {s.path / 'suite.yaml'})"
        checks.append(Check("ledger", "ok", detail))
    checks.append(
        Check("integrity", "ok", f"scores of {ref.version} match sha256 {meta.scores_sha256[:12]}…")
    )
    extra = [m for m in cand.metrics if m not in names]
    checks.append(
        Check(
            "schema",
            "ok",
            f"metrics {', '.join(names)} present"
            + (f"; ignored extra column(s) {', '.join(extra)}" if extra else ""),
        )
    )
    if cand_grader is None:
        checks.append(
            Check(
                "grader",
                "warn",
                f"candidate results name no grader; assumed "
                f"{cfg.grader} (add a grader column or pass --grader)",
            )
        )
    else:
        checks.append(Check("grader", "ok", cfg.grader))

    ref_means = ref_res.example_means()
    cand_means = cand.example_means()
    joined = ref_means.join(cand_means, on="example_id", how="inner", suffix="__cand")
    n_ref = ref_means.height
    if joined.height == 0:  # never gradable, whatever --min-coverage says
        raise ResultsError(
            f"{cand.source}: shares no example with reference {ref.version} (candidate has "
            f"{cand_means.height}, reference {n_ref}); a gate needs common examples — run "
            f"the candidate on the suite's eval set"
        )
    if cand.eval_set_hash(meta.eval_set_hash_scheme) == meta.eval_set_sha256:
        checks.append(
            Check("eval_set", "ok", f"same {n_ref} examples (sha256 {meta.eval_set_sha256[:12]}…)")
        )
    else:
        coverage = joined.height / n_ref if n_ref else 0.0
        if coverage < min_coverage:
            raise ResultsError(
                f"{cand.source}: covers {joined.height} of the {n_ref} examples of reference "
                f"{ref.version} ({coverage:.1%} < {min_coverage * 100:.4g}%); run the candidate "
                f"on the suite's eval set or lower --min-coverage"
            )
        checks.append(
            Check(
                "eval_set",
                "warn",
                f"eval sets differ; comparing the "
                f"{joined.height} common examples ({coverage:.1%} of the reference's "
                f"{n_ref}; candidate has {cand_means.height})",
            )
        )

    cand_max = cand_means.get_column("n_samples").max()
    single = meta.max_samples <= 1 and isinstance(cand_max, int) and cand_max <= 1
    ref_arrays = {n: joined.get_column(n).to_numpy() for n in names}
    cand_arrays = {n: joined.get_column(f"{n}__cand").to_numpy() for n in names}
    scores = _score_values(ref_res.table, cand.table, names)
    counts = _sample_count_pairs(joined)
    supports = {m.name: _support(m.kind, scores[m.name], counts) for m in cfg.metrics}
    metrics = compare_metrics(
        ref_arrays,
        cand_arrays,
        cfg.metrics,
        alpha=alpha,
        power=power,
        method=method,
        n_resamples=n_resamples,
        seed=seed,
        binary_single_sample=single,
        supports=supports,
    )
    verdict = _overall([m.verdict for m in metrics])
    anchored: str | None = None
    notes: list[str] = list(cand.notes)
    if anchor_on_pass:
        primary = next(m for m in metrics if m.metric == cfg.primary)
        better = primary.diff * cfg.metric(cfg.primary).sign > 0
        assert revision is not None  # checked with the inputs
        if verdict != "pass":
            notes.append(f"not anchored: verdict is {verdict}")
        elif ref.pinned:
            notes.append(f"not anchored: reference {ref.version} is pinned (unpin first)")
        elif not better:
            notes.append(f"not anchored: not better than the reference on {cfg.primary}")
        else:
            version, _ = s.anchor(
                revision,
                cand,
                grader=cand_grader,
                actor=actor,
                at=at,
                expect_reference=ref.version,
                ledger=led,
                reason=f"gate --anchor-on-pass: passed against {ref.version}, {cfg.primary} "
                f"{primary.diff:+.4g}",
            )
            anchored = version.id
            notes.append(f"anchored {revision} as {version.id}, the new reference")
    return GateResult(
        suite=suite,
        store=str(st.root),
        reference=ref,
        candidate=cand.source,
        revision=revision,
        alpha=alpha,
        power=power,
        method=method,
        checks=tuple(checks),
        metrics=metrics,
        verdict=verdict,
        anchored=anchored,
        notes=tuple(notes),
    )
