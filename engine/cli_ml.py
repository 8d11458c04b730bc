"""``bt dataset``, ``bt finetune``, ``bt evaluate``: thin commands over signals_cache's ML modules."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine.cli import cli


def _print_report(report: dict) -> None:
    for split, counts in report["counts"].items():
        click.echo(f"{split:<6} " + "  ".join(f"{k}={v}" for k, v in counts.items()))
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}")


def _export(splits: dict, template, out: Path) -> None:
    from signals_cache.datasets import to_alpaca, to_chatml, write_jsonl

    for name, part in splits.items():
        write_jsonl((to_chatml(e, template) for e in part), out / f"{name}.chatml.jsonl")
        write_jsonl((to_alpaca(e, template) for e in part), out / f"{name}.alpaca.jsonl")
        rows = ({"text": e.text, "label": e.label, "symbol": e.symbol,
                 "time": e.time.isoformat() if e.time is not None else None,
                 "forward_return": e.forward_return} for e in part)
        write_jsonl(rows, out / f"{name}.jsonl")


@cli.group()
def dataset() -> None:
    """Labelled datasets for fine-tuning: build from prices or a corpus, check quality."""


@dataset.command("build")
@click.option("--data", help="Price URI (bar mode): one example per bar, labelled by forward return.")
@click.option("--corpus", type=click.Path(dir_okay=False), help="Labelled text file (CSV/JSONL "
              "label,text or PhraseBank sentence@label) instead of --data.")
@click.option("--horizon", default=5, show_default=True, help="Label horizon in bars (bar mode).")
@click.option("--method", default="quantile", show_default=True, help="quantile or vol thresholds, "
              "fitted on the training window only.")
@click.option("--embargo", type=int, help="Bars dropped between splits (default: --horizon).")
@click.option("--rebalance", is_flag=True, help="Oversample minority labels in train.")
@click.option("--seed", default=0, show_default=True, help="Seed of the stratified split (corpus).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
def dataset_build(data, corpus, horizon, method, embargo, rebalance, seed, out) -> None:
    """Build train/val/test JSONL (plain, ChatML and Alpaca) and a quality report.

    Example: bt dataset build --data sample:GOOG --horizon 5 --out datasets/goog
    """
    from feeds import load_prices
    from feeds.base import ConfigError
    from signals_cache import datasets as ds
    from signals_cache.prompts import BARS_V1, HEADLINES_V1
    from strategies.llm_sentiment import symbol_of

    if bool(data) == bool(corpus):
        raise ConfigError("give exactly one of --data URI (bar mode) or --corpus FILE")
    if data:
        examples = ds.bar_examples(load_prices(data, None, None), symbol=symbol_of(data),
                                   horizon=horizon, method=method)
        splits, template = ds.time_split(examples, embargo=embargo or horizon), BARS_V1
    else:
        splits = ds.stratified_split(ds.load_labelled(corpus), seed=seed)
        template = HEADLINES_V1
    if rebalance:
        splits["train"] = ds.rebalance(splits["train"], seed=seed)
    out = Path(out)
    _export(splits, template, out)
    report = ds.quality_report(splits)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    _print_report(report)
    click.echo(f"wrote {out}")


@dataset.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def dataset_check(files: tuple[str, ...]) -> None:
    """Quality report of labelled files (one per split: e.g. train.jsonl val.jsonl test.jsonl).

    Example: bt dataset check datasets/goog/train.jsonl datasets/goog/test.jsonl
    """
    from signals_cache.datasets import load_labelled, quality_report

    splits = {Path(f).name.split(".")[0]: load_labelled(f) for f in files}
    _print_report(quality_report(splits))
