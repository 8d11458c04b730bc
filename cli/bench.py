"""``bt bench`` commands: benchmarks that print ratios measured in one run."""

from __future__ import annotations

import copy
from pathlib import Path

import click

from llmbt.cli.base import build_config, cli, run_options


@cli.group()
def bench() -> None:
    """Benchmarks that print ratios measured in one run."""


@bench.command("scoring")
@click.option("--model", default="smollm2-135m", show_default=True, help="Model to time.")
@click.option("--data", default="sample:GOOG", show_default=True, help="Prices whose bar prompts are scored.")
@click.option("-n", "--n", "n", default=64, show_default=True, help="Prompts for the batched paths.")
@click.option("--n-generate", default=8, show_default=True, help="Prompts for generate-then-parse.")
@click.option("--batch-size", default=16, show_default=True, help="Batch size of the batched paths.")
@click.option("--start", default="2012-06-01", show_default=True,
              help="Backtest window start for the cached-backtest ratio.")
@click.option("--prompt", default=None, help="Bar prompt template version (default: bars-v2).")
@click.option("--cached-run", "cached_run", type=click.IntRange(min=0), default=3, show_default=True,
              help="Timed process pairs of a cached llm_sentiment run vs sma_cross (0: skip).")
@click.option("--precisions", default=None, help="Scoring precisions compared with float32 on "
              "the same prompts, comma-separated; none skips.  [default: float32,bf16]")
@click.option("--engines", hidden=True, help="Deprecated name of --precisions.")
@click.option("--news", default=None, help="Also compare the precisions on -n headline prompts "
              "(headlines-v2) of this news file; 'shared' = the shared Reuters headlines.")
@click.option("--adapter", default=None, help="peft adapter applied in every precision's rows.")
@click.option("--precisions-only", is_flag=True, help="Skip the generate/batched paths and backtests.")
@click.option("--engines-only", is_flag=True, hidden=True, help="Deprecated name of --precisions-only.")
def bench_scoring_cmd(model: str, data: str, n: int, n_generate: int, batch_size: int, start: str,
                      prompt: str | None, cached_run: int, precisions: str | None,
                      engines: str | None, news: str | None, adapter: str | None,
                      precisions_only: bool, engines_only: bool) -> None:
    """Generate-then-parse vs batched label scoring vs batched + prefix reuse; cache lookups/s;
    cached llm_sentiment backtest vs sma_cross wall time; then each --precisions precision against
    the float32 path (items/s, ratio, label agreement, |Δscore|, peak RSS) on bar prompts (and
    --news headline prompts).

    Example: bt bench scoring -n 256 --news shared --precisions bf16
    """
    from llmbt.engine.config import RunConfig
    from llmbt.experiments.bench.suite import bar_prompt_sample, bench_all

    names = _precision_names(precisions, engines)
    if engines_only:
        click.echo("--engines-only is deprecated: use --precisions-only", err=True)
    if not (precisions_only or engines_only):
        config = RunConfig(data=data, start=start, model=model, batch_size=batch_size)
        for key, value in bench_all(model, data, n, n_generate, batch_size, config, prompt).items():
            click.echo(f"{key:<28} {_fmt(value)}")
        if cached_run:
            _print_cached_run(data, start, model, None, cached_run)
    if names:
        sets = {"bars": bar_prompt_sample(model, data, n, prompt)}
        if news:
            sets["headlines"] = _headline_prompts(news, n, model)
        _bench_precisions(model, adapter, sets, names, batch_size)


def _precision_names(precisions: str | None, engines: str | None) -> list[str]:
    """The ``--precisions`` list, or the old ``--engines`` list in today's names (announced on
    stderr); ConfigError for both, or for a name that is no precision."""
    from llmbt.errors import ConfigError
    from llmbt.signals_cache.model.precision import check_precision, from_engine

    if engines is not None and precisions is not None:
        raise ConfigError("--engines is the old name of --precisions; give only --precisions")
    text = engines if engines is not None else precisions or "float32,bf16"
    names = [p.strip() for p in text.split(",") if p.strip() and p.strip() != "none"]
    if engines is not None:
        names = [from_engine(p) for p in names]
        click.echo(f"--engines is deprecated: use --precisions {','.join(names) or 'none'}", err=True)
    for name in names:
        check_precision(name)
    return names


@bench.command("cached-run")
@click.option("--data", default="sample:GOOG", show_default=True, help="Prices both runs use.")
@click.option("--start", default="2012-06-01", show_default=True, help="Backtest window start.")
@click.option("--model", default="smollm2-135m", show_default=True, help="Model of the llm run.")
@click.option("--cache-dir", default=None, help="Signal cache (default $LLMBT_HOME/signals).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed (llm_sentiment, sma_cross) process pairs.")
def bench_cached_run_cmd(data: str, start: str, model: str, cache_dir: str | None,
                         repeats: int) -> None:
    """Whole-process wall time of a fully cached llm_sentiment run vs sma_cross (goal <= 1.3x).

    Example: bt bench cached-run --repeats 5
    """
    _print_cached_run(data, start, model, cache_dir, repeats)


@bench.command("select", context_settings={"ignore_unknown_options": True})
@click.option("--rule", required=True, help="The --select rule timed, e.g. news:30:252.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed (plain, --select) process pairs.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def bench_select_cmd(rule: str, repeats: int, run_args: tuple[str, ...]) -> None:
    """Whole-process wall time of a cached universe `bt run RUN_ARGS` with and without --select
    RULE (goal: the selection adds <= 10 %).

    Example: bt bench select --rule news:30:252 -- --strategy llm_news_portfolio --data csv:P
    --symbols top30.txt --news N --news-tz America/New_York --start 2015-01-01
    """
    from llmbt.experiments.bench.select import bench_select

    for key, value in bench_select(run_args, rule, repeats).items():
        click.echo(f"{key:<28} {_fmt(value)}")


def _print_cached_run(data: str, start: str, model: str, cache_dir: str | None, repeats: int) -> None:
    from llmbt.experiments.bench.cached import CachedRunBench, bench_cached_run

    bench = CachedRunBench(data=data, start=start, model=model, cache_dir=cache_dir, repeats=repeats)
    for key, value in bench_cached_run(bench).items():
        click.echo(f"{key:<28} {_fmt(value)}")



def _headline_prompts(news: str, n: int, model: str) -> list[str]:
    from llmbt.experiments.bench.precision import headline_prompt_sample
    from llmbt.experiments.bench.universe import DEFAULT_NEWS

    return headline_prompt_sample(DEFAULT_NEWS if news == "shared" else news, n, model)


def _bench_precisions(model: str, adapter: str | None, sets: dict[str, list[str]],
                      names: list[str], batch_size: int) -> None:
    from llmbt.experiments.bench.precision import bench_precisions
    from llmbt.signals_cache.model.loading import ModelSpec

    spec = ModelSpec(base=model, adapter=adapter)
    errors = []
    for kind, prompts in sets.items():
        for row in bench_precisions(spec, prompts, names, batch_size):
            click.echo(f"precision {kind:<9} " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
            if row.get("std_dscore"):
                errors.append((float(row["std_dscore"]), str(row.get("precision"))))
    if errors:  # the largest error seen: what --jitter perturbs scores by
        from llmbt.experiments.jitter import store_sigma

        sigma, precision = max(errors)
        store_sigma(sigma, f"{precision} vs float32")
        click.echo(f"stored for --jitter: sigma {sigma:.4g} (std of the score difference, {precision} "
                   "vs the float32 reference)")


@bench.command("train")
@click.option("--shape", default=None,
              help="Random-weights model shape: tiny-llama (default), tiny-qwen, llama-7b or qwen-7b.")
@click.option("--model", default=None, help="A real model (e.g. smollm2-135m) instead of --shape: "
              "bt finetune's loop as it was (fp32, shuffled, whole rows) against today's defaults "
              "on the same real examples, with the held-out loss both reach.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), help="Labelled file for "
              "--model (default: ../shared/data/fpb/fpb50_dev.csv, else synthetic headlines).")
@click.option("--n-val", default=64, show_default=True, help="Held-out examples for --model.")
@click.option("--tokenizer", default=None, help="Tokenizer folder (default: the embedded model's).")
@click.option("--quantization", "quantizations", default="none,8bit,4bit", show_default=True,
              help="Comma-separated variants; 4bit trains QLoRA, none trains LoRA, 8bit only scores.")
@click.option("-n", "--n", "n", default=64, show_default=True, help="Prompts scored per variant.")
@click.option("--steps", default=None, type=click.IntRange(min=1),
              help="Timed training steps per variant (default 5; 20 with --model).")
@click.option("--batch-size", default=8, show_default=True, help="Examples per step and batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the rows here.")
def bench_train_cmd(shape: str | None, model: str | None, data: str | None, n_val: int,
                    tokenizer: str | None, quantizations: str, n: int, steps: int | None,
                    batch_size: int, device: str, json_out: str | None) -> None:
    """Tokens/s and peak GPU memory of scoring and LoRA/QLoRA training per quantization, on a
    model with random weights of a named shape (speed and memory only); with --model, tokens/s
    of bt finetune before and after its speed settings on a real model and real examples.

    Example: bt bench train --shape llama-7b --quantization none,8bit,4bit

    Example: bt bench train --device cpu --model smollm2-135m --steps 20
    """
    import json
    import tempfile

    from llmbt.errors import ConfigError
    from llmbt.experiments.bench.train import TrainBench, bench_train, save_random_model

    if model is not None:
        if shape is not None:
            raise ConfigError("bt bench train: give --shape (random weights) or --model (a real "
                              f"model), not both; got --shape {shape} --model {model}.")
        return _bench_real_training(model, data, steps or 20, batch_size, n_val, device, json_out)
    shape = shape or "tiny-llama"
    bench = TrainBench(n_prompts=n, steps=steps or 5, batch_size=batch_size, device=device)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="llmbt-bench-") as tmp:
        folder = save_random_model(shape, Path(tmp) / shape, tokenizer, device=device)
        for row in bench_train(folder, bench, [q.strip() for q in quantizations.split(",")]):
            rows.append(row)
            click.echo("  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
            if json_out:  # rewritten per row: a long run keeps what it measured
                Path(json_out).write_text(json.dumps({"shape": shape, "rows": rows}, indent=2))
    return None


def _bench_real_training(model: str, data: str | None, steps: int, batch_size: int, n_val: int,
                         device: str, json_out: str | None) -> None:
    """``bt bench train --model``: the before/now rows, then the ratio."""
    import json

    from llmbt.experiments.bench.train_speed import bench_examples, bench_finetune, speedup

    examples, source = bench_examples(data, steps * batch_size + n_val)
    click.echo(f"examples: {source} ({steps} steps x {batch_size} train, {n_val} held out)")
    rows: list[dict] = []
    for row in bench_finetune(model, examples, steps=steps, batch_size=batch_size, n_val=n_val,
                              device=device):
        rows.append(row)
        click.echo("  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    ratio = speedup(rows)
    click.echo("now/before: " + "  ".join(f"{k}={_fmt(v)}" for k, v in ratio.items()))
    if json_out:
        Path(json_out).write_text(json.dumps({"model": model, "examples": source, "rows": rows,
                                              **ratio}, indent=2))


def _fmt(value: object) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


@bench.command("universe")
@click.option("--data", default=None, type=click.Path(dir_okay=False),
              help="Long-format price CSV (timestamp,symbol,open,high,low,close,volume); default "
              "../shared/data/news/sp500_prices_2013_2016.csv.gz beside the project.")
@click.option("--symbols", "n_symbols", type=click.IntRange(min=1), default=None,
              help="Keep the first N symbols by name (default: all).")
@click.option("--top-k", default=20, show_default=True, help="Names held long (llm_news_portfolio).")
@click.option("--scoring", "n_scoring", type=click.IntRange(min=1), default=None,
              help="Also score N headline rows of one symbol and N of the universe with the model "
              "(fresh caches) and compare the cost per row.")
@click.option("--news", default=None, help="Headline file for --scoring (default: the shared "
              "Reuters file, dates in America/New_York).")
@click.option("--symbol", default="AAPL", show_default=True, help="The one symbol for --scoring.")
def bench_universe_cmd(data: str | None, n_symbols: int | None, top_k: int, n_scoring: int | None,
                       news: str | None, symbol: str) -> None:
    """The portfolio event loop (one feed per symbol, daily llm_news_portfolio) over a universe:
    bars/s, peak memory and the ratio to a vectorised pandas computation of the same portfolio.

    Scores are a stand-in for cached LLM scores (trailing 20-bar return): the loop's cost does not
    depend on where they came from.

    Example: bt bench universe --symbols 100
    """
    import time

    from llmbt.experiments.bench.universe import (
        DEFAULT_DATA,
        DEFAULT_NEWS,
        bench_universe,
        read_long_prices,
    )

    started = time.perf_counter()
    prices, dropped = read_long_prices(data or DEFAULT_DATA, n_symbols)
    click.echo(f"{'load_s':<28} {time.perf_counter() - started:,.3f}")
    click.echo(f"{'dropped_rows':<28} {dropped}  (blank open/high/low/close: no bar that day)")
    for key, value in bench_universe(prices, top_k=top_k).items():
        click.echo(f"{key:<28} {_fmt(value)}")
    if n_scoring:
        _bench_scoring(prices, news or str(DEFAULT_NEWS), symbol, n_scoring)


def _bench_scoring(prices: dict, news_path: str, symbol: str, n: int) -> None:
    from llmbt.experiments.bench.universe_scoring import bench_news_file

    rows, ratio = bench_news_file(prices, news_path, symbol, n)
    for row in rows:
        click.echo("  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
    click.echo(f"{'universe_vs_one_symbol':<28} {ratio:,.2f}x per row")


@bench.command("precision-backtest")
@run_options
@click.option("--candidate", default="bf16", show_default=True,
              help="Precision compared with the float32 reference.")
def bench_precision_backtest_cmd(candidate: str, **kwargs) -> None:
    """The same backtest scored in float32 and in --candidate: share of identical entries and
    exits (goal >= 95 %) and the Sharpe gap (goal <= 0.05). Scores each precision's misses.

    Example: bt bench precision-backtest --strategy llm_sentiment --data sample:GOOG
    """
    from llmbt.experiments.bench.precision_backtest import compare_precisions

    for key, value in compare_precisions(build_config(**kwargs), candidate=candidate).items():
        click.echo(f"{key:<28} {_fmt(value)}")


_OLD_NAME = copy.copy(bench_precision_backtest_cmd)  # the name before --engine became --precision
_OLD_NAME.name, _OLD_NAME.hidden = "engine-backtest", True
_OLD_NAME.deprecated = "Use bt bench precision-backtest."
bench.add_command(_OLD_NAME)


@bench.command("trials")
@click.option("--data", default="sample:GOOG", show_default=True, help="Prices of the run recorded.")
@click.option("--start", default=None, help="First date of the run (default: all bars).")
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed records of each kind.")
@click.option("--filled", type=click.IntRange(min=1), default=200, show_default=True,
              help="Trials in the ledger for the last timings.")
def bench_trials_cmd(data: str, start: str | None, repeats: int, filled: int) -> None:
    """Milliseconds that recording a trial in the ledger adds to a run (goal <= 50 ms), in a
    temporary LLMBT_HOME: new configurations, the same one again, and with a filled ledger.

    Example: bt bench trials --repeats 20
    """
    from llmbt.experiments.bench.trials import TrialsBench, bench_trials

    bench = TrialsBench(data=data, start=start, repeats=repeats, filled=filled)
    for key, value in bench_trials(bench).items():
        click.echo(f"{key:<28} {_fmt(value)}")
