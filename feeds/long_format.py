"""Long-format price files (one row per symbol and bar): read once, vectorised, split by symbol.

A long file has the columns ``timestamp, symbol, open, high, low, close, volume`` (any case, any
order; ``currency`` optional). The whole frame is parsed once; each symbol's rows then become a
frame of exactly the shape :func:`llmbt.feeds.prices.load_prices` returns and are checked by
:func:`~llmbt.feeds.price_frame.validate_prices`, every error naming the symbol. Rows that cannot be a
bar (a blank price, as in real archives, or high < low, a non-positive price, negative volume) are
dropped explicitly: they are returned as ``(symbol, bar time, reason)`` and logged in one warning.
Duplicate or unsorted timestamps and unreadable values stay errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from llmbt.errors import DataError, did_you_mean
from llmbt.feeds.price_frame import (
    COLUMNS,
    column_key,
    fmt_time,
    ohlcv_columns,
    time_values,
    to_utc,
    validate_prices,
)
from llmbt.feeds.sources import PriceUri

log = logging.getLogger(__name__)
Dropped = tuple[str, pd.Timestamp, str]
SHOWN = 5  # symbols or rows listed in a message before "..."


@contextmanager
def for_symbol(symbol: str) -> Iterator[None]:
    """Prefix any :class:`DataError` raised inside with ``symbol SYMBOL:``."""
    try:
        yield
    except DataError as exc:
        raise DataError(f"symbol {symbol}: {exc}") from exc


def listing(names: list[str], shown: int = SHOWN) -> str:
    """``A, B, C, ... (505 in all)`` for long lists, else ``A, B``."""
    more = f", ... ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def select(available: list[str], wanted: list[str] | None, source: str) -> list[str]:
    """``wanted`` (all of ``available`` when None); an unknown symbol is an error."""
    if wanted is None:
        return list(available)
    known = set(available)
    for name in wanted:
        if name not in known:
            raise DataError(f"unknown symbol {name!r} in {source}.{did_you_mean(name, available)} "
                            f"It has {listing(sorted(available))}; check --symbols")
    return list(wanted)


def read_long(parsed: PriceUri, wanted: list[str] | None) -> tuple[dict[str, pd.DataFrame],
                                                                    list[Dropped]]:
    """Each selected symbol's normalised, validated bars, and the incomplete rows dropped.

    Raises:
        DataError: no ``symbol`` column, an empty symbol, unknown symbols in ``wanted``, several
            currencies, unparseable values; a symbol's invalid bars (the message names both).
    """
    name = str(parsed)
    df = parsed.read(None, None, "1d")
    if isinstance(df.index, pd.DatetimeIndex):
        df = df.rename_axis("timestamp").reset_index()
    symbols = _symbols(df, name)
    _check_currency(df, symbols, name)
    if wanted is not None:
        keep = pd.Series(symbols).isin(select(sorted(set(symbols)), wanted, name)).to_numpy()
        df, symbols = df[keep].reset_index(drop=True), symbols[keep]
    times = _times(time_values(df, name), symbols, name)
    values, blank = _values(df, times, symbols, name)
    reasons = _bad_rows(values, blank)
    dropped = _report(reasons, times, symbols, name)
    ok = np.ones(len(values), dtype=bool)
    ok[list(reasons)] = False
    return _split(times[ok], values[ok], symbols[ok], name), dropped


def _symbols(df: pd.DataFrame, name: str) -> np.ndarray:
    column = next((c for c in df.columns if column_key(c) == "symbol"), None)
    if column is None:
        raise DataError(f"prices {name!r} has no 'symbol' column (found: "
                        f"{', '.join(map(str, df.columns))}), so it holds one instrument: use it "
                        "with a single-symbol strategy, or add a symbol column, or give a folder "
                        "of per-symbol files")
    raw = df[column]
    text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip().str.upper()
    empty = (text == "").to_numpy()
    if empty.any():
        row = int(np.argmax(empty))
        raise DataError(f"prices {name!r}: empty symbol at row {row + 1} "
                        f"({int(empty.sum())} row(s)); fill in the symbol or drop those rows")
    return text.to_numpy(dtype=object)


def _check_currency(df: pd.DataFrame, symbols: np.ndarray, name: str) -> None:
    column = next((c for c in df.columns if column_key(c) == "currency"), None)
    if column is None:
        return
    cur = df[column].astype(str).str.strip().str.upper().to_numpy(dtype=object)
    other = cur != cur[0]
    if other.any():
        i = int(np.argmax(other))
        raise DataError(f"prices {name!r}: mixed currencies, {symbols[0]} is in {cur[0]} but "
                        f"{symbols[i]} is in {cur[i]} (row {i + 1}); a universe trades in one "
                        "currency: convert the prices or split the file")


def _times(values: pd.Series, symbols: np.ndarray, name: str) -> np.ndarray:
    """Bar times as int64 UTC nanoseconds; naive values are UTC (as for one symbol)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or values.dtype.kind == "M":
        parsed = pd.to_datetime(values, utc=True)
    else:
        parsed = to_utc(values, None)
        if (parsed.isna() & values.notna()).any():
            parsed = to_utc(values, "mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"prices {name!r}: symbol {symbols[i]}: cannot parse timestamp "
                        f"{values.iloc[i]!r} (row {i + 1}); use ISO dates like 2024-01-31")
    return pd.DatetimeIndex(parsed).as_unit("ns").asi8


def _values(df: pd.DataFrame, times: np.ndarray, symbols: np.ndarray,
            name: str) -> tuple[np.ndarray, np.ndarray]:
    """The OHLCV block as float64 and a mask of its blank cells; text is an error."""
    picked = ohlcv_columns(df, name)
    block = np.empty((len(df), len(COLUMNS)), dtype="float64")
    blank = np.zeros(block.shape, dtype=bool)
    for j, col in enumerate(COLUMNS):
        raw = df[picked[col]].to_numpy()
        block[:, j] = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype="float64")
        blank[:, j] = pd.isna(raw)
        bad = np.isnan(block[:, j]) & ~blank[:, j]
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"prices {name!r}: symbol {symbols[i]}: column {col!r} has "
                            f"non-numeric value {raw[i]!r} at {fmt_time(_utc(times[i]))}; "
                            "use plain numbers like 101.5")
    return block, blank


def _utc(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz="UTC")


def _bad_rows(block: np.ndarray, blank: np.ndarray) -> dict[int, str]:
    """Rows that cannot be a bar, by position, with the reason: blank cells, non-finite values,
    high < low, a non-positive price, negative volume (the checks of :func:`validate_prices`)."""
    with np.errstate(invalid="ignore"):
        tests = [(blank.any(axis=1), None),
                 (~np.isfinite(block).all(axis=1) & ~blank.any(axis=1), "non-finite value"),
                 (block[:, 1] < block[:, 2], "high < low"),
                 ((block[:, :4] <= 0).any(axis=1), "non-positive price"),
                 (block[:, 4] < 0, "negative volume")]
    reasons: dict[int, str] = {}
    for mask, why in tests:
        for i in np.flatnonzero(mask):
            text = why or "blank " + ", ".join(c for c, b in zip(COLUMNS, blank[i], strict=True)
                                               if b)
            reasons.setdefault(int(i), text)
    return reasons


def _report(reasons: dict[int, str], times: np.ndarray, symbols: np.ndarray,
            name: str) -> list[Dropped]:
    """The dropped rows as ``(symbol, bar time, reason)``, logged as one warning line."""
    dropped = [(str(symbols[i]), _utc(times[i]), why) for i, why in sorted(reasons.items())]
    if dropped:
        shown = [f"{s} {fmt_time(t)} ({why})" for s, t, why in dropped]
        log.warning("prices %r: dropped %d incomplete or invalid bar(s): %s; fix them in the "
                    "file to keep them", name, len(dropped), listing(shown, 3))
    return dropped


def _split(times: np.ndarray, values: np.ndarray, symbols: np.ndarray,
           name: str) -> dict[str, pd.DataFrame]:
    """One frame per symbol; the file's row order is kept within each symbol.

    Rows that cannot be bars are gone already, so only the order is checked here, at once for
    all symbols; a symbol out of order goes through :func:`validate_prices` for its message.
    """
    codes, names = pd.factorize(symbols, sort=True)
    order = np.argsort(codes, kind="stable")
    codes, times = codes[order], times[order]
    index = pd.DatetimeIndex(times.astype("M8[ns]"), name="timestamp").tz_localize("UTC")
    block = values[order]
    edges = np.searchsorted(codes, np.arange(len(names) + 1))
    frames = {str(sym): pd.DataFrame(block[lo:hi], index=index[lo:hi], columns=list(COLUMNS))
              for sym, lo, hi in zip(names, edges[:-1], edges[1:], strict=True)}
    disorder = (np.diff(times) <= 0) & (codes[1:] == codes[:-1])
    for k in np.unique(codes[1:][disorder]):
        with for_symbol(names[k]):
            validate_prices(frames[names[k]], name)
    return frames
