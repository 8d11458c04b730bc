"""Baseline strategies: ``buy_and_hold`` and ``sma_cross``."""

from __future__ import annotations

from dataclasses import dataclass

import backtrader as bt

from llmbt.errors import ConfigError
from llmbt.strategies.params import StrategyParams
from llmbt.strategies.registry import register


@dataclass(frozen=True)
class SmaCrossParams(StrategyParams):
    """``sma_cross``: the fast and slow SMA periods (bars), and whether a cross below goes short."""

    fast: int = 10
    slow: int = 30
    allow_short: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.fast < self.slow:
            raise ConfigError(f"sma_cross needs 0 < --param fast < --param slow, got fast={self.fast} "
                              f"slow={self.slow}: e.g. --param fast=10 --param slow=30")


@register("buy_and_hold")
class BuyAndHold(bt.Strategy):
    """Buy once on the first bar (filled at the second bar's open) and hold to the end; a buy the
    broker rejects (e.g. a gap above the cash) is placed again on the next bar."""

    Params = StrategyParams
    params = StrategyParams.bt_params()

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Margin, order.Rejected):
            self._ordered = False

    def next(self) -> None:
        if not self.position and not getattr(self, "_ordered", False):
            self._ordered = True
            self.buy()


@register("sma_cross")
class SmaCross(bt.Strategy):
    """Long when the fast SMA of closes crosses above the slow SMA; flat when it crosses below.

    Signals use closes up to the current bar; orders fill at the next bar's open.
    """

    Params = SmaCrossParams
    params = SmaCrossParams.bt_params()

    @classmethod
    def min_bars(cls, params: SmaCrossParams) -> tuple[int, str]:
        """Bars needed before the first crossover can be seen, and why."""
        return params.slow + 1, f"slow={params.slow} bars for the slow SMA + 1 for the crossover"

    def __init__(self) -> None:
        fast = bt.ind.SMA(self.data.close, period=self.p.fast)
        slow = bt.ind.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.ind.CrossOver(fast, slow)

    def next(self) -> None:
        if self.cross[0] > 0:
            if self.position.size < 0:
                self.close()
            if self.position.size <= 0:
                self.buy()
        elif self.cross[0] < 0:
            if self.position.size > 0:
                self.close()
            if self.p.allow_short and self.position.size >= 0:
                self.sell()
