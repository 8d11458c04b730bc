"""Prices (+ news) → prompts → cached label scores → per-bar signal columns, before the event loop.

The model is loaded only when some prompt is missing from the cache: a fully cached run renders the
prompts with the tokenizer alone and makes zero model calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from feeds import align_news_to_bars
from signals_cache.cache import SignalCache
from signals_cache.features import bar_features
from signals_cache.model import ModelSpec, load_model, load_tokenizer, model_fingerprint
from signals_cache.pipeline import ScoreResult, score_with_cache
from signals_cache.prompts import bar_prompts, headline_prompts, template_for

SIGNAL_COLUMNS = ("score", "confidence", "vol")


@dataclass(frozen=True)
class SignalRequest:
    """What to score: the model, the mode and where the cache lives."""

    spec: ModelSpec
    mode: str = "bars"
    symbol: str = "ASSET"
    cache_dir: str | None = None
    batch_size: int = 16
    half_life: float = 0.0
    progress: bool = True
    score_from: pd.Timestamp | None = None  # bars before this (warm-up history) are not scored
    prompt: str | None = None  # template version; None = the mode's default


class LazyScorer:
    """Loads the model on the first ``score`` call, so cache hits never pay for loading."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec, self._scorer, self.load_seconds = spec, None, 0.0

    def score(self, prompts: list[str], batch_size: int) -> np.ndarray:
        """Unnormalised label probabilities (rows sum to the label mass) of ``prompts``."""
        if self._scorer is None:
            from signals_cache.scoring import LabelScorer

            started = time.perf_counter()
            self._scorer = LabelScorer(load_model(self.spec))
            self.load_seconds = time.perf_counter() - started
        return self._scorer.label_probs(prompts, batch_size=batch_size)


def realised_vol(prices: pd.DataFrame, window: int = 20, periods: float = 252.0) -> pd.Series:
    """Annualised standard deviation of the last ``window`` close-to-close returns (causal)."""
    rets = prices["close"].pct_change()
    return rets.rolling(window).std() * np.sqrt(periods)


def compute_signals(prices: pd.DataFrame, req: SignalRequest,
                    news: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Score every bar (``bars`` mode) or every headline (``headlines`` mode) and aggregate per bar.

    Returns:
        A frame indexed like ``prices`` with ``score`` (P(bull) − P(bear)), ``confidence`` (max
        probability) and ``vol`` (realised volatility), NaN where there is no signal, and a dict of
        run facts (model calls, cache hits/misses, items/s) for the report.
    """
    template = template_for(req.mode, req.prompt)
    tokenizer = load_tokenizer(req.spec)
    if req.mode == "bars":
        prompts = bar_prompts(prices, req.symbol, template, tokenizer)
        if req.score_from is not None:
            prompts = prompts[prompts.index >= req.score_from]
        positions = prices.index.get_indexer(prompts.index)
        prompts = list(prompts)
    else:
        prompts, positions = _headline_inputs(prices, news, template, tokenizer, req.symbol)
    result, scorer = _score(prompts, req, template.version)
    frame = _per_bar(prices, positions, result, req.half_life if req.mode == "headlines" else 0.0)
    frame["vol"] = realised_vol(prices)
    return frame, _info(result, scorer, req, template.version, len(prompts))


def _headline_inputs(prices, news, template, tokenizer, symbol):
    from feeds.base import ConfigError

    if news is None or news.empty:
        raise ConfigError("--mode headlines needs --news FILE (CSV/JSONL/Parquet with "
                          "timestamp, symbol, headline)")
    positions = align_news_to_bars(news["timestamp"], prices.index)
    keep = positions >= 0
    prompts = headline_prompts(news[keep], template, tokenizer, symbol=symbol)
    return prompts, positions[keep]


def score_prompts(prompts: list[str], req: SignalRequest) -> ScoreResult:
    """Label probabilities of rendered prompts through the signal cache (model loaded on a miss).

    ``req.prompt`` (or the mode's default) must be the template the prompts were rendered with.
    """
    return _score(prompts, req, template_for(req.mode, req.prompt).version)[0]


def _score(prompts: list[str], req: SignalRequest, version: str) -> tuple[ScoreResult, LazyScorer]:
    cache = SignalCache(Path(req.cache_dir) if req.cache_dir else None)
    scorer = LazyScorer(req.spec)
    try:
        result = score_with_cache(prompts, scorer, cache, fingerprint=model_fingerprint(req.spec, ""),
                                  template_version=version, batch_size=req.batch_size,
                                  progress=req.progress)
    finally:
        cache.close()
    return result, scorer


def _per_bar(prices: pd.DataFrame, positions: np.ndarray, result: ScoreResult,
             half_life: float) -> pd.DataFrame:
    """Confidence-weighted mean score of the items of each bar; optional decay into later bars."""
    n = len(prices)
    conf = result.confidence
    num = np.bincount(positions, weights=result.score * conf, minlength=n)
    den = np.bincount(positions, weights=conf, minlength=n)
    cnt = np.bincount(positions, minlength=n)
    if half_life > 0:
        num, den = _decay(num, half_life), _decay(den, half_life)
    score = np.divide(num, den, out=np.full(n, np.nan), where=den > 0)
    mean_conf = np.divide(np.bincount(positions, weights=conf, minlength=n), cnt,
                          out=np.full(n, np.nan), where=cnt > 0)
    if half_life > 0:
        mean_conf = pd.Series(mean_conf).ffill().to_numpy()
    return pd.DataFrame({"score": score, "confidence": mean_conf}, index=prices.index)


def _decay(values: np.ndarray, half_life: float) -> np.ndarray:
    """Exponentially decayed running sum: news at bar j weighs 0.5**((t-j)/half_life) at bar t ≥ j."""
    alpha = 0.5 ** (1.0 / half_life)
    out, acc = np.empty_like(values), 0.0
    for i, v in enumerate(values):
        acc = acc * alpha + v
        out[i] = acc
    return out


def _info(result: ScoreResult, scorer: LazyScorer, req: SignalRequest, version: str, n: int) -> dict:
    scored_ms = 1000 * result.seconds / result.items_scored if result.items_scored else float("nan")
    return {
        "signals": f"{n} {req.mode[:-1]} prompts, template {version}, model {req.spec.base}"
                   + (f" + adapter {req.spec.adapter}" if req.spec.adapter else ""),
        "model calls": f"{result.model_calls} ({result.items_scored} prompts scored, "
                       f"{result.hits} cache hits, {result.misses} misses)",
        "scoring": f"{result.seconds:.1f} s, {result.items_per_s:.1f} items/s"
                   + (f", model load {scorer.load_seconds:.1f} s" if scorer.load_seconds else ""),
        "ms per scored item": round(scored_ms, 1),
        "cache hit rate": round(result.hits / max(result.hits + result.misses, 1), 4),
        "mean label mass": float(f"{result.label_mass.mean():.4g}") if n else float("nan"),
    }


__all__ = ["SIGNAL_COLUMNS", "SignalRequest", "compute_signals", "score_prompts", "realised_vol",
           "bar_features"]
