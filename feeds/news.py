"""Headlines: load and validate a news file, and align each headline to the bar it may trade on.

Row numbers in error messages count data rows from 1 (a CSV header line is not counted).
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from llmbt.errors import DataError, did_you_mean

log = logging.getLogger(__name__)

REQUIRED: tuple[str, ...] = ("timestamp", "symbol", "headline")
OPTIONAL: tuple[str, ...] = ("source",)


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _read_jsonl(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype=False)  # no type guessing: keep text as text


READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": pd.read_parquet,
}


def load_news(path: str | Path, *, tz: str | None = None, max_chars: int = 1000,
              symbol: str | None = None) -> pd.DataFrame:
    """Read and validate headlines from CSV, JSONL or Parquet (chosen by extension).

    Args:
        path: file with columns ``timestamp, symbol, headline`` and optionally ``source``
            (``.csv``, ``.jsonl``, either gzipped, or ``.parquet``).
        tz: time zone (IANA name) for naive timestamps; required when any are naive or
            dates only. Timestamps with an offset are converted to UTC whatever ``tz`` says.
            A date without a time (``2013-06-17``) means "published some time that day in
            ``tz``": its ``timestamp`` is the end of that day (next midnight in ``tz``, as UTC).
        max_chars: longest headline accepted.
        symbol: keep only this symbol's headlines (case-insensitive).

    Returns:
        Columns ``timestamp`` (UTC), ``symbol``, ``headline`` (stripped), ``source`` ("" when
        absent), ``date_only`` (bool) and ``day`` (the local date of a date-only row, naive;
        NaT for timed rows), stably sorted by timestamp, with a fresh RangeIndex. A headline
        tagged to several symbols stays one row per symbol; rows with a blank symbol are dropped
        with one warning.

    Raises:
        DataError: unreadable file, missing columns, bad timestamps or headlines, unknown symbol,
            no row with a symbol.
    """
    path = Path(path).expanduser()
    label = f"news {str(path)!r}"
    df = _columns(_read(path, label), label)
    if not isinstance(max_chars, int) or max_chars < 1:
        raise DataError(f"max_chars {max_chars!r} must be a positive integer, e.g. 1000")
    times, day = _parse_times(df["timestamp"], tz, label)
    out = pd.DataFrame({
        "timestamp": times,
        "symbol": _text(df["symbol"]),
        "headline": _headlines(_text(df["headline"]), max_chars, label),
        "source": _text(df["source"]) if "source" in df else "",
        "date_only": ~np.isnat(day),
        "day": day,
    })
    out = _drop_blank_symbols(out, label).sort_values("timestamp", kind="stable")
    out = out.reset_index(drop=True)
    return out if symbol is None else select_symbol(out, symbol, label)


def _drop_blank_symbols(news: pd.DataFrame, label: str) -> pd.DataFrame:
    """``news`` without its rows whose symbol is blank (no symbol's bar could trade them), said in
    one warning naming how many and the file.

    Raises:
        DataError: every row's symbol is blank.
    """
    blank = (news["symbol"] == "").to_numpy()
    if not blank.any():
        return news
    first = int(np.argmax(blank)) + 1
    if blank.all():
        raise DataError(f"{label}: every headline has a blank symbol (first at row {first}); "
                        "put the symbol each headline is about in the symbol column")
    log.warning("%s: dropped %d headline(s) with a blank symbol (first at row %d); put the "
                "symbol each headline is about in the symbol column", label, int(blank.sum()), first)
    return news[~blank]


def _read(path: Path, label: str) -> pd.DataFrame:
    suffixes = [x.lower() for x in path.suffixes[-2:]]
    gzipped = suffixes[-1:] == [".gz"] and suffixes[0] in (".csv", ".jsonl")
    reader = READERS.get(suffixes[0] if gzipped else path.suffix.lower())
    if reader is None:
        raise DataError(f"{label}: unsupported extension {path.suffix or '(none)'!r}; "
                        f"use one of {', '.join(READERS)} (.csv.gz and .jsonl.gz too)")
    if not path.is_file():
        raise DataError(f"{label}: file not found (looked in {Path.cwd()}); check the path")
    try:
        df = reader(path)
    except (OSError, ValueError, NotImplementedError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{label}: cannot read the file ({text}); check its format") from exc
    if df.empty:
        raise DataError(f"{label}: no headlines in the file; add rows or drop --news")
    return df


def _columns(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Rename columns to their lower-case names and check the required ones are there."""
    df = df.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"{label}: missing column(s) {', '.join(missing)} (found: "
                        f"{', '.join(map(str, df.columns))}); news needs timestamp, symbol, "
                        "headline[, source]")
    return df.loc[:, ~df.columns.duplicated()].reset_index(drop=True)


def _text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _headlines(text: pd.Series, max_chars: int, label: str) -> pd.Series:
    empty = (text == "").to_numpy()
    if empty.any():
        raise DataError(f"{label}: {int(empty.sum())} empty headline(s), first at row "
                        f"{int(np.argmax(empty)) + 1}; remove them")
    lengths = text.str.len().to_numpy()
    if (lengths > max_chars).any():
        row = int(np.argmax(lengths > max_chars))
        raise DataError(f"{label}: headline at row {row + 1} has {int(lengths[row])} characters "
                        f"(limit {max_chars}); shorten it, or raise load_news' max_chars")
    return text


def _parse_times(values: pd.Series, tz: str | None,
                 label: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """UTC timestamps, and the local dates (naive ``datetime64[ns]``, NaT for timed rows) of the
    date-only rows, whose timestamp is the end of that day in ``tz``."""
    dated = _date_only(values)
    ns, day = np.empty(len(values), dtype="int64"), np.full(len(values), "NaT", "M8[ns]")
    if dated.any():
        days = _dates(values[dated], tz, label)
        day[dated] = days.to_numpy()
        ns[dated] = _day_ends(days, tz).asi8
    if not dated.all():
        ns[~dated] = _parse_timed(values[~dated], tz, label).asi8
    return pd.DatetimeIndex(ns.astype("M8[ns]")).tz_localize("UTC"), day


def _date_only(values: pd.Series) -> np.ndarray:
    """Rows holding a date without a time: ``YYYY-MM-DD`` text or a ``datetime.date``."""
    if is_datetime64_any_dtype(values) or is_numeric_dtype(values):
        return np.zeros(len(values), dtype=bool)
    return values.astype(str).str.strip().str.fullmatch(r"\d{4}-\d{2}-\d{2}").to_numpy(bool)


def _dates(values: pd.Series, tz: str | None, label: str) -> pd.DatetimeIndex:
    if tz is None:
        raise DataError(f"{label}: timestamps are dates only (e.g. {values.iloc[0]!r} at row "
                        f"{_row(values, 0)}); pass --news-tz (e.g. --news-tz America/New_York) "
                        "for the zone of those dates: a dated headline is traded no earlier than "
                        "the next session's open")
    _check_tz(tz)
    days = pd.to_datetime(values.astype(str).str.strip(), format="%Y-%m-%d", errors="coerce")
    bad = days.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{label}: cannot parse date {values.iloc[row]!r} at row "
                        f"{_row(values, row)}; use real dates like 2013-06-17")
    return pd.DatetimeIndex(days).as_unit("ns")


def _day_ends(days: pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    """The next midnight in ``tz`` after each date, in UTC; where daylight saving makes it
    missing or twice, the later instant (never earlier than the day really ends)."""
    ends = (days + pd.Timedelta(days=1)).tz_localize(
        tz, ambiguous=np.zeros(len(days), dtype=bool), nonexistent="shift_forward")
    return ends.tz_convert("UTC").as_unit("ns")


def _row(values: pd.Series, pos: int) -> int:
    """The 1-based data row of ``values``' element at ``pos`` (its label is the 0-based row)."""
    return int(values.index[pos]) + 1


def _parse_timed(values: pd.Series, tz: str | None, label: str) -> pd.DatetimeIndex:
    """Timestamps as UTC; naive ones are localized to ``tz`` first."""
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        raise DataError(f"{label}: timestamps are numbers (e.g. {values.iloc[0]!r}); "
                        "write ISO 8601 text like 2024-01-31T14:30:00Z")
    if is_datetime64_any_dtype(values):
        times = pd.DatetimeIndex(values)
        if times.hasnans:
            raise DataError(f"{label}: missing timestamp at row "
                            f"{_row(values, int(np.argmax(times.isna())))}; fill it or drop the row")
    else:
        times = _parse_text_times(values, label)
    if times.tz is None:
        times = _localize(times, tz, label)
    return times.tz_convert("UTC").as_unit("ns")


def _parse_text_times(values: pd.Series, label: str) -> pd.DatetimeIndex:
    utc = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = utc.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{label}: cannot parse timestamp {values.iloc[row]!r} at row "
                        f"{_row(values, row)}; use ISO 8601 like 2024-01-31T14:30:00-05:00")
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, format="mixed"))  # naive or one zone
    except ValueError as exc:  # several offsets: fine if every timestamp has one
        naive = np.array([pd.Timestamp(v).tzinfo is None for v in values])
        if naive.any():
            row = int(np.argmax(naive))
            raise DataError(f"{label}: mixes naive and offset timestamps (row {_row(values, row)}: "
                            f"{values.iloc[row]!r} has no offset); give every timestamp an "
                            "offset, or none and pass --news-tz") from exc
        return pd.DatetimeIndex(utc)


def _localize(times: pd.DatetimeIndex, tz: str | None, label: str) -> pd.DatetimeIndex:
    if tz is None:
        raise DataError(f"{label} has naive timestamps (e.g. {times[0]}); pass --news-tz "
                        "(e.g. --news-tz America/New_York) or write offsets like "
                        "2024-01-31T09:30:00-05:00")
    _check_tz(tz)
    try:
        return times.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    except ValueError as exc:
        raise DataError(f"{label}: {' '.join(str(exc).split())} in {tz} (a daylight-saving "
                        "change); write that timestamp with an explicit offset") from exc


def _check_tz(tz: str) -> None:
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        hint = did_you_mean(str(tz), zoneinfo.available_timezones())
        raise DataError(f"unknown time zone {tz!r}.{hint} Use an IANA name like "
                        "America/New_York or UTC") from exc


def select_symbol(news: pd.DataFrame, symbol: str, label: str = "news") -> pd.DataFrame:
    """The rows of ``news`` whose ``symbol`` is ``symbol`` (case-insensitive), re-indexed from 0.

    Used by ``bt dataset build`` and by headline-mode backtests, so both see the same headlines.

    Raises:
        DataError: no row has that symbol (the message lists the symbols present).
    """
    keep = (news["symbol"].astype(str).str.strip().str.upper()
            == str(symbol).strip().upper()).to_numpy()
    if not keep.any():
        names = sorted(set(news["symbol"].astype(str)))
        raise DataError(f"{label}: no headlines for symbol {symbol!r}."
                        f"{did_you_mean(symbol, names)} Symbols in the file: "
                        f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''}; "
                        "the symbol comes from --data (e.g. sample:GOOG → GOOG)")
    return news[keep].reset_index(drop=True)


# ---------------------------------------------------------------- alignment


def align_news_to_bars(news_times: pd.DatetimeIndex | pd.Series, bar_index: pd.DatetimeIndex,
                       day: pd.Series | np.ndarray | pd.DatetimeIndex | None = None) -> np.ndarray:
    """For each headline, the position of the first bar it may be traded on.

    ``bar_index`` holds bar *open* times, so a timed headline published during a bar (or exactly
    at its open) is never traded in that bar: it maps to the first bar opening strictly after it.
    A date-only headline (``day`` not NaT: its local date, as :func:`load_news` gives it, with
    ``news_times`` the end of that day) maps, on daily bars (every bar at 00:00 UTC, the session
    date), to the first bar whose date is after ``day`` (the next session); on intraday bars, to
    the first bar opening at or after the end of the day. Headlines with no such bar get -1, and
    so do headlines from before the loaded history: published earlier than the first bar's open by
    more than the longest gap between two loaded bars, they belong to a bar the data does not hold
    (a weekend's news still reaches Monday's first bar; a year-old one would otherwise be traded as
    news on bar 0). ``news_times`` and ``bar_index`` must be tz-aware; ``bar_index`` must be sorted.

    Returns:
        ``int64`` array with one position (or -1) per headline.
    """
    news = _aware(news_times, "news_times")
    bars = _aware(bar_index, "bar_index")
    if not bars.is_monotonic_increasing:
        raise DataError("bar_index is not sorted; sort the bars by time (df.sort_index())")
    bar_ns, news_ns = _ns(bars), _ns(news)
    pos = np.searchsorted(bar_ns, news_ns, side="right")
    days = _days(day, len(news))
    dated = ~np.isnat(days)
    if dated.any():
        pos[dated] = _dated_positions(bar_ns, news_ns[dated], days[dated])
    stale = _before_history(bar_ns, news_ns)
    return np.where((pos < len(bars)) & ~stale, pos, -1).astype(np.int64)


def _before_history(bars: np.ndarray, news: np.ndarray) -> np.ndarray:
    """Headlines older than the first bar by more than the longest gap between loaded bars."""
    if len(bars) == 0:
        return np.zeros(len(news), dtype=bool)
    gap = int(np.diff(bars).max()) if len(bars) > 1 else 0
    return news < bars[0] - gap


_DAY_NS = 86_400 * 10**9


def _dated_positions(bars: np.ndarray, ends: np.ndarray, days: np.ndarray) -> np.ndarray:
    if (bars % _DAY_NS == 0).all():  # daily bars: a bar's time is its session date
        return np.searchsorted(bars, days.astype("int64") + _DAY_NS, side="left")
    return np.searchsorted(bars, ends, side="left")


def _days(day: pd.Series | np.ndarray | pd.DatetimeIndex | None, n: int) -> np.ndarray:
    """``day`` as naive ``datetime64[ns]`` midnights (all NaT when None)."""
    if day is None:
        return np.full(n, "NaT", dtype="M8[ns]")
    try:
        idx = pd.DatetimeIndex(day)
    except (TypeError, ValueError) as exc:
        raise DataError(f"day must be dates ({' '.join(str(exc).split())}); pass the 'day' "
                        "column of load_news") from exc
    if idx.tz is not None or len(idx) != n:
        raise DataError(f"day must be {n} naive local dates, one per headline (got {len(idx)}, "
                        f"tz {idx.tz}); pass the 'day' column of load_news")
    return idx.normalize().as_unit("ns").to_numpy()


def _aware(values: pd.DatetimeIndex | pd.Series, label: str) -> pd.DatetimeIndex:
    try:
        idx = pd.DatetimeIndex(values)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{label} must be datetimes ({' '.join(str(exc).split())}); "
                        "pass a tz-aware DatetimeIndex") from exc
    if idx.tz is None:
        raise DataError(f"{label} are naive datetimes; make them tz-aware first, "
                        "e.g. .tz_localize('UTC')")
    if idx.hasnans:
        raise DataError(f"{label} contain NaT at position {int(np.argmax(idx.isna()))}; "
                        "drop missing times first")
    return idx


def _ns(idx: pd.DatetimeIndex) -> np.ndarray:
    return idx.tz_convert("UTC").as_unit("ns").asi8
