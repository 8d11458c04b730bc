"""Network sources with only the network call replaced, shared by the feed tests (``from helpers_feeds
import ...``): a yfinance frame and a fake ``_yahoo_download``, ccxt candles and a fake exchange that
serves them in pages."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmbt.feeds import sources


def yahoo_frame(ticker: str = "AAPL", start: str = "2024-01-02", n: int = 5,
                tz: str | None = None, freq: str = "B") -> pd.DataFrame:
    """What ``yf.download(ticker, multi_level_index=True)`` returns (yfinance >= 0.2.50)."""
    name = "Date" if freq == "B" else "Datetime"
    index = pd.date_range(start, periods=n, freq=freq, tz=tz, name=name)
    close = 185.0 + np.arange(n)
    fields = {"Close": close, "High": close + 2.0, "Low": close - 2.0, "Open": close - 0.5,
              "Volume": np.arange(n, dtype="int64") * 1000 + 50_000_000}
    frame = pd.DataFrame({(f, ticker): v for f, v in fields.items()}, index=index)
    frame.columns.names = ["Price", "Ticker"]
    return frame


class FakeYahoo:
    """Stands in for ``_yahoo_download``; records calls; serves a fixed frame or raises."""

    def __init__(self, frame: pd.DataFrame | None = None, error: Exception | None = None):
        self.frame, self.error, self.calls = frame, error, []

    def __call__(self, ticker, start, end, interval):
        self.calls.append((ticker, start, end, interval))
        if self.error is not None:
            raise self.error
        return self.frame


def use_yahoo(monkeypatch, fake: FakeYahoo) -> FakeYahoo:
    monkeypatch.setattr(sources, "_yahoo_download", fake)
    return fake


HOUR_MS = 3_600_000
T0 = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)


def candles(n: int, start_ms: int = T0) -> list[list[float]]:
    return [[start_ms + i * HOUR_MS, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 5.0 + i]
            for i in range(n)]


class FakeExchange:
    """Serves ``candles`` in pages of ``page`` rows from ``since`` (minus ``overlap`` rows)."""

    timeframes = {"1m": "1", "1h": "60", "1d": "D"}

    def __init__(self, rows: list[list[float]], page: int, overlap: int = 0,
                 ignore_since: bool = False):
        self.rows, self.page, self.overlap, self.ignore_since = rows, page, overlap, ignore_since
        self.calls: list[tuple] = []

    def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None):
        self.calls.append((symbol, timeframe, since, limit))
        if self.ignore_since:
            return [list(r) for r in self.rows[-self.page:]]
        first = next((i for i, r in enumerate(self.rows) if r[0] >= since), len(self.rows))
        first = max(first - self.overlap, 0)
        return [list(r) for r in self.rows[first:first + self.page]]


def use_exchange(monkeypatch, exchange) -> list[str]:
    names: list[str] = []
    monkeypatch.setattr(sources, "_ccxt_exchange", lambda name: names.append(name) or exchange)
    return names
