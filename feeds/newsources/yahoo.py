"""Yahoo Finance headlines through yfinance's ``Ticker.get_news``: RECENT ITEMS ONLY.

Yahoo serves the latest items of a ticker (a few dozen, typically the last days or weeks), whatever
range is asked for: there is no history. A fetch whose start is older than the oldest item that
came back logs a warning, and the cache records only the days actually covered. No key is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd

from llmbt.errors import require
from llmbt.feeds.newsources.common import call, field, frame, row, symbols_for

NAME = "yahoo"
KEY_ENV = None
RECENT_ONLY = True
COUNT = 100  # items asked for; Yahoo may send fewer
log = logging.getLogger(__name__)


def _client() -> Any:
    """The yfinance module (the only network object; tests replace this function)."""
    return require("yfinance", "yahoo", "news source yahoo")


def download(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The recent headlines of ``symbol`` (one call), warning when ``start`` is older than them."""
    ticker = _client().Ticker(symbol)
    rows = parse(call(NAME, symbol, None, ticker.get_news, count=COUNT, tab="news"), symbol)
    oldest = rows["timestamp"].min() if len(rows) else None
    if oldest is None or oldest.tz_convert(None).normalize() > start:
        log.warning("yahoo gives recent headlines only: %s starts at %s, not at the requested "
                    "%s; use alpaca, finnhub or massive for history", symbol,
                    "nothing" if oldest is None else f"{oldest:%Y-%m-%d}", f"{start:%Y-%m-%d}")
    return rows


def parse(payload: Any, symbol: str | Sequence[str]) -> pd.DataFrame:
    """Rows from ``Ticker.news``: items nesting ``content`` (``title``, ``pubDate``,
    ``provider.displayName``, ``canonicalUrl.url``) or the older flat ones (``title``,
    ``providerPublishTime`` in unix seconds, ``publisher``, ``link``, ``uuid``)."""
    return frame(_row(item, sym) for item in payload or []
                 for sym in symbols_for(symbol, field(item, "relatedTickers")))


def _row(item: dict[str, Any], symbol: str) -> dict[str, Any]:
    content = field(item, "content", item)
    when = field(content, "pubDate") or field(content, "displayTime")
    if when is None and field(item, "providerPublishTime") is not None:
        when = pd.Timestamp(int(item["providerPublishTime"]), unit="s", tz="UTC")
    source = field(field(content, "provider", {}), "displayName", "") or field(item, "publisher", "")
    url = field(field(content, "canonicalUrl", {}), "url", "") or field(item, "link", "")
    return row(symbol, when, field(content, "title"), source, url,
               field(content, "id", "") or field(item, "uuid", "") or field(item, "id", ""))
