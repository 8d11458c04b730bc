"""Price bars: load from any source (files, samples, downloads and their cache) in the one frame
shape of :mod:`llmbt.feeds.price_frame`, which normalises and validates them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmbt.errors import DataError
from llmbt.feeds.price_frame import fmt_time, normalize_prices, validate_prices
from llmbt.feeds.sources import PriceUri, cache_path, one_symbol_uri, read_cache, write_cache

DateLike = str | pd.Timestamp | None


def load_prices(uri: str, start: DateLike = None, end: DateLike = None, *,
                interval: str = "1d", refresh: bool = False) -> pd.DataFrame:
    """Load normalised price bars from a ``SCHEME:TARGET`` URI.

    Args:
        uri: ``sample:GOOG``, ``csv:PATH``, ``parquet:PATH``, ``yahoo:TICKER`` or
            ``ccxt:EXCHANGE:SYMBOL``.
        start: first bar to keep (inclusive); naive values are UTC.
        end: last bar to keep (**inclusive**: ``"2024-01-31"`` keeps the bar opening at
            2024-01-31 00:00 UTC, so give the time for intraday data).
        interval: bar size for downloads (``1d``, ``1h``, ...); files are read as they are.
        refresh: re-download even when the cache covers the range.

    Raises:
        DataError: bad URI, unreadable or invalid data, no bars in the range, network failure.
    """
    parsed = one_symbol_uri(uri)
    lo, hi = parse_range(start, end)
    return _slice(load_unsliced(parsed, lo, hi, interval, refresh), lo, hi, str(parsed))


def load_unsliced(parsed: PriceUri, lo: pd.Timestamp | None, hi: pd.Timestamp | None,
                  interval: str, refresh: bool) -> pd.DataFrame:
    """One source's normalised bars, from the download cache when it covers ``lo..hi``;
    unlike :func:`load_prices`, bars outside ``lo..hi`` may remain (the caller slices)."""
    if parsed.downloads:
        return _cached_download(parsed, lo, hi, interval, refresh)[0]
    return normalize_prices(parsed.read(lo, hi, interval), str(parsed))


def fetch_to_cache(uri: str, start: DateLike, end: DateLike, *, interval: str = "1d",
                   refresh: bool = False) -> Path:
    """Download ``uri`` into the Parquet cache (unless it already covers the range).

    Returns:
        The cache file, which later :func:`load_prices` calls read without the network.
    """
    parsed = one_symbol_uri(uri)
    if not parsed.downloads:
        raise DataError(f"{uri!r} is read from local files and needs no fetching; "
                        "only yahoo: and ccxt: sources are downloaded and cached")
    lo, hi = parse_range(start, end)
    return _cached_download(parsed, lo, hi, interval, refresh)[1]


def history_start(start: DateLike, bars: int, interval: str = "1d") -> pd.Timestamp | None:
    """A calendar start at least ``bars`` bars of ``interval`` before ``start`` (None: None).

    Markets close, so calendar time is stretched: daily bars as 1.5 days each plus a week;
    intraday bars as if the market traded 6.5 h a weekday (stock hours, 5.5 x the bar length)
    plus three days; weekly and longer bars one bar extra. Sources that trade around the clock
    (FX, crypto) get more history than needed, never less. The result is a midnight UTC.
    """
    lo = _parse_bound(start, "start")
    if lo is None or bars <= 0:
        return lo
    step = _bar_length(interval)
    if step >= pd.Timedelta(days=7):
        span = step * (bars + 1)
    elif step >= pd.Timedelta(days=1):
        span = step * bars * 1.5 + pd.Timedelta(days=7)
    else:
        span = step * bars * 1.5 * 24 / 6.5 + pd.Timedelta(days=3)
    return (lo - span).normalize()


_BAR_UNITS = {"m": pd.Timedelta(minutes=1), "h": pd.Timedelta(hours=1), "d": pd.Timedelta(days=1),
              "w": pd.Timedelta(days=7), "wk": pd.Timedelta(days=7),
              "mo": pd.Timedelta(days=30.44), "M": pd.Timedelta(days=30.44),
              "y": pd.Timedelta(days=365.25)}


def _bar_length(interval: str) -> pd.Timedelta:
    match = re.fullmatch(r"(\d+)(m|h|d|wk|w|mo|M|y)", str(interval).strip())
    if not match or int(match.group(1)) == 0:
        raise DataError(f"interval {interval!r} is not a bar size; use e.g. 1d, 1h, 15m, 1wk")
    return int(match.group(1)) * _BAR_UNITS[match.group(2)]


def parse_range(start: DateLike, end: DateLike) -> tuple[pd.Timestamp | None, ...]:
    """``start``/``end`` as UTC timestamps (naive = UTC) or None; start must not follow end."""
    lo, hi = _parse_bound(start, "start"), _parse_bound(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"start {fmt_time(lo)} is after end {fmt_time(hi)}; swap them")
    return lo, hi


def _parse_bound(value: DateLike, label: str) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, int | float):  # pd.Timestamp(2024) would be 1970 plus 2024 ns
        raise DataError(f"{label} {value!r} is a number, not a date; use e.g. '2024-01-31'")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{label} {value!r} is not a date; use e.g. 2024-01-31") from exc
    if pd.isna(ts):
        raise DataError(f"{label} {value!r} is not a date; use e.g. 2024-01-31")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _slice(df: pd.DataFrame, lo: pd.Timestamp | None, hi: pd.Timestamp | None,
           name: str) -> pd.DataFrame:
    keep = np.ones(len(df), dtype=bool)
    if lo is not None:
        keep &= df.index >= lo
    if hi is not None:
        keep &= df.index <= hi
    if not keep.any():
        raise DataError(f"prices {name!r}: no bars from {fmt_time(lo) if lo else 'the beginning'} "
                        f"to {fmt_time(hi) if hi else 'the end'}; the data covers "
                        f"{fmt_time(df.index[0])} to {fmt_time(df.index[-1])}, pick dates in that range")
    return df[keep]


def _cached_download(parsed: PriceUri, lo: pd.Timestamp | None, hi: pd.Timestamp | None,
                     interval: str, refresh: bool) -> tuple[pd.DataFrame, Path]:
    """Serve from the Parquet cache when it covers [lo, hi], else fetch the union and store it."""
    path = cache_path(str(parsed), interval)
    cached = None if refresh else read_cache(path)
    if cached is not None and _covers(cached[1], lo, hi):
        return validate_prices(cached[0], str(path)), path
    if cached is not None:
        lo, hi = _union(cached[1], lo, hi)
    df = normalize_prices(parsed.read(lo, hi, interval), str(parsed))
    meta = {"uri": str(parsed), "interval": interval, "start": _iso(lo), "end": _iso(hi),
            "fetched_at": _iso(pd.Timestamp.now(tz="UTC"))}
    write_cache(path, df, meta)
    return df, path


def _covers(meta: dict[str, Any], lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> bool:
    """Whether a cache fetched for ``meta['start']..meta['end']`` (None = open) covers lo..hi.

    An open-ended cache (fetched "until now") serves open-ended requests until ``refresh``.
    """
    have_lo, have_hi = _ts(meta.get("start")), _ts(meta.get("end"))
    lo_ok = have_lo is None or (lo is not None and lo >= have_lo)
    if hi is None:
        return lo_ok and have_hi is None and meta.get("fetched_at") is not None
    limit = have_hi if have_hi is not None else _ts(meta.get("fetched_at"))
    return lo_ok and limit is not None and hi <= limit


def _union(meta: dict[str, Any], lo: pd.Timestamp | None,
           hi: pd.Timestamp | None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    have_lo, have_hi = _ts(meta.get("start")), _ts(meta.get("end"))
    new_lo = None if lo is None or have_lo is None else min(lo, have_lo)
    new_hi = None if hi is None or have_hi is None else max(hi, have_hi)
    return new_lo, new_hi


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.isoformat()


def _ts(text: str | None) -> pd.Timestamp | None:
    return None if text is None else pd.Timestamp(text)
