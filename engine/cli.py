"""The ``bt`` command line: parse flags, build a config, call the engine. Nothing else lives here."""

from __future__ import annotations

from pathlib import Path

import click

from feeds.base import LlmbtError


class Group(click.Group):
    """A click group that turns user errors (:class:`LlmbtError`) into one clean line, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LlmbtError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmbt")
def cli() -> None:
    """llmbt: backtest strategies that trade on signals from a (LoRA-fine-tuned) language model."""


def _parse_params(pairs: tuple[str, ...]) -> dict[str, str] | None:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LlmbtError(f"--param {pair!r} must look like key=value, e.g. --param fast=10")
        out[key.strip()] = value.strip()
    return out or None


def run_options(func):
    """The flags shared by commands that take a run configuration (``run``, later ``compare``)."""
    opts = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="YAML file with run settings; flags given on the command line override it."),
        click.option("--strategy", help="Registered strategy name (see `bt strategies`)."),
        click.option("--data", help="Price source: sample:GOOG|EURUSD|BTCUSD, csv:PATH, "
                     "parquet:PATH, yahoo:TICKER, ccxt:EXCHANGE:SYMBOL."),
        click.option("--start", help="First date (inclusive), YYYY-MM-DD."),
        click.option("--end", help="Last date (inclusive), YYYY-MM-DD."),
        click.option("--interval", help="Bar size for downloaded data, e.g. 1d, 1h."),
        click.option("--cash", type=float, help="Starting cash (default 100000)."),
        click.option("--commission", type=float, help="Commission as a fraction of traded value "
                     "(default 0.001 = 0.1 %)."),
        click.option("--slippage", type=float, help="Slippage as a fraction of price (default 0)."),
        click.option("--sizer", help="percent (of portfolio value) or fixed (units)."),
        click.option("--size", type=float, help="Percent for --sizer percent (default 95), units "
                     "for fixed."),
        click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                     help="Strategy parameter, repeatable: --param fast=10 --param slow=30."),
        click.option("--benchmark", help="Strategy run as the benchmark (default buy_and_hold; "
                     "'none' to skip)."),
        click.option("--mode", help="LLM signal mode: bars (score each bar's features) or headlines."),
        click.option("--news", help="Headline file (CSV/JSONL/Parquet: timestamp, symbol, headline)."),
        click.option("--news-tz", help="Time zone of naive news timestamps, e.g. America/New_York."),
        click.option("--model", help="Scoring model: alias (smollm2-135m), local folder, .gguf file "
                     "or Hugging Face id."),
        click.option("--adapter", help="peft (LoRA) adapter folder applied to --model."),
        click.option("--quantization", help="none, 8bit or 4bit (bitsandbytes)."),
        click.option("--prompt", help="Prompt template version, e.g. bars-v1 (default: the mode's)."),
        click.option("--batch-size", type=int, help="Prompts per forward pass (default 16)."),
        click.option("--cache-dir", help="Signal cache folder (default $LLMBT_HOME/signals)."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def build_config(config_path: str | None, params: tuple[str, ...], **flags):
    """YAML (if any) → defaults, then every flag that was given overrides it."""
    from engine.config import RunConfig

    base = RunConfig.from_yaml(config_path) if config_path else RunConfig()
    return base.replace(params=_parse_params(params), **flags)


@cli.command()
@run_options
@click.option("--report", type=click.Path(dir_okay=False),
              help="Tearsheet HTML path (default out/<strategy>-<run id>.html).")
@click.option("--no-report", is_flag=True, help="Skip the HTML tearsheet.")
@click.option("--save-config", type=click.Path(dir_okay=False), help="Write the resolved config "
              "as YAML (reusable with --config).")
def run(report: str | None, no_report: bool, save_config: str | None, **kwargs) -> None:
    """Run one backtest, print its metrics and write a QuantStats tearsheet.

    Example: bt run --strategy sma_cross --data sample:GOOG --start 2010-01-01 --report out/goog.html
    """
    from engine.report import report_run
    from engine.runner import run_backtest

    config = build_config(**kwargs)
    if save_config:
        Path(save_config).write_text(config.to_yaml())
    click.echo(f"run {config.run_id}: {config.strategy} on {config.data}")
    result = run_backtest(config)
    path = None if no_report else Path(report or f"out/{config.strategy}-{config.run_id}.html")
    report_run(result, path)


@cli.command("strategies")
def strategies_cmd() -> None:
    """List the registered strategies and their parameters."""
    from strategies.registry import available, get_strategy

    for name in available():
        cls = get_strategy(name)
        params = ", ".join(f"{k}={v!r}" for k, v in cls.params._getitems())
        click.echo(f"{name:<16} {params}")


@cli.group()
def data() -> None:
    """Price data: fill the local cache so later runs need no network."""


@data.command("fetch")
@click.argument("uri")
@click.option("--start", help="First date, YYYY-MM-DD.")
@click.option("--end", help="Last date, YYYY-MM-DD.")
@click.option("--interval", default="1d", show_default=True, help="Bar size, e.g. 1d, 1h.")
def data_fetch(uri: str, start: str | None, end: str | None, interval: str) -> None:
    """Download URI (yahoo:TICKER or ccxt:EXCHANGE:SYMBOL) into the local Parquet cache.

    For an offline llm_sentiment run, start about 13 months (daily bars) before the run's
    --start: its signals warm up on 260 bars before it.

    Example: bt data fetch yahoo:AAPL --start 2020-01-01 --end 2024-12-31
    """
    from feeds import fetch_to_cache, load_prices

    path = fetch_to_cache(uri, start, end, interval=interval)
    frame = load_prices(uri, start, end, interval=interval)
    click.echo(f"{len(frame)} bars {frame.index[0]} .. {frame.index[-1]} cached at {path}")


@cli.group()
def cache() -> None:
    """The signal cache: scores stored by (model fingerprint, template, prompt)."""


@cache.command("stats")
@click.option("--cache-dir", help="Cache folder (default $LLMBT_HOME/signals).")
def cache_stats(cache_dir: str | None) -> None:
    """Entries, size on disk and hits/misses of the last run."""
    from signals_cache.cache import SignalCache

    with SignalCache(cache_dir) as c:
        for key, value in c.stats().items():
            click.echo(f"{key:<14} {value}")


@cache.command("clear")
@click.option("--model", help="Clear only this model's entries: alias/folder (with --adapter) or "
              "a 16-hex fingerprint.")
@click.option("--adapter", help="Adapter folder of the model to clear.")
@click.option("--cache-dir", help="Cache folder (default $LLMBT_HOME/signals).")
def cache_clear(model: str | None, adapter: str | None, cache_dir: str | None) -> None:
    """Remove cached scores (all, or one model's)."""
    from signals_cache.cache import SignalCache
    from signals_cache.model import ModelSpec, model_fingerprint

    fingerprint = None
    if model is not None:
        is_hex = len(model) == 16 and all(ch in "0123456789abcdef" for ch in model)
        fingerprint = model if is_hex else model_fingerprint(ModelSpec(base=model, adapter=adapter), "")
    with SignalCache(cache_dir) as c:
        removed = c.clear(model=fingerprint)
    click.echo(f"removed {removed} entries" + (f" of model {fingerprint}" if fingerprint else ""))


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
def bench_scoring_cmd(model: str, data: str, n: int, n_generate: int, batch_size: int, start: str,
                      prompt: str | None) -> None:
    """Generate-then-parse vs batched label scoring vs batched + prefix reuse; cache lookups/s;
    cached llm_sentiment backtest vs sma_cross wall time.

    Example: bt bench scoring -n 64 --n-generate 8
    """
    from engine.bench import bench_all
    from engine.config import RunConfig

    config = RunConfig(data=data, start=start, model=model, batch_size=batch_size)
    results = bench_all(model, data, n, n_generate, batch_size, config, prompt)
    for key, value in results.items():
        click.echo(f"{key:<28} {value:,.3f}" if isinstance(value, float) else f"{key:<28} {value}")


@bench.command("train")
@click.option("--shape", default="tiny-llama", show_default=True,
              help="Random-weights model shape: tiny-llama, tiny-qwen, llama-7b or qwen-7b.")
@click.option("--tokenizer", default=None, help="Tokenizer folder (default: the embedded model's).")
@click.option("--quantization", "quantizations", default="none,8bit,4bit", show_default=True,
              help="Comma-separated variants; 4bit trains QLoRA, none trains LoRA, 8bit only scores.")
@click.option("-n", "--n", "n", default=64, show_default=True, help="Prompts scored per variant.")
@click.option("--steps", default=5, show_default=True, help="Timed training steps per variant.")
@click.option("--batch-size", default=8, show_default=True, help="Examples per step and batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the rows here.")
def bench_train_cmd(shape: str, tokenizer: str | None, quantizations: str, n: int, steps: int,
                    batch_size: int, device: str, json_out: str | None) -> None:
    """Tokens/s and peak GPU memory of scoring and LoRA/QLoRA training per quantization, on a
    model with random weights of a named shape (speed and memory only).

    Example: bt bench train --shape llama-7b --quantization none,8bit,4bit
    """
    import json
    import tempfile

    from signals_cache.bench_train import TrainBench, bench_train, save_random_model

    bench = TrainBench(n_prompts=n, steps=steps, batch_size=batch_size, device=device)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="llmbt-bench-") as tmp:
        folder = save_random_model(shape, Path(tmp) / shape, tokenizer, device=device)
        for row in bench_train(folder, bench, [q.strip() for q in quantizations.split(",")]):
            rows.append(row)
            click.echo("  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
            if json_out:  # rewritten per row: a long run keeps what it measured
                Path(json_out).write_text(json.dumps({"shape": shape, "rows": rows}, indent=2))


def _fmt(value: object) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    import engine.cli_ml  # noqa: F401  (registers dataset/finetune/evaluate)
    import engine.cli_wf  # noqa: F401  (registers walkforward/compare)

    cli(prog_name="bt")


if __name__ == "__main__":
    main()
