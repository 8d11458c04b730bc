"""Price bars: load from any source, normalise to one frame shape, validate.

The normalised frame has a tz-aware UTC :class:`~pandas.DatetimeIndex` named ``timestamp`` (the
bar's open time; daily bars sit at the session date, 00:00 UTC), float64 columns exactly
``open, high, low, close, volume``, sorted ascending with no duplicate timestamps.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype, is_string_dtype

from llmbt.errors import DataError
from llmbt.feeds.sources import PriceUri, cache_path, one_symbol_uri, read_cache, write_cache

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
TIME_COLUMNS: tuple[str, ...] = ("timestamp", "datetime", "date", "time")
_ADJ_CLOSE = ("adj close", "adjclose", "adjusted close")
_PRICES = ("open", "high", "low", "close")
DateLike = str | pd.Timestamp | None


# ---------------------------------------------------------------- loading


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


def fmt_time(ts: pd.Timestamp) -> str:
    """``2004-08-19`` for midnight, else ``2017-04-19 09:00:00 UTC``."""
    ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else f"{ts:%Y-%m-%d %H:%M:%S} UTC"


# ---------------------------------------------------------------- normalising


def normalize_prices(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Bring any OHLCV frame to the normalised shape, then :func:`validate_prices` it.

    Column names are matched case-insensitively (``Open``, ``CLOSE``); ``Adj Close`` is used only
    when there is no ``close``; other columns are dropped. Timestamps come from a DatetimeIndex,
    else a ``timestamp``/``datetime``/``date``/``time`` column, else a text index; naive
    timestamps are taken as UTC. Rows are not re-sorted: unsorted input is an error.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"prices {name!r}: expected a pandas DataFrame, got {type(df).__name__}")
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(f"prices {name!r}: columns are a MultiIndex {list(df.columns)[:3]}...; "
                        "select one ticker first, e.g. df.xs('AAPL', axis=1, level=1)")
    _check_one_symbol(df, name)
    index = _time_index(df, name)
    picked = ohlcv_columns(df, name)
    out = pd.DataFrame({col: _numeric(df[src], index, col, name) for col, src in picked.items()},
                       index=index)
    return validate_prices(out, name)


def _check_one_symbol(df: pd.DataFrame, name: str) -> None:
    """A long file (``symbol`` column with several values) is a universe, not one instrument."""
    column = next((c for c in df.columns if column_key(c) == "symbol"), None)
    names = [] if column is None else sorted(df[column].dropna().astype(str).unique())
    if len(names) > 1:
        raise DataError(f"prices {name!r} holds {len(names)} symbols in its {column!r} column "
                        f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); load it as "
                        "a universe with a portfolio strategy (e.g. --strategy "
                        "llm_news_portfolio, --symbols to pick some), or keep one symbol's rows")


def column_key(label: Any) -> str:
    """A column label as matched against :data:`COLUMNS` (``Adj_Close`` -> ``adj close``)."""
    return re.sub(r"[\s_]+", " ", str(label).strip().lower())


def ohlcv_columns(df: pd.DataFrame, name: str) -> dict[str, Any]:
    """Map each of :data:`COLUMNS` to the source column label that provides it."""
    found: dict[str, Any] = {}
    for label in df.columns:
        key = column_key(label)
        key = "adj close" if key in _ADJ_CLOSE else key
        if key not in COLUMNS and key != "adj close":
            continue
        if key in found:
            raise DataError(f"prices {name!r}: columns {found[key]!r} and {label!r} both mean "
                            f"{key!r}; keep one")
        found[key] = label
    if "close" not in found and "adj close" in found:
        found["close"] = found["adj close"]
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise DataError(f"prices {name!r}: missing column(s) {', '.join(missing)} (found: "
                        f"{', '.join(map(str, df.columns)) or 'none'}); provide "
                        "open, high, low, close, volume")
    return {c: found[c] for c in COLUMNS}


def _time_index(df: pd.DataFrame, name: str) -> pd.DatetimeIndex:
    """The bar times as a UTC DatetimeIndex named ``timestamp``."""
    if isinstance(df.index, pd.DatetimeIndex):
        idx = df.index
    else:
        idx = _parse_times(time_values(df, name), name)
    if idx.hasnans:
        row = int(np.argmax(idx.isna())) + 1
        raise DataError(f"prices {name!r}: missing timestamp at row {row}; drop rows without one")
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return pd.DatetimeIndex(idx.as_unit("ns"), name="timestamp", freq=None)


def time_values(df: pd.DataFrame, name: str) -> pd.Series:
    """The raw bar times of ``df`` (not parsed): its first :data:`TIME_COLUMNS` column, else its
    string index; DataError naming ``name`` when it has neither."""
    by_key = {column_key(c): c for c in df.columns}
    for key in TIME_COLUMNS:
        if key in by_key:
            return df[by_key[key]].reset_index(drop=True)
    if is_string_dtype(df.index) or df.index.dtype == object:
        return pd.Series(df.index)
    raise DataError(f"prices {name!r}: no timestamps; use a DatetimeIndex or a column named "
                    f"{', '.join(TIME_COLUMNS)} (found columns: {', '.join(map(str, df.columns))})")


def _parse_times(values: pd.Series, name: str) -> pd.DatetimeIndex:
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        raise DataError(f"prices {name!r}: timestamps are numbers (e.g. {values.iloc[0]!r}); "
                        "write them as dates like 2024-01-31 or 2024-01-31 09:00")
    parsed = to_utc(values, None)
    if (parsed.isna() & values.notna()).any():
        parsed = to_utc(values, "mixed")
    bad = parsed.isna() & values.notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(f"prices {name!r}: cannot parse timestamp {values.iloc[row]!r} "
                        f"(row {row + 1}); use ISO dates like 2024-01-31 or 2024-01-31 09:00:00")
    return pd.DatetimeIndex(parsed)


def to_utc(values: pd.Series, fmt: str | None) -> pd.Series:
    """``values`` as UTC times in pandas format ``fmt`` (None: inferred); unparsable: NaT."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format": we retry
        return pd.to_datetime(values, utc=True, errors="coerce", format=fmt)


def _numeric(values: pd.Series, index: pd.DatetimeIndex, col: str, name: str) -> np.ndarray:
    raw = values.to_numpy()
    num = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype="float64")
    bad = np.isnan(num) & pd.notna(raw)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"prices {name!r}: column {col!r} has non-numeric value {raw[i]!r} at "
                        f"{fmt_time(index[i])}; use plain numbers like 101.5")
    return num


# ---------------------------------------------------------------- validating


def validate_prices(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Check a normalised frame; return it unchanged or raise :class:`DataError`.

    Checks, in order: rows present, columns present and numeric, tz-aware UTC DatetimeIndex
    without NaT, no NaN/inf, no duplicate or unsorted timestamps, high >= low, positive prices,
    non-negative volume. Nothing is fixed silently; each message names the first bad bar.
    """
    for check in _CHECKS:
        check(df, name)
    return df


def _check_rows(df: pd.DataFrame, name: str) -> None:
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise DataError(f"prices {name!r}: no rows; check the file or the date range")


def _check_columns(df: pd.DataFrame, name: str) -> None:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"prices {name!r}: missing column(s) {', '.join(missing)} (found: "
                        f"{', '.join(map(str, df.columns))}); use normalize_prices")
    for col in COLUMNS:
        if not is_numeric_dtype(df[col]) or is_bool_dtype(df[col]):
            raise DataError(f"prices {name!r}: column {col!r} is not numeric "
                            f"(dtype {df[col].dtype}); use normalize_prices")


def _check_index(df: pd.DataFrame, name: str) -> None:
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None or str(idx.tz) != "UTC":
        raise DataError(f"prices {name!r}: index must be a UTC DatetimeIndex "
                        f"(got {type(idx).__name__}, dtype {idx.dtype}); use normalize_prices")
    if idx.hasnans:
        raise DataError(f"prices {name!r}: missing timestamp (NaT) in the index; drop those rows")


def _check_finite(df: pd.DataFrame, name: str) -> None:
    bad = ~np.isfinite(df[list(COLUMNS)].to_numpy(dtype="float64"))
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        col = COLUMNS[int(np.argmax(bad[row]))]
        raise DataError(f"prices {name!r}: {int(bad.sum())} NaN/infinite value(s), first at "
                        f"{fmt_time(df.index[row])} in column {col!r}; fill or drop those rows")


def _check_order(df: pd.DataFrame, name: str) -> None:
    idx = df.index
    dup = idx.duplicated()
    if dup.any():
        raise DataError(f"prices {name!r}: duplicate timestamp {fmt_time(idx[dup][0])} "
                        f"({int(dup.sum())} repeated); drop duplicate rows")
    if not idx.is_monotonic_increasing:
        i = int(np.argmax(np.diff(idx.asi8) < 0)) + 1
        raise DataError(f"prices {name!r}: timestamps not sorted, {fmt_time(idx[i])} comes after "
                        f"{fmt_time(idx[i - 1])}; sort by time (df.sort_index())")


def _first_bad(df: pd.DataFrame, name: str, bad: np.ndarray, what: str, fix: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"prices {name!r}: {what} at {fmt_time(df.index[i])} "
                        f"({int(bad.sum())} bar(s)); {fix}")


def _check_values(df: pd.DataFrame, name: str) -> None:
    high, low = df["high"].to_numpy(), df["low"].to_numpy()
    _first_bad(df, name, high < low, "high < low", "fix or drop those bars")
    for col in _PRICES:
        _first_bad(df, name, df[col].to_numpy() <= 0, f"non-positive {col}",
                   "prices must be > 0, fix or drop those bars")
    _first_bad(df, name, df["volume"].to_numpy() < 0, "negative volume",
               "volume must be >= 0, fix or drop those bars")


_CHECKS: tuple[Callable[[pd.DataFrame, str], None], ...] = (
    _check_rows, _check_columns, _check_index, _check_finite, _check_order, _check_values,
)
