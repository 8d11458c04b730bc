"""Where prices come from: one reader per URI scheme, the network calls, and the download cache.

A price URI is ``SCHEME:TARGET``. Each scheme in :data:`SOURCES` has a reader that returns a *raw*
frame (any column case, a date index or column); :mod:`llmbt.feeds.price_frame` normalises and validates it.

The network is touched in exactly two small functions, so tests replace only those:
:func:`_yahoo_download` (returns yfinance's raw frame) and :func:`_ccxt_exchange` (returns an
exchange object whose ``fetch_ohlcv`` is called page by page). Downloads are cached as plain
Parquet under ``llmbt_home()/prices``; the fetched range is kept in the file's schema metadata.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from llmbt.errors import DataError, LlmbtError, require, unknown_name_error
from llmbt.feeds.network import failure_line, hushed, one_line
from llmbt.paths import llmbt_home

Bound = pd.Timestamp | None
Reader = Callable[[str, Bound, Bound, str], pd.DataFrame]

SAMPLES: tuple[str, ...] = ("BTCUSD", "EURUSD", "GOOG")
YAHOO_INTERVALS: tuple[str, ...] = (
    "1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo",
)
_OHLCV = ("open", "high", "low", "close", "volume")
_YAHOO_DAILY = frozenset({"1d", "5d", "1wk", "1mo", "3mo"})
_TIMEFRAME_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
                 "M": 2_592_000_000, "y": 31_536_000_000}
_REFETCH = {"price": "bt data fetch URI --start ... --end ... --refresh",
            "news": "bt news fetch SOURCE --symbols ... --start ... --refresh"}
OFFLINE_FIX = ("Run `bt data fetch` on a connected machine to fill the cache, "
               "or use a local source such as csv:PATH or sample:GOOG.")


@dataclass(frozen=True)
class Scheme:
    """One registered URI scheme."""

    reader: Reader
    example: str
    downloads: bool = False


@dataclass(frozen=True)
class PriceUri:
    """A parsed ``SCHEME:TARGET`` price URI."""

    scheme: str
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"

    @property
    def downloads(self) -> bool:
        """True when the source is on the network (and therefore cached)."""
        return SOURCES[self.scheme].downloads

    def read(self, start: Bound, end: Bound, interval: str) -> pd.DataFrame:
        """The source's raw frame; ``start``/``end`` are UTC bounds or None."""
        return SOURCES[self.scheme].reader(self.target, start, end, interval)


def parse_uri(uri: str) -> PriceUri:
    """Split ``SCHEME:TARGET`` and check the scheme against :data:`SOURCES`."""
    if not isinstance(uri, str) or ":" not in uri:
        hint = f" Did you mean 'csv:{uri}'?" if str(uri).lower().endswith(".csv") else ""
        raise DataError(f"price source {uri!r} has no scheme; write SCHEME:TARGET, e.g. "
                        f"sample:GOOG, csv:prices.csv or yahoo:AAPL.{hint}")
    scheme, target = uri.split(":", 1)
    scheme, target = scheme.strip().lower(), target.strip()
    if scheme not in SOURCES:
        raise unknown_name_error("data source", scheme, SOURCES, DataError)
    if not target:
        raise DataError(f"price source {uri!r} names nothing after '{scheme}:'; "
                        f"e.g. {SOURCES[scheme].example}")
    return PriceUri(scheme, target)


def one_symbol_uri(uri: str) -> PriceUri:
    """:func:`parse_uri`, refusing a comma list of symbols (that is a universe)."""
    parsed = parse_uri(uri)
    if parsed.scheme in ("sample", "yahoo", "ccxt") and "," in parsed.target:
        first = parsed.target.split(",")[0].strip()
        raise DataError(f"price source {uri!r} lists several symbols, a single-symbol strategy "
                        f"trades one (e.g. {parsed.scheme}:{first}); load the list as a universe "
                        "with a portfolio strategy (e.g. --strategy llm_news_portfolio, --symbols "
                        "to pick some)")
    return parsed


def symbol_of(uri: str) -> str:
    """The instrument name a URI trades, as shown to the model: ``sample:GOOG`` → GOOG,
    ``ccxt:bybit:BTC/USDT`` → BTC/USDT, ``csv:data/aapl.csv`` → aapl."""
    tail = uri.split(":")[-1]
    return tail.rsplit("/", 1)[-1].rsplit(".", 1)[0] if uri.startswith(("csv:", "parquet:")) else tail


# ---------------------------------------------------------------- local files


def _sample_dir() -> Path:
    spec = importlib.util.find_spec("backtesting")
    if spec is None or spec.origin is None:
        raise DataError("sample: data needs the 'backtesting' package; pip install backtesting")
    return Path(spec.origin).parent / "test"


def _read_sample(name: str, start: Bound, end: Bound, interval: str) -> pd.DataFrame:
    key = name.upper()
    if key not in SAMPLES:
        raise unknown_name_error("sample", name, SAMPLES, DataError)
    return _read_csv_file(_sample_dir() / f"{key}.csv")


def _existing_file(target: str, kind: str) -> Path:
    path = Path(target).expanduser()
    if not path.is_file():
        raise DataError(f"{kind} file not found: {str(path)!r} (looked in {Path.cwd()}); "
                        "check the path")
    return path


def _read_csv_file(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read CSV {str(path)!r}: {one_line(exc)}; "
                        "fix the file (comma-separated, one header row)") from exc
    first = df.columns[0] if len(df.columns) else None
    if isinstance(first, str) and (first.startswith("Unnamed:") or not first.strip()):
        df = df.set_index(first).rename_axis(None)  # the date index of df.to_csv()
    return df


def _read_csv(target: str, start: Bound, end: Bound, interval: str) -> pd.DataFrame:
    return _read_csv_file(_existing_file(target, "CSV"))


def _read_parquet(target: str, start: Bound, end: Bound, interval: str) -> pd.DataFrame:
    path = _existing_file(target, "Parquet")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"cannot read Parquet {str(path)!r}: {one_line(exc)}; "
                        "check that it is a Parquet file") from exc


def file_columns(path: Path, scheme: str) -> list[str]:
    """The column names of a ``csv`` (also .csv.gz) or ``parquet`` file, without reading rows."""
    try:
        if scheme == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {scheme} file {str(path)!r}: {one_line(exc)}; "
                        "check the path and the format") from exc


# ---------------------------------------------------------------- network


def _network(label: str, keys: str | None, fn: Callable[..., Any], *args: Any,
             **kwargs: Any) -> Any:
    """Call ``fn``; a failure becomes one DataError line naming what failed (a refused key,
    a rate limit, a timeout, DNS, no connection, an HTTP status) and its fix; ``keys`` names
    the variables holding the source's API keys (None: it has none)."""
    try:
        return fn(*args, **kwargs)
    except LlmbtError:  # already one clear line (bad data, a missing extra)
        raise
    except Exception as exc:
        if type(exc).__name__ == "BadSymbol":
            raise DataError(f"{label} rejected the symbol: {one_line(exc)}; "
                            "check the spelling, e.g. BTC/USDT") from exc
        raise DataError(failure_line(label, exc, keys, OFFLINE_FIX)) from exc


def _span(start: Bound, end: Bound) -> str:
    def day(ts: Bound) -> str | None:  # 2011-01-01, not 2011-01-01 00:00:00+00:00
        return None if ts is None else f"{ts:%Y-%m-%d}" if ts == ts.normalize() else str(ts)

    return f"{day(start) or 'the beginning'} to {day(end) or 'now'}"


def _yahoo_download(ticker: str, start: Any, end: Any, interval: str) -> pd.DataFrame:
    """The only Yahoo network call: yfinance's raw frame, columns ``(field, ticker)``."""
    yf = require("yfinance", "yahoo", f"yahoo:{ticker}")

    span = {"period": "max"} if start is None and end is None else {"start": start, "end": end}
    with hushed("yfinance"):  # its own error log and pandas warnings: llmbt says it in one line
        return yf.download(ticker, **span, interval=interval, auto_adjust=True, progress=False,
                           threads=False, multi_level_index=True)


def _yahoo_bound(ts: Bound, interval: str) -> Any:
    if ts is None:
        return None
    return ts.strftime("%Y-%m-%d") if interval in _YAHOO_DAILY else ts.to_pydatetime()


def _read_yahoo(ticker: str, start: Bound, end: Bound, interval: str) -> pd.DataFrame:
    if interval not in YAHOO_INTERVALS:
        raise unknown_name_error("yahoo interval", interval, YAHOO_INTERVALS, DataError)
    ticker = ticker.upper()
    stop = None if end is None else end + pd.Timedelta(days=1)  # yfinance's end is exclusive
    raw = _network("Yahoo Finance", None, _yahoo_download, ticker, _yahoo_bound(start, interval),
                   _yahoo_bound(stop, interval), interval)
    if raw is None or raw.empty:
        raise DataError(f"Yahoo Finance returned no rows for {ticker!r} ({interval}, "
                        f"{_span(start, end)}): unknown ticker, or Yahoo is unreachable. "
                        f"{OFFLINE_FIX}")
    return _flatten_yahoo(raw, ticker, interval)


def _flatten_yahoo(raw: pd.DataFrame, ticker: str, interval: str) -> pd.DataFrame:
    """One ticker's plain OHLCV columns; daily bars keep the exchange's session date."""
    df = raw
    if isinstance(df.columns, pd.MultiIndex):
        levels = [i for i in range(df.columns.nlevels)
                  if ticker in df.columns.get_level_values(i)]
        if not levels:
            raise DataError(f"Yahoo Finance frame has no columns for {ticker!r} "
                            f"(got {list(df.columns)}); check the ticker")
        df = df.xs(ticker, axis=1, level=levels[0])
    if isinstance(df.index, pd.DatetimeIndex) and df.index.tz is not None \
            and interval in _YAHOO_DAILY:
        df = df.tz_localize(None)  # 2024-01-02 00:00 New York -> the session date 2024-01-02
    return df


def _timeframe_ms(interval: str) -> int:
    match = re.fullmatch(r"(\d+)([smhdwMy])", interval)
    if not match or int(match.group(1)) == 0:
        raise DataError(f"ccxt timeframe {interval!r} is not valid; use e.g. 1m, 1h, 4h, 1d, 1w")
    return int(match.group(1)) * _TIMEFRAME_MS[match.group(2)]


def _check_exchange_name(name: str, uri: str) -> None:
    ccxt = require("ccxt", "crypto", uri)

    if name not in ccxt.exchanges:
        raise unknown_name_error("ccxt exchange", name, ccxt.exchanges, DataError)


def _ccxt_exchange(name: str) -> Any:
    """Create the ccxt exchange (no network yet); API keys come only from the environment.

    Keys are read from ``CCXT_<EXCHANGE>_API_KEY`` and ``CCXT_<EXCHANGE>_SECRET``; public OHLCV
    data needs neither.
    """
    ccxt = require("ccxt", "crypto", f"ccxt:{name}")

    config: dict[str, Any] = {"enableRateLimit": True}
    key = os.environ.get(f"CCXT_{name.upper()}_API_KEY")
    secret = os.environ.get(f"CCXT_{name.upper()}_SECRET")
    if key and secret:
        config.update(apiKey=key, secret=secret)
    return getattr(ccxt, name)(config)


def _key_vars(name: str) -> str:
    """The variables holding ``name``'s ccxt keys: ``CCXT_BYBIT_API_KEY and CCXT_BYBIT_SECRET``."""
    return f"CCXT_{name.upper()}_API_KEY and CCXT_{name.upper()}_SECRET"


def _ccxt_target(target: str) -> tuple[str, str]:
    """``bybit:BTC/USDT`` -> ``("bybit", "BTC/USDT")``; the symbol may hold ':' (perpetuals)."""
    name, _, symbol = target.partition(":")
    name, symbol = name.strip().lower(), symbol.strip()
    if not name or not symbol:
        raise DataError(f"ccxt source 'ccxt:{target}' needs EXCHANGE:SYMBOL, "
                        "e.g. ccxt:bybit:BTC/USDT")
    _check_exchange_name(name, f"ccxt:{target}")
    return name, symbol


def _read_ccxt(target: str, start: Bound, end: Bound, interval: str) -> pd.DataFrame:
    name, symbol = _ccxt_target(target)
    if start is None:
        raise DataError(f"ccxt:{target} needs a start date; pass one, e.g. --start 2024-01-01")
    exchange = _ccxt_exchange(name)
    timeframes = getattr(exchange, "timeframes", None)
    if timeframes and interval not in timeframes:
        raise unknown_name_error(f"{name} timeframe", interval, timeframes, DataError)
    stop = end if end is not None else pd.Timestamp.now(tz="UTC")
    rows = fetch_candles(exchange, f"ccxt exchange {name!r}", symbol, interval,
                         _ms(start), _ms(stop), keys=_key_vars(name))
    if not rows:
        raise DataError(f"ccxt exchange {name!r} returned no {interval} candles for {symbol!r} "
                        f"from {_span(start, end)}; check the symbol and dates")
    df = pd.DataFrame([r[:6] for r in rows], columns=["timestamp", *_OHLCV])
    df["timestamp"] = pd.to_datetime(df["timestamp"].astype("int64"), unit="ms", utc=True)
    return df


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)  # .value is always nanoseconds


def fetch_candles(exchange: Any, label: str, symbol: str, timeframe: str, since_ms: int,
                  end_ms: int, limit: int = 1000, keys: str | None = None) -> list[list]:
    """Page through ``exchange.fetch_ohlcv`` from ``since_ms`` until ``end_ms`` (inclusive).

    Each request starts one timeframe after the newest candle seen so far; paging stops once
    ``end_ms`` is passed or a page brings no new candle. Returns rows sorted, without duplicates.
    ``keys`` names the variables of the exchange's API keys, for the line a refused key gives.
    """
    step, since, rows = _timeframe_ms(timeframe), since_ms, {}
    while since <= end_ms:
        page = _network(label, keys, exchange.fetch_ohlcv, symbol, timeframe, since=since,
                        limit=limit)
        fresh = {int(r[0]): list(r) for r in page or [] if int(r[0]) not in rows}
        if not fresh:
            break
        rows.update(fresh)
        since = max(fresh) + step
    return [rows[t] for t in sorted(rows) if since_ms <= t <= end_ms]


SOURCES: dict[str, Scheme] = {
    "sample": Scheme(_read_sample, "sample:GOOG (also EURUSD, BTCUSD)"),
    "csv": Scheme(_read_csv, "csv:data/prices.csv"),
    "parquet": Scheme(_read_parquet, "parquet:data/prices.parquet"),
    "yahoo": Scheme(_read_yahoo, "yahoo:AAPL", downloads=True),
    "ccxt": Scheme(_read_ccxt, "ccxt:bybit:BTC/USDT", downloads=True),
}


# ---------------------------------------------------------------- cache


def cache_file(folder: str, name: str, key: str) -> Path:
    """``llmbt_home()/<folder>/<safe name>-<digest of key>.parquet``: a readable, unique file name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return llmbt_home() / folder / f"{safe}-{digest}.parquet"


def cache_path(uri: str, interval: str) -> Path:
    """``llmbt_home()/prices/<safe-name>.parquet`` for a download URI and interval."""
    return cache_file("prices", f"{uri}_{interval}", f"{uri}|{interval}")


def read_cache(path: Path, kind: str = "price") -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The cached frame and its metadata (``start``, ``end``, ``fetched_at``), or None.

    ``kind`` names the cache in the error for an unreadable file (``price``, ``news``).
    """
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(b"llmbt", b"{}"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{kind} cache {str(path)!r} is unreadable ({one_line(exc)}); "
                        f"delete it, or refetch with `{_REFETCH.get(kind, _REFETCH['price'])}`") \
            from exc
    return table.to_pandas(), meta


def write_cache(path: Path, df: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Write ``df`` as plain Parquet with ``meta`` as JSON in the schema metadata (atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=True)
    extra = {**(table.schema.metadata or {}), b"llmbt": json.dumps(meta).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table.replace_schema_metadata(extra), tmp)
    os.replace(tmp, path)
