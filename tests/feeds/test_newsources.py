"""News providers: each provider's documented response parsed into rows, the Parquet cache (offline
re-read, partial refetch, nothing lost on failure), the bad-input lines and ``bt news``.

Only the network is replaced: ``_client()`` of each provider module returns a stub whose answers
have the shape of the provider's documented response (alpaca-py's own ``NewsClient`` runs, with
only its HTTP ``get`` replaced, so its pagination and models are exercised too).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from llmbt.cli import cli
from llmbt.errors import DataError
from llmbt.feeds.newsources import (
    alpaca,
    fetch_news,
    finnhub,
    load_cached_news,
    massive,
    news_cache_path,
    parse_symbols,
    top_symbols,
    yahoo,
)
from llmbt.feeds.newsources.common import month_chunks
from llmbt.feeds.sources import read_cache

KEYS = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "FINNHUB_API_KEY", "MASSIVE_API_KEY",
        "POLYGON_API_KEY")


@pytest.fixture(autouse=True)
def home(llmbt_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test of this file: a fresh ``LLMBT_HOME`` (the shared fixture) and no provider's API
    key from this machine's environment."""
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    return llmbt_home


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# ---------------------------------------------------------------- finnhub


def finnhub_item(symbol: str, when: str, headline: str, id_: int) -> dict:
    """One item of GET /company-news as documented (datetime in unix seconds)."""
    return {"category": "company", "datetime": int(utc(when).timestamp()), "headline": headline,
            "id": id_, "image": "https://img/x.jpg", "related": symbol, "source": "MarketWatch",
            "summary": "...", "url": f"https://news/{id_}"}


class FinnhubStub:
    """``finnhub.Client``: ``company_news(symbol, _from, to)`` over a fixed archive."""

    def __init__(self, archive: list[dict], fail_on: str | None = None,
                 error: Exception | None = None) -> None:
        self.archive, self.fail_on, self.error, self.calls = archive, fail_on, error, []

    def company_news(self, symbol: str, _from: str, to: str) -> list[dict] | dict:
        self.calls.append((symbol, _from, to))
        if symbol == self.fail_on:
            if isinstance(self.error, Exception):
                raise self.error
            return self.error
        lo, hi = utc(_from).timestamp(), (utc(to) + pd.Timedelta(days=1)).timestamp()
        return [a for a in self.archive if a["related"] == symbol and lo <= a["datetime"] < hi]


ARCHIVE = [
    finnhub_item("AAPL", "2023-12-20T15:00:00Z", "Apple December story", 1),
    finnhub_item("AAPL", "2024-01-02T14:30:00Z", "Apple opens the year", 2),
    finnhub_item("AAPL", "2024-01-31T23:59:00Z", "Apple late January", 3),
    finnhub_item("AAPL", "2024-02-01T00:00:00Z", "Apple February", 4),
    finnhub_item("MSFT", "2024-01-10T12:00:00Z", "Microsoft story", 5),
]


@pytest.fixture
def fh(monkeypatch: pytest.MonkeyPatch) -> FinnhubStub:
    stub = FinnhubStub(ARCHIVE)
    monkeypatch.setattr(finnhub, "_client", lambda: stub)
    return stub


def test_finnhub_parse_gives_utc_rows_in_the_load_news_columns() -> None:
    df = finnhub.parse([ARCHIVE[2], ARCHIVE[1]], "AAPL")
    assert list(df.columns) == ["timestamp", "symbol", "headline", "source", "url", "id"]
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert df["timestamp"].tolist() == [utc("2024-01-02 14:30"), utc("2024-01-31 23:59")]
    assert df["headline"].tolist() == ["Apple opens the year", "Apple late January"]
    assert set(df["symbol"]) == {"AAPL"} and set(df["source"]) == {"MarketWatch"}
    assert df["id"].tolist() == ["2", "3"] and df["url"].iloc[0] == "https://news/2"


def test_finnhub_error_payload_is_one_line() -> None:
    with pytest.raises(DataError, match=r"finnhub returned an error for AAPL: You don't have "
                                        r"access to this resource\.; check FINNHUB_API_KEY"):
        finnhub.parse({"error": "You don't have access to this resource."}, "AAPL")


def test_fetch_caches_and_rereads_offline(fh: FinnhubStub, home: Path) -> None:
    paths = fetch_news("finnhub", "AAPL,MSFT", "2024-01-01", "2024-01-31")
    assert paths == [news_cache_path("finnhub", "AAPL"), news_cache_path("finnhub", "MSFT")]
    assert all(p.is_file() and home in p.parents for p in paths)
    assert fh.calls == [("AAPL", "2024-01-01", "2024-01-31"), ("MSFT", "2024-01-01", "2024-01-31")]
    meta = read_cache(paths[0], "news")[1]
    assert (meta["start"], meta["end"], meta["rows"]) == ("2024-01-01", "2024-01-31", 2)
    fh.archive = []  # offline from here: the cache must answer alone
    news = load_cached_news("finnhub", ["AAPL", "MSFT"], "2024-01-01", "2024-01-31")
    assert list(news.columns) == ["timestamp", "symbol", "headline", "source"]
    assert news["headline"].tolist() == ["Apple opens the year", "Microsoft story",
                                         "Apple late January"]
    assert fetch_news("finnhub", ["AAPL"], "2024-01-05", "2024-01-20") == paths[:1]
    assert len(fh.calls) == 2  # covered: no new call


def test_only_the_uncached_days_are_fetched(fh: FinnhubStub) -> None:
    fetch_news("finnhub", "AAPL", "2024-01-01", "2024-01-31")
    fetch_news("finnhub", "AAPL", "2023-12-15", "2024-02-10")
    assert fh.calls[1:] == [("AAPL", "2023-12-15", "2023-12-31"), ("AAPL", "2024-02-01", "2024-02-10")]
    news = load_cached_news("finnhub", "AAPL", "2023-12-15", "2024-02-10")
    assert news["headline"].tolist() == ["Apple December story", "Apple opens the year",
                                         "Apple late January", "Apple February"]
    fetch_news("finnhub", "AAPL", "2023-12-15", "2024-02-10", refresh=True)
    assert fh.calls[3:] == [("AAPL", "2023-12-15", "2023-12-31"), ("AAPL", "2024-01-01", "2024-01-31"),
                            ("AAPL", "2024-02-01", "2024-02-10")]
    assert len(load_cached_news("finnhub", "AAPL")) == 4  # refetched rows are not duplicated


def test_months_a_plan_does_not_serve_are_not_recorded_as_cached(monkeypatch, caplog) -> None:
    """A free plan with one year of history answers [] for older months: the cache records only
    the served span, and one line names the empty stretches."""
    archive = [finnhub_item("AAPL", day, f"story {i}", i) for i, day in enumerate(
        ["2023-10-05T14:00:00Z", "2023-11-20T14:00:00Z", "2024-01-09T14:00:00Z",
         "2024-03-28T14:00:00Z"])]  # nothing before October 2023, none in Dec, Feb or April
    stub = FinnhubStub(archive)
    monkeypatch.setattr(finnhub, "_client", lambda: stub)
    with caplog.at_level(logging.WARNING, logger="llmbt.feeds.newsources.store"):
        fetch_news("finnhub", "AAPL", "2023-01-01", "2024-04-15")
    meta = read_cache(news_cache_path("finnhub", "AAPL"), "news")[1]
    assert (meta["start"], meta["end"], meta["rows"]) == ("2023-10-01", "2024-03-31", 4)
    assert caplog.messages == [
        "finnhub returned no headlines for AAPL on 2023-01-01..2023-09-30, 2023-12-01..2023-12-31, "
        "2024-02-01..2024-02-29, 2024-04-01..2024-04-15; the cache records 2023-10-01..2024-03-31 "
        "as fetched (empty months at its ends are not: the plan may not serve them)"]
    with pytest.raises(DataError, match=r"finnhub news cache of AAPL covers 2023-10-01\.\.2024-03-31, "
                                        r"not 2023-01-01\.\.2024-04-15"):
        load_cached_news("finnhub", "AAPL", "2023-01-01", "2024-04-15")
    assert len(load_cached_news("finnhub", "AAPL", "2023-10-01", "2024-03-31")) == 4
    stub.calls.clear()
    fetch_news("finnhub", "AAPL", "2023-06-01", "2024-04-15")  # only the unserved ends again
    assert [c[1:] for c in stub.calls] == [
        ("2023-06-01", "2023-06-30"), ("2023-07-01", "2023-07-31"), ("2023-08-01", "2023-08-31"),
        ("2023-09-01", "2023-09-30"), ("2024-04-01", "2024-04-15")]


def test_a_download_that_returned_nothing_covers_no_days(monkeypatch, caplog) -> None:
    stub = MassiveStub([])
    monkeypatch.setattr(massive, "_client", lambda: stub)
    with caplog.at_level(logging.WARNING, logger="llmbt.feeds.newsources.store"):
        fetch_news("massive", "UBS", "2024-05-10", "2024-06-30")
    assert caplog.messages == ["massive returned no headlines for UBS on 2024-05-10..2024-06-30; "
                               "nothing is recorded as fetched (the plan may not serve these "
                               "days, or the symbol has no news)"]
    assert read_cache(news_cache_path("massive", "UBS"), "news")[1]["start"] is None
    with pytest.raises(DataError, match=r"massive news cache of UBS covers no days, not "
                                        r"2024-05-10\.\.2024-06-30; run `bt news fetch massive"):
        load_cached_news("massive", "UBS", "2024-05-10", "2024-06-30")
    res = CliRunner().invoke(cli, ["news", "fetch", "massive", "--symbols", "UBS", "--start",
                                   "2024-05-10", "--end", "2024-06-30"])
    assert res.stdout.startswith("UBS: 0 headlines, no days served, cached at ")


def test_month_chunks_cut_at_month_ends() -> None:
    got = month_chunks(pd.Timestamp("2024-01-15"), pd.Timestamp("2024-03-10"))
    assert [(f"{a:%m-%d}", f"{b:%m-%d}") for a, b in got] == [
        ("01-15", "01-31"), ("02-01", "02-29"), ("03-01", "03-10")]
    assert month_chunks(pd.Timestamp("2024-01-31"), pd.Timestamp("2024-01-31")) == [
        (pd.Timestamp("2024-01-31"), pd.Timestamp("2024-01-31"))]


def test_a_failure_on_symbol_seven_keeps_symbols_one_to_six(monkeypatch) -> None:
    names = ["S1", "S2", "S3", "S4", "S5", "S6", "S7"]
    archive = [finnhub_item(s, "2024-01-05T15:00:00Z", f"{s} news", i) for i, s in enumerate(names)]
    stub = FinnhubStub(archive, fail_on="S7",
                       error=requests.exceptions.ConnectionError("Max retries exceeded"))
    monkeypatch.setattr(finnhub, "_client", lambda: stub)
    with pytest.raises(DataError, match=r"^finnhub is unreachable for S7 2024-01-01\.\.2024-01-31 "
                                        r"\(ConnectionError: Max retries exceeded\); check the "
                                        r"network .* symbols already cached are kept"):
        fetch_news("finnhub", names, "2024-01-01", "2024-01-31")
    news = load_cached_news("finnhub", names[:6], "2024-01-01", "2024-01-31")
    assert sorted(news["headline"]) == [f"{s} news" for s in names[:6]]
    assert not news_cache_path("finnhub", "S7").exists()


def finnhub_api_exception(status: int, body: dict) -> Exception:
    """The exception finnhub-python raises for a non-2xx answer, from a real requests.Response."""
    from finnhub.exceptions import FinnhubAPIException

    resp = requests.Response()
    resp.status_code, resp._content = status, json.dumps(body).encode()
    resp.headers["Content-Type"] = "application/json"
    return FinnhubAPIException(resp)


@pytest.mark.parametrize(("error", "line"), [
    (finnhub_api_exception(401, {"error": "Invalid API key"}),
     r"finnhub refused the API key for MSFT 2024-02-01\.\.2024-02-29 \(FinnhubAPIException: "
     r"Invalid API key\); check that FINNHUB_API_KEY holds a valid key"),
    (finnhub_api_exception(429, {"error": "API limit reached. Please try again later."}),
     r"finnhub rate limit hit for MSFT .*wait a minute"),
    ({"error": "You don't have access to this resource."},
     r"finnhub returned an error for MSFT: You don't have access"),
])
def test_provider_errors_lose_nothing_cached(monkeypatch, fh: FinnhubStub, error, line) -> None:
    fetch_news("finnhub", "MSFT", "2024-01-01", "2024-01-31")  # cached before the failure
    path = news_cache_path("finnhub", "MSFT")
    before = path.read_bytes()
    fh.fail_on, fh.error = "MSFT", error
    with pytest.raises(DataError, match=line) as info:
        fetch_news("finnhub", "MSFT", "2024-01-01", "2024-02-29")
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert load_cached_news("finnhub", "MSFT", "2024-01-01", "2024-01-31")["headline"].tolist() \
        == ["Microsoft story"]


def http_error(status: int) -> Exception:
    """requests' HTTPError for a real ``status`` answer of the finnhub endpoint."""
    resp = requests.Response()
    resp.status_code, resp.url = status, "https://finnhub.io/api/v1/company-news"
    return requests.HTTPError(f"{status} Client Error for url: {resp.url}", response=resp)


@pytest.mark.parametrize(("error", "line"), [
    (http_error(401), r"^finnhub refused the API key for MSFT 2024-01-01\.\.2024-01-31 \(HTTPError: "
                      r"401 Client Error for url: \S+\); check that FINNHUB_API_KEY holds"),
    (requests.exceptions.ReadTimeout("HTTPSConnectionPool(host='finnhub.io', port=443): Read timed "
                                     "out. (read timeout=10)"),
     r"^finnhub timed out for MSFT 2024-01-01\.\.2024-01-31 \(ReadTimeout: .*Read timed out.*\); "
     r"check the network and rerun `bt news fetch`"),
    (requests.exceptions.ConnectionError("HTTPSConnectionPool(host='finnhub.io', port=443): Max "
                                         "retries exceeded (Caused by NameResolutionError(\"Failed "
                                         "to resolve 'finnhub.io' ([Errno -2] Name or service not "
                                         "known)\"))"),
     r"^finnhub is unreachable: DNS lookup failed for MSFT 2024-01-01\.\.2024-01-31 "
     r"\(ConnectionError: .*Name or service not known.*\); check the network"),
    (http_error(502), r"^finnhub answered HTTP 502 for MSFT .*; the provider failed: rerun `bt news "
                      r"fetch` later"),
])
def test_a_network_failure_says_what_failed(fh: FinnhubStub, error, line) -> None:
    fh.fail_on, fh.error = "MSFT", error
    with pytest.raises(DataError, match=line) as info:
        fetch_news("finnhub", "MSFT", "2024-01-01", "2024-01-31")
    assert "\n" not in str(info.value)


def test_missing_finnhub_key_names_the_variable() -> None:
    with pytest.raises(DataError, match=r"^finnhub news needs an API key in the environment "
                                        r"variable FINNHUB_API_KEY; set it with `export "
                                        r"FINNHUB_API_KEY=YOUR_KEY`"):
        fetch_news("finnhub", "AAPL", "2024-01-01", "2024-01-31")


# ---------------------------------------------------------------- alpaca


def alpaca_article(id_: int, when: str, headline: str, symbols: list[str]) -> dict:
    """One article of GET /v1beta1/news as documented."""
    return {"id": id_, "headline": headline, "author": "Benzinga Newsdesk", "created_at": when,
            "updated_at": when, "summary": "", "content": "", "images": [], "symbols": symbols,
            "source": "benzinga", "url": f"https://www.benzinga.com/{id_}"}


class AlpacaHTTP:
    """alpaca-py's real ``NewsClient`` with only its HTTP ``get`` replaced by pages by token."""

    def __new__(cls, pages: dict, error: Exception | None = None):
        from alpaca.data.historical.news import NewsClient

        class Client(NewsClient):
            def get(self, path, data=None, **kwargs):
                self.calls.append((path, dict(data)))
                if error is not None:
                    raise error
                return pages[data.get("page_token")]

        client = Client(api_key="key", secret_key="secret")
        client.calls = []
        return client


ALPACA_PAGES = {
    None: {"news": [alpaca_article(24843171, "2021-12-31T11:08:42Z",
                                   "Apple leads phone sales in China", ["AAPL"])],
           "next_page_token": "MTY0MDk0ODkyMjAwMDAwMDAwMHwyNDg0MzE3MQ=="},
    "MTY0MDk0ODkyMjAwMDAwMDAwMHwyNDg0MzE3MQ==": {
        "news": [alpaca_article(24843172, "2021-12-30T21:00:00Z", "Apple and Microsoft rally",
                                ["AAPL", "MSFT"])],
        "next_page_token": None},
}


def test_alpaca_follows_next_page_token_and_tags_every_requested_symbol(monkeypatch) -> None:
    client = AlpacaHTTP(ALPACA_PAGES)
    monkeypatch.setattr(alpaca, "_client", lambda: client)
    fetch_news("alpaca", "AAPL,MSFT", "2021-12-30", "2021-12-31")
    first = client.calls[0][1]
    assert client.calls[0][0] == "/news" and first["symbols"] == "AAPL"
    assert (first["start"], first["end"]) == ("2021-12-30T00:00:00+00:00", "2021-12-31T23:59:59+00:00")
    token = "MTY0MDk0ODkyMjAwMDAwMDAwMHwyNDg0MzE3MQ=="
    assert [c[1]["page_token"] for c in client.calls] == [None, token, None, token]
    news = load_cached_news("alpaca", "AAPL,MSFT", "2021-12-30", "2021-12-31")
    assert news[["symbol", "headline"]].values.tolist() == [
        ["AAPL", "Apple and Microsoft rally"], ["MSFT", "Apple and Microsoft rally"],
        ["AAPL", "Apple leads phone sales in China"], ["MSFT", "Apple leads phone sales in China"]]
    assert news["timestamp"].iloc[-1] == utc("2021-12-31 11:08:42") and set(news["source"]) == {"benzinga"}
    both = alpaca.parse(ALPACA_PAGES["MTY0MDk0ODkyMjAwMDAwMDAwMHwyNDg0MzE3MQ=="], ["AAPL", "MSFT", "NVDA"])
    assert both["symbol"].tolist() == ["AAPL", "MSFT"]  # one row per requested, tagged symbol


def test_alpaca_api_error_and_missing_secret(monkeypatch) -> None:
    from alpaca.common.exceptions import APIError

    client = AlpacaHTTP({}, APIError('{"code":40110000,"message":"request is not authorized"}'))
    monkeypatch.setattr(alpaca, "_client", lambda: client)
    with pytest.raises(DataError, match=r"^alpaca refused the API key for AAPL 2024-01-01\.\.2024-01-31 "
                                        r"\(APIError: request is not authorized\); check that "
                                        r"ALPACA_API_KEY"):
        fetch_news("alpaca", "AAPL", "2024-01-01", "2024-01-31")
    monkeypatch.undo()
    monkeypatch.setenv("ALPACA_API_KEY", "key")
    with pytest.raises(DataError, match=r"variable ALPACA_SECRET_KEY; set it with"):
        alpaca._client()


# ---------------------------------------------------------------- massive


def massive_item(when: str, title: str, tickers: list[str]) -> dict:
    """One result of GET /v2/reference/news as documented."""
    return {"id": f"8ec6{len(title)}", "publisher": {"name": "Investing.com",
            "homepage_url": "https://www.investing.com/"}, "title": title, "author": "Sam",
            "published_utc": when, "article_url": f"https://www.investing.com/{len(title)}",
            "tickers": tickers, "description": "...", "keywords": ["Fed"]}


class MassiveStub:
    """``massive.RESTClient``: ``list_ticker_news`` yields real ``TickerNews`` objects."""

    def __init__(self, items: list[dict], error: Exception | None = None) -> None:
        self.items, self.error, self.calls = items, error, []

    def list_ticker_news(self, **kwargs):
        from massive.rest.models import TickerNews

        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        lo, hi = kwargs["published_utc_gte"], kwargs["published_utc_lte"]
        yield from (TickerNews.from_dict(d) for d in self.items
                    if kwargs["ticker"] in d["tickers"] and lo <= d["published_utc"] <= hi)


def test_massive_rows_and_errors(monkeypatch) -> None:
    stub = MassiveStub([massive_item("2024-06-24T18:33:53Z", "Markets underestimate Fed cuts",
                                     ["UBS", "JPM"])])
    monkeypatch.setattr(massive, "_client", lambda: stub)
    fetch_news("massive", "UBS", "2024-06-01", "2024-06-30")
    assert stub.calls[0] == {"ticker": "UBS", "published_utc_gte": "2024-06-01T00:00:00Z",
                             "published_utc_lte": "2024-06-30T23:59:59Z", "limit": 1000,
                             "sort": "published_utc", "order": "asc"}
    news = load_cached_news("massive", "UBS", "2024-06-01", "2024-06-30")
    assert news.values.tolist() == [[utc("2024-06-24 18:33:53"), "UBS",
                                     "Markets underestimate Fed cuts", "Investing.com"]]
    from massive.exceptions import BadResponse

    stub.error = BadResponse('{"status":"ERROR","request_id":"a1","error":"Unknown API Key"}')
    with pytest.raises(DataError, match=r"massive refused the API key for JPM .*Unknown API Key\); "
                                        r"check that MASSIVE_API_KEY"):
        fetch_news("massive", "JPM", "2024-06-01", "2024-06-30")


def test_massive_accepts_the_polygon_key(monkeypatch) -> None:
    with pytest.raises(DataError, match="variable MASSIVE_API_KEY"):
        massive._client()
    monkeypatch.setenv("POLYGON_API_KEY", "pk")
    assert massive._client().API_KEY == "pk"  # the real client, no network on creation


# ---------------------------------------------------------------- yahoo


def yahoo_item(when: str, title: str) -> dict:
    """One item of ``Ticker.news`` in yfinance >= 0.2.50's nested form."""
    return {"id": f"id-{title}", "content": {
        "id": f"id-{title}", "contentType": "STORY", "title": title, "summary": "...",
        "pubDate": when, "provider": {"displayName": "Reuters", "url": "http://www.reuters.com/"},
        "canonicalUrl": {"url": f"https://finance.yahoo.com/{len(title)}", "site": "finance"}}}


def test_yahoo_is_recent_only_says_so_and_caches_only_what_came_back(monkeypatch, caplog) -> None:
    items = [yahoo_item("2025-01-09T17:12:00Z", "Apple new"),
             yahoo_item("2025-01-08T09:00:00Z", "Apple older")]
    ticker = SimpleNamespace(get_news=lambda count, tab: items)
    monkeypatch.setattr(yahoo, "_client", lambda: SimpleNamespace(Ticker=lambda s: ticker))
    with caplog.at_level(logging.WARNING, logger=yahoo.__name__):
        fetch_news("yahoo", "AAPL", "2024-12-01", "2025-01-09")
    assert "yahoo gives recent headlines only: AAPL starts at 2025-01-08, not at the requested " \
           "2024-12-01" in caplog.text
    assert read_cache(news_cache_path("yahoo", "AAPL"), "news")[1]["start"] == "2025-01-08"
    news = load_cached_news("yahoo", "AAPL", "2025-01-08", "2025-01-09")
    assert news["headline"].tolist() == ["Apple older", "Apple new"]
    assert set(news["source"]) == {"Reuters"}
    with pytest.raises(DataError, match=r"yahoo news cache of AAPL covers 2025-01-08\.\.2025-01-09, "
                                        r"not 2024-12-01\.\.2025-01-09; .*recent items only"):
        load_cached_news("yahoo", "AAPL", "2024-12-01", "2025-01-09")
    old = {"uuid": "u1", "title": "Flat item", "publisher": "AP", "link": "https://x",
           "providerPublishTime": 1736442720}  # yfinance < 0.2.50
    assert yahoo.parse([old], "AAPL").iloc[0][["timestamp", "source", "id"]].tolist() == [
        utc("2025-01-09 17:12"), "AP", "u1"]


def test_fetch_help_says_yahoo_is_recent_only() -> None:
    out = CliRunner().invoke(cli, ["news", "fetch", "--help"]).output
    assert "yahoo    yfinance Ticker.news: RECENT ITEMS ONLY" in out


# ---------------------------------------------------------------- bad input, CLI


@pytest.mark.parametrize(("call", "line"), [
    (lambda: fetch_news("finhub", "AAPL", "2024-01-01"),
     r"^unknown news source 'finhub'\. Did you mean 'finnhub'\? Choose one of: alpaca, file, "
     r"finnhub, massive, yahoo$"),
    (lambda: fetch_news("file", "AAPL", "2024-01-01"), r"news source 'file' is read directly"),
    (lambda: fetch_news("finnhub", "AAPL,,MSFT", "2024-01-01"),
     r"symbols 'AAPL,,MSFT': empty symbol at entry 2"),
    (lambda: fetch_news("finnhub", " ", "2024-01-01"), r"empty symbol at entry 1"),
    (lambda: fetch_news("finnhub", "AAPL", "2024-02-01", "2024-01-01"),
     r"^start 2024-02-01 is after end 2024-01-01; swap them$"),
    (lambda: fetch_news("finnhub", "AAPL", "Jan 2024x"), r"start 'Jan 2024x' is not a date"),
    (lambda: load_cached_news("finnhub", "AAPL", "2024-01-01", "2024-01-31"),
     r"no finnhub news cached for AAPL .*run `bt news fetch finnhub --symbols AAPL --start "
     r"2024-01-01 --end 2024-01-31` on a connected machine"),
])
def test_bad_input_is_one_line(call, line) -> None:
    with pytest.raises(DataError, match=line) as info:
        call()
    assert "\n" not in str(info.value)


def test_cache_that_does_not_cover_the_range_names_the_fetch(fh: FinnhubStub) -> None:
    fetch_news("finnhub", "AAPL", "2024-01-01", "2024-01-31")
    with pytest.raises(DataError, match=r"finnhub news cache of AAPL covers 2024-01-01\.\.2024-01-31, "
                                        r"not 2024-01-01\.\.2024-02-29; run `bt news fetch finnhub "
                                        r"--symbols AAPL --start 2024-01-01 --end 2024-02-29`"):
        load_cached_news("finnhub", "AAPL", "2024-01-01", "2024-02-29")


@pytest.mark.parametrize(("provider", "module"), [
    (alpaca, "alpaca"), (finnhub, "finnhub"), (massive, "massive"), (yahoo, "yfinance")])
def test_a_missing_client_names_its_extra(monkeypatch, provider, module) -> None:
    from llmbt.errors import ConfigError

    for key in KEYS:
        monkeypatch.setenv(key, "key")
    for name in [m for m in sys.modules if m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # as if the package were not installed
    extra = "yahoo" if module == "yfinance" else "news"
    with pytest.raises(ConfigError, match=rf"^news source {provider.NAME} needs the {module}\S* "
                                          rf"package: pip install 'llmbt\[{extra}\]'$"):
        provider._client()


def test_parse_symbols_from_text_and_file(tmp_path: Path) -> None:
    assert parse_symbols(" aapl, MSFT ,aapl") == ["AAPL", "MSFT"]
    listing = tmp_path / "universe.txt"
    listing.write_text("# top names\nAAPL\n\nmsft  # software\n")
    assert parse_symbols(str(listing)) == ["AAPL", "MSFT"]


def test_cli_fetch_prints_one_line_per_symbol_and_errors_in_one(fh: FinnhubStub, home: Path,
                                                                tmp_path: Path) -> None:
    listing = tmp_path / "syms.txt"
    listing.write_text("AAPL\nMSFT\n")
    res = CliRunner().invoke(cli, ["news", "fetch", "finnhub", "--symbols", str(listing),
                                   "--start", "2024-01-01", "--end", "2024-01-31"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [
        f"AAPL: 2 headlines, days 2024-01-01..2024-01-31, cached at {news_cache_path('finnhub', 'AAPL')}",
        f"MSFT: 1 headlines, days 2024-01-01..2024-01-31, cached at {news_cache_path('finnhub', 'MSFT')}"]
    assert str(home) in res.output
    res = CliRunner().invoke(cli, ["news", "fetch", "finnhub", "--symbols", "AAPL",
                                   "--start", "2024-03-01", "--end", "2024-01-01"])
    assert res.exit_code == 1
    assert res.output.splitlines() == ["Error: start 2024-03-01 is after end 2024-01-01; swap them"]


def test_cli_top_counts_a_file_and_a_cached_source(fh: FinnhubStub, tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    pd.DataFrame({"timestamp": ["2024-01-02", "2024-01-03", "2024-01-03", "2024-02-01", "2024-01-05"],
                  "symbol": ["MSFT", "AAPL", "MSFT", "AAPL", "AAPL"],
                  "headline": list("abcde")}).to_csv(path, index=False)
    run = lambda *args: CliRunner().invoke(cli, ["news", "top", *args])  # noqa: E731
    assert run(str(path), "--n", "5").stdout == "AAPL,MSFT\n"  # 3 v 2
    assert run(str(path), "--n", "1", "--end", "2024-01-31").stdout == "AAPL\n"  # 2 v 2: by name
    assert run(str(path), "--n", "1", "--start", "2024-01-02", "--end", "2024-01-02").stdout == "MSFT\n"
    fetch_news("finnhub", "AAPL,MSFT", "2023-12-01", "2024-02-29")
    assert run("finnhub", "--n", "2").stdout == "AAPL,MSFT\n"
    assert run("finnhub", "--start", "2024-01-10", "--end", "2024-01-10").stdout == "MSFT\n"
    note = run(str(path), "--n", "1", "--end", "2024-01-31").stderr
    assert note.startswith("counted 4 headlines dated 2024-01-02..2024-01-05 (--start open, --end "
                           "2024-01-31); trade and test only after 2024-01-05")
    res = run(str(tmp_path / "nope.csv"))
    assert res.exit_code == 1 and res.output.startswith("Error: news file ") and "not found" in res.output


def test_top_30_of_the_shared_reuters_headlines(shared_news: Path) -> None:
    path = shared_news / "reuters_headlines_2013_2016.csv.gz"
    raw = pd.read_csv(path, usecols=["timestamp", "symbol"])
    raw = raw[(raw["timestamp"] >= "2015-01-01") & (raw["timestamp"] <= "2016-12-31")]
    counts = raw.groupby("symbol").size().reset_index(name="n") \
        .sort_values(["n", "symbol"], ascending=[False, True])
    top = top_symbols(str(path), 30, "2015-01-01", "2016-12-31")
    assert top == counts["symbol"].head(30).tolist()
    assert top[:3] == ["AAPL", "BA", "GS"] and len(set(top)) == 30
