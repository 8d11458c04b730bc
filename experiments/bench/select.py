"""What ``--select`` costs a cached universe run: the same ``bt run`` with and without the rule.

Runs are timed as whole ``python -m llmbt run`` processes (imports, data, selection, signals
from the cache, loop), alternating (load on a shared machine drifts), after one untimed run of each
that fills the signal cache. The goal (issue 25): the selection adds at most 10 % to the run.

``bt bench select`` times the user's run against the same with ``--select RULE``; the ``select``
study suite (:func:`bench_selection`) times a run that has a rule against a fixed list of the names
the rule ever picks (the same headlines scored, so the same cache), and the rule over that list,
which separates the selection's own cost from loading a larger file's bars.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmbt.errors import ConfigError, LlmbtError
from llmbt.experiments.bench.cached import timed_run

#: The most ``--select`` may add, as a fraction of the run without it.
GOAL_OVERHEAD = 0.10
#: The ``select`` suite's arms: the fixed list, the rule over it, the rule over the whole file.
ARMS = ("fixed list", "rule over the list", "rule over the file")


def _goal(overhead: float) -> str:
    return f"<= {GOAL_OVERHEAD:.0%}: {'met' if overhead <= GOAL_OVERHEAD else 'missed'}"


def time_cached_runs(arms: Mapping[str, Sequence[str]], repeats: int) -> dict[str, float]:
    """Median whole-process seconds of each arm's command, over ``repeats`` alternating rounds
    after one untimed run of each (which fills the signal cache).

    Raises:
        LlmbtError: a run fails, or a timed run still called the model (cache not filled).
    """
    for args in arms.values():
        timed_run(list(args))
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(max(1, repeats)):
        for name, args in arms.items():
            seconds, out = timed_run(list(args))
            if "model calls: 0 " not in out and "model calls" in out:
                raise LlmbtError(f"the timed {name} run still called the model; is the signal "
                                 "cache writable (--cache-dir)?")
            times[name].append(seconds)
    return {name: statistics.median(found) for name, found in times.items()}


def bench_select(run_args: Sequence[str], rule: str, repeats: int = 3) -> dict[str, float | int | str]:
    """Median whole-process seconds of ``bt run RUN_ARGS`` and of the same with ``--select RULE``.

    Args:
        run_args: the ``bt run`` arguments both share (strategy, data, news, window, model).
        rule: the ``--select`` rule added to the second run.
        repeats: timed pairs.

    Raises:
        LlmbtError: a run fails, or a timed run still called the model (cache not filled).
    """
    plain = [sys.executable, "-m", "llmbt", "run", *run_args, "--no-report"]
    medians = time_cached_runs({"plain": plain, "select": [*plain, "--select", rule]}, repeats)
    overhead = medians["select"] / medians["plain"] - 1.0
    return {"process_plain_s": medians["plain"], "process_select_s": medians["select"],
            "select_overhead": overhead, "pairs": max(1, repeats), "select_goal": _goal(overhead)}


def selected_names(config: Any) -> list[str]:
    """The names ``config``'s rule makes eligible on at least one bar from its start (no scoring).

    Raises:
        ConfigError: ``config`` has no ``select`` rule.
    """
    import pandas as pd

    from llmbt.engine.eligibility import eligible
    from llmbt.engine.portfolio_run import load_inputs

    if not config.select:
        raise ConfigError("the select bench needs a run with select: RULE (e.g. news:30:252).")
    inputs = load_inputs(config)
    since = pd.Timestamp(config.start, tz="UTC") if config.start else None
    return eligible(config, inputs.universe, inputs.news).ever(since)


def bench_selection(config: Any, repeats: int = 3) -> dict[str, float | int | str]:
    """The three :data:`ARMS` of the universe run ``config`` (which has a ``select`` rule), as
    whole cached processes: their median seconds, the rule's cost over the fixed list (the
    selection alone) and over the whole file (the selection and the other names' bars).

    Raises:
        ConfigError: ``config`` has no rule.
        LlmbtError: a run fails or still calls the model.
    """
    names = selected_names(config)
    listed = config.replace(symbols=",".join(names))
    configs = {ARMS[0]: dataclasses.replace(listed, select=None), ARMS[1]: listed, ARMS[2]: config}
    with tempfile.TemporaryDirectory(prefix="llmbt-bench-select-") as tmp:
        arms = {name: _command(cfg, Path(tmp) / f"arm{i}.yaml")
                for i, (name, cfg) in enumerate(configs.items())}
        medians = time_cached_runs(arms, repeats)
    listed_s, rule_s, file_s = (medians[name] for name in ARMS)
    return {"names": len(names), "process_fixed_list_s": listed_s, "process_rule_over_list_s": rule_s,
            "process_rule_over_file_s": file_s, "rule_over_list_overhead": rule_s / listed_s - 1.0,
            "rule_over_file_overhead": file_s / listed_s - 1.0, "rounds": max(1, repeats),
            "select_goal": _goal(rule_s / listed_s - 1.0)}


def _command(config: Any, path: Path) -> list[str]:
    """``python -m llmbt run --config PATH`` with ``config`` written to ``path`` as YAML."""
    path.write_text(config.to_yaml(), encoding="utf-8")
    return [sys.executable, "-m", "llmbt", "run", "--config", str(path), "--no-report"]
