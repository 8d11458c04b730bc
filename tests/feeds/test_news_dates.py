"""Date-only headlines ("published some time that day"): they need a time zone, stand at the end of
their day, and are traded no earlier than the next session's open."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbt.feeds import DataError, align_news_to_bars, load_news, load_universe

UTC = "UTC"
NY = "America/New_York"


def write_csv(tmp_path, stamps: list[str], symbols: list[str] | None = None):
    path = tmp_path / "news.csv"
    pd.DataFrame({"timestamp": stamps, "symbol": symbols or ["GOOG"] * len(stamps),
                  "headline": [f"headline {i}" for i in range(len(stamps))]}).to_csv(path, index=False)
    return path


def end_of_day(day: str, tz: str = NY) -> pd.Timestamp:
    """Independent of the loader: the next local midnight, in UTC."""
    return (pd.Timestamp(day) + pd.Timedelta(days=1)).tz_localize(tz).tz_convert(UTC)


# ---------------------------------------------------------------- loading


def test_dates_stand_at_the_end_of_their_day_in_the_zone(tmp_path) -> None:
    path = write_csv(tmp_path, ["2013-06-17", "2013-12-02", "2013-06-17T15:00:00Z", " 2013-06-18 "])
    news = load_news(path, tz=NY)
    assert list(news.columns) == ["timestamp", "symbol", "headline", "source", "date_only", "day"]
    assert list(news["timestamp"]) == [pd.Timestamp("2013-06-17 15:00", tz=UTC),
                                       pd.Timestamp("2013-06-18 04:00", tz=UTC),   # EDT
                                       pd.Timestamp("2013-06-19 04:00", tz=UTC),
                                       pd.Timestamp("2013-12-03 05:00", tz=UTC)]  # EST
    assert news["date_only"].tolist() == [False, True, True, True]
    assert news["day"].dtype == "datetime64[ns]" and pd.isna(news["day"].iloc[0])
    assert list(news["day"].iloc[1:]) == [pd.Timestamp(d) for d in
                                          ("2013-06-17", "2013-06-18", "2013-12-02")]


def test_dates_without_a_zone_are_refused_with_the_fix(tmp_path) -> None:
    path = write_csv(tmp_path, ["2013-06-17T15:00:00Z", "2013-06-17"])
    with pytest.raises(DataError, match=r"dates only \(e\.g\. '2013-06-17' at row 2\); pass "
                                        r"--news-tz \(e\.g\. --news-tz America/New_York\).*no "
                                        r"earlier than the next session's open"):
        load_news(path)


def test_impossible_date_names_the_row(tmp_path) -> None:
    with pytest.raises(DataError, match=r"cannot parse date '2013-02-30' at row 2"):
        load_news(write_csv(tmp_path, ["2013-02-28", "2013-02-30"]), tz=NY)


def test_parquet_dates_are_date_only(tmp_path) -> None:
    path = tmp_path / "news.parquet"
    pd.DataFrame({"timestamp": [dt.date(2024, 3, 8)], "symbol": ["GOOG"],
                  "headline": ["x"]}).to_parquet(path)
    news = load_news(path, tz=NY)
    assert news["date_only"].tolist() == [True]
    assert news["timestamp"].iloc[0] == pd.Timestamp("2024-03-09 05:00", tz=UTC)


@pytest.mark.parametrize(("day", "tz", "end"), [
    ("2024-03-09", NY, "2024-03-10 05:00"),           # the night before spring-forward: EST
    ("2024-03-10", NY, "2024-03-11 04:00"),           # EDT from 2024-03-10 02:00
    ("2024-11-02", NY, "2024-11-03 04:00"),
    ("2024-11-03", NY, "2024-11-04 05:00"),
    ("2024-03-09", "America/Havana", "2024-03-10 05:00"),  # midnight skipped: 01:00 CDT
    ("2024-11-02", "America/Havana", "2024-11-03 05:00"),  # midnight twice: the later one
])
def test_end_of_day_across_daylight_saving(tmp_path, day: str, tz: str, end: str) -> None:
    news = load_news(write_csv(tmp_path, [day]), tz=tz)
    assert news["timestamp"].iloc[0] == pd.Timestamp(end, tz=UTC)


# ---------------------------------------------------------------- alignment


@pytest.fixture(scope="module")
def goog_days(goog) -> pd.DatetimeIndex:
    return goog.index


def dated(days: list[str], tz: str = NY) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    return pd.DatetimeIndex([end_of_day(d, tz) for d in days]), pd.DatetimeIndex(days)


def test_weekends_and_holidays_map_to_the_next_trading_day(goog_days) -> None:
    days = ["2012-12-21", "2012-12-22", "2012-12-24", "2012-10-26", "2012-10-28", "2013-03-01"]
    ends, when = dated(days)
    pos = align_news_to_bars(ends, goog_days, day=when)
    got = [goog_days[p].strftime("%Y-%m-%d") if p >= 0 else None for p in pos]
    # Fri -> Mon; Sat -> Mon; Mon 24th -> Wed 26th (Christmas); Fri before Hurricane Sandy ->
    # Wed 31st (closed Mon 29 and Tue 30); Sunday -> Wed 31st; the last bar's date -> none.
    assert got == ["2012-12-24", "2012-12-24", "2012-12-26", "2012-10-31", "2012-10-31", None]


def test_timed_rows_keep_their_rule_next_to_dated_ones(goog_days) -> None:
    times = pd.DatetimeIndex([pd.Timestamp("2012-12-21 15:00", tz=UTC), end_of_day("2012-12-21")])
    day = pd.Series([pd.NaT, pd.Timestamp("2012-12-21")])
    pos = align_news_to_bars(times, goog_days, day=day)
    assert [goog_days[p].strftime("%Y-%m-%d") for p in pos] == ["2012-12-24", "2012-12-24"]
    # Without `day` the same end-of-day instant (05:00 UTC on the 22nd) also gives Monday, but a
    # Thursday date would give Monday instead of Friday: the instant is after Friday's 00:00.
    thursday = dated(["2012-12-20"])
    assert goog_days[align_news_to_bars(thursday[0], goog_days)[0]].day == 24
    assert goog_days[align_news_to_bars(*thursday[:1], goog_days, day=thursday[1])[0]].day == 21


@settings(max_examples=200, deadline=None)
@given(offsets=st.lists(st.integers(min_value=-10, max_value=3200), min_size=1, max_size=30))
def test_dated_headlines_go_to_the_first_later_session(goog, offsets: list[int]) -> None:
    bars = goog.index
    days = pd.Timestamp("2004-08-19") + pd.to_timedelta(offsets, unit="D")
    ends = pd.DatetimeIndex([end_of_day(d) for d in days])
    pos = align_news_to_bars(ends, bars, day=days)
    bar_days = bars.tz_localize(None)
    oldest = bars[0] - bars.to_series().diff().max()  # older: before the loaded history
    for when, end, p in zip(days, ends, pos, strict=True):
        if p == -1:
            assert bar_days[-1] <= when or end < oldest
        else:
            assert bar_days[p] > when and (p == 0 or bar_days[p - 1] <= when)
            assert end >= oldest


def test_intraday_bars_take_the_first_bar_at_or_after_the_day_end() -> None:
    bars = pd.date_range("2024-03-08 00:00", "2024-03-12 00:00", freq="h", tz=UTC)
    ends, days = dated(["2024-03-09", "2024-03-10"])
    pos = align_news_to_bars(ends, bars, day=days)
    assert list(bars[pos]) == [pd.Timestamp("2024-03-10 05:00", tz=UTC),
                               pd.Timestamp("2024-03-11 04:00", tz=UTC)]
    late = align_news_to_bars(dated(["2024-03-11"])[0], bars, day=pd.DatetimeIndex(["2024-03-11"]))
    assert late.tolist() == [-1]


@pytest.mark.parametrize(("day", "fragment"), [
    (pd.DatetimeIndex(["2024-01-02", "2024-01-03"]), "must be 1 naive local dates"),
    (pd.DatetimeIndex(["2024-01-02"], tz=UTC), "tz UTC"),
    (["soon"], "day must be dates"),
])
def test_bad_day_argument(day, fragment: str) -> None:
    bars = pd.date_range("2024-01-01", periods=3, tz=UTC)
    with pytest.raises(DataError, match=fragment):
        align_news_to_bars(pd.DatetimeIndex(["2024-01-02"], tz=UTC), bars, day=day)


# ---------------------------------------------------------------- the shared Reuters archive


def test_shared_reuters_headlines_trade_after_their_date(shared_news) -> None:
    news = load_news(shared_news / "reuters_headlines_2013_2016.csv.gz", tz=NY)
    assert len(news) == 62_999 and news["date_only"].all()  # one row per (headline, symbol)
    shared = news[news["symbol"].isin(["GOOG", "GOOGL"])].groupby("headline")["symbol"].nunique()
    assert (shared == 2).sum() > 100  # tagged to both: kept twice, never de-duplicated here
    aapl = news[news["symbol"] == "AAPL"]
    bars = load_universe(f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
                         symbols="AAPL").prices["AAPL"].index
    pos = align_news_to_bars(aapl["timestamp"], bars, day=aapl["day"])
    ok = pos >= 0
    assert ok.mean() > 0.99
    bar_days = bars.tz_localize(None)[pos[ok]].to_numpy()
    days = aapl["day"].to_numpy()[ok]
    assert (bar_days > days).all()
    previous = bars.tz_localize(None)[np.maximum(pos[ok] - 1, 0)].to_numpy()
    assert ((previous <= days) | (pos[ok] == 0)).all()


def test_gzipped_csv_news(tmp_path) -> None:
    path = tmp_path / "news.csv.gz"
    pd.DataFrame({"timestamp": ["2013-06-17"], "symbol": ["GOOG"], "headline": ["x"]}).to_csv(
        path, index=False, compression="gzip")
    assert load_news(path, tz=NY)["timestamp"].iloc[0] == pd.Timestamp("2013-06-18 04:00", tz=UTC)
