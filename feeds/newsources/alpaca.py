"""Alpaca news through alpaca-py's ``NewsClient``: Benzinga headlines, history since 2015.

Keys come from ``ALPACA_API_KEY`` and ``ALPACA_SECRET_KEY`` (a free Alpaca account has news access).
Each month of the range is one ``get_news`` call; alpaca-py follows ``next_page_token`` itself,
50 articles a page, until the month is complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from llmbt.errors import DataError, require
from llmbt.feeds.newsources.common import (
    DAY,
    api_key,
    call,
    field,
    frame,
    month_chunks,
    row,
    symbols_for,
)

NAME = "alpaca"
KEY_ENV = "ALPACA_API_KEY"
RECENT_ONLY = False
SIGNUP = "https://app.alpaca.markets/signup"


def _sdk(module: str) -> Any:
    """An alpaca-py module; the package checked first so a missing one names the extra."""
    require("alpaca", "news", "news source alpaca")
    return require(f"alpaca.{module}", "news", "news source alpaca")


def _client() -> Any:
    """The real ``NewsClient`` (the only network object; tests replace this function)."""
    news = _sdk("data.historical.news")
    return news.NewsClient(api_key=api_key(KEY_ENV, NAME, SIGNUP),
                           secret_key=api_key("ALPACA_SECRET_KEY", NAME, SIGNUP))


def _request(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> Any:
    requests = _sdk("data.requests")
    stop = end + DAY - pd.Timedelta(seconds=1)
    return requests.NewsRequest(symbols=symbol, start=start.tz_localize("UTC").to_pydatetime(),
                                end=stop.tz_localize("UTC").to_pydatetime())


def download(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """``symbol``'s headlines published on the days ``start``..``end`` (naive dates, UTC days)."""
    client = _client()
    frames = [frame([])]
    for lo, hi in month_chunks(start, end):
        what = f"{symbol} {lo:%Y-%m-%d}..{hi:%Y-%m-%d}"
        frames.append(parse(call(NAME, what, KEY_ENV, client.get_news, _request(symbol, lo, hi)),
                            symbol))
    return pd.concat(frames, ignore_index=True)


def parse(payload: Any, symbol: str | Sequence[str]) -> pd.DataFrame:
    """Rows from a ``NewsSet`` (or the raw ``{"news": [...], "next_page_token": ...}`` JSON).

    Each article (``id, headline, source, url, created_at, symbols, ...``) gives one row per
    requested symbol: for one symbol, every article; for several, those its ``symbols`` name.
    """
    if isinstance(payload, dict):
        if "news" not in payload:
            raise DataError(f"alpaca returned no news list for {symbol} (got {payload!r:.200}); "
                            "check ALPACA_API_KEY/ALPACA_SECRET_KEY and the symbol")
        articles = payload["news"]
    else:
        articles = field(payload, "data", {}).get("news", [])
    return frame(row(sym, field(a, "created_at"), field(a, "headline"), field(a, "source"),
                     field(a, "url", ""), field(a, "id", ""))
                 for a in articles for sym in symbols_for(symbol, field(a, "symbols")))
