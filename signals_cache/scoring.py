"""Label-logit scoring: P(label) from one forward pass, instead of generate-then-parse.

For every prompt (a fully chat-templated string ending with the assistant generation prompt)
:class:`LabelScorer` reads the next-token logits, takes the logsumexp over the first tokens of
each label's spelling variants and softmaxes over the labels. Prompts that share a long prefix
(the system text of a template) get that prefix's KV cache computed once and reused.
:class:`GenerateParser` is the slow generate-then-parse baseline, kept for comparison.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from feeds.base import LlmbtError
from signals_cache.kv import PrefixBuffers, use_gqa_attention
from signals_cache.labels import LABELS
from signals_cache.model import LoadedModel

#: Shortest first-token text (in letters) that counts as the start of a label word.
MIN_PIECE = 3


def label_token_ids(tokenizer: Any, labels: Sequence[str] = LABELS) -> dict[str, tuple[int, ...]]:
    """First token ids of each label's variants (lower/Capital/UPPER, with/without a leading space).

    Fragments shorter than :data:`MIN_PIECE` letters are skipped (SmolLM2 spells ``Bullish`` as
    ``B`` + ``ull`` + ``ish`` and ``Bearish`` as ``B`` + …: a ``B`` says nothing about the label,
    and ``Ne`` also starts "New…"). A first token still shared by two labels is dropped from both.

    Raises:
        LlmbtError: labels are empty or repeated, or a label keeps no token of its own.
    """
    _check_labels(labels)
    firsts = {label: _first_tokens(tokenizer, label) for label in labels}
    owners: dict[int, list[str]] = {}
    for label, ids in firsts.items():
        for token in ids:
            owners.setdefault(token, []).append(label)
    shared = {t: names for t, names in owners.items() if len(names) > 1}
    result = {label: tuple(sorted(ids - shared.keys())) for label, ids in firsts.items()}
    for label, ids in result.items():
        rivals = sorted({n for t in firsts[label] for n in shared.get(t, ()) if n != label})
        if not ids and rivals:
            raise LlmbtError(
                f"labels {label!r} and {rivals[0]!r} start with the same token in every "
                f"spelling, so {label!r} cannot be scored; rename one of them."
            )
        if not ids:
            raise LlmbtError(
                f"label {label!r} has no first token of {MIN_PIECE}+ letters in this tokenizer; "
                "use a more common word."
            )
    return result


def _check_labels(labels: Sequence[str]) -> None:
    if not labels or any(not isinstance(x, str) or not x.strip() for x in labels):
        raise LlmbtError(f"labels {list(labels)!r} must be non-empty words, e.g. {LABELS}.")
    lowered = [x.strip().lower() for x in labels]
    if len(set(lowered)) != len(lowered):
        raise LlmbtError(f"labels {list(labels)!r} repeat a word; give each label once.")


def _first_tokens(tokenizer: Any, label: str) -> set[int]:
    word = label.strip()
    variants = {word.lower(), word.capitalize(), word.upper()}
    ids = set()
    for text in variants | {" " + v for v in variants}:
        tokens = tokenizer.encode(text, add_special_tokens=False)
        if tokens and _long_enough(tokenizer.decode(tokens[:1]), word):
            ids.add(int(tokens[0]))
    return ids


def _long_enough(piece: str, word: str) -> bool:
    """A first token shorter than MIN_PIECE letters (``B``, ``Ne``) starts too many other words."""
    return len(piece.strip()) >= min(MIN_PIECE, len(word))


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences."""
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


class LabelScorer:
    """Batched label probabilities for chat-templated prompts.

    Attributes:
        labels: the probability columns, in order.
        label_ids: first-token ids per label (see :func:`label_token_ids`).
        last_items_per_s: prompts per second of the last :meth:`score` call.
        last_prefix_len: tokens of shared prefix reused by the last call (0 when none).
    """

    def __init__(self, loaded: LoadedModel, labels: Sequence[str] = LABELS) -> None:
        self.loaded = loaded
        self.labels = tuple(labels)
        self.label_ids = label_token_ids(loaded.tokenizer, self.labels)
        self.last_items_per_s: float | None = None
        self.last_prefix_len = 0
        self._prefix: tuple[tuple[int, ...], list[tuple[Any, Any]]] | None = None
        self._keep_arg = _supports_logits_to_keep(loaded.model)
        self._reuse_ok = _plain_kv_cache(loaded.model)
        use_gqa_attention(_inner_model(loaded.model))  # exact; avoids copying KV heads

    def clear_prefix_cache(self) -> None:
        """Forget the memoised KV of the last shared prefix."""
        self._prefix = None

    def score(
        self, prompts: Sequence[str], batch_size: int = 16, prefix_reuse: bool = True
    ) -> np.ndarray:
        """Probabilities of each label, shape ``(len(prompts), len(labels))``, rows summing to 1.

        Args:
            prompts: fully templated prompt strings (special tokens are not added again).
            batch_size: prompts per forward pass; prompts are batched by length.
            prefix_reuse: compute the prompts' common token prefix once and reuse its KV cache.
        """
        import torch

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise LlmbtError(f"batch_size {batch_size!r} must be a positive integer, e.g. 16.")
        start = time.perf_counter()
        ids = self._tokenize(prompts)
        out = np.empty((len(ids), len(self.labels)), dtype=np.float64)
        self.last_prefix_len = 0
        if ids:
            with torch.inference_mode():
                self._score_into(out, ids, batch_size, prefix_reuse)
        self.last_items_per_s = len(ids) / max(time.perf_counter() - start, 1e-9)
        return out

    def _score_into(
        self, out: np.ndarray, ids: list[list[int]], batch_size: int, prefix_reuse: bool
    ) -> None:
        plen, past = 0, None
        if prefix_reuse and self._reuse_ok:
            plen = min(_common_prefix(ids), min(len(s) for s in ids) - 1)
        if plen > 0:
            kv, plen = self._prefix_kv(ids[0][:plen])
            past = PrefixBuffers(kv)
        self.last_prefix_len = plen
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            logits = self._last_logits([ids[i][self.last_prefix_len :] for i in rows], past)
            out[rows] = self._label_probs(logits)

    def _tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise LlmbtError("prompts must be a list of strings; wrap a single prompt in a list.")
        tokenizer = self.loaded.tokenizer
        ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
        limit = getattr(self.loaded.model.config, "max_position_embeddings", None)
        for i, seq in enumerate(ids):
            if not seq or (limit and len(seq) > limit):
                raise LlmbtError(
                    f"prompt {i} has {len(seq)} tokens; it must have 1 to {limit} tokens."
                )
        return ids

    def _prefix_kv(self, prefix: list[int]) -> tuple[list[tuple[Any, Any]], int]:
        """Per-layer (keys, values) at batch size 1 of ``prefix`` or of a start of it, and its
        length. The KV is memoised: a later call whose prefix shares at least half of it with
        the memo reuses the memo, cropped to the shared start (exact: attention is causal)."""
        import torch
        from transformers import DynamicCache

        if self._prefix is not None:
            memo, kv = self._prefix
            shared = _common_prefix([memo, prefix])
            if shared > 0 and 2 * shared >= len(prefix):
                if shared < len(memo):
                    kv = [(k[:, :, :shared], v[:, :, :shared]) for k, v in kv]
                    self._prefix = (memo[:shared], kv)
                return kv, shared
        model = self.loaded.model
        cache = DynamicCache(config=model.config)
        input_ids = torch.tensor([prefix], device=self.loaded.device)
        model(input_ids=input_ids, past_key_values=cache, use_cache=True, **self._keep())
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        self._prefix = (tuple(prefix), kv)
        return kv, len(prefix)

    def _last_logits(self, suffixes: list[list[int]], past: PrefixBuffers | None) -> Any:
        """Next-token logits after each (left-padded) suffix, continuing ``past`` if given."""
        import torch

        device, width = self.loaded.device, max(len(s) for s in suffixes)
        pad = self.loaded.tokenizer.pad_token_id
        input_ids = torch.full((len(suffixes), width), pad, dtype=torch.long)
        mask = torch.zeros((len(suffixes), width), dtype=torch.long)
        for row, seq in enumerate(suffixes):
            input_ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0) + self.last_prefix_len
        kwargs: dict[str, Any] = {"use_cache": False}
        if past is not None:
            batch = len(suffixes)
            cache = past.cache(batch, width, self.loaded.model.config)
            mask = torch.cat([torch.ones((batch, self.last_prefix_len), dtype=torch.long), mask], 1)
            kwargs = {"use_cache": True, "past_key_values": cache}
        out = self.loaded.model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            **kwargs,
            **self._keep(),
        )
        return out.logits[:, -1, :].float()

    def _label_probs(self, logits: Any) -> np.ndarray:
        import torch

        per_label = [
            torch.logsumexp(logits[:, list(ids)], dim=-1) for ids in self.label_ids.values()
        ]
        return torch.softmax(torch.stack(per_label, dim=-1).double(), dim=-1).cpu().numpy()

    def _keep(self) -> dict[str, int]:
        return {"logits_to_keep": 1} if self._keep_arg else {}


def _inner_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _supports_logits_to_keep(model: Any) -> bool:
    import inspect

    return "logits_to_keep" in inspect.signature(_inner_model(model).forward).parameters


def _plain_kv_cache(model: Any) -> bool:
    """True when every layer keeps a plain growing KV cache (no sliding window / linear state)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layers = DynamicCache(config=_inner_model(model).config).layers
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class GenerateParser:
    """Generate-then-parse baseline: greedy generation, one prompt at a time.

    A reply without a label word is a parse failure (``None``), never a silent neutral.
    """

    def __init__(self, loaded: LoadedModel, labels: Sequence[str] = LABELS) -> None:
        _check_labels(labels)
        self.loaded = loaded
        self.labels = tuple(labels)
        words = "|".join(re.escape(x.strip()) for x in self.labels)
        self._pattern = re.compile(rf"\b({words})\b", re.IGNORECASE)
        self.last_items_per_s: float | None = None
        self.last_texts: list[str] = []

    def parse(self, text: str) -> str | None:
        """The first label word in ``text`` (case-insensitive), or None."""
        found = self._pattern.search(text)
        if found is None:
            return None
        return next(x for x in self.labels if x.strip().lower() == found.group(1).lower())

    def generate_labels(
        self, prompts: Sequence[str], max_new_tokens: int = 4
    ) -> tuple[list[str | None], int]:
        """Greedy-generate each prompt's reply and parse it; returns (labels, parse failures)."""
        import torch

        if isinstance(prompts, str) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
            raise LlmbtError("pass prompts as a list of strings and max_new_tokens >= 1 (e.g. 4).")
        start = time.perf_counter()
        tokenizer, model = self.loaded.tokenizer, self.loaded.model
        self.last_texts = []
        with torch.inference_mode():
            for prompt in prompts:
                enc = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
                enc = enc.to(self.loaded.device)
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
                new = out[0, enc["input_ids"].shape[1] :]
                self.last_texts.append(tokenizer.decode(new, skip_special_tokens=True))
        labels = [self.parse(text) for text in self.last_texts]
        self.last_items_per_s = len(prompts) / max(time.perf_counter() - start, 1e-9)
        return labels, sum(label is None for label in labels)
