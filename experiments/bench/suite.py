"""``bt bench scoring``: speed of the scoring paths and of cached backtests, measured in one run."""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np

from llmbt.engine.config import RunConfig
from llmbt.engine.runner import run_backtest
from llmbt.feeds import load_prices, symbol_of


def bar_prompt_sample(model: str, data: str, n: int, prompt: str | None = None) -> list[str]:
    """The last ``n`` bar prompts of ``data`` rendered for ``model`` (real prompts, not synthetic)."""
    from llmbt.signals_cache.model.loading import ModelSpec, load_tokenizer
    from llmbt.signals_cache.scoring.prompts import bar_prompts, template_for

    prices = load_prices(data, None, None)
    template = template_for("bars", prompt)
    prompts = bar_prompts(prices, symbol_of(data), template, load_tokenizer(ModelSpec(base=model)))
    return list(prompts.iloc[-n:])


def bench_cache_lookups(prompts: list[str], repeats: int = 20) -> float:
    """Lookups per second of cached prompts (batch ``get_many`` on a fresh on-disk cache)."""
    from llmbt.signals_cache.cache import SignalCache

    with tempfile.TemporaryDirectory() as tmp, SignalCache(tmp) as cache:
        probs = np.full((len(prompts), 3), 1 / 3)
        cache.put_many("bench", "bars-v1", prompts, probs)
        started = time.perf_counter()
        for _ in range(repeats):
            assert len(cache.get_many("bench", "bars-v1", prompts)) == len(prompts)
        return repeats * len(prompts) / (time.perf_counter() - started)


def bench_backtests(config: RunConfig) -> dict[str, float]:
    """Wall time of a cached ``llm_sentiment`` run vs ``sma_cross`` on the same data and costs.

    The first llm run fills the cache (not timed); the timed one makes zero model calls.
    """
    llm = config.replace(strategy="llm_sentiment")
    run_backtest(llm, with_benchmark=False)
    times = {}
    for name, cfg in (("llm_sentiment_cached_s", llm), ("sma_cross_s", config.replace(strategy="sma_cross"))):
        started = time.perf_counter()
        run_backtest(cfg, with_benchmark=False)
        times[name] = time.perf_counter() - started
    times["cached_llm_vs_sma_cross"] = times["llm_sentiment_cached_s"] / times["sma_cross_s"]
    return times


def bench_all(model: str, data: str, n: int, n_generate: int, batch_size: int,
              config: RunConfig, prompt: str | None = None) -> dict[str, Any]:
    """Every measurement of ``bt bench scoring`` in one dict."""
    from llmbt.experiments.bench.scoring import bench_scoring
    from llmbt.signals_cache.model.loading import ModelSpec, load_model
    from llmbt.signals_cache.scoring.prompts import template_for

    prompts = bar_prompt_sample(model, data, n, prompt)
    out = bench_scoring(load_model(ModelSpec(base=model)), prompts, n_generate=n_generate,
                        batch_size=batch_size)
    out["prompt"] = template_for("bars", prompt).version
    out["cache_lookups_per_s"] = bench_cache_lookups(prompts)
    out.update(bench_backtests(config))
    return out
