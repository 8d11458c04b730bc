"""``bt cache`` commands: the signal cache: scores stored by (model fingerprint, template, prompt)."""

from __future__ import annotations

import click

from llmbt.engine.cli.base import cli


@cli.group()
def cache() -> None:
    """The signal cache: scores stored by (model fingerprint, template, prompt)."""


@cache.command("stats")
@click.option("--cache-dir", help="Cache folder (default $LLMBT_HOME/signals).")
def cache_stats(cache_dir: str | None) -> None:
    """Entries, size on disk and hits/misses of the last run."""
    from llmbt.signals_cache.cache import SignalCache

    with SignalCache(cache_dir) as c:
        for key, value in c.stats().items():
            click.echo(f"{key:<14} {value}")


@cache.command("clear")
@click.option("--model", help="Clear only this model's entries: alias/folder (with --adapter) or "
              "a 16-hex fingerprint.")
@click.option("--adapter", help="Adapter folder of the model to clear.")
@click.option("--engine", default="auto", show_default=True,
              help="Scoring engine whose entries to clear (each engine has its own fingerprint).")
@click.option("--no-calibration", is_flag=True, help="The entries scored without the adapter's "
              "stored temperature (each temperature has its own fingerprint).")
@click.option("--cache-dir", help="Cache folder (default $LLMBT_HOME/signals).")
def cache_clear(model: str | None, adapter: str | None, engine: str, no_calibration: bool,
                cache_dir: str | None) -> None:
    """Remove cached scores (all, or one model's)."""
    from llmbt.signals_cache.cache import SignalCache
    from llmbt.signals_cache.model.loading import ModelSpec, model_fingerprint

    fingerprint = None
    if model is not None:
        is_hex = len(model) == 16 and all(ch in "0123456789abcdef" for ch in model)
        fingerprint = model if is_hex else model_fingerprint(
            ModelSpec(base=model, adapter=adapter, engine=engine, calibrate=not no_calibration), "")
    with SignalCache(cache_dir) as c:
        removed = c.clear(model=fingerprint)
    click.echo(f"removed {removed} entries" + (f" of model {fingerprint}" if fingerprint else ""))
