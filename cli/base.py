"""The ``bt`` group and what its commands share: error handling, run flags, config building."""

from __future__ import annotations

import functools

import click

from llmbt.cli.logs import setup_logging
from llmbt.errors import LlmbtError


class Group(click.Group):
    """A click group that turns user errors (:class:`LlmbtError`) into one clean line, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LlmbtError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="llmbt")
@click.option("-v", "--verbose", count=True,
              help="More output: -v debug messages and model-loading progress bars, -vv every library's.")
@click.option("-q", "--quiet", count=True, help="Errors only, no progress bars.")
def cli(verbose: int, quiet: int) -> None:
    """llmbt: backtest strategies that trade on signals from a (LoRA-fine-tuned) language model."""
    setup_logging(verbose - quiet)


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
                     "parquet:PATH, yahoo:TICKER, ccxt:EXCHANGE:SYMBOL; a universe for portfolio "
                     "strategies: yahoo:AAPL,MSFT, a long csv:/parquet: file with a symbol column, "
                     "or a folder of per-symbol files."),
        click.option("--symbols", help="Universe subset for portfolio strategies: AAPL,MSFT or a "
                     "file with one symbol per line."),
        click.option("--select", help="Point-in-time universe selection, re-evaluated at every bar "
                     "with data known at its close: news:N:BARS (the N symbols with the most "
                     "headlines over the trailing BARS bars) or dollar-volume:N:BARS."),
        click.option("--membership", help="CSV symbol,start,end: a symbol is tradable only while it "
                     "is a member (e.g. historical index membership)."),
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
        precision_option(),
        click.option("--prompt", help="Prompt template version, e.g. bars-v1 (default: the mode's)."),
        click.option("--scorer", help="What scores the texts: lm (default: --model's label "
                     "probabilities on prompts) or a text scorer such as lexicon (the raw text)."),
        click.option("--no-calibration", "calibrate", flag_value=False, default=None,
                     help="Ignore the temperature bt evaluate --calibrate-on stored beside "
                     "--adapter (llmbt_calibration.json): score with the raw probabilities."),
        click.option("--batch-size", type=int, help="Prompts per forward pass (default 16)."),
        click.option("--cache-dir", help="Signal cache folder (default $LLMBT_HOME/signals)."),
        click.option("--model-cutoff", help="The model's knowledge cutoff (end of its training "
                     "data), YYYY-MM-DD; overrides the alias's (smollm2-135m: 2024-03-31)."),
        click.option("--model-schedule", help="YAML or CSV of cutoff, model[, adapter] rows: each "
                     "bar or headline is scored by the latest model whose cutoff is before it "
                     "(point-in-time models, e.g. TiMaGPT2's yearly GPT-2s); replaces --model."),
        click.option("--cutoff-gap", type=int, help="With --model-schedule: days a cutoff must "
                     "precede an item by, beyond the next day (default 0)."),
        click.option("--before-first", help="With --model-schedule: refuse (default) items "
                     "before the first cutoff, or skip them (left unscored, counted)."),
        click.option("--anonymize", is_flag=True, default=None, help="Mask company names and "
                     "tickers in headlines (Company A = the headline's own), and the symbol of "
                     "bar prompts (Company A), before scoring."),
        click.option("--names", help="CSV symbol,company of the names --anonymize masks, e.g. "
                     "../shared/data/news/sp500_companies.csv."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def precision_option(default: str | None = None, note: str = ""):
    """``--precision`` (auto, float32, bf16) and its hidden old name ``--engine`` (auto, torch,
    torch-bf16; one deprecation line on stderr). The command gets ``precision``: the value given,
    else ``default`` (None: not given, the YAML's or the config's default stands). ``note`` ends
    the help."""
    def decorate(func):
        @functools.wraps(func)
        def merged(*args, engine: str | None = None, **kwargs):
            kwargs["precision"] = _merged_precision(kwargs.get("precision"), engine) or default
            return func(*args, **kwargs)

        merged = click.option("--engine", hidden=True, help="Deprecated name of --precision "
                              "(torch = float32, torch-bf16 = bf16).")(merged)
        return click.option("--precision", metavar="[auto|float32|bf16]", help="Scoring precision: "
                            "auto (default: the fastest measured exact enough here), float32 (the "
                            "reference) or bf16 (CPU); each has its own cache entries."
                            + (f" {note}" if note else ""))(merged)
    return decorate


def _merged_precision(precision: str | None, engine: str | None) -> str | None:
    """``--precision``, or the precision an old ``--engine`` value names (announced on stderr)."""
    from llmbt.errors import ConfigError
    from llmbt.signals_cache.model.precision import check_precision, from_engine

    if engine is not None:
        if precision is not None:
            raise ConfigError(f"--engine {engine} and --precision {precision}: --engine is the old "
                              "name of --precision; give only --precision")
        precision = from_engine(engine)
        click.echo(f"--engine is deprecated: use --precision {precision}", err=True)
    if precision is not None:
        check_precision(precision)
    return precision


def build_config(config_path: str | None, params: tuple[str, ...], **flags):
    """YAML (if any) → defaults, then every flag that was given overrides it."""
    from llmbt.engine.config import RunConfig
    from llmbt.errors import ConfigError
    from llmbt.signals_cache.text_scorers.registry import check_kind

    base = RunConfig.from_yaml(config_path) if config_path else RunConfig()
    config = base.replace(params=_parse_params(params), **flags)
    try:
        check_kind(config.scorer)  # before any data is loaded
    except ConfigError as exc:
        raise ConfigError(f"--scorer (YAML key 'scorer'): {exc}") from exc
    if config.model_schedule:  # the file read and its rows checked, before any data is loaded
        from llmbt.engine.signals import run_schedule

        run_schedule(config)
    return config
