"""The ``compare`` study kind: ``bt compare --arm`` on a recipe's run, published as tables.

::

    kind: compare
    config: {strategy: llm_sentiment, data: sample:GOOG, start: 2011-10-01}
    prepare: [examples/point_in_time/make_models.py, out/pit-models]   # (any kind) a script first
    compare:
      arms:                                     # as bt compare --arm takes them, reference first
        - name=pit,schedule=out/pit-models/schedule.csv
        - name=modern,model=smollm2-135m
      horizon: 5                                # as bt compare --horizon

The recipe's ``prepare`` (:func:`llmbt.experiments.studies.prepare`) saves what the arms name,
here the local models of a schedule. The arms are backtested over the run's period as ``bt compare --arm``
backtests them (every arm a trial of the ledger) and their results folder is written under the
study's folder; the CLI, above this layer, reads it back with
:func:`llmbt.reports.compare.compare_results` with the run's own arms as the trials (``--trials
run``), so the table does not depend on what else this machine has tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError, reject_unknown_keys


@dataclass(frozen=True)
class CompareSettings:
    """The ``compare:`` block of a recipe (see the module docstring)."""

    arms: tuple[str, ...]
    horizon: int = 5

    def __post_init__(self) -> None:
        if len(self.arms) < 2:
            raise ConfigError(f"compare arms {list(self.arms)!r}: give two or more, as bt compare "
                              "--arm takes them (e.g. name=modern,model=smollm2-135m)")
        if not isinstance(self.horizon, int) or self.horizon < 1:
            raise ConfigError(f"compare horizon {self.horizon!r} must be a whole number of bars, "
                              "at least 1 (as bt compare --horizon)")


def compare_settings(data: dict[str, Any], study: str) -> CompareSettings:
    """The validated ``compare:`` block of study ``study``, its arms parsed as ``--arm`` is.

    Raises:
        ConfigError: an unknown key, fewer than two arms or a bad arm spec, naming the study.
    """
    from llmbt.experiments.arms import parse_arm

    reject_unknown_keys(data, CompareSettings.__dataclass_fields__, f"study {study} compare")
    try:
        settings = CompareSettings(arms=tuple(map(str, data.get("arms") or ())),
                                   horizon=data.get("horizon", 5))
        for spec in settings.arms:
            parse_arm(spec)
    except ConfigError as exc:
        raise ConfigError(f"study {study}: {exc}") from exc
    return settings


def run_compare(config: RunConfig, settings: CompareSettings,
                out: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Backtest the arms (:func:`llmbt.experiments.arms.run_arms`) and write their results folder
    ``out`` (as ``bt compare --arm --out OUT``); returns it and each arm's signal facts."""
    from llmbt.experiments.arms import parse_arm, run_arms
    from llmbt.experiments.results import write_arms_results

    arms = [parse_arm(spec) for spec in settings.arms]
    res = run_arms(config, arms, settings.horizon, say=lambda _: None)
    return write_arms_results(res, config, arms, out, horizon=settings.horizon), res["info"]


def compare_facts(info: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The results page's facts: each arm's signals, model schedule and hindsight line."""
    keep = ("signals", "model schedule", "hindsight")
    return {f"{arm} {key}": str(facts[key]) for arm, facts in info.items()
            for key in keep if facts.get(key)}
