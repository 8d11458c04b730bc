"""The local model provider behind ``bt score``: items in, one scored record per item out, through
the signal cache and the same rendering and cache keys as the backtest.

A headline is cleaned and rendered exactly as :mod:`llmbt.signals_cache.universe` renders it (by
default template ``headlines-v2``, which leaves the symbol out), so a live system and a backtest
get the same numbers for the same text; already-rendered prompts are looked up under the template
version they were rendered with. With a names masker (``--anonymize``) a headline is masked for
its item's symbol as the run masks it: a universe template's cleaned headline, or, for a template
that shows the symbol, the raw headline (then cleaned) with the symbol shown as ``Company A``.
One :class:`ScoreStream` keeps the cache open and the model loaded (only on the first miss) across
the batches of a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError
from llmbt.signals_cache.anonymize import FOCAL
from llmbt.signals_cache.cache import SignalCache
from llmbt.signals_cache.model.loading import load_chat_template, model_fingerprint
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.pipeline import ScoreResult, score_with_cache
from llmbt.signals_cache.scoring.prompts import clean_headline, get_template, render, template_for
from llmbt.signals_cache.signals import LazyScorer, SignalRequest
from llmbt.signals_cache.universe import UNIVERSE_TEMPLATE

#: What an item of each mode carries besides ``symbol`` and ``timestamp``.
MODES = {"headlines": "headline", "prompts": "prompt"}


@dataclass(frozen=True)
class Item:
    """One thing to score: its text (a headline, or a rendered prompt) and what to echo back."""

    text: str
    symbol: str | None = None
    timestamp: str | None = None


class ScoreStream:
    """Scores batches of items with one open cache and one (lazily loaded) model.

    Args:
        req: model spec, cache folder and batch size (``mode`` is ``headlines`` or ``prompts``;
            ``prompt`` the template version: the headlines' template, default
            :data:`UNIVERSE_TEMPLATE`, or the one the prompts were rendered with, required).
    """

    def __init__(self, req: SignalRequest) -> None:
        self.req, self.template = req, _template(req)
        self.fingerprint = model_fingerprint(req.spec, "")
        self._renderer: Any = None
        self.scorer = LazyScorer(req.spec)
        self.cache = SignalCache(Path(req.cache_dir) if req.cache_dir else None)

    def prompts(self, items: list[Item], first_line: int = 1) -> list[str]:
        """The prompts of ``items`` (headlines rendered; prompts as given)."""
        if self.req.mode == "prompts":
            return [item.text for item in items]
        if self._renderer is None:
            self._renderer = load_chat_template(self.req.spec)
        return [render(self.template, self._renderer, **self._fields(item, first_line + i))
                for i, item in enumerate(items)]

    def _fields(self, item: Item, line: int) -> dict[str, str]:
        masker, shows_symbol = self.req.masker, "symbol" in self.template.fields
        if shows_symbol and not item.symbol:
            raise ConfigError(f"line {line}: template {self.template.version} puts the symbol "
                              "in the prompt; give each item a symbol")
        if masker is None:
            fields = {"headline": clean_headline(item.text, line)}
            return fields | ({"symbol": str(item.symbol)} if shows_symbol else {})
        if not item.symbol:
            raise ConfigError(f"line {line}: --anonymize masks the item's own company as {FOCAL}; "
                              "give each item a symbol")
        if shows_symbol:  # as a single-symbol run (anonymize_news): masked, cleaned, symbol hidden
            return {"headline": clean_headline(masker.mask(item.text, item.symbol), line),
                    "symbol": FOCAL}
        return {"headline": masker.mask(clean_headline(item.text, line), item.symbol)}  # a universe

    def score(self, items: list[Item], first_line: int = 1) -> list[dict[str, Any]]:
        """One record per item: symbol, timestamp, label, score, confidence, label_mass,
        fingerprint (the model's) and template."""
        result = score_with_cache(self.prompts(items, first_line), self.scorer, self.cache,
                                  fingerprint=self.fingerprint,
                                  template_version=self.template.version,
                                  batch_size=self.req.batch_size, progress=False)
        return records(items, result, self.fingerprint, self.template.version)

    def close(self) -> None:
        """Close the signal cache."""
        self.cache.close()

    def __enter__(self) -> ScoreStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _template(req: SignalRequest):
    if req.mode not in MODES:
        raise ConfigError(f"--mode {req.mode!r} is not valid; choose headlines or prompts.")
    if req.mode == "headlines":
        return template_for("headlines", req.prompt or UNIVERSE_TEMPLATE)
    if req.masker is not None:
        raise ConfigError("--anonymize masks headlines before they are rendered; --mode prompts "
                          "are rendered already: pass the headlines (--mode headlines) instead")
    if not req.prompt:
        raise ConfigError("--mode prompts needs --prompt VERSION, the template the prompts were "
                          "rendered with (e.g. bars-v2 or headlines-v2): it is part of the cache key")
    return get_template(req.prompt)


def records(items: list[Item], result: ScoreResult, fingerprint: str,
            version: str) -> list[dict[str, Any]]:
    """The JSON-ready records of scored ``items`` (floats unrounded: the backtest's numbers)."""
    labels = np.asarray(LABELS)[result.probs.argmax(axis=1)]
    rows = zip(items, labels, result.score, result.confidence, result.label_mass, strict=True)
    return [{"symbol": item.symbol, "timestamp": item.timestamp, "label": str(label),
             "score": float(score), "confidence": float(conf),
             "label_mass": float(mass), "fingerprint": fingerprint, "template": version}
            for item, label, score, conf, mass in rows]
