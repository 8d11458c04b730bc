"""``bt head train``: the embeddings + classifier arm (a logistic-regression head on the base
model's pooled hidden states), over :mod:`llmbt.signals_cache.heads`."""

from __future__ import annotations

import json

import click

from llmbt.cli.base import cli
from llmbt.cli.ml import label_map_option, labelled_splits
from llmbt.signals_cache.heads.train import HeadConfig

_LAYERS = ", ".join(map(str, HeadConfig.layers))
_POOLINGS = ", ".join(HeadConfig.poolings)


@cli.group()
def head() -> None:
    """Embedding heads: a classifier on the base model's hidden states (use with --adapter)."""


@head.command("train")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Labelled file (as bt finetune --data).")
@click.option("--val", "val_file", type=click.Path(exists=True, dir_okay=False),
              help="Validation file (default: 10 % of --data, split as bt finetune does).")
@click.option("--horizon", default=5, show_default=True, help="Embargo of dated examples before "
              "the validation tail (as bt finetune).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Head folder.")
@click.option("--model", default="smollm2-135m", show_default=True, help="Base model.")
@click.option("--layer", "layers", type=int, multiple=True, help="Decoder layer (1-based, -1 = "
              f"last); repeatable: the best on validation is kept. [default: {_LAYERS}]")
@click.option("--pooling", "poolings", type=click.Choice(["mean", "last"]), multiple=True,
              help=f"Token pooling; repeatable (best on validation kept). [default: {_POOLINGS}]")
@click.option("--class-weight", default=HeadConfig.class_weight, show_default=True,
              type=click.Choice(["balanced", "none"]), help="Logistic-regression class weights.")
@click.option("--batch-size", default=32, show_default=True, help="Texts per forward pass.")
@click.option("--max-length", default=128, show_default=True, help="Tokens kept per text.")
@click.option("--autocast/--no-autocast", default=True, show_default=True,
              help="bfloat16 autocast for the feature pass (scoring uses the same).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--seed", default=0, show_default=True, help="Seed of the validation split.")
@label_map_option
def head_train(data, val_file, horizon, out, model, layers, poolings, class_weight, batch_size,
               max_length, autocast, device, seed, label_map) -> None:
    """Fit a logistic-regression head on pooled hidden states; C (and layer/pooling when several
    are given) chosen on validation. Evaluate it with bt evaluate --adapter OUT.

    Example: bt head train --data datasets/fpb/train.jsonl --val datasets/fpb/val.jsonl --out heads/fpb
    """
    from llmbt.signals_cache.heads.train import train_head

    splits = labelled_splits(data, val_file, label_map, horizon, seed)
    cfg = HeadConfig(layers=tuple(layers) or HeadConfig.layers,
                     poolings=tuple(poolings) or HeadConfig.poolings, class_weight=class_weight,
                     batch_size=batch_size, max_length=max_length, autocast=autocast, seed=seed)
    meta = train_head(splits["train"], splits["val"], model, out, cfg, device=device)
    keep = ("layer", "pooling", "C", "class_weight")
    summary = {k: meta[k] for k in keep} | {
        "val_weighted_f1": meta["metrics"]["val"]["weighted_f1"],
        "seconds": meta["metrics"]["seconds"]}
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"head: {out}")
