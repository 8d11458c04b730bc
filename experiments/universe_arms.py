"""Arms across a universe: several model variants (``bt compare --arm``; a walk-forward's base and
adapter) trading one portfolio strategy on the same bars, headlines, schedule and costs.

The universe and its headlines are loaded once; each arm only changes what scores the headlines
(:func:`llmbt.experiments.arms.arm_config`: model, adapter, prompt, or a text scorer's ``kind`` such as
``lexicon``), so the arms differ in their score panels and nothing else. The first arm's run also
trades the equal-weight universe (:data:`BENCHMARK`) on the same bars. Per arm the result keeps its
returns, portfolio facts (Sharpe, total return, ...) and score panel (as long rows: time, symbol,
score); the universe's opens are kept for the daily IC, which :mod:`llmbt.reports.universe_wf`
computes (the engine does not import reports).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.engine.eligibility import universe_facts
from llmbt.engine.portfolio_run import PortfolioResult, load_run_universe, run_news, run_portfolio_on
from llmbt.engine.signals import arms_hindsight
from llmbt.errors import ConfigError
from llmbt.experiments.arms import Arm, arm_config, check_arm_schedules, check_arms
from llmbt.experiments.trial_ids import scorer_fingerprint
from llmbt.experiments.trials import record_run, trials_facts
from llmbt.feeds.universe import Universe

log = logging.getLogger(__name__)

#: The benchmark arm of a universe comparison or walk-forward (returns.csv column).
BENCHMARK = "equal_weight"


def trade_arms(config: RunConfig, arms: Sequence[Arm], universe: Universe,
               news: pd.DataFrame) -> dict[str, PortfolioResult]:
    """Each arm's portfolio run of ``config`` on ``universe`` and ``news`` (the first arm's run also
    trades the equal-weight universe), by arm name.

    Args:
        config: strategy, costs, period (trading starts at ``config.start``) and the run's model.
        arms: the variants; see :func:`llmbt.experiments.arms.arm_config` for what each changes.
        universe: the bars, warm-up history included. news: headlines (``load_news`` columns).
    """
    return {arm.name: run_portfolio_on(arm_config(config, arm), universe, news, with_benchmark=i == 0)
            for i, arm in enumerate(arms)}


def run_universe_arms(config: RunConfig, arms: Sequence[Arm],
                      say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Trade every arm of ``config``'s universe strategy over its period (``bt compare --arm``).

    Returns:
        ``returns`` (per arm, then ``equal_weight``), ``scores`` (per arm, long rows indexed by
        ``time`` with ``symbol`` and ``score``), ``folds`` (one row per arm: fold 0, the tested
        period and :func:`arm_facts`), ``opens`` (time x symbols from the first traded bar, for the
        daily IC), ``info`` (per arm, the scoring facts), ``universe``
        (:func:`llmbt.engine.eligibility.universe_facts`), ``seconds`` (wall time, data loading
        included) and ``trials`` (:func:`llmbt.experiments.trials.trials_facts`: each arm is recorded
        in the trial ledger); :func:`llmbt.experiments.results.write_arms_results` writes it as a
        results folder.

    Raises:
        ConfigError: fewer than two arms, a repeated name, a run-level ``--adapter``, a model
            arm's prompt that is no universe template, ``--benchmark none``, or no ``--news``.
    """
    from llmbt.signals_cache.universe import universe_template

    names = check_arms(config, arms)
    for arm in arms:  # before any data is loaded; a text scorer reads the raw headline, no prompt
        if arm.kind != "lm":
            continue
        try:
            universe_template(arm_config(config, arm).prompt)
        except ConfigError as exc:
            raise ConfigError(f"--arm {arm.name}: {exc}") from exc
    if config.benchmark == "none":
        raise ConfigError(f"bt compare --arm tests universe arms against {BENCHMARK}; drop --benchmark none.")
    check_arm_schedules(config, arms)
    started = time.perf_counter()
    universe = load_run_universe(config)  # loaded once: every arm trades the same bars and headlines
    news = run_news(config, universe)
    runs = trade_arms(config, arms, universe, news)
    for name, run in runs.items():
        say(f"{name}: Sharpe {run.run.stats['sharpe']:.2f}, return {run.run.stats['total_return']:.2%}"
            + (f", model calls {calls}" if (calls := run.signal_info.get("model calls")) else ""))
    for note in arms_hindsight({n: r.signal_info for n, r in runs.items()}):
        say(f"hindsight: {note}")
    keys = {arm.name: record_run(arm_config(config, arm), runs[arm.name].run.returns,
                                 runs[arm.name].signal_info, "compare", arm=arm.name, run_id=config.run_id)
            for arm in arms}  # each arm a trial of the ledger
    first = runs[names[0]].run.returns.index
    facts = universe_facts(config, universe, news, first[0])  # the report says them
    returns = {n: r.run.returns.rename(n) for n, r in runs.items()}
    returns[BENCHMARK] = runs[names[0]].benchmark.returns.rename(BENCHMARK)
    folds = pd.DataFrame([{"fold": 0, "model": n, "test_start": first[0], "test_end": first[-1]}
                          | arm_facts(r) for n, r in runs.items()])
    return {"returns": returns, "scores": {n: score_rows(r.panels["score"]) for n, r in runs.items()},
            "folds": folds, "opens": universe.panel("open").loc[first[0]:],
            "info": {n: r.signal_info for n, r in runs.items()}, "universe": facts,
            "seconds": time.perf_counter() - started, "trials": trials_facts(config, keys)}


def score_rows(panel: pd.DataFrame) -> pd.DataFrame:
    """A calendar x symbols score panel as long rows (index ``time``; ``symbol``, ``score``)."""
    long = panel.rename_axis(index="time", columns="symbol").stack(future_stack=True)
    return long.rename("score").dropna().reset_index("symbol")


def arm_facts(run: PortfolioResult) -> dict[str, Any]:
    """JSON facts of one arm's run: portfolio stats, scoring time, cache hits and the scorer
    fingerprint (:func:`llmbt.experiments.trial_ids.scorer_fingerprint`)."""
    info = run.signal_info
    return portfolio_stats(run.run.stats) | {"seconds": round(run.seconds, 3),
                                             "ms_per_item": info.get("ms per scored item"),
                                             "cache_hit_rate": info.get("cache hit rate"),
                                             "scorer": scorer_fingerprint(run.config, info)}


def portfolio_stats(stats: dict[str, float]) -> dict[str, float]:
    """The portfolio stats a results folder keeps, as floats."""
    keys = ("sharpe", "total_return", "max_drawdown", "fills", "commission", "turnover", "exposure",
            "rejected_orders", "bars", "symbols")
    return {k: float(stats[k]) for k in keys if k in stats}
