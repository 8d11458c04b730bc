"""Walk-forward validation: per fold, fine-tune on the train window, then backtest base and adapter
on the unseen test window; stitch the out-of-sample returns.

Per fold ``k`` (windows from :class:`llmbt.experiments.splitters.WalkForward`, embargo >= label horizon):

1. training examples: bar prompts of the train window, labelled by forward returns that end
   inside the train window (thresholds fitted on labelled bars up to the train window's end);
2. an adapter fine-tuned on them (from the base, or from fold ``k-1``'s adapter with
   ``warm_start``), stored by content hash so a re-run reuses it;
3. both models, and the ``--arm`` arms (:mod:`llmbt.experiments.wf_arms`; a trained kind trained on
   the adapter's examples), backtested on the test window (signals computed before the event
   loop, warm-up from earlier bars, scores through the signal cache) and evaluated on the test
   window's labelled bars (F1, directional hit rate).

A fold that raises is logged and recorded, and the run goes on unless ``fail_fast``. Folds run in
this process one after another, or as Ray tasks with ``executor="ray"``
(:mod:`llmbt.experiments.executors`); both give the same results, and the same run id.

The configuration (:class:`~llmbt.experiments.wf_config.WalkForwardConfig`) and the fold machinery
shared with the universe walk-forward (:mod:`llmbt.experiments.wf_folds`: results, running folds, the
adapter store) sit below this module and are importable from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from llmbt.engine.runner import RunResult, load_history, run_backtest
from llmbt.experiments.arms import Arm, arm_config
from llmbt.experiments.evaluation import run_facts, signal_quality_frame, window_examples
from llmbt.experiments.splitters import Fold
from llmbt.experiments.wf_arms import train_fold_arms
from llmbt.experiments.wf_config import BASE, TUNED, WalkForwardConfig, default_train
from llmbt.experiments.wf_folds import (
    FoldResult,
    WalkForwardResult,
    fold_split,
    run_folds,
    shift_fold,
    train_adapter,
)
from llmbt.experiments.wf_schedule import fold_model, scheduled_folds

__all__ = ["BASE", "TUNED", "FoldResult", "WalkForwardConfig", "WalkForwardResult", "default_train",
           "fold_examples", "fold_split", "run_folds", "run_walkforward", "shift_fold",
           "train_adapter"]

log = logging.getLogger(__name__)


def run_walkforward(cfg: WalkForwardConfig, say: Callable[[str], None] = log.info) -> WalkForwardResult:
    """Run every fold; see the module docstring (a universe: :mod:`llmbt.experiments.universe_wf`)."""
    if cfg.universe:
        from llmbt.experiments.universe_wf import run_universe_walkforward

        return run_universe_walkforward(cfg, say)
    started = time.perf_counter()
    prices = load_history(cfg.run)  # --start minus the warm-up, to --end
    offset = int(prices.index.searchsorted(pd.Timestamp(cfg.run.start, tz="UTC"))) if cfg.run.start else 0
    folds = scheduled_folds(cfg, [shift_fold(f, offset, prices.index)
                                  for f in cfg.splitter.folds(prices.index[offset:])], say)
    say(f"walk-forward {cfg.run_id}: {len(folds)} folds over {prices.index[offset]:%Y-%m-%d}.."
        f"{prices.index[-1]:%Y-%m-%d}")
    results = run_folds(cfg, folds, partial(_run_fold, cfg, prices), say)
    return WalkForwardResult(cfg, results, time.perf_counter() - started, prices["close"])


def _run_fold(cfg: WalkForwardConfig, prices: pd.DataFrame, fold: Fold, parent: str | None,
              say: Callable[[str], None]) -> FoldResult:
    cfg, model = fold_model(cfg, fold)
    train_ex, test_ex = fold_examples(cfg, prices, fold)
    split = fold_split(cfg, train_ex)
    adapter, meta, reused = train_adapter(cfg, split["train"], split["val"], parent)
    say(f"fold {fold.number}: train {fold.train_start:%Y-%m-%d}..{fold.train_end:%Y-%m-%d} "
        f"({len(split['train'])}+{len(split['val'])} examples), adapter "
        f"{'reused' if reused else 'trained'} {Path(adapter).name}")
    result = FoldResult(fold.as_dict() | {
        "examples": {"train": len(split["train"]), "val": len(split["val"]), "test": len(test_ex)},
        "adapter": adapter, "adapter_reused": reused,
        "train_loss": meta["metrics"]["train_loss"].get("mean_last_10pct"),
        "val_loss": meta["metrics"]["best_val_loss"], "train_seconds": meta["metrics"]["seconds"],
        "models": {}} | model)
    arms, result.facts["arms"] = train_fold_arms(cfg, split, say)  # the same examples as the LoRA
    for arm in (Arm(BASE), Arm(TUNED, adapter=adapter), *arms):
        run, scores, quality = _test_model(cfg, prices, fold, test_ex, arm)
        result.runs[arm.name], result.scores[arm.name] = run, scores
        result.facts["models"][arm.name] = run_facts(run) | quality
        if run.benchmark_returns is not None:
            result.benchmark = run.benchmark_returns.rename("buy_and_hold")
    say(f"fold {fold.number}: test {fold.test_start:%Y-%m-%d}..{fold.test_end:%Y-%m-%d} " + ", ".join(
        f"{n} Sharpe {m['sharpe']:.2f} F1 {m['eval_f1']:.2f}" for n, m in result.facts["models"].items()))
    return result


def fold_examples(cfg: WalkForwardConfig, prices: pd.DataFrame, fold: Fold) -> tuple[list, list]:
    """Labelled bar examples of the train window (labels end inside it) and of the test window,
    with thresholds fitted on labelled bars whose forward window ends by the train window's end."""
    common = {"horizon": cfg.horizon, "method": cfg.label_method, "fit_end": fold.train_end}
    last_labelled = prices.index[int(fold.train[-1]) - cfg.horizon]
    train = window_examples(prices, cfg.run, start=fold.train_start, end=last_labelled, **common)
    test = window_examples(prices, cfg.run, start=fold.test_start, end=fold.test_end, **common)
    return train, test


def _test_model(cfg: WalkForwardConfig, prices: pd.DataFrame, fold: Fold, test_ex: list,
                arm: Arm) -> tuple[RunResult, pd.DataFrame, dict[str, Any]]:
    """Backtest one arm on the test window (:func:`~llmbt.experiments.arms.arm_config`: a text scorer
    reads the bars' feature lines; the base model's run adds buy-and-hold) and measure its signals
    against realised labels."""
    first = arm.name == BASE
    run_cfg = arm_config(cfg.run.replace(start=f"{fold.test_start:%Y-%m-%d}",
                                         end=f"{fold.test_end:%Y-%m-%d}"), arm)
    run_cfg = run_cfg if first else run_cfg.replace(benchmark="none")
    last = int(fold.test[-1]) + 1
    run = run_backtest(run_cfg, prices=prices.iloc[fold.test[0] : last], with_benchmark=first,
                       history=prices.iloc[:last])
    scores, quality = signal_quality_frame(run_cfg, test_ex, run.signals["score"])
    return run, scores, quality
