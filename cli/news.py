"""``bt news`` commands: fill the headline cache from a provider, and rank symbols by coverage."""

from __future__ import annotations

import click

from llmbt.cli.base import cli


@cli.group()
def news() -> None:
    """Headlines: download them from a news provider into the local cache, rank symbols."""


@news.command("fetch")
@click.argument("source")
@click.option("--symbols", required=True,
              help="Comma-separated symbols (AAPL,MSFT) or a file with one symbol a line.")
@click.option("--start", required=True, help="First day (UTC), YYYY-MM-DD.")
@click.option("--end", help="Last day (UTC, inclusive), YYYY-MM-DD; default today.")
@click.option("--refresh", is_flag=True, help="Download the whole range again, ignoring the cache.")
def news_fetch(source: str, symbols: str, start: str, end: str | None, refresh: bool) -> None:
    """Download SOURCE's headlines of each symbol into $LLMBT_HOME/news (Parquet).

    \b
    SOURCE and its key (environment variables only):
      alpaca   Alpaca news (Benzinga), history since 2015: ALPACA_API_KEY, ALPACA_SECRET_KEY
      finnhub  Finnhub company news (about 1 year on the free plan): FINNHUB_API_KEY
      massive  Massive (Polygon) ticker news: MASSIVE_API_KEY (or POLYGON_API_KEY)
      yahoo    yfinance Ticker.news: RECENT ITEMS ONLY (the latest few dozen), no key
    Local files need no fetch: pass them to --news.

    Only days not cached yet are downloaded; each symbol is saved as soon as it is done, so a
    failure keeps the symbols before it. Months that return nothing at either end of the range
    (e.g. older than the plan's history) are logged and not recorded as cached.

    Example: bt news fetch finnhub --symbols AAPL,MSFT --start 2024-01-01 --end 2024-06-30
    """
    from llmbt.feeds.newsources import fetch_news, parse_symbols
    from llmbt.feeds.sources import read_cache

    for name in parse_symbols(symbols):
        (path,) = fetch_news(source, [name], start, end, refresh=refresh)
        meta = read_cache(path, "news")[1]
        days = f"days {meta['start']}..{meta['end']}" if meta["start"] else "no days served"
        click.echo(f"{name}: {meta['rows']} headlines, {days}, cached at {path}")


@news.command("top")
@click.argument("source")
@click.option("--n", "n", type=int, default=30, show_default=True, help="How many symbols.")
@click.option("--start", help="First day, YYYY-MM-DD.")
@click.option("--end", help="Last day (inclusive), YYYY-MM-DD.")
def news_top(source: str, n: int, start: str | None, end: str | None) -> None:
    """Print the N symbols with the most headlines, comma-separated (and, on stderr, which
    window was counted: a universe ranked on the period it then trades is selected on the future).

    SOURCE is a news file (CSV, CSV.gz, JSONL, Parquet; days counted as written) or a provider
    whose cache is counted (alpaca, finnhub, massive, yahoo).

    Example: bt news top ../shared/data/news/reuters_headlines_2013_2016.csv.gz --n 30
    --start 2013-01-01 --end 2014-12-31 (then trade from 2015 on)
    """
    from llmbt.feeds.newsources.top import rank_symbols

    symbols, note = rank_symbols(source, n, start, end)
    click.echo(",".join(symbols))
    click.echo(note, err=True)
