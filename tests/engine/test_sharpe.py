"""One Sharpe ratio: the runner's stats, the metric table (bt run, bt compare) and llmbt.reports.stats use
llmbt.engine.metrics.sharpe_ratio, checked against a hand-computed value on a calendar-day (crypto) series,
where 365.25 bars a year must not be rounded to 365."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llmbt.engine.config import RunConfig
from llmbt.engine.metrics import sharpe_ratio
from llmbt.engine.runner import run_backtest
from llmbt.feeds.calendar import periods_per_year
from llmbt.reports.compare import compare
from llmbt.reports.metrics import headline_metrics
from llmbt.reports.stats import sharpe_ratio as stats_sharpe

PATTERN = [0.01, -0.02, 0.03, 0.0, 0.015]


def calendar(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2021-01-01", periods=len(values), freq="D", tz="UTC"))


def test_hand_computed_sharpe_on_calendar_days():
    r = calendar(PATTERN * 6)
    assert periods_per_year(r.index) == 365.25
    # by hand: mean 0.007; squared deviations 6 * (9 + 729 + 529 + 49 + 64)e-6 = 8280e-6, / 29 (ddof 1)
    expected = 0.007 / math.sqrt(8280e-6 / 29) * math.sqrt(365.25)
    assert expected == pytest.approx(7.917298, abs=1e-6)  # 0.41427 * 19.11152
    assert sharpe_ratio(r, 365.25) == pytest.approx(expected, rel=1e-12)
    assert stats_sharpe is sharpe_ratio
    assert headline_metrics(r, 365.25)["Sharpe"] == pytest.approx(expected, rel=1e-12)
    frame = pd.DataFrame({"score": 0.5, "confidence": 0.6, "label": "bullish", "predicted": "bullish",
                          "forward_return": 0.01}, index=r.index)
    other = calendar(list(np.random.default_rng(0).normal(0, 0.01, len(r))))
    comp = compare({"a": r, "b": other}, {"a": frame, "b": frame}, horizon=1, n_boot=50)
    assert comp.metrics.loc["Sharpe", "a"] == pytest.approx(expected, rel=1e-12)
    assert comp.stats["dsr"]["sharpe"]["a"] == pytest.approx(expected, rel=1e-12)


def test_zero_variance_sharpe_is_undefined_everywhere():
    flat = calendar([0.0] * 10)
    assert math.isnan(sharpe_ratio(flat, 365.25))
    assert math.isnan(headline_metrics(flat, 365.25)["Sharpe"])


def test_runner_stats_agree_with_the_metric_table(goog):
    prices = goog.iloc[:120].copy()
    prices.index = pd.date_range("2021-01-01", periods=len(prices), freq="D", tz="UTC")  # 7 days a week
    result = run_backtest(RunConfig(strategy="buy_and_hold", commission=0.0), prices=prices,
                          with_benchmark=False)
    ppy = periods_per_year(result.returns.index)
    assert ppy == 365.25
    r = result.returns
    by_hand = r.mean() / r.std(ddof=1) * math.sqrt(365.25)
    assert result.stats["sharpe"] == pytest.approx(by_hand, rel=1e-12)
    assert headline_metrics(r, ppy)["Sharpe"] == pytest.approx(result.stats["sharpe"], rel=1e-12)


def test_a_run_that_never_trades_has_an_undefined_sharpe(goog):
    # 10 of cash buys no share of GOOG: the equity is flat, the Sharpe undefined (not 0) as everywhere
    result = run_backtest(RunConfig(strategy="buy_and_hold", cash=10.0), prices=goog.iloc[:60],
                          with_benchmark=False)
    assert result.stats["trades"] == 0 and (result.returns == 0).all()
    assert math.isnan(result.stats["sharpe"])
    assert math.isnan(headline_metrics(result.returns, 252.0)["Sharpe"])
