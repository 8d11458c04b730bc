"""A head folder as a text scorer: the base model's pooled hidden states (:mod:`.embed`) through
the numpy head (:mod:`.linear`). Loading checks that the base model is the one the head was
trained on (its content fingerprint), as adapters do.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import LlmbtError
from llmbt.signals_cache.heads.embed import DEFAULT_MAX_LENGTH, extract_features
from llmbt.signals_cache.heads.linear import HEAD_FORMAT, LinearHead, read_head
from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint, load_model

#: Precision the base runs in for a head: float32 weights (bf16 only through the head's autocast).
HEAD_PRECISION = "float32"


def extraction_settings(meta: dict[str, Any]) -> dict[str, Any]:
    """The settings features are extracted with: layer, pooling, max_length, autocast."""
    return {"layer": int(meta["layer"]), "pooling": str(meta["pooling"]),
            "max_length": int(meta.get("max_length", DEFAULT_MAX_LENGTH)),
            "autocast": bool(meta.get("autocast", False))}


def head_fingerprint(base_fp: str, head: LinearHead, settings: dict[str, Any]) -> str:
    """16-hex sha256 of the base fingerprint, the head's arrays and labels, and the extraction
    settings: any change changes the cache key of the head's scores."""
    payload = [HEAD_FORMAT, base_fp, head.digest(), settings]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class EmbeddingHeadScorer:
    """``score(texts)`` → (n, len(labels)) probabilities from a base model and a linear head.

    Attributes:
        labels: the head's labels, in column order.
        fingerprint: :func:`head_fingerprint` (16 hex).
        last_items_per_s: texts per second of the last :meth:`score` call.
    """

    def __init__(self, loaded: Any, head: LinearHead, meta: dict[str, Any],
                 batch_size: int = 32) -> None:
        self.loaded, self.head, self.meta = loaded, head, meta
        self.settings = extraction_settings(meta)
        self.batch_size = batch_size
        self.labels: tuple[str, ...] = head.labels
        self.fingerprint = head_fingerprint(meta["base_fingerprint"], head, self.settings)
        self.last_items_per_s = float("nan")

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 pooled hidden states of ``texts`` at the head's layer."""
        s = self.settings
        feats = extract_features(self.loaded.model, self.loaded.tokenizer, list(texts),
                                 [s["layer"]], poolings=[s["pooling"]],
                                 batch_size=self.batch_size, max_length=s["max_length"],
                                 autocast=s["autocast"])
        return feats[(s["layer"], s["pooling"])]

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(n, len(labels)) probabilities of ``texts`` (rows sum to 1)."""
        started = time.perf_counter()
        probs = self.head.predict_proba(self.features(texts))
        self.last_items_per_s = len(texts) / max(time.perf_counter() - started, 1e-9)
        return probs


def check_base(folder: str | Path, meta: dict[str, Any], spec: ModelSpec) -> None:
    """Refuse a head trained on another base model, naming both fingerprints.

    Raises:
        LlmbtError: ``spec``'s base fingerprint differs from the head's.
    """
    wanted, got = meta.get("base_fingerprint"), base_fingerprint(spec)
    if wanted != got:
        raise LlmbtError(f"--adapter {str(folder)!r} is a head trained on base model "
                         f"{meta.get('base_model')!r} (fingerprint {wanted}), but --model "
                         f"{spec.base!r} has fingerprint {got}; pass the base it was trained on.")


def load_head(folder: str | Path, model: str | None = None, *, device: str = "auto",
              batch_size: int = 32) -> EmbeddingHeadScorer:
    """The scorer of head folder ``folder`` on base ``model`` (default: the base it names).

    Raises:
        ConfigError: the folder is not a head folder or is malformed.
        LlmbtError: ``model`` is not the base the head was trained on, or cannot be loaded.
    """
    head, meta = read_head(folder)
    spec = ModelSpec(base=model or meta["base_model"], device=device, precision=HEAD_PRECISION)
    check_base(folder, meta, spec)
    return EmbeddingHeadScorer(load_model(spec), head, meta, batch_size=batch_size)


def evaluate_head(examples: Sequence[Any], folder: str | Path, model: str | None = None, *,
                  batch_size: int = 32) -> dict[str, Any]:
    """:func:`~llmbt.signals_cache.finetune.evaluate.classification_metrics` of the head on
    ``examples`` (objects with ``.text``/``.label``), plus ``items_per_s`` and ``fingerprint``."""
    from llmbt.signals_cache.finetune.evaluate import classification_metrics

    examples = list(examples)
    if not examples:
        raise LlmbtError("no examples to evaluate.")
    scorer = load_head(folder, model, batch_size=batch_size)
    probs = scorer.score([ex.text for ex in examples])
    result = classification_metrics([ex.label for ex in examples], probs, scorer.labels)
    return result | {"items_per_s": scorer.last_items_per_s, "n": len(examples),
                     "fingerprint": scorer.fingerprint}
