"""The signal's horizon: IC decay over h = 1…20 bars and the cost at which trading it breaks even.

A score known at bar t's close is paired with the return ``open[t+1] -> open[t+1+h]``
(:func:`llmbt.reports.signal.forward_returns`). For each h the table gives the mean daily IC and its
t-stat on every h-th day (non-overlapping windows), the top-minus-bottom quantile spread over the h
bars, the turnover of a top/bottom quantile book rebalanced every h bars, and the **break-even
cost**: the one-way cost per unit of traded value (as ``--commission``) at which that book's spread
is eaten by its trading. A long-short book of one unit a side that replaces a share ``f_top`` of its
top names and ``f_bottom`` of its bottom names trades ``2 (f_top + f_bottom)`` a rebalance, so

    break_even = spread / (2 (f_top + f_bottom))

(a round trip costs twice that). Set it beside the run's own cost: where break-even is below it, a
rebalance every h bars pays the signal away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmbt.reports.signal import (
    SignalReport,
    forward_returns,
    ic_row,
    quantile_bins,
    quantile_returns,
    row_spearman,
)

DECAY_HORIZONS = tuple(range(1, 21))
DECAY_COLUMNS = ("mean_ic", "t_stat_nonoverlap", "days_nonoverlap", "spread", "turnover", "break_even")


def ic_decay(scores: pd.DataFrame, open_: pd.DataFrame, horizons: Sequence[int] = DECAY_HORIZONS,
             quantiles: int = 5, min_names: int = 5) -> pd.DataFrame:
    """One row per horizon h with the columns of :data:`DECAY_COLUMNS` (see the module docstring).

    Args:
        scores: dates x symbols, known at each close. open_: open prices (same index and columns).
        horizons: bar counts. quantiles: score bins of the spread and turnover. min_names: the
            fewest names a day's IC needs.
    """
    fwd = forward_returns(open_, horizons)
    bins = quantile_bins(scores, quantiles)
    rows = {}
    for h in horizons:
        ic = row_spearman(scores, fwd[h], min_names)
        mean_ic, _, t, _, n, _ = ic_row(ic, h)
        spread = float(quantile_returns(scores, fwd[h], quantiles).loc["top-bottom", "mean_return"])
        turn = _new_share(bins, quantiles, h) + _new_share(bins, 1, h)
        rows[h] = [mean_ic, t, n, spread, turn, spread / (2 * turn) if turn > 0 else np.nan]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(DECAY_COLUMNS)).rename_axis("horizon")


def _new_share(bins: pd.DataFrame, q: int, h: int) -> float:
    """Mean share of names in bin ``q`` at row t that were not in it at row t - h."""
    now, before = bins == q, (bins == q).shift(h, fill_value=False)
    counts = now.sum(axis=1)
    usable = (counts > 0) & bins.shift(h).notna().any(axis=1)
    if not usable.any():
        return np.nan
    return float(((now & ~before).sum(axis=1) / counts.where(usable)).mean())


def with_decay(report: SignalReport, scores: pd.DataFrame, open_: pd.DataFrame,
               cost: float | None) -> SignalReport:
    """``report`` with its :func:`ic_decay` table and the run's one-way ``cost`` beside it."""
    return dataclasses.replace(report, decay=ic_decay(scores, open_), cost=cost)
