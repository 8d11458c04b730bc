"""A symbol whose bars end before the run's last bar (a delisting, a merger) is closed at its last
close, in the strategy and the equal-weight benchmark alike: no position is carried at a stale price.

Real bars (2015, AAPL MSFT XOM of the shared S&P 500 file) with MSFT cut after 2015-06-30 as if it
had been delisted that day.
"""

from __future__ import annotations

import pandas as pd
import pytest
from helpers_portfolio import read_slice

from llmbt.engine.eligibility import delisting_note, delistings, survivorship_note
from llmbt.engine.portfolio import simulate
from llmbt.strategies.portfolio import EqualWeight

LAST = pd.Timestamp("2015-06-30", tz="UTC")


@pytest.fixture(scope="module")
def delisted(shared_news) -> dict[str, pd.DataFrame]:
    prices = read_slice(shared_news, ("AAPL", "MSFT", "XOM"))
    prices["MSFT"] = prices["MSFT"].loc[:LAST]
    return prices


def _equal_weight(prices: dict[str, pd.DataFrame]):
    tradable = pd.DataFrame({s: f["close"] for s, f in prices.items()}).notna()
    weights = EqualWeight.target_weights({}, tradable, {"gross": 0.95, "rebalance": 21})
    return simulate(prices, weights, cash=100_000.0, commission=0.001)


def test_a_delisted_symbol_is_closed_at_its_last_close(delisted):
    run = _equal_weight(delisted)
    msft = run.fills[run.fills["symbol"] == "MSFT"]
    assert msft["size"].sum() == 0  # nothing held after its last bar
    last = msft.iloc[-1]
    assert last["timestamp"] == LAST and last["size"] < 0
    assert last["price"] == pytest.approx(float(delisted["MSFT"]["close"].iloc[-1]))
    assert run.contributions.loc["MSFT", "pnl"] == pytest.approx(
        -msft["value"].sum() - msft["commission"].sum(), abs=1e-6)


def test_after_the_delisting_the_value_no_longer_depends_on_the_stale_price(delisted):
    run = _equal_weight(delisted)
    frozen = dict(delisted, MSFT=delisted["MSFT"].assign(close=delisted["MSFT"]["close"] * 3.0))
    frozen["MSFT"].iloc[:-1] = delisted["MSFT"].iloc[:-1]  # only the last close differs
    other = _equal_weight(frozen)
    after = run.equity.index > LAST
    cash_in = other.fills[(other.fills["symbol"] == "MSFT")].iloc[-1]
    assert cash_in["price"] == pytest.approx(3.0 * float(delisted["MSFT"]["close"].iloc[-1]))
    # the proceeds differ, and nothing after the last bar re-marks MSFT
    moves = run.equity[after].pct_change().dropna() - other.equity[after].pct_change().dropna()
    assert moves.abs().max() < 0.01


def test_the_run_names_the_delisting_and_only_a_full_universe_is_survivor_only(delisted, shared_news):
    assert delistings(delisted) == {"MSFT": LAST}
    assert "MSFT 2015-06-30" in delisting_note(delistings(delisted))
    assert survivorship_note(delisted, None) == ""
    whole = read_slice(shared_news, ("AAPL", "MSFT", "XOM"))
    assert survivorship_note(whole, None).startswith("survivor-only")
    assert survivorship_note(whole, "members.csv") == ""
