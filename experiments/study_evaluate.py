"""The ``evaluate`` study kind: every arm of a recipe on one labelled corpus's held-out test split.

::

    kind: evaluate
    evaluate:
      corpus: ../shared/data/fpb/fpb50_dev.csv   # labelled text, as bt dataset build --corpus
      seed: 0                                    # the stratified 80 / 10 / 10 split's seed
      template: headlines-v1                     # the prompt of the model arms
      arms:
        - {name: base}                           # the model, zero-shot
        - {name: lexicon, kind: lexicon}         # a text scorer
        - {name: head, train: head}              # bt head train on train, chosen on val
        - {name: LoRA, train: lora}              # bt finetune on train, --val val
        - {name: LoRA all layers, train: lora, params: {top_layers: 0}}

The corpus is split as ``bt dataset build --corpus FILE --seed SEED`` splits it (deduplicated,
stratified); a trained arm fits on the train part and picks its checkpoint or settings on the
validation part, through the artefact store (:mod:`llmbt.experiments.adapter_store`), so a
re-run reuses what was trained; every arm is then scored on the test part only, which no arm saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmbt.errors import ConfigError, did_you_mean, reject_unknown_keys

TRAINERS = ("lora", "seqcls", "head")
_ARM_KEYS = ("name", "kind", "model", "train", "params")
_KEYS = ("corpus", "seed", "template", "model", "batch_size", "arms")


@dataclass(frozen=True)
class EvalArm:
    """One column: a model (``kind: lm``) or a text scorer, maybe trained first (``train``)."""

    name: str
    kind: str = "lm"
    model: str | None = None
    train: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSettings:
    """The ``evaluate:`` block of a recipe (see the module docstring)."""

    corpus: str
    arms: tuple[EvalArm, ...]
    seed: int = 0
    template: str = "headlines-v1"
    model: str = "smollm2-135m"
    batch_size: int = 16


def eval_settings(data: dict[str, Any], study: str) -> EvalSettings:
    """The validated ``evaluate:`` block of study ``study``.

    Raises:
        ConfigError: unknown keys (with "Did you mean"), no arms, a duplicate arm name or an
            unknown ``train``.
    """
    reject_unknown_keys(data, _KEYS, f"study {study} evaluate")
    if "corpus" not in data or not data.get("arms"):
        raise ConfigError(f"study {study} evaluate: give corpus: FILE and a list of arms:")
    arms = []
    for raw in data["arms"]:
        reject_unknown_keys(raw, _ARM_KEYS, f"study {study} arm")
        arm = EvalArm(**raw)
        if arm.train not in (None, *TRAINERS):
            raise ConfigError(f"study {study} arm {arm.name!r}: train {arm.train!r} must be one "
                              f"of {', '.join(TRAINERS)}.{did_you_mean(str(arm.train), TRAINERS)}")
        if arm.name in {a.name for a in arms}:
            raise ConfigError(f"study {study}: arm name {arm.name!r} is given twice")
        arms.append(arm)
    return EvalSettings(**{k: v for k, v in data.items() if k != "arms"}, arms=tuple(arms))


def run_evaluate(settings: EvalSettings, say: Any = print) -> dict[str, dict[str, Any]]:
    """Each arm's test-split metrics (:func:`~llmbt.signals_cache.finetune.evaluate.evaluate_arm`)
    with ``train_seconds`` and ``reused`` for a trained arm."""
    from llmbt.signals_cache.finetune.evaluate import evaluate_arm

    splits = corpus_splits(settings)
    say(f"{settings.corpus}: " + " / ".join(f"{len(v):,} {k}" for k, v in splits.items()))
    results = {}
    for arm in settings.arms:
        folder, facts = _trained(arm, settings, splits)
        scorer = _scorer(arm, settings, folder)
        results[arm.name] = evaluate_arm(splits["test"], scorer) | facts
        say(f"{arm.name}: weighted F1 {results[arm.name]['weighted_f1']:.3f}")
    return results


def corpus_splits(settings: EvalSettings) -> dict[str, list[Any]]:
    """train / val / test of the corpus, as ``bt dataset build --corpus`` makes them."""
    from llmbt.signals_cache.finetune.datasets import load_labelled, stratified_split

    if not Path(settings.corpus).is_file():
        raise ConfigError(f"corpus {settings.corpus!r} not found; the PhraseBank studies read "
                          "../shared/data/fpb/ beside the project (see its MANIFEST.md)")
    return stratified_split(load_labelled(settings.corpus), seed=settings.seed)


def _trained(arm: EvalArm, settings: EvalSettings,
             splits: dict[str, list[Any]]) -> tuple[str | None, dict[str, Any]]:
    """(the trained folder, its facts) of ``arm``; (None, {}) for an arm with nothing to train."""
    from llmbt.experiments.adapter_store import stored_adapter, stored_head

    if arm.train is None:
        return None, {}
    base = arm.model or settings.model
    if arm.train == "head":
        from llmbt.experiments.wf_config import head_config

        folder, meta, reused = stored_head(base, splits["train"], splits["val"],
                                           head_config(arm.params))
    else:
        from llmbt.signals_cache.finetune.train_config import TrainConfig
        from llmbt.signals_cache.model.loading import ModelSpec

        tcfg = TrainConfig(**({"method": arm.train} | dict(arm.params)))
        folder, meta, reused = stored_adapter(ModelSpec(base=base), splits["train"],
                                              splits["val"], tcfg)
    metrics = meta.get("metrics", {})
    return folder, {"train_seconds": metrics.get("seconds"), "best_step": metrics.get("best_step"),
                    "reused": reused}


def _scorer(arm: EvalArm, settings: EvalSettings, folder: str | None) -> Any:
    """What scores ``arm``'s sentences, from its scorer identity: the model on the recipe's
    prompt (with its adapter), a trained head or classifier adapter, or a text scorer."""
    from llmbt.signals_cache.finetune.evaluate import evaluation_arm
    from llmbt.signals_cache.scorer_id import ScorerId

    kind = {"head": "embeddings", "seqcls": "seqcls"}.get(arm.train or "", arm.kind)
    scorer = ScorerId(kind=kind, model=arm.model or settings.model, adapter=folder,
                      calibrate=False, template=settings.template)
    return evaluation_arm(scorer, settings.batch_size)
