"""Network sources with only the network call replaced: Yahoo parsing, ccxt paging, the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers_feeds import HOUR_MS, T0, FakeExchange, FakeYahoo, candles, use_exchange, use_yahoo, yahoo_frame

from llmbt.feeds import DataError, fetch_to_cache, load_prices, sources

COLUMNS = ["open", "high", "low", "close", "volume"]


pytestmark = pytest.mark.usefixtures("llmbt_home")


# ---------------------------------------------------------------- yahoo


def test_yahoo_multiindex_frame_is_normalised(monkeypatch) -> None:
    fake = use_yahoo(monkeypatch, FakeYahoo(yahoo_frame()))
    df = load_prices("yahoo:aapl", "2024-01-02", "2024-01-08")
    assert fake.calls == [("AAPL", "2024-01-02", "2024-01-09", "1d")]  # yfinance end: exclusive
    assert list(df.columns) == COLUMNS and (df.dtypes == np.float64).all()
    assert df.index.name == "timestamp" and str(df.index.tz) == "UTC"
    assert df.index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert df["close"].tolist() == [185.0, 186.0, 187.0, 188.0, 189.0]
    assert df["open"].iloc[0] == 184.5 and df["volume"].iloc[1] == 50_001_000.0


def test_second_call_is_served_from_the_parquet_cache(monkeypatch, llmbt_home) -> None:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame()))
    first = load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08")
    offline = use_yahoo(monkeypatch, FakeYahoo(error=ConnectionError("no route to host")))
    again = load_prices("yahoo:AAPL", "2024-01-03", "2024-01-05")
    assert offline.calls == []
    pd.testing.assert_frame_equal(again, first.iloc[1:4])
    [path] = (llmbt_home / "prices").glob("*.parquet")
    assert path.name.startswith("yahoo_AAPL_1d-")
    meta = pq.read_schema(path).metadata
    assert b"llmbt" in meta and b"pickle" not in b"".join(meta.values())


def test_daily_bars_in_exchange_time_keep_the_session_date(monkeypatch) -> None:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame(tz="America/New_York")))
    df = load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08")
    assert df.index[0] == pd.Timestamp("2024-01-02 00:00", tz="UTC")


def test_intraday_bars_are_converted_to_utc(monkeypatch) -> None:
    frame = yahoo_frame(start="2024-01-02 09:30", n=3, tz="America/New_York", freq="h")
    fake = use_yahoo(monkeypatch, FakeYahoo(frame))
    df = load_prices("yahoo:AAPL", "2024-01-02", "2024-01-02 16:30", interval="1h")
    assert fake.calls[0][3] == "1h"
    assert list(df.index.strftime("%H:%M")) == ["14:30", "15:30", "16:30"]


def test_ticker_first_column_layout_is_understood(monkeypatch) -> None:
    frame = yahoo_frame().swaplevel(axis=1)  # yf.download(group_by="ticker")
    use_yahoo(monkeypatch, FakeYahoo(frame))
    assert load_prices("yahoo:AAPL", "2024-01-02")["close"].iloc[-1] == 189.0


def test_cache_that_does_not_cover_the_range_refetches_the_union(monkeypatch) -> None:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame(n=5)))
    load_prices("yahoo:AAPL", "2024-01-02", "2024-01-05")
    fake = use_yahoo(monkeypatch, FakeYahoo(yahoo_frame(n=10)))
    df = load_prices("yahoo:AAPL", "2024-01-08", "2024-01-15")
    assert fake.calls == [("AAPL", "2024-01-02", "2024-01-16", "1d")]
    assert len(df) == 6
    offline = use_yahoo(monkeypatch, FakeYahoo(error=OSError("offline")))
    assert len(load_prices("yahoo:AAPL", "2024-01-02", "2024-01-15")) == 10
    assert offline.calls == []


def test_refresh_refetches_even_when_cached(monkeypatch) -> None:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame()))
    load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08")
    fake = use_yahoo(monkeypatch, FakeYahoo(yahoo_frame()))
    load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08", refresh=True)
    assert len(fake.calls) == 1


def test_open_ended_request_is_cached_until_refresh(monkeypatch) -> None:
    fake = use_yahoo(monkeypatch, FakeYahoo(yahoo_frame()))
    load_prices("yahoo:AAPL")
    assert fake.calls == [("AAPL", None, None, "1d")]
    offline = use_yahoo(monkeypatch, FakeYahoo(error=OSError("offline")))
    assert len(load_prices("yahoo:AAPL")) == 5 and offline.calls == []
    with pytest.raises(DataError, match="unreachable"):
        load_prices("yahoo:AAPL", refresh=True)


def test_fetch_to_cache_then_load_offline(monkeypatch, llmbt_home) -> None:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame()))
    path = fetch_to_cache("yahoo:AAPL", "2024-01-02", "2024-01-08")
    assert path.is_file() and path.parent == llmbt_home / "prices"
    cached = pd.read_parquet(path)
    assert list(cached.columns) == COLUMNS and str(cached.index.tz) == "UTC"
    use_yahoo(monkeypatch, FakeYahoo(error=ConnectionError("offline")))
    assert len(load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08")) == 5


def test_network_failure_says_how_to_work_offline(monkeypatch) -> None:
    use_yahoo(monkeypatch, FakeYahoo(error=ConnectionError("Failed to resolve query1.finance")))
    with pytest.raises(DataError) as info:
        load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08")
    message = str(info.value)
    for fragment in ("Yahoo Finance is unreachable: DNS lookup failed", "ConnectionError", "bt data fetch",
                     "csv:", "sample:"):
        assert fragment in message
    assert isinstance(info.value.__cause__, ConnectionError)


def http_error(status: int, reason: str) -> Exception:
    """requests' HTTPError for a real answer with ``status``."""
    import requests

    resp = requests.Response()
    resp.status_code, resp.url = status, "https://query2.finance.yahoo.com/v8/finance/chart/AAPL"
    return requests.HTTPError(f"{status} {reason} for url: {resp.url}", response=resp)


def yahoo_failures() -> list[tuple[Exception, str]]:
    import requests
    from yfinance.exceptions import YFRateLimitError

    return [
        (http_error(401, "Client Error: Unauthorized"),
         "Yahoo Finance refused access (HTTPError: 401 Client Error: Unauthorized for url: "
         "https://query2.finance.yahoo.com/v8/finance/chart/AAPL). Retry later; if it persists, "
         "update the client library (e.g. pip install -U yfinance)."),
        (http_error(503, "Server Error: Service Unavailable"),
         "Yahoo Finance answered HTTP 503 (HTTPError: 503 Server Error: Service Unavailable for "
         "url: https://query2.finance.yahoo.com/v8/finance/chart/AAPL). The server failed; retry "
         "later."),
        (YFRateLimitError(), "Yahoo Finance rate limit hit (YFRateLimitError: Too Many Requests. "
         "Rate limited. Try after a while.). Wait a minute and retry; data already cached needs "
         "no download."),
        (requests.exceptions.ReadTimeout("HTTPSConnectionPool(host='query2.finance.yahoo.com', "
                                         "port=443): Read timed out. (read timeout=30)"),
         "Yahoo Finance timed out (ReadTimeout: HTTPSConnectionPool(host='query2.finance.yahoo."
         "com', port=443): Read timed out. (read timeout=30)). " + sources.OFFLINE_FIX),
        (requests.exceptions.ConnectionError("HTTPSConnectionPool(host='query2.finance.yahoo.com', "
                                             "port=443): Max retries exceeded (Caused by "
                                             "NewConnectionError('Connection refused'))"),
         "Yahoo Finance is unreachable (ConnectionError: HTTPSConnectionPool(host='query2.finance."
         "yahoo.com', port=443): Max retries exceeded (Caused by NewConnectionError('Connection "
         "refused'))). " + sources.OFFLINE_FIX),
    ]


@pytest.mark.parametrize(("error", "line"), yahoo_failures())
def test_a_yahoo_failure_names_what_failed(monkeypatch, error, line) -> None:
    use_yahoo(monkeypatch, FakeYahoo(error=error))
    with pytest.raises(DataError) as info:
        load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08")
    assert str(info.value) == line


def test_yahoo_empty_frame_names_the_ticker(monkeypatch) -> None:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame().iloc[:0]))
    with pytest.raises(DataError, match="no rows for 'ZZZZ'.*unknown ticker"):
        load_prices("yahoo:ZZZZ", "2024-01-02")


class OfflineYfinance:
    """Stands in for ``yfinance.download`` offline, as yfinance 1.x behaves there: it logs a
    warning and errors through its own logger, pandas warns inside it, and it returns an empty
    frame (or raises ``error``)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def __call__(self, tickers, **kwargs) -> pd.DataFrame:
        import logging
        import warnings

        log = logging.getLogger("yfinance")
        log.warning("Cookie/crumb fetch failed (DNSError), continuing without crumb")
        log.error(f"Failed to get ticker '{tickers}' reason: Failed to perform, curl: (6) Could "
                  "not resolve host: query2.finance.yahoo.com")
        log.error("\n1 Failed download:")
        warnings.warn("The inplace keyword in DataFrame.rename is deprecated", FutureWarning,
                      stacklevel=2)
        if self.error is not None:
            raise self.error
        return pd.DataFrame()


@pytest.mark.parametrize("error", [None, ConnectionError("Could not resolve host: "
                                                         "query2.finance.yahoo.com")])
def test_yahoo_offline_is_one_line_of_llmbt(monkeypatch, error) -> None:
    """Only yfinance's network call is stubbed: ``bt run`` prints llmbt's one error line, not
    yfinance's log records or pandas' warnings; ``-v`` shows those as debug lines."""
    import warnings

    from click.testing import CliRunner

    from llmbt.cli import cli

    pytest.importorskip("yfinance")
    monkeypatch.setattr("yfinance.download", OfflineYfinance(error))
    args = ["run", "--strategy", "sma_cross", "--data", "yahoo:AAPL", "--no-report"]
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and not leaked, (res.output, [str(w.message) for w in leaked])
    assert res.output.splitlines() == [res.output.strip()], res.output
    start = "Error: Yahoo Finance returned no rows for 'AAPL' (1d, 2011-01-01 to now): unknown " \
        "ticker, or Yahoo is unreachable. " if error is None else \
        "Error: Yahoo Finance is unreachable: DNS lookup failed (ConnectionError: Could not " \
        "resolve host: query2.finance.yahoo.com). "
    assert res.output == start + sources.OFFLINE_FIX + "\n"
    monkeypatch.setenv("COLUMNS", "400")  # a debug record on one line
    verbose = CliRunner().invoke(cli, ["-v", *args])
    assert "yfinance: Failed to get ticker 'AAPL'" in verbose.stderr
    assert "FutureWarning: The inplace keyword in DataFrame.rename" in verbose.stderr


def test_yahoo_frame_for_another_ticker_is_rejected(monkeypatch) -> None:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame(ticker="MSFT")))
    with pytest.raises(DataError, match="no columns for 'AAPL'"):
        load_prices("yahoo:AAPL", "2024-01-02")


def test_corrupt_cache_is_reported(monkeypatch, llmbt_home) -> None:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame()))
    path = fetch_to_cache("yahoo:AAPL", "2024-01-02", "2024-01-08")
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="unreadable.*--refresh"):
        load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08")
    assert len(load_prices("yahoo:AAPL", "2024-01-02", "2024-01-08", refresh=True)) == 5


# ---------------------------------------------------------------- ccxt

def test_ccxt_pages_are_joined_sorted_without_duplicates(monkeypatch) -> None:
    exchange = FakeExchange(candles(10), page=4, overlap=1)
    names = use_exchange(monkeypatch, exchange)
    df = load_prices("ccxt:bybit:BTC/USDT", "2024-01-01", "2024-01-01 09:00", interval="1h")
    assert names == ["bybit"]
    assert len(df) == 10 and df.index.is_unique and df.index.is_monotonic_increasing
    assert df.index[-1] == pd.Timestamp("2024-01-01 09:00", tz="UTC")
    assert df["close"].tolist() == [101.0 + i for i in range(10)]
    # each page repeats the previous page's last candle; paging resumes after the newest one
    assert [c[2] for c in exchange.calls] == [T0, T0 + 4 * HOUR_MS, T0 + 7 * HOUR_MS]
    assert all(c[:2] == ("BTC/USDT", "1h") for c in exchange.calls)


def test_ccxt_three_pages_stop_once_the_end_is_covered(monkeypatch) -> None:
    exchange = FakeExchange(candles(30), page=4)
    use_exchange(monkeypatch, exchange)
    df = load_prices("ccxt:bybit:BTC/USDT", "2024-01-01", "2024-01-01 11:00", interval="1h")
    assert [c[2] for c in exchange.calls] == [T0, T0 + 4 * HOUR_MS, T0 + 8 * HOUR_MS]
    assert len(df) == 12


def test_ccxt_paging_stops_when_no_new_rows_arrive(monkeypatch) -> None:
    exchange = FakeExchange(candles(5), page=5, ignore_since=True)
    use_exchange(monkeypatch, exchange)
    df = load_prices("ccxt:bybit:BTC/USDT", "2024-01-01", "2024-02-01", interval="1h")
    assert len(exchange.calls) == 2 and len(df) == 5


def test_ccxt_download_is_cached(monkeypatch) -> None:
    use_exchange(monkeypatch, FakeExchange(candles(10), page=4))
    first = load_prices("ccxt:bybit:BTC/USDT", "2024-01-01", "2024-01-01 09:00", interval="1h")

    class Down:
        timeframes = FakeExchange.timeframes

        def fetch_ohlcv(self, *args, **kwargs):
            raise AssertionError("network used")

    use_exchange(monkeypatch, Down())
    again = load_prices("ccxt:bybit:BTC/USDT", "2024-01-01", "2024-01-01 09:00", interval="1h")
    pd.testing.assert_frame_equal(again, first)


def test_ccxt_failures_become_data_errors(monkeypatch) -> None:
    class NetworkError(Exception):
        pass

    class BadSymbol(Exception):
        pass

    for error, fragment in [(NetworkError("timeout"), "timed out.*bt data fetch"),
                            (BadSymbol("bybit does not have market symbol X/Y"),
                             "rejected the symbol.*BTC/USDT")]:
        exchange = FakeExchange([], page=1)
        exchange.fetch_ohlcv = lambda *a, error=error, **k: (_ for _ in ()).throw(error)
        use_exchange(monkeypatch, exchange)
        with pytest.raises(DataError, match=fragment):
            load_prices("ccxt:bybit:X/Y", "2024-01-01", "2024-01-02", interval="1h")


def test_a_ccxt_failure_names_what_failed(monkeypatch) -> None:
    """ccxt's own exception classes, raised where its HTTP layer raises them."""
    import ccxt

    for error, line in [
        (ccxt.AuthenticationError('bybit {"retCode":10003,"retMsg":"API key is invalid."}'),
         "ccxt exchange 'bybit' refused the API key (AuthenticationError: bybit {\"retCode\":10003,"
         "\"retMsg\":\"API key is invalid.\"}). Check CCXT_BYBIT_API_KEY and CCXT_BYBIT_SECRET."),
        (ccxt.RequestTimeout("bybit GET https://api.bybit.com/v5/market/kline request timeout"),
         "ccxt exchange 'bybit' timed out (RequestTimeout: bybit GET https://api.bybit.com/v5/"
         "market/kline request timeout). " + sources.OFFLINE_FIX),
        (ccxt.RateLimitExceeded("bybit 429 Too Many Requests"),
         "ccxt exchange 'bybit' rate limit hit (RateLimitExceeded: bybit 429 Too Many Requests). "
         "Wait a minute and retry; data already cached needs no download."),
    ]:
        exchange = FakeExchange([], page=1)
        exchange.fetch_ohlcv = lambda *a, error=error, **k: (_ for _ in ()).throw(error)
        use_exchange(monkeypatch, exchange)
        with pytest.raises(DataError) as info:
            load_prices("ccxt:bybit:BTC/USDT", "2024-01-01", "2024-01-02", interval="1h")
        assert str(info.value) == line


def test_ccxt_empty_and_bad_timeframe(monkeypatch) -> None:
    use_exchange(monkeypatch, FakeExchange([], page=5))
    with pytest.raises(DataError, match="no 1h candles for 'BTC/USDT'"):
        load_prices("ccxt:bybit:BTC/USDT", "2024-01-01", "2024-01-02", interval="1h")
    with pytest.raises(DataError, match="unknown bybit timeframe '1hour'.*Did you mean '1h'"):
        load_prices("ccxt:bybit:BTC/USDT", "2024-01-01", interval="1hour")


def test_ccxt_keys_come_only_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("CCXT_BYBIT_API_KEY", raising=False)
    monkeypatch.delenv("CCXT_BYBIT_SECRET", raising=False)
    assert not sources._ccxt_exchange("bybit").apiKey
    monkeypatch.setenv("CCXT_BYBIT_API_KEY", "key-123")
    monkeypatch.setenv("CCXT_BYBIT_SECRET", "secret-456")
    exchange = sources._ccxt_exchange("bybit")
    assert (exchange.apiKey, exchange.secret) == ("key-123", "secret-456")


@pytest.mark.parametrize(("interval", "ms"), [("1m", 60_000), ("4h", 14_400_000),
                                              ("1d", 86_400_000), ("1w", 604_800_000)])
def test_timeframe_lengths(interval: str, ms: int) -> None:
    assert sources._timeframe_ms(interval) == ms


def test_cache_names_are_safe_and_distinct(llmbt_home) -> None:
    a = sources.cache_path("ccxt:bybit:BTC/USDT", "1h")
    b = sources.cache_path("ccxt:bybit:BTC_USDT", "1h")
    assert a.parent == llmbt_home / "prices" and "/" not in a.name and a != b
    assert a != sources.cache_path("ccxt:bybit:BTC/USDT", "1d")
