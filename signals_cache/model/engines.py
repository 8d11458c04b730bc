"""Scoring engines: the precision a loaded model runs in on the CPU, chosen by ``--engine``.

Every engine keeps the scorer's exact algorithm (shared-prefix KV reuse, all label tokens read
under the tree attention mask); only the arithmetic of the weights changes:

* ``torch``: float32 weights, today's path and the reference every other engine is measured
  against (``bt bench scoring``).
* ``torch-bf16``: decoder weights and activations in bfloat16 (oneDNN AVX-512 BF16 / AMX
  kernels); the output head stays float32, so the label log-probabilities are taken from
  float32 logits of the bf16 hidden state.
* ``torch-int8``: as ``torch-bf16``, with the MLP projections (about 2/3 of the weights) as
  int8 dynamic-quantized linears (fbgemm/x86, per-tensor activations); attention and the head
  keep bf16/float32, where int8 moves the label decisions most.

A LoRA adapter is merged into the float32 weights by :func:`~.loading.load_model` before the
engine casts or quantizes them, so an adapter works with every engine. The resolved engine is
part of the model fingerprint (:func:`~.loading.model_fingerprint`): cached scores of different
engines never mix.

``auto`` (:func:`resolve_engine`): on a GPU, or with bitsandbytes quantization, ``torch`` (the
dtype decides there); on a CPU whose flags include ``avx512_bf16`` or ``amx_bf16`` (bf16 matmuls
in hardware, about 2x float32) ``torch-bf16``, measured at >= 95 % label agreement with
float32; else ``torch`` (bf16 emulated in software is slower than float32). ``torch-int8`` is
never picked by ``auto``: it is faster still but moves more decisions (see the README table).
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Any

from llmbt.errors import ConfigError

log = logging.getLogger(__name__)

#: Values of ``--engine``; ``auto`` resolves to one of the others.
ENGINES = ("auto", "torch", "torch-bf16", "torch-int8")
#: The reference engine: float32 torch, whose fingerprint is the one from before engines existed.
REFERENCE = "torch"
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_INT8_MODULES = ("gate_proj", "up_proj", "down_proj")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except FileNotFoundError:
        return frozenset()
    return frozenset()


def resolve_engine(engine: str, device: str, quantization: str = "none") -> str:
    """The concrete engine ``engine`` means for a model on ``device`` (resolved, cpu or cuda).

    Raises:
        ConfigError: a CPU engine asked for with a GPU or with bitsandbytes quantization.
    """
    if engine == "auto":
        if device != "cpu" or quantization != "none":
            return REFERENCE
        return "torch-bf16" if cpu_flags() & set(_BF16_FLAGS) else REFERENCE
    if engine != REFERENCE and (device != "cpu" or quantization != "none"):
        raise ConfigError(f"--engine {engine} runs on the CPU without --quantization; use "
                          "--engine torch (or auto) with --device cuda or --quantization.")
    return engine


def engine_dtype(engine: str, dtype: str) -> str:
    """The dtype recorded for a model run by ``engine`` (``dtype`` for the reference)."""
    return dtype if engine == REFERENCE else "bfloat16"


def apply_engine(model: Any, engine: str) -> Any:
    """``model`` (float32, adapter already merged) converted in place for ``engine``."""
    import torch

    if engine == REFERENCE:
        return model
    head = _float32_head(model)
    if engine == "torch-int8":  # from the float32 weights, before the cast
        _quantize_mlp(model)
    model.to(torch.bfloat16)  # the int8 layers keep no float weights to cast
    model.config.tie_word_embeddings = False
    model.set_output_embeddings(head)
    return model


def use_all_cores() -> int:
    """Give torch one intra-op thread per core this process may run on and one inter-op thread
    (no oversubscription), once per process. Returns the intra-op thread count."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    if not _THREADS["set"]:
        _THREADS["set"] = True
        torch.set_num_threads(cores)
        if torch.get_num_interop_threads() != 1:
            try:  # torch refuses once inter-op work has started; the default then stays
                torch.set_num_interop_threads(1)
            except RuntimeError as exc:
                log.debug("inter-op threads left at %d: %s", torch.get_num_interop_threads(), exc)
    return cores


_THREADS = {"set": False}


def _float32_head(model: Any) -> Any:
    """An untied float32 copy of the model's output head, taking a bf16 hidden state."""
    import torch

    head = model.get_output_embeddings()
    fp32 = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None)
    with torch.no_grad():
        fp32.weight.copy_(head.weight.float())
        if head.bias is not None:
            fp32.bias.copy_(head.bias.float())
    return _Float32Head(fp32.requires_grad_(False))


def _quantize_mlp(model: Any) -> None:
    """Replace the MLP projections by int8 dynamic-quantized linears."""
    import torch

    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if child_name in _INT8_MODULES and type(child) is torch.nn.Linear:
                setattr(module, child_name, _Int8Linear(child))


def _module_classes() -> tuple[type, type]:
    import torch

    class Float32Head(torch.nn.Module):
        """An output head computing float32 logits from a lower-precision hidden state."""

        def __init__(self, linear: Any) -> None:
            super().__init__()
            self.linear = linear
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.weight = linear.weight

        def forward(self, hidden: Any) -> Any:
            return self.linear(hidden.float())

    class Int8Linear(torch.nn.Module):
        """An int8 dynamic-quantized copy of a linear layer, in and out in the input's dtype."""

        def __init__(self, linear: Any) -> None:
            super().__init__()
            from torch.ao.quantization import quantize_dynamic

            holder = torch.nn.Sequential(linear.float())
            self.qlinear = quantize_dynamic(holder, {torch.nn.Linear}, dtype=torch.qint8)[0]
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x: Any) -> Any:
            return self.qlinear(x.float()).to(x.dtype)

    return Float32Head, Int8Linear


@lru_cache(maxsize=1)
def _classes() -> tuple[type, type]:
    return _module_classes()


def _Float32Head(linear: Any) -> Any:  # noqa: N802
    return _classes()[0](linear)


def _Int8Linear(linear: Any) -> Any:  # noqa: N802
    return _classes()[1](linear)

