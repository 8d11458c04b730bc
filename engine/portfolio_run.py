"""A portfolio backtest from a :class:`RunConfig`: universe → headline scores → weights → loop.

Data flow, one direction: the universe's bars (:func:`llmbt.feeds.universe.load_universe`, from the
warm-up before ``--start``) and headlines → one cached scoring pass over the universe
(:func:`llmbt.signals_cache.universe.universe_signals`) → score / confidence / vol panels → the
strategy's target weights, decided at each close before the loop
(:meth:`~llmbt.strategies.portfolio.PortfolioStrategy.target_weights`) → one Backtrader feed per
symbol, next-open fills (:func:`llmbt.engine.portfolio.simulate`) → the equal-weight benchmark
on the same bars, schedule and costs. The reports (tearsheet, IC, contributions) are drawn from
the returned :class:`PortfolioResult` by the CLI.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.engine.portfolio import PortfolioRun, simulate
from llmbt.engine.signals import load_masker, lookahead_info, scoring_spec
from llmbt.errors import ConfigError
from llmbt.feeds import load_news
from llmbt.feeds.prices import history_start
from llmbt.feeds.universe import Universe, load_universe, parse_symbols
from llmbt.strategies.portfolio import EqualWeight, PortfolioStrategy
from llmbt.strategies.registry import check_params, get_strategy

#: Bars of history before ``--start`` for the realised volatility (20 bars) and settling.
VOL_HISTORY = 25


@dataclass
class PortfolioResult:
    """What a portfolio backtest returns: plain pandas data, no Backtrader objects."""

    config: RunConfig
    run: PortfolioRun
    benchmark: PortfolioRun | None
    panels: dict[str, pd.DataFrame]  # score / confidence / vol over the traded bars
    weights: pd.DataFrame
    opens: pd.DataFrame  # open prices, calendar x symbols (for the signal report)
    signal_info: dict[str, Any] = field(default_factory=dict)
    universe_info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def run_id(self) -> str:
        return self.config.run_id


def is_portfolio(strategy: str) -> bool:
    """True when ``strategy`` trades a universe (a :class:`PortfolioStrategy`)."""
    return issubclass(get_strategy(strategy), PortfolioStrategy)


@dataclass(frozen=True)
class PortfolioInputs:
    """What a portfolio run's signals and weights are computed from, loaded once.

    Attributes:
        strategy: the :class:`PortfolioStrategy` class. params: its validated parameters.
        spec: what it scores (decay, warm-up). universe: the bars, warm-up history included.
        news: the headlines (``load_news`` columns).
    """

    strategy: type
    params: dict
    spec: Any
    universe: Universe
    news: pd.DataFrame


def load_inputs(config: RunConfig) -> PortfolioInputs:
    """The strategy, its parameters, the universe's bars and the headlines of ``config``."""
    cls = get_strategy(config.strategy)
    params = cls.checked_params(check_params(cls, dict(config.params)))
    spec = cls.signal_spec(params)
    universe = _load(config, _history_bars(spec))
    return PortfolioInputs(cls, params, spec, universe, run_news(config, universe))


def portfolio_signals(config: RunConfig, inputs: PortfolioInputs
                      ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict[str, Any]]:
    """The signal panels (calendar × symbols, warm-up included), the target weights decided at
    each close, and the scoring facts: what a run trades on (``bt audit lookahead`` recomputes
    them on truncated inputs through this same function)."""
    panels, info = _signals(config, inputs)
    weights = inputs.strategy.target_weights(panels, inputs.universe.tradable(), inputs.params)
    return panels, weights, info


def run_portfolio_backtest(config: RunConfig, with_benchmark: bool = True) -> PortfolioResult:
    """Run a portfolio strategy over the universe ``config.data`` (subset ``config.symbols``)."""
    started = time.perf_counter()
    return _run(config, load_inputs(config), with_benchmark, started)


def run_portfolio_on(config: RunConfig, universe: Universe, news: pd.DataFrame,
                     with_benchmark: bool = True, started: float | None = None) -> PortfolioResult:
    """Run ``config``'s portfolio strategy on given bars and headlines (a walk-forward's test window).

    Args:
        config: strategy, costs and the model (``model``, ``adapter``, ``quantization``,
            ``engine``); trading starts at ``config.start``.
        universe: the bars, from the warm-up (:func:`history_bars` before ``config.start``) to the
            last bar to trade.
        news: headlines (``load_news`` columns); see :func:`run_news`.
        with_benchmark: also run the equal-weight universe on the same bars.
        started: ``time.perf_counter()`` at the start of the run (for ``seconds``).
    """
    started = time.perf_counter() if started is None else started
    cls = get_strategy(config.strategy)
    params = cls.checked_params(check_params(cls, dict(config.params)))
    inputs = PortfolioInputs(cls, params, cls.signal_spec(params), universe, news)
    return _run(config, inputs, with_benchmark, started)


def _run(config: RunConfig, inputs: PortfolioInputs, with_benchmark: bool,
         started: float) -> PortfolioResult:
    universe, params = inputs.universe, inputs.params
    panels, weights, info = portfolio_signals(config, inputs)
    window = _window(universe, config.start)
    run = _simulate(config, window, weights, config.strategy)
    bench = None
    if with_benchmark and config.benchmark not in ("none", config.strategy):
        bench = _benchmark(config, universe, window, params)
    traded = list(window.keys())
    calendar = run.equity.index
    return PortfolioResult(
        config=config, run=run, benchmark=bench,
        panels={k: v.reindex(index=calendar, columns=traded) for k, v in panels.items()},
        weights=weights.reindex(index=calendar, columns=traded),
        opens=universe.panel("open").reindex(columns=traded).loc[calendar[0]:],
        signal_info=info, universe_info=_universe_info(universe, window),
        seconds=time.perf_counter() - started)


def load_run_universe(config: RunConfig) -> Universe:
    """The bars of ``config.data`` (``--symbols``) from the warm-up before ``--start`` to ``--end``."""
    return _load(config, history_bars(config))


def history_bars(config: RunConfig) -> int:
    """Bars of history a portfolio run needs before ``--start`` (volatility, warm-up, decay)."""
    cls = get_strategy(config.strategy)
    spec = cls.signal_spec(cls.checked_params(check_params(cls, dict(config.params))))
    return _history_bars(spec)


def _history_bars(spec: Any) -> int:
    decay = math.ceil(spec.half_life * 10) if spec.half_life > 0 else 0
    return VOL_HISTORY + spec.warmup + decay


def _load(config: RunConfig, bars: int) -> Universe:
    start = history_start(config.start, bars, config.interval)
    return load_universe(config.data, start, config.end, interval=config.interval,
                         symbols=parse_symbols(config.symbols))


def _signals(config: RunConfig, inputs: PortfolioInputs):
    from llmbt.signals_cache.signals import SignalRequest
    from llmbt.signals_cache.universe import universe_signals

    spec = inputs.spec
    model, arm = scoring_spec(config)
    req = SignalRequest(spec=model, mode="headlines", cache_dir=config.cache_dir,
                        batch_size=config.batch_size, half_life=spec.half_life,
                        prompt=config.prompt, warmup=spec.warmup,
                        score_from=pd.Timestamp(config.start, tz="UTC") if config.start else None,
                        masker=load_masker(config), **arm)
    panels, info = universe_signals(inputs.universe.prices, inputs.news, req)
    return panels, info | lookahead_info(config, panels["score"].index)


def run_news(config: RunConfig, universe: Universe) -> pd.DataFrame:
    """``--news FILE``, or ``--news SOURCE:`` (e.g. ``finnhub:``): that provider's cached
    headlines of the universe's symbols (filled by ``bt news fetch``)."""
    from llmbt.feeds.newsources import PROVIDERS, load_cached_news

    if config.news is None:
        raise ConfigError(f"--strategy {config.strategy} trades headline sentiment: pass --news "
                          "FILE (timestamp, symbol, headline) or a fetched source, e.g. "
                          "--news finnhub: after `bt news fetch finnhub --symbols ...`")
    source = config.news.removesuffix(":")
    if config.news.endswith(":") and source in PROVIDERS:
        first = min(bars.index[0] for bars in universe.prices.values())
        return load_cached_news(source, universe.symbols, first, config.end)
    return load_news(config.news, tz=config.news_tz)


def _window(universe: Universe, start: str | None) -> dict[str, pd.DataFrame]:
    """The bars to trade: from ``--start`` on (the warm-up history only feeds the signals)."""
    lo = pd.Timestamp(start, tz="UTC") if start else None
    out = {s: (bars if lo is None else bars.loc[lo:]) for s, bars in universe.prices.items()}
    out = {s: bars for s, bars in out.items() if len(bars)}
    if not out:
        raise ConfigError(f"--start {start}: no symbol of {universe.source} has bars from then on")
    return out


def _simulate(config: RunConfig, window: dict[str, pd.DataFrame], weights: pd.DataFrame,
              name: str) -> PortfolioRun:
    calendar = pd.DatetimeIndex(sorted(set().union(*(b.index for b in window.values()))))
    return simulate(window, weights.reindex(index=calendar, columns=list(window)),
                    cash=config.cash, commission=config.commission, slippage=config.slippage,
                    name=name)


def _benchmark(config: RunConfig, universe: Universe, window: dict[str, pd.DataFrame],
               params: dict) -> PortfolioRun:
    """The equal-weight universe on the same bars, rebalance schedule and costs."""
    if config.benchmark not in ("equal_weight", "buy_and_hold"):
        raise ConfigError(f"--benchmark {config.benchmark!r}: a portfolio is compared with "
                          "equal_weight (the default for portfolios) or none")
    keep = {k: params[k] for k in ("rebalance", "gross")}
    weights = EqualWeight.target_weights({}, universe.tradable(), keep)
    return _simulate(config, window, weights, "equal_weight")


def _universe_info(universe: Universe, window: dict[str, pd.DataFrame]) -> dict[str, Any]:
    bars = sum(len(b) for b in window.values())
    info: dict[str, Any] = {"universe": f"{len(window)} symbols, {bars} symbol-bars traded "
                                        f"({universe.source})"}
    if universe.dropped:
        first = ", ".join(f"{s} {pd.Timestamp(t).date()}" for s, t, _ in universe.dropped[:3])
        info["dropped bars"] = f"{len(universe.dropped)} incomplete rows dropped ({first} ...)"
    return info
