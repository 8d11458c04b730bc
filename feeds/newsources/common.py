"""What every news provider shares: the row format, API keys from the environment, date chunks,
and the translation of a client's exceptions into one clear line.

A provider module (``alpaca``, ``finnhub``, ``massive``, ``yahoo``) has the same parts: ``_client()``
builds the real client (the only thing tests replace), ``parse(payload, symbol)`` turns one documented
response into rows, and ``download(symbol, start, end)`` calls the client over ``[start, end]`` (whole
UTC days) and returns :func:`frame` rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from llmbt.errors import DataError, LlmbtError
from llmbt.feeds.network import AUTH, HTTP, RATE, classify, one_line

COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "headline", "source", "url", "id")
DAY = pd.Timedelta(days=1)


def field(item: Any, name: str, default: Any = None) -> Any:
    """``item[name]`` for a dict, ``item.name`` for a client's model object, else ``default``."""
    value = item.get(name, default) if isinstance(item, dict) else getattr(item, name, default)
    return default if value is None else value


def frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows (dicts with :data:`COLUMNS`) as a frame: UTC ``timestamp``, text elsewhere, no empty
    headlines, sorted by time."""
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="mixed").dt.as_unit("ns")
    for col in COLUMNS[1:]:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str).str.strip()
    df = df[(df["headline"] != "") & df["timestamp"].notna()]
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True)


def row(symbol: str, timestamp: Any, headline: Any, source: Any, url: Any = "",
        id: Any = "") -> dict[str, Any]:  # noqa: A002  (the providers' own name for it)
    """One headline row in :data:`COLUMNS` order."""
    return {"timestamp": timestamp, "symbol": symbol, "headline": headline, "source": source,
            "url": url, "id": "" if id is None else str(id)}


def symbols_for(requested: str | Sequence[str], tags: Iterable[str] | str | None) -> list[str]:
    """The requested symbols an item counts for: one symbol asked for (the provider already filtered
    by it) gets every item; several get one row per requested symbol the item is tagged with."""
    if isinstance(requested, str):
        return [requested]
    if isinstance(tags, str):
        tags = tags.split(",")
    have = {str(t).strip().upper() for t in tags or ()}
    return [s for s in requested if s.upper() in have]


def api_key(env: str, provider: str, signup: str) -> str:
    """The key in environment variable ``env``, or one line saying how to set it."""
    key = os.environ.get(env, "").strip()
    if not key:
        raise DataError(f"{provider} news needs an API key in the environment variable {env}; "
                        f"set it with `export {env}=YOUR_KEY` (get one at {signup})")
    return key


def month_chunks(start: pd.Timestamp, end: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[start, end]`` (days) cut at month boundaries: ``[(start, last day of its month), ...]``."""
    firsts = pd.date_range(start + pd.offsets.MonthBegin(1), end, freq="MS")
    starts = [start, *firsts]
    return [(a, b - DAY) for a, b in zip(starts, [*firsts, end + DAY], strict=True)]


def call(provider: str, what: str, key_env: str | None, fn: Callable[..., Any], *args: Any,
         **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; a client's exception becomes one DataError line.

    Args:
        provider: the provider's name, e.g. ``finnhub``.
        what: the request, e.g. ``AAPL 2024-01-01..2024-01-31``.
        key_env: the variable holding the key, named when the provider refuses it.
        fn: the client call.
    """
    try:
        return fn(*args, **kwargs)
    except LlmbtError:
        raise
    except Exception as exc:
        raise DataError(explain(provider, what, key_env, exc)) from exc


def explain(provider: str, what: str, key_env: str | None, exc: BaseException) -> str:
    """One line for a failed provider call naming what failed (:func:`classify`): a timeout, a
    DNS failure, no connection, a refused key, a rate limit, or the provider's own error."""
    failure = classify(exc)
    detail = f"{type(exc).__name__}: {provider_message(exc)}"
    head = f"{provider}{failure.says(key_env is not None)} for {what} ({detail})"
    if failure.offline:
        return (f"{head}; check the network and rerun `bt news fetch`: symbols already cached "
                "are kept and only the missing range is fetched")
    if failure.kind == AUTH:
        return head + (f"; check that {key_env} holds a valid key with news access" if key_env
                       else "; retry later, or update yfinance (pip install -U yfinance)")
    if failure.kind == RATE:
        return f"{head}; wait a minute and rerun `bt news fetch`: cached symbols are kept"
    if failure.kind == HTTP and (failure.status or 0) >= 500:
        return f"{head}; the provider failed: rerun `bt news fetch` later, cached symbols are kept"
    status = "" if failure.status is None else f"HTTP {failure.status}, "
    return (f"{provider} rejected the request for {what} ({status}{detail}); check the symbol "
            "and dates")


def provider_message(exc: BaseException) -> str:
    """The provider's own error text: ``message``/``error`` of a JSON body, else the exception's."""
    text = str(getattr(exc, "message", "") or "") or one_line(exc)
    try:
        body = json.loads(text)
    except ValueError:
        return one_line(Exception(text))
    if isinstance(body, dict):
        return one_line(Exception(body.get("message") or body.get("error") or text))
    return one_line(Exception(text))

