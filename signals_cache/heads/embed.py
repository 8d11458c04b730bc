"""Sentence features from a causal LM's hidden states: the output of decoder layer ``L``
(1-based; the last layer's output is taken before the final norm), pooled over the tokens
(``mean`` of the non-padding tokens, or the ``last`` one).

The forward pass stops after the deepest layer asked for (a forward hook raises
:class:`_Enough`, caught right here), so a middle layer costs about half a full pass. Texts are
tokenized alone (no prompt template), sorted by length and batched, so padding is small; with
``autocast`` the decoder runs under bfloat16 autocast (fast on CPUs with AVX-512 BF16/AMX), and
the pooled features are float32 either way. torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from llmbt.errors import ConfigError, LlmbtError

#: How token states become one vector per text.
POOLINGS = ("mean", "last")
#: Longest token sequence kept (a longer text loses its end).
DEFAULT_MAX_LENGTH = 128


class _Enough(Exception):
    """Raised by the hook on the deepest wanted layer: the rest of the pass is not needed."""


def decoder_layers(model: Any) -> Any:
    """The decoder's list of transformer layers (``model.model.layers`` for Llama-like models).

    Raises:
        LlmbtError: the model has no such list.
    """
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise LlmbtError(f"{type(model).__name__} has no decoder layer list (model.layers); the "
                         "embedding head supports decoder-only models such as Llama or SmolLM2.")
    return layers


def resolve_layer(layer: int, n_layers: int) -> int:
    """``layer`` as 1..n_layers (negative counts from the end: -1 is the last layer).

    Raises:
        ConfigError: ``layer`` is 0 or out of range.
    """
    resolved = n_layers + 1 + layer if isinstance(layer, int) and layer < 0 else layer
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= resolved <= n_layers:
        raise ConfigError(f"--layer {layer!r} is out of range: the model has {n_layers} layers; "
                          f"pass 1..{n_layers} or -1 for the last.")
    return resolved


def check_pooling(pooling: str) -> str:
    """``pooling`` if it is one of :data:`POOLINGS`, else ConfigError naming them."""
    if pooling not in POOLINGS:
        raise ConfigError(f"--pooling {pooling!r} is not valid; choose from {', '.join(POOLINGS)}.")
    return pooling


def pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """(batch, hidden) float32 of (batch, tokens, hidden) states under a 0/1 attention mask."""
    import torch

    hidden, mask = hidden.float(), mask.to(hidden.device)
    if pooling == "mean":
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (mask * positions).argmax(dim=1)  # the last real token, left or right padding
    return hidden[torch.arange(hidden.shape[0]), last]


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped ``batch_size`` at a time in order of length (little padding per batch)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def extract_features(
    model: Any, tokenizer: Any, texts: Sequence[str], layers: Iterable[int], *,
    poolings: Iterable[str] = POOLINGS, batch_size: int = 32,
    max_length: int = DEFAULT_MAX_LENGTH, autocast: bool = False,
) -> dict[tuple[int, str], np.ndarray]:
    """Pooled features of ``texts`` for each (layer, pooling): float32 arrays (n, hidden), rows
    in the order of ``texts``. One forward pass per batch serves every layer and pooling.

    Raises:
        ConfigError: a layer is out of range or a pooling unknown.
        LlmbtError: there are no texts.
    """
    import torch

    if not texts:
        raise LlmbtError("no texts to embed.")
    blocks = decoder_layers(model)
    wanted = sorted({resolve_layer(int(x), len(blocks)) for x in layers})
    poolings = [check_pooling(p) for p in poolings]
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True,
                                             max_length=max_length)["input_ids"]]
    parts: dict[tuple[int, str], list[np.ndarray]] = {(lay, p): [] for lay in wanted
                                                      for p in poolings}
    order: list[int] = []
    with torch.no_grad(), torch.autocast(_device_type(model), dtype=torch.bfloat16,
                                         enabled=autocast):
        for rows in length_batches(lengths, batch_size):
            states, mask = _forward(model, tokenizer, [texts[i] for i in rows], blocks, wanted,
                                    max_length)
            for (lay, how), chunks in parts.items():
                chunks.append(pool(states[lay], mask, how).cpu().numpy().astype(np.float32))
            order += rows
    inverse = np.argsort(np.asarray(order))
    return {key: np.concatenate(chunks)[inverse] for key, chunks in parts.items()}


def _device_type(model: Any) -> str:
    return next(model.parameters()).device.type


def _forward(model: Any, tokenizer: Any, texts: list[str], blocks: Any, wanted: list[int],
             max_length: int) -> tuple[dict[int, Any], Any]:
    """Hidden states after each wanted layer (stopping after the deepest) and the mask."""
    enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                    max_length=max_length)
    device = next(model.parameters()).device
    states: dict[int, Any] = {}

    def keep(layer: int):
        def hook(_module: Any, _args: Any, output: Any) -> None:
            states[layer] = output[0] if isinstance(output, tuple) else output
            if layer == wanted[-1]:
                raise _Enough
        return hook

    handles = [blocks[lay - 1].register_forward_hook(keep(lay)) for lay in wanted]
    try:
        model(input_ids=enc["input_ids"].to(device),
              attention_mask=enc["attention_mask"].to(device), use_cache=False)
    except _Enough:
        pass  # the deepest wanted layer is done: the rest of the model is not needed
    finally:
        for handle in handles:
            handle.remove()
    return states, enc["attention_mask"]
