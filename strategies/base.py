"""Base class for strategies whose signals are computed before the event loop.

A :class:`SignalStrategy` declares the extra columns it reads (``signal_columns``) and what must be
scored for them (:meth:`SignalStrategy.signal_spec`); the engine scores them through the signal cache
(:func:`llmbt.engine.signals.prepare_signals`), the strategy finishes them without I/O
(:meth:`SignalStrategy.finish_signals`), and the runner attaches them to the Backtrader feed as
lines. ``next()`` only *reads* those lines — it never calls a model or looks at future rows. The
bar-``t`` signal is acted on with a market order, which Backtrader fills at bar ``t+1``'s open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import backtrader as bt
import pandas as pd

from llmbt.strategies.params import StrategyParams


@dataclass(frozen=True)
class SignalSpec:
    """What a signal strategy needs scored; the run's config names the model, prompt, mode and news.

    Attributes:
        half_life: headline decay in bars (0 = off).
        warmup: scored bars the strategy needs just before ``--start`` (its look-back).
    """

    half_life: float = 0.0
    warmup: int = 0


@dataclass(frozen=True)
class SignalParams(StrategyParams):
    """What every signal strategy has: whether a negative signal goes short."""

    allow_short: bool = False


class SignalStrategy(bt.Strategy):
    """Trade a precomputed ``signal`` column: > 0 long, < 0 short (if allowed), 0 flat."""

    #: Extra feed columns this strategy reads; the runner attaches them as lines.
    signal_columns: ClassVar[tuple[str, ...]] = ("signal",)
    #: Bars before ``--start`` the signals are computed from: the bar features' 50-bar warm-up
    #: plus 150 bars for their exponential averages to settle (rounded, they then equal the
    #: features of a full history, so prompts and cached scores do not depend on it).
    history_bars: ClassVar[int] = 200
    Params: ClassVar[type[StrategyParams]] = SignalParams
    params = SignalParams.bt_params()

    @classmethod
    def warmup_bars(cls, params: StrategyParams) -> int:
        """Bars of history to load before ``--start``: :attr:`history_bars` plus the
        strategy's ``lookback`` parameter when it has one."""
        return cls.history_bars + (getattr(params, "lookback", 0) or 0)

    @classmethod
    def signal_spec(cls, params: StrategyParams) -> SignalSpec:
        """What the engine scores for this run before the loop (default: plain scores).

        Args:
            params: the run's typed parameters (:attr:`Params`).
        """
        return SignalSpec()

    @classmethod
    def finish_signals(cls, frame: pd.DataFrame, params: StrategyParams) -> pd.DataFrame:
        """The columns ``next()`` reads, from the scored ones (pure: no model, no I/O).

        Args:
            frame: ``score``, ``confidence`` and ``vol`` per bar, indexed like the prices.
            params: the run's typed parameters (:attr:`Params`).
        """
        return frame

    def target_direction(self) -> int:
        """Wanted position sign for this bar: read ``signal`` only."""
        sig = self.data.signal[0]
        if sig != sig:  # NaN: no signal yet
            return 0
        if sig > 0:
            return 1
        return -1 if (sig < 0 and self.p.allow_short) else 0

    def next(self) -> None:
        want = self.target_direction()
        have = (self.position.size > 0) - (self.position.size < 0)
        if want == have:
            return
        if have != 0:
            self.close()
        if want > 0:
            self.buy()
        elif want < 0:
            self.sell()
