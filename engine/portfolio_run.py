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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmbt.engine import eligibility
from llmbt.engine.config import RunConfig
from llmbt.engine.portfolio import PortfolioRun, simulate
from llmbt.engine.signals import lookahead_info, run_request
from llmbt.errors import ConfigError
from llmbt.feeds import load_news
from llmbt.feeds.prices import history_start
from llmbt.feeds.universe import Universe, load_universe, parse_symbols
from llmbt.strategies.portfolio import EqualWeight, PortfolioStrategy
from llmbt.strategies.portfolio_params import PortfolioParams
from llmbt.strategies.registry import get_strategy

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
        strategy: the :class:`PortfolioStrategy` class. params: its typed parameters (the config's).
        spec: what it scores (decay, warm-up). universe: the bars, warm-up history included.
        news: the headlines (``load_news`` columns; None when nothing reads them).
        cache_only: refuse to score what the signal cache lacks (``--jitter``).
    """

    strategy: type
    params: PortfolioParams
    spec: Any
    universe: Universe
    news: pd.DataFrame | None
    cache_only: bool = False


def load_inputs(config: RunConfig, cache_only: bool = False) -> PortfolioInputs:
    """The strategy, its parameters, the universe's bars and the headlines of ``config``
    (``cache_only``: scores must come from the signal cache, no model is loaded)."""
    cls = get_strategy(config.strategy)
    params = config.params  # typed when the config was made
    eligibility.check(config)
    spec = cls.signal_spec(params)
    universe = _load(config, _history_bars(spec, config))
    news = run_news(config, universe) if needs_news(config) else None
    return PortfolioInputs(cls, params, spec, universe, news, cache_only)


def needs_news(config: RunConfig) -> bool:
    """Whether the run reads headlines: a strategy that ranks scores, or ``--select news:…``
    (``equal_weight`` alone scores nothing and needs no ``--news``)."""
    ranks = bool(get_strategy(config.strategy).signal_panels)
    return ranks or str(config.select or "").startswith("news")


def portfolio_signals(config: RunConfig, inputs: PortfolioInputs
                      ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict[str, Any]]:
    """The signal panels (calendar × symbols, warm-up included; ``selected`` = 1 where
    ``--select``/``--membership`` let a name be held), the target weights decided at each close,
    and the scoring facts: what a run trades on (``bt audit lookahead`` recomputes them on
    truncated inputs through this same function, the selection included)."""
    panels, info, chosen = scored_panels(config, inputs)
    weights, cash, most = weights_from(config, inputs, panels, chosen)
    since = _since(config)
    note = inputs.strategy.structural_note(inputs.params, most)
    info = info | ({"construction": note} if note else {})
    if chosen is not None:
        info = {"selection": eligibility.selection_summary(
            chosen, since or chosen.mask.index[0], int(cash.loc[since:].sum()))} | info
    return panels, weights, info


def scored_panels(config: RunConfig, inputs: PortfolioInputs
                  ) -> tuple[dict[str, pd.DataFrame], dict[str, Any], eligibility.Eligible | None]:
    """The signal panels (only where a name may be held, under a selection), the scoring facts
    and the eligible names (None without ``--select``/``--membership``)."""
    chosen = eligibility.eligible(config, inputs.universe, inputs.news)
    since = _since(config)
    if inputs.strategy.signal_panels:
        panels, info = _signals(config, inputs, None if chosen is None else chosen.ever(since))
    else:  # nothing to score (equal_weight): no model, no headlines
        panels, info = {}, {}
    if chosen is not None:
        panels = eligibility.held_only(panels, chosen, since, inputs.universe.tradable())
    return panels, info, chosen


def weights_from(config: RunConfig, inputs: PortfolioInputs, panels: dict[str, pd.DataFrame],
                 chosen: eligibility.Eligible | None) -> tuple[pd.DataFrame, pd.Series, int]:
    """The target weights decided at each close from ``panels``, the bars that held cash for too
    few eligible names, and the most names a traded bar could hold."""
    tradable = inputs.universe.tradable()
    allowed = tradable if chosen is None else tradable & chosen.mask
    weights = inputs.strategy.target_weights(panels, allowed, inputs.params, anchor=_since(config))
    weights, cash = eligibility.apply(weights, tradable, chosen,
                                      eligibility.needed_names(inputs.params))
    traded = allowed.loc[_since(config):]
    return weights, cash, int(traded.sum(axis=1).max()) if len(traded) else 0


def _since(config: RunConfig) -> pd.Timestamp | None:
    return pd.Timestamp(config.start, tz="UTC") if config.start else None


def run_portfolio_backtest(config: RunConfig, with_benchmark: bool = True,
                           on_start: Callable[[], None] | None = None) -> PortfolioResult:
    """Run a portfolio strategy over the universe ``config.data`` (subset ``config.symbols``);
    ``on_start`` is called once its bars and headlines are loaded, before any scoring."""
    started = time.perf_counter()
    inputs = load_inputs(config)
    if on_start is not None:
        on_start()
    return _run(config, inputs, with_benchmark, started)


def run_portfolio_on(config: RunConfig, universe: Universe, news: pd.DataFrame | None,
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
    inputs = PortfolioInputs(cls, config.params, cls.signal_spec(config.params), universe, news)
    return _run(config, inputs, with_benchmark, started)


def _run(config: RunConfig, inputs: PortfolioInputs, with_benchmark: bool,
         started: float) -> PortfolioResult:
    universe, params = inputs.universe, inputs.params
    panels, weights, info = portfolio_signals(config, inputs)
    window = trade_window(universe, config.start, panels.get("selected"))
    run = simulate_window(config, window, weights, config.strategy)
    bench = None
    if with_benchmark and config.benchmark not in ("none", config.strategy) and \
            inputs.strategy is not EqualWeight:  # equal_weight would be its own benchmark
        bench = _benchmark(config, universe, window, params, panels.get("selected"))
    traded = list(window.keys())
    calendar = run.equity.index
    return PortfolioResult(
        config=config, run=run, benchmark=bench,
        panels={k: v.reindex(index=calendar, columns=traded) for k, v in panels.items()},
        weights=weights.reindex(index=calendar, columns=traded),
        opens=universe.panel("open").reindex(columns=traded).loc[calendar[0]:],
        signal_info=info, universe_info=_universe_info(universe, window, config.membership),
        seconds=time.perf_counter() - started)


def load_run_universe(config: RunConfig) -> Universe:
    """The bars of ``config.data`` (``--symbols``) from the warm-up before ``--start`` to ``--end``."""
    return _load(config, history_bars(config))


def history_bars(config: RunConfig) -> int:
    """Bars of history a portfolio run needs before ``--start`` (volatility, warm-up, decay, the
    ``--select`` look-back)."""
    cls = get_strategy(config.strategy)
    spec = cls.signal_spec(config.params)
    return _history_bars(spec, config)


def _history_bars(spec: Any, config: RunConfig) -> int:
    decay = math.ceil(spec.half_life * 10) if spec.half_life > 0 else 0
    return max(VOL_HISTORY + spec.warmup + decay, eligibility.history_bars(config))


def _load(config: RunConfig, bars: int) -> Universe:
    start = history_start(config.start, bars, config.interval)
    return load_universe(config.data, start, config.end, interval=config.interval,
                         symbols=parse_symbols(config.symbols))


def _signals(config: RunConfig, inputs: PortfolioInputs, symbols: list[str] | None):
    """Score the headlines of ``symbols`` (None: all; a selection never holds the others, and a
    symbol's scores depend on its own headlines only)."""
    from llmbt.signals_cache.universe import universe_signals

    spec = inputs.spec
    req = run_request(config, mode="headlines", half_life=spec.half_life, warmup=spec.warmup,
                      score_from=pd.Timestamp(config.start, tz="UTC") if config.start else None,
                      cache_only=inputs.cache_only)
    prices = inputs.universe.prices
    if symbols is not None:
        prices = {s: prices[s] for s in symbols}
    panels, info = universe_signals(prices, inputs.news, req)
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


def trade_window(universe: Universe, start: str | None,
            selected: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The bars to trade: from ``--start`` on (the warm-up history only feeds the signals), of
    the symbols a selection holds at some bar (the others would never trade)."""
    lo = pd.Timestamp(start, tz="UTC") if start else None
    out = {s: (bars if lo is None else bars.loc[lo:]) for s, bars in universe.prices.items()}
    if selected is not None:
        ever = (selected.loc[lo:] if lo is not None else selected) == 1
        keep = set(ever.columns[ever.to_numpy().any(axis=0)])
        out = {s: bars for s, bars in out.items() if s in keep}
    out = {s: bars for s, bars in out.items() if len(bars)}
    if not out:
        raise ConfigError(f"--start {start}: no symbol of {universe.source} has bars from then on"
                          f"{' inside the selection' if selected is not None else ''}")
    return out


def simulate_window(config: RunConfig, window: dict[str, pd.DataFrame], weights: pd.DataFrame,
              name: str) -> PortfolioRun:
    calendar = pd.DatetimeIndex(sorted(set().union(*(b.index for b in window.values()))))
    return simulate(window, weights.reindex(index=calendar, columns=list(window)),
                    cash=config.cash, commission=config.commission, slippage=config.slippage,
                    name=name)


def _benchmark(config: RunConfig, universe: Universe, window: dict[str, pd.DataFrame],
               params: PortfolioParams, selected: pd.DataFrame | None) -> PortfolioRun:
    """The equal-weight universe on the same bars, rebalance schedule, costs and selection."""
    if config.benchmark not in ("equal_weight", "buy_and_hold"):
        raise ConfigError(f"--benchmark {config.benchmark!r}: a portfolio is compared with "
                          "equal_weight (the default for portfolios) or none")
    keep = PortfolioParams(rebalance=params.rebalance, gross=params.gross)
    tradable = universe.tradable()
    chosen = None if selected is None else eligibility.Eligible(selected == 1, "")
    allowed = tradable if chosen is None else tradable & chosen.mask
    weights = EqualWeight.target_weights({}, allowed, keep, anchor=_since(config))
    weights, _ = eligibility.apply(weights, tradable, chosen, 1)
    return simulate_window(config, window, weights, "equal_weight")


def _universe_info(universe: Universe, window: dict[str, pd.DataFrame],
                   membership: str | None) -> dict[str, Any]:
    bars = sum(len(b) for b in window.values())
    info: dict[str, Any] = {"universe": f"{len(window)} symbols, {bars} symbol-bars traded "
                                        f"({universe.source})"}
    if universe.dropped:
        first = ", ".join(f"{s} {pd.Timestamp(t).date()}" for s, t, _ in universe.dropped[:3])
        info["dropped bars"] = f"{len(universe.dropped)} incomplete rows dropped ({first} ...)"
    gone = eligibility.delistings(window)
    if gone:
        info["delisted"] = eligibility.delisting_note(gone)
    survivor = eligibility.survivorship_note(window, membership)
    if survivor:
        info["survivorship"] = survivor
    return info
