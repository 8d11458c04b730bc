"""The news cache: one Parquet file per (source, symbol) under ``llmbt_home()/news/<source>/``.

The days a file covers (``start``..``end``, UTC days, inclusive) are kept in its schema metadata,
like the price cache of :mod:`llmbt.feeds.sources`. A fetch downloads only the days the file does
not cover yet and writes each symbol's file as soon as that symbol is done, so a failure on one
symbol keeps every symbol fetched before it; a failed download writes nothing. A file covers only
the days its provider served: the span from the first to the last month that returned headlines
(each month is one provider call), so months a plan does not reach are fetched again next time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from llmbt.errors import DataError, unknown_name_error
from llmbt.feeds.newsources import alpaca, finnhub, massive, yahoo
from llmbt.feeds.newsources.common import DAY, frame, month_chunks
from llmbt.feeds.sources import cache_file, one_line, read_cache, write_cache
from llmbt.feeds.universe import parse_symbols

PROVIDERS: dict[str, ModuleType] = {m.NAME: m for m in (alpaca, finnhub, massive, yahoo)}
SOURCES: tuple[str, ...] = (*sorted(PROVIDERS), "file")
LOAD_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "headline", "source")
DayLike = str | date | pd.Timestamp | None
Cover = tuple[pd.Timestamp, pd.Timestamp] | None
Month = tuple[pd.Timestamp, pd.Timestamp, bool]  # first day, last day, returned headlines
log = logging.getLogger(__name__)


def provider(source: str) -> ModuleType:
    """The provider module of ``source`` (case-insensitive), or one line naming the choices."""
    name = str(source).strip().lower()
    if name == "file":
        raise DataError("news source 'file' is read directly, nothing to fetch: pass the file to "
                        "--news (CSV/JSONL/Parquet with timestamp, symbol, headline)")
    if name not in PROVIDERS:
        raise unknown_name_error("news source", str(source), SOURCES, DataError)
    return PROVIDERS[name]


def news_cache_path(source: str, symbol: str) -> Path:
    """``llmbt_home()/news/<source>/<SYMBOL>-<digest>.parquet``."""
    return cache_file(f"news/{source}", symbol, f"{source}:{symbol}")


def news_cache_dir(source: str) -> Path:
    """The folder holding ``source``'s cached files: ``llmbt_home()/news/<source>``."""
    return news_cache_path(source, "_").parent


def day(value: DayLike, label: str) -> pd.Timestamp:
    """A day (naive midnight) from ``YYYY-MM-DD``, a date or a Timestamp (UTC when tz-aware)."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{label} {value!r} is not a date ({one_line(exc)}); write YYYY-MM-DD, "
                        "e.g. 2024-01-31") from exc
    if ts is pd.NaT:
        raise DataError(f"{label} {value!r} is not a date; write YYYY-MM-DD, e.g. 2024-01-31")
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tz else ts).normalize()


def day_range(start: DayLike, end: DayLike) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``start``..``end`` as days; ``end`` None is today (UTC)."""
    lo = day(start, "start")
    hi = day(end, "end") if end is not None else pd.Timestamp.now("UTC").tz_localize(None).normalize()
    if lo > hi:
        raise DataError(f"start {lo:%Y-%m-%d} is after end {hi:%Y-%m-%d}; swap them")
    return lo, hi


def fetch_news(source: str, symbols: str | Sequence[str], start: DayLike, end: DayLike = None, *,
               refresh: bool = False) -> list[Path]:
    """Download each symbol's headlines for the days ``start``..``end`` into the cache.

    Args:
        source: a provider of :data:`PROVIDERS` (alpaca, finnhub, massive, yahoo).
        symbols: ``"AAPL,MSFT"``, a file with one symbol a line, or a list.
        start: first day (UTC), e.g. ``"2024-01-01"``.
        end: last day (UTC, inclusive); None is today.
        refresh: ignore what is cached and download the whole range again.

    Returns:
        One cache file per symbol, in order; each is written as soon as its symbol is done.

    Raises:
        DataError: unknown source, bad symbols or dates, missing API key, a provider error or no
            network (symbols finished before the failure stay cached).
    """
    module, names = provider(source), parse_symbols(symbols)
    lo, hi = day_range(start, end)
    return [fetch_symbol(module, name, lo, hi, refresh) for name in names]


def fetch_symbol(module: ModuleType, symbol: str, lo: pd.Timestamp, hi: pd.Timestamp,
                 refresh: bool = False) -> Path:
    """Fill ``symbol``'s cache file over ``lo``..``hi``, downloading only what it lacks.

    The file records the days the provider actually served (:func:`_settle`), not the days asked
    for: a plan with one year of history returns nothing for older months, and those stay uncached.
    """
    path = news_cache_path(module.NAME, symbol)
    cached = None if refresh else read_cache(path, "news")
    rows, cover = (cached[0], _cover(cached[1])) if cached else (frame([]), None)
    pieces = _missing(cover, lo, hi, module.RECENT_ONLY)
    if pieces:
        rows, cover = _download(module, symbol, pieces, rows, cover)
        write_cache(path, rows, _meta(module.NAME, symbol, cover, len(rows)))
    log.debug("%s %s: %d headline(s), %s", module.NAME, symbol, len(rows),
              "downloaded" if pieces else "already cached")
    return path


def _download(module: ModuleType, symbol: str, pieces: list[Cover], rows: pd.DataFrame,
              cover: Cover) -> tuple[pd.DataFrame, Cover]:
    """``rows`` with ``pieces`` downloaded, and the days now covered."""
    months: list[Month] = []
    for a, b in pieces:
        got = within(module.download(symbol, a, b), a, b)
        rows = _merge(rows, got)
        if module.RECENT_ONLY:
            cover = _extend(cover, _recent_cover(got, a, b))
        else:
            months += _months(got, a, b)
    return rows, (_settle(module.NAME, symbol, cover, months) if months else cover)


def _cover(meta: dict[str, Any]) -> Cover:
    if not meta.get("start") or not meta.get("end"):
        return None
    return pd.Timestamp(meta["start"]), pd.Timestamp(meta["end"])


def _meta(source: str, symbol: str, cover: Cover, n: int) -> dict[str, Any]:
    span = (None, None) if cover is None else tuple(f"{d:%Y-%m-%d}" for d in cover)
    return {"source": source, "symbol": symbol, "start": span[0], "end": span[1], "rows": n,
            "fetched_at": pd.Timestamp.now("UTC").isoformat()}


def _missing(cover: Cover, lo: pd.Timestamp, hi: pd.Timestamp, recent_only: bool) -> list[Cover]:
    """The day ranges to download so that the cache covers ``lo``..``hi`` (and stays one span)."""
    if cover is None:
        return [(lo, hi)]
    s0, e0 = cover
    if recent_only:  # one call returns the same recent items whatever the range
        return [] if s0 <= lo and hi <= e0 else [(lo, hi)]
    return ([(lo, s0 - DAY)] if lo < s0 else []) + ([(e0 + DAY, hi)] if hi > e0 else [])


def _recent_cover(got: pd.DataFrame, a: pd.Timestamp, b: pd.Timestamp) -> Cover:
    """The days a recent-only download covers: from its oldest item (or ``a``) to ``b``."""
    if got.empty:
        return None
    return max(a, got["timestamp"].min().tz_convert(None).normalize()), b


def _months(got: pd.DataFrame, a: pd.Timestamp, b: pd.Timestamp) -> list[Month]:
    """Each month of ``a``..``b`` (one provider call each, :func:`month_chunks`) and whether it
    returned a headline."""
    days = got["timestamp"].dt.tz_convert(None).dt.normalize()
    return [(lo, hi, bool(((days >= lo) & (days <= hi)).any())) for lo, hi in month_chunks(a, b)]


def _settle(source: str, symbol: str, cover: Cover, months: list[Month]) -> Cover:
    """The days the cache covers after a download of ``months``: from the first month that
    returned headlines (or the old cover) to the last one. Empty months at either end stay
    uncovered (a plan's history limit, a provider's delay); empty months between served ones are
    taken as days without news. Every empty stretch is logged in one line."""
    spans = sorted([*months, *([] if cover is None else [(*cover, True)])])
    served = [(lo, hi) for lo, hi, ok in spans if ok]
    new = (served[0][0], served[-1][1]) if served else None
    empty = _stretches([(lo, hi) for lo, hi, ok in spans if not ok])
    if empty:
        kept = ("nothing is recorded as fetched (the plan may not serve these days, or the symbol "
                "has no news)" if new is None else f"the cache records {new[0]:%Y-%m-%d}.."
                f"{new[1]:%Y-%m-%d} as fetched (empty months at its ends are not: the plan may "
                "not serve them)")
        log.warning("%s returned no headlines for %s on %s; %s", source, symbol,
                    ", ".join(f"{lo:%Y-%m-%d}..{hi:%Y-%m-%d}" for lo, hi in empty), kept)
    return new


def _stretches(days: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Sorted day ranges with touching ones joined."""
    out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for lo, hi in days:
        if out and lo <= out[-1][1] + DAY:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _extend(cover: Cover, new: Cover) -> Cover:
    if new is None or cover is None:
        return cover if new is None else new
    if new[0] <= cover[1] + DAY and cover[0] <= new[1] + DAY:
        return min(cover[0], new[0]), max(cover[1], new[1])
    return new  # disjoint (recent-only): the recent span is what the cache now covers


def _merge(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    both = pd.concat([old, new], ignore_index=True) if len(old) else new
    key = both["id"].where(both["id"] != "",
                           both["timestamp"].astype(str) + "|" + both["headline"])
    keep = ~pd.DataFrame({"s": both["symbol"], "k": key}).duplicated(keep="last")
    return both[keep.to_numpy()].sort_values("timestamp", kind="stable").reset_index(drop=True)


def within(df: pd.DataFrame, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> pd.DataFrame:
    """Rows published on the UTC days ``lo``..``hi`` (None: open)."""
    keep = pd.Series(True, index=df.index)
    if lo is not None:
        keep &= df["timestamp"] >= lo.tz_localize("UTC")
    if hi is not None:
        keep &= df["timestamp"] < (hi + DAY).tz_localize("UTC")
    return df[keep.to_numpy()].reset_index(drop=True)


def load_cached_news(source: str, symbols: str | Sequence[str], start: DayLike = None,
                     end: DayLike = None) -> pd.DataFrame:
    """Read cached headlines offline, with the columns of :func:`llmbt.feeds.news.load_news`.

    Args:
        source: a provider of :data:`PROVIDERS`.
        symbols: ``"AAPL,MSFT"``, a file with one symbol a line, or a list.
        start, end: the days wanted (UTC, inclusive); None takes what is cached on that side.

    Returns:
        ``timestamp`` (UTC), ``symbol``, ``headline``, ``source`` (the publisher), stably sorted
        by timestamp, with a fresh RangeIndex.

    Raises:
        DataError: a symbol not cached, or cached over fewer days than asked (the message gives
            the ``bt news fetch`` command that fills it).
    """
    module, names = provider(source), parse_symbols(symbols)
    lo = None if start is None else day(start, "start")
    hi = None if end is None else day(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"start {lo:%Y-%m-%d} is after end {hi:%Y-%m-%d}; swap them")
    frames = [frame([]), *(_cached_rows(module, name, lo, hi) for name in names)]
    out = within(pd.concat(frames, ignore_index=True), lo, hi)
    return out.loc[:, list(LOAD_COLUMNS)].sort_values("timestamp", kind="stable") \
        .reset_index(drop=True)


def _cached_rows(module: ModuleType, symbol: str, lo: pd.Timestamp | None,
                 hi: pd.Timestamp | None) -> pd.DataFrame:
    path = news_cache_path(module.NAME, symbol)
    cached = read_cache(path, "news")
    cover = None if cached is None else _cover(cached[1])
    if cover is not None and (lo is None or lo >= cover[0]) and (hi is None or hi <= cover[1]):
        return cached[0]
    span = f"{lo:%Y-%m-%d}" if lo is not None else "START"
    fix = (f"run `bt news fetch {module.NAME} --symbols {symbol} --start {span}"
           f"{'' if hi is None else f' --end {hi:%Y-%m-%d}'}` on a connected machine")
    if module.RECENT_ONLY:
        fix += "; yahoo keeps recent items only: use alpaca, finnhub or massive for history"
    if cached is None:
        raise DataError(f"no {module.NAME} news cached for {symbol} (looked for {path}); {fix}")
    have = "no days" if cover is None else f"{cover[0]:%Y-%m-%d}..{cover[1]:%Y-%m-%d}"
    want = f"{'…' if lo is None else f'{lo:%Y-%m-%d}'}..{'…' if hi is None else f'{hi:%Y-%m-%d}'}"
    raise DataError(f"{module.NAME} news cache of {symbol} covers {have}, not {want}; {fix}")
