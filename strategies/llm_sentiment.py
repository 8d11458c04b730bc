"""``llm_sentiment``: trade the language model's score, computed for every bar before the loop.

``score`` = P(bullish) − P(bearish) ∈ [−1, 1], ``confidence`` = max label probability. Both are
columns on the feed, scored by the engine (:func:`llmbt.engine.signals.prepare_signals`) as
:meth:`LlmSentiment.signal_spec` asks, before ``cerebro.run()``; ``next()`` only reads them. A
signal at bar *t* is traded at bar *t+1*'s open.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from llmbt.errors import ConfigError
from llmbt.strategies.base import SignalParams, SignalSpec, SignalStrategy
from llmbt.strategies.params import choice, number
from llmbt.strategies.registry import register

SIZINGS = ("fixed", "confidence", "vol_target", "kelly")
NORMALIZE = ("zscore", "none")


def zscore_score(score: pd.Series, lookback: int) -> pd.Series:
    """Score relative to its own trailing ``lookback`` values (causal), mapped to [-1, 1] as z/2.

    An untuned model is often biased (e.g. always "bullish"); its *changes* can still carry signal.
    Uses only scores up to each bar (rolling window, no centring).
    """
    seen = score.dropna()
    roll = seen.rolling(lookback, min_periods=max(5, lookback // 3))
    z = (seen - roll.mean()) / roll.std().replace(0.0, float("nan"))
    return (z / 2).clip(-1, 1).reindex(score.index)


@dataclass(frozen=True)
class LlmSentimentParams(SignalParams):
    """``llm_sentiment``'s parameters (see :class:`LlmSentiment`), with its rules: ``-1 <= exit
    <= entry <= 1``, ``min_confidence`` and ``kelly_fraction`` fractions, the risk limits and
    ``half_life`` not negative, ``vol_target`` positive and a z-score ``lookback`` of 5 bars or more."""

    entry: float = 0.25
    exit: float = 0.0
    min_confidence: float = 0.4
    sizing: str = "fixed"
    vol_target: float = 0.15
    kelly_fraction: float = 0.5
    stop_loss: float = 0.0
    take_profit: float = 0.0
    max_hold: int = 0
    half_life: float = 0.0
    normalize: str = "zscore"
    lookback: int = 60

    def __post_init__(self) -> None:
        super().__post_init__()
        choice("sizing", self.sizing, SIZINGS)
        if self.normalize not in NORMALIZE:
            raise ConfigError(f"--param normalize={self.normalize!r} must be zscore or none")
        if not -1 <= self.exit <= self.entry <= 1:
            raise ConfigError(f"llm_sentiment needs -1 <= exit <= entry <= 1, got entry={self.entry} "
                              f"exit={self.exit}: e.g. --param entry=0.2 --param exit=0")
        for key in ("min_confidence", "kelly_fraction"):
            if number(key, getattr(self, key), 0.0, f"e.g. --param {key}=0.5") > 1:
                raise ConfigError(f"--param {key}={getattr(self, key)!r} must be in [0, 1]")
        for key in ("stop_loss", "take_profit", "max_hold", "half_life"):
            number(key, getattr(self, key), 0.0, f"0 = off, e.g. --param {key}=0")
        if not self.vol_target > 0:
            raise ConfigError(f"--param vol_target={self.vol_target!r} must be > 0, e.g. 0.15")
        if self.normalize == "zscore" and self.lookback < 5:
            raise ConfigError(f"--param lookback={self.lookback} must be at least 5 bars for "
                              "normalize=zscore, e.g. --param lookback=60")


@register("llm_sentiment")
class LlmSentiment(SignalStrategy):
    """Enter when the score passes ``entry`` with enough confidence; exit when it falls to ``exit``.

    Params:
        entry: score needed to open a long (−entry to open a short when ``allow_short``).
        exit: a long is closed when the score drops below this (a short when it rises above −exit).
        min_confidence: signals with lower confidence are ignored (position kept).
        normalize: ``zscore`` (default) trades the score relative to its trailing ``lookback`` bars
            (z/2 clipped to [−1, 1]), which removes a biased model's constant tilt; ``none`` trades
            the raw score.
        sizing: fixed (the run's sizer %), confidence (× confidence), vol_target (× target / realised
            vol), kelly (× fractional Kelly from the returns of closed trades, see
            :func:`kelly_size`).
        stop_loss, take_profit: fractions of the entry price (0 = off), checked at each close.
        max_hold: close after this many bars (0 = off). half_life: headline decay in bars (0 = off).
    """

    signal_columns = ("score", "confidence", "vol")
    Params = LlmSentimentParams
    params = LlmSentimentParams.bt_params()

    @classmethod
    def signal_spec(cls, params: LlmSentimentParams) -> SignalSpec:
        """Headline decay, and the z-score's ``lookback`` as scored bars before ``--start``."""
        warmup = params.lookback if params.normalize == "zscore" else 0
        return SignalSpec(half_life=float(params.half_life), warmup=warmup)

    @classmethod
    def finish_signals(cls, frame: pd.DataFrame, params: LlmSentimentParams) -> pd.DataFrame:
        """``normalize=zscore``: the score relative to its trailing ``lookback`` bars."""
        if params.normalize == "zscore":
            frame["score"] = zscore_score(frame["score"], params.lookback)
        return frame

    def __init__(self) -> None:
        self.trade_returns: list[float] = []  # net P&L / entry value of each closed trade
        self._entry_values: dict[int, float] = {}
        self.entry_bar, self.entry_price = 0, 0.0

    def notify_trade(self, trade) -> None:
        if trade.justopened:
            self._entry_values[trade.ref] = abs(trade.size * trade.price)
        if trade.isclosed:
            value = self._entry_values.pop(trade.ref, 0.0)
            if value > 0:
                self.trade_returns.append(trade.pnlcomm / value)

    def notify_order(self, order) -> None:
        if order.status == order.Completed and self.position.size != 0:
            self.entry_bar, self.entry_price = len(self), self.position.price

    def next(self) -> None:
        if self.position and self._risk_exit():
            self.close()
            return
        score, conf = self.data.score[0], self.data.confidence[0]
        if math.isnan(score) or math.isnan(conf) or conf < self.p.min_confidence:
            return  # no (trusted) news: keep the position
        size = self.position.size
        if size > 0 and score < self.p.exit or size < 0 and score > -self.p.exit:
            self.close()
            size = 0
        if size == 0 and score >= self.p.entry:
            self._open(+1, conf)
        elif size == 0 and self.p.allow_short and score <= -self.p.entry:
            self._open(-1, conf)

    def _risk_exit(self) -> bool:
        held = len(self) - self.entry_bar
        if self.p.max_hold and held >= self.p.max_hold:
            return True
        change = self.data.close[0] / self.entry_price - 1.0 if self.entry_price else 0.0
        change *= 1 if self.position.size > 0 else -1
        return bool(self.p.stop_loss and change <= -self.p.stop_loss
                    or self.p.take_profit and change >= self.p.take_profit)

    def _open(self, direction: int, conf: float) -> None:
        base = self.getsizer().getsizing(self.data, isbuy=direction > 0)
        units = int(base * self._scale(conf))
        if units > 0:
            (self.buy if direction > 0 else self.sell)(size=units)

    def _scale(self, conf: float) -> float:
        """Fraction of the run's sizer amount to use, by the ``sizing`` rule."""
        if self.p.sizing == "confidence":
            return conf
        if self.p.sizing == "vol_target":
            vol = self.data.vol[0]
            return 1.0 if math.isnan(vol) or vol <= 0 else min(1.0, self.p.vol_target / vol)
        if self.p.sizing == "kelly":
            return self._kelly()
        return 1.0

    def _kelly(self) -> float:
        return kelly_size(self.trade_returns, self.p.kelly_fraction)


def kelly_size(returns: Sequence[float], fraction: float) -> float:
    """Fractional Kelly share of the sizer amount from per-trade returns (fractions of entry value).

    With win probability ``p`` (Beta(1,1) prior: (wins + 1) / (wins + losses + 2)), mean winning
    return ``W`` and mean losing return ``L`` (both positive), the growth-optimal bet is
    ``f = p/L - (1-p)/W``; the result is ``fraction * f`` clipped to [0, 1]. Flat trades are
    ignored; with fewer than 5 wins + losses, or none of either, it is ``fraction / 2``.
    """
    wins = [r for r in returns if r > 0]
    losses = [-r for r in returns if r < 0]
    if len(wins) + len(losses) < 5 or not wins or not losses:
        return fraction * 0.5  # too little history: half the fraction
    p = (len(wins) + 1) / (len(wins) + len(losses) + 2)
    f = p / (sum(losses) / len(losses)) - (1 - p) / (sum(wins) / len(wins))
    return max(0.0, min(1.0, fraction * f))
