"""What a command runs end to end: an experiment writes its results, then a report reads them.

:mod:`llmbt.experiments` runs backtests and models and writes results folders; :mod:`llmbt.reports`
computes statistics and renders pages from them and never runs either. These functions chain the
two for ``bt compare --arm`` and ``bt evaluate --news``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def compare_arms(config: Any, arms: list[Any], out: str | Path, horizon: int = 5,
                 say: Callable[[str], None] = log.info, trials: str = "ledger") -> Any:
    """Backtest the arms over ``config``'s period (:func:`llmbt.experiments.arms.run_arms`, which
    records each in the trial ledger), write them as a results folder ``out``
    (:func:`llmbt.experiments.results.write_arms_results`, which ``bt compare --from`` reads back),
    then :func:`llmbt.reports.compare.compare_results` of it (``trials``: what its DSR counts)."""
    from llmbt.experiments.arms import run_arms
    from llmbt.experiments.results import write_arms_results
    from llmbt.reports.compare import compare_results

    res = run_arms(config, arms, horizon, say)
    return compare_results(write_arms_results(res, config, arms, out, horizon=horizon), say, trials)


def compare_universe_arms(config: Any, arms: Sequence[Any], out: str | Path, horizon: int = 5,
                          say: Callable[[str], None] = log.info, trials: str = "ledger") -> dict:
    """``bt compare --arm`` of a universe strategy: trade the arms
    (:func:`llmbt.experiments.universe_arms.run_universe_arms`, which records each in the trial
    ledger), write the results folder ``out``, then
    :func:`llmbt.reports.universe_wf.report_walkforward` of it (the first arm is the reference;
    ``trials``: what its DSR counts)."""
    from llmbt.experiments.results import write_arms_results
    from llmbt.experiments.universe_arms import run_universe_arms
    from llmbt.reports.universe_wf import report_walkforward

    res = run_universe_arms(config, arms, say)
    folder = write_arms_results(res, config, list(arms), out, horizon=horizon)
    return report_walkforward(folder, say, trials)


def evaluate_news(config: Any, arms: Sequence[Any], min_names: int = 5) -> dict[str, Any]:
    """Score ``config``'s dated headlines with each arm
    (:func:`llmbt.experiments.news_eval.news_scores`) and return ``ic`` (arm ->
    :func:`llmbt.reports.news_ic.news_ic_stats`), ``daily`` (the daily IC) and ``info`` (arm ->
    scoring facts)."""
    from llmbt.experiments.news_eval import news_scores
    from llmbt.reports.news_ic import news_daily_ic, news_ic_stats

    res = news_scores(config, arms)
    daily = news_daily_ic(res["scores"], res["opens"], min_names)
    return {"ic": news_ic_stats(daily), "daily": daily, "info": res["info"]}
