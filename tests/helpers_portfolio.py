"""Portfolio pieces shared by test modules (``from helpers_portfolio import ...``).

The stubbed universe run: ``bt run --strategy llm_news_portfolio`` on five symbols of the shared
S&P 500 slice, March to June 2015, with the daily full re-rank of the top 2 (:func:`portfolio_config`;
the conftest fixture ``sent`` stubs the model).

The golden slice and its reference broker: 2015, AAPL DHR MSFT PYPL XOM of the shared S&P 500 file
(:func:`read_slice`), a fixed hand-made score pattern with ties (:func:`hand_scores`), and
:func:`reference_run`, which re-implements ``order_target_percent`` and the broker with plain
Python/numpy and without Backtrader: at each close ``V = cash + Σ units × last close``; for each
symbol with a bar and a weight, ``units = int(|V·w − held value| / close)`` toward the target (all of
it when the target is 0), reductions first; the broker checks each order against the cash at its
creation close, then fills it at the symbol's next bar open (an order of a symbol without a bar
waits), with commission ``|size| × price × 0.001``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.feeds.universe import load_universe

PORTFOLIO_SYMBOLS = "AAPL,BA,GS,GM,JPM"
DAILY_TOP2 = {"top_k": 2, "rebalance": 1, "band": 0}  # the full daily re-rank of the top 2


def portfolio_config(shared_news, **kw) -> RunConfig:
    """The stubbed universe run's config on the shared data; ``kw`` replaces its fields."""
    base = dict(strategy="llm_news_portfolio", symbols=PORTFOLIO_SYMBOLS, start="2015-03-02",
                end="2015-06-30", data=f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
                news=str(shared_news / "reuters_headlines_2013_2016.csv.gz"),
                news_tz="America/New_York", params=DAILY_TOP2)
    return RunConfig(**(base | kw))


SLICE_SYMBOLS = ("AAPL", "DHR", "MSFT", "PYPL", "XOM")
SLICE_START, SLICE_END = "2015-01-01", "2015-12-31"
CASH, COMMISSION = 100_000.0, 0.001


def read_slice(folder, symbols=SLICE_SYMBOLS, start=SLICE_START, end=SLICE_END) -> dict[str, pd.DataFrame]:
    """The slice through the product's loader (incomplete rows dropped: no bar that day)."""
    path = folder / "sp500_prices_2013_2016.csv.gz"
    return load_universe(f"csv:{path}", start, end, symbols=list(symbols)).prices


def hand_scores(calendar: pd.DatetimeIndex, symbols) -> pd.DataFrame:
    """A fixed pattern in [-1, 1] with steps of 0.5 (so ties are common), not random."""
    i = np.arange(len(calendar))[:, None]
    j = np.arange(len(symbols))[None, :]
    return pd.DataFrame(((7 * i + j * j + (i // 3) * j) % 5 - 2) / 2.0, index=calendar,
                        columns=list(symbols))


def panels(prices: dict[str, pd.DataFrame], field: str) -> pd.DataFrame:
    return pd.DataFrame({s: f[field] for s, f in prices.items()})


def _order_size(w: float, value: float, units: float, close: float) -> int:
    target, held = w * value, units * close  # order_target_percent → order_target_value
    if target == 0 and units:
        return int(-units)
    if target > held:
        return int((target - held) / close)
    return -int((held - target) / close) if target < held else 0


def _cash_after(cash: float, size: float, price: float) -> float:
    return cash - size * price - abs(size) * price * COMMISSION


def reference_run(prices: dict[str, pd.DataFrame], weights: pd.DataFrame) -> dict:
    """Final value, fills and refused orders of the portfolio, without Backtrader."""
    opens, closes = panels(prices, "open"), panels(prices, "close")
    units, last = dict.fromkeys(prices, 0.0), dict.fromkeys(prices, np.nan)
    cash, placed, waiting, fills, refused, value = CASH, [], [], [], 0, CASH
    steps = []  # (value, traded value, gross held value) at each close
    for t in closes.index:
        has_bar = closes.loc[t].notna()
        check = cash  # the broker checks last step's orders at their creation close
        for order in placed:
            check = _cash_after(check, order[1], order[2])
            waiting.append(order) if check >= 0 else None
            refused += check < 0
        placed, still = [], []
        for sym, size, _ in waiting:  # fills at the symbol's next open, in order placed
            if not has_bar[sym]:
                still.append((sym, size, _))
                continue
            after = _cash_after(cash, size, opens.at[t, sym])
            if size > 0 and after < 0:
                refused += 1
                continue
            cash, units[sym] = after, units[sym] + size
            fills.append((t, sym, size, opens.at[t, sym]))
        waiting = still
        last.update({s: closes.at[t, s] for s in prices if has_bar[s]})
        value = cash + sum(u * last[s] for s, u in units.items() if u)
        traded = sum(abs(size * price) for when, _, size, price in fills if when == t)
        steps.append((value, traded, sum(abs(u * last[s]) for s, u in units.items() if u)))
        sells, buys = [], []
        for sym in prices:
            w = weights.at[t, sym] if sym in weights.columns else np.nan
            if not has_bar[sym] or not math.isfinite(w) or (w == 0 and not units[sym]):
                continue
            (sells if w * value < units[sym] * last[sym] else buys).append((sym, w))
        for sym, w in sells + buys:
            size = _order_size(w, value, units[sym], last[sym])
            placed += [(sym, size, last[sym])] if size else []
    return {"final_value": value, "fills": fills, "refused": refused,
            "steps": pd.DataFrame(steps, index=closes.index, columns=["value", "traded", "gross"])}
