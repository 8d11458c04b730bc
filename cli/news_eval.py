"""``bt evaluate --news``: the flags and the call of each arm's daily IC on dated headlines
(:mod:`llmbt.reports.news_ic`), next to its F1 on labelled sentences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click


def news_options(func):
    """``--news``, ``--news-tz``, ``--universe``, ``--symbols``, ``--start``, ``--end``,
    ``--min-names`` and the point-in-time schedule flags."""
    opts = [
        click.option("--news", help="Dated headlines (CSV/JSONL/Parquet timestamp,symbol,headline, or "
                     "a fetched source such as finnhub:): each row's daily IC against next-day excess "
                     "returns of --universe. Model arms score it with headlines-v2 or their prompt=."),
        click.option("--news-tz", help="Time zone of naive news timestamps, e.g. America/New_York."),
        click.option("--universe", help="With --news: the universe's prices, as bt run --data takes "
                     "a universe (csv:LONG_FILE with a symbol column, a folder, yahoo:A,B)."),
        click.option("--symbols", help="With --news: the universe's symbols (A,B or a file)."),
        click.option("--start", help="With --news: first day of the period, YYYY-MM-DD."),
        click.option("--end", help="With --news: last day of the period, YYYY-MM-DD."),
        click.option("--min-names", default=5, show_default=True,
                     help="With --news: fewest scored symbols a day needs for an IC."),
        click.option("--model-schedule", help="With --news: YAML or CSV of cutoff, model[, adapter] "
                     "rows; the base row scores each headline with the latest model whose cutoff "
                     "precedes it (an --arm takes schedule=FILE)."),
        click.option("--cutoff-gap", default=0, show_default=True, help="With --model-schedule: "
                     "days a cutoff must precede a headline by, beyond the next day."),
        click.option("--before-first", type=click.Choice(("refuse", "skip")), default="refuse",
                     show_default=True, help="With --model-schedule: refuse headlines before "
                     "the first cutoff, or skip them."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def news_ic(arms: Sequence[Any], flags: dict[str, Any], model: str, batch_size: int,
            say=click.echo, calibrate: bool = True, precision: str = "auto") -> dict[str, dict]:
    """Each arm's daily-IC statistics (:data:`llmbt.reports.news_ic.NEWS_IC_KEYS`) on the
    headlines of ``flags`` (the values of :func:`news_options`), by arm name; ``calibrate`` False
    ignores temperatures stored beside the arms' folders; the model arms score in ``precision``.

    Raises:
        ConfigError: ``--news`` without ``--universe``.
    """
    from llmbt.cli.flows import evaluate_news
    from llmbt.engine.config import RunConfig
    from llmbt.errors import ConfigError

    if not flags.get("universe"):
        raise ConfigError("--news needs --universe URI: the prices of its symbols, e.g. "
                          "--universe csv:../shared/data/news/sp500_prices_2013_2016.csv.gz")
    config = RunConfig(strategy="llm_news_portfolio", data=flags["universe"], symbols=flags["symbols"],
                       start=flags["start"], end=flags["end"], news=flags["news"],
                       news_tz=flags["news_tz"], model=model, batch_size=batch_size,
                       calibrate=calibrate, precision=precision, model_schedule=flags["model_schedule"],
                       cutoff_gap=flags["cutoff_gap"], before_first=flags["before_first"])
    res = evaluate_news(config, arms, min_names=flags["min_names"])
    for name, info in res["info"].items():
        say(f"{name} on --news: {info.get('signals', '')}")
    return res["ic"]
