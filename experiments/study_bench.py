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
are of the machine the study's provenance line names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbt.errors import ConfigError, did_you_mean, reject_unknown_keys

#: The keys of each suite's ``bench:`` block besides ``suite``; a key of another suite is refused.
SUITE_KEYS = {
    "scoring": ("model", "data", "n", "n_generate", "batch_size", "start", "cached_run"),
    "precision": ("model", "data", "n", "batch_size", "precisions", "news"),
    "train": ("model", "steps", "batch_size", "n_val", "examples", "variants"),
    "universe": ("prices", "symbols", "top_k", "scoring", "symbol", "news"),
    "precision_backtest": ("candidate", "runs"),
    "shapes": ("shapes", "quantizations", "device", "n", "steps", "batch_size"),
    "schedule": ("schedule", "model", "data", "start", "repeats"),
    "trials": ("data", "start", "repeats", "filled"),
    "select": ("runs", "repeats"),
}
SUITES = tuple(SUITE_KEYS)


@dataclass(frozen=True)
class BenchSettings:
    """The ``bench:`` block of a recipe (see the module docstring); :data:`SUITE_KEYS` says which
    fields each suite reads."""

    suite: str
    model: str = "smollm2-135m"
    data: str = "sample:GOOG"
    n: int = 64
    n_generate: int = 8
    batch_size: int = 16
    start: str | None = "2012-06-01"
    cached_run: int = 3
    precisions: tuple[str, ...] = ("float32", "bf16")
    news: str | None = None
    steps: int = 12
    n_val: int = 64
    examples: str = "shared"
    variants: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    prices: str = "shared"
    symbols: int | None = None
    top_k: int = 20
    scoring: int | None = None
    symbol: str = "AAPL"
    candidate: str = "bf16"
    runs: tuple[tuple[str, Any], ...] = ()  # (name, RunConfig)
    shapes: tuple[str, ...] = ("tiny-llama",)
    quantizations: tuple[str, ...] = ("none", "8bit", "4bit")
    device: str = "cpu"
    schedule: str = ""
    repeats: int = 3
    filled: int = 200


#: (suite, key, what it is) of the keys a suite cannot go without.
_NEEDS = (("train", "variants", "a name per column and its settings, e.g. default: {}"),
          ("precision_backtest", "runs", "a name per column and its run config, e.g. GOOG demo: "
                                         "{strategy: llm_sentiment}"),
          ("schedule", "schedule", "the schedule file timed against model:, e.g. "
                                   "out/pit-models/schedule.csv"),
          ("select", "runs", "a name per column and its universe run with a select: rule"))


def bench_settings(data: dict[str, Any], study: str) -> BenchSettings:
    """The validated ``bench:`` block of study ``study``.

    Raises:
        ConfigError: an unknown key or suite (with "Did you mean").
    """
    reject_unknown_keys(data, BenchSettings.__dataclass_fields__, f"study {study} bench")
    if data.get("suite") not in SUITES:
        raise ConfigError(f"study {study} bench: suite {data.get('suite')!r} must be one of "
                          f"{', '.join(SUITES)}.{did_you_mean(str(data.get('suite')), SUITES)}")
    suite = data["suite"]
    reject_unknown_keys(data, ("suite", *SUITE_KEYS[suite]), f"study {study} bench suite {suite}")
    fields = dict(data)
    for key in ("precisions", "shapes", "quantizations"):
        if key in fields:
            fields[key] = tuple(fields[key])
    if "variants" in fields:
        fields["variants"] = _variants(fields["variants"], study)
    if "runs" in fields:
        fields["runs"] = _runs(fields["runs"], study)
    settings = BenchSettings(**fields)
    for suite, key, what in _NEEDS:
        if settings.suite == suite and not getattr(settings, key):
            raise ConfigError(f"study {study} bench: suite {suite} needs {key}: {what}.")
    for name, config in settings.runs if settings.suite == "select" else ():
        if not config.select:
            raise ConfigError(f"study {study} bench run {name!r}: the select suite times a rule; "
                              "give the run select: RULE (e.g. news:30:252).")
    return settings


def _runs(data: Any, study: str) -> tuple[tuple[str, Any], ...]:
    """``runs:`` as (name, RunConfig) pairs, each refused like a bad flag, naming the run."""
    from llmbt.engine.config import RunConfig

    if not isinstance(data, dict):
        raise ConfigError(f"study {study} bench: runs must map a name to its run config, got {data!r}.")
    return tuple((str(name), RunConfig.from_dict(dict(fields or {}),
                                                 source=f"study {study} bench run {name!r}"))
                 for name, fields in data.items())


def _variants(data: Any, study: str) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """``variants:`` as (name, sorted settings) pairs, each setting a :class:`TrainConfig` field."""
    import dataclasses

    from llmbt.signals_cache.finetune.train_config import TrainConfig

    if not isinstance(data, dict):
        raise ConfigError(f"study {study} bench: variants must map a name to its settings, "
                          f"got {data!r}.")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    out = []
    for name, fields in data.items():
        fields = fields or {}
        reject_unknown_keys(fields, known, f"study {study} bench variant {name!r}")
        TrainConfig(**fields)  # a bad value fails here, naming its flag
        out.append((str(name), tuple(sorted(fields.items()))))
    return tuple(out)


def run_bench(settings: BenchSettings, say: Callable[[str], None] = lambda _: None,
              ) -> dict[str, dict[str, Any]]:
    """The suite's measurements: one column of rows per model (scoring), per prompt set and
    precision (precision), per training variant (train), per named run (precision_backtest, select),
    per arm of a schedule (schedule), or the one universe loop or ledger (universe, trials);
    ``say`` gets a line as each column of the long suites
    (train, precision_backtest, shapes) is measured."""
    if settings.suite == "precision":
        return _precisions(settings)
    if settings.suite == "train":
        return _training(settings, say)
    if settings.suite == "universe":
        return _universe(settings)
    if settings.suite == "precision_backtest":
        return _precision_backtests(settings, say)
    if settings.suite == "shapes":
        return _shapes(settings, say)
    if settings.suite == "trials":
        from llmbt.experiments.bench.trials import TrialsBench, bench_trials

        bench = TrialsBench(data=settings.data, start=settings.start, repeats=settings.repeats,
                            filled=settings.filled)
        return {f"sma_cross on {settings.data}": bench_trials(bench)}
    if settings.suite == "select":
        from llmbt.experiments.bench.select import bench_selection

        return {name: bench_selection(config, settings.repeats) for name, config in settings.runs}
    if settings.suite == "schedule":
        from llmbt.experiments.bench.schedule import ScheduleBench, bench_schedule

        return bench_schedule(ScheduleBench(schedule=settings.schedule, model=settings.model,
                                            data=settings.data, start=settings.start,
                                            repeats=settings.repeats))
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


def _training(s: BenchSettings, say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Each variant of ``bt finetune``'s loop on the same examples; tokens/s against the first."""
    from llmbt.experiments.bench.train_speed import DEFAULT_DATA, bench_examples, bench_finetune

    data = DEFAULT_DATA if s.examples == "shared" else s.examples
    if not Path(data).is_file():
        raise ConfigError(f"bench examples {str(data)!r} is not a file: set examples: to a "
                          "labelled file (the shared PhraseBank lives in ../shared/data/fpb/).")
    examples, _ = bench_examples(data, s.steps * s.batch_size + s.n_val)
    variants = {name: dict(fields) for name, fields in s.variants}
    rows = bench_finetune(s.model, examples, steps=s.steps, batch_size=s.batch_size,
                          n_val=s.n_val, device="cpu", variants=variants)
    columns = {}
    for row in rows:
        columns[name := row.pop("variant")] = row
        say(f"{name}: {row['tokens_per_s']:.0f} tokens/s, {row['s_per_step']:.2f} s a step")
    first = next(iter(columns.values()))["tokens_per_s"]
    for row in columns.values():
        row["vs_first"] = row["tokens_per_s"] / first
    return columns


def _universe(s: BenchSettings) -> dict[str, dict[str, Any]]:
    """The event loop over the universe against vectorised pandas; with ``scoring``, a column per
    scoring pass: headline rows of one symbol, then as many rows of the whole universe."""
    from llmbt.experiments.bench.universe import DEFAULT_DATA, DEFAULT_NEWS, bench_universe, read_long_prices

    prices, dropped = read_long_prices(DEFAULT_DATA if s.prices == "shared" else s.prices, s.symbols)
    columns = {f"event loop, top {s.top_k}": {"dropped_rows": dropped}
               | bench_universe(prices, top_k=s.top_k)}
    if s.scoring:
        from llmbt.experiments.bench.universe_scoring import bench_news_file

        news = DEFAULT_NEWS if (s.news or "shared") == "shared" else s.news
        rows, ratio = bench_news_file(prices, news, s.symbol, s.scoring)
        rows[1]["speedup_per_row_vs_one_symbol"] = ratio
        columns |= {f"scoring: {row.pop('pass')}": row for row in rows}
    return columns


def _precision_backtests(s: BenchSettings, say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Each named run scored in float32 and in the candidate: identical entries and exits, Sharpe."""
    from llmbt.experiments.bench.precision_backtest import compare_precisions

    columns = {}
    for name, config in s.runs:
        columns[name] = row = compare_precisions(config, candidate=s.candidate)
        say(f"{name}: {row['same_events']:.1%} identical entries and exits, Sharpe gap "
            f"{row['sharpe_gap']:.2f}")
    return columns


def _shapes(s: BenchSettings, say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Each shape with random weights, scored and trained per quantization (GPU memory on CUDA)."""
    import tempfile

    from llmbt.experiments.bench.train import TrainBench, bench_train, save_random_model

    if s.device.startswith("cuda"):
        from llmbt.signals_cache.model.quantization import cuda_available

        if not cuda_available():
            raise ConfigError(f"bench device {s.device!r}: no CUDA GPU here; run this study on a "
                              "machine with one, or set device: cpu with tiny shapes.")
    bench = TrainBench(n_prompts=s.n, steps=s.steps, batch_size=s.batch_size, device=s.device)
    columns: dict[str, dict[str, Any]] = {}
    for shape in s.shapes:
        with tempfile.TemporaryDirectory(prefix="llmbt-bench-") as tmp:
            folder = save_random_model(shape, Path(tmp) / shape, device=s.device)
            for row in bench_train(folder, bench, list(s.quantizations)):
                columns[name := f"{shape} {row.pop('quantization')}"] = row
                say(f"{name}: {row['score_items_per_s']:.1f} items/s scored")
    return columns
