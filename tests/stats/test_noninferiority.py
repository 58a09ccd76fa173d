"""analysis.stats.noninferiority against brute force, scipy, statsmodels and a published example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from analysis.stats import noninferiority as ni
from analysis.stats import paired
from analysis.stats.margin import required_examples_score, tango_sds

Z95 = float(special.ndtri(0.95))


# ---------------------------------------------------------------- brute-force references


def _brute_tango_q(wins: int, losses: int, n: int, delta0: float) -> float:
    """Restricted MLE of p_loss by numerical maximisation of the multinomial likelihood."""
    ties = n - wins - losses

    def nll(q: float) -> float:
        pw = q + delta0
        out = -losses * math.log(q) - ties * math.log(1 - 2 * q - delta0)
        return out - (wins * math.log(pw) if wins else 0.0)

    lo = max(0.0, -delta0) + 1e-12
    hi = (1 - delta0) / 2 - 1e-12
    res = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13})
    return float(res.x)


def _brute_restricted_variance(d: np.ndarray, delta0: float, lower: float, upper: float) -> float:
    """Restricted MLE on observed values + both ends by SLSQP, then its variance about delta0."""
    values, counts = np.unique(d, return_counts=True)
    cells = np.concatenate([values, [lower, upper]])
    c = np.concatenate([counts, [0, 0]]).astype(float)
    e = cells - delta0

    def nll(p: np.ndarray) -> float:
        return float(-np.sum(c * np.log(np.maximum(p, 1e-300))))

    start = np.concatenate([counts / counts.sum(), [0.0, 0.0]]) * 0.98 + 0.01 / cells.size

    def grad(p: np.ndarray) -> np.ndarray:
        return -c / np.maximum(p, 1e-300)

    res = optimize.minimize(
        nll,
        start,
        jac=grad,
        method="SLSQP",
        bounds=[(1e-12, 1.0)] * cells.size,
        constraints=[
            {"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": np.ones_like},
            {"type": "eq", "fun": lambda p: p @ e, "jac": lambda p: e},
        ],
        options={"ftol": 1e-14, "maxiter": 2000},
    )
    return float(res.x @ (e * e))


# ---------------------------------------------------------------- Tango


@pytest.mark.parametrize(
    ("wins", "losses", "n", "margin"),
    [
        (0, 0, 200, 0.005),
        (3, 5, 200, 0.005),
        (10, 2, 500, 0.02),
        (0, 7, 100, 0.05),
        (40, 20, 160, 0.1),
    ],
)
def test_tango_restricted_mle_matches_numerical_maximum(
    wins: int, losses: int, n: int, margin: float
) -> None:
    q = ni.tango_restricted_losses(wins, losses, n, -margin)
    assert q == pytest.approx(_brute_tango_q(wins, losses, n, -margin), rel=1e-6, abs=1e-9)


def test_tango_interval_reproduces_the_published_example() -> None:
    """Fagerland, Lydersen and Laake (2017), ch. 8, Cavo et al. (2012): table [[59, 6], [16, 80]].

    Tango's asymptotic score interval of p12 − p21 = (6 − 16)/161 is −0.1240 to −0.0054.
    """
    lo, hi = ni.tango_interval(6, 16, 161, confidence=0.95)
    assert (round(lo, 4), round(hi, 4)) == (-0.1240, -0.0054)


def test_tango_all_ties_never_has_zero_variance() -> None:
    """The issue's example: 200 tied pairs, margin 0.005 — Z = sqrt(n m / (1 − m)), no pass."""
    res = ni.tango_test(0, 0, 200, 0.005)
    assert res.sd == 0.0
    assert res.null_sd == pytest.approx(math.sqrt(0.005 * 0.995))
    assert res.statistic == pytest.approx(math.sqrt(200 * 0.005 / 0.995))
    assert res.p_noninferior > 0.05
    # the old Wald test on the observed sd "proves" non-inferiority with certainty
    t = paired.paired_t(np.zeros(200))
    assert paired.margin_pvalues(t.mean, t.se, t.df, 0.005).p_noninferior == 0.0


def _exact_pass_probability(n: int, margin: float, p_win: float) -> tuple[float, float]:
    """P(pass), P(regression) of tango_test at p_loss = p_win + margin, by enumeration."""
    p_loss = p_win + margin
    p_tie = 1 - p_win - p_loss
    passing = regressing = 0.0
    for w in range(n + 1):
        if p_win == 0 and w > 0:
            break
        for l_ in range(n + 1 - w):
            logp = (
                special.gammaln(n + 1)
                - special.gammaln(w + 1)
                - special.gammaln(l_ + 1)
                - special.gammaln(n - w - l_ + 1)
                + (w * math.log(p_win) if w else 0.0)
                + l_ * math.log(p_loss)
                + (n - w - l_) * math.log(p_tie)
            )
            if logp < -40:
                continue
            r = ni.tango_test(w, l_, n, margin)
            passing += math.exp(logp) * (r.p_noninferior < 0.05)
            regressing += math.exp(logp) * (r.p_regression < 0.05)
    return passing, regressing


def test_tango_exact_false_pass_rate_by_enumeration() -> None:
    """At delta = −m (n = 200, m = 0.005, 99%+ ties) the exact size stays near alpha.

    Enumeration over the whole multinomial; the sup over this grid is 0.0558 (at p_win
    ≈ 0.013), the Wald test of the old gate passes 37% of identical-but-for-0.5%-losses runs.
    """
    sizes = [_exact_pass_probability(200, 0.005, pw)[0] for pw in (0.0, 0.002, 0.005, 0.013, 0.05)]
    assert max(sizes) <= 0.06
    assert sizes[0] == 0.0  # losses only: no sample of 200 can show non-inferiority
    wald = (1 - 0.005) ** 200  # all tied: the old gate passes
    assert wald > 0.3


# ---------------------------------------------------------------- restricted fit


@settings(max_examples=60, deadline=None)
@given(
    wins=st.integers(0, 60),
    losses=st.integers(0, 60),
    ties=st.integers(0, 300),
    margin=st.floats(0.001, 0.3),
)
def test_restricted_fit_on_minus_one_zero_one_is_tango(
    wins: int, losses: int, ties: int, margin: float
) -> None:
    n = wins + losses + ties
    if n < 2:
        return
    d = np.array([1.0] * wins + [-1.0] * losses + [0.0] * ties)
    fit = ni.restricted_fit(d, -margin, lower=-1.0, upper=1.0)
    q = ni.tango_restricted_losses(wins, losses, n, -margin)
    assert fit.variance == pytest.approx(2 * q - margin - margin**2, rel=1e-9, abs=1e-12)
    st_ = ni.score_test(d, margin, lower=-1.0, upper=1.0)
    tt = ni.tango_test(wins, losses, n, margin)
    assert st_.statistic == pytest.approx(tt.statistic, rel=1e-9, abs=1e-9)
    # a proper distribution with the null mean
    mass = fit.weights.sum() + fit.mass_lower + fit.mass_upper
    assert mass == pytest.approx(1.0, abs=1e-9)
    mean = fit.weights @ fit.values + fit.mass_lower * -1.0 + fit.mass_upper * 1.0
    assert mean == pytest.approx(-margin, abs=1e-9)


@pytest.mark.parametrize(
    ("data", "delta0", "bounds"),
    [
        ("normal", -0.3, 6.0),
        ("normal", 0.2, 6.0),
        ("ties", -0.1, 4.0),
        ("lattice", -0.05, 1.0),
        ("lattice", 0.3, 1.0),
        ("skewed", -0.2, 10.0),
    ],
)
def test_restricted_fit_matches_numerical_optimisation(
    data: str, delta0: float, bounds: float
) -> None:
    rng = np.random.default_rng(3)
    d = {
        "normal": rng.normal(0, 1, 25),
        "ties": np.zeros(30),
        "lattice": rng.choice([-1.0, -0.5, 0.0, 0.5], p=[0.02, 0.05, 0.9, 0.03], size=80),
        "skewed": -(rng.gamma(0.3, 1.0, 30) - 0.3),
    }[data]
    fit = ni.restricted_fit(d, delta0, lower=-bounds, upper=bounds)
    brute = _brute_restricted_variance(d, delta0, -bounds, bounds)
    assert fit.variance == pytest.approx(brute, rel=1e-4)


def test_all_ties_restricted_variance_is_m_times_range_minus_m() -> None:
    r = ni.score_test(np.zeros(500), 0.1, lower=-4.0, upper=4.0, step=1.0)
    assert r.null_sd**2 == pytest.approx(0.1 * (4 - 0.1))
    assert r.statistic == pytest.approx(math.sqrt(500 * 0.1 / 3.9))
    with pytest.raises(ValueError, match="strictly inside"):
        ni.score_test(np.zeros(5), 0.1, lower=-0.05, upper=0.05)
    with pytest.raises(ValueError, match="positive"):
        ni.score_test(np.zeros(5), 0.0, lower=-1, upper=1)


def test_lattice_floor_is_the_minimum_variance_on_the_lattice() -> None:
    """Brute force: every distribution on two lattice points with mean −m (the minimisers)."""
    for step in (1.0, 0.5, 1 / 3):
        for m in (0.02, 0.1, 0.4, 0.7, 1.3):
            pts = step * np.arange(-10, 11)
            best = math.inf
            for i, a in enumerate(pts):
                for b in pts[i + 1 :]:
                    if a <= -m <= b:
                        p = (b + m) / (b - a)  # weight on a
                        best = min(best, p * (a + m) ** 2 + (1 - p) * (b + m) ** 2)
            assert ni.lattice_floor(m, step) == pytest.approx(best, abs=1e-12)
    assert ni.lattice_floor(0.1, 1.0) == pytest.approx(0.1 * 1.0 - 0.01)
    assert ni.lattice_floor(0.1, 0.0) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 200),
    k=st.integers(1, 4),
    margin=st.floats(0.005, 0.5),
    tie=st.floats(0.0, 0.99),
)
def test_restricted_variance_never_below_the_lattice_floor(
    seed: int, n: int, k: int, margin: float, tie: float
) -> None:
    """Differences of k-sample binary means live on the lattice 1/k; the fit respects it."""
    rng = np.random.default_rng(seed)
    d = np.where(rng.random(n) < tie, 0.0, rng.integers(-k, k + 1, n) / k)
    if margin >= 1:
        return
    fit = ni.restricted_fit(d, -margin, lower=-1.0, upper=1.0)
    assert fit.variance >= ni.lattice_floor(margin, 1 / k) - 1e-12


@pytest.mark.parametrize(
    ("values", "step"),
    [
        ([1, 2, 3, 5], 1.0),
        ([0.0, 0.5, 1.0], 0.5),
        ([0, 1 / 3, 1], 1 / 3),
        ([2.5, 4.0, 5.0], 0.5),
        ([0.1, 0.3, 0.7], 0.2),
    ],
)
def test_lattice_step_examples(values: list[float], step: float) -> None:
    assert ni.lattice_step(values) == pytest.approx(step)


def test_lattice_step_continuous_and_unknown() -> None:
    rng = np.random.default_rng(0)
    assert ni.lattice_step(rng.normal(size=200)) == 0.0
    assert math.isnan(ni.lattice_step([3.0, 3.0]))


@settings(max_examples=80, deadline=None)
@given(
    ints=st.lists(st.integers(-50, 50), min_size=2, max_size=40, unique=True),
    step=st.sampled_from([1.0, 0.5, 0.25, 0.1, 1 / 3, 2.0]),
    offset=st.floats(-10, 10),
)
def test_lattice_step_holds_every_value(ints: list[int], step: float, offset: float) -> None:
    values = offset + step * np.array(ints, dtype=float)
    got = ni.lattice_step(values)
    k = (values - values.min()) / got
    assert np.allclose(k, np.round(k), atol=1e-6)
    assert got / step == pytest.approx(round(got / step), abs=1e-6)  # a multiple of the truth


# ---------------------------------------------------------------- intervals and decisions


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(3, 300),
    shift=st.floats(-0.5, 0.5),
    margin=st.floats(0.01, 0.5),
    lattice=st.booleans(),
)
def test_score_interval_is_the_inverted_test(
    seed: int, n: int, shift: float, margin: float, lattice: bool
) -> None:
    """pass (p_noninferior < 0.05) ⇔ lower bound of the 90% score interval > −m."""
    rng = np.random.default_rng(seed)
    if lattice:
        d = rng.choice([-1.0, 0.0, 1.0], p=[0.1, 0.8, 0.1], size=n) + 0 * shift
        lower, upper, step = -4.0, 4.0, 1.0
    else:
        d = rng.normal(shift, 0.7, n)
        lower, upper, step = -6.0, 6.0, 0.0
    res = ni.score_test(d, margin, lower=lower, upper=upper, step=step)
    lo, hi = ni.score_interval(d, lower=lower, upper=upper, step=step, confidence=0.9)
    assert lo <= d.mean() <= hi
    if abs(res.statistic - Z95) > 1e-7:
        assert (res.p_noninferior < 0.05) == (lo > -margin)
    assert res.p_noninferior + res.p_regression == pytest.approx(1.0)


def test_score_test_close_to_the_t_test_for_large_normal_samples() -> None:
    rng = np.random.default_rng(8)
    d = rng.normal(-0.05, 0.8, 5000)
    res = ni.score_test(d, 0.1, lower=-8, upper=8)
    t = stats.ttest_1samp(d, -0.1, alternative="greater")
    assert res.p_noninferior == pytest.approx(t.pvalue, rel=0.02)
    lo, hi = ni.score_interval(d, lower=-8, upper=8, confidence=0.9)
    ci = stats.ttest_1samp(d, 0).confidence_interval(0.9)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=0.002)


def test_restricted_bootstrap_on_ties_is_the_exact_null_probability() -> None:
    """All tied: resamples from {0: 1 − m/R, −R: m/R}; P*(mean* >= 0) = (1 − m/R)^n."""
    n, m, r = 30, 0.1, 4.0
    p_ni, p_reg = ni.restricted_bootstrap(
        np.zeros(n), m, lower=-r, upper=r, n_resamples=20_000, seed=2
    )
    exact = (1 - m / r) ** n
    assert p_ni == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000))
    assert p_reg == pytest.approx(1.0, abs=1e-3)


def test_skewness_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    d = rng.gamma(0.5, 1.0, 300)
    assert ni.skewness(d) == pytest.approx(stats.skew(d, bias=True), rel=1e-12)
    assert ni.skewness(np.zeros(10)) == 0.0
    assert ni.skew_min_examples(-2.0) == 100


# ---------------------------------------------------------------- sample sizes


@pytest.mark.parametrize(("disc", "margin"), [(0.10, 0.02), (0.05, 0.02), (0.20, 0.05)])
def test_binary_sample_size_gives_the_power_by_exact_enumeration(
    disc: float, margin: float
) -> None:
    """Nam/Tango planning n: the exact power of tango_test at delta = −2m is about 80%."""
    s0, s1 = tango_sds(disc, -2 * margin, -margin)
    n = required_examples_score(s0, s1, margin, alpha=0.05, power=0.8)
    p_win, p_loss = (disc - 2 * margin) / 2, (disc + 2 * margin) / 2
    # exact power: enumerate (wins, losses) with a normal-approximation window (mass > 1 − 1e-9)
    mw, ml = n * p_win, n * p_loss
    ws = range(max(0, int(mw - 8 * math.sqrt(mw + 1))), int(mw + 8 * math.sqrt(mw + 1)) + 1)
    ls = range(max(0, int(ml - 8 * math.sqrt(ml + 1))), int(ml + 8 * math.sqrt(ml + 1)) + 1)
    power = mass = 0.0
    for w in ws:
        for l_ in ls:
            pr = stats.multinomial.pmf([w, l_, n - w - l_], n, [p_win, p_loss, 1 - disc])
            mass += pr
            power += pr * (ni.tango_test(w, l_, n, margin).p_regression < 0.05)
    assert mass > 1 - 1e-6
    assert power == pytest.approx(0.8, abs=0.03)


def test_normal_sample_size_matches_statsmodels() -> None:
    from statsmodels.stats.power import NormalIndPower

    sd, margin = 0.8, 0.1
    n = required_examples_score(sd, sd, margin, alpha=0.05, power=0.8)
    expected = NormalIndPower().solve_power(
        effect_size=margin / sd, alpha=0.05, power=0.8, ratio=0, alternative="larger"
    )
    assert n == math.ceil(expected)
    with pytest.raises(ValueError):
        required_examples_score(0.0, 0.5, 0.1, alpha=0.05, power=0.8)
    with pytest.raises(ValueError, match="impossible"):
        tango_sds(0.05, -0.1, -0.05)
