"""Market data for llmbt: price bars from files or the network, and news headlines."""

from llmbt.errors import ConfigError, DataError, LlmbtError
from llmbt.feeds.news import align_news_to_bars, load_news
from llmbt.feeds.price_frame import normalize_prices, validate_prices
from llmbt.feeds.prices import fetch_to_cache, load_prices
from llmbt.feeds.sources import SOURCES, symbol_of
from llmbt.feeds.universe import Universe, is_universe, load_universe, parse_symbols

__all__ = [
    "ConfigError",
    "DataError",
    "LlmbtError",
    "SOURCES",
    "Universe",
    "align_news_to_bars",
    "fetch_to_cache",
    "is_universe",
    "load_news",
    "load_prices",
    "load_universe",
    "normalize_prices",
    "parse_symbols",
    "symbol_of",
    "validate_prices",
]
