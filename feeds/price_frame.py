"""The one frame shape of price bars: normalise any source's frame to it, and validate it.

The normalised frame has a tz-aware UTC :class:`~pandas.DatetimeIndex` named ``timestamp`` (the
bar's open time; daily bars sit at the session date, 00:00 UTC), float64 columns exactly
``open, high, low, close, volume``, sorted ascending with no duplicate timestamps. Loading (files,
samples, downloads and their cache) is :mod:`llmbt.feeds.prices`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype, is_string_dtype

from llmbt.errors import DataError

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
TIME_COLUMNS: tuple[str, ...] = ("timestamp", "datetime", "date", "time")
_ADJ_CLOSE = ("adj close", "adjclose", "adjusted close")
_PRICES = ("open", "high", "low", "close")


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
