"""Label scoring: P(label) from one forward pass per batch, instead of generate-then-parse.

For every prompt (a fully chat-templated string ending with the assistant generation prompt)
:class:`LabelScorer` computes the probability that the reply starts with each label's whole
token sequence (summed over its spellings, :mod:`llmbt.signals_cache.scoring.labelseq`): the label tokens are
appended to the prompts under a tree attention mask, so the same forward pass that reads the
prompt also reads every token of every label. :meth:`LabelScorer.label_probs` returns these
probabilities as they are (their row sum is the *label mass*, the share of replies that are a
label at all); :meth:`LabelScorer.score` normalises them over the labels. Prompts that share a
long prefix (the system text of a template) get that prefix's KV cache computed once and
reused. :class:`GenerateParser` is the slow generate-then-parse baseline, kept for comparison.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmbt.errors import LlmbtError
from llmbt.signals_cache.model.kv import (
    GQA_SDPA,
    PrefixBuffers,
    cache_keyword,
    inner_model,
    supports_logits_to_keep,
    use_gqa_attention,
)
from llmbt.signals_cache.model.loading import LoadedModel
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.labelseq import (
    LabelTrie,
    check_labels,
    label_sequences,
    tree_mask,
    tree_positions,
)


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token sequences."""
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


class LabelScorer:
    """Batched label probabilities for chat-templated prompts.

    Args:
        loaded: the model and tokenizer.
        labels: label words, in column order.
        tree: read all label tokens in the prompt's own forward pass (tree attention mask);
            False, or a model that cannot take a 4D mask (prompt-learning adapters, attention
            kernels other than SDPA/eager), runs one row per prompt and label prefix instead.

    Attributes:
        labels: the probability columns, in order.
        sequences: token ids of each label's spellings (see :func:`label_sequences`).
        last_items_per_s: prompts per second of the last call.
        last_prefix_len: tokens of shared prefix reused by the last call (0 when none).
        last_label_mass: per prompt of the last call, the summed label probabilities before
            normalisation (the share of replies that start with a label at all).
    """

    def __init__(self, loaded: LoadedModel, labels: Sequence[str] = LABELS,
                 tree: bool = True) -> None:
        self.loaded = loaded
        self.labels = tuple(labels)
        self.sequences = label_sequences(loaded.tokenizer, self.labels)
        self._trie = LabelTrie.build(self.sequences)
        self.last_items_per_s: float | None = None
        self.last_prefix_len = 0
        self.last_label_mass = np.empty(0)
        self._prefix: tuple[tuple[int, ...], list[tuple[Any, Any]]] | None = None
        self._keep_arg = supports_logits_to_keep(loaded.model)
        self._cache_kw = cache_keyword(inner_model(loaded.model))
        prompt_learning = _prompt_learning(loaded.model)
        self._reuse_ok = _plain_kv_cache(loaded.model) and not prompt_learning
        use_gqa_attention(inner_model(loaded.model))  # exact; avoids copying KV heads
        self._mask_kind = None if prompt_learning or not tree else _mask_kind(loaded.model)

    @property
    def label_tokens(self) -> int:
        """Label-prefix tokens read after each prompt (inner nodes of the spellings' trie)."""
        return self._trie.size

    def clear_prefix_cache(self) -> None:
        """Forget the memoised KV of the last shared prefix."""
        self._prefix = None

    def score(
        self, prompts: Sequence[str], batch_size: int = 16, prefix_reuse: bool = True
    ) -> np.ndarray:
        """Label probabilities normalised over the labels, shape ``(len(prompts), len(labels))``,
        rows summing to 1; :attr:`last_label_mass` keeps what they summed to before.

        Args:
            prompts: fully templated prompt strings (special tokens are not added again).
            batch_size: prompts per forward pass; prompts are batched by length.
            prefix_reuse: compute the prompts' common token prefix once and reuse its KV cache.

        Raises:
            LlmbtError: bad arguments, or a prompt gives every label zero probability.
        """
        logp = self._log_probs(prompts, batch_size, prefix_reuse)
        top = logp.max(axis=1, keepdims=True)
        if not np.isfinite(top).all():
            bad = int(np.flatnonzero(~np.isfinite(top[:, 0]))[0])
            raise LlmbtError(f"prompt {bad} gives every label zero probability; check the "
                             "prompt asks for one of: " + ", ".join(self.labels) + ".")
        shifted = np.exp(logp - top)
        return shifted / shifted.sum(axis=1, keepdims=True)

    def label_probs(
        self, prompts: Sequence[str], batch_size: int = 16, prefix_reuse: bool = True
    ) -> np.ndarray:
        """P(reply starts with each label) as the model gives it, not normalised: each row sums
        to that prompt's label mass (in [0, 1], also in :attr:`last_label_mass`). Arguments as
        :meth:`score`."""
        return np.exp(self._log_probs(prompts, batch_size, prefix_reuse))

    def _log_probs(self, prompts: Sequence[str], batch_size: int, prefix_reuse: bool) -> np.ndarray:
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
        self.last_label_mass = np.exp(out).sum(axis=1)
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
            suffixes = [ids[i][plen:] for i in rows]
            if self._mask_kind is None:
                logits = self._rows_logits(suffixes, past, batch_size)
            else:
                logits = self._tree_logits(suffixes, past)
            out[rows] = self._trie.log_probs(logits).cpu().numpy()

    def _tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise LlmbtError("prompts must be a list of strings; wrap a single prompt in a list.")
        tokenizer = self.loaded.tokenizer
        ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
        limit = getattr(self.loaded.model.config, "max_position_embeddings", None)
        if limit:  # the label tokens read after the prompt need positions too
            limit -= max(self._trie.depth, default=0)
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
        model(input_ids=input_ids, use_cache=True, **{self._cache_kw: cache}, **self._keep())
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        self._prefix = (tuple(prefix), kv)
        return kv, len(prefix)

    def _tree_logits(self, suffixes: list[list[int]], past: PrefixBuffers | None) -> Any:
        """``(batch, 1 + trie size, vocab)`` logits: after each left-padded suffix (continuing
        ``past`` if given) and after every label prefix, all in one pass (tree attention)."""
        import torch

        device, width, trie = self.loaded.device, max(len(s) for s in suffixes), self._trie
        lengths = torch.tensor([len(s) for s in suffixes])
        input_ids = torch.full((len(suffixes), width + trie.size), self.loaded.tokenizer.pad_token_id)
        for row, seq in enumerate(suffixes):
            input_ids[row, width - len(seq) : width] = torch.tensor(seq)
        input_ids[:, width:] = torch.tensor(trie.tokens, dtype=torch.long)
        mask = tree_mask(lengths, width, self.last_prefix_len, trie, self._mask_kind)
        kwargs: dict[str, Any] = {"use_cache": False}
        if past is not None:
            cache = past.cache(len(suffixes), width + trie.size, self.loaded.model.config)
            kwargs = {"use_cache": True, self._cache_kw: cache}
        out = self.loaded.model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=tree_positions(lengths, width, self.last_prefix_len, trie).to(device),
            **kwargs,
            **self._keep(1 + trie.size),
        )
        return out.logits[:, -(1 + trie.size) :, :]

    def _rows_logits(
        self, suffixes: list[list[int]], past: PrefixBuffers | None, batch_size: int
    ) -> Any:
        """As :meth:`_tree_logits`, with one plain row per suffix and label prefix."""
        import torch

        paths = [[]] + [self._trie.path(k) for k in range(self._trie.size)]
        rows = [seq + path for seq in suffixes for path in paths]
        chunks = [self._last_logits(rows[i : i + batch_size], past)
                  for i in range(0, len(rows), batch_size)]
        return torch.cat(chunks).view(len(suffixes), len(paths), -1)

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
            kwargs = {"use_cache": True, self._cache_kw: cache}
        out = self.loaded.model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            **kwargs,
            **self._keep(),
        )
        return out.logits[:, -1, :]

    def _keep(self, n: int = 1) -> dict[str, int]:
        return {"logits_to_keep": n} if self._keep_arg else {}


def _prompt_learning(model: Any) -> bool:
    """True for peft prompt-learning adapters (prefix tuning…), which bring their own KV."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def _mask_kind(model: Any) -> Any:
    """Mask dtype the attention kernel takes for a custom 4D mask (``torch.bool`` for SDPA,
    the model's float dtype for eager), or None when it takes none."""
    import torch

    kind = getattr(inner_model(model).config, "_attn_implementation", None)
    if kind in ("sdpa", GQA_SDPA):
        return torch.bool
    if kind == "eager":
        dtype = getattr(model, "dtype", torch.float32)
        return dtype if dtype.is_floating_point else torch.float32
    return None


def _plain_kv_cache(model: Any) -> bool:
    """True when every layer keeps a plain growing KV cache (no sliding window / linear state)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layers = DynamicCache(config=inner_model(model).config).layers
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class GenerateParser:
    """Generate-then-parse baseline: greedy generation, one prompt at a time.

    A reply without a label word is a parse failure (``None``), never a silent neutral.
    """

    def __init__(self, loaded: LoadedModel, labels: Sequence[str] = LABELS) -> None:
        check_labels(labels)
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
