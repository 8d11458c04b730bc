"""Fine-tuning the signal model on labelled texts: LoRA, QLoRA (4-bit nf4 base) or prefix tuning
of the label tokens, or LoRA with a classification head (``seqcls``).

Each example becomes ``render(template, symbol=..., <text field>=text) + answer_text(label) + eos``
and the loss covers only the answer tokens (the label word and the end-of-turn token), so the
model learns exactly what :class:`~llmbt.signals_cache.scoring.scorer.LabelScorer` reads
(:mod:`llmbt.signals_cache.finetune.encoding`). A plain torch loop
(:mod:`llmbt.signals_cache.finetune.training`: AdamW, warm-up + cosine/linear schedule, gradient accumulation,
periodic validation loss with early stopping) trains the adapter; the best adapter by validation loss is saved
with peft's ``save_pretrained`` plus ``llmbt_adapter.json`` (base fingerprint, data hash, metrics, versions,
hyper-parameters). torch, transformers and peft are imported lazily.

``seqcls`` trains :mod:`llmbt.signals_cache.model.seqcls`'s classifier instead: the same prompt
(rendered without the symbol, as a text scorer sees it), a new linear head on the hidden state of
its last token (one output per label) trained whole with LoRA on the body, cross-entropy over the
three labels; peft's ``modules_to_save`` saves the head with the adapter. It scores through the
``seqcls`` arm kind (:mod:`llmbt.signals_cache.text_scorers.seqcls`), not the label scorer.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.finetune.encoding import (
    dataset_hash,
    encode_classes,
    encode_examples,
)
from llmbt.signals_cache.finetune.train_config import TrainConfig
from llmbt.signals_cache.finetune.training import fit, tensorboard_writer
from llmbt.signals_cache.model.adapters import META_FILE, is_seqcls_adapter
from llmbt.signals_cache.model.loading import LoadedModel, ModelSpec, base_fingerprint, load_model
from llmbt.signals_cache.model.seqcls import HEAD, load_seqcls
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.prompts import get_template


def _top_linear_names(model: Any, layers: list[int]) -> list[str]:
    """Full names of the linear modules inside the given decoder layers (``all-linear`` there):
    ``torch.nn.Linear`` (Llama's ``q_proj``…) and GPT-2's ``Conv1D`` (``c_attn``, ``c_fc``…)."""
    import re

    import torch
    from transformers.pytorch_utils import Conv1D

    pattern = re.compile(rf"\.(?:layers|h|blocks)\.({'|'.join(map(str, layers))})\.")
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear | Conv1D) and pattern.search(name)]


def _peft_config(cfg: TrainConfig, model: Any) -> Any:
    from peft import LoraConfig, PrefixTuningConfig, TaskType

    if cfg.method == "prefix":
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg.r)
    task, head = (TaskType.SEQ_CLS, [HEAD]) if cfg.method == "seqcls" else (TaskType.CAUSAL_LM, None)
    targets: str | list[str] = cfg.target_modules.strip()
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    top = cfg.top_layers if cfg.top_layers < n_layers else 0  # as many or more: all layers
    layers = list(range(n_layers - top, n_layers)) if top else None
    if layers and targets == "all-linear":  # peft takes layers_to_transform only with a list
        targets, layers = _top_linear_names(model, layers), None
    return LoraConfig(task_type=task, r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=targets, layers_to_transform=layers, modules_to_save=head,
                      fan_in_fan_out=_has_conv1d(model))


def _has_conv1d(model: Any) -> bool:
    """True for GPT-2-style models, whose ``Conv1D`` layers store weights as (in, out)."""
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(module, Conv1D) for module in model.modules())


def _trainable_model(spec: ModelSpec, cfg: TrainConfig, resume_adapter: str | None) -> Any:
    """Base model (unmerged, 4-bit for qlora) wrapped with a new or resumed trainable adapter."""
    quantization = "4bit" if cfg.method == "qlora" else spec.quantization
    if cfg.method != "qlora" and quantization != "none":
        raise ConfigError(f"--quantization {quantization} trains only with --method qlora.")
    if resume_adapter is not None:
        _check_resume(spec, resume_adapter, cfg.method)
    if cfg.method == "seqcls":
        model, tokenizer, device = load_seqcls(dataclasses.replace(spec, adapter=None),
                                               trainable=True)
        loaded = LoadedModel(model, tokenizer, "", spec, device)
    else:
        loaded = load_model(dataclasses.replace(spec, adapter=None, quantization=quantization,
                                                precision="float32"))  # trains float32 weights
    return loaded, wrap_trainable(loaded.model, cfg, resume_adapter)


def wrap_trainable(model: Any, cfg: TrainConfig, resume_adapter: str | None = None) -> Any:
    """``model`` frozen and wrapped with a new (``cfg``) or resumed trainable peft adapter; a
    4-bit/8-bit base is first prepared for k-bit training (QLoRA)."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        keep_cpu_4bit_trainable(model)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    for param in model.parameters():
        param.requires_grad_(False)
    if resume_adapter is not None:
        return PeftModel.from_pretrained(model, resume_adapter, is_trainable=True)
    return get_peft_model(model, _peft_config(cfg, model))


def keep_cpu_4bit_trainable(model: Any) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference in eval mode: once
    packed, a later training step fails on layers with a bias (Qwen's q/k/v), e.g. right after
    a validation pass. Call before the first eval-mode forward; a no-op on CUDA."""
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False


def _check_resume(spec: ModelSpec, adapter: str, method: str) -> None:
    folder = Path(adapter).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"--resume-adapter {adapter!r} has no adapter_config.json.")
    if is_seqcls_adapter(adapter) != (method == "seqcls"):
        kind = "a classification-head (seqcls)" if method != "seqcls" else "a label-token"
        raise ConfigError(f"--resume-adapter {adapter!r} is {kind} adapter; pass --method "
                          f"{'seqcls' if method != 'seqcls' else 'lora'} to continue it.")
    meta = folder / META_FILE
    wanted = json.loads(meta.read_text()).get("base_fingerprint") if meta.is_file() else None
    if wanted and wanted != base_fingerprint(spec):
        raise LlmbtError(f"--resume-adapter {adapter!r} was trained on another base model "
                         f"(fingerprint {wanted}); pass that base as --model.")


def _versions(method: str) -> dict[str, str]:
    """Library versions behind the adapter (bitsandbytes too for a 4-bit QLoRA base)."""
    from importlib.metadata import version

    names = ("torch", "transformers", "peft") + (("bitsandbytes",) if method == "qlora" else ())
    return {name: version(name) for name in names}


def finetune(
    examples_train: Sequence[Any],
    examples_val: Sequence[Any],
    spec: ModelSpec,
    out_dir: str | Path,
    cfg: TrainConfig,
    *,
    resume_adapter: str | None = None,
    progress: bool = True,
    tensorboard_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train an adapter of ``spec.base`` and save it to ``out_dir``; returns the metadata written
    to ``out_dir/llmbt_adapter.json``.

    ``resume_adapter`` continues training an existing adapter folder (its own peft config is
    kept; ``cfg.method``/``r``/``alpha`` are then ignored). With ``examples_val`` empty there is
    no validation and the last adapter is saved. ``tensorboard_dir`` gets TensorBoard scalars
    ``train/loss``, ``train/lr`` and ``val/loss`` per step (needs the ``tensorboard`` package).

    Raises:
        ConfigError: bad configuration or an empty training set.
        LlmbtError: the model cannot be loaded or the resumed adapter belongs to another base.
    """
    import torch

    if not isinstance(cfg, TrainConfig):
        raise ConfigError("cfg must be a TrainConfig.")
    examples_train, examples_val = list(examples_train), list(examples_val)
    if not examples_train:
        raise ConfigError("no training examples; pass a non-empty training split.")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    started = time.perf_counter()
    loaded, model = _trainable_model(spec, cfg, resume_adapter)
    tokenizer, device = loaded.tokenizer, loaded.device
    pad_id = tokenizer.pad_token_id
    template = get_template(cfg.template)
    encode = encode_classes if cfg.method == "seqcls" else encode_examples
    train = encode(examples_train, tokenizer, template, cfg.max_length)
    val = encode(examples_val, tokenizer, template, cfg.max_length)
    data_hash = dataset_hash(examples_train)
    val_hash = dataset_hash(examples_val)
    del examples_train, examples_val

    writer = tensorboard_writer(tensorboard_dir)
    try:
        metrics = fit(model, train, val, cfg, pad_id, device, progress,
                       writer.add_scalar if writer else None)
    finally:
        if writer:
            writer.close()
    metrics["seconds"] = round(time.perf_counter() - started, 3)  # the save is not included

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    meta = {
        "base_fingerprint": base_fingerprint(spec),
        "base_model": spec.base,
        "method": cfg.method,
        "labels": list(LABELS),
        "template": template.version,
        "dataset_sha256": data_hash,
        "val_sha256": val_hash,
        "splits": {"train": len(train.ids), "val": len(val.ids)},
        "truncated": {"train": train.truncated, "val": val.truncated},
        "resumed_from": str(resume_adapter) if resume_adapter is not None else None,
        "metrics": metrics,
        "versions": _versions(cfg.method),
        "hyperparameters": cfg.to_dict(),
        "precision": metrics["precision"],  # --precision auto resolved
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    return meta
