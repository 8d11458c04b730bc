"""The signal model as a sequence classifier: the causal LM's body with a linear head of one output
per label (``score``, :data:`~llmbt.signals_cache.scoring.labels.LABELS` order) on the hidden state
of the last token, optionally with a peft ``SEQ_CLS`` adapter (LoRA plus the trained head, saved
by ``bt finetune --method seqcls``).

The head reads the *rightmost token that is not the pad token* (transformers' last-token pooling),
so the model config's ``pad_token_id`` is always set (to the tokenizer's pad token, the eos token
when it has none) and batches are right-padded. torch, transformers and peft are imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.model.adapters import attach_adapter
from llmbt.signals_cache.model.loading import (
    ModelSpec,
    check_trained_base,
    local_source,
    prepare_tokenizer,
)
from llmbt.signals_cache.model.precision import use_all_cores
from llmbt.signals_cache.model.quantization import resolve_device_dtype
from llmbt.signals_cache.progress import apply_transformers_bars
from llmbt.signals_cache.scoring.labels import LABELS

#: The classification head's module name in transformers' ``*ForSequenceClassification`` (Llama,
#: Qwen, Mistral...): saved whole with the adapter (peft ``modules_to_save``).
HEAD = "score"


def load_seqcls(spec: ModelSpec, *, trainable: bool = False) -> tuple[Any, Any, str]:
    """(model, right-padding tokenizer, device) of ``spec`` as a classifier of :data:`LABELS`.

    Without ``spec.adapter`` the head is freshly initialised from torch's global seed (training
    starts from it); with one, the adapter's LoRA weights and head are loaded (merged into the
    weights unless ``trainable``; the model is then in eval mode).

    Raises:
        ConfigError: a quantized spec (a classifier trains and scores in full precision).
        LlmbtError: the model cannot be loaded, or the adapter is no SEQ_CLS adapter of this base
            (:func:`~llmbt.signals_cache.model.adapters.attach_adapter` refuses it).
    """
    import torch

    if spec.quantization != "none":
        raise ConfigError(f"--quantization {spec.quantization}: --method seqcls trains and scores "
                          "a full-precision model; drop it.")
    device, dtype = resolve_device_dtype(spec.device, spec.dtype)
    if device == "cpu":
        use_all_cores()  # as load_model: one intra-op thread per core, one inter-op thread
    source = local_source(spec)
    model, tokenizer = _classifier(source, getattr(torch, dtype))
    tokenizer = prepare_tokenizer(tokenizer, source)
    tokenizer.padding_side = "right"
    model.config.pad_token_id = tokenizer.pad_token_id  # last-token pooling needs it
    model = model.to(device)
    if spec.adapter is not None:
        check_trained_base(spec)
        model = attach_adapter(model, spec.adapter, spec.base, merge=not trainable)
    return (model if trainable else model.eval()), tokenizer, device


def _classifier(source: str, dtype: Any) -> tuple[Any, Any]:
    """transformers' sequence-classification model of ``source`` with :data:`LABELS` as labels."""
    apply_transformers_bars()  # the CLI's -v choice, before anything draws a bar
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    local = Path(source).is_dir()
    common = {"trust_remote_code": False, "local_files_only": local}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized": expected, the head is new
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
            label2id={label: i for i, label in enumerate(LABELS)}, dtype=dtype,
            use_safetensors=True, **common)
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        raise LlmbtError(f"--model {source!r}: loading it as a classifier failed ({exc}).") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer

