"""Prices from local sources: golden facts on the real samples, normalising, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmbt.feeds import DataError, fetch_to_cache, load_prices, normalize_prices, validate_prices
from llmbt.feeds.sources import _sample_dir

COLUMNS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_prices("sample:GOOG")


def bars(n: int = 4, **overrides: list) -> pd.DataFrame:
    """A small valid daily frame with a naive 'Date' column; ``overrides`` replace columns."""
    data = {
        "Date": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "Open": np.linspace(10.0, 13.0, n), "High": np.linspace(11.0, 14.0, n),
        "Low": np.linspace(9.0, 12.0, n), "Close": np.linspace(10.5, 13.5, n),
        "Volume": np.full(n, 1000.0),
    }
    data.update(overrides)
    return pd.DataFrame(data)


# ---------------------------------------------------------------- golden facts, real data


def test_goog_sample_golden_facts(goog: pd.DataFrame) -> None:
    assert len(goog) == 2148
    assert list(goog.columns) == COLUMNS
    assert (goog.dtypes == np.float64).all()
    assert isinstance(goog.index, pd.DatetimeIndex) and goog.index.name == "timestamp"
    assert str(goog.index.tz) == "UTC" and goog.index.dtype == "datetime64[ns, UTC]"
    assert goog.index[0] == pd.Timestamp("2004-08-19", tz="UTC")
    assert goog.index[-1] == pd.Timestamp("2013-03-01", tz="UTC")
    assert goog["close"].iloc[0] == 100.34 and goog["close"].iloc[-1] == 806.19
    assert goog["volume"].iloc[0] == 22351900.0
    assert goog.index.is_monotonic_increasing and goog.index.is_unique


def test_eurusd_sample_keeps_hours() -> None:
    df = load_prices("sample:EURUSD")
    assert len(df) == 5000
    assert df.index[0] == pd.Timestamp("2017-04-19 09:00", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2018-02-07 15:00", tz="UTC")
    assert (df.index[1] - df.index[0]) == pd.Timedelta(hours=1)
    assert df["open"].iloc[0] == 1.0716


def test_btcusd_sample_is_monthly_and_names_are_case_insensitive() -> None:
    df = load_prices("sample:btcusd")
    assert len(df) == 156
    assert df.index[0] == pd.Timestamp("2012-01-31", tz="UTC")
    assert df["close"].iloc[0] == 5.55


def test_range_filter_is_inclusive_on_both_ends(goog: pd.DataFrame) -> None:
    df = load_prices("sample:GOOG", "2010-01-04", "2010-01-08")
    assert list(df.index.strftime("%Y-%m-%d")) == [
        "2010-01-04", "2010-01-05", "2010-01-06", "2010-01-07", "2010-01-08"]
    pd.testing.assert_frame_equal(df, goog.loc["2010-01-04":"2010-01-08"])


def test_range_accepts_timestamps_and_converts_zones() -> None:
    start = pd.Timestamp("2017-04-19 05:00", tz="America/New_York")  # 09:00 UTC
    df = load_prices("sample:EURUSD", start, pd.Timestamp("2017-04-19 11:00"))
    assert list(df.index.hour) == [9, 10, 11]


def test_csv_and_parquet_sources_round_trip(tmp_path, goog: pd.DataFrame) -> None:
    csv, parquet = tmp_path / "goog.csv", tmp_path / "goog.parquet"
    goog.rename(columns=str.title).rename_axis("Date").to_csv(csv)
    goog.to_parquet(parquet)
    pd.testing.assert_frame_equal(load_prices(f"csv:{csv}"), goog)
    pd.testing.assert_frame_equal(load_prices(f"parquet:{parquet}"), goog)


def test_sample_csv_is_the_shipped_file() -> None:
    assert (_sample_dir() / "GOOG.csv").read_text().startswith(",Open,High,Low,Close,Volume")


# ---------------------------------------------------------------- normalize_prices


def test_normalize_accepts_mixed_case_and_a_date_column() -> None:
    df = normalize_prices(bars().rename(columns={"Close": "CLOSE", "Volume": "vOlUmE"}), "t")
    assert list(df.columns) == COLUMNS and df.index.name == "timestamp"
    assert df.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert df["close"].iloc[0] == 10.5


def test_normalize_uses_adj_close_only_when_close_is_missing() -> None:
    with_both = bars(**{"Adj Close": [1.0, 2.0, 3.0, 4.0]})
    assert normalize_prices(with_both, "t")["close"].iloc[0] == 10.5
    only_adj = bars().rename(columns={"Close": "Adj Close"})
    assert normalize_prices(only_adj, "t")["close"].iloc[0] == 10.5


def test_normalize_converts_aware_index_to_utc_and_drops_extras() -> None:
    frame = bars().set_index("Date")
    frame.index = pd.DatetimeIndex(frame.index).tz_localize("Europe/Berlin")
    frame["Dividends"] = 0.0
    df = normalize_prices(frame, "t")
    assert df.index[0] == pd.Timestamp("2023-12-31 23:00", tz="UTC")
    assert list(df.columns) == COLUMNS


@pytest.mark.parametrize("column", ["timestamp", "datetime", "Time"])
def test_normalize_finds_other_time_columns(column: str) -> None:
    df = normalize_prices(bars().rename(columns={"Date": column}), "t")
    assert df.index[-1] == pd.Timestamp("2024-01-04", tz="UTC")


def test_validate_returns_a_valid_frame_unchanged(goog: pd.DataFrame) -> None:
    assert validate_prices(goog, "goog") is goog


# ---------------------------------------------------------------- bad input


def _swap_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[[1, 0, 2, 3]].reset_index(drop=True)


BAD_FRAMES = [
    ("missing column", lambda: bars().drop(columns="Volume"),
     ["missing column(s) volume", "found: Date, Open", "provide"]),
    ("nan", lambda: bars(Close=[1.0, np.nan, np.nan, 2.0]),
     ["2 NaN", "2024-01-02", "'close'", "fill or drop"]),
    ("duplicate", lambda: bars(Date=["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"]),
     ["duplicate timestamp 2024-01-02", "drop duplicate"]),
    ("unsorted", lambda: _swap_rows(bars()), ["2024-01-01 comes after 2024-01-02", "sort by time"]),
    ("high<low", lambda: bars(High=[11.0, 8.0, 13.0, 14.0]), ["high < low at 2024-01-02", "fix"]),
    ("zero price", lambda: bars(Open=[10.0, 11.0, 0.0, 13.0]),
     ["non-positive open at 2024-01-03", "> 0"]),
    ("negative volume", lambda: bars(Volume=[1.0, 1.0, 1.0, -5.0]),
     ["negative volume at 2024-01-04", ">= 0"]),
    ("empty", lambda: bars().iloc[:0], ["no rows"]),
    ("bad timestamp", lambda: bars(Date=["2024-01-01", "not-a-date", "2024-01-03", "2024-01-04"]),
     ["'not-a-date'", "row 2", "ISO dates"]),
    ("numeric timestamp", lambda: bars(Date=[1704067200, 1704153600, 1704240000, 1704326400]),
     ["numbers", "1704067200", "2024-01-31"]),
    ("non-numeric value", lambda: bars(Close=["10.5", "1,234", "12", "13"]),
     ["'1,234'", "'close'", "2024-01-02", "plain numbers"]),
    ("no time column", lambda: bars().drop(columns="Date"), ["no timestamps", "date"]),
    ("two closes", lambda: bars(close=[1.0, 2.0, 3.0, 4.0]), ["'Close' and 'close'", "keep one"]),
    ("multiindex", lambda: pd.concat({"AAPL": bars().set_index("Date")}, axis=1),
     ["MultiIndex", "xs("]),
    ("not a frame", lambda: [1, 2, 3], ["expected a pandas DataFrame", "list"]),
]


@pytest.mark.parametrize(("make", "fragments"), [c[1:] for c in BAD_FRAMES],
                         ids=[c[0] for c in BAD_FRAMES])
def test_normalize_rejects_bad_frames(make, fragments: list[str]) -> None:
    with pytest.raises(DataError) as info:
        normalize_prices(make(), "my.csv")
    message = str(info.value)
    assert "\n" not in message and "'my.csv'" in message
    for fragment in fragments:
        assert fragment in message


def test_validate_rejects_a_naive_index_and_text_columns(goog: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="UTC DatetimeIndex.*normalize_prices"):
        validate_prices(goog.tz_localize(None), "g")
    with pytest.raises(DataError, match="'close' is not numeric"):
        validate_prices(goog.astype({"close": str}), "g")
    with pytest.raises(DataError, match=r"missing column\(s\) volume"):
        validate_prices(goog.drop(columns="volume"), "g")


BAD_LOADS = [
    ("no scheme", ("GOOG.csv",), {}, ["'GOOG.csv' has no scheme", "Did you mean 'csv:GOOG.csv'"]),
    ("unknown scheme", ("smaple:GOOG",), {}, ["'smaple'", "Did you mean 'sample'", "csv"]),
    ("unknown sample", ("sample:GOG",), {}, ["'GOG'", "Did you mean 'GOOG'", "EURUSD"]),
    ("empty target", ("sample:",), {}, ["names nothing after 'sample:'", "sample:GOOG"]),
    ("missing csv", ("csv:/no/such/prices.csv",), {}, ["'/no/such/prices.csv'", "not found"]),
    ("missing parquet", ("parquet:/no/such/p.parquet",), {}, ["'/no/such/p.parquet'"]),
    ("bad start", ("sample:GOOG", "yesterdayish"), {}, ["start 'yesterdayish'", "2024-01-31"]),
    ("bad end", ("sample:GOOG", None, "2024-13-45"), {}, ["end '2024-13-45'", "2024-01-31"]),
    ("numeric start", ("sample:GOOG", 2010), {}, ["start 2010 is a number", "'2024-01-31'"]),
    ("reversed", ("sample:GOOG", "2012-01-01", "2011-01-01"), {},
     ["start 2012-01-01 is after end 2011-01-01", "swap"]),
    ("outside", ("sample:GOOG", "2020-01-01", "2020-12-31"), {},
     ["no bars from 2020-01-01 to 2020-12-31", "covers 2004-08-19 to 2013-03-01"]),
    ("weekend", ("sample:GOOG", "2010-01-02", "2010-01-03"), {}, ["no bars from 2010-01-02"]),
    ("ccxt shape", ("ccxt:bybit",), {}, ["EXCHANGE:SYMBOL", "ccxt:bybit:BTC/USDT"]),
    ("ccxt exchange", ("ccxt:binanse:BTC/USDT", "2024-01-01"), {},
     ["'binanse'", "Did you mean 'binance'"]),
    ("ccxt no start", ("ccxt:bybit:BTC/USDT",), {}, ["needs a start date", "--start"]),
    ("yahoo interval", ("yahoo:AAPL", "2024-01-01"), {"interval": "1day"},
     ["unknown yahoo interval '1day'", "1d"]),
]


@pytest.mark.parametrize(("args", "kwargs", "fragments"), [c[1:] for c in BAD_LOADS],
                         ids=[c[0] for c in BAD_LOADS])
def test_load_prices_rejects_bad_input(args, kwargs, fragments, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_prices(*args, **kwargs)
    assert "\n" not in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(("content", "fragment"), [
    ("", "cannot read CSV"),
    ("Date,Open,High,Low,Close,Volume\n", "no rows"),
    ('Date,Open\n"2024-01-01,1\n', "cannot read CSV"),
])
def test_broken_csv_files_raise_data_error(tmp_path, content: str, fragment: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        load_prices(f"csv:{path}")


def test_parquet_that_is_not_parquet(tmp_path) -> None:
    path = tmp_path / "p.parquet"
    path.write_text("Date,Open\n")
    with pytest.raises(DataError, match="cannot read Parquet .*p.parquet"):
        load_prices(f"parquet:{path}")


def test_fetch_to_cache_refuses_local_sources() -> None:
    with pytest.raises(DataError, match="needs no fetching"):
        fetch_to_cache("sample:GOOG", None, None)
