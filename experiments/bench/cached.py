"""Whole-process cost of a fully cached ``llm_sentiment`` run against a plain ``sma_cross`` run.

What a user waits for is the whole ``bt run`` process (interpreter start, imports, data, signals,
loop, report), so both are timed as fresh ``python -m llmbt run`` subprocesses on the same data
and window, alternating (load on a shared machine drifts), after one untimed llm run that fills
the signal cache. The goal (issue 14) is a ratio of at most 1.3: a cached run must not import or
initialise the ML stack.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from llmbt.errors import LlmbtError

#: The most a fully cached run may cost, as a multiple of the sma_cross process.
GOAL_RATIO = 1.3


@dataclass(frozen=True)
class CachedRunBench:
    """What both runs share: data, window, model, signal cache, and how many timed pairs."""

    data: str = "sample:GOOG"
    start: str | None = "2012-06-01"
    model: str = "smollm2-135m"
    cache_dir: str | None = None
    repeats: int = 5


def run_args(bench: CachedRunBench, strategy: str) -> list[str]:
    """The ``python -m llmbt run`` command line of ``strategy`` (no tearsheet)."""
    args = [sys.executable, "-m", "llmbt", "run", "--strategy", strategy, "--data", bench.data,
            "--no-report"]
    if bench.start:
        args += ["--start", bench.start]
    if strategy != "sma_cross":
        args += ["--model", bench.model] + (["--cache-dir", bench.cache_dir] if bench.cache_dir else [])
    return args


def timed_run(args: list[str]) -> tuple[float, str]:
    """Wall seconds and output of one process; LlmbtError naming the command when it fails."""
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LlmbtError(f"`{' '.join(args[1:])}` failed ({tail[0]}); run it alone to see why.")
    return seconds, done.stdout


def bench_cached_run(bench: CachedRunBench) -> dict[str, float | int | str]:
    """Median whole-process seconds of ``sma_cross`` and of a fully cached ``llm_sentiment`` run
    and their ratio (``cached_run_vs_sma_cross``), from ``bench.repeats`` alternating pairs.

    Raises:
        LlmbtError: a run fails, or a timed llm run still called the model (cache not filled).
    """
    llm, sma = run_args(bench, "llm_sentiment"), run_args(bench, "sma_cross")
    timed_run(llm)  # fills the cache (loads the model only if something is missing)
    llm_s, sma_s = [], []
    for _ in range(max(1, bench.repeats)):
        seconds, out = timed_run(llm)
        if "model calls: 0 " not in out:
            raise LlmbtError("the timed llm_sentiment run still called the model; is the signal "
                             "cache writable (--cache-dir)?")
        llm_s.append(seconds)
        sma_s.append(timed_run(sma)[0])
    ratio = statistics.median(llm_s) / statistics.median(sma_s)
    return {"process_sma_cross_s": statistics.median(sma_s),
            "process_cached_llm_s": statistics.median(llm_s),
            "cached_run_vs_sma_cross": ratio, "cached_run_pairs": len(llm_s),
            "cached_run_goal": f"<= {GOAL_RATIO}x: {'met' if ratio <= GOAL_RATIO else 'missed'}"}
