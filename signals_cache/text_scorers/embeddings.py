"""The ``embeddings`` arm: an embedding head (``bt head train``: pooled hidden states of the base
model feeding a logistic-regression head, :mod:`llmbt.signals_cache.heads`) as a text scorer.

The arm's ``adapter=`` is the head folder. Its fingerprint is read from the folder alone (the
head's arrays, its extraction settings and its base's fingerprint), so listing or caching needs
no model; the base is loaded on the first :meth:`EmbeddingsArm.score` call and kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError
from llmbt.signals_cache.heads.linear import is_head_folder, read_head
from llmbt.signals_cache.heads.scorer import extraction_settings, head_fingerprint, load_head
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.text_scorers.registry import register


class EmbeddingsArm:
    """The ``embeddings`` arm kind: a head folder on its base model (``model``: that base, or
    the one the head names)."""

    name = "embeddings"

    def __init__(self, folder: str, model: str | None = None) -> None:
        if not folder or not is_head_folder(folder):
            raise ConfigError(f"kind=embeddings needs adapter=DIR of a bt head train folder "
                              f"(got {folder!r}).")
        self.folder, self.model = str(Path(folder).expanduser()), model
        self.head, self.meta = read_head(self.folder)
        missing = set(LABELS) - set(self.head.labels)
        if missing:
            raise ConfigError(f"head {folder!r} has no column for {sorted(missing)}; retrain it "
                              f"with the labels {list(LABELS)}.")
        self._scorer: Any = None

    def fingerprint(self) -> str:
        """:func:`~llmbt.signals_cache.heads.scorer.head_fingerprint` of the folder."""
        return head_fingerprint(self.meta["base_fingerprint"], self.head,
                                extraction_settings(self.meta))

    def score(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """``(len(texts), 3)`` label probabilities in ``LABELS`` order."""
        if self._scorer is None:
            self._scorer = load_head(self.folder, self.model, batch_size=batch_size)
        probs = self._scorer.score(list(texts))
        order = [list(self.head.labels).index(label) for label in LABELS]
        return probs[:, order]


def make(model: str | None = None, path: str | None = None) -> EmbeddingsArm:
    """The registry's factory: ``path`` is the arm's ``adapter=`` (the head folder)."""
    return EmbeddingsArm(path or "", model)


register("embeddings", make)
