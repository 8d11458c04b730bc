"""``bt compare --arm …``: several model variants backtested over one period on the same data,
strategy and costs (base vs ``adapter=``, zero-shot vs few-shot prompt, other models, and other
kinds of scorer: ``kind=lexicon`` and the other text scorers of :mod:`llmbt.signals_cache.text_scorers`).

An arm's adapter is its own: an arm without ``adapter=`` scores with the plain model, and a
run-level ``--adapter`` is refused with arms (it would score every arm that names none, the
"base" arm included). A universe strategy's arms run in :mod:`llmbt.experiments.universe_arms`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.engine.runner import load_history, refuse_portfolio, run_backtest
from llmbt.engine.signals import arms_hindsight, check_prompt, run_schedule
from llmbt.errors import ConfigError, did_you_mean
from llmbt.experiments.evaluation import run_facts, signal_quality_frame, window_examples
from llmbt.experiments.trials import record_run, trials_facts

ARM_KEYS = ("name", "kind", "model", "adapter", "prompt", "schedule")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arm:
    """One variant: a display name and what it changes in the run.

    ``model`` and ``prompt`` None = the run's own; ``adapter`` None = no adapter (the plain model).

    ``kind`` is ``lm`` (the causal-LM label scorer on prompts) or a registered text scorer
    (:func:`llmbt.signals_cache.text_scorers.registry.kinds`), which scores the raw texts (a headline, a
    bar's feature lines) with ``adapter`` as its artefact folder where it needs one.

    ``schedule`` (a ``--model-schedule`` file) makes a point-in-time arm: each item is scored by
    the model of its time (:mod:`llmbt.signals_cache.model.schedule`), in place of ``model``.
    """

    name: str
    model: str | None = None
    adapter: str | None = None
    prompt: str | None = None
    kind: str = "lm"
    schedule: str | None = None


def parse_arm(text: str) -> Arm:
    """``"name=lora,adapter=adapters/goog"`` → ``Arm``; a bare word is a registered scorer kind
    (``lexicon``: name and kind) or else a model (``smollm2-135m``).

    Raises:
        ConfigError: an unknown key or kind, an empty value, no name, or a prompt= for a text
            scorer (it reads the raw text, no prompt).
    """
    from llmbt.signals_cache.text_scorers.registry import LM_KIND, check_kind, kinds

    if "=" not in text:
        word = text.strip()
        return Arm(name=word, kind=word) if word in kinds() and word != LM_KIND else \
            Arm(name=word, model=word)
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = (x.strip() for x in part.partition("="))
        if key not in ARM_KEYS or not sep or not value:
            hint = did_you_mean(key, ARM_KEYS) if key not in ARM_KEYS else ""
            raise ConfigError(f"--arm {text!r}: {part!r} must be key=value with key one of "
                              f"{', '.join(ARM_KEYS)}.{hint} E.g. --arm name=lora,adapter=DIR")
        values[key] = value
    if "name" not in values:
        raise ConfigError(f"--arm {text!r} has no name=; e.g. --arm name=fewshot,prompt=bars-fewshot-v1")
    arm = Arm(**values)
    if check_kind(arm.kind) != LM_KIND and arm.prompt:
        raise ConfigError(f"--arm {text!r}: kind={arm.kind} scores the raw text; drop prompt=.")
    if arm.schedule and (arm.model or arm.adapter or arm.kind != LM_KIND):
        raise ConfigError(f"--arm {text!r}: schedule= chooses each item's model (and adapter) "
                          "from its rows; drop model=, adapter= and kind=.")
    return arm


def run_arms(config: RunConfig, arms: list[Arm], horizon: int = 5,
             say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Backtest every arm over ``config``'s period and score its signals against realised labels.

    Labels use forward returns over ``horizon`` bars, with thresholds fitted on the warm-up bars
    whose window ends before ``config.start`` (nothing of the tested period shapes them); bars
    whose window would end after the period's last bar are not scored.

    Returns:
        ``returns`` (per arm, plus ``buy_and_hold``), ``scores`` (per arm), a one-row-per-arm
        ``folds`` table, the period's ``close`` prices (as :func:`llmbt.reports.compare.compare` and
        the comparison page take them), each arm's signal ``info`` (its hindsight line) and
        ``trials`` (:func:`llmbt.experiments.trials.trials_facts`: each arm is recorded in the ledger).
    """
    refuse_portfolio(config)
    names = check_arms(config, arms)
    if config.mode != "bars" or not config.start:
        raise ConfigError("bt compare --arm needs --mode bars and a --start (labels are fitted before it).")
    for arm in arms:
        check_prompt(config.replace(prompt=arm.prompt))
    check_arm_schedules(config, arms)
    history = load_history(config)  # loaded once: every arm sees the same bars, offline once cached
    examples = _period_examples(config, history, horizon)
    prices = history[history.index >= pd.Timestamp(config.start, tz="UTC")]
    returns, scores, rows, info, keys = {}, {}, [], {}, {}
    for i, arm in enumerate(arms):
        cfg = arm_config(config, arm).replace(benchmark=None if i == 0 else "none")
        run = run_backtest(cfg, prices=prices, with_benchmark=i == 0, history=history)
        keys[arm.name] = record_run(cfg, run.returns, run.signal_info, "compare", arm=arm.name,
                                    run_id=config.run_id)  # each arm a trial of the ledger
        frame, quality = signal_quality_frame(cfg, examples, run.signals["score"])
        returns[arm.name], scores[arm.name] = run.returns.rename(arm.name), frame
        info[arm.name] = run.signal_info
        if run.benchmark_returns is not None:
            returns["buy_and_hold"] = run.benchmark_returns.rename("buy_and_hold")
        rows.append({"fold": 0, "model": arm.name, "test_start": run.returns.index[0],
                     "test_end": run.returns.index[-1]} | run_facts(run) | quality)
        say(f"{arm.name}: Sharpe {run.stats['sharpe']:.2f}, F1 {quality['eval_f1']:.2f}, "
            f"{run.signal_info.get('model calls', '')}")
    for note in arms_hindsight(info):
        say(f"hindsight: {note}")
    ordered = {k: returns[k] for k in [*names, "buy_and_hold"] if k in returns}
    return {"returns": ordered, "scores": scores, "folds": pd.DataFrame(rows), "close": prices["close"],
            "info": info, "trials": trials_facts(config, keys)}


def check_arms(config: RunConfig, arms: Sequence[Arm]) -> list[str]:
    """The arms' names, after refusing fewer than two arms, a repeated name and a run-level
    ``--adapter`` (each arm names its own: see the module docstring).

    Raises:
        ConfigError: naming the problem and the fix.
    """
    names = [a.name for a in arms]
    if len(arms) < 2 or len(set(names)) != len(names):
        raise ConfigError(f"give two or more --arm with distinct names; got {names}.")
    if config.adapter:
        raise ConfigError(f"--adapter {config.adapter!r} with --arm: each arm names its own adapter "
                          "(an arm without adapter= is the plain model); drop --adapter and put it on "
                          f"its arm, e.g. --arm name=lora,adapter={config.adapter}")
    return names


def check_arm_schedules(config: RunConfig, arms: Sequence[Arm]) -> None:
    """Read and check each arm's model schedule (``schedule=``, or the run's it inherits) before
    any arm runs, so that a bad one fails at once, not after the arms before it.

    Raises:
        ConfigError: the schedule's error, naming the arm.
    """
    for arm in arms:
        try:
            run_schedule(arm_config(config, arm))
        except ConfigError as exc:
            raise ConfigError(f"--arm {arm.name}: {exc}") from exc


def arm_config(config: RunConfig, arm: Arm) -> RunConfig:
    """``config`` with the arm's model and prompt (the run's own where it names none), its scorer
    kind and exactly the arm's adapter (None: the plain model, whatever ``config.adapter`` is);
    its model schedule (``schedule=``), or the run's ``--model-schedule`` for an arm that names
    neither a model nor another kind of scorer."""
    inherits = arm.model is None and arm.kind == "lm" and arm.adapter is None
    schedule = arm.schedule or (config.model_schedule if inherits else None)
    timing = {} if schedule else {"cutoff_gap": 0, "before_first": "refuse"}
    named = {k: v for k, v in {"model": arm.model, "prompt": arm.prompt}.items() if v is not None}
    return dataclasses.replace(config, **named, scorer=arm.kind, adapter=arm.adapter,
                               model_schedule=schedule, **timing)


def check_arm_prompt(config: RunConfig, arm: Arm, universe: bool) -> None:
    """Refuse a model arm's prompt before any data is read: for a ``universe`` it must be a headline
    template without the symbol (the universe scorer's), else a bar template of ``--mode bars``.

    Raises:
        ConfigError: the prompt does not fit, naming the arm.
    """
    from llmbt.signals_cache.universe import universe_template

    try:
        if universe:
            universe_template(arm_config(config, arm).prompt)
        else:
            check_prompt(arm_config(config, arm))
    except ConfigError as exc:
        raise ConfigError(f"--arm {arm.name}: {exc}") from exc


def _period_examples(config: RunConfig, prices: pd.DataFrame, horizon: int) -> list:
    """Labelled bars of the period whose forward window ends by its last bar (``prices``: the
    run's history, warm-up included, on which the label thresholds are fitted)."""
    start = pd.Timestamp(config.start, tz="UTC")
    end = prices.index[-1]
    before = prices.index[prices.index < start]
    if len(before) <= horizon:
        raise ConfigError(f"no bars before --start {config.start} to fit label thresholds; start later.")
    return window_examples(prices, config, horizon=horizon, method="quantile",
                           fit_end=before[-1], start=start, end=end)
