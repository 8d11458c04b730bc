"""Finnhub company news through finnhub-python's ``Client.company_news``.

The key comes from ``FINNHUB_API_KEY``. The free plan serves about one year of history and caps
each answer, so the range is fetched a month per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from llmbt.errors import DataError, require
from llmbt.feeds.newsources.common import (
    api_key,
    call,
    field,
    frame,
    month_chunks,
    row,
    symbols_for,
)

NAME = "finnhub"
KEY_ENV = "FINNHUB_API_KEY"
RECENT_ONLY = False
SIGNUP = "https://finnhub.io/register"


def _client() -> Any:
    """The real ``finnhub.Client`` (the only network object; tests replace this function)."""
    finnhub = require("finnhub", "news", "news source finnhub")
    return finnhub.Client(api_key=api_key(KEY_ENV, NAME, SIGNUP))


def download(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """``symbol``'s headlines published on the days ``start``..``end``, one call per month."""
    client = _client()
    frames = [frame([])]
    for lo, hi in month_chunks(start, end):
        span = {"_from": f"{lo:%Y-%m-%d}", "to": f"{hi:%Y-%m-%d}"}
        payload = call(NAME, f"{symbol} {span['_from']}..{span['to']}", KEY_ENV,
                       client.company_news, symbol, **span)
        frames.append(parse(payload, symbol))
    return pd.concat(frames, ignore_index=True)


def parse(payload: Any, symbol: str | Sequence[str]) -> pd.DataFrame:
    """Rows from ``company_news``'s list of ``{category, datetime (unix s), headline, id, image,
    related, source, summary, url}``; an ``{"error": ...}`` payload is one DataError line."""
    if isinstance(payload, dict) and "error" in payload:
        raise DataError(f"finnhub returned an error for {symbol}: {payload['error']}; check "
                        f"{KEY_ENV} and that your plan includes company news")
    if not isinstance(payload, list):
        raise DataError(f"finnhub returned {type(payload).__name__} for {symbol}, not a list of "
                        f"news ({payload!r:.200}); retry later")
    return frame(row(sym, pd.Timestamp(int(field(a, "datetime", 0)), unit="s", tz="UTC"),
                     field(a, "headline"), field(a, "source"), field(a, "url", ""),
                     field(a, "id", ""))
                 for a in payload for sym in symbols_for(symbol, field(a, "related")))
