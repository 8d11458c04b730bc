"""The signal columns of a :class:`~llmbt.strategies.base.SignalStrategy`, computed before the loop.

The strategy declares what it needs (:meth:`~llmbt.strategies.base.SignalStrategy.signal_spec`) and
finishes the scored columns without I/O (:meth:`~llmbt.strategies.base.SignalStrategy.finish_signals`);
the model, prompts and cache calls (:mod:`llmbt.signals_cache`) are made from here, by the engine.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.feeds import load_news, symbol_of
from llmbt.strategies.registry import with_defaults


def prepare_signals(cls: Any, prices: pd.DataFrame, config: RunConfig) -> tuple[pd.DataFrame, dict]:
    """Score every bar of ``prices`` as ``cls`` asks and let it finish the columns.

    Args:
        cls: the strategy class (a ``SignalStrategy``).
        prices: the bars signals are computed from (the run's bars plus the warm-up history).
        config: the run's configuration (model, prompt, mode, news, cache).

    Returns:
        A frame indexed like ``prices`` with the strategy's signal columns, and the run facts of the
        scoring (model calls, cache hits…) for the report.
    """
    from llmbt.signals_cache.model.loading import ModelSpec
    from llmbt.signals_cache.signals import SignalRequest, compute_signals

    params = with_defaults(cls, config.params)
    spec = cls.signal_spec(params)
    model = ModelSpec(base=config.model, adapter=config.adapter, quantization=config.quantization,
                      engine=config.engine)
    req = SignalRequest(spec=model, mode=config.mode, symbol=symbol_of(config.data),
                        cache_dir=config.cache_dir, batch_size=config.batch_size,
                        half_life=spec.half_life, prompt=config.prompt, warmup=spec.warmup,
                        score_from=pd.Timestamp(config.start, tz="UTC") if config.start else None)
    news = load_news(config.news, tz=config.news_tz) if config.news else None
    frame, info = compute_signals(prices, req, news)
    return cls.finish_signals(frame, params), info


def check_prompt(config: RunConfig) -> None:
    """Refuse a ``--prompt`` that is not a template of ``--mode``, before any data is loaded.

    Raises:
        ConfigError: naming the flag, the template and the versions that fit.
    """
    if config.prompt is None:
        return
    from llmbt.signals_cache.scoring.prompts import template_for

    try:
        template_for(config.mode, config.prompt)
    except ConfigError as exc:
        raise ConfigError(f"--prompt: {exc}") from exc
