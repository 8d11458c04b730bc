"""Statistics for arms compared across a universe: IC t-stats, the paired IC difference, the portfolio Sharpe
difference, Hansen's SPA / White's Reality Check (with Romano-Wolf StepM) and the Deflated Sharpe.

An *arm* is one thing tried (a model, prompt, adapter or parameter setting); all arms trade the same test
periods. Inputs are per-date series: daily ICs (:func:`llmbt.reports.signal.daily_ic`) or simple per-period
portfolio returns. Every function returns a plain ``dict``; :func:`crosssection_table` renders them.

The bootstraps are block bootstraps, so serial dependence (overlapping forward-return windows, volatility
clusters) is kept. The paired IC and Sharpe differences reuse :mod:`llmbt.reports.stats` (its stationary
bootstrap and percentile p-value); the default mean block length is data-driven (Politis & White 2004,
``arch.bootstrap.optimal_block_length``), never shorter than the IC horizon. SPA and StepM are ``arch``'s.
``arch`` (a core dependency) is imported inside the functions that use it: it takes ~0.6 s to import.

References: Hansen (2005) "A Test for Superior Predictive Ability"; White (2000) "A Reality Check for
Data Snooping"; Romano & Wolf (2005) "Stepwise Multiple Testing as Formalized Data Snooping"; Politis &
White (2004) "Automatic Block-Length Selection for the Dependent Bootstrap"; Bailey & López de Prado
(2014) "The Deflated Sharpe Ratio".
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pandas as pd
from scipy import stats as sps

from llmbt.engine.metrics import float_series, sharpe_ratio
from llmbt.errors import DataError, LlmbtError
from llmbt.experiments.trials import PriorTrials
from llmbt.reports.signal import IC_COLUMNS, ic_row
from llmbt.reports.stats import (
    DSR_NEEDS_TRIALS,
    MIN_PAIRED,
    align_pairs,
    bootstrap_p_value,
    check_whole,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    sharpe_diff_ci,
    stationary_bootstrap_indices,
    trials_counted,
)

__all__ = ["crosssection_table", "deflated_sharpe_for_arms", "ic_stats", "paired_ic_difference",
           "sharpe_difference_ci", "spa_per_arm", "spa_test"]

BOOTSTRAPS = ("stationary", "circular")  # the block bootstraps spa_test passes on to arch


def ic_stats(daily_ic: pd.Series, horizon: int = 1) -> dict:
    """Mean daily IC and its t-statistic, as :func:`llmbt.reports.signal.ic_summary` computes them.

    ``mean_ic``, ``std_ic`` and ``hit_share`` use every day with an IC. For ``horizon > 1`` consecutive
    forward windows overlap, so ``t_stat_nonoverlap`` = mean / (std / sqrt(n)) and its two-sided
    Student-t ``p_value`` (n - 1 degrees of freedom) use every ``horizon``-th day with an IC only
    (``days_nonoverlap`` of them).

    Args:
        daily_ic: ICs by date, sorted, values in [-1, 1] (NaN = no IC that day).
        horizon: the forward-return horizon of the ICs, in bars.

    Returns:
        A dict with the keys of :data:`llmbt.reports.signal.IC_COLUMNS`, ``p_value`` and ``horizon``.
    """
    ic, h = _ic_series(daily_ic, "daily_ic"), check_whole(horizon, "horizon")
    out = dict(zip(IC_COLUMNS, (float(v) for v in ic_row(ic, h)), strict=True))
    out["days"], out["days_nonoverlap"] = int(out["days"]), int(out["days_nonoverlap"])
    t, n = out["t_stat_nonoverlap"], out["days_nonoverlap"]
    out["p_value"] = float(2 * sps.t.sf(abs(t), n - 1)) if math.isfinite(t) else math.nan
    return out | {"horizon": h}


def paired_ic_difference(ic_a: pd.Series, ic_b: pd.Series, *, block: float | None = None, n_boot: int = 2000,
                         seed: int = 0, horizon: int = 1, alpha: float = 0.05) -> dict:
    """Mean of the paired daily IC differences ``a - b`` with a stationary block-bootstrap CI.

    The two series are aligned on their common dates with an IC in both (>= 20); the differences are
    resampled with :func:`llmbt.reports.stats.stationary_bootstrap_indices` and the CI is the percentile
    interval of the resampled means. ``p_value`` is the two-sided percentile p-value of "no difference"
    (:func:`llmbt.reports.stats.bootstrap_p_value`, never 0).

    Args:
        ic_a, ic_b: daily ICs of arm A (e.g. fine-tuned) and arm B (e.g. base), by date.
        block: mean block length in days; default the Politis-White estimate for the differences,
            at least ``horizon`` and 1. n_boot: resamples. seed: generator seed.
        horizon: the ICs' forward horizon (overlapping windows correlate ICs up to ``horizon - 1`` days).
        alpha: 1 - confidence level.

    Returns:
        ``diff``, ``low``, ``high``, ``p_value``, ``significant`` (0 outside the CI), ``mean_a``,
        ``mean_b``, ``n`` (common days), ``mean_block``, ``n_boot``, ``alpha``.
    """
    n_boot, h, alpha = check_whole(n_boot, "n_boot"), check_whole(horizon, "horizon"), _alpha(alpha)
    a, b = (_ic_series(s, name) for s, name in ((ic_a, "ic_a"), (ic_b, "ic_b")))
    x, y = align_pairs(a, b, ("ic_a", "ic_b"), MIN_PAIRED, what="daily ICs")
    d = x - y
    mean_block = _block(d[:, None], block, h)
    boot = _boot_means(d, mean_block, n_boot, np.random.default_rng(seed))
    low, high = (float(q) for q in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    return {"diff": float(d.mean()), "low": low, "high": high, "p_value": bootstrap_p_value(boot),
            "significant": bool(not low <= 0 <= high), "mean_a": float(x.mean()), "mean_b": float(y.mean()),
            "n": len(d), "mean_block": mean_block, "n_boot": n_boot, "alpha": alpha}


def sharpe_difference_ci(returns_a: pd.Series, returns_b: pd.Series, periods: float = 252, *,
                         block: float | None = None, n_boot: int = 2000, seed: int = 0,
                         alpha: float = 0.05) -> dict:
    """Annualised portfolio Sharpe(a) - Sharpe(b) with a paired stationary block-bootstrap CI.

    :func:`llmbt.reports.stats.sharpe_diff_ci` (the test ``bt compare`` uses for one instrument) with a
    data-driven default block: the mean Politis-White estimate of the two aligned return series.

    Args:
        returns_a, returns_b: simple per-period portfolio returns of two arms, by date (>= 20 common).
        periods: periods per year (252 for daily stock bars). block: mean block length in periods.
        n_boot: resamples. seed: generator seed. alpha: 1 - confidence level.

    Returns:
        The fields of :class:`llmbt.reports.stats.SharpeDiff` as a dict (``diff``, ``low``, ``high``,
        ``p_value``, ``n``, ``n_boot``, ``mean_block``, ``significant``, ``alpha``).
    """
    if block is None:
        x, y = align_pairs(returns_a, returns_b, ("returns_a", "returns_b"), MIN_PAIRED)
        block = _block(np.column_stack([x, y]), None, 1)
    return asdict(sharpe_diff_ci(returns_a, returns_b, periods, n_boot, block, alpha, seed))


def spa_test(returns: pd.DataFrame, benchmark: pd.Series, *, losses: bool = False, block: int | None = None,
             reps: int = 2000, seed: int = 0, alpha: float = 0.05, bootstrap: str = "stationary") -> dict:
    """Hansen's SPA and White's Reality Check: does any arm beat the benchmark, given that many were tried?

    H0: no arm has a higher expected return (lower expected loss) than ``benchmark``. Runs
    ``arch.bootstrap.StepM`` (size ``alpha``), whose ``SPA`` gives three p-values by how the bootstrap
    re-centres arms that look worse than the benchmark (Hansen 2005): ``p_lower`` (never: they keep their
    negative mean; liberal), ``p_consistent`` (Hansen's SPA: only those within ``sqrt(2 log log n)``
    standard errors of 0) and ``p_upper`` (always: every arm treated as exactly as good as the benchmark,
    the least favourable null, i.e. White's Reality Check). When every arm equals the benchmark all three
    are 1 (arch gives 0: it counts draws strictly above the observed 0). In arch 8.0 the statistic is the
    largest mean excess (not studentised); the long-run variance only sets the consistent threshold.

    Args:
        returns: dates x arms per-period returns (or losses with ``losses=True``; higher = worse).
        benchmark: the benchmark's per-period returns (or losses), by date (e.g. base model, buy & hold).
        block: block length in periods; default the median Politis-White estimate over the arms'
            excess series (rounded, at least 1). reps: bootstrap replications. seed: generator seed.
        alpha: family-wise error rate of the StepM set. bootstrap: ``"stationary"`` or ``"circular"``.

    Returns:
        ``p_spa`` (= ``p_consistent``), ``p_reality_check`` (= ``p_upper``), ``p_lower``,
        ``p_consistent``, ``p_upper``, ``best_arm`` and ``best_mean_excess`` (highest mean excess),
        ``mean_excess`` (arm -> mean per-period excess over the benchmark), ``stepm`` (arms found
        superior to the benchmark, family-wise at ``alpha``), ``n_arms``, ``n``, ``block``, ``reps``,
        ``alpha``, ``bootstrap``.
    """
    if bootstrap not in BOOTSTRAPS:
        raise LlmbtError(f"bootstrap={bootstrap!r} is not one of {BOOTSTRAPS}; use 'stationary'.")
    reps, alpha = check_whole(reps, "reps"), _alpha(alpha)
    arms, bench = _arms_and_benchmark(returns, benchmark)
    excess = (bench[:, None] - arms) if losses else (arms - bench[:, None])
    size = max(1, round(_block(excess, None, 1))) if block is None else check_whole(block, "block")
    if not excess.any():  # every arm is the benchmark: arch's strict "max > observed" would give p = 0
        p, superior = dict.fromkeys(("lower", "consistent", "upper"), 1.0), []
    else:
        loss_bench, loss_arms = (bench, arms) if losses else (-bench, -arms)
        p, superior = _stepm(loss_bench, loss_arms, alpha, size, reps, bootstrap, seed)
    return _spa_result(p, excess, list(returns.columns), superior) | {
        "block": size, "reps": reps, "alpha": alpha, "bootstrap": bootstrap}


def spa_per_arm(returns: pd.DataFrame, benchmark: pd.Series, **options) -> dict[str, dict]:
    """Each arm's own SPA p-values against ``benchmark``, as if it were the only arm tried.

    :func:`spa_test` on one column at a time (same ``options``): ``p_lower``, ``p_consistent`` and
    ``p_upper`` (equal for a single arm up to arch's re-centring of a worse-than-benchmark arm) and
    ``mean_excess``. Not corrected for the other arms: :func:`spa_test` on all of them (and its
    StepM set) is the test that is.

    Returns:
        arm -> ``{"p_lower", "p_consistent", "p_upper", "mean_excess"}``, in column order.
    """
    frame = _arms_frame(returns, 1)
    keys = ("p_lower", "p_consistent", "p_upper", "best_mean_excess")
    out = {}
    for arm in frame.columns:
        one = spa_test(frame[[arm]], benchmark, **options)
        out[str(arm)] = {k.removeprefix("best_"): one[k] for k in keys}
    return out


def deflated_sharpe_for_arms(returns: pd.DataFrame, periods: float = 252,
                             prior: PriorTrials | None = None) -> dict:
    """Deflated Sharpe ratio of the best arm, with the true number of trials = the number of arms
    (and, with ``prior``, the trial ledger's other configurations on this data).

    The arms' returns are taken on their common dates (rows where every arm has a return). The best arm
    is the one with the highest Sharpe ratio; its DSR is :func:`llmbt.reports.stats.deflated_sharpe_ratio`
    with ``n_trials`` = every arm (also one with an undefined Sharpe: it was tried) and the variance of
    the defined per-period Sharpe ratios (NaN if fewer than 2 are defined).

    Args:
        returns: dates x arms simple per-period returns (>= 2 arms, >= 20 common dates).
        periods: periods per year, for the annualised ``sharpes`` and ``expected_max_sharpe``.
        prior: the trial ledger's other configurations on this data
            (:func:`llmbt.experiments.trials.prior_trials`): each adds a trial, and its annualised Sharpe
            over ``sqrt(periods)`` joins the variance; None: the arms only.

    Returns:
        ``dsr``, ``best_arm``, ``sharpe`` (the best arm's, annualised), ``sharpes`` (arm -> annualised),
        ``dsrs`` (arm -> its DSR with the same trials; NaN for an undefined Sharpe),
        ``expected_max_sharpe`` (annualised, of ``n_trials`` skill-less arms), ``var_sharpe`` (per
        period), ``n_trials``, ``n``; with ``prior`` also ``counted`` (its mode), ``n_this_run``
        and ``n_ledger``.
    """
    frame = _arms_frame(returns, 2).dropna()
    _enough_rows(len(frame), "returns (every arm)")
    per_period = pd.Series({arm: sharpe_ratio(frame[arm], 1) for arm in frame.columns}, dtype=float)
    defined, k = per_period.dropna(), frame.shape[1]
    if defined.empty:
        raise DataError("no arm has a defined Sharpe ratio (all returns are constant): nothing to deflate.")
    best = str(defined.idxmax())
    extra = [v / math.sqrt(periods) for v in (prior.sharpes if prior else ())]
    pool = pd.concat([defined, pd.Series(extra, dtype=float)], ignore_index=True) if extra else defined
    k += len(extra)
    var = float(np.var(pool, ddof=1)) if len(pool) >= 2 else math.nan
    dsrs = {str(a): deflated_sharpe_ratio(frame[a], k, var_sharpe=var)
            if math.isfinite(var) and a in defined.index else math.nan for a in frame.columns}
    scale = math.sqrt(periods)
    emax = expected_max_sharpe(k, var) * scale if math.isfinite(var) else math.nan
    out = {"dsr": dsrs[best], "best_arm": best, "sharpe": float(defined[best]) * scale,
           "sharpes": {str(a): float(s) * scale for a, s in per_period.items()}, "dsrs": dsrs,
           "expected_max_sharpe": emax, "var_sharpe": var, "n_trials": k, "n": len(frame)}
    if prior is not None:
        out |= {"counted": prior.mode, "n_this_run": frame.shape[1], "n_ledger": len(extra)}
    return out


def crosssection_table(stats: dict) -> str:
    """Plain text of the cross-section statistics, for a terminal or a README.

    Args:
        stats: any of the keys ``ic`` (arm -> :func:`ic_stats`), ``ic_difference``
            (:func:`paired_ic_difference`, optionally with ``arms`` = (a, b) names, or a list of them),
            ``sharpe_difference`` (:func:`sharpe_difference_ci`, same), ``spa`` (:func:`spa_test`),
            ``spa_arms`` (:func:`spa_per_arm`, with ``dsr``'s per-arm DSRs when both are given) and
            ``dsr`` (:func:`deflated_sharpe_for_arms`).

    Returns:
        One block per key present, in that order, separated by blank lines.
    """
    render = {"ic": _ic_text, "ic_difference": lambda s: _diff_text("IC", s, "{:+.4f}", "days"),
              "sharpe_difference": lambda s: _diff_text("Sharpe", s, "{:+.2f}", "periods"),
              "spa": _spa_text, "spa_arms": lambda s: _spa_arms_text(s, stats.get("dsr")), "dsr": _dsr_text}
    if unknown := sorted(set(stats) - set(render)):
        raise LlmbtError(f"crosssection_table got unknown keys {unknown}; use some of {list(render)}.")
    return "\n\n".join(render[k](stats[k]) for k in render if k in stats)


def _ic_series(ic: pd.Series, name: str) -> pd.Series:
    """``ic`` as floats, sorted by date, each value NaN or in [-1, 1]."""
    s = float_series(ic, name)
    if not (s.index.is_monotonic_increasing and s.index.is_unique):
        raise DataError(f"{name} must be indexed by unique, sorted dates: use .sort_index() and drop "
                        "duplicated dates.")
    if (bad := s[s.notna() & ~s.between(-1.0, 1.0)]).size:
        raise DataError(f"{name} has {bad.iloc[0]!r} on {bad.index[0]}: an IC is a rank correlation in "
                        "[-1, 1]; pass llmbt.reports.signal.daily_ic(...).")
    return s


def _alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise LlmbtError(f"alpha must be between 0 and 1 (0.05 for a 95% interval); got {alpha!r}.")
    return float(alpha)


def _block(x: np.ndarray, block: float | None, floor: int) -> float:
    """``block`` if given, else the median Politis-White stationary-bootstrap block of the non-constant
    columns of ``x`` (n x k), at least ``floor`` and at most n; n ** (1/3) when every column is constant.
    The median, not the largest: one column's estimate is noisy (iid noise can give 20 on 300 days)."""
    if block is not None:
        return float(block)
    from arch.bootstrap import optimal_block_length  # imported here: arch takes ~0.6 s to import

    varying = x[:, np.ptp(x, axis=0) > 0]
    if varying.shape[1] == 0:
        return float(max(floor, round(len(x) ** (1 / 3))))
    typical = float(np.nanmedian(optimal_block_length(varying)["stationary"].to_numpy()))
    return float(min(len(x), max(floor, 1.0, typical)))


def _boot_means(d: np.ndarray, mean_block: float, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``d`` over ``n_boot`` stationary-bootstrap resamples, drawn in chunks of ~1e6 values."""
    chunk, out = max(1, 1_000_000 // len(d)), []
    for start in range(0, n_boot, chunk):
        idx = stationary_bootstrap_indices(len(d), mean_block, min(chunk, n_boot - start), rng)
        out.append(d[idx].mean(axis=1))
    return np.concatenate(out)


def _arms_frame(returns: pd.DataFrame, min_arms: int) -> pd.DataFrame:
    """``returns`` as a float frame with unique arm names, sorted by date; at least ``min_arms`` arms."""
    if not isinstance(returns, pd.DataFrame):
        raise DataError(f"returns must be a dates x arms DataFrame; got {type(returns).__name__}.")
    if returns.shape[1] < min_arms or not returns.columns.is_unique:
        why = DSR_NEEDS_TRIALS if min_arms >= 2 else "a test needs an arm"
        raise DataError(f"returns has arms {list(returns.columns)}: give {min_arms} or more, each named "
                        f"once ({why}).")
    columns = {c: float_series(returns[c], f"returns[{c!r}]") for c in returns.columns}
    return pd.DataFrame(columns).sort_index()


def _arms_and_benchmark(returns: pd.DataFrame, benchmark: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Arms (n x k) and benchmark (n) on the dates where all have a value, in date order."""
    frame = _arms_frame(returns, 1)
    if not isinstance(benchmark, pd.Series):
        raise DataError(f"benchmark must be a pd.Series by date; got {type(benchmark).__name__}.")
    both = frame.join(float_series(benchmark, "benchmark").rename("\0benchmark"), how="inner").dropna()
    _enough_rows(len(both), "returns and benchmark")
    return both.iloc[:, :-1].to_numpy(), both.iloc[:, -1].to_numpy()


def _enough_rows(n: int, what: str) -> None:
    if n < MIN_PAIRED:
        raise DataError(f"{what} have {n} common dates with no missing value (need {MIN_PAIRED}); "
                        "compare arms over the same test periods.")


def _stepm(loss_bench: np.ndarray, loss_arms: np.ndarray, alpha: float, block: int, reps: int, bootstrap: str,
           seed: int) -> tuple[dict, list[int]]:
    """arch's SPA p-values (``lower``, ``consistent``, ``upper``) on all arms, and StepM's superior arms."""
    from arch.bootstrap import StepM  # imported here: arch takes ~0.6 s to import

    stepm = StepM(loss_bench, loss_arms, size=alpha, block_size=block, reps=reps, bootstrap=bootstrap,
                  seed=seed)
    stepm.spa.compute()  # StepM's own SPA, on every arm: the same draws as SPA(...) with this seed
    p = {k: float(v) for k, v in stepm.spa.pvalues.items()}
    stepm.compute()
    return p, [int(i) for i in stepm.superior_models]


def _spa_result(p: dict, excess: np.ndarray, arms: list, superior: list[int]) -> dict:
    """:func:`spa_test`'s dict from arch's p-values, the excess matrix and StepM's arm indices."""
    mean = pd.Series(excess.mean(axis=0), index=[str(a) for a in arms])
    return {"p_spa": p["consistent"], "p_reality_check": p["upper"], "p_lower": p["lower"],
            "p_consistent": p["consistent"], "p_upper": p["upper"], "best_arm": str(mean.idxmax()),
            "best_mean_excess": float(mean.max()), "mean_excess": mean.to_dict(),
            "stepm": [str(arms[i]) for i in superior], "n_arms": len(arms), "n": len(excess)}


def _ic_text(per_arm: dict) -> str:
    head = f"{'arm':<24}{'mean IC':>9}{'std':>8}{'t':>7}{'p':>7}{'days':>6}{'used':>6}{'hit':>6}"
    rows = [f"{str(arm)[:23]:<24}{s['mean_ic']:>+9.4f}{s['std_ic']:>8.4f}{s['t_stat_nonoverlap']:>7.2f}"
            f"{s['p_value']:>7.3f}{s['days']:>6d}{s['days_nonoverlap']:>6d}{s['hit_share']:>6.0%}"
            for arm, s in per_arm.items()]
    return "\n".join(["IC per arm (t and p on non-overlapping days: 'used')", head, *rows])


def _diff_text(what: str, s: dict | list, fmt: str, unit: str) -> str:
    if isinstance(s, list):  # each arm against the reference arm
        return "\n".join(_diff_text(what, one, fmt, unit) for one in s)
    a, b = s.get("arms", ("a", "b"))
    ci = f"{100 * (1 - s['alpha']):g}% CI {fmt.format(s['low'])} to {fmt.format(s['high'])}"
    verdict = "significant" if s["significant"] else "not significant"
    return (f"{what} difference {a} - {b}: {fmt.format(s['diff'])} ({ci}, p = {s['p_value']:.3f}, "
            f"{verdict}; {s['n']} {unit}, mean block {s['mean_block']:.1f})")


def _spa_text(s: dict) -> str:
    stepm = ", ".join(s["stepm"]) or "none"
    return (f"SPA (Hansen) p = {s['p_spa']:.3f}; Reality Check (White) p = {s['p_reality_check']:.3f}; "
            f"lower p = {s['p_lower']:.3f}\nbest of {s['n_arms']} arms vs the benchmark: {s['best_arm']} "
            f"(mean excess {s['best_mean_excess']:+.5f} per period, {s['n']} periods); "
            f"StepM superior at {s['alpha']:g}: {stepm}")


def _spa_arms_text(per_arm: dict, dsr: dict | None) -> str:
    dsrs = (dsr or {}).get("dsrs", {})
    head = f"{'arm':<24}{'mean excess':>12}{'SPA p':>8}{'lower':>8}{'upper':>8}{'DSR':>7}"
    rows = [f"{str(arm)[:23]:<24}{s['mean_excess']:>+12.5f}{s['p_consistent']:>8.3f}{s['p_lower']:>8.3f}"
            f"{s['p_upper']:>8.3f}{dsrs.get(arm, math.nan):>7.2f}" for arm, s in per_arm.items()]
    trials = f", DSR with {dsr['n_trials']} trials" if dsr else ""
    return "\n".join([f"Each arm alone vs the benchmark (SPA p not corrected for the other arms{trials})",
                       head, *rows])


def _dsr_text(s: dict) -> str:
    counted = f"\n{trials_counted(s['n_trials'], s['n_this_run'], s['counted'])}" if "counted" in s else ""
    return (f"Deflated Sharpe of the best arm {s['best_arm']} (Sharpe {s['sharpe']:.2f}, {s['n_trials']} "
            f"trials, expected best of skill-less trials {s['expected_max_sharpe']:.2f}): "
            f"DSR = {s['dsr']:.2f}{counted}")
