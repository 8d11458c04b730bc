"""A walk-forward through a point-in-time model schedule (``--model-schedule``): each fold is
scored by, and fine-tunes its LoRA from, the model whose cutoff precedes its test window.

The fold's run takes that model as ``--model`` and its cutoff as ``--model-cutoff`` (so the fold's
hindsight line reads it), and its facts record the mapping (``model``, ``cutoff``,
``schedule_row``; kept in ``folds/fold-K.json``). A fold whose test window starts before the
first cutoff is refused before any fold runs, or with ``--before-first skip`` left out and said.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from llmbt.engine.signals import run_schedule
from llmbt.errors import ConfigError
from llmbt.experiments.splitters import Fold


def check_wf_schedule(cfg: Any) -> None:
    """Refuse what a scheduled walk-forward cannot do: chained adapters across base models, and
    schedule rows with adapters (the walk-forward trains its own per fold).

    Raises:
        ConfigError: naming the flag or the schedule row.
    """
    schedule = run_schedule(cfg.run)
    if schedule is None:
        return
    if cfg.warm_start:
        raise ConfigError("--warm-start chains each fold's adapter from the previous fold's, but "
                          "--model-schedule may change the base model between folds; drop one")
    for seg in schedule.segments:
        if seg.adapter:
            raise ConfigError(f"--model-schedule {schedule.path} row {seg.row} names adapter "
                              f"{seg.adapter!r}: bt walkforward trains its own adapter per fold "
                              "from the row's model; drop the adapter column")


def scheduled_folds(cfg: Any, folds: list[Fold], say: Callable[[str], None]) -> list[Fold]:
    """``folds`` whose test window a model of the schedule may score (all without a schedule);
    the others are refused, or with ``--before-first skip`` dropped and said."""
    schedule = run_schedule(cfg.run)
    if schedule is None or not folds:
        return folds
    segment = schedule.segments_of([f.test_start for f in folds], "fold test window")
    for fold, k in zip(folds, segment, strict=True):
        if k < 0:
            say(f"fold {fold.number} skipped: its test window starts {fold.test_start:%Y-%m-%d}, "
                f"before the first model of {schedule.path} may score it (--before-first skip)")
    return [fold for fold, k in zip(folds, segment, strict=True) if k >= 0]


def fold_model(cfg: Any, fold: Fold) -> tuple[Any, dict[str, Any]]:
    """(``cfg`` for ``fold``, the facts of its model): the schedule's model of the fold's test
    window as the run's ``--model`` (its cutoff as ``--model-cutoff``); ``cfg`` and no facts
    without a schedule."""
    schedule = run_schedule(cfg.run)
    if schedule is None:
        return cfg, {}
    seg = schedule.segments[schedule.for_window(fold.test_start)]
    run = dataclasses.replace(cfg.run, model=seg.model, model_cutoff=str(seg.cutoff),
                              model_schedule=None, cutoff_gap=0, before_first="refuse")
    facts = {"model": seg.model, "cutoff": str(seg.cutoff), "schedule_row": seg.row}
    return dataclasses.replace(cfg, run=run), facts
