"""Massive (formerly Polygon.io) ticker news through the ``massive`` client's ``list_ticker_news``.

The key comes from ``MASSIVE_API_KEY`` (``POLYGON_API_KEY`` is accepted too). The client follows
``next_url`` itself; each month of the range is one listing of up to 1000 articles a page.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from llmbt.errors import require
from llmbt.feeds.newsources.common import (
    api_key,
    call,
    field,
    frame,
    month_chunks,
    row,
    symbols_for,
)

NAME = "massive"
KEY_ENV = "MASSIVE_API_KEY"
RECENT_ONLY = False
SIGNUP = "https://massive.com"


def _client() -> Any:
    """The real ``massive.RESTClient`` (the only network object; tests replace this function)."""
    massive = require("massive", "news", "news source massive")
    env = KEY_ENV if os.environ.get(KEY_ENV, "").strip() or not os.environ.get("POLYGON_API_KEY") \
        else "POLYGON_API_KEY"
    return massive.RESTClient(api_key=api_key(env, NAME, SIGNUP))


def _listing(client: Any, symbol: str, lo: pd.Timestamp, hi: pd.Timestamp) -> list[Any]:
    return list(client.list_ticker_news(
        ticker=symbol, published_utc_gte=f"{lo:%Y-%m-%d}T00:00:00Z",
        published_utc_lte=f"{hi:%Y-%m-%d}T23:59:59Z", limit=1000, sort="published_utc",
        order="asc"))


def download(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """``symbol``'s headlines published on the days ``start``..``end``, one listing per month."""
    client = _client()
    frames = [frame([])]
    for lo, hi in month_chunks(start, end):
        what = f"{symbol} {lo:%Y-%m-%d}..{hi:%Y-%m-%d}"
        frames.append(parse(call(NAME, what, KEY_ENV, _listing, client, symbol, lo, hi), symbol))
    return pd.concat(frames, ignore_index=True)


def parse(payload: Iterable[Any], symbol: str | Sequence[str]) -> pd.DataFrame:
    """Rows from ``TickerNews`` objects (or their JSON dicts): ``published_utc`` (ISO 8601),
    ``title``, ``publisher.name``, ``article_url``, ``id`` and ``tickers``."""
    return frame(row(sym, field(a, "published_utc"), field(a, "title"),
                     field(field(a, "publisher", {}), "name", ""), field(a, "article_url", ""),
                     field(a, "id", ""))
                 for a in payload for sym in symbols_for(symbol, field(a, "tickers")))
