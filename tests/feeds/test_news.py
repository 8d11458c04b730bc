"""News loading, validation, and the look-ahead-free alignment of headlines to bars."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbt.feeds import DataError, align_news_to_bars, load_news, load_prices

UTC = "UTC"


def write_csv(tmp_path, rows: list[dict], name: str = "news.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def row(ts: str, headline: str = "Fed holds rates", symbol: str = "AAPL", **extra) -> dict:
    return {"timestamp": ts, "symbol": symbol, "headline": headline, **extra}


# ---------------------------------------------------------------- loading


def test_csv_with_offsets_is_converted_to_utc_and_sorted_stably(tmp_path) -> None:
    path = write_csv(tmp_path, [
        row("2024-04-01T09:30:00-04:00", "  second  "),          # EDT
        row("2024-03-01T09:30:00-05:00", "first"),               # EST
        row("2024-04-01T13:30:00Z", "third, same instant as second", symbol="MSFT"),
    ])
    news = load_news(path)
    assert list(news.columns) == ["timestamp", "symbol", "headline", "source", "date_only", "day"]
    assert not news["date_only"].any() and news["day"].isna().all()
    assert news["timestamp"].dtype == "datetime64[ns, UTC]"
    assert list(news["timestamp"]) == [pd.Timestamp("2024-03-01 14:30", tz=UTC),
                                       pd.Timestamp("2024-04-01 13:30", tz=UTC),
                                       pd.Timestamp("2024-04-01 13:30", tz=UTC)]
    assert list(news["headline"]) == ["first", "second", "third, same instant as second"]
    assert list(news["source"]) == ["", "", ""] and list(news.index) == [0, 1, 2]


def test_naive_timestamps_use_the_given_zone(tmp_path) -> None:
    path = write_csv(tmp_path, [row("2024-01-31 09:30"), row("2024-07-01 09:30")])
    news = load_news(path, tz="America/New_York")
    assert list(news["timestamp"].dt.hour) == [14, 13]  # EST then EDT


def test_aware_timestamps_ignore_the_given_zone(tmp_path) -> None:
    path = write_csv(tmp_path, [row("2024-01-31T09:30:00+01:00")])
    news = load_news(path, tz="America/New_York")
    assert news["timestamp"].iloc[0] == pd.Timestamp("2024-01-31 08:30", tz=UTC)


def test_jsonl_with_source_and_symbol_filter(tmp_path) -> None:
    path = tmp_path / "news.jsonl"
    lines = [row("2024-01-02T15:00:00Z", "Apple beats", source="Reuters"),
             row("2024-01-02T14:00:00Z", "Bitcoin rallies", symbol="BTCUSD", source="CoinDesk"),
             row("2024-01-03T15:00:00Z", "Apple slips", source=None)]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert list(load_news(path)["headline"]) == ["Bitcoin rallies", "Apple beats", "Apple slips"]
    apple = load_news(path, symbol="aapl")
    assert list(apple["headline"]) == ["Apple beats", "Apple slips"]
    assert list(apple["source"]) == ["Reuters", ""]


def test_parquet_with_datetime_column(tmp_path) -> None:
    path = tmp_path / "news.parquet"
    pd.DataFrame({
        "Timestamp": pd.to_datetime(["2024-01-02 10:00", "2024-01-02 09:00"]).tz_localize(
            "Europe/London"),
        "Symbol": ["GOOG", "GOOG"], "Headline": ["b", "a"], "Source": ["x", "y"],
    }).to_parquet(path)
    news = load_news(path)
    assert list(news["headline"]) == ["a", "b"]
    assert news["timestamp"].iloc[0] == pd.Timestamp("2024-01-02 09:00", tz=UTC)


def test_text_values_stay_text(tmp_path) -> None:
    path = write_csv(tmp_path, [row("2024-01-02T10:00:00Z", "NA", symbol="NaN")])
    news = load_news(path)
    assert news["headline"].iloc[0] == "NA" and news["symbol"].iloc[0] == "NaN"


# ---------------------------------------------------------------- bad input


def _file(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


HEADER = "timestamp,symbol,headline\n"
BAD_NEWS = [
    ("naive no tz", HEADER + "2024-01-02 09:30,AAPL,x\n", {},
     ["naive timestamps", "--news-tz", "America/New_York"]),
    ("empty headline", HEADER + "2024-01-02T09:30Z,AAPL,ok\n2024-01-02T09:31Z,AAPL,   \n"
     "2024-01-02T09:32Z,AAPL,\n", {}, ["2 empty headline(s)", "row 2", "remove them"]),
    ("long headline", HEADER + "2024-01-02T09:30Z,AAPL,ok\n2024-01-02T09:31Z,AAPL," + "x" * 21
     + "\n", {"max_chars": 20}, ["row 2", "21 characters", "limit 20", "raise load_news' max_chars"]),
    ("missing column", "timestamp,ticker,headline\n2024-01-02T09:30Z,AAPL,x\n", {},
     ["missing column(s) symbol", "found: timestamp, ticker", "news needs"]),
    ("bad timestamp", HEADER + "2024-01-02T09:30Z,AAPL,x\nyesterday,AAPL,y\n", {},
     ["'yesterday'", "row 2", "ISO 8601"]),
    ("empty timestamp", HEADER + ",AAPL,x\n", {}, ["timestamp ''", "row 1"]),
    ("unknown tz", HEADER + "2024-01-02 09:30,AAPL,x\n", {"tz": "America/New_Yrok"},
     ["'America/New_Yrok'", "Did you mean 'America/New_York'"]),
    ("mixed naive", HEADER + "2024-01-02T09:30-05:00,AAPL,x\n2024-01-02 09:30,AAPL,y\n", {},
     ["row 2", "'2024-01-02 09:30' has no offset"]),
    ("dst gap", HEADER + "2024-03-10 02:30,AAPL,x\n", {"tz": "America/New_York"},
     ["02:30", "explicit offset"]),
    ("unknown symbol", HEADER + "2024-01-02T09:30Z,AAPL,x\n", {"symbol": "APPL"},
     ["'APPL'", "Did you mean 'AAPL'", "Symbols in the file: AAPL"]),
    ("no rows", HEADER, {}, ["no headlines"]),
    ("bad max_chars", HEADER + "2024-01-02T09:30Z,AAPL,x\n", {"max_chars": 0},
     ["max_chars 0", "positive"]),
]


@pytest.mark.parametrize(("text", "kwargs", "fragments"), [c[1:] for c in BAD_NEWS],
                         ids=[c[0] for c in BAD_NEWS])
def test_bad_news_files(tmp_path, text: str, kwargs: dict, fragments: list[str]) -> None:
    with pytest.raises(DataError) as info:
        load_news(_file(tmp_path, "news.csv", text), **kwargs)
    assert "\n" not in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(("name", "text", "fragments"), [
    ("news.txt", "x", ["unsupported extension '.txt'", ".csv, .jsonl, .parquet"]),
    ("news.jsonl", '{"timestamp": 1704187800, "symbol": "A", "headline": "x"}\n',
     ["numbers", "1704187800", "ISO 8601"]),
    ("news.jsonl", '{"timestamp": "2024-01-02T09:30Z", "symbol": "A", \n', ["cannot read"]),
    ("news.parquet", "not parquet", ["cannot read"]),
])
def test_bad_news_formats(tmp_path, name: str, text: str, fragments: list[str]) -> None:
    with pytest.raises(DataError) as info:
        load_news(_file(tmp_path, name, text))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_news_file_names_the_path(tmp_path) -> None:
    with pytest.raises(DataError, match=r"missing\.csv.*not found"):
        load_news(tmp_path / "missing.csv")


# ---------------------------------------------------------------- alignment


def test_alignment_never_uses_the_bar_a_headline_was_published_in() -> None:
    bars = pd.date_range("2024-01-02 09:00", periods=3, freq="h", tz=UTC)  # 09, 10, 11
    news = pd.DatetimeIndex(["2024-01-02 08:59", "2024-01-02 09:00", "2024-01-02 09:30",
                             "2024-01-02 10:59:59", "2024-01-02 11:00", "2024-01-02 12:00"],
                            tz=UTC)
    assert align_news_to_bars(news, bars).tolist() == [0, 1, 1, 2, -1, -1]


def test_alignment_compares_instants_across_zones_and_accepts_series() -> None:
    bars = pd.date_range("2024-01-02 14:00", periods=3, freq="h", tz=UTC)
    news = pd.Series(pd.DatetimeIndex(["2024-01-02 09:30"], tz="America/New_York"))  # 14:30
    out = align_news_to_bars(news, bars)
    assert out.dtype == np.int64 and out.tolist() == [1]


def test_alignment_on_real_hourly_bars(tmp_path) -> None:
    bars = load_prices("sample:EURUSD").index
    path = write_csv(tmp_path, [row("2017-04-19T09:30:00Z", symbol="EURUSD"),
                                row("2017-04-19T06:00:00-04:00", symbol="EURUSD")])  # 10:00Z
    positions = align_news_to_bars(load_news(path)["timestamp"], bars)
    assert positions.tolist() == [1, 2]
    assert bars[2] == pd.Timestamp("2017-04-19 11:00", tz=UTC)


@pytest.mark.parametrize(("news", "bars", "fragment"), [
    (pd.DatetimeIndex(["2024-01-02"]), pd.date_range("2024-01-01", periods=3, tz=UTC),
     "news_times are naive"),
    (pd.DatetimeIndex(["2024-01-02"], tz=UTC), pd.date_range("2024-01-01", periods=3),
     "bar_index are naive"),
    (pd.DatetimeIndex(["2024-01-02"], tz=UTC),
     pd.DatetimeIndex(["2024-01-03", "2024-01-01"], tz=UTC), "sort the bars"),
    (pd.DatetimeIndex(["2024-01-02", None], tz=UTC),
     pd.date_range("2024-01-01", periods=3, tz=UTC), "NaT at position 1"),
    (pd.Series(["soon"]), pd.date_range("2024-01-01", periods=3, tz=UTC), "must be datetimes"),
])
def test_alignment_rejects_bad_input(news, bars, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment):
        align_news_to_bars(news, bars)


def test_alignment_of_nothing() -> None:
    bars = pd.date_range("2024-01-01", periods=3, tz=UTC)
    assert align_news_to_bars(pd.DatetimeIndex([], tz=UTC), bars).tolist() == []
    empty_bars = pd.DatetimeIndex([], tz=UTC)
    assert align_news_to_bars(pd.DatetimeIndex(["2024-01-01"], tz=UTC), empty_bars).tolist() == [-1]


SECONDS = st.integers(min_value=0, max_value=10 * 86_400)


@settings(max_examples=200, deadline=None)
@given(bar_s=st.lists(SECONDS, min_size=1, max_size=40, unique=True),
       news_s=st.lists(SECONDS, max_size=40))
def test_alignment_properties(bar_s: list[int], news_s: list[int]) -> None:
    origin = pd.Timestamp("2024-01-01", tz=UTC)
    bars = origin + pd.to_timedelta(sorted(bar_s), unit="s")
    news = origin + pd.to_timedelta(news_s, unit="s")
    out = align_news_to_bars(news, bars)
    assert len(out) == len(news)
    gap = bars.to_series().diff().max() if len(bars) > 1 else pd.Timedelta(0)
    for when, pos in zip(news, out, strict=True):
        if pos == -1:
            assert when >= bars[-1] or when < bars[0] - gap
        else:
            assert bars[pos] > when
            assert pos == 0 or bars[pos - 1] <= when
            assert pos > 0 or when >= bars[0] - gap


def test_headlines_from_before_the_loaded_history_get_no_bar() -> None:
    """Real GOOG sessions from a Monday: the weekend's headline reaches Monday's bar; one from a
    year before (or from the Thursday before, older than the longest gap) would only pile onto
    bar 0, so it gets -1 like a headline after the last bar."""
    bars = load_prices("sample:GOOG").loc["2013-01-07":"2013-01-18"].index  # Mon 7 .. Fri 18
    news = pd.DatetimeIndex(["2012-01-06 15:00", "2013-01-03 15:00", "2013-01-05 12:00",
                             "2013-01-07 15:00"], tz=UTC)
    assert align_news_to_bars(news, bars).tolist() == [-1, -1, 0, 1]
