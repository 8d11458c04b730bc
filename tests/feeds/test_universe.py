"""Universes: many symbols' bars from comma lists, long files and folders; missing bars stay missing;
every bad input is one DataError naming the symbol (and the date where there is one)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from llmbt.feeds import (
    DataError,
    Universe,
    is_universe,
    load_prices,
    load_universe,
    parse_symbols,
    sources,
)

UTC = "UTC"
SP500 = "sp500_prices_2013_2016.csv.gz"


pytestmark = pytest.mark.usefixtures("llmbt_home")


@pytest.fixture(scope="module")
def sp500(shared_news):
    return load_universe(f"csv:{shared_news / SP500}")


def long_rows(spec: dict[str, list[str]], **extra) -> pd.DataFrame:
    """A long frame: for each symbol, one valid daily bar per date given."""
    rows = [{"timestamp": d, "symbol": s, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5,
             "volume": 100.0, **extra} for s, dates in spec.items() for d in dates]
    return pd.DataFrame(rows)


def write(tmp_path, frame: pd.DataFrame, name: str = "long.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return f"csv:{path}"


# ---------------------------------------------------------------- the shared S&P 500 file


def test_shared_file_golden_facts(sp500: Universe) -> None:
    # The file holds 499 symbols (the MANIFEST's 505 is the whole Kaggle set), 479,878 rows:
    # 10 rows with blank prices and one with high < low (AOS 2014-05-19) are dropped and listed.
    assert len(sp500.symbols) == 499 and sp500.symbols[:3] == ["A", "AAL", "AAP"]
    assert sum(len(df) for df in sp500.prices.values()) == 479_878 - 11
    assert len(sp500.dropped) == 11
    assert ("DHR", pd.Timestamp("2015-07-17", tz=UTC), "blank open") in sp500.dropped
    assert ("AOS", pd.Timestamp("2014-05-19", tz=UTC), "high < low") in sp500.dropped
    assert ("REGN", pd.Timestamp("2015-06-09", tz=UTC), "blank open, high, low") in sp500.dropped
    assert pd.Timestamp("2015-07-17", tz=UTC) not in sp500.prices["DHR"].index
    assert sp500.calendar[0] == pd.Timestamp("2013-02-08", tz=UTC) and len(sp500.calendar) == 982
    assert sp500.source.startswith("csv:") and sp500.source.endswith(SP500)


def test_shared_file_panels_keep_missing_bars_missing(sp500: Universe) -> None:
    close, tradable = sp500.panel("close"), sp500.tradable()
    assert close.shape == (982, 499) and list(close.columns) == sp500.symbols
    assert int(tradable.to_numpy().sum()) == 479_878 - 11
    assert np.isnan(close.at[pd.Timestamp("2015-07-17", tz=UTC), "DHR"])
    assert not tradable.at[pd.Timestamp("2015-07-17", tz=UTC), "DHR"]
    assert close.at[pd.Timestamp("2015-07-16", tz=UTC), "DHR"] > 0
    fortive = tradable["FTV"]  # listed July 2016: nothing before, never forward-filled
    assert not fortive[: "2016-06-30"].any() and fortive["2016-07-05":].all()


def test_each_symbol_is_what_load_prices_gives_for_its_rows(sp500, shared_news, tmp_path) -> None:
    raw = pd.read_csv(shared_news / SP500)
    path = tmp_path / "aapl.csv"
    raw[raw["symbol"] == "AAPL"].drop(columns="symbol").to_csv(path, index=False)
    pd.testing.assert_frame_equal(sp500.prices["AAPL"], load_prices(f"csv:{path}"))
    assert (sp500.prices["AAPL"].dtypes == np.float64).all()


def test_shared_file_warns_once_with_count_and_examples(shared_news, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="llmbt.feeds"):
        load_universe(f"csv:{shared_news / SP500}", symbols="DHR,AAPL")
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "dropped 2 incomplete or invalid bar(s)" in record.getMessage()
    assert "DHR 2015-07-17 (blank open)" in record.getMessage()


def test_subset_and_range_of_the_shared_file(shared_news) -> None:
    uni = load_universe(f"csv:{shared_news / SP500}", "2015-01-01", "2015-12-31",
                        symbols=" msft , aapl,AAPL")
    assert uni.symbols == ["AAPL", "MSFT"] and uni.dropped == ()
    assert uni.calendar[0] == pd.Timestamp("2015-01-02", tz=UTC)
    assert uni.calendar[-1] == pd.Timestamp("2015-12-31", tz=UTC) and len(uni.calendar) == 252


def test_unknown_symbol_suggests_and_lists(shared_news) -> None:
    with pytest.raises(DataError, match=r"unknown symbol 'MSFTT'.*Did you mean 'MSFT'\?.*A, AAL, "
                                        r"AAP, AAPL, ABBV, \.\.\. \(499 in all\)"):
        load_universe(f"csv:{shared_news / SP500}", symbols=["msftt"])


def test_load_prices_refuses_a_long_file_with_several_symbols(shared_news) -> None:
    with pytest.raises(DataError, match=r"holds 499 symbols.*llm_news_portfolio"):
        load_prices(f"csv:{shared_news / SP500}")


# ---------------------------------------------------------------- a folder of per-symbol files


@pytest.fixture
def folder(tmp_path, goog):
    """GOOG split in three: AAA whole, BBB with a 3-month gap, CCC listed in 2010."""
    root = tmp_path / "bars"
    root.mkdir()
    goog.rename_axis("Date").to_csv(root / "aaa.csv")
    goog.drop(goog.loc["2006-01-01":"2006-03-31"].index).rename_axis("Date").to_csv(root / "BBB.csv")
    goog.loc["2010-01-01":].rename_axis("Date").to_csv(root / "ccc.csv")
    (root / "notes.txt").write_text("not prices")
    return root


def test_folder_of_files_keeps_gaps_as_gaps(folder) -> None:
    uni = load_universe(f"csv:{folder}")
    assert uni.symbols == ["AAA", "BBB", "CCC"] and uni.dropped == ()
    for sym, name in [("AAA", "aaa"), ("BBB", "BBB"), ("CCC", "ccc")]:
        pd.testing.assert_frame_equal(uni.prices[sym], load_prices(f"csv:{folder / name}.csv"))
    assert uni.calendar.equals(uni.prices["AAA"].index)
    tradable, close = uni.tradable(), uni.panel("close")
    gap = tradable.loc["2006-01-01":"2006-03-31"]
    assert len(gap) == 62 and not gap["BBB"].any() and gap["AAA"].all()
    assert close.loc["2006-01-01":"2006-03-31", "BBB"].isna().all()
    assert tradable["CCC"].sum() == len(uni.prices["CCC"]) and not tradable.loc[:"2009", "CCC"].any()


def test_folder_subset_range_and_an_empty_symbol_dropped(folder, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="llmbt.feeds"):
        uni = load_universe(f"csv:{folder}", "2008-01-01", "2008-12-31", symbols=["ccc", "aaa"])
    assert uni.symbols == ["AAA"]
    [(sym, when, why)] = uni.dropped
    assert sym == "CCC" and pd.isna(when) and "no bars in range" in why and "2010-01-04" in why
    assert "dropped 1 symbol(s) without bars from 2008-01-01 to 2008-12-31: CCC" in caplog.text


def test_no_symbol_with_bars_in_the_range_is_an_error(folder) -> None:
    with pytest.raises(DataError, match="no symbol has bars from 2020-01-01"):
        load_universe(f"csv:{folder}", "2020-01-01", "2020-12-31")


def test_bad_bar_in_a_folder_names_symbol_and_date(folder, goog) -> None:
    broken = goog.copy()
    broken.loc["2005-03-01", "low"] = broken.loc["2005-03-01", "high"] + 1
    broken.rename_axis("Date").to_csv(folder / "BBB.csv")
    with pytest.raises(DataError, match=r"symbol BBB: .*high < low at 2005-03-01"):
        load_universe(f"csv:{folder}")


def test_folder_problems(tmp_path, goog) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.csv\.gz or \.csv files"):
        load_universe(f"csv:{tmp_path / 'empty'}")
    twice = tmp_path / "twice"
    twice.mkdir()
    goog.to_csv(twice / "x.csv")
    goog.to_csv(twice / "X.csv.gz")
    with pytest.raises(DataError, match="both symbol X"):
        load_universe(f"csv:{twice}")


# ---------------------------------------------------------------- long files: bad input


@pytest.mark.parametrize(("frame", "fragment"), [
    (long_rows({"AAA": ["2024-01-02"]}).drop(columns="symbol"), "no 'symbol' column"),
    (long_rows({"AAA": ["2024-01-02"], "": ["2024-01-03"]}), r"empty symbol at row 2"),
    (long_rows({"AAA": ["2024-01-02", "2024-01-03"], "BBB": ["2024-01-02", "2024-01-02"]}),
     r"symbol BBB: .*duplicate timestamp 2024-01-02"),
    (long_rows({"AAA": ["2024-01-02"], "BBB": ["2024-01-04", "2024-01-03"]}),
     r"symbol BBB: .*not sorted, 2024-01-03 comes after 2024-01-04"),
    (long_rows({"AAA": ["2024-01-02"], "BBB": ["2024-01-03", "soon"]}),
     r"symbol BBB: cannot parse timestamp 'soon' \(row 3\)"),
    (long_rows({"AAA": ["2024-01-02"], "BBB": ["2024-01-03"]}).assign(close=["10.5", "abc"]),
     r"symbol BBB: column 'close' has non-numeric value 'abc' at 2024-01-03"),
    (long_rows({"AAA": ["2024-01-02"], "BBB": ["2024-01-02"]}).assign(currency=["USD", "EUR"]),
     r"mixed currencies, AAA is in USD but BBB is in EUR"),
])
def test_bad_long_files(tmp_path, frame: pd.DataFrame, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment):
        load_universe(write(tmp_path, frame))


def test_long_file_with_one_currency_and_a_bad_bar_dropped(tmp_path, caplog) -> None:
    frame = long_rows({"AAA": ["2024-01-02", "2024-01-03"], "BBB": ["2024-01-02"]},
                      currency="usd")
    frame.loc[1, "low"] = 12.0  # high < low: dropped and reported, not filled
    uni = load_universe(write(tmp_path, frame))
    assert uni.symbols == ["AAA", "BBB"] and len(uni.prices["AAA"]) == 1
    assert uni.dropped == (("AAA", pd.Timestamp("2024-01-03", tz=UTC), "high < low"),)
    assert "AAA 2024-01-03 (high < low)" in caplog.text


def test_parquet_long_file_and_a_single_symbol(tmp_path) -> None:
    frame = long_rows({"AAA": ["2024-01-02", "2024-01-03"]})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    path = tmp_path / "one.parquet"
    frame.to_parquet(path)
    uni = load_universe(f"parquet:{path}")
    assert uni.symbols == ["AAA"] and uni.prices["AAA"]["close"].tolist() == [10.5, 10.5]
    assert is_universe(f"parquet:{path}")
    assert len(load_prices(f"parquet:{path}")) == 2  # one symbol: still a single-symbol source


def test_mixed_bar_sizes_name_both_symbols() -> None:
    with pytest.raises(DataError, match=r"mixed bar sizes, EURUSD has 1h bars but GOOG has 1d"):
        load_universe("sample:GOOG,EURUSD")


def test_sample_list_and_unknown_column() -> None:
    uni = load_universe("sample:goog")
    assert uni.symbols == ["GOOG"]
    pd.testing.assert_frame_equal(uni.prices["GOOG"], load_prices("sample:GOOG"))
    with pytest.raises(DataError, match=r"unknown price column 'Close'.*Did you mean 'close'"):
        uni.panel("Close")


# ---------------------------------------------------------------- symbols and URIs


def test_parse_symbols_forms(tmp_path) -> None:
    assert parse_symbols(None) is None
    assert parse_symbols(" aapl,MSFT ,aapl") == ["AAPL", "MSFT"]
    assert parse_symbols(["btc/usdt", "eth/usdt"]) == ["BTC/USDT", "ETH/USDT"]
    path = tmp_path / "syms.txt"
    path.write_text("# my list\naapl\n\nmsft, nvda  # chips\n")
    assert parse_symbols(str(path)) == ["AAPL", "MSFT", "NVDA"]


@pytest.mark.parametrize(("value", "fragment"), [
    ("AAPL,,MSFT", "empty symbol at entry 2"),
    ("", "empty symbol at entry 1"),
    ([], "lists no symbols"),
    (["AAPL", " "], "empty symbol at entry 2"),
    ("missing.txt", "symbols file not found: 'missing.txt'"),
])
def test_parse_symbols_errors(value, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment):
        parse_symbols(value)


def test_empty_symbol_in_a_uri_list() -> None:
    with pytest.raises(DataError, match=r"'AAPL,,MSFT': empty symbol at entry 2"):
        load_universe("yahoo:AAPL,,MSFT")


def test_is_universe(tmp_path, folder) -> None:
    single = tmp_path / "one.csv"
    long_rows({"AAA": ["2024-01-02"]}).drop(columns="symbol").to_csv(single, index=False)
    assert is_universe("yahoo:AAPL,MSFT") and is_universe("ccxt:bybit:BTC/USDT,ETH/USDT")
    assert is_universe(f"csv:{folder}") and is_universe(write(tmp_path, long_rows({"A": ["2024"]})))
    assert not is_universe("yahoo:AAPL") and not is_universe("sample:GOOG")
    assert not is_universe(f"csv:{single}") and not is_universe("nonsense")
    assert not is_universe(f"csv:{tmp_path / 'nowhere.csv'}")


def test_load_prices_refuses_a_comma_list() -> None:
    with pytest.raises(DataError, match=r"'yahoo:AAPL,MSFT' lists several symbols.*yahoo:AAPL"
                                        r".*llm_news_portfolio"):
        load_prices("yahoo:AAPL,MSFT")


# ---------------------------------------------------------------- network lists, network stubbed


def yahoo_frame(ticker: str, n: int, base: float) -> pd.DataFrame:
    """What ``yf.download(ticker, multi_level_index=True)`` returns."""
    index = pd.date_range("2024-01-02", periods=n, freq="B", name="Date")
    close = base + np.arange(n)
    fields = {"Close": close, "High": close + 2, "Low": close - 2, "Open": close - 0.5,
              "Volume": np.full(n, 1_000_000)}
    frame = pd.DataFrame({(f, ticker): v for f, v in fields.items()}, index=index)
    frame.columns.names = ["Price", "Ticker"]
    return frame


def test_yahoo_list_loads_each_ticker_and_caches_each(monkeypatch, llmbt_home) -> None:
    calls: list[str] = []
    frames = {"AAPL": yahoo_frame("AAPL", 5, 185.0), "MSFT": yahoo_frame("MSFT", 4, 370.0)}
    monkeypatch.setattr(sources, "_yahoo_download",
                        lambda ticker, *args: calls.append(ticker) or frames[ticker])
    uni = load_universe("yahoo:aapl,MSFT", "2024-01-02", "2024-01-08")
    assert calls == ["AAPL", "MSFT"] and uni.symbols == ["AAPL", "MSFT"]
    assert len(uni.prices["MSFT"]) == 4 and uni.tradable()["MSFT"].tolist() == [True] * 4 + [False]
    assert len(list((llmbt_home / "prices").glob("*.parquet"))) == 2

    def offline(*args):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(sources, "_yahoo_download", offline)
    again = load_universe("yahoo:AAPL,MSFT", "2024-01-03", "2024-01-05", symbols="msft")
    pd.testing.assert_frame_equal(again.prices["MSFT"], uni.prices["MSFT"].iloc[1:4])
    with pytest.raises(DataError, match=r"symbol NVDA: Yahoo Finance is unreachable"):
        load_universe("yahoo:AAPL,NVDA", "2024-01-02", "2024-01-08")


def test_yahoo_list_subset_must_be_listed() -> None:
    with pytest.raises(DataError, match=r"unknown symbol 'MSTF' in yahoo:AAPL,MSFT\. "
                                        r"Did you mean 'MSFT'\?"):
        load_universe("yahoo:AAPL,MSFT", symbols="MSTF")


class FakeExchange:
    """ccxt exchange stand-in: hourly candles per symbol, one page."""

    timeframes = {"1h": "60"}

    def __init__(self):
        self.calls: list[str] = []

    def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None):
        self.calls.append(symbol)
        base = {"BTC/USDT": 40_000.0, "ETH/USDT": 2_000.0}[symbol]
        return [[since + i * 3_600_000, base, base + 5, base - 5, base + 1, 3.0]
                for i in range(3)] if since < 1_704_070_000_000 else []


def test_ccxt_list_with_the_exchange_stubbed(monkeypatch) -> None:
    pytest.importorskip("ccxt")
    exchange = FakeExchange()
    monkeypatch.setattr(sources, "_ccxt_exchange", lambda name: exchange)
    uni = load_universe("ccxt:bybit:BTC/USDT,eth/usdt", "2024-01-01", "2024-01-01 02:00",
                        interval="1h")
    assert uni.symbols == ["BTC/USDT", "ETH/USDT"] and exchange.calls == ["BTC/USDT", "ETH/USDT"]
    assert uni.panel("close")["ETH/USDT"].tolist() == [2001.0] * 3


def test_ccxt_list_with_mixed_quote_currencies_fails_before_the_network(monkeypatch) -> None:
    monkeypatch.setattr(sources, "_ccxt_exchange", lambda name: pytest.fail("network touched"))
    with pytest.raises(DataError, match=r"mixed currencies, BTC/USDT is quoted in USDT but "
                                        r"ETH/EUR in EUR"):
        load_universe("ccxt:bybit:BTC/USDT,ETH/EUR", "2024-01-01", interval="1h")
