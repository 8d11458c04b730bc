"""The label set shared by prompts, scoring, datasets and training."""

from __future__ import annotations

#: Order matters: probability arrays everywhere are columns in this order.
LABELS: tuple[str, ...] = ("bullish", "bearish", "neutral")

#: How label probabilities are computed; part of every signal-cache key, so scores from another
#: method are never reused. "label-seq-v1": P(label) = Σ over its spellings of the product of the
#: probabilities of all their tokens (:mod:`llmbt.signals_cache.scoring.labelseq`), stored unnormalised.
SCORING_VERSION = "label-seq-v1"

#: Synonyms accepted from labelled corpora (Financial PhraseBank uses positive/negative/neutral).
LABEL_ALIASES: dict[str, str] = {
    "bullish": "bullish", "positive": "bullish", "buy": "bullish", "up": "bullish",
    "bearish": "bearish", "negative": "bearish", "sell": "bearish", "down": "bearish",
    "neutral": "neutral", "hold": "neutral", "flat": "neutral",
}
