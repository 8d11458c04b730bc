"""Loading the signal model (a causal LM, optionally LoRA-adapted) and its fingerprint: model
aliases, the spec, the GGUF store and the load itself. Adapters, quantization/device and file
hashing live beside it (:mod:`.adapters`, :mod:`.quantization`, :mod:`.hashing`).

GGUF models are dequantized once into a float32 safetensors folder under
``llmbt_home()/models/`` (float32 keeps the dequantized weights exact) that later loads read in
about a second. torch, transformers and peft are imported lazily.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmbt.errors import ConfigError, LlmbtError, did_you_mean, require
from llmbt.paths import llmbt_home
from llmbt.signals_cache.model.adapters import adapter_digest, adapter_files, attach_adapter, trained_base
from llmbt.signals_cache.model.aliases import MODEL_ALIASES
from llmbt.signals_cache.model.chat_template import (
    ChatTemplate,
    ensure_template,
    prompt_format,
    read_chat_template,
    save_chat_template,
)
from llmbt.signals_cache.model.hashing import atomic_write_text, file_sha256, files_digest
from llmbt.signals_cache.model.hub import HUB_FIX, hub_commit, hub_snapshot
from llmbt.signals_cache.model.precision import (
    ENGINE_NAMES,
    REFERENCE,
    apply_precision,
    check_precision,
    precision_dtype,
    resolve_precision,
    use_all_cores,
)
from llmbt.signals_cache.model.quantization import bnb_config, resolve_device_dtype
from llmbt.signals_cache.progress import apply_transformers_bars
from llmbt.signals_cache.scoring.temperature import check_calibrate, stored_temperature

Quantization = Literal["none", "8bit", "4bit"]
QUANTIZATIONS = ("none", "8bit", "4bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_STORE_MARKER = "llmbt_store.json"
_BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
log = logging.getLogger(__name__)


def _choice(flag: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = did_you_mean(str(value), choices)
        raise ConfigError(f"{flag} {value!r} is not valid.{hint} Choose from {', '.join(choices)}.")


@dataclass(frozen=True)
class ModelSpec:
    """What to load: --model, --adapter, --quantization, --device, --precision (:mod:`.precision`), the
    torch ``dtype``; ``calibrate`` (False: ``--no-calibration``) applies the temperature stored
    beside the adapter (:func:`spec_temperature`) to the cached scores."""

    base: str = "smollm2-135m"
    adapter: str | None = None
    quantization: Quantization = "none"
    dtype: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    calibrate: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.base, str) or not self.base.strip():
            raise ConfigError(f"--model {self.base!r} is empty; pass e.g. smollm2-135m.")
        _classify(self.base)
        if self.adapter is not None:
            adapter_files(self.adapter)
        _choice("--quantization", self.quantization, QUANTIZATIONS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("--device", self.device, DEVICES)
        check_precision(self.precision)
        check_calibrate(self.calibrate)


@dataclass
class LoadedModel:
    """Model (eval mode), left-padding tokenizer, model-only fingerprint and source folder."""

    model: Any
    tokenizer: Any
    fingerprint: str
    spec: ModelSpec
    device: str
    dtype: str = "float32"
    source: str = ""
    precision: str = REFERENCE

    def fingerprint_for(self, template_version: str) -> str:
        """:func:`model_fingerprint` of this spec with ``template_version``."""
        return model_fingerprint(self.spec, template_version)


def _classify(base: str) -> str:
    """``"alias"``, ``"gguf"``, ``"folder"`` or ``"hub"``; ConfigError for anything else."""
    if base in MODEL_ALIASES:
        return "alias"
    path = Path(base).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        if path.suffix == ".gguf":
            return "gguf"
        raise ConfigError(f"--model {base!r} is a file but not a .gguf; pass its folder.")
    if base.endswith(".gguf") or base.startswith(("/", ".", "~")):
        raise ConfigError(f"--model {base!r} does not exist; check the path.")
    if _HUB_ID.match(base):  # owner/name; paths starting with / . ~ never match
        return "hub"
    if "/" in base or os.sep in base:
        raise ConfigError(f"--model {base!r} does not exist; check the path.")
    raise ConfigError(
        f"unknown model alias {base!r}.{did_you_mean(base, MODEL_ALIASES)} Aliases: "
        f"{', '.join(sorted(MODEL_ALIASES))}; or pass a folder, a .gguf file or a hub id."
    )


def _folder_files(folder: Path) -> dict[str, Path]:
    """Weights, config and tokenizer files of a model folder (what its outputs depend on)."""
    files = {p.name: p for p in folder.glob("*.safetensors") if p.is_file()}
    if not files:
        raise ConfigError(f"--model {str(folder)!r} has no .safetensors weights in it.")
    files.update({n: folder / n for n in _BASE_FILES if (folder / n).is_file()})
    return files


def check_base(spec: ModelSpec) -> None:
    """Refuse a local base that cannot load: a folder without a config.json or safetensors weights
    (an alias, a .gguf file or a hub id is checked when it loads).

    Raises:
        ConfigError: naming the folder and what it lacks.
    """
    base, kind = _resolve_alias(spec.base)
    if kind == "folder":
        folder = Path(base).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(f"--model {base!r} has no config.json; pass a saved model folder.")
        _folder_files(folder)


def base_fingerprint(spec: ModelSpec) -> str:
    """16-hex content hash of the base weights only (adapters record it in llmbt_adapter.json):
    of the files' bytes for a .gguf or a folder, of the snapshot's commit for a hub id (downloaded
    first when not cached, :mod:`.hub`), never of a name alone."""
    base, kind = _resolve_alias(spec.base)
    if kind == "gguf":
        digest = files_digest({"model.gguf": Path(base).expanduser()})
    elif kind == "folder":
        digest = files_digest(_folder_files(Path(base).expanduser()))
    else:
        digest = f"hub:{base}@{hub_commit(base)}"
    return hashlib.sha256(digest.encode()).hexdigest()[:16]


def spec_temperature(spec: ModelSpec) -> float | None:
    """The temperature stored beside ``spec``'s adapter (``bt evaluate --calibrate-on``) that its
    cached scores are scaled by; None without an adapter, a stored one, or with ``calibrate`` off."""
    return stored_temperature(spec.adapter, spec.calibrate)


def model_fingerprint(spec: ModelSpec, template_version: str) -> str:
    """Stable 16-hex sha256 of the base weights, the adapter weights and config, quantization,
    the resolved dtype, the resolved precision, ``template_version``, the applied temperature
    (:func:`spec_temperature`) and, for a base without a chat template, the completion template's
    version (:func:`.chat_template.prompt_format`): a change to any changes the cache key. The
    reference precision, no temperature and a chat template add nothing (their keys are those from
    before precisions, temperatures and completion templates)."""
    adapter = adapter_digest(spec.adapter) if spec.adapter is not None else None
    device, dtype = resolve_device_dtype(spec.device, spec.dtype)
    precision = resolve_precision(spec.precision, device, spec.quantization)
    payload = [base_fingerprint(spec), adapter, spec.quantization, dtype]
    payload.append(template_version)
    if precision != REFERENCE:
        # The flag's old name ("engine:torch-bf16"), not "precision:bf16": the key names the
        # numerics, which the rename left alone, so scores cached before it keep their keys.
        payload.append(f"engine:{ENGINE_NAMES[precision]}")
    temperature = spec_temperature(spec)
    if temperature is not None:
        payload.append(f"temperature:{temperature!r}")
    completion = prompt_format(local_source(spec))
    if completion is not None:
        payload.append(f"prompt-format:{completion}")
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _resolve_alias(base: str) -> tuple[str, str]:
    kind = _classify(base)
    if kind != "alias":
        return base, kind
    target = MODEL_ALIASES[base].source()
    if Path(target).expanduser().exists() or _HUB_ID.match(target):
        return target, _classify(target)
    raise LlmbtError(f"model alias {base!r} points to missing {target!r}; reinstall its package.")


def gguf_store(gguf: Path, name: str) -> Path:
    """A float32 safetensors copy of ``gguf`` in ``llmbt_home()/models/name``, made once: written
    to a temporary sibling and renamed into place (a killed conversion leaves no half folder)."""
    store = llmbt_home() / "models" / name
    source_sha = file_sha256(gguf)
    marker = store / _STORE_MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("source_sha256") == source_sha:
        return store
    store.parent.mkdir(parents=True, exist_ok=True)
    tmp = store.with_name(f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    log.info("converting the model %s (%s) once to float32 safetensors in %s (~30 s to 4 min; "
             "later runs load it in about a second) ...", name, gguf.name, store)
    started = time.perf_counter()
    try:
        _convert_gguf(gguf, tmp)
        meta = {"source": str(gguf), "source_sha256": source_sha}
        atomic_write_text(tmp / _STORE_MARKER, json.dumps(meta))
        shutil.rmtree(store, ignore_errors=True)  # a stale store; rename fails if it stays
        os.rename(tmp, store)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("converted the model %s in %.0f s", name, time.perf_counter() - started)
    return store


def _convert_gguf(gguf: Path, out: Path) -> None:
    require("gguf", "gguf", f"--model {str(gguf)!r} (a GGUF file)")
    apply_transformers_bars()  # the CLI's -v choice, before anything draws a bar
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, kwargs = str(gguf.parent), {"gguf_file": gguf.name, "trust_remote_code": False}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise LlmbtError(f"--model {str(gguf)!r}: cannot read this GGUF file ({exc}).") from exc
    model.hf_quantizer = None  # weights are dequantized already; this makes the model saveable
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def local_source(spec: ModelSpec) -> str:
    """A local folder for the base: GGUF converted, hub id's snapshot (:func:`.hub.hub_snapshot`)."""
    base, kind = _resolve_alias(spec.base)
    if kind == "gguf":
        gguf = Path(base).expanduser().resolve()
        name = spec.base if spec.base in MODEL_ALIASES else f"gguf-{file_sha256(gguf)[:16]}"
        return str(gguf_store(gguf, name))
    if kind == "folder":
        return str(Path(base).expanduser())
    return str(hub_snapshot(base))


def _from_pretrained(source: str, **kwargs: Any) -> tuple[Any, Any]:
    apply_transformers_bars()  # the CLI's -v choice, before anything draws a bar
    from transformers import AutoModelForCausalLM, AutoTokenizer
    common = {"trust_remote_code": False, "local_files_only": True}  # local_source's folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        kwargs.update(common, use_safetensors=True)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        raise LlmbtError(f"--model {source!r}: loading failed ({exc}).") from exc
    return model, tokenizer


def prepare_tokenizer(tokenizer: Any, source: str) -> Any:
    """``tokenizer`` left-padding, with a pad token (its eos or unk token when it has none) and a
    chat template (the plain completion template of a base model that has none).

    Raises:
        LlmbtError: the tokenizer of ``source`` has no pad, eos or unk token.
    """
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise LlmbtError(f"--model {source!r}: the tokenizer has no pad, eos or unk token.")
        tokenizer.pad_token = fallback
    return ensure_template(tokenizer)


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load ``spec`` for inference (an adapter is merged into unquantized weights, then the
    precision casts them, :mod:`.precision`).

    Raises:
        LlmbtError: the model or adapter cannot be loaded, the adapter belongs to another base
            model, the hub fails (no such model, refused, offline), or the quantization/device is unsupported.
    """
    import torch
    device, dtype = resolve_device_dtype(spec.device, spec.dtype)
    precision = resolve_precision(spec.precision, device, spec.quantization)
    quant = bnb_config(spec.quantization, device, dtype)
    if device == "cpu":
        use_all_cores()
    source = local_source(spec)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})
    model, tokenizer = _from_pretrained(source, **kwargs)
    model = model if quant is not None else model.to(device)
    if spec.adapter is not None:
        check_trained_base(spec)
        model = attach_adapter(model, spec.adapter, spec.base, merge=quant is None)
    model = apply_precision(model.eval(), precision)  # after the merge: the adapter is cast too
    tokenizer = prepare_tokenizer(tokenizer, source)
    save_chat_template(tokenizer, source)
    fingerprint = model_fingerprint(spec, "")
    return LoadedModel(model, tokenizer, fingerprint, spec, device, precision_dtype(precision, dtype),
                       source, precision)


def check_trained_base(spec: ModelSpec) -> None:
    """Refuse an adapter whose llmbt_adapter.json names another base fingerprint.

    Raises:
        LlmbtError: naming the adapter, the base it was trained on and the ``--model`` to pass.
    """
    named_base, wanted = trained_base(str(spec.adapter))
    if wanted and wanted != base_fingerprint(spec):
        raise LlmbtError(f"--adapter {spec.adapter!r} was trained on another base model "
                         f"({named_base!r}, fingerprint {wanted}); pass that base as --model.")


def load_tokenizer(spec: ModelSpec) -> Any:
    """Only the tokenizer of ``spec`` (enough to render prompts and look up cached scores)."""
    source = local_source(spec)
    apply_transformers_bars()  # the CLI's -v choice, before anything draws a bar
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise LlmbtError(f"--model {source!r}: tokenizer loading failed ({exc}). {HUB_FIX}") from exc
    tok = prepare_tokenizer(tok, source)
    save_chat_template(tok, source)
    return tok


def load_chat_template(spec: ModelSpec) -> ChatTemplate | Any:
    """What renders ``spec``'s prompts: its saved chat template (no torch, no transformers), or,
    the first time (or for a hub id not downloaded yet), the tokenizer, which saves it."""
    saved = read_chat_template(local_source(spec))
    return saved if saved is not None else load_tokenizer(spec)
