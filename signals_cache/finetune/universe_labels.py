"""Headline examples of a universe, labelled by each symbol's forward return relative to the universe.

For the walk-forward of a universe strategy: every (headline, symbol) row enters at the first bar of
*its* symbol that may trade on it (:func:`llmbt.feeds.align_news_to_bars`, date-only ``day`` column
included). Its forward window is ``horizon`` rows of the universe's union calendar from that bar: the
symbol's return is ``close[i+h-1] / open[i] - 1`` and its label return is that minus the equal-weight
mean of the same return over the symbols with a bar at both ends of the window (symbols without bars
do not count). Thresholds are the ``q`` quantiles of the examples' excess returns. Every price after
``last_end`` is cut before anything is computed, so no label can depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError, DataError
from llmbt.feeds import align_news_to_bars
from llmbt.signals_cache.finetune.datasets import Example
from llmbt.signals_cache.finetune.labelling import bar_closes, bucket_labels
from llmbt.signals_cache.scoring.prompts import clean_headline


def excess_forward_returns(open_: pd.DataFrame, close: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Per calendar row ``i`` and symbol: ``close[i+h-1] / open[i] - 1`` minus its row's mean.

    Args:
        open_, close: calendar x symbols panels (NaN where a symbol has no bar).
        horizon: bars in the window (>= 1), counted in rows of the panel.

    Returns:
        The excess returns (NaN where the symbol lacks a bar at either end, or no full window).
    """
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ConfigError(f"--horizon {horizon!r} must be a whole number of bars >= 1.")
    own = close.shift(-(horizon - 1)) / open_ - 1.0
    return own.sub(own.mean(axis=1, skipna=True), axis=0)


def universe_headline_examples(
    prices: Mapping[str, pd.DataFrame], news: pd.DataFrame, *, horizon: int,
    first: pd.Timestamp, last_end: pd.Timestamp, q: tuple[float, float] = (1 / 3, 2 / 3),
    masker: Any = None,
) -> list[Example]:
    """Labelled (headline, symbol) examples whose entry bar is at or after ``first`` and whose
    forward window ends by ``last_end`` (a train window: its exit bar is at or before that bar),
    thresholds fitted on them alone; ``label_end`` is the exit bar's close
    (:func:`~llmbt.signals_cache.finetune.labelling.bar_closes`).

    Args:
        prices: symbol -> normalised bars. news: ``load_news`` columns (``day`` optional).
        horizon: forward window in bars. first, last_end: the train window's first and last bar.
        q: lower/upper quantiles of the excess returns (bearish below, bullish above).
        masker: ``--anonymize`` masker (``mask(text, symbol)``), or None.

    Raises:
        DataError: no headline of the window has a full forward window.
    """
    cut = {s: b.loc[:last_end] for s, b in prices.items() if len(b.loc[:last_end])}
    calendar, excess = _excess_panel(cut, horizon)
    upper = news["symbol"].astype(str).str.strip().str.upper().to_numpy()
    parts = [_rows(bars, news[upper == sym], sym, calendar, excess[sym], first, masker, horizon)
             for sym, bars in cut.items()]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise DataError(f"no headline between {first} and {last_end} has a full {horizon}-bar window; "
                        "check --news, --symbols and the --train window.")
    rows = pd.concat(parts, ignore_index=True).sort_values(["time", "symbol"], kind="stable",
                                                          ignore_index=True)
    ret = rows["excess"].to_numpy()
    lower, upper_q = (float(x) for x in np.quantile(ret, q))
    labels = bucket_labels(ret, lower, upper_q)
    ends = bar_closes(calendar, rows["exit"].to_numpy())  # the exit bars' closes
    return [Example(r.text, str(labels[i]), r.symbol, r.time, float(ret[i]), ends[i])
            for i, r in enumerate(rows.itertuples())]


def _excess_panel(prices: Mapping[str, pd.DataFrame], horizon: int) -> tuple[pd.DatetimeIndex, pd.DataFrame]:
    calendar = pd.DatetimeIndex(sorted(set().union(*(b.index for b in prices.values()))))
    open_ = pd.DataFrame({s: b["open"] for s, b in prices.items()}).reindex(calendar)
    close = pd.DataFrame({s: b["close"] for s, b in prices.items()}).reindex(calendar)
    return calendar, excess_forward_returns(open_, close, horizon)


def _rows(bars: pd.DataFrame, news: pd.DataFrame, symbol: str, calendar: pd.DatetimeIndex,
          excess: pd.Series, first: pd.Timestamp, masker: Any, horizon: int) -> pd.DataFrame:
    """One row per headline of ``symbol`` with an entry bar from ``first`` on and a full window."""
    if news.empty:
        return pd.DataFrame()
    pos = align_news_to_bars(news["timestamp"], bars.index, day=news.get("day"))
    row = np.full(len(pos), -1)
    row[pos >= 0] = calendar.get_indexer(bars.index[pos[pos >= 0]])
    value = np.where(row >= 0, excess.to_numpy()[np.maximum(row, 0)], np.nan)
    keep = (row >= 0) & np.isfinite(value) & (calendar[np.maximum(row, 0)] >= first)
    texts = [clean_headline(h, i) for i, h in enumerate(news["headline"][keep])]
    if masker is not None:
        texts = [masker.mask(t, symbol) for t in texts]
    return pd.DataFrame({"symbol": symbol, "text": texts, "time": pd.DatetimeIndex(news["timestamp"])[keep],
                         "excess": value[keep], "exit": row[keep] + horizon - 1})
