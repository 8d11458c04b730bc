"""A universe: the price bars of several symbols, each exactly as :func:`load_prices` returns them.

Sources (``--data``): a comma list ``yahoo:AAPL,MSFT``, ``ccxt:bybit:BTC/USDT,ETH/USDT`` or
``sample:GOOG`` (one :func:`load_prices`-style load per symbol, so the download cache and
the offline behaviour are those of one symbol); a long-format file ``csv:PATH`` / ``parquet:PATH``
with a ``symbol`` column; a folder ``csv:DIR`` / ``parquet:DIR`` of per-symbol files (symbol = file
name, upper-case). Missing bars stay missing: a symbol is tradable only where it has a bar.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from llmbt.errors import DataError, did_you_mean
from llmbt.feeds.long_format import Dropped, for_symbol, listing, read_long, select
from llmbt.feeds.price_frame import COLUMNS, fmt_time
from llmbt.feeds.prices import DateLike, load_unsliced, parse_range
from llmbt.feeds.sources import PriceUri, file_columns, parse_uri

log = logging.getLogger(__name__)
LIST_SCHEMES: tuple[str, ...] = ("sample", "yahoo", "ccxt")
FILE_SUFFIXES: dict[str, tuple[str, ...]] = {"csv": (".csv.gz", ".csv"), "parquet": (".parquet",)}
MIN_BARS_FOR_SPACING = 10  # fewer bars say too little about a symbol's bar size


@dataclass(frozen=True)
class Universe:
    """Several symbols' normalised bars.

    Attributes:
        prices: symbol -> frame shaped like :func:`load_prices` output (UTC index ``timestamp``,
            float64 ``open..volume``); a symbol's missing bars are absent, never filled.
        source: the URI the universe came from.
        dropped: ``(symbol, bar time, reason)`` for rows or symbols the loader left out; the bar
            time is ``NaT`` for a whole symbol without bars in the requested range.
    """

    prices: dict[str, pd.DataFrame]
    source: str
    dropped: tuple[Dropped, ...] = ()

    @property
    def symbols(self) -> list[str]:
        """The symbols, sorted."""
        return sorted(self.prices)

    @cached_property
    def calendar(self) -> pd.DatetimeIndex:
        """Every bar time of any symbol, sorted, UTC."""
        stamps = [df.index.asi8 for df in self.prices.values()]
        merged = np.unique(np.concatenate(stamps)) if stamps else np.array([], dtype="int64")
        return pd.DatetimeIndex(merged.astype("M8[ns]"), name="timestamp").tz_localize("UTC")

    def panel(self, column: str) -> pd.DataFrame:
        """``column`` as a calendar x symbols frame, NaN where a symbol has no bar.

        Raises:
            DataError: ``column`` is not one of open, high, low, close, volume.
        """
        if column not in COLUMNS:
            raise DataError(f"unknown price column {column!r}.{did_you_mean(column, COLUMNS)} "
                            f"Choose one of: {', '.join(COLUMNS)}")
        out = np.full((len(self.calendar), len(self.prices)), np.nan)
        for j, sym in enumerate(self.symbols):
            frame = self.prices[sym]
            out[self.calendar.get_indexer(frame.index), j] = frame[column].to_numpy()
        return pd.DataFrame(out, index=self.calendar, columns=pd.Index(self.symbols, name="symbol"))

    def tradable(self) -> pd.DataFrame:
        """Booleans, calendar x symbols: True where the symbol has a bar."""
        return self.panel("close").notna()


def is_universe(uri: str) -> bool:
    """True for a comma list of symbols, a file with a ``symbol`` column, or a folder.

    A URI that does not parse is not a universe (:func:`load_prices` then names the problem).

    Raises:
        DataError: the file exists but its header cannot be read.
    """
    try:
        parsed = parse_uri(uri)
    except DataError:
        return False  # not swallowed: the single-symbol loader reports the same error
    if parsed.scheme in LIST_SCHEMES:
        return "," in parsed.target
    path = Path(parsed.target).expanduser()
    if parsed.scheme not in FILE_SUFFIXES or not path.exists():
        return False
    if path.is_dir():
        return True
    return any(str(c).strip().lower() == "symbol" for c in file_columns(path, parsed.scheme))


def parse_symbols(value: str | Sequence[str] | None) -> list[str] | None:
    """Symbols from ``"AAPL,MSFT"``, a list, or a text file (one per line or comma separated,
    ``#`` comments): stripped, upper-cased, de-duplicated in order; None stays None.

    Raises:
        DataError: an empty entry (``"AAPL,,MSFT"``, ``""``; the message gives its position),
            a missing ``.txt``/``.csv`` file, a file without symbols.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return _clean(_entries_of_text(value), value, "--symbols")
    return _clean([(f"entry {i}", str(v)) for i, v in enumerate(value, 1)], value, "--symbols")


def _comma_entries(text: str) -> list[tuple[str, str]]:
    return [(f"entry {i}", part) for i, part in enumerate(text.split(","), 1)]


def _clean(entries: list[tuple[str, str]], value: object, what: str) -> list[str]:
    """Stripped, upper-cased, de-duplicated names; ``entries`` are (position, text) pairs."""
    if not entries:
        raise DataError(f"{what} {value!r} lists no symbols; give e.g. AAPL,MSFT or a file")
    out: list[str] = []
    for where, text in entries:
        name = text.strip().upper()
        if not name:
            raise DataError(f"{what} {value!r}: empty symbol at {where}; remove the extra "
                            "comma or write the symbol, e.g. AAPL,MSFT")
        out += [] if name in out else [name]
    return out


def _entries_of_text(value: str) -> list[tuple[str, str]]:
    path = Path(value).expanduser()
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [(f"{path} line {n} entry {i}", part)
                for n, line in enumerate(lines, 1) if line.split("#", 1)[0].strip()
                for i, part in enumerate(line.split("#", 1)[0].split(","), 1)]
    if value.strip().lower().endswith((".txt", ".csv")):
        raise DataError(f"symbols file not found: {value!r} (looked in {Path.cwd()}); "
                        "check the path, or list the symbols like AAPL,MSFT")
    return _comma_entries(value)


def load_universe(uri: str, start: DateLike = None, end: DateLike = None, *, interval: str = "1d",
                  symbols: str | Sequence[str] | None = None, refresh: bool = False) -> Universe:
    """Load every symbol of a universe source.

    Args:
        uri: ``yahoo:A,B``, ``ccxt:EXCHANGE:A/Q,B/Q``, ``sample:NAME[,NAME]``, ``csv:``/
            ``parquet:`` of a long file with a ``symbol`` column or of a folder of per-symbol
            files; a single-symbol list URI (``yahoo:AAPL``) gives a one-symbol universe.
        start, end: inclusive range, as for :func:`load_prices`; a symbol without bars in it is
            dropped (logged, and recorded in ``dropped``).
        interval: bar size for downloads; files are read as they are.
        symbols: a subset to keep (anything :func:`parse_symbols` takes).
        refresh: re-download even when the cache covers the range.

    Raises:
        DataError: unknown or empty symbol, mixed currencies or bar sizes, a file without a
            ``symbol`` column, no symbol with bars in the range, any symbol's invalid bars (the
            message names the symbol and the date).
    """
    parsed, wanted = parse_uri(uri), parse_symbols(symbols)
    lo, hi = parse_range(start, end)
    if parsed.scheme in LIST_SCHEMES:
        frames, dropped = _load_list(parsed, wanted, lo, hi, interval, refresh), []
    elif parsed.scheme in FILE_SUFFIXES and Path(parsed.target).expanduser().is_dir():
        frames, dropped = _load_folder(parsed, wanted, lo, hi, interval), []
    elif parsed.scheme in FILE_SUFFIXES:
        frames, dropped = read_long(parsed, wanted)
    else:
        raise DataError(f"price source {uri!r} cannot hold a universe; use e.g. yahoo:AAPL,MSFT, "
                        "a long csv: file with a symbol column, or a folder of per-symbol files")
    return _finish(frames, str(parsed), dropped, lo, hi)


def _load_list(parsed: PriceUri, wanted: list[str] | None, lo: pd.Timestamp | None,
               hi: pd.Timestamp | None, interval: str, refresh: bool) -> dict[str, pd.DataFrame]:
    exchange, _, names = parsed.target.partition(":")  # ccxt:EXCHANGE:A/Q,B/Q
    prefix, names = (f"{exchange}:", names) if parsed.scheme == "ccxt" else ("", parsed.target)
    chosen = select(_clean(_comma_entries(names), names, str(parsed)), wanted, str(parsed))
    if parsed.scheme == "ccxt":
        _check_quotes(chosen, str(parsed))
    frames = {}
    for sym in chosen:
        one = PriceUri(parsed.scheme, prefix + sym)
        with for_symbol(sym):
            frames[sym] = load_unsliced(one, lo, hi, interval, refresh)
    return frames


def _check_quotes(symbols: list[str], source: str) -> None:
    """ccxt symbols ``BASE/QUOTE[:SETTLE]`` must share one quote currency."""
    quotes = {s: s.split("/", 1)[1].split(":", 1)[0] if "/" in s else "" for s in symbols}
    first = symbols[0]
    for sym, quote in quotes.items():
        if quote != quotes[first]:
            raise DataError(f"{source}: mixed currencies, {first} is quoted in "
                            f"{quotes[first] or '?'} but {sym} in {quote or '?'}; a universe "
                            "trades in one currency: pick symbols with the same quote (e.g. /USDT)")


def _load_folder(parsed: PriceUri, wanted: list[str] | None, lo: pd.Timestamp | None,
                 hi: pd.Timestamp | None, interval: str) -> dict[str, pd.DataFrame]:
    folder, suffixes = Path(parsed.target).expanduser(), FILE_SUFFIXES[parsed.scheme]
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        suffix = next((s for s in suffixes if path.name.lower().endswith(s)), None)
        if suffix is None or not path.is_file():
            continue
        sym = path.name[:-len(suffix)].strip().upper()
        if sym in files:
            raise DataError(f"{parsed}: {files[sym].name} and {path.name} are both symbol {sym}; "
                            "keep one file per symbol")
        files[sym] = path
    if not files:
        raise DataError(f"{parsed}: no {' or '.join(suffixes)} files in the folder; put one "
                        "file per symbol there (e.g. AAPL.csv)")
    frames = {}
    for sym in select(sorted(files), wanted, str(parsed)):
        with for_symbol(sym):
            frames[sym] = load_unsliced(PriceUri(parsed.scheme, str(files[sym])), lo, hi, interval,
                                        False)
    return frames


def _finish(frames: dict[str, pd.DataFrame], source: str, dropped: list[Dropped],
            lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> Universe:
    """Slice each symbol to ``lo..hi``, drop the empty ones, check the bar sizes agree."""
    kept, empty = {}, []
    for sym, df in frames.items():
        keep = np.ones(len(df), dtype=bool)
        keep &= True if lo is None else df.index >= lo
        keep &= True if hi is None else df.index <= hi
        if keep.any():
            kept[sym] = df[keep]
        else:
            empty.append((sym, pd.NaT, f"no bars in range; its data covers "
                                       f"{fmt_time(df.index[0])} to {fmt_time(df.index[-1])}"))
    span = f"from {fmt_time(lo) if lo else 'the beginning'} to {fmt_time(hi) if hi else 'the end'}"
    if not kept:
        raise DataError(f"prices {source!r}: no symbol has bars {span}; pick dates the data "
                        "covers")
    if empty:
        log.warning("prices %r: dropped %d symbol(s) without bars %s: %s", source, len(empty),
                    span, listing([s for s, _, _ in empty]))
    _check_bar_sizes(kept, source)
    return Universe(kept, source, tuple(dropped) + tuple(empty))


def _check_bar_sizes(frames: dict[str, pd.DataFrame], source: str) -> None:
    """Each symbol's typical bar spacing (median gap) must match the others' (within 2x)."""
    sizes = {s: int(np.median(np.diff(df.index.asi8))) for s, df in frames.items()
             if len(df) >= MIN_BARS_FOR_SPACING}
    if not sizes:
        return
    small, large = min(sizes, key=sizes.__getitem__), max(sizes, key=sizes.__getitem__)
    if sizes[large] > 2 * sizes[small]:
        raise DataError(f"prices {source!r}: mixed bar sizes, {small} has {_span(sizes[small])} "
                        f"bars but {large} has {_span(sizes[large])} bars (typical spacing); "
                        "give every symbol the same bar size")


def _span(ns: int) -> str:
    step = pd.Timedelta(ns, unit="ns")
    for unit, size in (("d", pd.Timedelta(days=1)), ("h", pd.Timedelta(hours=1)),
                       ("m", pd.Timedelta(minutes=1))):
        if step >= size and step % size == pd.Timedelta(0):
            return f"{step // size}{unit}"
    return str(step)
