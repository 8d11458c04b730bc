"""Analyzers that record plain per-bar and per-trade data for the result object."""

from __future__ import annotations

import backtrader as bt


class EquityCurve(bt.Analyzer):
    """Portfolio value and exposure at each bar's close (after that bar's fills)."""

    def start(self) -> None:
        self.times: list = []
        self.values: list[float] = []
        self.exposure: list[float] = []

    def next(self) -> None:
        value = self.strategy.broker.getvalue()
        pos = self.strategy.position
        self.times.append(self.data.datetime.datetime(0))
        self.values.append(value)
        self.exposure.append(pos.size * self.data.close[0] / value if value else 0.0)

    def get_analysis(self) -> dict:
        return {"times": self.times, "values": self.values, "exposure": self.exposure}


class TradeLog(bt.Analyzer):
    """Every closed trade: entry/exit time and price, size, gross and net profit."""

    def start(self) -> None:
        self.trades: list[dict] = []
        self._open_size: dict[int, float] = {}

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.justopened:
            self._open_size[trade.ref] = float(trade.size)
        if not trade.isclosed:
            return
        self.trades.append({
            "entry_time": bt.num2date(trade.dtopen).isoformat(),
            "exit_time": bt.num2date(trade.dtclose).isoformat(),
            "entry_price": float(trade.price),
            "size": self._open_size.pop(trade.ref, float("nan")),
            "bars": int(trade.barlen),
            "pnl": float(trade.pnl),
            "pnl_net": float(trade.pnlcomm),
        })

    def get_analysis(self) -> dict:
        return {"trades": self.trades}


class Rejections(bt.Analyzer):
    """Orders the broker refused: Margin (cash short at the fill price) or Rejected."""

    def start(self) -> None:
        self.orders: list[dict] = []

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Margin, order.Rejected):
            self.orders.append({"time": self.data.datetime.datetime(0).isoformat(),
                                "status": order.getstatusname(), "size": float(order.created.size)})

    def get_analysis(self) -> dict:
        return {"orders": self.orders}
