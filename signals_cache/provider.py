"""The local model provider behind ``bt score``: items in, one scored record per item out, through
the signal cache and the same rendering and cache keys as the backtest.

A headline is cleaned and rendered exactly as :mod:`llmbt.signals_cache.universe` renders it (by
default template ``headlines-v2``, which leaves the symbol out), so a live system and a backtest
get the same numbers for the same text; already-rendered prompts are looked up under the template
version they were rendered with. With a names masker (``--anonymize``) a headline is masked for
its item's symbol as the run masks it: a universe template's cleaned headline, or, for a template
that shows the symbol, the raw headline (then cleaned) with the symbol shown as ``Company A``.
One :class:`ScoreStream` keeps the cache open and the model loaded (only on the first miss) across
the batches of a stream; with a model schedule (``--model-schedule``) each item is scored by the
model of its timestamp's segment, as a backtest of the same items scores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError
from llmbt.signals_cache.anonymize import FOCAL
from llmbt.signals_cache.cache import SignalCache
from llmbt.signals_cache.model.loading import ModelSpec, load_chat_template, model_fingerprint
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


@dataclass
class _Model:
    """One model of a stream: its spec, cache fingerprint, lazy scorer and (lazy) renderer."""

    spec: ModelSpec
    fingerprint: str
    scorer: LazyScorer
    renderer: Any = None

    @classmethod
    def of(cls, spec: ModelSpec) -> _Model:
        return cls(spec, model_fingerprint(spec, ""), LazyScorer(spec))


class ScoreStream:
    """Scores batches of items with one open cache and one (lazily loaded) model, or, with
    ``req.schedule``, the model of each item's timestamp (each loaded on its first miss).

    Args:
        req: model spec, cache folder and batch size (``mode`` is ``headlines`` or ``prompts``;
            ``prompt`` the template version: the headlines' template, default
            :data:`UNIVERSE_TEMPLATE`, or the one the prompts were rendered with, required).
    """

    def __init__(self, req: SignalRequest) -> None:
        self.req, self.template = req, _template(req)
        self._models: dict[int, _Model] = {}
        self.cache = SignalCache(Path(req.cache_dir) if req.cache_dir else None)

    def model(self, k: int = -1) -> _Model:
        """The stream's model (``k = -1``), or segment ``k``'s of its schedule, made once."""
        if k not in self._models:
            spec = (self.req if k < 0 else self.req.for_segment(k)).spec
            self._models[k] = _Model.of(spec)
        return self._models[k]

    @property
    def fingerprint(self) -> str:
        """The cache fingerprint of the stream's model (without a schedule)."""
        return self.model().fingerprint

    def prompts(self, items: list[Item], first_line: int = 1, k: int = -1) -> list[str]:
        """The prompts of ``items`` (headlines rendered by model ``k``; prompts as given)."""
        lines = [first_line + i for i in range(len(items))]
        return self._prompts(items, lines, self.model(k))

    def _prompts(self, items: list[Item], lines: list[int], model: _Model) -> list[str]:
        if self.req.mode == "prompts":
            return [item.text for item in items]
        if model.renderer is None:
            model.renderer = load_chat_template(model.spec)
        return [render(self.template, model.renderer, **self._fields(item, line))
                for item, line in zip(items, lines, strict=True)]

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
        fingerprint (the model's) and template; with a schedule also the item's ``model`` and
        ``cutoff`` (an item before the first cutoff, skipped, has null scores)."""
        lines = [first_line + i for i in range(len(items))]
        if self.req.schedule is None:
            return self._score_with(self.model(), items, lines)
        segment = self._segments(items, lines)
        out: list[dict[str, Any]] = [{}] * len(items)
        for k in np.unique(segment):
            rows = np.flatnonzero(segment == k)
            part = [items[i] for i in rows]
            recs = (skipped_records(part) if k < 0 else
                    self._score_with(self.model(int(k)), part, [lines[i] for i in rows], int(k)))
            for i, rec in zip(rows, recs, strict=True):
                out[i] = rec
        return out

    def _segments(self, items: list[Item], lines: list[int]) -> np.ndarray:
        missing = [line for item, line in zip(items, lines, strict=True) if not item.timestamp]
        if missing:
            raise ConfigError(f"line {missing[0]}: --model-schedule picks the model by the item's "
                              "time; give each item a timestamp")
        return self.req.schedule.segments_of([_utc(item.timestamp, line)
                                              for item, line in zip(items, lines, strict=True)])

    def _score_with(self, model: _Model, items: list[Item], lines: list[int],
                    k: int = -1) -> list[dict[str, Any]]:
        result = score_with_cache(self._prompts(items, lines, model), model.scorer, self.cache,
                                  fingerprint=model.fingerprint,
                                  template_version=self.template.version,
                                  batch_size=self.req.batch_size, progress=False)
        recs = records(items, result, model.fingerprint, self.template.version)
        if k >= 0:
            seg = self.req.schedule.segments[k]
            recs = [rec | {"model": seg.model, "cutoff": str(seg.cutoff)} for rec in recs]
        return recs

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


def _utc(timestamp: Any, line: int) -> pd.Timestamp:
    """An item's timestamp as a UTC time (a naive one is read as UTC)."""
    try:
        stamp = pd.Timestamp(timestamp)
    except (ValueError, TypeError):
        raise ConfigError(f"line {line}: timestamp {timestamp!r} is not a date; use ISO 8601, "
                          "e.g. 2015-03-02T14:30:00Z") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def skipped_records(items: list[Item]) -> list[dict[str, Any]]:
    """Records of items before a schedule's first cutoff (``--before-first skip``): null scores."""
    return [{"symbol": item.symbol, "timestamp": item.timestamp, "label": None, "score": None,
             "confidence": None, "label_mass": None, "fingerprint": None, "template": None,
             "model": None, "cutoff": None, "skipped": "before the first cutoff"}
            for item in items]


def records(items: list[Item], result: ScoreResult, fingerprint: str,
            version: str) -> list[dict[str, Any]]:
    """The JSON-ready records of scored ``items`` (floats unrounded: the backtest's numbers)."""
    labels = np.asarray(LABELS)[result.probs.argmax(axis=1)]
    rows = zip(items, labels, result.score, result.confidence, result.label_mass, strict=True)
    return [{"symbol": item.symbol, "timestamp": item.timestamp, "label": str(label),
             "score": float(score), "confidence": float(conf),
             "label_mass": float(mass), "fingerprint": fingerprint, "template": version}
            for item, label, score, conf, mass in rows]
