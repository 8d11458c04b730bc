"""Arms of a walk-forward (``bt walkforward --arm SPEC``): more variants next to the base model and
the fold's LoRA, each trained on the fold's training window only.

An arm is parsed as ``bt compare --arm`` parses it (:func:`llmbt.experiments.arms.parse_arm`). Per fold,
on exactly the examples the fold's LoRA trains on (same windows, embargo, labels and validation
block: :func:`llmbt.experiments.walkforward.fold_split` of the fold's examples, whose label windows all
end inside the train window: :func:`llmbt.experiments.universe_wf.fold_examples`, headlines of a
universe; :func:`llmbt.experiments.walkforward.fold_examples`, one symbol's bars, whose text is the
bar's feature lines, what a text scorer reads in a single-symbol backtest):

- ``kind=embeddings`` trains an embedding head (the ``bt head train`` code path,
  :func:`llmbt.signals_cache.heads.train.train_head`, with ``--head-param`` settings);
- ``kind=seqcls`` fine-tunes a classification-head LoRA (the ``bt finetune --method seqcls``
  path, :func:`llmbt.experiments.walkforward.train_adapter` with the fold LoRA's budget; never
  warm-started);
- ``kind=lexicon`` and a plain model (``kind=lm``, maybe another ``model=`` or ``prompt=``) need
  no training.

A trained artefact is stored by content hash (base weights, train and validation examples,
settings), like the fold adapters, so a re-run reuses it; the results folder links it as
``arms/fold-K/NAME``. Every arm then trades the fold's test window like the base and the LoRA
(a universe: :func:`llmbt.experiments.universe_arms.trade_arms`; one symbol: a backtest of the arm's
:func:`llmbt.experiments.arms.arm_config`, as ``bt compare --arm``), so it gets its rows in
``folds.csv``, its column in ``returns.csv`` and a place in the statistics: among the N arms of
the SPA / StepM and Deflated Sharpe (a universe), or in the Deflated Sharpe's trials and a paired
Sharpe difference against the base model (one symbol: :func:`llmbt.reports.compare.compare`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmbt.experiments.arms import Arm
from llmbt.experiments.wf_config import TRAINED_KINDS, WalkForwardConfig, head_config
from llmbt.experiments.wf_folds import train_adapter
from llmbt.paths import llmbt_home


def train_fold_arms(cfg: WalkForwardConfig, split: Mapping[str, list],
                    say: Callable[[str], None]) -> tuple[list[Arm], dict[str, dict[str, Any]]]:
    """Each arm of ``cfg`` ready to score a fold: a trained kind trained on ``split`` (the fold's
    ``train`` and ``val`` examples), its artefact as the arm's ``adapter``; the others as given.

    Returns:
        The arms to trade, and per arm its facts (kind, artefact folder, whether it was reused,
        training seconds, validation weighted F1 where known).
    """
    arms, facts = [], {}
    for arm in cfg.arms:
        if arm.kind not in TRAINED_KINDS:
            arms.append(arm)
            facts[arm.name] = {"kind": arm.kind, "trained": False}
            continue
        folder, meta, reused = _TRAINERS[arm.kind](cfg, arm, split["train"], split["val"])
        arms.append(dataclasses.replace(arm, adapter=folder))
        facts[arm.name] = {"kind": arm.kind, "trained": True, "artifact": folder, "reused": reused,
                           "train_seconds": meta["metrics"].get("seconds"),
                           "val_loss": meta["metrics"].get("best_val_loss"),
                           "val_weighted_f1": (meta["metrics"].get("val") or {}).get("weighted_f1")}
        say(f"arm {arm.name}: {arm.kind} {'reused' if reused else 'trained'} {folder}")
    return arms, facts


def train_fold_head(cfg: WalkForwardConfig, arm: Arm, train: Sequence[Any],
                    val: Sequence[Any]) -> tuple[str, dict[str, Any], bool]:
    """An embedding head trained on the fold's examples (``bt head train``'s path), stored under
    ``$LLMBT_HOME/heads/<hash>`` (base weights, examples, head settings); reused when there.

    Returns:
        The head folder, its metadata and whether it was reused.
    """
    from llmbt.signals_cache.finetune.encoding import dataset_hash
    from llmbt.signals_cache.heads.linear import HEAD_META
    from llmbt.signals_cache.heads.scorer import HEAD_PRECISION
    from llmbt.signals_cache.heads.train import train_head
    from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint

    base = arm.model or cfg.run.model
    hcfg = head_config(cfg.head)
    key = hashlib.sha256(json.dumps(
        ["embeddings", base_fingerprint(ModelSpec(base=base, precision=HEAD_PRECISION)),
         dataset_hash(list(train)), dataset_hash(list(val)), dataclasses.asdict(hcfg)],
        sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = llmbt_home() / "heads" / key
    if (folder / HEAD_META).is_file():
        return str(folder), json.loads((folder / HEAD_META).read_text()), True
    tmp = folder.with_name(key + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    meta = train_head(train, val, base, tmp, hcfg)
    tmp.rename(folder)
    return str(folder), meta, False


def train_fold_seqcls(cfg: WalkForwardConfig, arm: Arm, train: Sequence[Any],
                      val: Sequence[Any]) -> tuple[str, dict[str, Any], bool]:
    """A classification-head LoRA fine-tuned on the fold's examples with the fold LoRA's budget
    (``--train-param`` settings, ``method=seqcls``), in the adapter store; never warm-started.

    Returns:
        The adapter folder, its metadata and whether it was reused.
    """
    run = cfg.run.replace(model=arm.model) if arm.model else cfg.run
    seqcls = dataclasses.replace(cfg, run=run, train=dict(cfg.train) | {"method": "seqcls"},
                                 arms=(), head={})
    return train_adapter(seqcls, list(train), list(val), None)


_TRAINERS: dict[str, Callable[..., tuple[str, dict[str, Any], bool]]] = {
    "embeddings": train_fold_head, "seqcls": train_fold_seqcls}
