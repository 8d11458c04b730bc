"""Which symbols have the most headlines: ``bt news top`` picks a universe by news coverage.

Counting needs only each headline's symbol and day, so files are read without the full validation
of :func:`llmbt.feeds.news.load_news`: a file's day is the date as written (date-only archives
such as the shared Reuters headlines count as they are), a cached provider's is the UTC day.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pandas.api.types import is_datetime64_any_dtype

from llmbt.errors import DataError
from llmbt.feeds.newsources.store import PROVIDERS, DayLike, day, news_cache_dir
from llmbt.feeds.sources import one_line, read_cache

_WANTED = ("symbol", "timestamp")


def top_symbols(source: str, n: int = 30, start: DayLike = None, end: DayLike = None) -> list[str]:
    """The ``n`` symbols with the most headlines on the days ``start``..``end`` (inclusive).

    Args:
        source: a news file (CSV, CSV.gz, JSONL, Parquet; ``file:PATH`` too) or a provider name,
            whose cached files are counted.
        n: how many symbols to return (ties go to the alphabetically first).
        start, end: days ``YYYY-MM-DD``; None leaves that side open.

    Raises:
        DataError: ``n`` < 1, a missing or unreadable file, an unparseable timestamp, or a
            provider with nothing cached.
    """
    return rank_symbols(source, n, start, end)[0]


def rank_symbols(source: str, n: int = 30, start: DayLike = None,
                 end: DayLike = None) -> tuple[list[str], str]:
    """:func:`top_symbols` and a sentence naming the window that was counted (first and last
    headline day, how many headlines), so a ranking on the traded period cannot go unnoticed."""
    if not isinstance(n, int) or n < 1:
        raise DataError(f"--n {n!r} must be a positive integer, e.g. 30")
    days = symbol_days(source)
    keep = pd.Series(True, index=days.index)
    if start is not None:
        keep &= days["day"] >= day(start, "start")
    if end is not None:
        keep &= days["day"] <= day(end, "end")
    counted = days[keep.to_numpy()]
    counts = counted.groupby("symbol").size().reset_index(name="n")
    counts = counts.sort_values(["n", "symbol"], ascending=[False, True], kind="stable")
    return counts["symbol"].head(n).tolist(), _window_note(counted, start, end)


def _window_note(counted: pd.DataFrame, start: DayLike, end: DayLike) -> str:
    if counted.empty:
        return "counted no headline: widen --start/--end"
    lo, hi = counted["day"].min(), counted["day"].max()
    return (f"counted {len(counted):,} headlines dated {lo:%Y-%m-%d}..{hi:%Y-%m-%d} (--start "
            f"{start or 'open'}, --end {end or 'open'}); trade and test only after {hi:%Y-%m-%d}, "
            "or the list is selected on future coverage (--select news:N:BARS re-ranks at every "
            "bar with past headlines only)")


def symbol_days(source: str) -> pd.DataFrame:
    """Columns ``symbol`` (upper-case) and ``day`` (naive date) of every headline of ``source``."""
    name = source.strip().lower()
    if name in PROVIDERS:
        return _cached_days(name)
    path = Path(source[5:] if name.startswith("file:") else source).expanduser()
    raw = _read(path)
    return pd.DataFrame({"symbol": raw["symbol"].astype(str).str.strip().str.upper(),
                         "day": _days(raw["timestamp"], path)})


def _cached_days(source: str) -> pd.DataFrame:
    folder = news_cache_dir(source)
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise DataError(f"no {source} news cached in {folder}; run `bt news fetch {source} "
                        "--symbols ... --start ... --end ...` first")
    frames = [read_cache(f, "news")[0] for f in files]
    rows = pd.concat(frames, ignore_index=True)
    return pd.DataFrame({"symbol": rows["symbol"].astype(str),
                         "day": rows["timestamp"].dt.tz_convert(None).dt.normalize()})


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"news file {str(path)!r} not found (looked in {Path.cwd()}); check the "
                        "path, or name a provider: " + ", ".join(sorted(PROVIDERS)))
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes:
            df = pd.read_parquet(path)
        elif ".jsonl" in suffixes:
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False,
                             usecols=lambda c: c.strip().lower() in _WANTED)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read news file {str(path)!r} ({one_line(exc)}); use CSV "
                        "(optionally .gz), JSONL or Parquet with timestamp and symbol") from exc
    df = df.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in _WANTED if c not in df.columns]
    if missing:
        raise DataError(f"news file {str(path)!r} lacks column(s) {', '.join(missing)}; "
                        "news needs timestamp, symbol, headline")
    return df


def _days(values: pd.Series, path: Path) -> pd.Series:
    """The day of each timestamp as written (tz-aware datetimes: their UTC day)."""
    if is_datetime64_any_dtype(values):
        times = values.dt.tz_convert(None) if values.dt.tz is not None else values
        return times.dt.normalize()
    text = values.astype(str).str.strip().str[:10]
    days = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    bad = days.isna().to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise DataError(f"news file {str(path)!r}: cannot read the date of timestamp "
                        f"{values.iloc[row]!r} at row {row + 1}; write ISO 8601 like 2024-01-31")
    return days
