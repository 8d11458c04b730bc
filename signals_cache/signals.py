"""Prices (+ news) → prompts → cached label scores → per-bar signal columns, before the event loop.

The model is loaded only when some prompt is missing from the cache: a fully cached run renders the
prompts from the model's saved chat template (:mod:`llmbt.signals_cache.model.chat_template`),
hashes no weights twice and makes zero model calls: torch and transformers are never imported.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError
from llmbt.feeds import align_news_to_bars
from llmbt.feeds.calendar import periods_per_year
from llmbt.feeds.news import select_symbol
from llmbt.signals_cache.anonymize import FOCAL, Masker, anonymize_news
from llmbt.signals_cache.cache import SignalCache
from llmbt.signals_cache.model.loading import (
    ModelSpec,
    load_chat_template,
    load_model,
    spec_temperature,
)
from llmbt.signals_cache.scheduled import scheduled_info, score_scheduled
from llmbt.signals_cache.scorer_id import ScorerId
from llmbt.signals_cache.scoring.features import bar_features, valid_mask
from llmbt.signals_cache.scoring.pipeline import ScoreResult, cost_facts, score_with_cache
from llmbt.signals_cache.scoring.prompts import bar_prompts, headline_prompts, template_for
from llmbt.signals_cache.scoring.temperature import scale_rows

SIGNAL_COLUMNS = ("score", "confidence", "vol")
#: The error of headline scoring without headlines (checked before a run starts, and here).
NO_NEWS = "--mode headlines needs --news FILE (CSV/JSONL/Parquet with timestamp, symbol, headline)"
DECAY_HALF_LIVES = 10  # decaying headlines older than this (weight < 0.1 %) are not scored


@dataclass(frozen=True)
class SignalRequest:
    """What to score (``scorer``: the one scorer identity, its template included), the mode and
    where the cache lives."""

    scorer: ScorerId = field(default_factory=ScorerId)
    mode: str = "bars"
    symbol: str = "ASSET"
    cache_dir: str | None = None
    batch_size: int = 16
    half_life: float = 0.0
    progress: bool = True
    score_from: pd.Timestamp | None = None  # bars before this (warm-up history) are not scored,
    warmup: int = 0  # except this many scored bars just before it (the strategy's look-back)
    masker: Masker | None = None  # --anonymize: headlines masked, the symbol shown as Company A
    cache_only: bool = False  # a cache miss is an error, not a model call (--jitter)
    schedule: Any = None  # a ModelSchedule (--model-schedule): the model is chosen by item time

    @property
    def spec(self) -> ModelSpec:
        """The scorer's model spec."""
        return self.scorer.spec

    @property
    def arm(self) -> str:
        """The scorer's kind: ``lm``, or a text scorer that scores the raw texts."""
        return self.scorer.kind

    @property
    def arm_path(self) -> str | None:
        """A text scorer's artefact folder."""
        return self.scorer.folder

    @property
    def prompt(self) -> str | None:
        """The template version; None = the mode's default."""
        return self.scorer.template

    def for_segment(self, k: int) -> SignalRequest:
        """This request scored by segment ``k``'s model of its schedule, without the schedule."""
        seg = self.schedule.segments[k]
        return dataclasses.replace(self, scorer=self.scorer.with_model(seg.model, seg.adapter),
                                   schedule=None)


class LazyScorer:
    """Loads the model on the first ``score`` call, so cache hits never pay for loading; the
    rows are scaled by the adapter's stored temperature (:attr:`temperature`, part of
    :func:`model_fingerprint`), if any."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec, self._scorer, self.load_seconds = spec, None, 0.0
        self.temperature = spec_temperature(spec)

    def score(self, prompts: list[str], batch_size: int) -> np.ndarray:
        """Label probabilities (rows sum to the label mass) of ``prompts``, temperature-scaled
        (:func:`~llmbt.signals_cache.scoring.temperature.scale_rows`) when the adapter has one."""
        if self._scorer is None:
            from llmbt.signals_cache.scoring.scorer import LabelScorer

            started = time.perf_counter()
            self._scorer = LabelScorer(load_model(self.spec))
            self.load_seconds = time.perf_counter() - started
        return scale_rows(self._scorer.label_probs(prompts, batch_size=batch_size), self.temperature)


class CacheOnly:
    """A scorer for runs that must not call the model: any prompt the cache lacks is an error."""

    load_seconds = 0.0
    temperature = None

    def score(self, prompts: list[str], batch_size: int) -> np.ndarray:
        """Refuse, naming how many prompts are missing and the fix."""
        raise ConfigError(f"--jitter re-runs from the cached scores, but {len(prompts)} prompt(s) "
                          "are not in the signal cache: run the same command once without --jitter "
                          "first")


def realised_vol(prices: pd.DataFrame, window: int = 20, periods: float | None = None) -> pd.Series:
    """Annualised standard deviation of the last ``window`` close-to-close returns (causal).

    ``periods`` (bars a year) defaults to :func:`llmbt.feeds.calendar.periods_per_year` of the bars:
    252 for daily stocks, 365.25 for daily crypto, ~5000 for hourly FX.
    """
    rets = prices["close"].pct_change()
    periods = periods_per_year(prices.index) if periods is None else periods
    return rets.rolling(window).std() * np.sqrt(periods)


def compute_signals(prices: pd.DataFrame, req: SignalRequest,
                    news: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Score every bar (``bars`` mode) or every headline (``headlines`` mode) and aggregate per bar.

    Returns:
        A frame indexed like ``prices`` with ``score`` (P(bull) − P(bear)), ``confidence`` (max
        probability) and ``vol`` (realised volatility), NaN where there is no signal, and a dict of
        run facts (model calls, cache hits/misses, items/s) for the report.
    """
    if req.arm != "lm":
        return _text_signals(prices, req, news)
    if req.schedule is not None:
        return _scheduled_signals(prices, req, news)
    template = template_for(req.mode, req.prompt)
    tokenizer = load_chat_template(req.spec)
    if req.mode == "bars":
        prompts = _bars_needed(bar_prompts(prices, shown_symbol(req), template, tokenizer), req)
        positions = prices.index.get_indexer(prompts.index)
        prompts = list(prompts)
    else:
        prompts, positions = _headline_inputs(prices, news, template, tokenizer, req)
    result, scorer = score_rendered(prompts, req, template.version)
    frame = per_bar(prices, positions, result, req.half_life if req.mode == "headlines" else 0.0)
    frame["vol"] = realised_vol(prices)
    return frame, score_info(result, scorer, req, template.version, len(prompts))


def _scheduled_signals(prices, req: SignalRequest, news) -> tuple[pd.DataFrame, dict]:
    """:func:`compute_signals` through ``req.schedule``: each item rendered and scored by the
    model of its time's segment (:mod:`llmbt.signals_cache.scheduled`)."""
    template = template_for(req.mode, req.prompt)
    if req.mode == "bars":
        features = bar_features(prices)
        times = _bars_needed(pd.Series(0, index=features.index[valid_mask(features)]), req).index

        def render(spec: ModelSpec, rows: np.ndarray) -> list[str]:
            tokenizer = load_chat_template(spec)
            return list(bar_prompts(prices, shown_symbol(req), template, tokenizer, at=times[rows]))

        positions = prices.index.get_indexer(times)
    else:
        rows_news, positions = _headline_rows(prices, news, req)
        times = rows_news["timestamp"]

        def render(spec: ModelSpec, rows: np.ndarray) -> list[str]:
            return headline_prompts(rows_news.iloc[rows], template, load_chat_template(spec),
                                    symbol=req.symbol)

    sched = score_scheduled(times, render, req, template.version, what=req.mode[:-1],
                            score=score_rendered)
    half_life = req.half_life if req.mode == "headlines" else 0.0
    frame = per_bar(prices, np.asarray(positions)[sched.keep], sched.kept(), half_life)
    frame["vol"] = realised_vol(prices)
    return frame, scheduled_info(sched, req, template.version, len(times))


class PlainText:
    """A chat "tokenizer" that renders only the user message's item: a text scorer's input is the
    raw headline or the bar's feature lines, not a prompt."""

    def __init__(self, field: str) -> None:
        self.field = field

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: object) -> str:
        """The user message: with :func:`_text_signals`' template, the item text alone."""
        return conversation[-1]["content"]


def text_version(mode: str) -> str:
    """The signal-cache template version of a text scorer's raw inputs in ``mode``."""
    return f"{mode}-text"


def _text_signals(prices, req: SignalRequest, news) -> tuple[pd.DataFrame, dict]:
    """:func:`compute_signals` of a text scorer (``req.arm``): the same items, their raw texts."""
    from llmbt.signals_cache.scoring.prompts import PromptTemplate

    field = "features" if req.mode == "bars" else "headline"
    user = "{features}{symbol:.0}" if req.mode == "bars" else "{headline}{symbol:.0}"
    template = PromptTemplate(name=req.mode, version=text_version(req.mode), system="",
                              user=user)  # the item only: "{symbol:.0}" formats the symbol as ""
    if req.mode == "bars":
        texts = _bars_needed(bar_prompts(prices, shown_symbol(req), template, PlainText(field)), req)
        positions, texts = prices.index.get_indexer(texts.index), list(texts)
    else:
        texts, positions = _headline_inputs(prices, news, template, PlainText(field), req)
    result, scorer = score_rendered(texts, req, template.version)
    frame = per_bar(prices, positions, result, req.half_life if req.mode == "headlines" else 0.0)
    frame["vol"] = realised_vol(prices)
    return frame, score_info(result, scorer, req, template.version, len(texts))


def shown_symbol(req: SignalRequest) -> str:
    """The symbol a bar prompt shows: with ``--anonymize`` (``req.masker``) the ticker is masked
    as :data:`~llmbt.signals_cache.anonymize.FOCAL`, as a headline's own company is; the prompt
    text, and so its cache key, differs from the unmasked run's."""
    return req.symbol if req.masker is None else FOCAL


def _bars_needed(prompts: pd.Series, req: SignalRequest) -> pd.Series:
    """Bar prompts from ``req.warmup`` prompts before ``req.score_from`` on (all without it)."""
    if req.score_from is None:
        return prompts
    first = int(prompts.index.searchsorted(req.score_from))
    return prompts.iloc[max(0, first - req.warmup):]


def _headline_inputs(prices, news, template, tokenizer, req: SignalRequest):
    news, positions = _headline_rows(prices, news, req)
    return headline_prompts(news, template, tokenizer, symbol=req.symbol), positions


def _headline_rows(prices, news, req: SignalRequest) -> tuple[pd.DataFrame, np.ndarray]:
    """The symbol's headlines the run scores (masked with ``--anonymize``) and their bars."""
    if news is None or news.empty:
        raise ConfigError(NO_NEWS)
    news = select_symbol(news, req.symbol)
    positions = align_news_to_bars(news["timestamp"], prices.index, day=news.get("day"))
    keep = positions >= first_headline_bar(positions, prices.index, req)
    news = news[keep] if req.masker is None else anonymize_news(news[keep], req.masker)
    return news, positions[keep]


def first_headline_bar(positions: np.ndarray, index: pd.DatetimeIndex, req: SignalRequest) -> int:
    """First bar whose headlines are scored: ``req.warmup`` news bars before ``req.score_from``
    (the z-score runs over bars with news); with decay, whose scores fill every bar,
    ``req.warmup`` bars plus :data:`DECAY_HALF_LIVES` half-lives before it."""
    if req.score_from is None:
        return 0
    first = int(index.searchsorted(req.score_from))
    if req.half_life > 0:
        return max(0, first - req.warmup - math.ceil(req.half_life * DECAY_HALF_LIVES))
    if req.warmup == 0:
        return first
    before = np.unique(positions[(positions >= 0) & (positions < first)])
    return int(before[-req.warmup]) if len(before) >= req.warmup else 0


def score_prompts(prompts: list[str], req: SignalRequest) -> ScoreResult:
    """Label probabilities of rendered prompts through the signal cache (model loaded on a miss).

    ``req.prompt`` (or the mode's default) must be the template the prompts were rendered with;
    for a text scorer (``req.arm``), ``prompts`` are the raw texts (a bar's feature lines).
    """
    version = template_for(req.mode, req.prompt).version if req.arm == "lm" else text_version(req.mode)
    return score_rendered(prompts, req, version)[0]


def score_rendered(prompts: list[str], req: SignalRequest, version: str) -> tuple[ScoreResult, Any]:
    """Scores of rendered ``prompts`` (a text scorer's raw texts when ``req.arm`` is not ``lm``)
    through the signal cache, keyed by the model's or the text scorer's fingerprint."""
    cache = SignalCache(Path(req.cache_dir) if req.cache_dir else None)
    scorer, fingerprint = scorer_of(req)
    try:
        result = score_with_cache(prompts, scorer, cache, fingerprint=fingerprint,
                                  template_version=version, batch_size=req.batch_size,
                                  progress=req.progress)
    finally:
        cache.close()
    return result, scorer


def scorer_of(req: SignalRequest) -> tuple[Any, str]:
    """(scorer, cache fingerprint) of ``req``: the lazily loaded model, or a text scorer; either
    scaled by the temperature stored beside its adapter folder unless ``req.spec.calibrate`` is off."""
    if req.scorer.is_lm:
        scorer = CacheOnly() if req.cache_only else LazyScorer(req.spec)
        return scorer, req.scorer.fingerprint()
    scorer = req.scorer.text_scorer()
    return scorer, req.scorer.fingerprint(scorer)


def per_bar(prices: pd.DataFrame, positions: np.ndarray, result: ScoreResult,
             half_life: float) -> pd.DataFrame:
    """Per-bar ``score`` and ``confidence`` from the scored items aligned to bar ``positions``.

    Each bar with items gets their confidence-weighted mean score ``m_b`` and mean confidence
    ``c_b``. Without decay (``half_life <= 0``) these are the columns, NaN on bars without items.
    With decay, the news of bar ``b`` weighs ``d = 0.5 ** ((t - b) / half_life)`` at bar ``t``::

        score_t = sum(d * m_b) / max(1, sum(d))      confidence_t = sum(d * c_b) / max(1, sum(d))

    so a lone headline keeps its full score on its bar, halves every ``half_life`` bars and fades
    toward 0 (its fading confidence then falls below ``min_confidence``); while recent news
    weighs 1 or more, the columns are decay-weighted means, in which the newest bar weighs most.
    Bars before the first item are NaN.
    """
    n = len(prices)
    conf = result.confidence
    cnt = np.bincount(positions, minlength=n)
    has = cnt > 0
    den = np.bincount(positions, weights=conf, minlength=n)
    mean = np.divide(np.bincount(positions, weights=result.score * conf, minlength=n), den,
                     out=np.zeros(n), where=den > 0)
    mean_conf = np.divide(den, cnt, out=np.zeros(n), where=has)
    if half_life > 0:
        weight = _decay(has.astype(float), half_life)
        scale = np.maximum(weight, 1.0)
        score, mean_conf = _decay(mean, half_life) / scale, _decay(mean_conf, half_life) / scale
        has = weight > 0
    else:
        score = mean
    return pd.DataFrame({"score": np.where(has, score, np.nan),
                         "confidence": np.where(has, mean_conf, np.nan)}, index=prices.index)


def _decay(values: np.ndarray, half_life: float) -> np.ndarray:
    """Exponentially decayed running sum: news at bar j weighs 0.5**((t-j)/half_life) at bar t ≥ j."""
    alpha = 0.5 ** (1.0 / half_life)
    out, acc = np.empty_like(values), 0.0
    for i, v in enumerate(values):
        acc = acc * alpha + v
        out[i] = acc
    return out


def score_info(result: ScoreResult, scorer: Any, req: SignalRequest, version: str, n: int) -> dict:
    """The run facts of one scoring pass of ``n`` prompts; ``ms per scored item`` only when the
    model scored some (a fully cached run has no per-item time)."""
    what = f"model {req.spec.base}" if req.arm == "lm" else f"text scorer {req.arm}"
    return {
        "signals": f"{n} {req.mode[:-1]} prompts, template {version}, {what}"
                   + (f" + adapter {req.spec.adapter or req.arm_path}"
                      if req.spec.adapter or req.arm_path else "") + _temperature_note(scorer),
    } | cost_facts(result, n, getattr(scorer, "load_seconds", 0.0)) | {
        "mean label mass": float(f"{result.label_mass.mean():.4g}") if n else float("nan"),
    } | ({"scorer fingerprint": f"{result.fingerprint} ({version})"} if result.fingerprint else {})


def _temperature_note(scorer: Any) -> str:
    temperature = getattr(scorer, "temperature", None)
    return "" if temperature is None else f", temperature {temperature:.4g} (llmbt_calibration.json)"


__all__ = ["SIGNAL_COLUMNS", "SignalRequest", "compute_signals", "score_prompts", "realised_vol",
           "bar_features"]
