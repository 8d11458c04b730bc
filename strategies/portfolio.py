"""Portfolio strategies: target weights for many symbols, computed before the event loop.

A :class:`PortfolioStrategy` turns signal panels (calendar × symbols: ``score``, ``confidence``,
``vol``) into a calendar × symbols frame of target weights, decided at each bar's close, with
:meth:`PortfolioStrategy.target_weights` — pure, vectorisable, no I/O and no look-ahead (row *t*
reads rows ≤ *t* only). The engine (:mod:`llmbt.engine.portfolio`) puts each symbol's weights on its
feed as a ``weight`` line; :meth:`PortfolioStrategy.next` only reads that line and places
``order_target_percent`` orders, which Backtrader fills at each symbol's next bar open.

A weight is NaN where no order is wanted (not a rebalance bar, or the symbol has no bar then) and a
number (0 = flat) where the position is brought to that fraction of the portfolio value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import backtrader as bt
import numpy as np
import pandas as pd

from llmbt.errors import ConfigError
from llmbt.strategies.base import SignalSpec
from llmbt.strategies.construction import Book, cap_turnover, hold_long
from llmbt.strategies.portfolio_params import LlmNewsPortfolioParams, PortfolioParams
from llmbt.strategies.registry import register


class PortfolioStrategy(bt.Strategy):
    """Hold each feed (one per symbol) at the target weight on its ``weight`` line.

    Subclasses decide the weights of one rebalance bar in :meth:`row_weights`; everything else
    (the rebalance schedule, NaN where a symbol has no bar, the loop) is shared.
    """

    #: Signal panels :meth:`target_weights` reads (the engine scores them before the loop).
    signal_panels: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[PortfolioParams]] = PortfolioParams
    params = PortfolioParams.bt_params()

    @classmethod
    def signal_spec(cls, params: PortfolioParams | Mapping) -> SignalSpec:
        """What the engine scores before the loop (default: nothing decayed, no warm-up)."""
        return SignalSpec()

    @classmethod
    def target_weights(cls, signals: Mapping[str, pd.DataFrame], tradable: pd.DataFrame,
                       params: PortfolioParams | Mapping, anchor: pd.Timestamp | None = None) -> pd.DataFrame:
        """Target weights decided at each bar's close (calendar × symbols, like ``tradable``).

        Args:
            signals: panels by name (``score``, ``confidence``, ``vol``); reindexed to ``tradable``
                (dates or symbols they lack are NaN).
            tradable: bool panel, True where the symbol has a bar.
            params: the run's typed parameters (:attr:`Params`), used as they are; a mapping of
                ``--param`` values is made into them first (:meth:`StrategyParams.of`).
            anchor: the first traded bar (``--start``): rebalances fall every ``rebalance`` bars
                counted from it, so the schedule does not depend on how much warm-up history was
                loaded before it (None: from the first row).

        Returns:
            NaN = no order for that symbol at that bar; a number = the target fraction of the
            portfolio value (0 = flat). Row *t* depends on rows ≤ *t* only.

        Raises:
            ConfigError: a bad parameter or a missing panel, naming the ``--param`` and the fix.
        """
        p = cls.Params.of(params)
        ok = tradable.fillna(False).astype(bool)
        panels = {name: _aligned(signals, name, ok) for name in cls.signal_panels if name in signals}
        cls.check_panels(panels, p)
        rank = np.argsort(np.argsort(np.asarray(ok.columns.astype(str))))  # tie-break by symbol
        out = np.full(ok.shape, np.nan)
        trade = ok.to_numpy()
        state: dict = {}  # what a rebalance leaves to the next (the holdings), in bar order
        first = 0 if anchor is None else int(ok.index.searchsorted(anchor))
        for i in range(first % p.rebalance, len(ok), p.rebalance):
            row = {name: panel[i] for name, panel in panels.items()}
            state["bar"] = i
            out[i] = cls.row_weights(row, trade[i], rank, p, state)
        return pd.DataFrame(out, index=ok.index, columns=ok.columns)

    @classmethod
    def check_panels(cls, panels: Mapping[str, np.ndarray], params: PortfolioParams) -> None:
        """Refuse a run whose ``params`` need a panel that ``panels`` lacks (default: none needed)."""

    @classmethod
    def structural_note(cls, params: PortfolioParams | Mapping, most_names: int) -> str:
        """A sentence when, by construction, the scores cannot change what is held ('' when they
        can); ``most_names``: the most names with a bar (and selected) at any traded bar."""
        return ""

    @classmethod
    def row_weights(cls, panels: Mapping[str, np.ndarray], tradable: np.ndarray, rank: np.ndarray,
                    params: PortfolioParams, state: dict | None = None) -> np.ndarray:
        """The weights of one rebalance bar (NaN where not tradable, or all NaN to skip it).

        Args:
            panels: each signal panel's row at this bar, as float arrays.
            tradable: which symbols have a bar now.
            rank: each symbol's position in name order (for deterministic ties).
            params: the typed parameters.
            state: carried from one rebalance to the next (``bar``: this bar's position; the
                subclass keeps its holdings here); None for a bar decided alone.
        """
        raise NotImplementedError

    def start(self) -> None:
        """Keep each feed with its ``datetime``, ``weight`` and ``delist`` lines (read every bar)."""
        self._feeds = [(data, data.lines.datetime, data.lines.weight,
                        getattr(data.lines, "delist", None)) for data in self.datas]

    def prenext(self) -> None:
        """A symbol that starts later must not hold the others back: act on every bar."""
        self.next()

    def next(self) -> None:
        """Read each feed's ``weight`` (only feeds with a bar now) and order toward it: every
        reduction first, then the increases, so freed cash pays for the buys. A feed's last bar
        before the run ends (``delist`` = 1) closes its position at that bar's close."""
        now, value = self.datetime[0], self.broker.getvalue()
        sells, buys = [], []
        for data, clock, line, delist in self._feeds:
            if not len(clock) or clock[0] != now:
                continue  # no bar for this symbol at this step: nothing to trade
            if delist is not None and delist[0] == 1.0:
                if self.broker.getposition(data).size:
                    self.close(data, coc=True)  # at this close: the symbol has no next bar
                continue
            weight = line[0]
            if weight != weight:  # NaN: no order wanted
                continue
            pos = self.broker.positions.get(data)
            held = pos.size * data.close[0] if pos else 0.0
            if weight == 0.0 and held == 0.0:
                continue
            (sells if weight * value < held else buys).append((data, weight))
        for data, weight in sells + buys:
            self.order_target_percent(data, target=weight, coc=False)  # fills at the next open


@register("equal_weight")
class EqualWeight(PortfolioStrategy):
    """The benchmark: ``gross`` split equally over every symbol that has a bar at each rebalance
    (every ``rebalance`` bars of the union calendar); symbols without a bar then are left as they
    are until they have one at a rebalance."""

    @classmethod
    def row_weights(cls, panels: Mapping[str, np.ndarray], tradable: np.ndarray, rank: np.ndarray,
                    params: PortfolioParams, state: dict | None = None) -> np.ndarray:
        """``gross / N`` for each of the ``N`` tradable symbols."""
        n = int(tradable.sum())
        return np.where(tradable, params.gross / n if n else np.nan, np.nan)


@register("llm_news_portfolio")
class LlmNewsPortfolio(PortfolioStrategy):
    """Rank the universe by decayed headline sentiment at each rebalance and hold the best names.

    At every ``rebalance``-th bar of the union calendar, the names that have a bar, a finite
    ``score`` and ``confidence >= min_confidence`` are ranked by score (ties by symbol name). Long
    the ``top_k`` (or, with ``entry`` set, every name with ``score >= entry``); short the
    ``bottom_k`` lowest (with ``entry``: every name ``<= -entry`` when ``bottom_k > 0`` or
    ``allow_short``). Raw weights are equal, the confidence, or 1 / ``vol`` (``weighting``); they
    are scaled to ``gross``, each capped at ``max_weight`` (the excess stays in cash), and the
    larger side is cut so that ``|sum w| <= net``. Names not selected get 0 (closed). A rebalance
    with fewer than ``min_names`` ranked names is skipped (positions kept). ``half_life`` is the
    headline decay in bars, applied by the scorer.

    Turnover (:mod:`~llmbt.strategies.construction`): ``n_drop``, ``band``, ``min_hold``,
    ``max_turnover``. The defaults, every 5 bars (the 5-bar label horizon the walk-forward LoRA is
    trained on) with ``band=10``, were chosen on turnover alone on the shared 2013-2016 S&P 500
    data (the point-in-time 30-name universe): 8.5 % a day against 49.6 % for the daily full
    re-rank (``rebalance=1, band=0``), and the smallest band at that schedule under 10 %.
    """

    signal_panels = ("score", "confidence", "vol")
    Params = LlmNewsPortfolioParams
    params = LlmNewsPortfolioParams.bt_params()

    @classmethod
    def signal_spec(cls, params: LlmNewsPortfolioParams | Mapping) -> SignalSpec:
        """Headline decay ``half_life``; warm-up: 5 half-lives of scored bars before ``--start``
        (an older headline keeps under 1/32 of its weight)."""
        p = cls.Params.of(params)
        return SignalSpec(half_life=p.half_life, warmup=math.ceil(5 * p.half_life))

    @classmethod
    def check_panels(cls, panels: Mapping[str, np.ndarray], params: LlmNewsPortfolioParams) -> None:
        """``score`` always; ``confidence`` for min_confidence > 0 or confidence weighting;
        ``vol`` for inverse_vol weighting."""
        need = {"score": "ranking"}
        if params.min_confidence > 0 or params.weighting == "confidence":
            need["confidence"] = "min_confidence/weighting=confidence"
        if params.weighting == "inverse_vol":
            need["vol"] = "weighting=inverse_vol"
        for name, why in need.items():
            if name not in panels:
                raise ConfigError(f"llm_news_portfolio needs a {name!r} signal panel for {why}; "
                                  f"got panels {sorted(panels)}. Score the universe first or change "
                                  "--param weighting / --param min_confidence.")

    @classmethod
    def structural_note(cls, params: LlmNewsPortfolioParams | Mapping, most_names: int) -> str:
        """Long-only ranking (no ``entry``, no shorts, no confidence weighting or floor) with
        ``top_k`` at least every name: each rebalance holds every name, whatever the scores."""
        p = cls.Params.of(params)
        if (p.entry is not None or p.bottom_k or p.weighting == "confidence"
                or p.min_confidence > 0 or p.top_k < most_names):
            return ""
        return (f"the scores cannot change the holdings: top_k={p.top_k} >= the {most_names} "
                "names with a bar, so every rebalance holds every name and any difference between "
                "scorers is structural (zero), not evidence; lower --param top_k or widen the universe")

    @classmethod
    def row_weights(cls, panels: Mapping[str, np.ndarray], tradable: np.ndarray, rank: np.ndarray,
                    params: PortfolioParams, state: dict | None = None) -> np.ndarray:
        """Rank, select (with the turnover rules of :mod:`~llmbt.strategies.construction`),
        weigh and cap one rebalance bar (all NaN when it is skipped)."""
        score, base, ok = panels["score"], _base_weights(panels, params), tradable.copy()
        ok &= np.isfinite(score) & np.isfinite(base)
        if "confidence" in panels and params.min_confidence > 0:
            ok &= panels["confidence"] >= params.min_confidence
        if ok.sum() < max(params.min_names, 1):
            return np.full(len(tradable), np.nan)
        state = {"bar": 0} if state is None else state
        book = state.setdefault("book", Book())
        longs, shorts, order = _select(score, ok, rank, params, book, state["bar"])
        raw = np.zeros(len(tradable))
        raw[longs], raw[shorts] = base[longs], -base[shorts]
        weights = _scaled(raw, params)
        if params.max_turnover is not None:
            weights = _capped(weights, order, book, params, state["bar"])
        book.weights = weights
        return np.where(tradable, weights, np.nan)


def _select(score: np.ndarray, ok: np.ndarray, rank: np.ndarray, p: LlmNewsPortfolioParams, book: Book,
            bar: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the longs and shorts among the ``ok`` names (ties: symbol name order), and the
    ranking (best first)."""
    idx = np.flatnonzero(ok)
    best = idx[np.lexsort((rank[idx], -score[idx]))]
    if p.entry is not None:
        shorting = p.bottom_k > 0 or p.allow_short
        shorts = idx[score[idx] <= -p.entry] if shorting else idx[:0]
        return idx[score[idx] >= p.entry], shorts, best
    longs = np.asarray(hold_long(best, ok, book, bar, p), dtype=np.int64)
    rest = idx[np.lexsort((rank[idx], score[idx]))]
    return longs, rest[~np.isin(rest, longs)][: p.bottom_k], best


def _capped(weights: np.ndarray, order: np.ndarray, book: Book, p: LlmNewsPortfolioParams,
            bar: int) -> np.ndarray:
    """The trades that fit ``max_turnover``, best first; the book keeps what is really held."""
    old = book.weights if book.weights is not None else np.zeros(len(weights))
    priority = np.full(len(weights), -np.inf)
    priority[order] = -np.arange(len(order), dtype=float)
    out = cap_turnover(old, weights, priority, p.max_turnover)
    held = {int(j) for j in np.flatnonzero(out > 0)}
    book.since = {j: book.since.get(j, bar) for j in held}
    return out


def _base_weights(panels: Mapping[str, np.ndarray], p: LlmNewsPortfolioParams) -> np.ndarray:
    """Unsigned raw weight per name: 1, the confidence or 1 / vol (NaN/inf where undefined)."""
    if p.weighting == "confidence":
        return panels["confidence"].astype(float)
    if p.weighting == "inverse_vol":
        vol = panels["vol"].astype(float)
        return np.divide(1.0, vol, out=np.full(len(vol), np.nan), where=vol > 0)
    return np.ones(len(panels["score"]))


def _scaled(raw: np.ndarray, p: LlmNewsPortfolioParams) -> np.ndarray:
    """Scale to ``gross``, cap each name at ``max_weight``, cut the larger side to ``net``."""
    total = np.abs(raw).sum()
    if total == 0:
        return raw
    w = np.clip(raw / total * p.gross, -p.max_weight, p.max_weight)
    longs, shorts = w[w > 0].sum(), -w[w < 0].sum()
    if longs - shorts > p.net:
        w[w > 0] *= (p.net + shorts) / longs
    elif shorts - longs > p.net:
        w[w < 0] *= (p.net + longs) / shorts
    return w


def _aligned(signals: Mapping[str, pd.DataFrame], name: str, like: pd.DataFrame) -> np.ndarray:
    """Panel ``name`` on ``like``'s calendar and symbols, as a float array (missing = NaN)."""
    return signals[name].reindex(index=like.index, columns=like.columns).to_numpy(dtype=float)
