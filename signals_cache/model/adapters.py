"""peft (LoRA) adapters on a loaded base model: the adapter folder's files, its content digest
(part of the model fingerprint), the base it says it was trained on, and applying it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.model.hashing import files_digest

#: llmbt's own record beside an adapter (written by fine-tuning): base fingerprint, metrics…
META_FILE = "llmbt_adapter.json"
#: peft's task type of a sequence-classification adapter (``bt finetune --method seqcls``).
SEQ_CLS_TASK = "SEQ_CLS"


def adapter_files(adapter: str) -> tuple[Path, Path]:
    """(adapter_config.json, adapter_model.safetensors) of an adapter folder.

    Raises:
        ConfigError: the folder or one of the two files is missing.
    """
    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"--adapter {adapter!r}: folder not found; pass a peft adapter folder.")
    config, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not config.is_file():
        raise ConfigError(f"--adapter {adapter!r} has no adapter_config.json; pass a peft folder.")
    if not weights.is_file():
        raise ConfigError(f"--adapter {adapter!r} has no adapter_model.safetensors; re-save it.")
    return config, weights


def adapter_digest(adapter: str) -> str:
    """Content digest of the adapter's config and weights."""
    config, weights = adapter_files(adapter)
    return files_digest({"adapter_config.json": config, "adapter_weights": weights})


def is_seqcls_adapter(adapter: str) -> bool:
    """Whether the adapter folder holds a sequence classifier (peft task type SEQ_CLS)."""
    config, _ = adapter_files(adapter)
    return json.loads(config.read_text()).get("task_type") == SEQ_CLS_TASK


def trained_base(adapter: str) -> tuple[str | None, str | None]:
    """(base model named in adapter_config.json, base fingerprint in :data:`META_FILE`, if any)."""
    config, _ = adapter_files(adapter)
    named = json.loads(config.read_text()).get("base_model_name_or_path")
    meta = Path(adapter).expanduser() / META_FILE
    wanted = json.loads(meta.read_text()).get("base_fingerprint") if meta.is_file() else None
    return named, wanted


def attach_adapter(model: Any, adapter: str, base: str, *, merge: bool) -> Any:
    """``model`` wrapped with the peft adapter (merged into the weights when ``merge`` and the
    adapter kind allows it).

    Raises:
        LlmbtError: the adapter does not fit ``model`` (made for another base model ``base``).
    """
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors import safe_open

    _, weights = adapter_files(adapter)
    classifier = type(model).__name__.endswith("ForSequenceClassification")
    if is_seqcls_adapter(adapter) != classifier:
        raise LlmbtError(f"--adapter {adapter!r} is a " + (
            "label-token adapter; score it as kind=lm (the default)" if classifier else
            "classification-head (seqcls) adapter; score it with --arm name=NAME,kind=seqcls,"
            f"adapter={adapter}") + ".")
    mismatch = (f"--adapter {adapter!r} does not fit --model {base!r} (the adapter was trained "
                f"on {trained_base(adapter)[0]!r}); pass the base model it was trained on")
    try:
        peft_model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise LlmbtError(f"{mismatch} ({str(exc).strip().splitlines()[0]}).") from exc
    with safe_open(str(weights), framework="pt") as fh:
        saved = set(fh.keys())
    expected = set(get_peft_model_state_dict(peft_model).keys())
    if saved != expected:  # peft only warns about unexpected or missing adapter keys
        raise LlmbtError(f"{mismatch} (tensors differ, e.g. {sorted(saved ^ expected)[:2]}).")
    mergeable = not getattr(peft_model, "active_peft_config", None) or \
        not peft_model.active_peft_config.is_prompt_learning  # prefix tuning cannot be merged
    return peft_model.merge_and_unload() if merge and mergeable else peft_model
