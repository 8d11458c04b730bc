"""``bt cache`` commands: the signal cache: scores stored by (model fingerprint, template, prompt)."""

from __future__ import annotations

import click

from llmbt.cli.base import cli, precision_option


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
@click.option("--model", help="Clear only this scorer's entries: a model alias, folder or hub id "
              "(with the flags below, as bt run takes them), or a 16-hex fingerprint.")
@click.option("--adapter", help="Adapter folder of the model (or a text scorer's artefact folder).")
@click.option("--quantization", default="none", show_default=True, help="none, 8bit or 4bit.")
@precision_option("auto")
@click.option("--scorer", default="lm", show_default=True, help="lm (the model's label "
              "probabilities) or a text scorer (lexicon, embeddings, seqcls).")
@click.option("--model-schedule", help="Every model of this schedule file.")
@click.option("--no-calibration", is_flag=True, help="The entries scored without the adapter's "
              "stored temperature (each temperature has its own fingerprint).")
@click.option("--cache-dir", help="Cache folder (default $LLMBT_HOME/signals).")
def cache_clear(model: str | None, adapter: str | None, quantization: str, precision: str,
                scorer: str, model_schedule: str | None, no_calibration: bool,
                cache_dir: str | None) -> None:
    """Remove cached scores: all, or (any scorer flag given) one scorer's, named as bt run names it.

    Example: bt cache clear --model smollm2-135m --precision bf16
    """
    from llmbt.signals_cache.cache import SignalCache

    named = (model, adapter, model_schedule) != (None, None, None) or no_calibration or \
        (scorer, quantization, precision) != ("lm", "none", "auto")  # any scorer flag names one
    fingerprints = _fingerprints(model, adapter, quantization, precision, scorer, model_schedule,
                                 no_calibration) if named else [None]
    with SignalCache(cache_dir) as c:
        for fingerprint in fingerprints:
            removed = c.clear(model=fingerprint)
            click.echo(f"removed {removed} entries"
                       + (f" of scorer {fingerprint}" if fingerprint else ""))


def _fingerprints(model: str | None, adapter: str | None, quantization: str, precision: str,
                  scorer: str, schedule: str | None, no_calibration: bool) -> list[str]:
    """The fingerprints the flags name: a 16-hex one as given, else the run's own
    (:func:`llmbt.engine.signals.scorer_fingerprints`, the one identity bt run keys scores by)."""
    from llmbt.engine.config import RunConfig
    from llmbt.engine.signals import scorer_fingerprints

    if model is not None and len(model) == 16 and all(ch in "0123456789abcdef" for ch in model):
        return [model]
    config = RunConfig(model=model or RunConfig.model, adapter=adapter, quantization=quantization,
                       precision=precision, scorer=scorer, model_schedule=schedule,
                       calibrate=not no_calibration)
    return scorer_fingerprints(config)
