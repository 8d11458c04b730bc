"""llmbt.reports.stats against known values: hand-computed Sharpe, the DSR paper's worked example, closed-form
PSR/E[max SR], exact and chi-square McNemar tables, and the stationary bootstrap's defining properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2, norm

from llmbt.errors import LlmbtError
from llmbt.reports.stats import (
    DSR_NEEDS_TRIALS,
    McNemar,
    SharpeDiff,
    deflated_sharpe_ratio,
    dsr_from_moments,
    expected_max_sharpe,
    mcnemar,
    mcnemar_from_hits,
    probabilistic_sharpe_ratio,
    psr_from_moments,
    sharpe_diff_ci,
    sharpe_ratio,
    significance_summary,
    stationary_bootstrap_indices,
)

GAMMA = 0.5772156649


def daily(n: int = 750, seed: int = 7) -> pd.Series:
    """Real-ish daily returns: N(0.0005, 0.01) on business days, fixed seed."""
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(0.0005, 0.01, n), index=pd.bdate_range("2020-01-01", periods=n), name="ref")


def annual_sharpe_rows(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1) / x.std(axis=1, ddof=1) * math.sqrt(252)


# --- Sharpe ratio ------------------------------------------------------------------------------------


def test_sharpe_ratio_golden_value():
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.015])
    # by hand: mean 0.035 / 5 = 0.007; squared deviations 9 + 729 + 529 + 49 + 64 = 1380 (e-6); / 4 = 345e-6
    expected = 0.007 / math.sqrt(345e-6) * math.sqrt(252)
    assert expected == pytest.approx(5.982583, abs=1e-6)
    assert sharpe_ratio(r) == pytest.approx(expected, rel=1e-12)
    assert sharpe_ratio(r, periods_per_year=1) == pytest.approx(0.007 / math.sqrt(345e-6), rel=1e-12)
    with_nan = pd.Series([0.01, np.nan, -0.02, 0.03, 0.0, None, 0.015])
    assert sharpe_ratio(with_nan) == pytest.approx(expected, rel=1e-12)


def test_sharpe_ratio_undefined_and_bad_input():
    assert math.isnan(sharpe_ratio([0.01, 0.01, 0.01]))
    assert math.isnan(sharpe_ratio([0.01]))
    with pytest.raises(LlmbtError, match="periods_per_year must be a number > 0; got 0"):
        sharpe_ratio([0.01, 0.02], periods_per_year=0)
    with pytest.raises(LlmbtError, match="must hold numbers"):
        sharpe_ratio(["up", "down"])


# --- stationary bootstrap -----------------------------------------------------------------------------


def test_bootstrap_indices_shape_range_and_seed():
    idx = stationary_bootstrap_indices(30, 4, 50, np.random.default_rng(1))
    assert idx.shape == (50, 30) and np.issubdtype(idx.dtype, np.integer)
    assert idx.min() >= 0 and idx.max() <= 29
    assert np.array_equal(idx, stationary_bootstrap_indices(30, 4, 50, np.random.default_rng(1)))
    assert not np.array_equal(idx, stationary_bootstrap_indices(30, 4, 50, np.random.default_rng(2)))
    # long blocks must wrap around from n - 1 to 0
    long = stationary_bootstrap_indices(10, 50, 200, 3)
    assert ((long[:, :-1] == 9) & (long[:, 1:] == 0)).any()
    with pytest.raises(LlmbtError, match="mean_block .* must be a number >= 1; got 0.5"):
        stationary_bootstrap_indices(10, 0.5, 3, 0)
    with pytest.raises(LlmbtError, match="n_boot must be an integer >= 1; got 0"):
        stationary_bootstrap_indices(10, 2, 0, 0)


def test_bootstrap_block_lengths_are_geometric_with_the_requested_mean():
    n, mean_block = 2000, 8
    idx = stationary_bootstrap_indices(n, mean_block, 100, np.random.default_rng(123))
    new_block = idx[:, 1:] != (idx[:, :-1] + 1) % n
    # a new block starts with probability 1/8 (less the 1/n chance of restarting at the next index)
    assert new_block.mean() == pytest.approx(1 / mean_block, abs=0.004)
    lengths = np.concatenate([np.diff(np.flatnonzero(row) + 1) for row in new_block])  # complete blocks
    assert lengths.mean() == pytest.approx(mean_block, abs=0.25)
    # geometric, not fixed, lengths: P(L = 1) = 1/8 and P(L > 16) = (7/8)^16
    assert (lengths == 1).mean() == pytest.approx(1 / 8, abs=0.01)
    assert (lengths > 16).mean() == pytest.approx((7 / 8) ** 16, abs=0.01)
    # mean_block = 1: every position starts a new block (i.i.d. bootstrap)
    iid = stationary_bootstrap_indices(n, 1, 20, np.random.default_rng(5))
    assert (iid[:, 1:] != (iid[:, :-1] + 1) % n).mean() > 0.99


def test_bootstrap_marginals_are_uniform():
    idx = stationary_bootstrap_indices(20, 4, 5000, np.random.default_rng(9))
    counts = np.bincount(idx.ravel(), minlength=20)
    assert np.abs(counts / 5000 - 1).max() < 0.05  # every index drawn 5000 times on average


# --- paired Sharpe difference -------------------------------------------------------------------------


def test_identical_series_are_not_significant():
    b = daily()
    diff = sharpe_diff_ci(b.rename("cand"), b)
    assert isinstance(diff, SharpeDiff)
    assert diff.diff == 0 and diff.low == 0 and diff.high == 0
    assert diff.p_value == 1.0 and diff.significant is False
    assert diff.n == 750 and diff.n_boot == 2000 and diff.mean_block == round(750 ** (1 / 3)) == 9
    text = significance_summary(diff, deflated_sharpe_ratio(b, 1), mcnemar(3, 4))
    assert "not significant" in text.lower()
    assert "+0.00 (95% CI +0.00 to +0.00" in text


def test_strong_daily_edge_is_significant():
    b = daily()
    a = (b + 0.002).rename("cand")
    diff = sharpe_diff_ci(a, b)
    expected = (a.mean() / a.std() - b.mean() / b.std()) * math.sqrt(252)
    assert diff.diff == pytest.approx(expected, rel=1e-12)
    assert diff.significant is True and diff.low > 0 and diff.low < diff.diff < diff.high
    assert diff.p_value == pytest.approx(2 / 2001)  # no resample reaches 0
    assert sharpe_diff_ci(a, b) == diff  # deterministic with the seed
    assert sharpe_diff_ci(a, b, seed=1).low != diff.low
    text = significance_summary(diff, deflated_sharpe_ratio(a, 1), mcnemar(5, 5))
    assert "not significant" not in text.lower()
    assert f"The Sharpe difference {diff.diff:+.2f}" in text and "is significant at the 5% level" in text


def test_pairing_makes_the_interval_much_narrower():
    b = daily()
    a = b + np.random.default_rng(11).normal(0, 0.001, len(b))
    paired = sharpe_diff_ci(a, b, n_boot=1000)
    # unpaired: resample a and b independently (same block scheme)
    ia = stationary_bootstrap_indices(len(b), 9, 1000, np.random.default_rng(21))
    ib = stationary_bootstrap_indices(len(b), 9, 1000, np.random.default_rng(22))
    unpaired = annual_sharpe_rows(a.to_numpy()[ia]) - annual_sharpe_rows(b.to_numpy()[ib])
    low, high = np.quantile(unpaired, [0.025, 0.975])
    assert paired.high - paired.low < 0.25 * (high - low)
    assert paired.low < 0 < paired.high and not paired.significant


def test_sharpe_diff_aligns_on_common_dates():
    b = daily(300)
    a = daily(300, seed=8).rename("cand")
    shifted = a.shift(50, freq="B")  # overlaps b on its last 250 dates
    diff = sharpe_diff_ci(shifted, b, n_boot=200)
    common = b.index.intersection(shifted.index)
    assert diff.n == 250
    assert diff.diff == pytest.approx(sharpe_ratio(shifted[common]) - sharpe_ratio(b[common]), rel=1e-12)
    # NaN pairs are dropped; shuffled input is put back in date order
    a_nan = a.copy()
    a_nan.iloc[10] = np.nan
    assert sharpe_diff_ci(a_nan, b, n_boot=200).n == 299
    shuffled = a.sample(frac=1, random_state=0)
    assert sharpe_diff_ci(shuffled, b, n_boot=200) == sharpe_diff_ci(a, b, n_boot=200)
    # arrays pair by position
    positional = sharpe_diff_ci(a.to_numpy(), b.to_numpy(), n_boot=200)
    assert positional.diff == sharpe_diff_ci(a, b, n_boot=200).diff


def test_sharpe_diff_errors_name_the_value_and_the_fix():
    b = daily(100)
    later = daily(100).set_axis(pd.bdate_range("2030-01-01", periods=100)).rename("cand")
    with pytest.raises(LlmbtError, match="returns 'cand' and 'ref' have no common dates.*same test periods"):
        sharpe_diff_ci(later, b)
    with pytest.raises(LlmbtError, match="only 10 common non-missing periods \\(need 20\\)"):
        sharpe_diff_ci(b.iloc[:10], b)
    with pytest.raises(LlmbtError, match="a has 30 values but b has 31"):
        sharpe_diff_ci(np.ones(30), np.ones(31))
    with pytest.raises(LlmbtError, match="alpha must be between 0 and 1"):
        sharpe_diff_ci(b, b, alpha=5)


def test_zero_variance_returns_give_nan_and_not_significant():
    b = daily(100)
    flat = pd.Series(0.0, index=b.index)
    diff = sharpe_diff_ci(flat, b, n_boot=100)
    assert math.isnan(diff.diff) and math.isnan(diff.p_value) and diff.significant is False
    assert "not significant" in significance_summary(diff, float("nan"), mcnemar(0, 0)).lower()


# --- PSR / DSR ----------------------------------------------------------------------------------------


def test_psr_closed_form_on_explicit_numbers():
    # 24 monthly returns, SR 0.458 per month, skew -2.448, kurtosis 10.164 (non-excess), SR* = 0
    z = 0.458 * math.sqrt(23) / math.sqrt(1 + 2.448 * 0.458 + (10.164 - 1) / 4 * 0.458**2)
    assert psr_from_moments(0.458, 24, -2.448, 10.164) == pytest.approx(norm.cdf(z), rel=1e-12)
    assert norm.cdf(z) == pytest.approx(0.91336, abs=1e-5)
    # normal returns (skew 0, kurtosis 3): Phi(SR sqrt(n - 1) / sqrt(1 + SR^2 / 2))
    assert psr_from_moments(0.1, 101, 0.0, 3.0) == pytest.approx(norm.cdf(1.0 / math.sqrt(1.005)), rel=1e-12)
    assert psr_from_moments(0.2, 50, 0.5, 4.0, sr_benchmark=0.2) == 0.5


def test_dsr_paper_worked_example():
    # Bailey & López de Prado (2014), numerical example: annual SR 2.5 over 5 years of daily returns
    # (T = 1250, 250 a year), skew -3, kurtosis 10, after N = 100 trials with annual V[SR] = 1/2.
    # By hand: Phi^-1(1 - 1/100) = 2.32635, Phi^-1(1 - 1/(100 e)) = 2.68021, so
    # E[max SR] = sqrt(1/2) * (0.42278 * 2.32635 + 0.57722 * 2.68021) = sqrt(1/2) * 2.53060 = 1.78941
    # a year = 0.113172 a day (/ sqrt 250); SR = 2.5 / sqrt 250 = 0.158114 a day;
    # z = (0.158114 - 0.113172) * sqrt(1249) / sqrt(1 + 3 * 0.158114 + 9/4 * 0.158114**2) = 1.28382
    # DSR = Phi(1.28382) = 0.9004 (the paper's value).
    assert norm.ppf(1 - 1 / (100 * math.e)) == pytest.approx(2.68021, abs=1e-5)
    assert expected_max_sharpe(100, 0.5) == pytest.approx(1.78941, abs=1e-5)
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.113172, abs=1e-6)
    sr = 2.5 / math.sqrt(250)
    assert psr_from_moments(sr, 1250, -3.0, 10.0, sr0) == pytest.approx(0.9004, abs=1e-4)
    assert norm.cdf(1.28382) == pytest.approx(0.9004, abs=1e-4)
    assert dsr_from_moments(sr, 1250, -3.0, 10.0, 100, 0.5 / 250) == pytest.approx(0.900397, abs=1e-6)
    assert math.isnan(dsr_from_moments(sr, 1250, -3.0, 10.0, 1, 0.5 / 250))  # one trial: no DSR


def test_psr_on_a_constructed_series_matches_independent_moments():
    rng = np.random.default_rng(3)
    r = rng.gamma(2.0, 0.005, 600) - 0.009  # right-skewed, fat-tailed daily-like returns
    n, d = len(r), r - r.mean()
    m2, m3, m4 = (d**2).mean(), (d**3).mean(), (d**4).mean()
    skew, kurt = m3 / m2**1.5, m4 / m2**2
    sr = r.mean() / r.std(ddof=1)
    assert skew > 1 and kurt > 4  # really non-normal
    for sr_star in (0.0, 0.05):
        z = (sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
        assert probabilistic_sharpe_ratio(r, sr_star) == pytest.approx(norm.cdf(z), rel=1e-10)
    with_nan = pd.Series(np.insert(r, [5, 50], np.nan))
    assert probabilistic_sharpe_ratio(with_nan) == pytest.approx(probabilistic_sharpe_ratio(r), rel=1e-12)
    assert probabilistic_sharpe_ratio(r, sr) == pytest.approx(0.5, abs=1e-12)
    # mirrored returns: SR and skew both flip sign, so PSR(-r) = 1 - PSR(r)
    assert probabilistic_sharpe_ratio(-r) == pytest.approx(1 - probabilistic_sharpe_ratio(r), abs=1e-12)
    assert math.isnan(probabilistic_sharpe_ratio([0.01, 0.02]))
    assert math.isnan(probabilistic_sharpe_ratio([0.0] * 9))


def test_expected_max_sharpe_known_values():
    assert expected_max_sharpe(1, 1.0) == 0.0
    for n, known in ((10, 1.5746), (100, 2.5306), (1000, 3.2551)):
        by_hand = (1 - GAMMA) * norm.ppf(1 - 1 / n) + GAMMA * norm.ppf(1 - 1 / (n * math.e))
        assert expected_max_sharpe(n, 1.0) == pytest.approx(by_hand, rel=1e-9)
        assert expected_max_sharpe(n, 1.0) == pytest.approx(known, abs=1e-4)
    assert expected_max_sharpe(100, 4.0) == pytest.approx(2 * expected_max_sharpe(100, 1.0), rel=1e-12)
    values = [expected_max_sharpe(n, 1.0) for n in (2, 5, 10, 100, 1000, 10_000)]
    assert all(x < y for x, y in zip(values, values[1:], strict=False))
    # the mean maximum of 1000 standard normals is about 3.24
    simulated = np.random.default_rng(0).standard_normal((2000, 1000)).max(axis=1).mean()
    assert simulated == pytest.approx(3.24, abs=0.02)
    assert expected_max_sharpe(1000, 1.0) == pytest.approx(simulated, abs=0.1)


@pytest.mark.parametrize("n_trials, var", [(0, 1.0), (2.5, 1.0), (True, 1.0), (10, -1.0), (10, float("nan"))])
def test_expected_max_sharpe_rejects_bad_input(n_trials, var):
    with pytest.raises(LlmbtError, match="n_trials must be an integer >= 1|var_sharpe must be a finite"):
        expected_max_sharpe(n_trials, var)


def test_deflated_sharpe_ratio():
    r = daily(500, seed=4) + 0.0005
    psr0 = probabilistic_sharpe_ratio(r)
    # one trial: nothing was selected, no variance to estimate; "DSR needs ≥ 2 trials", not the PSR
    assert math.isnan(deflated_sharpe_ratio(r, 1)) and not math.isnan(psr0)
    assert math.isnan(deflated_sharpe_ratio(r, 1, var_sharpe=0.5))
    assert DSR_NEEDS_TRIALS == "DSR needs ≥ 2 trials"
    dsr = [psr0] + [deflated_sharpe_ratio(r, n, var_sharpe=1e-3) for n in (2, 5, 10, 100, 1000)]
    assert all(x > y for x, y in zip(dsr, dsr[1:], strict=False))
    trials = [0.01, 0.05, -0.02, 0.08, 0.03]
    by_var = deflated_sharpe_ratio(r, 5, var_sharpe=float(np.var(trials, ddof=1)))
    assert deflated_sharpe_ratio(r, 5, trial_sharpes=trials) == pytest.approx(by_var, rel=1e-12)
    sr_star = expected_max_sharpe(5, float(np.var(trials, ddof=1)))
    assert by_var == pytest.approx(probabilistic_sharpe_ratio(r, sr_star), rel=1e-12)


def test_deflated_sharpe_ratio_errors():
    r = daily(100)
    with pytest.raises(LlmbtError, match="n_trials=3 needs trial_sharpes or var_sharpe"):
        deflated_sharpe_ratio(r, 3)
    with pytest.raises(LlmbtError, match="both trial_sharpes and var_sharpe"):
        deflated_sharpe_ratio(r, 3, trial_sharpes=[0.1, 0.2], var_sharpe=0.1)
    with pytest.raises(LlmbtError, match="trial_sharpes needs 2 or more values"):
        deflated_sharpe_ratio(r, 3, trial_sharpes=[0.1])
    with pytest.raises(LlmbtError, match="n_trials must be an integer >= 1; got 0"):
        deflated_sharpe_ratio(r, 0)


def test_summary_says_why_there_is_no_dsr():
    b = daily()
    diff = sharpe_diff_ci(b * 1.01, b, n_boot=200)
    text = significance_summary(diff, float("nan"), mcnemar(3, 4), dsr_note=DSR_NEEDS_TRIALS)
    assert "the deflated Sharpe ratio is not reported (DSR needs ≥ 2 trials)" in text


# --- McNemar ------------------------------------------------------------------------------------------


def test_mcnemar_exact_small_table():
    mc = mcnemar(10, 2)
    # 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert mc == McNemar(b=10, c=2, statistic=2.0, p_value=pytest.approx(158 / 4096), exact=True)
    assert mc.p_value == pytest.approx(0.038574, abs=1e-6)
    assert mcnemar(2, 10).p_value == mc.p_value
    assert mcnemar(7, 7).p_value == 1.0
    assert mcnemar(0, 0).p_value == 1.0 and mcnemar(0, 0, exact=False).p_value == 1.0
    assert mcnemar(0, 1).p_value == 1.0


def test_mcnemar_chi_square_large_table():
    mc = mcnemar(40, 20)
    assert mc.exact is False
    assert mc.statistic == pytest.approx(19**2 / 60) == pytest.approx(6.016667, abs=1e-6)
    assert mc.p_value == pytest.approx(chi2.sf(19**2 / 60, 1), rel=1e-12)
    assert mc.p_value == pytest.approx(0.01417, abs=1e-5)
    # exact forced on the same table: 2 * P(X <= 20), X ~ Bin(60, 1/2), summed by hand
    exact = mcnemar(40, 20, exact=True)
    by_hand = 2 * sum(math.comb(60, k) for k in range(21)) / 2**60
    assert exact.exact and exact.p_value == pytest.approx(by_hand, rel=1e-10)
    assert mcnemar(12, 12).exact is True and mcnemar(13, 12).exact is False  # exact below 25 discordant
    assert mcnemar(20, 20).p_value == 1.0  # no negative correction when b == c
    with pytest.raises(LlmbtError, match="b must be an integer >= 0; got -1"):
        mcnemar(-1, 3)


def test_mcnemar_from_hits_builds_the_table_and_drops_missing():
    cases = ([(True, False)] * 10 + [(False, True)] * 2 + [(True, True)] * 5 + [(False, False)] * 3
             + [(None, True), (True, np.nan), (np.nan, None), (False, None)])
    order = np.random.default_rng(0).permutation(len(cases))
    a = [cases[i][0] for i in order]
    b = [cases[i][1] for i in order]
    assert mcnemar_from_hits(a, b) == mcnemar(10, 2)
    assert mcnemar_from_hits(np.array([True, False]), np.array([True, True])) == mcnemar(0, 1)
    # Series align on their index
    sa = pd.Series([True, False, True], index=[1, 2, 3])
    sb = pd.Series([False, False, True], index=[0, 1, 2])
    sb = sb.drop(2)  # common labels: 1 only, where A is right and B wrong
    assert mcnemar_from_hits(sa, sb) == mcnemar(1, 0)
    with pytest.raises(LlmbtError, match="hits_a has 2 values but hits_b has 3"):
        mcnemar_from_hits([True, False], [True, False, True])
    with pytest.raises(LlmbtError, match="hits must be True/False .*got 0.5"):
        mcnemar_from_hits([0.5, 1.0], [1.0, 1.0])


# --- summary ------------------------------------------------------------------------------------------


def test_summary_wording_follows_alpha_and_the_tests():
    b = daily()
    diff = sharpe_diff_ci(b + np.random.default_rng(2).normal(0, 0.003, len(b)), b, n_boot=500, alpha=0.1)
    text = significance_summary(diff, 0.42, mcnemar(40, 20), alpha=0.1)
    assert "90% CI" in text and "at the 10% level" in text
    assert "deflated Sharpe ratio is 0.42 (below 0.90" in text
    assert "McNemar's test on 60 disagreements (p = 0.014) finds a significant difference" in text
    assert ("is significant at" in text) == diff.significant
