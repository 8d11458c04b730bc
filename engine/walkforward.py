"""Walk-forward validation: per fold, fine-tune on the train window, then backtest base and adapter
on the unseen test window; stitch the out-of-sample returns.

Per fold ``k`` (windows from :class:`llmbt.engine.splitters.WalkForward`, embargo >= label horizon):

1. training examples: bar prompts of the train window, labelled by forward returns that end
   inside the train window (thresholds fitted on labelled bars up to the train window's end);
2. an adapter fine-tuned on them (from the base, or from fold ``k-1``'s adapter with
   ``warm_start``), stored by content hash so a re-run reuses it;
3. both models, and the ``--arm`` arms (:mod:`llmbt.engine.wf_arms`; a trained kind trained on
   the adapter's examples), backtested on the test window (signals computed before the event
   loop, warm-up from earlier bars, scores through the signal cache) and evaluated on the test
   window's labelled bars (F1, directional hit rate).

A fold that raises is logged and recorded, and the run goes on unless ``fail_fast``. Folds run in
this process one after another, or as Ray tasks with ``executor="ray"``
(:mod:`llmbt.engine.executors`); both give the same results, and the same run id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmbt.engine.arms import Arm, arm_config
from llmbt.engine.config import RunConfig
from llmbt.engine.evaluation import run_facts, signal_quality_frame, window_examples
from llmbt.engine.executors import check_executor, make_executor
from llmbt.engine.runner import RunResult, load_history, run_backtest
from llmbt.engine.splitters import Fold, WalkForward
from llmbt.engine.wf_schedule import check_wf_schedule, fold_model, scheduled_folds
from llmbt.errors import ConfigError
from llmbt.paths import llmbt_home

log = logging.getLogger(__name__)

BASE, TUNED = "base", "lora"


def default_train() -> dict[str, Any]:
    """Fine-tuning defaults sized for the embedded model on 2 CPU cores (a few minutes a fold)."""
    return {"template": "bars-v2", "max_length": 640, "max_steps": 24, "batch_size": 8, "r": 8,
            "alpha": 16,
            "lr": 1e-3, "top_layers": 8, "eval_every": 8, "early_stopping_patience": 2,
            "warmup_ratio": 0.1}


@dataclass(frozen=True)
class WalkForwardConfig:
    """One walk-forward run; its hash (:attr:`run_id`) names the run.

    Attributes:
        run: strategy, data, costs and base model (``run.start``/``run.end`` bound the bars split).
        splitter: the train/test windows.
        horizon: label horizon in bars (forward return from the next bar's open).
        label_method: ``quantile`` or ``vol`` thresholds (see ``llmbt.signals_cache.finetune.datasets``).
        train: :class:`~llmbt.signals_cache.finetune.trainer.TrainConfig` fields (over :func:`default_train`).
        warm_start: start each fold's adapter from the previous fold's (incremental training).
        val_fraction: share of each train window's examples held out for early stopping.
        max_val: at most this many of them are used (evenly spaced over the validation block, so
            it still spans its whole period; 0 = all): a universe's validation block holds
            thousands of headlines, and each validation pass would cost more than the training.
        fail_fast: stop at the first failing fold instead of logging it and going on.
        executor: where folds run: ``serial`` (this process) or ``ray`` (Ray tasks; not with
            ``warm_start``, which chains the folds).
        ray_address: the Ray cluster for ``executor="ray"`` (None: a local Ray instance).
        arms: more arms (:class:`~llmbt.engine.arms.Arm`), each trained per fold where its kind
            needs it and tested on the fold's test window (:mod:`llmbt.engine.wf_arms`).
        head: ``HeadConfig`` fields of the per-fold embedding heads (``--head-param``).
    """

    run: RunConfig = field(default_factory=lambda: RunConfig(strategy="llm_sentiment"))
    splitter: WalkForward = field(default_factory=lambda: WalkForward(train=252, test=63, embargo=5))
    horizon: int = 5
    label_method: str = "quantile"
    train: dict[str, Any] = field(default_factory=dict)
    warm_start: bool = False
    val_fraction: float = 0.15
    max_val: int = 256
    fail_fast: bool = False
    executor: str = "serial"
    ray_address: str | None = None
    arms: tuple[Any, ...] = ()
    head: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise ConfigError(f"--horizon {self.horizon!r} must be a whole number of bars >= 1.")
        if self.splitter.embargo < self.horizon:
            raise ConfigError(f"--embargo {self.splitter.embargo} is shorter than --horizon "
                              f"{self.horizon}: train labels would see test bars; use --embargo "
                              f"{self.horizon} or more.")
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction {self.val_fraction!r} must be in (0, 0.5), e.g. 0.15 "
                              "(a WalkForwardConfig field; bt walkforward holds out 0.15).")
        if isinstance(self.max_val, bool) or not isinstance(self.max_val, int) or self.max_val < 0:
            raise ConfigError(f"--max-val {self.max_val!r} must be a whole number >= 0 (0 = all).")
        if self.universe and self.label_method != "quantile":
            raise ConfigError(f"label_method {self.label_method!r}: a universe walk-forward labels "
                              "headlines by quantiles of their excess return; use quantile "
                              "(a WalkForwardConfig field).")
        if not self.universe and self.run.mode != "bars":
            raise ConfigError("walk-forward fine-tunes on bar prompts; use --mode bars.")
        if self.run.adapter:  # it would score the base arm, and may have seen the test windows
            raise ConfigError(f"--adapter {self.run.adapter!r}: bt walkforward trains its own adapter "
                              "per fold and compares it with the plain base model; drop --adapter, "
                              "or compare that adapter with bt compare --arm name=lora,adapter=DIR.")
        self.train_config()  # validates the training fields, naming the flag
        check_executor(self.executor, self.ray_address)
        if self.warm_start and self.executor != "serial":
            raise ConfigError(f"--warm-start chains the folds (each adapter starts from the previous "
                              f"fold's), so they cannot run as parallel tasks; drop --warm-start or "
                              f"--executor {self.executor}.")
        if self.arms or self.head:
            from llmbt.engine.wf_arms import check_wf_arms

            check_wf_arms(self)
        check_wf_schedule(self)

    @property
    def universe(self) -> bool:
        """True for a portfolio strategy: headlines of a universe (:mod:`llmbt.engine.universe_wf`)."""
        from llmbt.engine.portfolio_run import is_portfolio

        return is_portfolio(self.run.strategy)

    def train_config(self) -> Any:
        """The :class:`~llmbt.signals_cache.finetune.trainer.TrainConfig` of every fold."""
        from llmbt.signals_cache.finetune.trainer import TrainConfig
        from llmbt.signals_cache.scoring.prompts import template_for
        from llmbt.signals_cache.universe import UNIVERSE_TEMPLATE

        mode, default = ("headlines", UNIVERSE_TEMPLATE) if self.universe else ("bars", None)
        fields_ = default_train() | {"template": template_for(mode, self.run.prompt or default).version}
        if self.universe:
            fields_["max_length"] = 256  # a headline prompt is short
        try:
            return TrainConfig(**(fields_ | dict(self.train)))
        except TypeError as exc:
            raise ConfigError(f"--train-param: {exc}; see bt finetune --help for the names.") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the run's ``config.json``)."""
        from llmbt.engine.wf_arms import wf_arms_dict

        out = {"run": self.run.to_dict(), "splitter": vars(self.splitter).copy(),
               "horizon": self.horizon, "label_method": self.label_method,
               "train": self.train_config().to_dict(), "warm_start": self.warm_start,
               "val_fraction": self.val_fraction, "max_val": self.max_val} | wf_arms_dict(self)
        return out | ({"universe": True, "labels": "excess over the equal-weight universe"}
                      if self.universe else {})

    @property
    def run_id(self) -> str:
        """12 hex digits of the config's hash (``fail_fast``, ``executor`` and ``ray_address``
        excluded: they change no result)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


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


def run_walkforward(cfg: WalkForwardConfig, say: Callable[[str], None] = log.info) -> WalkForwardResult:
    """Run every fold; see the module docstring (a universe: :mod:`llmbt.engine.universe_wf`)."""
    if cfg.universe:
        from llmbt.engine.universe_wf import run_universe_walkforward

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


def _run_fold(cfg: WalkForwardConfig, prices: pd.DataFrame, fold: Fold, parent: str | None,
              say: Callable[[str], None]) -> FoldResult:
    from llmbt.engine.wf_arms import train_fold_arms

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


def train_adapter(cfg: WalkForwardConfig, train: list, val: list,
                  parent: str | None) -> tuple[str, dict[str, Any], bool]:
    """The fold's adapter folder, its metadata and whether it was reused from the store.

    Adapters live under ``$LLMBT_HOME/adapters/<hash>``, the hash covering the base weights,
    the training and validation examples, the hyper-parameters (:meth:`TrainConfig.identity`)
    and the parent adapter; an
    adapter is written to a temporary folder and renamed when complete.
    """
    from llmbt.signals_cache.finetune.encoding import dataset_hash
    from llmbt.signals_cache.finetune.trainer import META_FILE, finetune
    from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint
    from llmbt.signals_cache.model.quantization import resolve_device_dtype

    spec = ModelSpec(base=cfg.run.model, quantization=cfg.run.quantization, engine=cfg.run.engine)
    tcfg = cfg.train_config()
    device = resolve_device_dtype(spec.device, spec.dtype)[0]
    key = hashlib.sha256(json.dumps([base_fingerprint(spec), dataset_hash(train), dataset_hash(val),
                                     tcfg.identity(device), parent],
                                    sort_keys=True).encode()).hexdigest()[:16]
    folder = llmbt_home() / "adapters" / key
    if (folder / META_FILE).is_file():
        return str(folder), json.loads((folder / META_FILE).read_text()), True
    tmp = folder.with_name(key + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    meta = finetune(train, val, spec, tmp, tcfg, resume_adapter=parent, progress=True)
    tmp.rename(folder)
    return str(folder), meta, False


def _test_model(cfg: WalkForwardConfig, prices: pd.DataFrame, fold: Fold, test_ex: list,
                arm: Arm) -> tuple[RunResult, pd.DataFrame, dict[str, Any]]:
    """Backtest one arm on the test window (:func:`~llmbt.engine.arms.arm_config`: a text scorer
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
