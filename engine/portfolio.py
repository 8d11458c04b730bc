"""The portfolio event loop: one Backtrader feed per symbol, trading precomputed target weights.

Data flow: prices (one normalised frame per symbol; a missing bar is an absent row) and a calendar ×
symbols frame of target weights (:meth:`llmbt.strategies.portfolio.PortfolioStrategy.target_weights`)
→ one :class:`WeightFeed` per symbol carrying its bars and its ``weight`` line → the strategy's
``next()`` reads the weights of the feeds that have a bar now and calls ``order_target_percent``
(reductions first) → market orders fill at each symbol's next bar open → :class:`PortfolioRun`.

A symbol is traded only at its own bars: its orders wait for its next bar (Backtrader fills a market
order only once its feed has a bar after the order's, so a halt does not fill at a stale price; a
test checks it), and a symbol that starts later does not hold the others back. A symbol whose bars
end before the calendar's last bar (a delisting, a merger) is closed at its last bar's close (its
feed's ``delist`` line is 1 there): no position is carried at a stale price.
"""

from __future__ import annotations

import array
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import backtrader as bt
import numpy as np
import pandas as pd

from llmbt.engine.metrics import positive, sharpe_ratio
from llmbt.errors import DataError
from llmbt.feeds.calendar import periods_per_year
from llmbt.strategies.portfolio import PortfolioStrategy

PRICE_LINES = ("open", "high", "low", "close", "volume")


@dataclass
class PortfolioRun:
    """What :func:`simulate` returns: plain pandas data, no Backtrader objects.

    Attributes:
        returns: per-step simple returns of the portfolio value (union calendar).
        equity: portfolio value at each step's close, after that step's fills.
        fills: one row per executed order: timestamp, symbol, size, price, value, commission.
        contributions: per symbol (index): pnl (net of commission, marked at its last close),
            commission, fills, share (of the total pnl); ``pnl`` sums to final value − cash.
        stats: final_value, total_return, sharpe, max_drawdown, fills, turnover, exposure,
            rejected_orders, bars, symbols, loop_seconds.
        seconds: wall time of the whole call.
    """

    returns: pd.Series
    equity: pd.Series
    fills: pd.DataFrame
    contributions: pd.DataFrame
    stats: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


class WeightFeed(bt.feeds.DataBase):
    """A feed preloaded in one step from numpy arrays (``arrays``: datetime as ``bt.date2num`` of
    naive UTC, open … volume, weight); no per-bar parsing, unlike ``bt.feeds.PandasData``.

    Stepping is trimmed for speed: :meth:`advance` moves the line indices without filling the
    ``tick_*`` attributes (bars are whole; the broker then reads ``open[0]``), and
    :meth:`advance_peek` reads the next datetime straight from its buffer.
    """

    lines = ("weight", "delist")
    params = (("arrays", None),)

    def preload(self) -> None:
        """Fill every line's buffer from ``arrays`` and rewind to before the first bar."""
        self._n = len(self.p.arrays["datetime"])
        self._buffers = [getattr(self.lines, name) for name in self.lines.getlinealiases()]
        for name, line in zip(self.lines.getlinealiases(), self._buffers, strict=True):
            buf = array.array("d")
            values = self.p.arrays.get(name, np.zeros(self._n))
            buf.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
            line.array = buf
        self._dt = self.lines.datetime
        self.home()

    def advance(self, size: int = 1, datamaster=None, ticks: bool = True) -> None:
        """Next bar: every line's index forward by ``size`` (no resampling, no ticks)."""
        for line in self._buffers:
            line._idx += size
            line.lencount += size

    def advance_peek(self) -> float:
        """The next bar's datetime, or +inf after the last bar."""
        dt = self._dt
        return dt.array[dt._idx + 1] if dt.lencount < self._n else float("inf")

    def _load(self) -> bool:
        return False  # everything comes from preload()


class StepLog(bt.Analyzer):
    """Portfolio value at every step (after its fills), every fill and every refused order."""

    def start(self) -> None:
        self.times: list[float] = []
        self.values: list[float] = []
        self.fills: list[tuple] = []
        self.rejected: list[tuple] = []

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:  # one row per execution bit, at its own price
            self.fills += [(bit.dt, order.data._name, bit.size, bit.price,
                            bit.closedcomm + bit.openedcomm) for bit in order.executed.exbits]
        elif order.status in (order.Margin, order.Rejected):
            self.rejected.append((self.strategy.datetime[0], order.data._name, order.created.size))

    def next(self) -> None:  # prenext calls next: one row per step from the first bar
        self.times.append(self.strategy.datetime[0])
        self.values.append(self.strategy.broker.getvalue())


def simulate(prices: Mapping[str, pd.DataFrame], weights: pd.DataFrame, *, cash: float,
             commission: float, slippage: float = 0.0, name: str = "portfolio") -> PortfolioRun:
    """Run the Backtrader loop over one feed per symbol, trading toward ``weights``.

    Args:
        prices: normalised frames by symbol (UTC index, float open/high/low/close/volume); a
            missing bar is an absent row.
        weights: calendar × symbols target weights decided at each close (NaN = no order). A
            weight on a date the symbol has no bar is ignored; symbols absent here are not traded.
        cash: starting cash.
        commission: fraction of traded value per fill.
        slippage: fraction of price per fill (buys higher, sells lower), applied at the open.
        name: name of the returns series.

    Raises:
        DataError: no prices, or weights for symbols that have no prices.
    """
    started = time.perf_counter()
    _check_inputs(prices, weights, cash, commission, slippage)
    calendar = union_calendar(prices)
    cerebro = _cerebro(cash, commission, slippage)
    for symbol, frame in prices.items():
        cerebro.adddata(_feed(frame, weights, symbol, calendar), name=symbol)
    loop_started = time.perf_counter()
    log = cerebro.run()[0].analyzers.steplog
    loop_seconds = time.perf_counter() - loop_started
    run = _result(prices, log, calendar, cash, name)
    run.stats.update(loop_seconds=loop_seconds, rejected_orders=float(len(log.rejected)),
                     peak_rss_mib=peak_rss_mib())
    run.seconds = time.perf_counter() - started
    return run


def union_calendar(prices: Mapping[str, pd.DataFrame]) -> pd.Series:
    """Every timestamp of any symbol, sorted, mapped to its ``bt.date2num`` (naive UTC) value."""
    stamps = pd.DatetimeIndex(np.unique(np.concatenate(
        [f.index.tz_convert("UTC").tz_localize(None).to_numpy() for f in prices.values()])),
        name="timestamp").tz_localize("UTC")
    nums = [bt.date2num(ts.to_pydatetime()) for ts in stamps.tz_localize(None)]
    return pd.Series(nums, index=stamps, dtype=float)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _check_inputs(prices: Mapping[str, pd.DataFrame], weights: pd.DataFrame, cash: float,
                  commission: float, slippage: float) -> None:
    if not prices:
        raise DataError("simulate needs prices for at least one symbol; got none.")
    unknown = sorted(set(map(str, weights.columns)) - set(prices))
    if unknown:
        raise DataError(f"weights name symbols without prices: {', '.join(unknown[:5])}"
                        f"{' …' if len(unknown) > 5 else ''}; drop them or load their prices.")
    positive(cash, "cash")
    if not (commission >= 0 and slippage >= 0):
        raise DataError(f"commission ({commission!r}) and slippage ({slippage!r}) must be numbers "
                        ">= 0, e.g. 0.001 for 0.1 %.")


def _cerebro(cash: float, commission: float, slippage: float) -> bt.Cerebro:
    cerebro = bt.Cerebro(stdstats=False, preload=True, runonce=True, cheat_on_open=False)
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=commission)
    cerebro.broker.set_coc(True)  # only for orders that ask (a delisting's close); others: next open
    if slippage:
        cerebro.broker.set_slippage_perc(slippage, slip_open=True, slip_match=True)
    cerebro.addstrategy(PortfolioStrategy)
    cerebro.addanalyzer(StepLog, _name="steplog")
    return cerebro


def _feed(frame: pd.DataFrame, weights: pd.DataFrame, symbol: str, calendar: pd.Series) -> WeightFeed:
    arrays = {line: frame[line].to_numpy(dtype=np.float64) for line in PRICE_LINES}
    arrays["datetime"] = calendar.reindex(frame.index).to_numpy()
    column = weights[symbol] if symbol in weights.columns else None
    arrays["weight"] = (column.reindex(frame.index).to_numpy(dtype=np.float64) if column is not None
                        else np.full(len(frame), np.nan))
    arrays["delist"] = np.zeros(len(frame))
    if len(frame) and frame.index[-1] < calendar.index[-1]:
        arrays["delist"][-1] = 1.0  # its last bar, before the run's: close there
    return WeightFeed(arrays=arrays)


def _result(prices: Mapping[str, pd.DataFrame], log: StepLog, calendar: pd.Series, cash: float,
            name: str) -> PortfolioRun:
    stamp = pd.Series(calendar.index, index=calendar.to_numpy())
    equity = pd.Series(log.values, index=pd.DatetimeIndex(stamp.loc[log.times]), name="equity")
    returns = (equity / equity.shift(1).fillna(cash) - 1.0).rename(name)
    fills = _fills(log.fills, stamp)
    last_close = pd.Series({s: float(f["close"].iloc[-1]) for s, f in prices.items() if len(f)})
    contributions = _contributions(fills, last_close)
    stats = _stats(prices, fills, equity, returns, cash)
    return PortfolioRun(returns, equity, fills, contributions, stats)


def _fills(rows: list[tuple], stamp: pd.Series) -> pd.DataFrame:
    cols = ["timestamp", "symbol", "size", "price", "value", "commission"]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    frame = pd.DataFrame(rows, columns=["dt", "symbol", "size", "price", "commission"])
    frame["timestamp"] = stamp.loc[frame["dt"].to_numpy()].to_numpy()
    frame["value"] = frame["size"] * frame["price"]
    return frame[cols]


def _contributions(fills: pd.DataFrame, last_close: pd.Series) -> pd.DataFrame:
    """Per-symbol pnl: cash paid and received on fills, less commission, plus the held units at
    the symbol's last close; the pnls sum to final value − starting cash."""
    cols = ["pnl", "commission", "fills", "share"]
    if fills.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="symbol"), dtype=float)
    g = fills.groupby("symbol")
    held = g["size"].sum() * last_close.reindex(g["size"].sum().index)
    out = pd.DataFrame({"pnl": held - g["value"].sum() - g["commission"].sum(),
                        "commission": g["commission"].sum(), "fills": g.size().astype(float)})
    total = out["pnl"].sum()
    out["share"] = out["pnl"] / total if total else np.nan
    return out.sort_values("pnl", ascending=False).rename_axis("symbol")[cols]


def _stats(prices: Mapping[str, pd.DataFrame], fills: pd.DataFrame, equity: pd.Series,
           returns: pd.Series, cash: float) -> dict[str, float]:
    traded = fills.groupby("timestamp")["value"].apply(lambda v: v.abs().sum()) if len(fills) else None
    traded = traded.reindex(equity.index, fill_value=0.0) if traded is not None else equity * 0.0
    return {
        "final_value": float(equity.iloc[-1]),
        "total_return": float(equity.iloc[-1] / cash - 1.0),
        "sharpe": sharpe_ratio(returns, periods_per_year(equity.index)),
        "max_drawdown": float(-(equity / equity.cummax() - 1.0).min()),
        "fills": float(len(fills)),
        "commission": float(fills["commission"].sum()) if len(fills) else 0.0,
        "turnover": float((traded / equity).mean()),
        "exposure": float(_gross_exposure(prices, fills, equity).mean()),
        "bars": float(sum(len(f) for f in prices.values())),
        "symbols": float(len(prices)),
    }


def _gross_exposure(prices: Mapping[str, pd.DataFrame], fills: pd.DataFrame,
                    equity: pd.Series) -> pd.Series:
    """Sum of |units × last close| over symbols / value, at each step's close."""
    if fills.empty:
        return equity * 0.0
    units = fills.pivot_table(index="timestamp", columns="symbol", values="size", aggfunc="sum")
    units = units.reindex(equity.index).fillna(0.0).cumsum()
    closes = pd.DataFrame({s: prices[s]["close"] for s in units.columns}).reindex(equity.index).ffill()
    return (units * closes).abs().sum(axis=1) / equity
