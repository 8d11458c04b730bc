"""Engine tests: golden numbers on the real GOOG sample, checked against an independent simulation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from llmbt.engine.config import RunConfig
from llmbt.engine.runner import run_backtest
from llmbt.errors import ConfigError
from llmbt.feeds import load_prices
from llmbt.feeds.calendar import periods_per_year


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_prices("sample:GOOG")


def independent_sma_cross(df: pd.DataFrame, fast=10, slow=30, cash=100_000.0, comm=0.001, pct=95.0):
    """Plain-python long-only SMA cross: signal at bar t's close, fill at bar t+1's open."""
    close, open_ = df["close"].to_numpy(), df["open"].to_numpy()
    f = pd.Series(close).rolling(fast).mean().to_numpy()
    s = pd.Series(close).rolling(slow).mean().to_numpy()
    diff, last_nz, pos, trades, pending = f - s, np.nan, 0, 0, None
    for t in range(len(df)):
        if pending is not None:  # fill yesterday's order at today's open
            side, size = pending
            if side == "buy" and size * open_[t] * (1 + comm) <= cash:
                cash -= size * open_[t] * (1 + comm)
                pos = size
            elif side == "sell":
                cash += pos * open_[t] * (1 - comm)
                pos, trades = 0, trades + 1
            pending = None
        if t >= slow and not math.isnan(diff[t]):
            up = last_nz < 0 and diff[t] > 0
            down = last_nz > 0 and diff[t] < 0
            if up and pos == 0:
                gaps = open_[max(1, t - 251):t + 1] / close[max(0, t - 252):t] - 1  # last 252
                price = close[t] * (1 + max(0.0, np.quantile(gaps, 0.99)))  # a normal gap up
                pending = ("buy", min(int((cash + pos * close[t]) * pct / 100 / close[t]),
                                      int(cash / (price * (1 + comm)))))
            elif down and pos > 0:
                pending = ("sell", pos)
        if not math.isnan(diff[t]) and diff[t] != 0:
            last_nz = diff[t]
    return trades, cash + pos * close[-1]


def test_sma_cross_golden_numbers_on_goog(goog):
    result = run_backtest(RunConfig(strategy="sma_cross"), prices=goog, with_benchmark=False)
    # Frozen after matching the independent simulation below.
    assert result.stats["trades"] == 32
    assert result.stats["final_value"] == pytest.approx(505_142.89349, rel=1e-9)  # gap headroom


def test_sma_cross_matches_independent_simulation(goog):
    for start in ("2004-08-19", "2010-01-01"):
        prices = goog.loc[start:]
        result = run_backtest(RunConfig(strategy="sma_cross"), prices=prices, with_benchmark=False)
        trades, final = independent_sma_cross(prices)
        assert result.stats["trades"] == trades
        assert result.stats["final_value"] == pytest.approx(final, rel=1e-9)


def test_orders_fill_at_next_bar_open(goog):
    prices = goog.iloc[:60]
    result = run_backtest(RunConfig(strategy="buy_and_hold", commission=0.0), prices=prices,
                          with_benchmark=False)
    size = int(100_000 * 0.95 / prices["close"].iloc[0])
    cash_left = 100_000 - size * prices["open"].iloc[1]
    assert result.equity.iloc[1] == pytest.approx(cash_left + size * prices["close"].iloc[1])
    assert result.equity.iloc[0] == pytest.approx(100_000)


def test_returns_compound_to_final_value(goog):
    result = run_backtest(RunConfig(strategy="sma_cross", start="2010-01-01"), with_benchmark=True)
    assert (1 + result.returns).prod() * 100_000 == pytest.approx(result.stats["final_value"])
    assert result.benchmark_returns is not None and result.benchmark_returns.name == "buy_and_hold"
    assert str(result.returns.index.tz) == "UTC"


def test_commission_costs_money(goog):
    prices = goog.loc["2010":]
    base = run_backtest(RunConfig(commission=0.0), prices=prices, with_benchmark=False)
    costly = run_backtest(RunConfig(commission=0.002), prices=prices, with_benchmark=False)
    assert costly.stats["final_value"] < base.stats["final_value"]


def test_slippage_moves_every_fill_by_exactly_its_percentage(goog):
    """Commission 0: buys fill at open x (1 + s), sells at open x (1 - s), capped by the bar's range."""
    prices, slip = goog.loc["2010":], 0.001
    base = run_backtest(RunConfig(commission=0.0), prices=prices, with_benchmark=False).trades
    slipped = run_backtest(RunConfig(commission=0.0, slippage=slip), prices=prices,
                           with_benchmark=False).trades
    assert len(base) == len(slipped) >= 10
    assert (base["entry_time"] == slipped["entry_time"]).all()
    bars = prices.set_axis(prices.index.strftime("%Y-%m-%d"))
    entry_day, exit_day = (slipped[c].str[:10] for c in ("entry_time", "exit_time"))
    opens = bars.loc[entry_day, "open"].to_numpy()
    assert base["entry_price"].to_numpy() == pytest.approx(opens, rel=1e-12)
    buy = np.minimum(opens * (1 + slip), bars.loc[entry_day, "high"].to_numpy())
    assert slipped["entry_price"].to_numpy() == pytest.approx(buy, rel=1e-12)
    exit_price = slipped["entry_price"] + slipped["pnl"] / slipped["size"]
    sell = np.maximum(bars.loc[exit_day, "open"].to_numpy() * (1 - slip),
                      bars.loc[exit_day, "low"].to_numpy())
    assert exit_price.to_numpy() == pytest.approx(sell, rel=1e-9)


def test_periods_per_year():
    daily = load_prices("sample:GOOG").index
    assert periods_per_year(daily) == 252
    assert periods_per_year(load_prices("sample:BTCUSD").index) == pytest.approx(12, rel=0.05)


def test_run_id_is_stable_and_changes_with_config():
    a, b = RunConfig(cash=1000), RunConfig(cash=1000.0)
    assert a.run_id == b.run_id
    assert a.run_id != a.replace(commission=0.002).run_id


@pytest.mark.parametrize("kwargs, fragment", [
    ({"cash": -5}, "--cash"),
    ({"cash": "lots"}, "not a number"),
    ({"commission": 1.5}, "--commission"),
    ({"sizer": "percnt"}, "Did you mean 'percent'"),
    ({"size": 150}, "--size"),
    ({"mode": "bar"}, "Did you mean 'bars'"),
    ({"start": "2012-01-01", "end": "2010-01-01"}, "swap"),
    ({"start": "yesterday-ish"}, "YYYY-MM-DD"),
    ({"batch_size": 0}, "--batch-size"),
])
def test_bad_config_values(kwargs, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        RunConfig(**kwargs)
    assert fragment in str(err.value)


def test_yaml_config_roundtrip_and_unknown_key(tmp_path):
    cfg = RunConfig(strategy="sma_cross", params={"fast": 5, "slow": 20})
    path = tmp_path / "run.yaml"
    path.write_text(cfg.to_yaml())
    assert RunConfig.from_yaml(path) == cfg
    path.write_text("stratgy: sma_cross\n")
    with pytest.raises(ConfigError, match="Did you mean 'strategy'"):
        RunConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")


def test_unknown_strategy_and_param(goog):
    with pytest.raises(ConfigError, match="Did you mean 'sma_cross'"):
        run_backtest(RunConfig(strategy="sma_crss"), prices=goog)
    with pytest.raises(ConfigError, match="Did you mean 'fast'"):
        run_backtest(RunConfig(strategy="sma_cross", params={"fsat": 3}), prices=goog)


def test_a_prompt_of_another_mode_fails_before_any_data_is_loaded(tmp_path):
    """The runner checks --prompt against --mode (the config layer knows no prompts) first."""
    from llmbt.experiments.arms import Arm, run_arms

    missing = f"csv:{tmp_path / 'none.csv'}"
    cfg = RunConfig(strategy="sma_cross", data=missing, prompt="headlines-v1")
    with pytest.raises(ConfigError, match=r"^--prompt: prompt 'headlines-v1' is a headlines template"):
        run_backtest(cfg)
    arms = [Arm("a"), Arm("b", prompt="headlines-v1")]
    with pytest.raises(ConfigError, match=r"^--prompt: "):
        run_arms(cfg.replace(strategy="llm_sentiment", start="2012-01-01"), arms)


def test_a_bad_normalize_is_refused_before_anything_is_scored(goog, monkeypatch):
    from llmbt.signals_cache import signals

    def never(*args, **kwargs):
        raise AssertionError("scored before the parameters were checked")

    monkeypatch.setattr(signals, "compute_signals", never)
    with pytest.raises(ConfigError, match="normalize='rank' must be zscore or none"):  # at creation
        cfg = RunConfig(strategy="llm_sentiment", start="2012-06-01", params={"normalize": "rank"})
        run_backtest(cfg, prices=goog.loc["2012-06-01":], with_benchmark=False)


def test_params_are_validated_once_into_typed_values_naming_the_param():
    from llmbt.errors import ConfigError

    flag = RunConfig(strategy="sma_cross", params={"fast": "5"})
    yaml_like = RunConfig(strategy="sma_cross", params={"fast": 5})
    assert flag.params.fast == 5 and isinstance(flag.params.fast, int)
    assert flag.run_id == yaml_like.run_id  # --param fast=5 and YAML fast: 5 are one configuration
    with pytest.raises(ConfigError, match=r"--param fsat: .*Did you mean 'fast'"):
        RunConfig(strategy="sma_cross", params={"fsat": 3})
    with pytest.raises(ConfigError, match=r"--param fast='five' must be an integer"):
        RunConfig(strategy="sma_cross", params={"fast": "five"})
    with pytest.raises(ConfigError, match=r"top_k"):  # the strategy's own rule, at creation
        RunConfig(strategy="llm_news_portfolio", params={"top_k": "0"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        flag.params.fast = 7  # frozen
