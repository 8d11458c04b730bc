"""What recording a trial in the ledger (:mod:`llmbt.experiments.trials`) adds to a backtest: the goal is at
most 50 ms a run.

One real backtest (``sma_cross`` on ``sample:GOOG`` by default) is recorded in a fresh ledger of a
temporary ``LLMBT_HOME``: the first trial (which creates the ledger), new configurations (another
``fast`` each time), the same configuration again (a replacement), then the same once the ledger holds
``filled`` trials. Each time is the whole :func:`~llmbt.experiments.trials.record_run` call: fingerprints,
the per-bar returns as JSON, the SQLite transaction and closing the connection.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from llmbt.engine.config import RunConfig

#: The most recording a trial may add to a run, in milliseconds.
GOAL_MS = 50.0


@dataclass(frozen=True)
class TrialsBench:
    """The run recorded, how many timed records of each kind, and the ledger's size for the last."""

    data: str = "sample:GOOG"
    start: str | None = None
    repeats: int = 20
    filled: int = 200


@contextmanager
def _fresh_ledger() -> Iterator[None]:
    """A temporary ``LLMBT_HOME`` with the ledger on; the environment restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("LLMBT_HOME", "LLMBT_TRIALS")}
    with tempfile.TemporaryDirectory(prefix="llmbt-trials-bench-") as home:
        os.environ["LLMBT_HOME"] = home
        os.environ.pop("LLMBT_TRIALS", None)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - started)


def bench_trials(bench: TrialsBench) -> dict[str, float | int]:
    """Milliseconds per recorded trial: ``first``, the median and the slowest of ``new`` and
    ``replace``, and the median of both once ``filled`` trials (at least ``repeats + 1``) are in
    the ledger."""
    from llmbt.engine.runner import run_backtest
    from llmbt.experiments.trials import record_run

    config = RunConfig(strategy="sma_cross", data=bench.data, start=bench.start)
    result = run_backtest(config, with_benchmark=False)

    def record(fast: int) -> float:
        cfg = config.replace(params={"fast": fast, "slow": fast + 30})  # a valid pair, one key each
        return _ms(lambda: record_run(cfg, result.returns, result.signal_info, "run"))

    filled = max(bench.filled, bench.repeats + 1)
    with _fresh_ledger():
        first = record(2)
        new = [record(3 + i) for i in range(bench.repeats)]
        again = [record(3) for _ in range(bench.repeats)]
        for i in range(filled - bench.repeats - 1):
            record(100 + i)
        filled_new = [record(10_000 + i) for i in range(bench.repeats)]
        filled_again = [record(3) for _ in range(bench.repeats)]
    slowest = max(new + again + filled_new + filled_again)
    return {"bars": len(result.returns), "first_ms": first,
            "new_median_ms": statistics.median(new), "replace_median_ms": statistics.median(again),
            "filled_trials": filled + bench.repeats,
            "filled_new_median_ms": statistics.median(filled_new),
            "filled_replace_median_ms": statistics.median(filled_again), "slowest_ms": slowest,
            "goal_ms": GOAL_MS}
