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

Every figure is measured in the one run, so ratios compare like with like; the absolute numbers
are of the machine the study's provenance line names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmbt.errors import ConfigError, did_you_mean, reject_unknown_keys

SUITES = ("scoring", "precision")


@dataclass(frozen=True)
class BenchSettings:
    """The ``bench:`` block of a recipe (see the module docstring)."""

    suite: str
    model: str = "smollm2-135m"
    data: str = "sample:GOOG"
    n: int = 64
    n_generate: int = 8
    batch_size: int = 16
    start: str = "2012-06-01"
    cached_run: int = 3
    precisions: tuple[str, ...] = ("float32", "bf16")
    news: str | None = None


def bench_settings(data: dict[str, Any], study: str) -> BenchSettings:
    """The validated ``bench:`` block of study ``study``.

    Raises:
        ConfigError: an unknown key or suite (with "Did you mean").
    """
    reject_unknown_keys(data, BenchSettings.__dataclass_fields__, f"study {study} bench")
    if data.get("suite") not in SUITES:
        raise ConfigError(f"study {study} bench: suite {data.get('suite')!r} must be one of "
                          f"{', '.join(SUITES)}.{did_you_mean(str(data.get('suite')), SUITES)}")
    return BenchSettings(**{k: tuple(v) if k == "precisions" else v for k, v in data.items()})


def run_bench(settings: BenchSettings) -> dict[str, dict[str, Any]]:
    """The suite's measurements: one column of rows per model (scoring) or per prompt set and
    precision (precision)."""
    if settings.suite == "precision":
        return _precisions(settings)
    return {settings.model: _scoring(settings)}


def _scoring(s: BenchSettings) -> dict[str, Any]:
    from llmbt.engine.config import RunConfig
    from llmbt.experiments.bench.cached import CachedRunBench, bench_cached_run
    from llmbt.experiments.bench.suite import bench_all

    config = RunConfig(data=s.data, start=s.start, model=s.model, batch_size=s.batch_size)
    out = bench_all(s.model, s.data, s.n, s.n_generate, s.batch_size, config)
    if s.cached_run:
        out |= bench_cached_run(CachedRunBench(data=s.data, start=s.start, model=s.model,
                                               repeats=s.cached_run))
    return out


def _precisions(s: BenchSettings) -> dict[str, dict[str, Any]]:
    from llmbt.experiments.bench.precision import bench_precisions, headline_prompt_sample
    from llmbt.experiments.bench.suite import bar_prompt_sample
    from llmbt.experiments.bench.universe import DEFAULT_NEWS
    from llmbt.signals_cache.model.loading import ModelSpec

    sets = {f"{s.n} bars": bar_prompt_sample(s.model, s.data, s.n)}
    if s.news:
        news = DEFAULT_NEWS if s.news == "shared" else s.news
        sets[f"{s.n} headlines"] = headline_prompt_sample(news, s.n, s.model)
    columns = {}
    for name, prompts in sets.items():
        for row in bench_precisions(ModelSpec(base=s.model), prompts, list(s.precisions),
                                    s.batch_size):
            columns[f"{name}, {row['precision']}"] = row
    return columns
