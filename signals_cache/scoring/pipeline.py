"""Score prompts through the signal cache: look up first, run the model only on the misses.

Identical prompts are scored once. Misses are sorted by length (so a batch holds prompts of
similar length and little padding) and scored batch by batch; every batch is written to the
cache as soon as it is scored, so an interrupted run loses at most one batch and a re-run
resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.cache import SignalCache, check_label_mass
from llmbt.signals_cache.progress import progress_bar
from llmbt.signals_cache.scoring.labels import LABELS

_BULL, _BEAR = LABELS.index("bullish"), LABELS.index("bearish")


class Scorer(Protocol):
    """Anything that maps prompts to label probabilities (``LabelScorer.label_probs`` among
    others)."""

    def score(self, prompts: list[str], batch_size: int) -> np.ndarray:
        """Probabilities of shape ``(len(prompts), 3)``, columns in ``LABELS`` order, as the
        model gives them: each row sums to its label mass, at most 1 (1 when normalised)."""
        ...


@dataclass(frozen=True)
class ScoreResult:
    """Probabilities of every prompt (in input order) and how they were obtained.

    Attributes:
        probs: ``(n, 3)`` probabilities normalised over the labels, columns in ``LABELS`` order.
        label_mass: ``(n,)`` what the model's label probabilities summed to before
            normalisation: the share of its replies that are a label at all.
        hits: distinct prompts found in the cache.
        misses: distinct prompts not found in the cache (all of them were scored).
        model_calls: calls made to ``scorer.score`` (one per batch).
        items_scored: distinct prompts sent to the model (equals ``misses``).
        seconds: wall time of the whole call.
        items_per_s: prompts returned per second of wall time (hits included).
        fingerprint: the scorer's signal-cache fingerprint the scores are keyed by ("" unknown).
    """

    probs: np.ndarray
    label_mass: np.ndarray
    hits: int
    misses: int
    model_calls: int
    items_scored: int
    seconds: float
    items_per_s: float
    fingerprint: str = ""

    @property
    def score(self) -> np.ndarray:
        """``P(bullish) - P(bearish)`` per prompt, in [-1, 1]."""
        return self.probs[:, _BULL] - self.probs[:, _BEAR]

    @property
    def confidence(self) -> np.ndarray:
        """The largest label probability per prompt."""
        return self.probs.max(axis=1)

    def to_frame(self, index: Sequence | pd.Index | None = None) -> pd.DataFrame:
        """Columns ``bullish, bearish, neutral, score, confidence, label_mass``, one row per
        prompt."""
        frame = pd.DataFrame(self.probs, columns=list(LABELS), index=index)
        frame["score"] = self.score
        frame["confidence"] = self.confidence
        frame["label_mass"] = self.label_mass
        return frame


@dataclass
class _Batches:
    """Scores the missing prompts batch by batch, storing each batch in the cache."""

    scorer: Scorer
    cache: SignalCache
    fingerprint: str
    template_version: str
    batch_size: int
    calls: int = 0

    def run(self, prompts: list[str], progress: bool) -> list[np.ndarray]:
        rows: list[np.ndarray] = []
        with progress_bar(progress and bool(prompts), unit="prompts") as bar:
            task = bar.add_task("scoring", total=len(prompts))
            for start in range(0, len(prompts), self.batch_size):
                rows.extend(self._score_batch(prompts[start : start + self.batch_size]))
                bar.advance(task, min(self.batch_size, len(prompts) - start))
        return rows

    def _score_batch(self, batch: list[str]) -> np.ndarray:
        self.calls += 1
        probs = _check_output(self.scorer.score(batch, batch_size=self.batch_size), len(batch))
        self.cache.put_many(self.fingerprint, self.template_version, batch, probs)
        return probs


def score_with_cache(
    prompts: Sequence[str],
    scorer: Scorer,
    cache: SignalCache,
    *,
    fingerprint: str,
    template_version: str,
    batch_size: int = 16,
    progress: bool = True,
) -> ScoreResult:
    """Probabilities for ``prompts``, scoring only those not cached for this model + template.

    Args:
        prompts: rendered prompts (duplicates allowed, scored once).
        scorer: object with ``score(prompts, batch_size) -> (n, 3) array``.
        cache: where results are looked up and stored.
        fingerprint: identifies the model weights (base model + adapter).
        template_version: the prompt template's version, e.g. ``"bars-v1"``.
        batch_size: prompts per scorer call; each batch is cached as soon as it is scored.
        progress: show the progress of the prompts sent to the model: a bar on a terminal, else
            a plain line every few seconds; ``bt -q`` hides it (:mod:`llmbt.signals_cache.progress`).

    Raises:
        ConfigError: ``batch_size`` is below 1.
        LlmbtError: the scorer returned an array of the wrong shape or invalid values.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
    started = time.perf_counter()
    unique, inverse = _dedupe(prompts)
    table = cache.get_many(fingerprint, template_version, unique)
    missing = sorted(
        (i for i in range(len(unique)) if i not in table), key=lambda i: len(unique[i])
    )
    batches = _Batches(scorer, cache, fingerprint, template_version, batch_size)
    scored = batches.run([unique[i] for i in missing], progress)
    table.update(zip(missing, scored, strict=True))
    cache.record_run(hits=len(unique) - len(missing), misses=len(missing))
    raw = np.array([table[i] for i in range(len(unique))], dtype=np.float64)
    raw = raw.reshape(len(unique), len(LABELS))[inverse]
    mass = raw.sum(axis=1)
    seconds = time.perf_counter() - started
    return ScoreResult(
        probs=raw / mass[:, None],
        label_mass=mass,
        hits=len(unique) - len(missing),
        misses=len(missing),
        model_calls=batches.calls,
        items_scored=len(missing),
        seconds=seconds,
        items_per_s=len(prompts) / seconds if seconds > 0 else float("inf"),
        fingerprint=fingerprint,
    )


def scoring_line(result: ScoreResult, n: int, load_seconds: float = 0.0) -> str:
    """The ``scoring`` run fact of ``n`` prompts: wall time, rate and model load; or, when the
    cache held every prompt, that no model call was made (a rate of cache reads means nothing)."""
    if n == 0:
        return "nothing to score"
    if result.items_scored == 0:
        return f"all {n} prompts from the cache ({result.seconds:.2f} s), no model call"
    return (f"{result.seconds:.1f} s, {result.items_per_s:.1f} items/s"
            + (f", model load {load_seconds:.1f} s" if load_seconds else ""))


def cost_facts(result: ScoreResult, n: int, load_seconds: float = 0.0) -> dict[str, object]:
    """The run facts of what scoring ``n`` prompts cost, in the order a run prints them:
    ``model calls``, ``scoring`` (:func:`scoring_line`), ``ms per scored item`` (only when the
    model scored some: a fully cached run has no per-item time) and ``cache hit rate``."""
    facts: dict[str, object] = {
        "model calls": f"{result.model_calls} ({result.items_scored} prompts scored, "
                       f"{result.hits} cache hits, {result.misses} misses)",
        "scoring": scoring_line(result, n, load_seconds)}
    if result.items_scored:
        facts["ms per scored item"] = round(1000 * result.seconds / result.items_scored, 1)
    facts["cache hit rate"] = round(result.hits / max(result.hits + result.misses, 1), 4)
    return facts


def _dedupe(prompts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct prompts in first-seen order, and each input's position among them."""
    positions: dict[str, int] = {}
    inverse = np.array([positions.setdefault(p, len(positions)) for p in prompts], dtype=np.intp)
    return list(positions), inverse


def _check_output(probs: np.ndarray, n: int) -> np.ndarray:
    rows = np.asarray(probs, dtype=np.float64)
    if rows.shape != (n, len(LABELS)):
        raise LlmbtError(
            f"scorer returned shape {rows.shape} for {n} prompts; expected ({n}, {len(LABELS)})."
        )
    if not np.isfinite(rows).all():
        raise LlmbtError("scorer returned NaN or infinity; expected probabilities.")
    check_label_mass(rows)
    return rows
