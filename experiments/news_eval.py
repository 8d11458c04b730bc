"""Arms on dated headlines (``bt evaluate --news``): each arm's score of every (symbol, day) with
headlines across a universe, for the daily IC (:mod:`llmbt.reports.news_ic` computes it; the engine
does not import reports).

The alignment is a universe run's (:func:`llmbt.signals_cache.universe.universe_signals`): a
headline is counted on the first bar of its symbol that may trade on it
(:func:`llmbt.feeds.align_news_to_bars`: a timed headline on the first bar opening after it, a
date-only one on the next session), its score is known at that bar's close and traded at the next
open. Unlike a strategy's panel, nothing decays: a bar's score is the confidence-weighted mean of
its own headlines (NaN on bars without any), so the IC measures the headlines of that day alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.engine.portfolio_run import run_news
from llmbt.engine.signals import run_request
from llmbt.errors import ConfigError
from llmbt.experiments.arms import Arm, arm_config, check_arm_prompt
from llmbt.feeds.universe import Universe, load_universe, parse_symbols

#: Calendar days of bars loaded before ``--start`` (see :func:`_lead_start`).
LEAD_DAYS = 14


def news_scores(config: RunConfig, arms: Sequence[Arm]) -> dict[str, Any]:
    """Score ``config``'s headlines (``news``, ``news_tz``) over its universe (``data``,
    ``symbols``) and period (``start``..``end``) with each arm.

    Args:
        config: the universe, period, headlines, model, cache and batch size.
        arms: the scorers (:func:`llmbt.experiments.arms.arm_config`: model, adapter, prompt, kind).

    Returns:
        ``scores`` (arm -> dates x symbols, the day's score of each symbol's headlines, NaN where it
        has none), ``opens`` (dates x symbols open prices of the period) and ``info`` (arm -> the
        scoring facts).

    Raises:
        ConfigError: no arm, a repeated name, or no ``news``.
    """
    names = [arm.name for arm in arms]
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"bt evaluate --news needs arms with distinct names; got {names}.")
    for arm in arms:  # before any data is read or any headline is scored
        if arm.kind == "lm":
            check_arm_prompt(config, arm, universe=True)
    universe = load_universe(config.data, _lead_start(config.start), config.end,
                             interval=config.interval, symbols=parse_symbols(config.symbols))
    news = run_news(config, universe)
    opens = universe.panel("open")
    if config.start:
        opens = opens[opens.index >= pd.Timestamp(config.start, tz="UTC")]
    scores, info = {}, {}
    for arm in arms:
        panels, info[arm.name] = arm_scores(arm_config(config, arm), universe, news)
        scores[arm.name] = panels["score"].reindex(index=opens.index, columns=opens.columns)
    return {"scores": scores, "opens": opens, "info": info}


def _lead_start(start: str | None) -> str | None:
    """The first day loaded: :data:`LEAD_DAYS` before ``start``. Those bars are not scored; they
    give a headline from before the period the bar it belongs to, so it is left out instead of
    being piled onto the period's first bar (the only bar a loaded window would offer it)."""
    if not start:
        return None
    return (pd.Timestamp(start) - pd.Timedelta(days=LEAD_DAYS)).strftime("%Y-%m-%d")


def arm_scores(config: RunConfig, universe: Universe,
               news: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict]:
    """One arm's undecayed panels (:func:`~llmbt.signals_cache.universe.universe_signals`) of the
    headlines aligned to bars from ``config.start`` on."""
    from llmbt.signals_cache.universe import universe_signals

    req = run_request(config, mode="headlines", half_life=0.0,
                      score_from=pd.Timestamp(config.start, tz="UTC") if config.start else None)
    return universe_signals(universe.prices, news, req)
