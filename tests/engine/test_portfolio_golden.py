"""Golden numbers: the portfolio loop on a real 5-symbol slice equals an independent calculation.

The slice (2015, AAPL DHR MSFT PYPL XOM of the shared S&P 500 file) has real gaps: DHR lacks 11
sessions (10 absent rows and 2015-07-17, whose open is blank and is dropped), PYPL starts on
2015-07-06. Scores are a fixed hand-made pattern with ties. The reference re-implements, with plain
Python/numpy and without Backtrader, the ranking (top 2 by score, ties by symbol name, 0.95
split equally, 0.5 cap) and ``order_target_percent``: at each close ``V = cash + Σ units × last
close``; for each symbol with a bar and a weight, ``units = int(|V·w − held value| / close)``
toward the target (all of it when the target is 0), reductions first; the broker checks each
order against the cash at its creation close, then fills it at the symbol's next bar open (an
order of a symbol without a bar waits), with commission ``|size| × price × 0.001``. The ranking is
:func:`reference_weights` below; the slice, the scores and the broker are in helpers_portfolio.py
(the construction golden test uses them too). From the reference run's value at each close, its
traded value and its held units at each symbol's last close, :func:`reference_stats` recomputes the
run's returns, Sharpe, max drawdown, turnover and gross exposure with numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers_portfolio import CASH, COMMISSION, SLICE_SYMBOLS, hand_scores, panels, read_slice, reference_run

from llmbt.engine.portfolio import simulate
from llmbt.strategies.portfolio import EqualWeight, LlmNewsPortfolio

PARAMS = {"top_k": 2, "max_weight": 0.5, "rebalance": 1, "band": 0}  # the full daily re-rank
GOLDEN = {"final_value": 79_675.21, "fills": 832, "rejected_orders": 11}  # as measured, both ways


def reference_weights(scores: pd.DataFrame, tradable: pd.DataFrame) -> pd.DataFrame:
    """Top 2 by score (ties: symbol name), 0.95 / 2 each (under the 0.5 cap), others 0."""
    out = pd.DataFrame(np.nan, index=tradable.index, columns=tradable.columns)
    for t in tradable.index:
        names = [s for s in tradable.columns if tradable.at[t, s] and math.isfinite(scores.at[t, s])]
        best = sorted(names, key=lambda s: (-scores.at[t, s], s))[:2]
        for s in names:
            out.at[t, s] = min(0.95 / len(best), 0.5) if s in best else 0.0
    return out


def reference_stats(steps: pd.DataFrame) -> dict:
    """Returns and summary statistics of the reference run, from its value at each close: simple
    returns (the first against the starting cash), Sharpe ``mean / std (ddof=1) × √252`` (daily
    stock bars: 252 a year), the largest fall from a running peak, and the means over all steps of
    traded value / value (turnover) and Σ |units × last close| / value (gross exposure)."""
    value = steps["value"].to_numpy()
    returns = value / np.concatenate([[CASH], value[:-1]]) - 1.0
    return {
        "returns": pd.Series(returns, index=steps.index),
        "total_return": value[-1] / CASH - 1.0,
        "sharpe": returns.mean() / returns.std(ddof=1) * math.sqrt(252),
        "max_drawdown": float(np.max(1.0 - value / np.maximum.accumulate(value))),
        "turnover": float(np.mean(steps["traded"].to_numpy() / value)),
        "exposure": float(np.mean(steps["gross"].to_numpy() / value)),
    }


def assert_stats_equal_the_reference(run, ref: dict) -> None:
    """Equity to the cent at every step; returns and statistics to 1e-9 relative."""
    np.testing.assert_allclose(run.equity.to_numpy(), ref["steps"]["value"].to_numpy(), rtol=0, atol=0.005)
    want = reference_stats(ref["steps"])
    assert run.returns.index.equals(want["returns"].index)
    np.testing.assert_allclose(run.returns.to_numpy(), want["returns"].to_numpy(), rtol=0, atol=1e-9)
    for key in ("total_return", "sharpe", "max_drawdown", "turnover", "exposure"):
        assert run.stats[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


@pytest.fixture(scope="module")
def slice_prices(shared_news) -> dict[str, pd.DataFrame]:
    return read_slice(shared_news)


@pytest.fixture(scope="module")
def slice_inputs(slice_prices):
    tradable = panels(slice_prices, "close").notna()
    return tradable, hand_scores(tradable.index, tradable.columns)


def test_the_slice_has_a_late_start_and_missing_bars(slice_prices):
    assert set(slice_prices) == set(SLICE_SYMBOLS)
    assert slice_prices["PYPL"].index[0] == pd.Timestamp("2015-07-06", tz="UTC")
    assert len(slice_prices["DHR"]) == 241 and len(slice_prices["AAPL"]) == 252
    assert pd.Timestamp("2015-07-17", tz="UTC") not in slice_prices["DHR"].index


def test_weights_equal_the_reference_ranking(slice_inputs):
    tradable, scores = slice_inputs
    weights = LlmNewsPortfolio.target_weights({"score": scores}, tradable, PARAMS)
    pd.testing.assert_frame_equal(weights, reference_weights(scores, tradable))
    ranked = scores.where(tradable).apply(lambda r: sorted(r.dropna(), reverse=True), axis=1)
    assert sum(r[1] == r[2] for r in ranked) > 50  # ties at the cut: the name order decides


def test_final_value_and_fills_equal_the_independent_calculation(slice_prices, slice_inputs):
    tradable, scores = slice_inputs
    weights = LlmNewsPortfolio.target_weights({"score": scores}, tradable, PARAMS)
    run = simulate(slice_prices, weights, cash=CASH, commission=COMMISSION)
    ref = reference_run(slice_prices, reference_weights(scores, tradable))
    assert abs(run.stats["final_value"] - ref["final_value"]) < 0.005
    assert len(run.fills) == len(ref["fills"]) == run.stats["fills"]
    assert run.stats["rejected_orders"] == ref["refused"]
    got = list(run.fills[["timestamp", "symbol", "size", "price"]].itertuples(index=False, name=None))
    assert got == ref["fills"]
    assert_stats_equal_the_reference(run, ref)
    assert abs(run.stats["final_value"] - GOLDEN["final_value"]) < 0.005
    assert (len(run.fills), run.stats["rejected_orders"]) == (GOLDEN["fills"], GOLDEN["rejected_orders"])


def test_contributions_sum_to_the_pnl_to_the_cent(slice_prices, slice_inputs):
    tradable, scores = slice_inputs
    weights = LlmNewsPortfolio.target_weights({"score": scores}, tradable, PARAMS)
    run = simulate(slice_prices, weights, cash=CASH, commission=COMMISSION)
    c = run.contributions
    assert abs(c["pnl"].sum() - (run.equity.iloc[-1] - CASH)) < 0.005
    assert abs(c["commission"].sum() - run.fills["commission"].sum()) < 1e-9
    by_hand = (run.fills["size"].abs() * run.fills["price"] * COMMISSION).sum()
    assert run.stats["commission"] == pytest.approx(by_hand, rel=1e-12)  # what the run paid
    assert c["fills"].sum() == len(run.fills) and abs(c["share"].sum() - 1) < 1e-9
    assert set(c.index) == set(SLICE_SYMBOLS)


def test_no_order_fills_on_a_day_its_symbol_has_no_bar(slice_prices, slice_inputs):
    tradable, scores = slice_inputs
    run = simulate(slice_prices, LlmNewsPortfolio.target_weights({"score": scores}, tradable, PARAMS),
                   cash=CASH, commission=COMMISSION)
    for row in run.fills.itertuples():
        assert slice_prices[row.symbol].at[row.timestamp, "open"] == row.price
    assert (run.fills["symbol"] == "PYPL").any()
    assert run.fills.loc[run.fills["symbol"] == "PYPL", "timestamp"].min() > slice_prices["PYPL"].index[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_truncating_the_data_leaves_earlier_weights_and_fills_unchanged(slice_prices, slice_inputs, seed):
    tradable, scores = slice_inputs
    full_w = LlmNewsPortfolio.target_weights({"score": scores}, tradable, PARAMS)
    full = simulate(slice_prices, full_w, cash=CASH, commission=COMMISSION)
    cut = tradable.index[np.random.default_rng(seed).integers(20, len(tradable) - 20)]
    short_prices = {s: f.loc[:cut] for s, f in slice_prices.items() if len(f.loc[:cut])}
    short_trad = panels(short_prices, "close").notna()
    short_w = LlmNewsPortfolio.target_weights({"score": scores.loc[:cut]}, short_trad, PARAMS)
    pd.testing.assert_frame_equal(short_w, full_w.loc[:cut, short_w.columns])
    short = simulate(short_prices, short_w, cash=CASH, commission=COMMISSION)
    pd.testing.assert_frame_equal(short.fills.reset_index(drop=True),
                                  full.fills[full.fills["timestamp"] <= cut].reset_index(drop=True))
    pd.testing.assert_series_equal(short.equity, full.equity.loc[:cut])


def test_equal_weight_benchmark_on_the_slice(slice_prices, slice_inputs):
    tradable, _ = slice_inputs
    weights = EqualWeight.target_weights({}, tradable, {})
    n = tradable.sum(axis=1)
    assert np.allclose(weights.sum(axis=1), 0.95) and np.allclose(weights.max(axis=1), 0.95 / n)
    assert weights.where(~tradable).isna().all().all()
    run = simulate(slice_prices, weights, cash=CASH, commission=COMMISSION)
    ref = reference_run(slice_prices, weights)
    assert abs(run.stats["final_value"] - ref["final_value"]) < 0.005
    assert len(run.fills) == len(ref["fills"]) and run.stats["rejected_orders"] == ref["refused"]
    assert_stats_equal_the_reference(run, ref)
    assert 0.9 < run.stats["exposure"] < 0.96
