"""News providers: download headlines with each provider's own client into a Parquet cache.

``bt news fetch SOURCE`` fills ``llmbt_home()/news`` through :func:`fetch_news`; later runs read it
offline with :func:`load_cached_news`, which returns the columns of
:func:`llmbt.feeds.news.load_news`. The sources are :data:`PROVIDERS` (network) and ``file``
(a local CSV/JSONL/Parquet read by ``load_news``; nothing to fetch).
"""

from llmbt.feeds.newsources.store import (
    PROVIDERS,
    SOURCES,
    fetch_news,
    load_cached_news,
    news_cache_path,
    parse_symbols,
)
from llmbt.feeds.newsources.top import top_symbols

__all__ = ["PROVIDERS", "SOURCES", "fetch_news", "load_cached_news", "news_cache_path",
           "parse_symbols", "top_symbols"]
