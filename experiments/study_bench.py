"""The ``bench`` study kind: a benchmark suite of ``bt bench`` whose figures the docs publish.

::

    kind: bench
    bench:
      suite: scoring        # bt bench scoring: generate vs batched vs prefix reuse, cache
                            # lookups, a cached backtest against sma_cross (in one process and
                            # as whole processes)
      model: smollm2-135m
      data: sample:GOOG
      n: 64                 # prompts of the batched paths
      n_generate: 8         # prompts of generate-then-parse
      batch_size: 16
      start: "2012-06-01"   # the backtests' window
      cached_run: 3         # timed process pairs (0: none)

    bench:
      suite: precision      # bt bench scoring --precisions: each precision against float32
      precisions: [float32, bf16]
      n: 256                # bar prompts of data, and with news: that many headline prompts
      news: shared          # a news file, or shared (the Reuters headlines); omit for bars only

    bench:
      suite: train          # bt bench train --model: bt finetune's loop, one column per variant
      model: smollm2-135m
      steps: 12             # timed training steps per variant, batches of batch_size
      batch_size: 8
      n_val: 64             # held-out examples for the loss before and after
      examples: shared      # a labelled file, or shared (../shared/data/fpb/fpb50_dev.csv)
      variants:             # name: the bt finetune settings it changes (TrainConfig fields)
        fp32, shuffled: {precision: fp32, group_by_length: false, share_prefix: false}
        default: {}

    bench:
      suite: universe       # bt bench universe: the portfolio event loop over a whole universe
      prices: shared        # long-format prices, or shared (the 499 S&P 500 stocks)
      top_k: 20
      scoring: 96           # also score that many headline rows of one symbol and of the universe
      symbol: AAPL

    bench:
      suite: shapes         # bt bench train --shape: random-weight models, per quantization
      shapes: [llama-7b, qwen-7b]
      quantizations: [none, 8bit, 4bit]
      device: cuda          # the GPU numbers; tiny-llama / tiny-qwen run on a CPU
      n: 64                 # prompts scored per variant
      steps: 5              # timed training steps (not for 8bit)
      batch_size: 8

    bench:
      suite: precision_backtest   # bt bench precision-backtest, one column per named run
      candidate: bf16
      runs:
        GOOG demo: {strategy: llm_sentiment}

    bench:
      suite: schedule       # a --model-schedule run against --model, whole processes, cold and cached
      schedule: out/pit-models/schedule.csv
      model: out/pit-models/llama-2012h2
      start: "2011-10-01"
      repeats: 3

    bench:
      suite: select         # bt bench select: each run's rule against a fixed list of the names
      repeats: 3            # it picks, and the rule over that list; whole cached processes
      runs:
        30 of 499: {strategy: llm_news_portfolio, data: "csv:P", select: "news:30:252", ...}

    bench:
      suite: trials         # bt bench trials: what recording a trial in the ledger adds to a run
      data: sample:GOOG
      start: null           # every bar
      repeats: 20
      filled: 200

Every figure is measured in the one run, so ratios compare like with like; the absolute numbers
are of the machine the study's provenance line names. Each suite's keys are the fields of its
settings class in :mod:`llmbt.experiments.bench_suites`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmbt.errors import ConfigError, did_you_mean
from llmbt.experiments.bench_suites import (
    PrecisionBacktestSuite,
    PrecisionSuite,
    ScheduleSuite,
    ScoringSuite,
    SelectSuite,
    ShapesSuite,
    Suite,
    TrainSuite,
    TrialsSuite,
    UniverseSuite,
)


def _registry(*classes: type[Suite]) -> dict[str, type[Suite]]:
    """The suites by name; a name given twice is a programming error."""
    out: dict[str, type[Suite]] = {}
    for cls in classes:
        if cls.NAME in out:
            raise ValueError(f"bench suite {cls.NAME!r} registered twice")
        out[cls.NAME] = cls
    return out


#: The suites a ``bench:`` block may name, each with its settings class.
SUITES = _registry(ScoringSuite, PrecisionSuite, TrainSuite, UniverseSuite, PrecisionBacktestSuite,
                   ShapesSuite, ScheduleSuite, TrialsSuite, SelectSuite)


def bench_settings(data: dict[str, Any], study: str) -> Suite:
    """The validated ``bench:`` block of study ``study``: its suite's settings.

    Raises:
        ConfigError: an unknown suite or key (with "Did you mean"), a missing required key.
    """
    suite = data.get("suite")
    if suite not in SUITES:
        raise ConfigError(f"study {study} bench: suite {suite!r} must be one of "
                          f"{', '.join(SUITES)}.{did_you_mean(str(suite), SUITES)}")
    return SUITES[suite].from_dict({k: v for k, v in data.items() if k != "suite"}, study)


def run_bench(settings: Suite, say: Callable[[str], None] = lambda _: None,
              ) -> dict[str, dict[str, Any]]:
    """The suite's measurements: one column of rows per model (scoring), per prompt set and
    precision (precision), per training variant (train), per named run (precision_backtest,
    select), per arm of a schedule (schedule), or the one universe loop or ledger (universe,
    trials); ``say`` gets a line as each column of the long suites (train, precision_backtest,
    shapes) is measured."""
    return settings.run(say)
