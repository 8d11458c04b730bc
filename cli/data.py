"""``bt data`` commands: price data: fill the local cache so later runs need no network."""

from __future__ import annotations

import click

from llmbt.cli.base import cli


@cli.group()
def data() -> None:
    """Price data: fill the local cache so later runs need no network."""


@data.command("fetch")
@click.argument("uri")
@click.option("--start", help="First date, YYYY-MM-DD.")
@click.option("--end", help="Last date, YYYY-MM-DD.")
@click.option("--interval", default="1d", show_default=True, help="Bar size, e.g. 1d, 1h.")
@click.option("--refresh", is_flag=True, help="Download again even when the cache covers the range "
              "(a cache fetched up to 'now' is otherwise kept until refreshed).")
def data_fetch(uri: str, start: str | None, end: str | None, interval: str, refresh: bool) -> None:
    """Download URI (yahoo:TICKER or ccxt:EXCHANGE:SYMBOL) into the local Parquet cache.

    For an offline llm_sentiment run, start about 13 months (daily bars) before the run's
    --start: its signals warm up on 260 bars before it.

    Example: bt data fetch yahoo:AAPL --start 2020-01-01 --end 2024-12-31
    """
    from llmbt.feeds import fetch_to_cache, load_prices

    path = fetch_to_cache(uri, start, end, interval=interval, refresh=refresh)
    frame = load_prices(uri, start, end, interval=interval)
    click.echo(f"{len(frame)} bars {frame.index[0]} .. {frame.index[-1]} cached at {path}")
