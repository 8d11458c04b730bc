"""Statistics of a universe walk-forward results folder: daily IC per arm, per-fold IC and Sharpe, and
the cross-section tests (:mod:`llmbt.reports.crosssection`) on the stitched test windows.

Inputs are what :func:`llmbt.engine.results.read_results` returns for a universe run: ``scores`` (per
arm, rows ``time, symbol, score``), ``opens`` (time x symbols), ``returns`` (per arm and
``equal_weight``) and ``folds`` (one row per fold and arm). The daily IC of an arm is the Spearman
correlation across symbols of its score at a close with the ``horizon``-bar open-to-open forward
return from the next open (:func:`llmbt.reports.signal.daily_ic`); the opens run past each test
window's end, so its last days have a forward return too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from llmbt.errors import LlmbtError
from llmbt.reports.crosssection import (
    deflated_sharpe_for_arms,
    ic_stats,
    paired_ic_difference,
    sharpe_difference_ci,
    spa_test,
)
from llmbt.reports.signal import daily_ic, forward_returns


def universe_daily_ic(scores: Mapping[str, pd.DataFrame], opens: pd.DataFrame, horizon: int,
                      min_names: int = 5) -> pd.DataFrame:
    """Daily IC (dates of ``opens`` x arms) of each arm's scores vs ``horizon``-bar forward returns.

    Args:
        scores: arm -> rows indexed by time with ``symbol`` and ``score`` columns.
        opens: time x symbols open prices. horizon: forward bars. min_names: see ``daily_ic``.
    """
    fwd = forward_returns(opens, (horizon,))[horizon]
    out = {}
    for arm, rows in scores.items():
        panel = rows.rename_axis("time").reset_index().pivot_table(
            index="time", columns="symbol", values="score", aggfunc="last")
        panel = panel.reindex(index=opens.index, columns=opens.columns)
        out[arm] = daily_ic(panel, fwd, min_names)
    return pd.DataFrame(out, index=opens.index)


def fold_ic_table(daily: pd.DataFrame, folds: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """One row per (fold, arm): the fold's test window, mean daily IC, its t-stat and days.

    Args:
        daily: :func:`universe_daily_ic`. folds: rows with ``fold``, ``test_start``, ``test_end``.
        horizon: the ICs' forward horizon (t-stats use every ``horizon``-th day).
    """
    rows = []
    for fold in folds.drop_duplicates("fold").itertuples():
        window = daily.loc[pd.Timestamp(fold.test_start) : pd.Timestamp(fold.test_end)]
        for arm in daily.columns:
            ic = window[arm]
            s = ic_stats(ic, horizon) if ic.notna().any() else {"mean_ic": float("nan"),
                                                                "t_stat_nonoverlap": float("nan"),
                                                                "days": 0}
            rows.append({"fold": fold.fold, "model": arm, "mean_ic": s["mean_ic"],
                         "ic_t": s["t_stat_nonoverlap"], "ic_days": s["days"]})
    return pd.DataFrame(rows)


def universe_wf_stats(returns: Mapping[str, pd.Series], daily: pd.DataFrame, horizon: int, *,
                      arms: Sequence[str] = ("lora", "base"), benchmark: str = "equal_weight",
                      periods: float = 252) -> tuple[dict, dict[str, str]]:
    """The cross-section statistics of the arms, for :func:`~llmbt.reports.crosssection.crosssection_table`.

    ``ic`` per arm; the paired daily-IC difference and the portfolio Sharpe difference of ``arms[0]
    - arms[1]`` with block-bootstrap CIs; the Deflated Sharpe with every arm a trial; SPA / Reality
    Check of the arms against ``benchmark``. A statistic the data cannot support (too few days) is
    left out and its reason given in the second dict.
    """
    a, b = arms
    frame = pd.DataFrame({arm: returns[arm] for arm in arms})
    tests = {
        "ic": lambda: {arm: ic_stats(daily[arm], horizon) for arm in arms},
        "ic_difference": lambda: paired_ic_difference(daily[a], daily[b], horizon=horizon)
        | {"arms": (a, b)},
        "sharpe_difference": lambda: sharpe_difference_ci(returns[a], returns[b], periods)
        | {"arms": (a, b)},
        "spa": lambda: spa_test(frame, returns[benchmark]),
        "dsr": lambda: deflated_sharpe_for_arms(frame, periods),
    }
    stats, skipped = {}, {}
    for key, test in tests.items():
        try:
            stats[key] = test()
        except LlmbtError as exc:  # too little data for this statistic: say so, keep the others
            skipped[key] = str(exc)
    return stats, skipped
