"""Trading value of text scores: each arm's daily IC on dated headlines (``bt evaluate --news``).

On each day, the IC is the rank (Spearman) correlation across symbols of the day's score of each
symbol's headlines with that symbol's next-day open-to-open return minus the equal-weight mean of
the day's returns (the excess return). The score of bar ``t`` (its headlines were aligned to it by
:mod:`llmbt.experiments.news_eval`, as a universe run aligns them) is known at ``t``'s close and traded
at the next open, so it is paired with ``open[t+2] / open[t+1] - 1``
(:func:`llmbt.reports.signal.forward_returns`, horizon 1): nothing of bar ``t + 1``'s open or
before enters the return. Subtracting the day's mean moves every name alike, so the rank IC equals
the IC on raw returns; the excess is what a long-short book of the scores earns. Days with fewer
than ``min_names`` scored symbols (with a return) have no IC. The mean IC and its t-statistic come
from :func:`llmbt.reports.crosssection.ic_stats` (one-day windows do not overlap).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from llmbt.reports.crosssection import ic_stats
from llmbt.reports.signal import daily_ic, forward_returns

#: The statistics of an arm's daily IC kept in ``bt evaluate``'s table and JSON.
NEWS_IC_KEYS = ("mean_ic", "t_stat_nonoverlap", "p_value", "days", "hit_share")


def excess_next_day(opens: pd.DataFrame) -> pd.DataFrame:
    """``open[t+2] / open[t+1] - 1`` of each symbol minus the day's equal-weight mean of them
    (over the symbols with a return), aligned to bar ``t`` whose close knows the score."""
    fwd = forward_returns(opens, (1,))[1]
    return fwd.sub(fwd.mean(axis=1), axis=0)


def news_daily_ic(scores: Mapping[str, pd.DataFrame], opens: pd.DataFrame,
                  min_names: int = 5) -> pd.DataFrame:
    """Daily IC (dates of ``opens`` x arms) of each arm's score panel vs next-day excess returns.

    Args:
        scores: arm -> dates x symbols scores (NaN = no headline that day).
        opens: dates x symbols open prices. min_names: fewer scored symbols on a day: no IC.
    """
    excess = excess_next_day(opens)
    return pd.DataFrame({arm: daily_ic(panel.reindex(index=opens.index, columns=opens.columns),
                                       excess, min_names) for arm, panel in scores.items()},
                        index=opens.index)


def news_ic_stats(daily: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per arm (column of :func:`news_daily_ic`): :data:`NEWS_IC_KEYS` of its daily IC (NaN
    statistics and 0 days when it has none)."""
    empty = dict.fromkeys(NEWS_IC_KEYS, float("nan")) | {"days": 0}
    return {arm: ({k: ic_stats(ic, 1)[k] for k in NEWS_IC_KEYS} if ic.notna().any() else empty)
            for arm, ic in daily.items()}


