"""Fast reuse of a shared prompt prefix's KV cache on CPU (used by :mod:`llmbt.signals_cache.scoring.scorer`),
and the plain, differentiable prefix reuse of training and of the classifier arm
(:func:`prefix_cache_kwargs`).

Two costs dominate a batched forward pass that continues a shared prefix, besides the matmuls:

* grouped-query attention: transformers' SDPA path repeats every key/value head to the number of
  query heads whenever a mask is given (a full copy of the prefix KV per layer and batch).
  :func:`use_gqa_attention` switches the model to an SDPA variant that passes
  ``enable_gqa=True`` to PyTorch instead, which reads the shared heads in place;
* growing the cache by concatenation: a :class:`~transformers.DynamicCache` built from the
  prefix copies batch × prefix KV for every layer and batch. :class:`PrefixBuffers` keeps one
  preallocated (batch, heads, prefix + width, dim) buffer per layer, with the prefix copied in
  once; each batch only writes its own suffix keys/values into the tail.

Both are exact: the same attention over the same keys and values, computed without copies.
"""

from __future__ import annotations

from typing import Any

#: Name under which the GQA-aware SDPA attention is registered with transformers.
GQA_SDPA = "llmbt_gqa_sdpa"


def _gqa_sdpa_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                      dropout: float = 0.0, scaling: float | None = None,
                      is_causal: bool | None = None, **_: Any) -> tuple[Any, None]:
    """transformers' SDPA attention, with GQA done by PyTorch instead of ``repeat_kv``."""
    import torch

    causal = query.shape[2] > 1 and attention_mask is None and bool(
        is_causal if is_causal is not None else getattr(module, "is_causal", True))
    groups = getattr(module, "num_key_value_groups", 1)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=causal, enable_gqa=groups > 1,
    )
    return out.transpose(1, 2).contiguous(), None


def cache_keyword(model: Any) -> str:
    """The keyword under which ``model``'s forward takes a KV cache, read once from its signature:
    ``cache`` where transformers has renamed it (``past_key_values`` is deprecated there and goes
    away in 5.40), else ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def supports_logits_to_keep(model: Any) -> bool:
    """Whether ``model``'s forward takes ``logits_to_keep`` (compute only the last positions' logits)."""
    import inspect

    return "logits_to_keep" in inspect.signature(inner_model(model).forward).parameters


def use_gqa_attention(model: Any) -> bool:
    """Switch a grouped-query model on plain SDPA to :data:`GQA_SDPA`; True when switched.

    Models with as many KV heads as query heads, or on another attention kernel, are left alone.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    config = model.config
    heads, kv_heads = (getattr(config, "num_attention_heads", 0),
                       getattr(config, "num_key_value_heads", None))
    if getattr(config, "_attn_implementation", None) != "sdpa" or not kv_heads or kv_heads == heads:
        return False
    AttentionInterface.register(GQA_SDPA, _gqa_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(GQA_SDPA, sdpa_mask)
    model.set_attn_implementation(GQA_SDPA)
    return True


class PrefixBuffers:
    """Per-layer KV buffers holding the prefix once, reused by every batch of a scoring call.

    Args:
        prefix_kv: per-layer ``(keys, values)`` of the prefix at batch size 1.
    """

    def __init__(self, prefix_kv: list[tuple[Any, Any]]) -> None:
        self.prefix_kv = prefix_kv
        self.prefix_len = int(prefix_kv[0][0].shape[2]) if prefix_kv else 0
        self._buffers: list[tuple[Any, Any]] = []
        self._shape = (0, 0)

    def cache(self, batch: int, width: int, config: Any) -> Any:
        """A cache for ``batch`` suffixes of ``width`` tokens continuing the prefix."""
        from transformers import Cache

        if batch > self._shape[0] or width > self._shape[1]:
            self._allocate(max(batch, self._shape[0]), max(width, self._shape[1]))
        layers = [_PrefixLayer(k[:batch], v[:batch], self.prefix_len) for k, v in self._buffers]
        return Cache(layers=layers)

    def _allocate(self, batch: int, width: int) -> None:
        self._buffers = []
        for keys, values in self.prefix_kv:
            pairs = []
            for src in (keys, values):
                heads, dim = src.shape[1], src.shape[3]
                buf = src.new_empty((batch, heads, self.prefix_len + width, dim))
                buf[:, :, : self.prefix_len] = src
                pairs.append(buf)
            self._buffers.append((pairs[0], pairs[1]))
        self._shape = (batch, width)


def _prefix_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class PrefixLayer(DynamicLayer):
        """A layer whose prefix is already in ``buffer``; ``update`` writes the suffix after it."""

        def __init__(self, key_buf: Any, value_buf: Any, prefix_len: int) -> None:
            super().__init__()
            self._key_buf, self._value_buf, self._prefix_len = key_buf, value_buf, prefix_len
            self.keys, self.values = key_buf[:, :, :prefix_len], value_buf[:, :, :prefix_len]
            self.dtype, self.device, self.is_initialized = key_buf.dtype, key_buf.device, True

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
            end = self._prefix_len + key_states.shape[2]
            self._key_buf[:, :, self._prefix_len : end] = key_states
            self._value_buf[:, :, self._prefix_len : end] = value_states
            self.keys, self.values = self._key_buf[:, :, :end], self._value_buf[:, :, :end]
            return self.keys, self.values

    return PrefixLayer


def _PrefixLayer(key_buf: Any, value_buf: Any, prefix_len: int) -> Any:  # noqa: N802
    global _LAYER_CLASS
    if _LAYER_CLASS is None:
        _LAYER_CLASS = _prefix_layer_class()
    return _LAYER_CLASS(key_buf, value_buf, prefix_len)


_LAYER_CLASS: type | None = None


def prefix_cache_kwargs(model: Any, prefix: Any, rows: int) -> dict[str, Any]:
    """The keyword arguments that continue ``prefix`` (1, P) for ``rows`` rows: its KV cache,
    computed once and repeated per row (differentiable: gradients reach the prefix's pass).
    Works for causal LMs and sequence classifiers alike (peft-wrapped or not)."""
    from transformers import DynamicCache

    inner = inner_model(model)
    cache, keyword = DynamicCache(config=inner.config), cache_keyword(inner)
    keep = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}
    model(input_ids=prefix, use_cache=True, **{keyword: cache}, **keep)
    cache.batch_repeat_interleave(rows)
    return {"use_cache": True, keyword: cache}


class PrefixMemo:
    """:func:`prefix_cache_kwargs` for scoring, with the prefix's pass run once for every batch
    that shares it (scoring batches of one template all start with its system text).

    A forward pass appends the batch's keys and values to the cache it is given, so each batch
    gets a copy of the prefix's cache, repeated to its rows.
    """

    def __init__(self, model: Any, device: Any) -> None:
        self.model, self.device = model, device
        self.keyword = cache_keyword(inner_model(model))
        self._key: tuple[int, ...] | None = None
        self._cache: Any = None

    def kwargs(self, prefix: Any, rows: int) -> dict[str, Any]:
        """The keyword arguments that continue ``prefix`` (1, P) for ``rows`` rows."""
        import copy

        key = tuple(prefix.flatten().tolist())
        if key != self._key:
            self._key = key
            self._cache = prefix_cache_kwargs(self.model, prefix.to(self.device), 1)
        out = copy.deepcopy(self._cache)
        out[self.keyword].batch_repeat_interleave(rows)
        return out


def inner_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (``model`` itself when there is none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
