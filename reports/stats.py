"""Significance tests for comparing two strategies: paired bootstrap Sharpe difference, PSR, DSR, McNemar.

Returns are simple per-period returns (``pd.Series`` by date, or arrays). Sharpe ratios in the PSR and
DSR are *per period*; :func:`sharpe_ratio` (:func:`llmbt.engine.metrics.sharpe_ratio`, the one definition)
and :func:`sharpe_diff_ci` report annualised ones.

References: Politis & Romano (1994) "The Stationary Bootstrap"; Bailey & López de Prado (2012)
"The Sharpe Ratio Efficient Frontier" and (2014) "The Deflated Sharpe Ratio"; McNemar (1947).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from llmbt.engine.metrics import ArrayLike, sharpe_ratio
from llmbt.engine.metrics import finite_values as _clean
from llmbt.engine.metrics import float_series as _as_float_series
from llmbt.engine.metrics import positive as _positive
from llmbt.errors import LlmbtError

EULER_GAMMA = 0.5772156649015329
MIN_PAIRED = 20  # fewest common periods sharpe_diff_ci accepts
EXACT_BELOW = 25  # McNemar uses the exact binomial test when b + c is below this
DSR_NEEDS_TRIALS = "DSR needs ≥ 2 trials"  # with one trial there is no selection to deflate for


def trials_counted(n_trials: int, n_run: int, mode: str) -> str:
    """The sentence that says which trials a DSR counts: ``mode`` ``ledger`` (every configuration
    of the trial ledger on this data over overlapping periods, :mod:`llmbt.experiments.trials`), ``run``
    (``--trials run``: this command's arms) or ``off`` (``LLMBT_TRIALS=off``)."""
    if mode == "ledger":
        return (f"DSR counts {n_trials} trials on this data, {n_run} in this run (the trial ledger: "
                "every configuration tried on this data over overlapping periods; --trials run "
                "counts this run's only).")
    why = "--trials run" if mode == "run" else "the trial ledger is off: LLMBT_TRIALS=off"
    return f"DSR counts the {n_run} trials of this run only ({why}), not the trial ledger's."


@dataclass(frozen=True)
class SharpeDiff:
    """Paired stationary-bootstrap test of Sharpe(a) - Sharpe(b) (annualised); see :func:`sharpe_diff_ci`."""

    diff: float
    low: float
    high: float
    p_value: float
    n: int
    n_boot: int
    mean_block: float
    significant: bool
    alpha: float = 0.05


@dataclass(frozen=True)
class McNemar:
    """McNemar test on paired hits: ``b`` = A right & B wrong, ``c`` = A wrong & B right."""

    b: int
    c: int
    statistic: float
    p_value: float
    exact: bool


def align_pairs(a: ArrayLike, b: ArrayLike, names: tuple[str, str], min_points: int,
                what: str = "returns") -> tuple[np.ndarray, ...]:
    """Align ``a`` and ``b`` (inner join on the index, sorted, if both are Series, else by position) and
    drop pairs where either is NaN; error if fewer than ``min_points`` pairs remain (``what`` names them)."""
    sa, sb = _as_float_series(a, names[0]), _as_float_series(b, names[1])
    if not (isinstance(a, pd.Series) and isinstance(b, pd.Series)):
        if len(sa) != len(sb):
            raise LlmbtError(f"{names[0]} has {len(sa)} values but {names[1]} has {len(sb)}; pass equal-"
                             "length arrays, or pd.Series indexed by date to align them.")
        index = a.index if isinstance(a, pd.Series) else b.index if isinstance(b, pd.Series) else sa.index
        sa, sb = sa.set_axis(index), sb.set_axis(index)
    both = pd.concat([sa, sb], axis=1, join="inner").dropna().sort_index()  # time order for the blocks
    if len(both) < min_points:
        have = "no common dates" if both.empty else f"only {len(both)} common non-missing periods"
        raise LlmbtError(f"{what} {names[0]!r} and {names[1]!r} have {have} (need {min_points}); "
                         "compare runs over the same test periods.")
    return both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()


def check_whole(value: int, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise LlmbtError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def stationary_bootstrap_indices(n: int, mean_block: float, n_boot: int,
                                 rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Politis & Romano (1994) stationary-bootstrap indices, shape ``(n_boot, n)``, values in ``[0, n)``.

    Blocks start at a uniform random position and continue with the next index (wrapping from ``n - 1``
    to 0); at every step a new block starts with probability ``1 / mean_block`` (geometric lengths of
    mean ``mean_block`` >= 1). ``rng`` is a Generator or a seed.
    """
    n, n_boot = check_whole(n, "n"), check_whole(n_boot, "n_boot")
    p = 1.0 / _positive(mean_block, "mean_block (mean block length in periods)", 1.0)
    rng, steps = np.random.default_rng(rng), np.arange(n)
    starts, new = rng.integers(0, n, size=(n_boot, n)), rng.random((n_boot, n)) < p
    new[:, 0] = True
    block_start = np.maximum.accumulate(np.where(new, steps, 0), axis=1)  # where each block began
    return (np.take_along_axis(starts, block_start, axis=1) + steps - block_start) % n


def _row_sharpe(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=1, ddof=1)
    return np.divide(x.mean(axis=1), sd, out=np.full(len(x), np.nan), where=sd > 0)


def _boot_sharpe_diffs(a: np.ndarray, b: np.ndarray, mean_block: float, n_boot: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Per-period Sharpe(a) - Sharpe(b) on ``n_boot`` paired resamples (same indices for both)."""
    n, out, chunk = len(a), [], max(1, 1_000_000 // len(a))
    for size in [chunk] * (n_boot // chunk) + ([n_boot % chunk] if n_boot % chunk else []):
        idx = stationary_bootstrap_indices(n, mean_block, size, rng)
        out.append(_row_sharpe(a[idx]) - _row_sharpe(b[idx]))
    return np.concatenate(out)


def sharpe_diff_ci(a: ArrayLike, b: ArrayLike, periods_per_year: float = 252, n_boot: int = 2000,
                   mean_block: float | None = None, alpha: float = 0.05, seed: int = 0) -> SharpeDiff:
    """Paired stationary-bootstrap confidence interval of annualised Sharpe(a) - Sharpe(b).

    ``a`` and ``b`` are aligned on their common dates (or by position for arrays) and NaN pairs are
    dropped; each resample uses the *same* indices for both, so their correlation is kept. The CI is the
    percentile interval; ``p_value`` is the percentile two-sided p-value ``min(1, 2 * (min(#diffs <= 0,
    #diffs >= 0) + 1) / (n_valid + 1))`` (never 0); resamples with an undefined Sharpe are ignored. If
    a point Sharpe is undefined (zero variance: a model that never trades) the statistics are NaN and
    ``significant`` is False.

    Args:
        a, b: per-period simple returns of the candidate and the reference (>= 20 common periods).
        periods_per_year: annualisation factor. n_boot: resamples. alpha: 1 - confidence level.
        mean_block: mean block length, default ``max(1, round(n ** (1/3)))``. seed: generator seed.
    """
    ppy, n_boot = _positive(periods_per_year, "periods_per_year"), check_whole(n_boot, "n_boot")
    if not 0 < alpha < 1:
        raise LlmbtError(f"alpha must be between 0 and 1 (0.05 for a 95% interval); got {alpha!r}.")
    names = tuple(str(getattr(s, "name", None) or d) for s, d in ((a, "a"), (b, "b")))
    x, y = align_pairs(a, b, names, MIN_PAIRED)
    n, nan = len(x), float("nan")
    block = _positive(max(1, round(n ** (1 / 3))) if mean_block is None else mean_block, "mean_block", 1)
    diff = sharpe_ratio(x, ppy) - sharpe_ratio(y, ppy)
    boot = _boot_sharpe_diffs(x, y, block, n_boot, np.random.default_rng(seed)) * math.sqrt(ppy)
    boot = boot[~np.isnan(boot)]
    if math.isnan(diff) or boot.size == 0:
        return SharpeDiff(nan, nan, nan, nan, n, n_boot, block, False, alpha)
    low, high = (float(q) for q in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    p_value = bootstrap_p_value(boot)
    return SharpeDiff(float(diff), low, high, p_value, n, n_boot, block, bool(not low <= 0 <= high), alpha)


def bootstrap_p_value(boot: np.ndarray) -> float:
    """Two-sided percentile p-value of "the statistic is 0" from its bootstrap draws ``boot`` (no NaN):
    ``min(1, 2 * (min(#draws <= 0, #draws >= 0) + 1) / (#draws + 1))``, never 0."""
    return min(1.0, 2 * (min(int((boot <= 0).sum()), int((boot >= 0).sum())) + 1) / (boot.size + 1))


def psr_from_moments(sr: float, n_obs: int, skew: float, kurtosis: float, sr_benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe ratio from its inputs (Bailey & López de Prado 2012), NaN if undefined.

    ``PSR = Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR**2))`` with the
    per-period ``sr`` and ``sr_benchmark``, and non-excess ``kurtosis`` (3 for normal returns).
    """
    n_obs = check_whole(n_obs, "n_obs", 2)
    var = 1 - skew * sr + (kurtosis - 1) / 4 * sr**2
    if not var > 0 or any(math.isnan(v) for v in (sr, sr_benchmark)):
        return float("nan")
    return float(sps.norm.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var)))


def probabilistic_sharpe_ratio(returns: ArrayLike, sr_benchmark: float = 0.0) -> float:
    """Probability that the true Sharpe ratio exceeds ``sr_benchmark`` (Bailey & López de Prado 2012).

    Uses the per-period Sharpe ratio (mean / std, ddof=1) and the sample skewness and non-excess
    kurtosis as moment ratios ``m3 / m2**1.5`` and ``m4 / m2**2`` (``scipy.stats`` with ``bias=True``).
    NaN with fewer than 3 values or zero variance.

    Args:
        returns: simple per-period returns; NaN are dropped.
        sr_benchmark: the benchmark Sharpe ratio SR*, *per period* (annual / sqrt(periods_per_year)).
    """
    r = _clean(returns)
    if len(r) < 3 or math.isnan(sr := sharpe_ratio(r, 1)):
        return float("nan")
    skew, kurt = float(sps.skew(r)), float(sps.kurtosis(r, fisher=False))
    return psr_from_moments(sr, len(r), skew, kurt, sr_benchmark)


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` skill-less trials (Bailey & López de Prado 2014).

    ``sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))``, g the Euler-Mascheroni
    constant; 0 for a single trial (no selection). The unit (per period) is that of ``var_sharpe``.
    """
    n_trials = check_whole(n_trials, "n_trials")
    if not (isinstance(var_sharpe, (int, float, np.number)) and 0 <= var_sharpe < math.inf):
        raise LlmbtError(f"var_sharpe must be a finite number >= 0 (the variance of the trials' per-period "
                         f"Sharpe ratios); got {var_sharpe!r}.")
    if n_trials == 1:
        return 0.0
    z = sps.norm.ppf([1 - 1 / n_trials, 1 - 1 / (n_trials * math.e)])
    return float(math.sqrt(var_sharpe) * ((1 - EULER_GAMMA) * z[0] + EULER_GAMMA * z[1]))


def dsr_from_moments(sr: float, n_obs: int, skew: float, kurtosis: float, n_trials: int,
                     var_sharpe: float) -> float:
    """Deflated Sharpe ratio from its inputs (Bailey & López de Prado 2014): the PSR of the per-period
    ``sr`` against :func:`expected_max_sharpe` of ``n_trials`` trials whose per-period Sharpe ratios
    have variance ``var_sharpe``; NaN with fewer than 2 trials (:data:`DSR_NEEDS_TRIALS`).
    """
    if check_whole(n_trials, "n_trials") < 2:
        return float("nan")
    return psr_from_moments(sr, n_obs, skew, kurtosis, expected_max_sharpe(n_trials, var_sharpe))


def deflated_sharpe_ratio(returns: ArrayLike, n_trials: int, trial_sharpes: ArrayLike | None = None,
                          var_sharpe: float | None = None) -> float:
    """Deflated Sharpe ratio: the PSR against the best Sharpe expected from ``n_trials`` lucky trials.

    Trials are the alternatives tried before picking this one (models, prompts, parameter settings),
    each measured on the same returns period. With fewer than 2 trials there is no selection to
    deflate for and no variance to estimate: the DSR is NaN (:data:`DSR_NEEDS_TRIALS`), never the PSR.

    Args:
        returns: simple per-period returns of the selected strategy.
        n_trials: strategies tried (>= 1).
        trial_sharpes: per-period Sharpe ratios of the trials; their variance (ddof=1) is V.
        var_sharpe: V given directly (per period). Give exactly one of the two when ``n_trials > 1``.
    """
    n_trials = check_whole(n_trials, "n_trials")
    if trial_sharpes is not None and var_sharpe is not None:
        raise LlmbtError("deflated_sharpe_ratio got both trial_sharpes and var_sharpe; give only one.")
    if n_trials < 2:
        return float("nan")
    sharpes = None if trial_sharpes is None else _clean(trial_sharpes, "trial_sharpes")
    if sharpes is not None and len(sharpes) < 2:
        raise LlmbtError(f"trial_sharpes needs 2 or more values to estimate a variance; got {len(sharpes)}. "
                         "Pass var_sharpe instead.")
    if sharpes is None and var_sharpe is None:
        raise LlmbtError(f"n_trials={n_trials} needs trial_sharpes or var_sharpe (the variance of the "
                         "trials' per-period Sharpe ratios).")
    var = float(np.var(sharpes, ddof=1)) if sharpes is not None else var_sharpe
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, var))


def mcnemar(b: int, c: int, exact: bool | None = None) -> McNemar:
    """McNemar test that two models have the same hit rate on the same cases.

    ``b`` = cases A got right and B wrong, ``c`` = A wrong and B right. Exact two-sided binomial test
    (statistic ``min(b, c)``) when ``b + c < 25`` or ``exact=True``; otherwise chi-square with 1 df and
    continuity correction, ``max(|b - c| - 1, 0)**2 / (b + c)``. With ``b + c == 0`` the p-value is 1.
    """
    b, c = check_whole(b, "b", 0), check_whole(c, "c", 0)
    exact = (b + c < EXACT_BELOW) if exact is None else bool(exact)
    if b + c == 0:
        return McNemar(b, c, 0.0, 1.0, exact)
    stat = float(min(b, c)) if exact else max(abs(b - c) - 1, 0) ** 2 / (b + c)
    p_value = min(1.0, 2 * sps.binom.cdf(min(b, c), b + c, 0.5)) if exact else sps.chi2.sf(stat, 1)
    return McNemar(b, c, float(stat), float(p_value), exact)


def mcnemar_from_hits(hits_a: ArrayLike, hits_b: ArrayLike, exact: bool | None = None) -> McNemar:
    """:func:`mcnemar` from per-case hits (True/False) of models A and B.

    Both are aligned like :func:`sharpe_diff_ci` (on the index for two Series, else by position, equal
    lengths); cases where either is NaN/None (e.g. no signal) are dropped pairwise.
    """
    x, y = align_pairs(hits_a, hits_b, ("hits_a", "hits_b"), 0)
    if (bad := [v for v in np.concatenate([x, y]) if v not in (0.0, 1.0)]):
        raise LlmbtError(f"hits must be True/False (or NaN/None for no signal); got {float(bad[0])!r}.")
    return mcnemar(int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum()), exact)


def _sharpe_sentence(diff: SharpeDiff, alpha: float) -> str:
    if math.isnan(diff.diff):
        return ("The Sharpe difference cannot be tested (a Sharpe ratio is undefined: returns with zero "
                "variance), so it is not significant.")
    sig = diff.significant if math.isclose(alpha, diff.alpha) else diff.p_value < alpha
    ci = f"{100 * (1 - diff.alpha):g}% CI {diff.low:+.2f} to {diff.high:+.2f}, p = {diff.p_value:.3f}"
    verdict = "significant" if sig else "not significant"
    return (f"The Sharpe difference {diff.diff:+.2f} ({ci}) is {verdict} at the {100 * alpha:g}% level"
            + ("." if sig else ": it could well be luck."))


def significance_summary(diff: SharpeDiff, dsr: float, mc: McNemar, alpha: float = 0.05,
                         dsr_note: str | None = None) -> str:
    """Two plain-English sentences: is the Sharpe difference significant ("not significant" when it is
    not, or cannot be tested), and what the candidate's DSR (or ``dsr_note``, why there is none) and
    McNemar's test on the hits say."""
    ok = dsr >= 1 - alpha
    dsr_text = (f"the deflated Sharpe ratio is not reported ({dsr_note})" if dsr_note and math.isnan(dsr)
                else "the deflated Sharpe ratio is undefined" if math.isnan(dsr) else
                f"the deflated Sharpe ratio is {dsr:.2f} ({'above' if ok else 'below'} {1 - alpha:.2f}: "
                f"the Sharpe {'survives' if ok else 'may not survive'} the number of trials)")
    mc_text = (f"McNemar's test on {mc.b + mc.c} disagreements (p = {mc.p_value:.3f}) finds "
               f"{'a' if mc.p_value < alpha else 'no'} significant difference in hit rates")
    return f"{_sharpe_sentence(diff, alpha)} Also, {dsr_text}, and {mc_text}."
