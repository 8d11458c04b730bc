"""What ``--select`` costs a cached universe run: the same ``bt run`` with and without the rule.

Both runs are timed as whole ``python -m llmbt run`` processes (imports, data, selection, signals
from the cache, loop), alternating (load on a shared machine drifts), after one untimed run of each
that fills the signal cache. The goal (issue 25): the selection adds at most 10 % to the run.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence

from llmbt.errors import LlmbtError
from llmbt.experiments.bench.cached import timed_run

#: The most ``--select`` may add, as a fraction of the run without it.
GOAL_OVERHEAD = 0.10


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
    chosen = [*plain, "--select", rule]
    timed_run(plain), timed_run(chosen)  # fill the cache
    times: dict[str, list[float]] = {"plain": [], "select": []}
    for _ in range(max(1, repeats)):
        for name, args in (("plain", plain), ("select", chosen)):
            seconds, out = timed_run(args)
            if "model calls: 0 " not in out and "model calls" in out:
                raise LlmbtError(f"the timed {name} run still called the model; is the signal "
                                 "cache writable (--cache-dir)?")
            times[name].append(seconds)
    plain_s, select_s = statistics.median(times["plain"]), statistics.median(times["select"])
    overhead = select_s / plain_s - 1.0
    return {"process_plain_s": plain_s, "process_select_s": select_s, "select_overhead": overhead,
            "pairs": len(times["plain"]),
            "select_goal": f"<= {GOAL_OVERHEAD:.0%}: {'met' if overhead <= GOAL_OVERHEAD else 'missed'}"}
