"""Walk-forward of a universe strategy (``llm_news_portfolio``): per fold, fine-tune on the headlines
of every symbol in the train window, then trade the base model and the adapter on the test window.

Folds are :class:`~llmbt.experiments.splitters.WalkForward` windows over the universe's union calendar
(from ``--start``; the bars before it are the first test window's warm-up). Per fold ``k``:

1. training examples: each (headline, symbol) row whose entry bar lies in the train window and whose
   ``horizon``-bar forward window ends inside it, labelled by the symbol's forward return *minus
   the equal-weight mean* of the symbols with bars over the same window, thresholds = quantiles of
   those train examples (:func:`llmbt.signals_cache.finetune.universe_labels.universe_headline_examples`;
   prices after the train window are cut first); the embargo (>= horizon) separates them from the test
   window, and :func:`~llmbt.signals_cache.finetune.datasets.time_split` purges the train block of
   labels that reach into the validation block;
2. an adapter trained exactly as :func:`llmbt.experiments.walkforward.train_adapter` does (template
   ``headlines-v2``: the headline without its symbol, as the universe is scored);
3. the ``--arm`` arms (:mod:`llmbt.experiments.wf_arms`), those of a trained kind (embeddings, seqcls)
   trained on the same examples as the adapter;
4. the portfolio runs of the base model, the adapter and the arms on the test window
   (:func:`llmbt.experiments.universe_arms.trade_arms`), on the same bars, schedule and costs, plus the
   equal-weight universe.

Per fold the result keeps each arm's returns, Sharpe and total return, and its score panel (as long
rows: time, symbol, score); the opens of the universe are kept for the daily IC, which the CLI
computes with :mod:`llmbt.reports` (the engine does not import reports). A failing fold is logged
and recorded, and the run goes on (:func:`llmbt.experiments.walkforward.run_folds`); with
``--executor ray`` the folds run as Ray tasks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd

from llmbt.engine.eligibility import say_facts, universe_facts
from llmbt.engine.portfolio_run import history_bars, load_run_universe, run_news
from llmbt.engine.signals import load_masker
from llmbt.errors import ConfigError
from llmbt.experiments.arms import Arm
from llmbt.experiments.splitters import Fold
from llmbt.experiments.universe_arms import BENCHMARK, arm_facts, portfolio_stats, score_rows, trade_arms
from llmbt.experiments.wf_arms import train_fold_arms
from llmbt.experiments.wf_config import BASE, TUNED, WalkForwardConfig
from llmbt.experiments.wf_folds import (
    FoldResult,
    WalkForwardResult,
    fold_split,
    run_folds,
    shift_fold,
    train_adapter,
)
from llmbt.experiments.wf_schedule import fold_model, scheduled_folds
from llmbt.feeds.universe import Universe

log = logging.getLogger(__name__)


def run_universe_walkforward(cfg: WalkForwardConfig,
                             say: Callable[[str], None] = log.info) -> WalkForwardResult:
    """Run every fold of a universe walk-forward; see the module docstring.

    Raises:
        ConfigError: no ``--news``, or too few bars for one fold.
    """
    started = time.perf_counter()
    universe = load_run_universe(cfg.run)
    news = run_news(cfg.run, universe)
    calendar = universe.calendar
    offset = int(calendar.searchsorted(pd.Timestamp(cfg.run.start, tz="UTC"))) if cfg.run.start else 0
    folds = scheduled_folds(cfg, [shift_fold(f, offset, calendar)
                                  for f in cfg.splitter.folds(calendar[offset:])], say)
    say(f"universe walk-forward {cfg.run_id}: {len(universe.prices)} symbols, {len(folds)} folds "
        f"over {calendar[offset]:%Y-%m-%d}..{calendar[-1]:%Y-%m-%d}")
    facts = universe_facts(cfg.run, universe, news, folds[0].test_start) if folds else {}
    say_facts(facts, say)
    results = run_folds(cfg, folds, partial(_run_fold, cfg, universe, news), say)
    return WalkForwardResult(cfg, results, time.perf_counter() - started, None,
                             benchmark_name=BENCHMARK, opens=_tested_opens(universe, folds),
                             universe=facts)


def fold_examples(cfg: WalkForwardConfig, universe: Universe, news: pd.DataFrame, fold: Fold) -> list:
    """The fold's training examples: headlines of every symbol entering in the train window whose
    label window ends inside it, labelled relative to the universe (thresholds fitted on them)."""
    from llmbt.signals_cache.finetune.universe_labels import universe_headline_examples

    return universe_headline_examples(universe.prices, news, horizon=cfg.horizon,
                                      first=fold.train_start, last_end=fold.train_end,
                                      masker=load_masker(cfg.run))


def fold_window(universe: Universe, fold: Fold, history: int) -> Universe:
    """The universe's bars from ``history`` calendar bars before the test window to its last bar."""
    calendar = universe.calendar
    lo = calendar[max(0, int(fold.test[0]) - history)]
    prices = {s: b.loc[lo : fold.test_end] for s, b in universe.prices.items()}
    return Universe({s: b for s, b in prices.items() if len(b)}, universe.source)


def _run_fold(cfg: WalkForwardConfig, universe: Universe, news: pd.DataFrame, fold: Fold,
              parent: str | None, say: Callable[[str], None]) -> FoldResult:
    cfg, model = fold_model(cfg, fold)
    examples = fold_examples(cfg, universe, news, fold)
    split = fold_split(cfg, examples)
    adapter, meta, reused = train_adapter(cfg, split["train"], split["val"], parent)
    say(f"fold {fold.number}: train {fold.train_start:%Y-%m-%d}..{fold.train_end:%Y-%m-%d} "
        f"({len(split['train'])}+{len(split['val'])} headline examples, "
        f"{len({e.symbol for e in examples})} symbols), adapter "
        f"{'reused' if reused else 'trained'} {Path(adapter).name}")
    result = FoldResult(fold.as_dict() | {
        "examples": {"train": len(split["train"]), "val": len(split["val"])},
        "adapter": adapter, "adapter_reused": reused,
        "train_loss": meta["metrics"]["train_loss"].get("mean_last_10pct"),
        "val_loss": meta["metrics"]["best_val_loss"], "train_seconds": meta["metrics"]["seconds"],
        "models": {}} | model)
    arms, result.facts["arms"] = train_fold_arms(cfg, split, say)  # the same examples as the LoRA
    window = fold_window(universe, fold, history_bars(cfg.run))
    _test_arms(cfg, result, [Arm(BASE), Arm(TUNED, adapter=adapter), *arms], window, news, fold)
    say(f"fold {fold.number}: test {fold.test_start:%Y-%m-%d}..{fold.test_end:%Y-%m-%d} " + ", ".join(
        f"{n} Sharpe {m['sharpe']:.2f} return {m['total_return']:.2%}"
        for n, m in result.facts["models"].items()))
    return result


def _test_arms(cfg: WalkForwardConfig, result: FoldResult, arms: list[Arm], window: Universe,
               news: pd.DataFrame, fold: Fold) -> None:
    """Trade the arms on the test window (:func:`~llmbt.experiments.universe_arms.trade_arms`); store
    each one's run, score rows and facts, and the equal-weight benchmark, in ``result``."""
    run_cfg = cfg.run.replace(start=f"{fold.test_start:%Y-%m-%d}", end=f"{fold.test_end:%Y-%m-%d}")
    for name, run in trade_arms(run_cfg, arms, window, news).items():
        if run.run.returns.index[0] != fold.test_start:
            raise ConfigError(f"fold {fold.number}: the portfolio traded from {run.run.returns.index[0]}, "
                              f"not the test window's first bar {fold.test_start}; use daily bars.")
        result.runs[name] = run.run
        result.scores[name] = score_rows(run.panels["score"])
        result.facts["models"][name] = arm_facts(run)
        if run.benchmark is not None:
            result.benchmark = run.benchmark.returns.rename(BENCHMARK)
            result.facts["benchmark"] = {BENCHMARK: portfolio_stats(run.benchmark.stats)}


def _tested_opens(universe: Universe, folds: list[Fold]) -> pd.DataFrame | None:
    """Opens from the first test bar to the last loaded bar (forward returns past a fold's end)."""
    if not folds:
        return None
    return universe.panel("open").loc[folds[0].test_start :]
