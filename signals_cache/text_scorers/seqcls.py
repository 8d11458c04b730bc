"""The ``seqcls`` arm: a LoRA adapter with a classification head (``bt finetune --method seqcls``)
scoring texts as the sequence classifier of :mod:`llmbt.signals_cache.model.seqcls`.

Each text is rendered into the prompt the adapter was trained on (its ``llmbt_adapter.json``
names the template and ``max_length``; the symbol is ``n/a``, as at training), its last
``max_length`` tokens are kept, and the head's three logits (``LABELS`` order) go through a
softmax. The model is loaded on the first :meth:`SeqClsScorer.score` call and kept; batches are
right-padded (the head reads the last non-pad token) and formed from texts of similar length, and
a batch's common start (the template's system text) runs once for all batches that share it, its
KV cache copied and repeated for each batch's tails, as in training. torch,
transformers and peft are imported only there; :meth:`SeqClsScorer.fingerprint` needs none of them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError
from llmbt.signals_cache.model.adapters import META_FILE, adapter_digest, is_seqcls_adapter
from llmbt.signals_cache.model.kv import PrefixMemo
from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.text_scorers.registry import register

#: Version of the rendering, truncation, prefix reuse and softmax; part of the fingerprint (the
#: cache key). v2: each batch's common prompt start runs once (the same scores up to float rounding).
VERSION = "seqcls-v2"
#: What an adapter without ``llmbt_adapter.json`` was trained with (``bt finetune``'s defaults).
DEFAULT_TEMPLATE, DEFAULT_MAX_LENGTH = "headlines-v1", 256


def adapter_setup(adapter: str) -> tuple[str, int]:
    """(prompt template version, max_length) a seqcls adapter was trained with.

    Raises:
        ConfigError: its ``llmbt_adapter.json`` names other labels than :data:`LABELS`.
    """
    meta_file = Path(adapter).expanduser() / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if meta.get("labels", list(LABELS)) != list(LABELS):
        raise ConfigError(f"adapter {adapter!r} classifies {meta['labels']}, not "
                          f"{list(LABELS)}; retrain it with bt finetune --method seqcls.")
    hyper = meta.get("hyperparameters", {})
    return meta.get("template", DEFAULT_TEMPLATE), int(hyper.get("max_length", DEFAULT_MAX_LENGTH))


class SeqClsScorer:
    """The ``seqcls`` arm kind: a classification-head LoRA adapter on its base model."""

    name = "seqcls"

    def __init__(self, spec: ModelSpec) -> None:
        if spec.adapter is None or not is_seqcls_adapter(spec.adapter):
            raise ConfigError(f"kind=seqcls needs adapter=DIR of a bt finetune --method seqcls "
                              f"adapter (got {spec.adapter!r}).")
        self.spec = spec
        self.template, self.max_length = adapter_setup(spec.adapter)
        self._model: tuple[Any, Any, str] | None = None

    def fingerprint(self) -> str:
        """16-hex sha256 of the base fingerprint, the adapter's digest, ``seqcls``, the template,
        max_length, the labels and :data:`VERSION`."""
        payload = [base_fingerprint(self.spec), adapter_digest(str(self.spec.adapter)), "seqcls",
                   self.template, self.max_length, list(LABELS), VERSION]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]

    def score(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """``(len(texts), 3)`` label probabilities (``LABELS`` order), in batches of ``batch_size``."""
        import torch

        from llmbt.signals_cache.finetune.encoding import Encoded, collate

        model, tokenizer, device = self._loaded()
        ids = self.token_ids(texts, tokenizer)
        lengths = [len(row) for row in ids]
        enc = Encoded(ids, lengths, 0)  # the prompt alone: its "answer" starts at its end
        out = np.zeros((len(ids), len(LABELS)))
        order = np.argsort(lengths, kind="stable")  # similar lengths: little padding
        step, prefixes = max(1, int(batch_size or 16)), PrefixMemo(model, device)
        with torch.inference_mode():
            for start in range(0, len(ids), step):
                rows = order[start : start + step].tolist()
                batch = collate(enc, rows, tokenizer.pad_token_id, share_prefix=True)
                cache = prefixes.kwargs(batch["prefix"], len(rows)) if "prefix" in batch else {}
                logits = model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device), **cache).logits
                out[rows] = torch.softmax(logits.double(), -1).cpu().numpy()
        return out

    def token_ids(self, texts: list[str], tokenizer: Any) -> list[np.ndarray]:
        """The token ids the classifier reads for each text: the adapter's prompt around it."""
        from llmbt.signals_cache.finetune.datasets import tidy_text
        from llmbt.signals_cache.finetune.encoding import NO_SYMBOL, classifier_ids, render_example
        from llmbt.signals_cache.scoring.prompts import get_template

        template = get_template(self.template)
        return [classifier_ids(tokenizer, render_example(template, tokenizer, tidy_text(text),
                                                         NO_SYMBOL), self.max_length)[0]
                for text in texts]

    def _loaded(self) -> tuple[Any, Any, str]:
        if self._model is None:
            from llmbt.signals_cache.model.seqcls import load_seqcls

            self._model = load_seqcls(self.spec)
        return self._model


def make(model: str | None = None, path: str | None = None) -> SeqClsScorer:
    """The registry's factory: the adapter folder ``path`` on the base ``model`` (default: the
    embedded smollm2-135m).

    Raises:
        ConfigError: no ``path`` (``adapter=``), or it is no seqcls adapter.
    """
    if path is None:
        raise ConfigError("kind=seqcls needs adapter=DIR (a bt finetune --method seqcls folder).")
    return SeqClsScorer(ModelSpec(base=model or ModelSpec.base, adapter=path))


register("seqcls", make)
