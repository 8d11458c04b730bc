"""Arms of a walk-forward (``bt walkforward --arm SPEC``): more variants next to the base model and
the fold's LoRA, each trained on the fold's training window only.

An arm is parsed as ``bt compare --arm`` parses it (:func:`llmbt.engine.arms.parse_arm`). Per fold,
on exactly the examples the fold's LoRA trains on (same windows, embargo, labels and validation
block: :func:`llmbt.engine.walkforward.fold_split` of the fold's examples, whose label windows all
end inside the train window: :func:`llmbt.engine.universe_wf.fold_examples`, headlines of a
universe; :func:`llmbt.engine.walkforward.fold_examples`, one symbol's bars, whose text is the
bar's feature lines, what a text scorer reads in a single-symbol backtest):

- ``kind=embeddings`` trains an embedding head (the ``bt head train`` code path,
  :func:`llmbt.signals_cache.heads.train.train_head`, with ``--head-param`` settings);
- ``kind=seqcls`` fine-tunes a classification-head LoRA (the ``bt finetune --method seqcls``
  path, :func:`llmbt.engine.walkforward.train_adapter` with the fold LoRA's budget; never
  warm-started);
- ``kind=lexicon`` and a plain model (``kind=lm``, maybe another ``model=`` or ``prompt=``) need
  no training.

A trained artefact is stored by content hash (base weights, train and validation examples,
settings), like the fold adapters, so a re-run reuses it; the results folder links it as
``arms/fold-K/NAME``. Every arm then trades the fold's test window like the base and the LoRA
(a universe: :func:`llmbt.engine.universe_arms.trade_arms`; one symbol: a backtest of the arm's
:func:`llmbt.engine.arms.arm_config`, as ``bt compare --arm``), so it gets its rows in
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

from llmbt.engine.arms import Arm, check_arm_prompt
from llmbt.engine.universe_arms import BENCHMARK
from llmbt.engine.walkforward import BASE, TUNED, WalkForwardConfig, train_adapter
from llmbt.errors import ConfigError, did_you_mean
from llmbt.paths import llmbt_home

#: Arm kinds the walk-forward trains per fold (their ``adapter=`` is the fold's artefact).
TRAINED_KINDS = ("embeddings", "seqcls")
#: Names the walk-forward gives its own columns.
RESERVED = (BASE, TUNED, BENCHMARK, "buy_and_hold")
#: HeadConfig fields that hold several values (a scalar ``--head-param layers=-1`` is one of them).
_TUPLE_FIELDS = ("layers", "poolings", "c_grid")


def check_wf_arms(cfg: WalkForwardConfig) -> None:
    """Refuse arms the walk-forward cannot run, before any data is read.

    Raises:
        ConfigError: a repeated or reserved name, an unknown kind, ``adapter=`` on any arm (a
            trained kind is trained per fold; a fixed artefact may have seen the test windows), a
            model arm's prompt that is no headline template (a universe) or no bar template
            (one symbol), or bad ``--head-param`` settings.
    """
    from llmbt.signals_cache.arms.registry import LM_KIND, check_kind

    names = [a.name for a in cfg.arms]
    for name in names:
        if name in RESERVED or names.count(name) > 1:
            raise ConfigError(f"--arm name={name}: each arm needs its own name, none of "
                              f"{', '.join(RESERVED)} (the walk-forward's own columns); rename it.")
    for arm in cfg.arms:
        check_kind(arm.kind)
        if arm.adapter:
            raise ConfigError(_adapter_refusal(arm))
        if arm.kind == LM_KIND:
            check_arm_prompt(cfg.run, arm, universe=cfg.universe)
    if cfg.head or any(a.kind == "embeddings" for a in cfg.arms):
        head_config(cfg.head)


def _adapter_refusal(arm: Arm) -> str:
    """The one-line refusal of an arm's ``adapter=`` in a walk-forward."""
    if arm.kind in TRAINED_KINDS:
        return (f"--arm {arm.name}: adapter={arm.adapter} with kind={arm.kind}: bt walkforward "
                f"trains this arm per fold on the fold's training window; drop adapter=.")
    return (f"--arm {arm.name}: adapter={arm.adapter}: a fixed adapter may have been trained on "
            "the walk-forward's test windows; drop adapter= (the per-fold LoRA is the 'lora' arm; "
            "kind=seqcls or kind=embeddings are trained per fold), or test it with bt compare --arm.")


def head_config(head: Mapping[str, Any]) -> Any:
    """The :class:`~llmbt.signals_cache.heads.train.HeadConfig` of ``--head-param`` settings
    (over its defaults; a list or a scalar for ``layers``, ``poolings`` and ``c_grid``).

    Raises:
        ConfigError: an unknown field, naming the fields, or a bad value.
    """
    from llmbt.signals_cache.heads.train import HeadConfig

    fields_ = {k: tuple(v) if isinstance(v, list | tuple) else (v,) if k in _TUPLE_FIELDS else v
               for k, v in head.items()}
    known = [f.name for f in dataclasses.fields(HeadConfig)]
    unknown = [k for k in fields_ if k not in known]
    if unknown:
        raise ConfigError(f"--head-param {unknown[0]}: unknown.{did_you_mean(unknown[0], known)} "
                          f"Use one of {', '.join(known)} (see bt head train), e.g. "
                          "--head-param layers=[14,18].")
    return HeadConfig(**fields_)


def wf_arms_dict(cfg: WalkForwardConfig) -> dict[str, Any]:
    """The arms' part of the run's ``config.json`` (and so of its run id): empty without arms."""
    if not cfg.arms:
        return {}
    out: dict[str, Any] = {"arms": [dataclasses.asdict(a) for a in cfg.arms]}
    if any(a.kind == "embeddings" for a in cfg.arms):
        out["head"] = dataclasses.asdict(head_config(cfg.head))
    return out


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
    from llmbt.signals_cache.heads.scorer import HEAD_ENGINE
    from llmbt.signals_cache.heads.train import train_head
    from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint

    base = arm.model or cfg.run.model
    hcfg = head_config(cfg.head)
    key = hashlib.sha256(json.dumps(
        ["embeddings", base_fingerprint(ModelSpec(base=base, engine=HEAD_ENGINE)),
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
