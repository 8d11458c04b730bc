"""Build a Cerebro from a :class:`RunConfig`, run it, and return a plain result object.

Data flow: prices (feeds) → signal columns computed before the loop (:mod:`llmbt.engine.signals`,
as the strategy's ``signal_spec`` asks) → a Backtrader feed carrying those columns as lines →
strategy ``next()`` reads them → analyzers → :class:`RunResult`. Market orders are filled at the
next bar's open (Backtrader's default; neither cheat-on-open nor cheat-on-close is enabled).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from llmbt.engine.analyzers import EquityCurve, Rejections, TradeLog
from llmbt.engine.config import RunConfig
from llmbt.engine.metrics import sharpe_ratio
from llmbt.engine.signals import check_prompt, prepare_signals, signal_inputs
from llmbt.errors import ConfigError
from llmbt.feeds import load_prices
from llmbt.feeds.calendar import periods_per_year  # re-exported: reports may not import feeds
from llmbt.strategies.base import SignalStrategy
from llmbt.strategies.registry import check_bars, get_strategy

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass
class RunResult:
    """What a backtest returns: plain pandas/JSON data, no Backtrader objects."""

    config: RunConfig
    returns: pd.Series
    equity: pd.Series
    trades: pd.DataFrame
    stats: dict[str, float]
    benchmark_returns: pd.Series | None = None
    signal_info: dict[str, Any] = field(default_factory=dict)
    signals: pd.DataFrame | None = None  # the signal columns the strategy read, per traded bar
    seconds: float = 0.0

    @property
    def run_id(self) -> str:
        return self.config.run_id


class PercentOfValue(bt.Sizer):
    """Whole units worth ``percents`` % of the portfolio value at the signal bar's close; buys are
    capped so that the cash still pays for them if the next bar opens a normal gap higher.

    A market order fills at the next bar's open, and the broker rejects a buy (status Margin)
    that costs more than the cash then. So a buy gets at most ``cash / (P + commission(P))``
    units at ``P = close * (1 + g) * (1 + slippage)``, with ``g`` the ``gap_quantile`` of the
    close-to-next-open rises over the last ``gap_window`` bars (known at the signal bar). A
    larger gap can still reject the order; the runner counts those (``rejected_orders``).
    """

    params = (("percents", 95.0), ("gap_window", 252), ("gap_quantile", 0.99))

    def _getsizing(self, comminfo, cash, data, isbuy) -> int:
        value = self.strategy.broker.getvalue()
        units = int(value * self.p.percents / 100.0 / data.close[0])
        if not isbuy:
            return units
        price = data.close[0] * (1.0 + self._normal_gap(data)) * (1.0 + self.broker.p.slip_perc)
        return max(0, min(units, int(cash / (price + comminfo.getcommission(1, price)))))

    def _normal_gap(self, data) -> float:
        n = min(len(data) - 1, self.p.gap_window)
        if n < 1:
            return 0.0
        gaps = np.array(data.open.get(size=n)) / np.array(data.close.get(ago=-1, size=n)) - 1.0
        return max(0.0, float(np.quantile(gaps, self.p.gap_quantile)))


def signal_feed_class(columns: tuple[str, ...]) -> type[bt.feeds.PandasData]:
    """A PandasData subclass that carries ``columns`` as extra lines (read by name)."""
    name = "SignalData_" + "_".join(columns) if columns else "PriceData"
    params = tuple((c, c) for c in columns) + (("datetime", None), ("openinterest", None))
    return type(name, (bt.feeds.PandasData,), {"lines": tuple(columns), "params": params})


def make_feed(frame: pd.DataFrame, columns: tuple[str, ...] = ()) -> bt.feeds.PandasData:
    """Wrap a normalised price frame (+ signal columns) as a Backtrader feed."""
    df = frame.copy()
    df.index = df.index.tz_convert("UTC").tz_localize(None)
    return signal_feed_class(columns)(dataname=df)


def run_backtest(config: RunConfig, prices: pd.DataFrame | None = None,
                 with_benchmark: bool = True, history: pd.DataFrame | None = None,
                 on_start: Callable[[], None] | None = None) -> RunResult:
    """Run one backtest.

    Args:
        config: the validated run configuration.
        prices: an already-loaded normalised frame of the bars to trade (skips loading
            ``config.data``).
        with_benchmark: also run ``config.benchmark`` on the same data and costs.
        history: bars the signals are computed from when ``prices`` is given (``prices`` plus
            the bars before it, for indicator warm-up); default ``prices``.
        on_start: called once the bars are loaded and the strategy and its parameters checked,
            before any scoring or trading (``bt run`` prints its header then, so that an input
            error is not preceded by the header of a run that never started).
    """
    started = time.perf_counter()
    check_prompt(config)
    refuse_portfolio(config)
    loaded_here = prices is None
    if prices is None:
        prices = load_prices(config.data, config.start, config.end, interval=config.interval)
    cls = get_strategy(config.strategy)
    check_bars(cls, config.params, len(prices), config.data)  # typed when the config was made
    frame, info, columns, news = prices, {}, (), None
    if issubclass(cls, SignalStrategy):
        history = history if history is not None else (
            load_history(config) if loaded_here and config.start else prices)
        news = signal_inputs(config)  # checked before the header: an error comes alone
    if on_start is not None:
        on_start()
    if issubclass(cls, SignalStrategy):
        signals, info = prepare_signals(cls, history, config, news)
        columns = tuple(cls.signal_columns)
        frame = prices.join(signals[list(columns)])  # index-aligned: same bars, nothing shifted
    result = _run_cerebro(config, frame, cls, columns)
    result.signal_info = info
    result.signals = frame[list(columns)] if columns else None
    if with_benchmark and config.benchmark not in ("none", config.strategy):
        bench = dataclasses.replace(config, strategy=config.benchmark, params={})
        bench = _run_cerebro(bench, prices, get_strategy(config.benchmark), ())
        result.benchmark_returns = bench.returns.rename(config.benchmark)
    result.seconds = time.perf_counter() - started
    return result


def refuse_portfolio(config: RunConfig) -> None:
    """Refuse a universe strategy in the single-instrument paths (the runner, one-symbol arms)."""
    from llmbt.strategies.portfolio import PortfolioStrategy

    if issubclass(get_strategy(config.strategy), PortfolioStrategy):
        raise ConfigError(f"--strategy {config.strategy} trades a universe: run it with `bt run`, "
                          "`bt walkforward` or `bt compare --arm` (llmbt.engine.portfolio_run, "
                          "llmbt.experiments.universe_arms), not the one-symbol runner")
    for flag, value in (("--select", config.select), ("--membership", config.membership)):
        if value:
            raise ConfigError(f"{flag} {value} chooses names of a universe, but --strategy "
                              f"{config.strategy} trades one instrument: drop {flag}, or use a "
                              "universe strategy such as llm_news_portfolio")


def load_history(config: RunConfig) -> pd.DataFrame:
    """The bars signals are computed from: ``--start`` minus the strategy's warm-up, to ``--end``.

    The warm-up (:meth:`SignalStrategy.warmup_bars`) is converted to a calendar start
    (:func:`llmbt.feeds.prices.history_start`), so a cached download that covers it is read offline
    and ccxt gets a start date. Without ``--start``: every bar up to ``--end``.
    """
    from llmbt.feeds.prices import history_start

    cls = get_strategy(config.strategy)
    bars = cls.warmup_bars(config.params) if issubclass(cls, SignalStrategy) else 0
    start = history_start(config.start, bars, config.interval)
    return load_prices(config.data, start, config.end, interval=config.interval)


def _run_cerebro(config: RunConfig, frame: pd.DataFrame, cls: type[bt.Strategy],
                 columns: tuple[str, ...]) -> RunResult:
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=False)
    cerebro.adddata(make_feed(frame, columns))
    cerebro.addstrategy(cls, **config.params.all_values())
    _setup_broker(cerebro, config)
    cerebro.addanalyzer(EquityCurve, _name="equity")
    cerebro.addanalyzer(TradeLog, _name="tradelog")
    cerebro.addanalyzer(Rejections, _name="rejections")
    cerebro.addanalyzer(bt.analyzers.DrawDown, _name="drawdown")
    strat = cerebro.run()[0]
    equity = _equity_series(strat.analyzers.equity.get_analysis())
    returns = _returns(equity, config.cash).rename(config.strategy)
    trades = pd.DataFrame(strat.analyzers.tradelog.get_analysis()["trades"])
    stats = _stats(config, equity, returns, trades, strat)
    stats["rejected_orders"] = float(len(strat.analyzers.rejections.get_analysis()["orders"]))
    return RunResult(config=config, returns=returns, equity=equity, trades=trades, stats=stats)


def _setup_broker(cerebro: bt.Cerebro, config: RunConfig) -> None:
    cerebro.broker.setcash(config.cash)
    cerebro.broker.setcommission(commission=config.commission)
    if config.slippage:
        cerebro.broker.set_slippage_perc(config.slippage, slip_open=True, slip_match=True)
    if config.sizer == "percent":
        cerebro.addsizer(PercentOfValue, percents=config.size)
    else:
        cerebro.addsizer(bt.sizers.FixedSize, stake=config.size)


def _equity_series(analysis: dict) -> pd.Series:
    index = pd.DatetimeIndex(analysis["times"]).tz_localize("UTC")
    eq = pd.Series(analysis["values"], index=index, name="equity", dtype=float)
    eq.attrs["exposure"] = float(np.mean(np.abs(analysis["exposure"]))) if analysis["exposure"] else 0.0
    return eq


def _returns(equity: pd.Series, cash: float) -> pd.Series:
    prev = equity.shift(1)
    prev.iloc[0] = cash
    return equity / prev - 1.0


def _stats(config: RunConfig, equity: pd.Series, returns: pd.Series, trades: pd.DataFrame,
           strat: bt.Strategy) -> dict[str, float]:
    ppy = periods_per_year(equity.index)
    wins = int((trades["pnl_net"] > 0).sum()) if len(trades) else 0
    return {
        "final_value": float(equity.iloc[-1]),
        "total_return": float(equity.iloc[-1] / config.cash - 1.0),
        "sharpe": sharpe_ratio(returns, ppy),  # NaN when the equity never moves
        "max_drawdown": float(strat.analyzers.drawdown.get_analysis().max.drawdown) / 100.0,
        "trades": float(len(trades)),
        "win_rate": wins / len(trades) if len(trades) else 0.0,
        "exposure": equity.attrs["exposure"],
        "bars": float(len(equity)),
    }
