"""The label set shared by prompts, scoring, datasets and training."""

from __future__ import annotations

#: Order matters: probability arrays everywhere are columns in this order.
LABELS: tuple[str, ...] = ("bullish", "bearish", "neutral")

#: Synonyms accepted from labelled corpora (Financial PhraseBank uses positive/negative/neutral).
LABEL_ALIASES: dict[str, str] = {
    "bullish": "bullish", "positive": "bullish", "buy": "bullish", "up": "bullish",
    "bearish": "bearish", "negative": "bearish", "sell": "bearish", "down": "bearish",
    "neutral": "neutral", "hold": "neutral", "flat": "neutral",
}
