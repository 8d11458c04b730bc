"""What makes a fine-tuning step cheaper without changing what it learns (``bt finetune``):

* **precision**: ``bf16`` runs the forward pass under ``torch.autocast`` in bfloat16 (oneDNN
  AVX-512-BF16 / AMX matmuls on a CPU that has them); the LoRA weights, their gradients and
  the AdamW state stay float32 (autocast never casts parameters). ``auto`` is ``bf16`` on a CPU
  with native bf16 (``avx512_bf16`` or ``amx_bf16``, never emulated) without a 4-bit base, else
  ``fp32``. Measured on the idle 2-core AMX machine of the README (SmolLM2, top 12 layers, 12
  steps of 8 PhraseBank prompts): 1.27x the tokens/s of float32 with length grouping, 1.89x
  with the shared prefix as well; on PhraseBank a whole 600-step run reached the float32
  run's validation loss (0.153 vs 0.150). (On a loaded machine its two threads lose more than
  float32's: it was measured slower there.)
* **length grouping**: each epoch is shuffled (seeded), cut into chunks of
  :data:`GROUP_BATCHES` batches, each chunk sorted by length and cut into batches, and the
  batch order shuffled again: batches hold examples of similar length (less padding, as
  Hugging Face's ``group_by_length``) and every example is seen once per epoch.
* **shared prefix**: the rows of a batch that start with the same tokens (every prompt of a
  template starts with its system text: 154 of the 194 tokens of a PhraseBank prompt) run
  that prefix once, its keys/values repeated for each row, and only their own tails each
  (:func:`~llmbt.signals_cache.finetune.encoding.collate` with ``share_prefix``). The same
  attention over the same keys and values: only rounding differs (and LoRA dropout draws one
  mask for the shared prefix of a batch). On by default: 2.6x fewer token positions, 1.5x the
  tokens/s of bf16 alone on idle cores (on a loaded machine it was measured slower).

Padding goes to the longest row of each batch, never to ``--max-length``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from llmbt.signals_cache.model.precision import cpu_flags

#: Values of ``--precision``.
PRECISIONS = ("auto", "fp32", "bf16")
#: Other spellings read as one of :data:`PRECISIONS` (scoring's ``--precision`` says float32).
PRECISION_ALIASES = {"float32": "fp32"}
#: Batches per length-sorted chunk of an epoch (more: less padding, less randomness).
GROUP_BATCHES = 16
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: Whether ``--precision auto`` picks bf16 on a CPU with native bf16 (measured faster on idle cores).
AUTO_BF16 = True


def resolve_precision(precision: str, device: str, method: str) -> str:
    """``fp32`` or ``bf16``: what ``precision`` means for ``method`` on ``device`` (``cpu``,
    ``cuda``…); ``auto`` is ``bf16`` only with :data:`AUTO_BF16`, on a CPU with native bf16 and
    without a 4-bit base."""
    if precision != "auto":
        return precision
    native = AUTO_BF16 and device == "cpu" and bool(cpu_flags() & _BF16_FLAGS)
    return "bf16" if native and method != "qlora" else "fp32"


def autocast(precision: str, device: str) -> Any:
    """A context running the forward pass in ``precision`` (resolved) on ``device``."""
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)


def epoch_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                  group: bool) -> list[list[int]]:
    """One epoch of row indices in batches of ``batch_size`` (the last may be short): shuffled,
    or with ``group`` of similar lengths in a shuffled order. Every row appears exactly once."""
    order = rng.permutation(len(lengths))
    if not group:
        return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    lengths = np.asarray(lengths)
    chunk = batch_size * GROUP_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i : i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def batch_stream(lengths: Sequence[int], batch_size: int, seed: int,
                 group: bool) -> Iterator[list[int]]:
    """:func:`epoch_batches` epoch after epoch, without end (the step count stops it)."""
    rng = np.random.default_rng(seed)
    while True:
        yield from epoch_batches(lengths, batch_size, rng, group)


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the padded positions of ``batches`` (rows padded to their batch's longest) that
    are padding."""
    real = padded = 0
    for rows in batches:
        sizes = [lengths[i] for i in rows]
        real, padded = real + sum(sizes), padded + max(sizes) * len(sizes)
    return 1.0 - real / max(padded, 1)
