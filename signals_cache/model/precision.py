"""Scoring precision: the arithmetic a loaded model runs in on the CPU, chosen by ``--precision``.

Every precision keeps the scorer's exact algorithm (shared-prefix KV reuse, all label tokens read
under the tree attention mask); only the arithmetic of the weights changes:

* ``float32``: float32 weights, today's path and the reference every other precision is measured
  against (``bt bench scoring``).
* ``bf16``: decoder weights and activations in bfloat16 (oneDNN AVX-512 BF16 / AMX kernels); the
  output head stays float32, so the label log-probabilities are taken from float32 logits of the
  bf16 hidden state.

No int8 precision: torch's int8 dynamic quantization (``torch.ao``, fbgemm, per-tensor activation
scales; deprecated in torch) was measured on SmolLM2-135M with 96-256 real prompts on one core
and every split tried lost to ``bf16`` on speed and exactness: MLP projections int8 (rest
bf16) 2.0x float32 on bars but mean |Δscore| 0.16-0.31 and 16 % label agreement on headlines;
gate/up only 1.8x, mean |Δscore| 0.10; attention only 1.25x, 0.15 (bf16: 2.2-2.6x, 0.01-0.02).

A LoRA adapter is merged into the float32 weights by :func:`~.loading.load_model` before the
precision casts them, so an adapter works with every precision. The resolved precision is part of
the model fingerprint (:func:`~.loading.model_fingerprint`): cached scores of different precisions
never mix.

``auto`` (:func:`resolve_precision`) is the fastest precision that runs on the hardware and is
exact enough **for backtests**: listed in :data:`BACKTEST_EXACT` because ``bt bench
precision-backtest`` gave at least 95 % identical entries and exits and a Sharpe gap of at most
0.05 against float32. ``bf16`` is 2.2x the float32 items/s on bar prompts and 2.6x on headlines
(SmolLM2-135M, one core) with 100 % label agreement and mean |Δscore| 0.011 / 0.018, yet it fails
that bar: on the README's GOOG ``llm_sentiment`` run 39 % identical entries/exits and a Sharpe gap
of 0.17, on its 30-stock ``llm_news_portfolio`` run 67 % and 0.17 (the z-score and the top-k rank
turn small score changes into other trades). So ``auto`` is ``float32`` today; ``--precision bf16``
is there for users who accept that (on a CPU with ``avx512_bf16`` or ``amx_bf16``; emulated bf16 is
slower than float32).

The flag was called ``--engine`` (values ``torch``, ``torch-bf16``) before; :data:`ENGINE_NAMES`
keeps those names, which the cache keys and run ids still hash.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Any

from llmbt.errors import ConfigError, did_you_mean

log = logging.getLogger(__name__)

#: Values of ``--precision``; ``auto`` resolves to one of the others.
PRECISIONS = ("auto", "float32", "bf16")
#: The reference precision, whose fingerprint is the one from before precisions existed.
REFERENCE = "float32"
#: Each precision's name under the old ``--engine`` flag (= ``llmbt.engine.config.ENGINE_NAMES``).
ENGINE_NAMES = {"auto": "auto", "float32": "torch", "bf16": "torch-bf16"}
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: Faster precisions that passed ``bt bench precision-backtest`` on the README runs (see the
#: module docstring), fastest first; ``auto`` takes the first one the CPU supports.
BACKTEST_EXACT: tuple[str, ...] = ()


def check_precision(value: str) -> None:
    """Refuse a value that is no ``--precision`` (an old ``--engine`` name says its new one).

    Raises:
        ConfigError: naming the value and the fix.
    """
    if value in PRECISIONS:
        return
    old = {name: precision for precision, name in ENGINE_NAMES.items()}
    fix = f" It is the old --engine name of {old[value]}." if value in old else ""
    raise ConfigError(f"--precision {value!r} is not valid.{fix or did_you_mean(str(value), PRECISIONS)} "
                      f"Choose from {', '.join(PRECISIONS)}.")


def from_engine(value: str) -> str:
    """The precision an old ``--engine`` value names (``torch`` is ``float32``, ``torch-bf16`` is
    ``bf16``; a precision's own name passes as is).

    Raises:
        ConfigError: naming the value and the ``--precision`` values to use instead.
    """
    old = {name: precision for precision, name in ENGINE_NAMES.items()}
    if value in old or value in PRECISIONS:
        return old.get(value, value)
    raise ConfigError(f"--engine {value!r} is not valid.{did_you_mean(str(value), old)} --engine "
                      f"is the old name of --precision: use --precision {', '.join(PRECISIONS)}.")


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


def resolve_precision(precision: str, device: str, quantization: str = "none") -> str:
    """The concrete precision ``precision`` means for a model on ``device`` (resolved, cpu or cuda).

    Raises:
        ConfigError: a CPU precision asked for with a GPU or with bitsandbytes quantization.
    """
    if precision == "auto":
        if device != "cpu" or quantization != "none":
            return REFERENCE
        usable = [p for p in BACKTEST_EXACT if p != "bf16" or cpu_flags() & set(_BF16_FLAGS)]
        return usable[0] if usable else REFERENCE
    if precision != REFERENCE and (device != "cpu" or quantization != "none"):
        raise ConfigError(f"--precision {precision} runs on the CPU without --quantization (here: "
                          f"device {device}, quantization {quantization}); use --precision "
                          "float32 or auto.")
    return precision


def precision_dtype(precision: str, dtype: str) -> str:
    """The dtype recorded for a model run in ``precision`` (``dtype`` for the reference)."""
    return dtype if precision == REFERENCE else "bfloat16"


def apply_precision(model: Any, precision: str) -> Any:
    """``model`` (float32, adapter already merged) converted in place for ``precision``: bf16
    with an untied float32 output head for ``bf16``."""
    import torch

    if precision == REFERENCE:
        return model
    head = _float32_head(model)
    model.to(torch.bfloat16)
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


def _module_classes() -> type:
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

    return Float32Head


@lru_cache(maxsize=1)
def _head_class() -> type:
    return _module_classes()


def _Float32Head(linear: Any) -> Any:  # noqa: N802
    return _head_class()(linear)

