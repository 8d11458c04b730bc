"""The suites of the ``bench`` study kind: one frozen settings class per suite, its fields the keys
of the recipe's ``bench:`` block, its :meth:`run` the measurements (see
:mod:`llmbt.experiments.study_bench` for the recipes and the registry).

A field without a default is a key the suite cannot go without; each class's ``NEEDS`` says what
it holds, for the error that names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from llmbt.errors import ConfigError, reject_unknown_keys

Say = Callable[[str], None]
Columns = dict[str, dict[str, Any]]


class Suite:
    """What every suite's settings share: built from a ``bench:`` block, refused like a flag."""

    NAME: ClassVar[str] = ""
    NEEDS: ClassVar[str] = ""  # what the suite's required key holds, e.g. "a name per column ..."

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], study: str) -> Suite:
        """The suite's settings from its block (``suite`` left out).

        Raises:
            ConfigError: a key of another suite or none (with "Did you mean"), a missing
                required key, a bad variant or run.
        """
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        reject_unknown_keys(data, names, f"study {study} bench suite {cls.NAME}")
        values = {key: cls._coerce(key, value, study) for key, value in data.items()}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING and not values.get(f.name):
                raise ConfigError(f"study {study} bench: suite {cls.NAME} needs {f.name}: {cls.NEEDS}.")
        return cls(**values)

    @classmethod
    def _coerce(cls, key: str, value: Any, study: str) -> Any:
        """A block's value as the field holds it (lists as tuples)."""
        return tuple(value) if isinstance(value, list) else value

    def run(self, say: Say) -> Columns:  # pragma: no cover - every suite overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class ScoringSuite(Suite):
    """``bt bench scoring``: generate vs batched vs prefix reuse, cache lookups, a cached backtest
    against sma_cross (in one process and as whole processes)."""

    NAME: ClassVar[str] = "scoring"
    model: str = "smollm2-135m"
    data: str = "sample:GOOG"
    n: int = 64
    n_generate: int = 8
    batch_size: int = 16
    start: str | None = "2012-06-01"
    cached_run: int = 3

    def run(self, say: Say) -> Columns:
        from llmbt.engine.config import RunConfig
        from llmbt.experiments.bench.cached import CachedRunBench, bench_cached_run
        from llmbt.experiments.bench.suite import bench_all

        config = RunConfig(data=self.data, start=self.start, model=self.model,
                           batch_size=self.batch_size)
        out = bench_all(self.model, self.data, self.n, self.n_generate, self.batch_size, config)
        if self.cached_run:
            out |= bench_cached_run(CachedRunBench(data=self.data, start=self.start,
                                                   model=self.model, repeats=self.cached_run))
        return {self.model: out}


@dataclass(frozen=True)
class PrecisionSuite(Suite):
    """``bt bench scoring --precisions``: each precision against float32, on bar prompts and,
    with ``news``, on as many headline prompts (``shared``: the Reuters headlines)."""

    NAME: ClassVar[str] = "precision"
    model: str = "smollm2-135m"
    data: str = "sample:GOOG"
    n: int = 64
    batch_size: int = 16
    precisions: tuple[str, ...] = ("float32", "bf16")
    news: str | None = None

    def run(self, say: Say) -> Columns:
        from llmbt.experiments.bench.precision import bench_precisions, headline_prompt_sample
        from llmbt.experiments.bench.suite import bar_prompt_sample
        from llmbt.experiments.bench.universe import DEFAULT_NEWS
        from llmbt.signals_cache.model.loading import ModelSpec

        sets = {f"{self.n} bars": bar_prompt_sample(self.model, self.data, self.n)}
        if self.news:
            news = DEFAULT_NEWS if self.news == "shared" else self.news
            sets[f"{self.n} headlines"] = headline_prompt_sample(news, self.n, self.model)
        columns = {}
        for name, prompts in sets.items():
            for row in bench_precisions(ModelSpec(base=self.model), prompts, list(self.precisions),
                                        self.batch_size):
                columns[f"{name}, {row['precision']}"] = row
        return columns


@dataclass(frozen=True)
class TrainSuite(Suite):
    """``bt bench train --model``: ``bt finetune``'s loop, one column per variant (name: the
    :class:`TrainConfig` fields it changes), tokens/s against the first."""

    NAME: ClassVar[str] = "train"
    NEEDS: ClassVar[str] = "a name per column and its settings, e.g. default: {}"
    variants: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    model: str = "smollm2-135m"
    steps: int = 12
    batch_size: int = 16
    n_val: int = 64
    examples: str = "shared"

    @classmethod
    def _coerce(cls, key: str, value: Any, study: str) -> Any:
        return _variants(value, study) if key == "variants" else super()._coerce(key, value, study)

    def run(self, say: Say) -> Columns:
        from llmbt.experiments.bench.train_speed import DEFAULT_DATA, bench_examples, bench_finetune

        data = DEFAULT_DATA if self.examples == "shared" else self.examples
        if not Path(data).is_file():
            raise ConfigError(f"bench examples {str(data)!r} is not a file: set examples: to a "
                              "labelled file (the shared PhraseBank lives in ../shared/data/fpb/).")
        examples, _ = bench_examples(data, self.steps * self.batch_size + self.n_val)
        rows = bench_finetune(self.model, examples, steps=self.steps, batch_size=self.batch_size,
                              n_val=self.n_val, device="cpu",
                              variants={name: dict(fields) for name, fields in self.variants})
        columns = {}
        for row in rows:
            columns[name := row.pop("variant")] = row
            say(f"{name}: {row['tokens_per_s']:.0f} tokens/s, {row['s_per_step']:.2f} s a step")
        first = next(iter(columns.values()))["tokens_per_s"]
        for row in columns.values():
            row["vs_first"] = row["tokens_per_s"] / first
        return columns


@dataclass(frozen=True)
class UniverseSuite(Suite):
    """``bt bench universe``: the event loop over a whole universe against vectorised pandas;
    with ``scoring``, a column per scoring pass (one symbol's headline rows, then as many of the
    universe's)."""

    NAME: ClassVar[str] = "universe"
    prices: str = "shared"
    symbols: int | None = None
    top_k: int = 20
    scoring: int | None = None
    symbol: str = "AAPL"
    news: str | None = None

    def run(self, say: Say) -> Columns:
        from llmbt.experiments.bench.universe import (
            DEFAULT_DATA,
            DEFAULT_NEWS,
            bench_universe,
            read_long_prices,
        )

        prices, dropped = read_long_prices(DEFAULT_DATA if self.prices == "shared" else self.prices,
                                           self.symbols)
        columns = {f"event loop, top {self.top_k}": {"dropped_rows": dropped}
                   | bench_universe(prices, top_k=self.top_k)}
        if self.scoring:
            from llmbt.experiments.bench.universe_scoring import bench_news_file

            news = DEFAULT_NEWS if (self.news or "shared") == "shared" else self.news
            rows, ratio = bench_news_file(prices, news, self.symbol, self.scoring)
            rows[1]["speedup_per_row_vs_one_symbol"] = ratio
            columns |= {f"scoring: {row.pop('pass')}": row for row in rows}
        return columns


@dataclass(frozen=True)
class PrecisionBacktestSuite(Suite):
    """``bt bench precision-backtest``: each named run scored in float32 and in the candidate
    (identical entries and exits, Sharpe gap)."""

    NAME: ClassVar[str] = "precision_backtest"
    NEEDS: ClassVar[str] = "a name per column and its run config, e.g. GOOG demo: {strategy: llm_sentiment}"
    runs: tuple[tuple[str, Any], ...]
    candidate: str = "bf16"

    @classmethod
    def _coerce(cls, key: str, value: Any, study: str) -> Any:
        return _runs(value, study) if key == "runs" else super()._coerce(key, value, study)

    def run(self, say: Say) -> Columns:
        from llmbt.experiments.bench.precision_backtest import compare_precisions

        columns = {}
        for name, config in self.runs:
            columns[name] = row = compare_precisions(config, candidate=self.candidate)
            say(f"{name}: {row['same_events']:.1%} identical entries and exits, Sharpe gap "
                f"{row['sharpe_gap']:.2f}")
        return columns


@dataclass(frozen=True)
class ShapesSuite(Suite):
    """``bt bench train --shape``: random-weight models of each shape, scored and trained per
    quantization (GPU memory on CUDA; ``tiny-llama`` / ``tiny-qwen`` run on a CPU)."""

    NAME: ClassVar[str] = "shapes"
    shapes: tuple[str, ...] = ("tiny-llama",)
    quantizations: tuple[str, ...] = ("none", "8bit", "4bit")
    device: str = "cpu"
    n: int = 64
    steps: int = 12
    batch_size: int = 16

    def run(self, say: Say) -> Columns:
        import tempfile

        from llmbt.experiments.bench.train import TrainBench, bench_train, save_random_model

        self._check_device()
        bench = TrainBench(n_prompts=self.n, steps=self.steps, batch_size=self.batch_size,
                           device=self.device)
        columns: Columns = {}
        for shape in self.shapes:
            with tempfile.TemporaryDirectory(prefix="llmbt-bench-") as tmp:
                folder = save_random_model(shape, Path(tmp) / shape, device=self.device)
                for row in bench_train(folder, bench, list(self.quantizations)):
                    columns[name := f"{shape} {row.pop('quantization')}"] = row
                    say(f"{name}: {row['score_items_per_s']:.1f} items/s scored")
        return columns

    def _check_device(self) -> None:
        if self.device.startswith("cuda"):
            from llmbt.signals_cache.model.quantization import cuda_available

            if not cuda_available():
                raise ConfigError(f"bench device {self.device!r}: no CUDA GPU here; run this study "
                                  "on a machine with one, or set device: cpu with tiny shapes.")


@dataclass(frozen=True)
class ScheduleSuite(Suite):
    """A ``--model-schedule`` run against ``--model``: whole processes, cold and cached."""

    NAME: ClassVar[str] = "schedule"
    NEEDS: ClassVar[str] = "the schedule file timed against model:, e.g. out/pit-models/schedule.csv"
    schedule: str
    model: str = "smollm2-135m"
    data: str = "sample:GOOG"
    start: str | None = "2012-06-01"
    repeats: int = 3

    def run(self, say: Say) -> Columns:
        from llmbt.experiments.bench.schedule import ScheduleBench, bench_schedule

        return bench_schedule(ScheduleBench(schedule=self.schedule, model=self.model,
                                            data=self.data, start=self.start, repeats=self.repeats))


@dataclass(frozen=True)
class TrialsSuite(Suite):
    """``bt bench trials``: what recording a trial in the ledger adds to a run."""

    NAME: ClassVar[str] = "trials"
    data: str = "sample:GOOG"
    start: str | None = "2012-06-01"
    repeats: int = 3
    filled: int = 200

    def run(self, say: Say) -> Columns:
        from llmbt.experiments.bench.trials import TrialsBench, bench_trials

        bench = TrialsBench(data=self.data, start=self.start, repeats=self.repeats,
                            filled=self.filled)
        return {f"sma_cross on {self.data}": bench_trials(bench)}


@dataclass(frozen=True)
class SelectSuite(Suite):
    """``bt bench select``: each run's rule against a fixed list of the names it picks, and the
    rule over that list; whole cached processes."""

    NAME: ClassVar[str] = "select"
    NEEDS: ClassVar[str] = "a name per column and its universe run with a select: rule"
    runs: tuple[tuple[str, Any], ...]
    repeats: int = 3

    @classmethod
    def _coerce(cls, key: str, value: Any, study: str) -> Any:
        if key != "runs":
            return super()._coerce(key, value, study)
        runs = _runs(value, study)
        for name, config in runs:
            if not config.select:
                raise ConfigError(f"study {study} bench run {name!r}: the select suite times a "
                                  "rule; give the run select: RULE (e.g. news:30:252).")
        return runs

    def run(self, say: Say) -> Columns:
        from llmbt.experiments.bench.select import bench_selection

        return {name: bench_selection(config, self.repeats) for name, config in self.runs}


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
