"""llmbt.reports.crosssection against known values: hand-computed IC t-stats, a block-bootstrap CI on AR(1)
differences of known mean and long-run variance, arch's own SPA on the same draws, the documented block-length
rule against arch's Politis-White estimates, and the DSR of the best arm by hand (Bailey & López de Prado)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import SPA, optimal_block_length
from scipy import stats as sps

from llmbt.errors import DataError, LlmbtError
from llmbt.reports.crosssection import (
    crosssection_table,
    deflated_sharpe_for_arms,
    ic_stats,
    paired_ic_difference,
    sharpe_difference_ci,
    spa_test,
)
from llmbt.reports.stats import deflated_sharpe_ratio, sharpe_diff_ci, sharpe_ratio

DAYS = pd.bdate_range("2019-01-01", periods=1000)
PHI, SIGMA = 0.5, 0.1  # AR(1) of the IC differences: long-run sd of the mean = SIGMA / (1 - PHI) / sqrt(n)


def ar1(n: int, phi: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean AR(1), started from its stationary distribution."""
    e, out = rng.normal(0.0, sigma, n), np.empty(n)
    out[0] = e[0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def ic_pair(shift: float, seed: int = 3) -> tuple[pd.Series, pd.Series]:
    """Daily ICs of arms B (AR(1) around 0.02) and A = B + shift + AR(1) noise, on DAYS."""
    rng = np.random.default_rng(seed)
    b = 0.02 + ar1(len(DAYS), 0.3, 0.08, rng)
    a = b + shift + ar1(len(DAYS), PHI, SIGMA, rng)
    assert np.abs(a).max() < 1 and np.abs(b).max() < 1
    return pd.Series(a, DAYS, name="tuned"), pd.Series(b, DAYS, name="base")


def arms(excess: dict[str, float], n: int = 500, seed: int = 11) -> tuple[pd.DataFrame, pd.Series]:
    """Benchmark N(0.0003, 0.01) and arms = benchmark + mean excess + N(0, 0.005) noise, daily."""
    rng = np.random.default_rng(seed)
    bench = pd.Series(rng.normal(0.0003, 0.01, n), DAYS[:n], name="base")
    frame = pd.DataFrame({k: bench + m + rng.normal(0, 0.005, n) for k, m in excess.items()})
    return frame, bench


# --- IC statistics -------------------------------------------------------------------------------------


def test_ic_stats_hand_computed():
    ic = pd.Series([0.1, 0.2, np.nan, -0.1, 0.3, 0.0, 0.1], index=DAYS[:7])
    # valid: 0.1 0.2 -0.1 0.3 0.0 0.1 -> mean 0.1; squared deviations 0 .01 .04 .04 .01 0 -> var 0.02
    s = ic_stats(ic)
    assert s["mean_ic"] == pytest.approx(0.1) and s["std_ic"] == pytest.approx(math.sqrt(0.02))
    assert s["t_stat_nonoverlap"] == pytest.approx(math.sqrt(3))  # 0.1 / (sqrt(0.02) / sqrt(6))
    assert s["p_value"] == pytest.approx(2 * sps.t.sf(math.sqrt(3), 5))
    assert (s["days"], s["days_nonoverlap"], s["hit_share"], s["horizon"]) == (6, 6, pytest.approx(2 / 3), 1)


def test_ic_stats_t_uses_non_overlapping_days_only():
    ic = pd.Series([0.1, 0.2, np.nan, -0.1, 0.3, 0.0, 0.1], index=DAYS[:7])
    s = ic_stats(ic, horizon=3)  # every 3rd valid day: 0.1, 0.3 -> mean 0.2, sd sqrt(0.02), t = 2
    assert s["t_stat_nonoverlap"] == pytest.approx(2.0) and s["days_nonoverlap"] == 2
    assert s["p_value"] == pytest.approx(1 - 2 * math.atan(2) / math.pi)  # Student t with 1 df = Cauchy
    assert s["mean_ic"] == pytest.approx(0.1) and s["days"] == 6  # the mean uses every day


def test_ic_stats_rejects_values_outside_a_correlation():
    with pytest.raises(DataError, match=r"1\.5.*\[-1, 1\]"):
        ic_stats(pd.Series([0.1, 1.5, 0.2], index=DAYS[:3]))
    with pytest.raises(DataError, match="sorted"):
        ic_stats(pd.Series([0.1, 0.2], index=DAYS[:2][::-1]))


# --- paired IC difference ------------------------------------------------------------------------------


def test_paired_ic_difference_covers_a_large_shift_and_excludes_zero():
    a, b = ic_pair(0.05)
    d = paired_ic_difference(a, b)
    assert d["diff"] == pytest.approx((a - b).mean()) and d["n"] == len(DAYS)
    assert d["low"] < 0.05 < d["high"] and d["low"] > 0 and d["significant"]
    assert d["p_value"] < 0.01 and d["mean_a"] - d["mean_b"] == pytest.approx(d["diff"])


def test_paired_ic_difference_includes_zero_without_a_shift():
    a, b = ic_pair(0.0)
    d = paired_ic_difference(a, b)
    assert d["low"] < 0 < d["high"] and not d["significant"] and d["p_value"] > 0.1


def test_paired_ic_difference_width_matches_the_long_run_variance():
    """AR(1) differences: the CI must be as wide as the long-run variance says, not the iid one (~0.58x)."""
    a, b = ic_pair(0.05)
    d = paired_ic_difference(a, b, n_boot=4000)
    true_half = sps.norm.ppf(0.975) * SIGMA / (1 - PHI) / math.sqrt(len(DAYS))
    assert d["mean_block"] > 2  # data-driven: longer than 1 on autocorrelated data
    assert 0.75 < (d["high"] - d["low"]) / 2 / true_half < 1.25  # seeds 0-5: 0.79 to 0.98


def test_paired_ic_difference_iid_ci_is_the_normal_interval():
    """Blocks of 1 on iid differences: the percentile CI of a mean is mean +- z * sd / sqrt(n)."""
    rng = np.random.default_rng(4)
    a, b = (pd.Series(rng.normal(0.02, 0.1, 1000), DAYS) for _ in range(2))
    sd = (a - b).std(ddof=0) / math.sqrt(len(DAYS))
    for alpha in (0.05, 0.2):
        d = paired_ic_difference(a, b, block=1, n_boot=8000, alpha=alpha)
        half = sps.norm.ppf(1 - alpha / 2) * sd
        assert d["mean_block"] == 1 and d["alpha"] == alpha
        assert (d["high"] - d["low"]) / 2 == pytest.approx(half, rel=0.05)
        assert (d["high"] + d["low"]) / 2 == pytest.approx(d["diff"], abs=0.1 * half)


def test_paired_ic_difference_aligns_common_dates_and_is_seeded():
    a, b = ic_pair(0.05)
    d = paired_ic_difference(a.iloc[100:], b.iloc[:900], seed=5)
    assert d["n"] == 800 and d["diff"] == pytest.approx((a - b).iloc[100:900].mean())
    assert paired_ic_difference(a.iloc[100:], b.iloc[:900], seed=5) == d
    assert paired_ic_difference(a, b, horizon=40)["mean_block"] >= 40  # overlapping windows: block >= h
    with pytest.raises(LlmbtError, match="daily ICs 'ic_a' and 'ic_b' have only 10 common"):
        paired_ic_difference(a.iloc[:10], b)


# --- Sharpe difference ---------------------------------------------------------------------------------


def test_sharpe_difference_is_stats_sharpe_diff_ci_with_a_data_block():
    frame, bench = arms({"tuned": 0.001})
    got = sharpe_difference_ci(frame["tuned"], bench, 252, seed=2)
    ref = sharpe_diff_ci(frame["tuned"], bench, 252, 2000, got["mean_block"], 0.05, 2)
    assert got == {**ref.__dict__}
    assert got["diff"] == pytest.approx(sharpe_ratio(frame["tuned"]) - sharpe_ratio(bench))
    assert got["mean_block"] >= 1 and got["low"] < got["diff"] < got["high"]


# --- SPA / Reality Check -------------------------------------------------------------------------------


def test_spa_small_when_one_arm_clearly_beats_the_benchmark():
    frame, bench = arms({"prompt_a": 0.0, "prompt_b": -0.0005, "adapter": 0.002, "model_x": 0.0})
    s = spa_test(frame, bench, reps=1000)
    assert s["p_spa"] < 0.01 and s["p_reality_check"] < 0.01 and s["p_lower"] <= s["p_spa"]
    assert s["best_arm"] == "adapter" and s["stepm"] == ["adapter"] and s["n_arms"] == 4 and s["n"] == 500
    assert s["best_mean_excess"] == pytest.approx((frame["adapter"] - bench).mean())


def test_spa_large_when_no_arm_beats_the_benchmark():
    frame, bench = arms({"prompt_a": 0.0, "prompt_b": 0.0, "adapter": 0.0, "model_x": -0.001})
    s = spa_test(frame, bench, reps=1000)
    assert s["p_spa"] > 0.2 and s["p_reality_check"] > 0.2 and s["stepm"] == []
    same = spa_test(pd.DataFrame({"x": bench, "y": bench, "z": bench}), bench, reps=200)
    assert (same["p_lower"], same["p_spa"], same["p_reality_check"], same["stepm"]) == (1.0, 1.0, 1.0, [])


def test_spa_p_values_are_arch_spa_on_the_same_draws():
    frame, bench = arms({"a": 0.0002, "b": 0.0, "c": 0.0003, "poor": -0.003})
    s = spa_test(frame, bench, reps=500, seed=9, block=7)
    assert s["p_lower"] <= s["p_consistent"] < s["p_upper"]  # "poor" is only re-centred by the RC
    direct = SPA(-bench.to_numpy(), -frame.to_numpy(), block_size=7, reps=500, seed=9)
    direct.compute()
    p = direct.pvalues
    assert (s["p_lower"], s["p_consistent"], s["p_upper"]) == (p["lower"], p["consistent"], p["upper"])
    assert s["p_spa"] == p["consistent"] and s["p_reality_check"] == p["upper"]
    as_losses = spa_test(-frame, -bench, losses=True, reps=500, seed=9, block=7)
    assert as_losses["p_spa"] == s["p_spa"] and as_losses["best_arm"] == s["best_arm"] == "c"


def test_spa_bad_input_is_one_clear_error():
    frame, bench = arms({"a": 0.0})
    with pytest.raises(LlmbtError, match="bootstrap='iid'"):
        spa_test(frame, bench, bootstrap="iid")
    with pytest.raises(DataError, match="have 10 common dates"):
        spa_test(frame.iloc[:10], bench)


# --- Deflated Sharpe -----------------------------------------------------------------------------------


def test_deflated_sharpe_for_arms_is_stats_dsr_with_n_trials():
    frame, _ = arms({"a": 0.0, "b": 0.0004, "c": 0.0012, "d": -0.0003, "e": 0.0006})
    got = deflated_sharpe_for_arms(frame)
    per_period = [sharpe_ratio(frame[c], 1) for c in frame.columns]
    assert got["best_arm"] == "c" and got["n_trials"] == 5 and got["n"] == 500
    dsr = deflated_sharpe_ratio(frame["c"], 5, trial_sharpes=per_period)
    assert got["dsr"] == pytest.approx(dsr, rel=1e-12) and 0 < dsr < 1
    assert got["dsr"] != pytest.approx(deflated_sharpe_ratio(frame["c"], 4, trial_sharpes=per_period))
    assert got["sharpe"] == pytest.approx(sharpe_ratio(frame["c"]))
    with pytest.raises(DataError, match="DSR needs"):
        deflated_sharpe_for_arms(frame[["a"]])


def hand_emax(n_trials: int, var_sharpe: float) -> float:
    """E[max SR] of N skill-less trials: sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e)))."""
    g, ppf = np.euler_gamma, sps.norm.ppf
    return math.sqrt(var_sharpe) * ((1 - g) * ppf(1 - 1 / n_trials) + g * ppf(1 - 1 / (n_trials * math.e)))


def hand_dsr(x: pd.Series, n_trials: int, var_sharpe: float) -> float:
    """Bailey & López de Prado (2014) from scratch: Phi((SR - E[max SR]) sqrt(T - 1) / sqrt(1 - skew SR +
    (kurt - 1) / 4 SR^2)), per-period SR (ddof=1), moment-ratio skew and non-excess kurtosis."""
    r = x.to_numpy()
    d, t = r - r.mean(), len(r)
    skew, kurt = (d**3).mean() / (d**2).mean() ** 1.5, (d**4).mean() / (d**2).mean() ** 2
    sr = r.mean() / r.std(ddof=1)
    z = (sr - hand_emax(n_trials, var_sharpe)) * math.sqrt(t - 1)
    return float(sps.norm.cdf(z / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)))


def test_deflated_sharpe_for_arms_by_hand_counts_every_arm_tried():
    frame, _ = arms({"a": 0.0, "b": 0.0004, "c": 0.0012, "d": -0.0003})
    sr = {arm: frame[arm].mean() / frame[arm].std(ddof=1) for arm in frame.columns}
    v = float(np.var(list(sr.values()), ddof=1))
    dsrs = []
    for flat in (0, 1, 3, 10):  # arms tried that never traded: no Sharpe, but each one is a trial
        got = deflated_sharpe_for_arms(frame.assign(**{f"flat{i}": 0.0 for i in range(flat)}))
        n_trials = 4 + flat
        assert (got["n_trials"], got["best_arm"]) == (n_trials, "c")
        assert got["var_sharpe"] == pytest.approx(v, rel=1e-12)
        assert got["expected_max_sharpe"] == pytest.approx(hand_emax(n_trials, v) * math.sqrt(252), rel=1e-12)
        for arm in "abcd":
            assert got["dsrs"][arm] == pytest.approx(hand_dsr(frame[arm], n_trials, v), rel=1e-10), arm
        assert got["dsr"] == got["dsrs"]["c"]
        assert all(math.isnan(got["dsrs"][f"flat{i}"]) for i in range(flat))
        dsrs.append(got["dsr"])
    assert 0.05 < dsrs[-1] and all(x > y for x, y in zip(dsrs, dsrs[1:], strict=False))  # falls as N grows


# --- block length --------------------------------------------------------------------------------------


def test_spa_block_is_the_rounded_median_estimate_of_the_varying_excess_series():
    rng = np.random.default_rng(7)
    bench = pd.Series(rng.normal(0.0003, 0.01, 500), DAYS[:500])
    excess = np.column_stack([ar1(500, phi, 0.004, rng) for phi in (0.0, 0.5, 0.85)])
    frame = pd.DataFrame(bench.to_numpy()[:, None] + excess, DAYS[:500], ["iid", "ar5", "ar85"])
    pw = optimal_block_length(frame.sub(bench, axis=0).to_numpy())["stationary"].to_numpy()
    assert round(pw.min()) < round(np.median(pw)) == 8 < round(pw.mean()) < round(pw.max())
    assert spa_test(frame.assign(same=bench), bench, reps=50)["block"] == 8  # the constant arm is left out
    flat = spa_test(pd.DataFrame({"x": bench, "y": bench}).iloc[:343], bench, reps=50)
    assert flat["block"] == round(343 ** (1 / 3)) == 7  # every excess constant: n ** (1/3)


def test_paired_ic_difference_block_is_the_estimate_at_least_horizon_and_1_at_most_n():
    a, b = ic_pair(0.05)
    pw = float(optimal_block_length((a - b).to_numpy())["stationary"].iloc[0])
    assert 2 < pw < 40 and paired_ic_difference(a, b, n_boot=10)["mean_block"] == pw
    assert paired_ic_difference(a, b, n_boot=10, horizon=40)["mean_block"] == 40.0  # at least the horizon
    assert paired_ic_difference(a.iloc[:25], b.iloc[:25], n_boot=10, horizon=40)["mean_block"] == 25.0
    rng = np.random.default_rng(4)
    x, y = (pd.Series(rng.normal(0.02, 0.1, 1000), DAYS) for _ in range(2))
    assert float(optimal_block_length((x - y).to_numpy())["stationary"].iloc[0]) < 1
    assert paired_ic_difference(x, y, n_boot=10)["mean_block"] == 1.0  # at least 1
    dyadic = pd.Series(np.arange(1000) % 7 / 64, DAYS)  # + 1/16 exactly: constant differences
    assert paired_ic_difference(dyadic + 1 / 16, dyadic, n_boot=10)["mean_block"] == 10.0  # 1000 ** (1/3)
    assert paired_ic_difference(dyadic + 1 / 16, dyadic, n_boot=10, horizon=12)["mean_block"] == 12.0


def test_sharpe_difference_block_is_the_mean_estimate_of_the_two_series():
    rng = np.random.default_rng(5)
    x, y = (pd.Series(0.0005 + ar1(600, phi, 0.01, rng), DAYS[:600]) for phi in (0.2, 0.8))
    pw = optimal_block_length(np.column_stack([x, y]))["stationary"].to_numpy()
    assert 1 < pw.min() < pw.max() / 2
    assert sharpe_difference_ci(x, y, n_boot=10)["mean_block"] == pytest.approx(pw.mean(), rel=1e-12)


# --- table ---------------------------------------------------------------------------------------------


def test_crosssection_table_shows_each_statistic():
    a, b = ic_pair(0.05)
    frame, bench = arms({"prompt_a": 0.0, "adapter": 0.002})
    stats = {"ic": {"tuned": ic_stats(a), "base": ic_stats(b)},
             "ic_difference": paired_ic_difference(a, b) | {"arms": ("tuned", "base")},
             "spa": spa_test(frame, bench, reps=200), "dsr": deflated_sharpe_for_arms(frame)}
    text = crosssection_table(stats)
    assert f"{stats['ic']['tuned']['mean_ic']:+.4f}" in text and "IC difference tuned - base: +0.05" in text
    assert "Reality Check (White) p = " in text and "StepM superior at 0.05: adapter" in text
    assert f"DSR = {stats['dsr']['dsr']:.2f}" in text and "2 trials" in text
    with pytest.raises(LlmbtError, match="unknown keys \\['sharpe'\\]"):
        crosssection_table({"sharpe": {}})


def test_importing_the_module_does_not_import_arch():
    """arch (~0.6 s to import) loads only when a bootstrap runs, so a CLI importing this module stays fast."""
    code = "import sys, llmbt.reports.crosssection; print('arch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
