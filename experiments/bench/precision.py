"""Scoring precisions side by side on the same prompts: speed, exactness against float32, memory.

Each precision (:mod:`llmbt.signals_cache.model.precision`) loads the same model (and adapter),
scores the same prompts with batched label scoring and shared-prefix reuse (today's path), and is
compared with the ``float32`` reference: items/s and their ratio, label agreement (same argmax),
mean / p99 / max |Δscore| (score = P(bull) − P(bear), as the strategies read it) and the peak
resident memory while that precision was loaded and scoring (and how much above the process's
size before its load that was).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.signals_cache.model.loading import ModelSpec, load_model
from llmbt.signals_cache.model.precision import REFERENCE


def headline_prompt_sample(path: str | Path, n: int, model: str = "smollm2-135m",
                           version: str = "headlines-v2") -> list[str]:
    """The first ``n`` distinct headlines of a news file rendered with template ``version``."""
    from llmbt.feeds import load_news
    from llmbt.signals_cache.model.loading import load_tokenizer
    from llmbt.signals_cache.scoring.prompts import render, template_for

    news = load_news(str(path), tz="America/New_York")
    texts = list(dict.fromkeys(news["headline"].astype(str)))[:n]
    tokenizer = load_tokenizer(ModelSpec(base=model))
    return [render(template_for("headlines", version), tokenizer, headline=t) for t in texts]


def bench_precisions(spec: ModelSpec, prompts: Sequence[str], precisions: Sequence[str],
                     batch_size: int = 16) -> list[dict[str, Any]]:
    """One row per precision (the reference first, added when missing) scored on ``prompts``."""
    order = [REFERENCE] + [p for p in precisions if p != REFERENCE]
    rows, ref = [], None
    for precision in order:
        row, probs = _one_precision(replace(spec, precision=precision), list(prompts), batch_size)
        ref = probs if ref is None else ref
        base_ips = rows[0]["items_per_s"] if rows else row["items_per_s"]
        rows.append(row | {"vs_float32": row["items_per_s"] / base_ips} | _exactness(probs, ref))
    return rows


def _one_precision(spec: ModelSpec, prompts: list[str], batch_size: int) -> tuple[dict, np.ndarray]:
    from llmbt.signals_cache.scoring.scorer import LabelScorer

    with _PeakRss() as rss:
        started = time.perf_counter()
        loaded = load_model(spec)
        load_s = time.perf_counter() - started
        scorer = LabelScorer(loaded)
        scorer.score(prompts[:batch_size], batch_size=batch_size)  # warm-up, untimed
        scorer.clear_prefix_cache()  # the timed call pays for its prefix pass
        probs = scorer.score(prompts, batch_size=batch_size, prefix_reuse=True)
        ips = scorer.last_items_per_s
        labels, prefix = scorer.labels, scorer.last_prefix_len
        del scorer, loaded
        gc.collect()
    row = {"precision": spec.precision, "items_per_s": ips, "load_s": load_s,
           "peak_rss_mib": rss.peak_mib, "added_rss_mib": rss.peak_mib - rss.start_mib,
           "prefix_tokens": prefix, "n_prompts": len(prompts)}
    return row, _signed(probs, labels)


def _signed(probs: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """(probabilities, score) with score = P(bullish) − P(bearish) when those labels exist."""
    names = [x.strip().lower() for x in labels]
    score = (probs[:, names.index("bullish")] - probs[:, names.index("bearish")]
             if {"bullish", "bearish"} <= set(names) else probs[:, 0])
    return np.column_stack([probs, score])


def _exactness(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Label agreement and |Δscore| statistics of ``got`` against ``ref`` (see :func:`_signed`)."""
    signed = got[:, -1] - ref[:, -1]
    delta = np.abs(signed)
    return {"agreement": float((got[:, :-1].argmax(1) == ref[:, :-1].argmax(1)).mean()),
            "mean_abs_dscore": float(delta.mean()), "p99_abs_dscore": float(np.quantile(delta, 0.99)),
            "max_abs_dscore": float(delta.max()),
            "std_dscore": float(signed.std(ddof=1)) if len(signed) > 1 else 0.0}


class _PeakRss:
    """Highest resident set size (MiB) seen every 5 ms inside the ``with`` block, and the size
    when it was entered."""

    def __init__(self) -> None:
        self.peak_mib = self.start_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        while not self.peak_mib and self._thread.is_alive():  # the first sample is the start
            time.sleep(0.001)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import resource

        page, statm = resource.getpagesize(), Path("/proc/self/statm")
        if not statm.is_file():  # not Linux: report the process's peak so far instead
            self.peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            return
        with statm.open(encoding="ascii") as fh:
            while True:
                fh.seek(0)
                now = int(fh.read().split()[1]) * page / 2**20
                self.start_mib = self.start_mib or now
                self.peak_mib = max(self.peak_mib, now)
                if self._stop.wait(0.005):
                    return
