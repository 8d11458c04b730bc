"""``bt bench universe``: the portfolio event loop over a whole universe, against plain pandas.

The scores are a deterministic stand-in for cached LLM scores — each symbol's trailing 20-bar return —
because the loop's cost does not depend on where the scores came from. :func:`bench_universe` returns
plain numbers; the CLI prints them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llmbt.engine.portfolio import peak_rss_mib, simulate
from llmbt.errors import DataError
from llmbt.feeds.universe import load_universe
from llmbt.strategies.portfolio import LlmNewsPortfolio

#: The shared universe beside the project (see ../shared/data/MANIFEST.md).
DEFAULT_DATA = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "news"
                / "sp500_prices_2013_2016.csv.gz")
DEFAULT_NEWS = DEFAULT_DATA.with_name("reuters_headlines_2013_2016.csv.gz")


def read_long_prices(path: str | Path, n_symbols: int | None = None) -> tuple[dict[str, pd.DataFrame], int]:
    """The first ``n_symbols`` symbols (by name; default all) of a long-format file, through
    :func:`llmbt.feeds.universe.load_universe`, and how many rows it dropped as incomplete.

    Raises:
        DataError: the file does not exist or is not a long-format price file.
    """
    if not Path(path).is_file():
        raise DataError(f"bench universe: no price file at {path}; pass --data PATH to a long-format "
                        "CSV (timestamp,symbol,open,high,low,close,volume).")
    universe = load_universe(f"csv:{path}")
    keep = universe.symbols[:n_symbols]
    dropped = sum(1 for s, _, _ in universe.dropped if s in keep)
    return {s: universe.prices[s] for s in keep}, dropped


def stand_in_scores(prices: Mapping[str, pd.DataFrame], lookback: int = 20) -> pd.DataFrame:
    """Each symbol's trailing ``lookback``-bar close-to-close return on its own bars (causal),
    on the union calendar: a deterministic stand-in for cached LLM scores."""
    return pd.DataFrame({s: f["close"] / f["close"].shift(lookback) - 1.0 for s, f in prices.items()})


def vectorised_final_value(prices: Mapping[str, pd.DataFrame], weights: pd.DataFrame, cash: float,
                           commission: float) -> float:
    """The same portfolio in plain pandas: weights (held until changed) × each symbol's
    next-open-to-following-open return, minus turnover × commission, compounded.

    An approximation of the loop: fractional units, exact weights at every rebalance, no cash check.
    """
    fwd = pd.DataFrame({s: f["open"].shift(-2) / f["open"].shift(-1) - 1.0 for s, f in prices.items()})
    held = weights.reindex(index=fwd.index, columns=fwd.columns).ffill().fillna(0.0)
    turnover = held.diff().abs().sum(axis=1)
    turnover.iloc[0] = held.iloc[0].abs().sum()
    step = (held * fwd.fillna(0.0)).sum(axis=1) - turnover * commission
    return float(cash * (1.0 + step).prod())


def bench_universe(prices: Mapping[str, pd.DataFrame], *, top_k: int = 20, cash: float = 1_000_000.0,
                   commission: float = 0.001) -> dict[str, Any]:
    """Time ``llm_news_portfolio`` (daily, ``top_k`` names) through :func:`simulate` and the same
    portfolio in vectorised pandas, in one run.

    Returns:
        ``symbols``, ``bars``, ``weights_s`` (target weights), ``loop_s`` (``cerebro.run``),
        ``simulate_s`` (with feeds and results), ``bars_per_s`` (bars / loop_s), ``vector_s``,
        ``loop_vs_vector`` (loop_s / vector_s), both final values and their relative difference,
        ``fills``, ``rejected_orders`` and ``peak_rss_mib`` (this process so far).
    """
    started = time.perf_counter()
    scores = stand_in_scores(prices)
    tradable = pd.DataFrame({s: f["close"] for s, f in prices.items()}).notna()  # has a bar
    weights = LlmNewsPortfolio.target_weights({"score": scores}, tradable, {"top_k": top_k})
    weights_s = time.perf_counter() - started
    run = simulate(prices, weights, cash=cash, commission=commission)
    started = time.perf_counter()
    vector = vectorised_final_value(prices, weights, cash, commission)
    vector_s = time.perf_counter() - started
    loop_s, final = run.stats["loop_seconds"], run.stats["final_value"]
    return {"symbols": len(prices), "bars": int(run.stats["bars"]), "weights_s": weights_s,
            "loop_s": loop_s, "simulate_s": run.seconds, "bars_per_s": run.stats["bars"] / loop_s,
            "vector_s": vector_s, "loop_vs_vector": loop_s / vector_s,
            "final_value_loop": final, "final_value_vector": vector,
            "final_value_rel_diff": abs(final - vector) / vector, "fills": int(run.stats["fills"]),
            "rejected_orders": int(run.stats["rejected_orders"]), "peak_rss_mib": peak_rss_mib()}

