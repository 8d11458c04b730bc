"""Scoring a universe vs scoring one symbol, per (headline, symbol) row, with a fresh cache each.

Both take the first ``n`` headline rows of the same period: one symbol's, and the universe's (all
symbols, in time order). Each goes through the product's path (:func:`news_items`, the symbol-free
template, :func:`score_rendered`) into its own empty cache, so every distinct headline is scored by
the model; the model load is timed apart. The universe pass de-duplicates headlines shared by
several symbols, so per row it should cost no more than one symbol's pass.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from llmbt.signals_cache.model.loading import ModelSpec, load_tokenizer
from llmbt.signals_cache.scorer_id import ScorerId
from llmbt.signals_cache.scoring.prompts import render, template_for
from llmbt.signals_cache.signals import SignalRequest, score_rendered
from llmbt.signals_cache.universe import UNIVERSE_TEMPLATE, news_items

#: The time zone of the shared Reuters headlines' dates (see ../shared/data/MANIFEST.md).
NEWS_TZ = "America/New_York"


def bench_news_file(prices: Mapping[str, pd.DataFrame], news_path: str | Path, symbol: str,
                    n: int) -> tuple[list[dict], float]:
    """:func:`bench_universe_scoring` of the headline file ``news_path`` (dates in
    :data:`NEWS_TZ`), and how many times cheaper a universe row is than one symbol's."""
    from llmbt.feeds import load_news

    rows = bench_universe_scoring(prices, load_news(news_path, tz=NEWS_TZ), symbol, n)
    return rows, rows[0]["ms_per_row"] / rows[1]["ms_per_row"]


def bench_universe_scoring(prices: Mapping[str, pd.DataFrame], news: pd.DataFrame, symbol: str,
                           n: int, *, model: str = "smollm2-135m",
                           batch_size: int = 16) -> list[dict]:
    """One row of figures for ``symbol`` alone and one for the whole universe (``n`` rows each),
    after an untimed pass over one batch (the first forward passes of a process pay one-time
    costs that would otherwise land on whichever pass runs first)."""
    spec = ModelSpec(base=model)
    upper = news["symbol"].astype(str).str.upper()
    alone = news[(upper == symbol.upper()).to_numpy()].head(n)
    if len(alone) < n:
        raise ValueError(f"bench universe --scoring {n}: {symbol} has only {len(alone)} headlines")
    lo, hi = alone["timestamp"].iloc[0], alone["timestamp"].iloc[-1]
    within = news[(news["timestamp"] >= lo) & (news["timestamp"] <= hi) & upper.isin(list(prices))]
    _score_rows("warm-up", {symbol: prices[symbol]}, alone.head(batch_size), spec, batch_size)
    return [_score_rows(f"one symbol ({symbol})", {symbol: prices[symbol]}, alone, spec, batch_size),
            _score_rows(f"universe ({len(prices)} symbols)", prices, within.head(n), spec, batch_size)]


def _score_rows(name: str, prices: Mapping[str, pd.DataFrame], news: pd.DataFrame,
                spec: ModelSpec, batch_size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="llmbt-bench-") as cache:
        req = SignalRequest(scorer=ScorerId(model=spec.base), mode="headlines", cache_dir=cache,
                            batch_size=batch_size, progress=False)
        items = news_items(prices, news, req)
        template = template_for("headlines", UNIVERSE_TEMPLATE)
        tokenizer = load_tokenizer(spec)
        prompts = [render(template, tokenizer, headline=t) for t in items.texts]
        started = time.perf_counter()
        result, scorer = score_rendered(prompts, req, template.version)
        seconds = time.perf_counter() - started - scorer.load_seconds
    rows = len(items.rows)
    return {"pass": name, "rows": rows, "distinct": len(prompts), "seconds": seconds,
            "ms_per_row": 1000 * seconds / max(rows, 1),
            "ms_per_distinct": 1000 * seconds / max(len(prompts), 1)}
