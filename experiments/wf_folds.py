"""The folds of a walk-forward, one symbol's or a universe's: their results, how they run (in turn
or as Ray tasks, a failing fold recorded), their windows, the train/validation split of their
examples, and the per-fold adapter store (:func:`train_adapter`)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from llmbt.engine.runner import RunResult
from llmbt.experiments.executors import make_executor
from llmbt.experiments.splitters import Fold
from llmbt.experiments.wf_config import BASE, TUNED, WalkForwardConfig

log = logging.getLogger(__name__)


@dataclass
class FoldResult:
    """What one fold produced: plain facts (JSON) and the two models' backtests."""

    facts: dict[str, Any]
    runs: dict[str, RunResult] = field(default_factory=dict)  # a PortfolioRun for a universe
    scores: dict[str, pd.DataFrame] = field(default_factory=dict)  # per test bar, per model
    benchmark: pd.Series | None = None


@dataclass
class WalkForwardResult:
    """All folds, and the stitched out-of-sample returns of each model."""

    config: WalkForwardConfig
    folds: list[FoldResult]
    seconds: float = 0.0
    close: pd.Series | None = None  # closes of the loaded bars (saved for bt compare --from)
    benchmark_name: str = "buy_and_hold"  # equal_weight for a universe
    opens: pd.DataFrame | None = None  # a universe's opens, calendar x symbols (for the daily IC)
    universe: dict | None = None  # a universe's survivorship / selection facts (universe_facts)

    @property
    def ok(self) -> list[FoldResult]:
        return [f for f in self.folds if "error" not in f.facts]

    @property
    def arm_names(self) -> tuple[str, ...]:
        """Every arm, in the order the run records them: the fold LoRA, the base model, the arms."""
        return (TUNED, BASE, *(a.name for a in self.config.arms))

    def stitched(self, name: str) -> pd.Series:
        """Test-window returns of model ``name`` (or ``buy_and_hold``) over all good folds."""
        parts = [f.benchmark if name == self.benchmark_name else f.runs[name].returns for f in self.ok]
        return pd.concat(parts).rename(name) if parts else pd.Series(dtype=float, name=name)

    def stitched_scores(self, name: str) -> pd.DataFrame:
        parts = [f.scores[name] for f in self.ok]
        return pd.concat(parts) if parts else pd.DataFrame()

    def table(self) -> pd.DataFrame:
        """One row per (fold, model): period, examples, losses, F1, Sharpe, return, drawdown, trades."""
        rows = []
        for fold in self.ok:
            for name, metrics in fold.facts["models"].items():
                rows.append({k: fold.facts[k] for k in ("fold", "test_start", "test_end")}
                            | {"model": name, "examples": fold.facts["examples"]["train"],
                               "train_loss": fold.facts.get("train_loss")} | metrics)
        return pd.DataFrame(rows)


#: ``run_fold(fold, parent adapter, say)``: one fold's work (picklable for Ray: a partial of a
#: module-level function).
FoldFn = Callable[[Fold, "str | None", Callable[[str], None]], FoldResult]


@dataclass
class FoldOutcome:
    """A fold's result, the messages it said (kept when it ran elsewhere) and a failure's traceback."""

    result: FoldResult
    messages: list[str] = field(default_factory=list)
    trace: str | None = None


def run_folds(cfg: WalkForwardConfig, folds: list[Fold], run_fold: FoldFn,
              say: Callable[[str], None]) -> list[FoldResult]:
    """``run_fold(fold, parent adapter, say)`` for each fold, on ``cfg.executor``; a fold that
    raises is logged and recorded (its facts get ``error``) and the other folds run, unless
    ``cfg.fail_fast``. With ``warm_start`` the folds run in turn, each from the previous adapter;
    folds run as Ray tasks say their messages here when they end."""
    if cfg.warm_start:
        outcomes, parent = [], None
        for fold in folds:
            outcomes.append(fold_task(run_fold, cfg.fail_fast, fold, parent, say))
            parent = outcomes[-1].result.facts.get("adapter", parent)
        return [o.result for o in outcomes]
    executor = make_executor(cfg.executor, cfg.ray_address)
    task = partial(fold_task, run_fold, cfg.fail_fast, say=None if executor.remote else say)
    outcomes = executor.map(task, folds)
    for outcome in outcomes if executor.remote else ():
        for message in outcome.messages:
            say(message)
        if outcome.trace:
            log.error("fold %d failed (on a Ray worker):\n%s", outcome.result.facts["fold"],
                      outcome.trace)
    return [o.result for o in outcomes]


def fold_task(run_fold: FoldFn, fail_fast: bool, fold: Fold, parent: str | None = None,
              say: Callable[[str], None] | None = None) -> FoldOutcome:
    """One fold, a failure recorded in its facts (re-raised with ``fail_fast``); messages go to
    ``say``, or into the outcome when ``say`` is None (a fold run as a Ray task)."""
    messages: list[str] = []
    tell = say or messages.append
    try:
        return FoldOutcome(run_fold(fold, parent, tell), messages)
    except Exception as exc:  # a failing fold is logged and recorded, never silent
        if fail_fast:
            raise
        log.exception("fold %d failed", fold.number)
        tell(f"fold {fold.number} FAILED: {type(exc).__name__}: {exc}")
        error = FoldResult(fold.as_dict() | {"error": f"{type(exc).__name__}: {exc}"})
        return FoldOutcome(error, messages, traceback.format_exc())


def shift_fold(fold: Fold, offset: int, index: pd.DatetimeIndex) -> Fold:
    train, test = fold.train + offset, fold.test + offset
    return Fold(fold.number, train, test, index[train[0]], index[train[-1]], index[test[0]],
                index[test[-1]])


def fold_split(cfg: WalkForwardConfig, examples: list) -> dict[str, list]:
    """A fold's train examples split by time into ``train`` and ``val`` (purged, embargoed), the
    validation block thinned to ``cfg.max_val`` evenly spaced examples."""
    from llmbt.signals_cache.finetune.datasets import time_split

    split = time_split(examples, val=cfg.val_fraction, test=0.0, embargo=cfg.horizon)
    val = split["val"]
    if cfg.max_val and len(val) > cfg.max_val:
        keep = np.linspace(0, len(val) - 1, cfg.max_val).round().astype(int)
        split["val"] = [val[i] for i in keep]
    return split


def train_adapter(cfg: WalkForwardConfig, train: list, val: list,
                  parent: str | None) -> tuple[str, dict[str, Any], bool]:
    """The fold's adapter folder, its metadata and whether it was reused from the store
    (:func:`llmbt.experiments.adapter_store.stored_adapter`)."""
    from llmbt.experiments.adapter_store import stored_adapter
    from llmbt.signals_cache.model.loading import ModelSpec

    spec = ModelSpec(base=cfg.run.model, quantization=cfg.run.quantization, precision=cfg.run.precision)
    return stored_adapter(spec, train, val, cfg.train_config(), parent)
