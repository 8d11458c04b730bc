"""Timing of the three ways to get label signals from a model, on the same prompts.

:func:`bench_scoring` returns plain numbers; the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmbt.errors import LlmbtError
from llmbt.signals_cache.model.loading import LoadedModel
from llmbt.signals_cache.scoring.scorer import GenerateParser, LabelScorer


def bench_scoring(
    loaded: LoadedModel,
    prompts: Sequence[str],
    *,
    n_generate: int = 8,
    batch_size: int = 16,
    max_new_tokens: int = 16,
) -> dict[str, Any]:
    """Time (a) generate-then-parse one prompt at a time on the first ``n_generate`` prompts,
    (b) batched label scoring and (c) batched label scoring with prefix reuse, in one run.

    (a) is the usual tutorial approach: for each prompt, tokenize it, call
    ``model.generate(do_sample=False, max_new_tokens=max_new_tokens)`` with the model's own
    generation config (it stops at the end-of-turn token, so a one-word reply costs the prompt's
    prefill plus a few decode steps, whatever ``max_new_tokens``), decode and parse the first
    label word. (b) and (c) include tokenisation; (c) includes computing the shared prefix's KV
    once (the memo is cleared first). A warm-up call runs untimed before (a).

    Returns:
        Items per second of each (``generate_items_per_s``, ``plain_items_per_s``,
        ``prefix_items_per_s``), their ratios (``plain_vs_generate``, ``prefix_vs_generate``,
        ``prefix_vs_plain``), ``parse_failures`` of (a), ``agreement`` of (a)'s parsed labels
        with (b)'s argmax, ``max_abs_diff`` between (b) and (c), ``prefix_tokens``,
        ``label_tokens`` (label-prefix tokens read per prompt), ``mean_label_mass`` of the
        prompts and sizes.

    Raises:
        LlmbtError: no prompts, or ``n_generate`` is not a positive integer.
    """
    if not prompts:
        raise LlmbtError("bench_scoring needs prompts; pass at least one rendered prompt.")
    if isinstance(n_generate, bool) or not isinstance(n_generate, int) or n_generate < 1:
        raise LlmbtError(f"n_generate {n_generate!r} must be a positive integer, e.g. 8.")
    scorer = LabelScorer(loaded)
    parser = GenerateParser(loaded, scorer.labels)
    scorer.score(list(prompts[:1]), batch_size=1, prefix_reuse=False)  # warm-up, untimed
    generated, failures = parser.generate_labels(
        list(prompts[:n_generate]), max_new_tokens=max_new_tokens
    )
    plain = scorer.score(prompts, batch_size=batch_size, prefix_reuse=False)
    plain_ips, mass = scorer.last_items_per_s, scorer.last_label_mass
    scorer.clear_prefix_cache()  # (c) pays for its prefix pass
    reused = scorer.score(prompts, batch_size=batch_size, prefix_reuse=True)
    reuse_ips, gen_ips = scorer.last_items_per_s, parser.last_items_per_s
    return {
        "n_prompts": len(prompts),
        "n_generate": len(generated),
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "generate_items_per_s": gen_ips,
        "plain_items_per_s": plain_ips,
        "prefix_items_per_s": reuse_ips,
        "plain_vs_generate": plain_ips / gen_ips,
        "prefix_vs_generate": reuse_ips / gen_ips,
        "prefix_vs_plain": reuse_ips / plain_ips,
        "parse_failures": failures,
        "agreement": _agreement(generated, plain, scorer.labels),
        "max_abs_diff": float(np.abs(plain - reused).max()),
        "prefix_tokens": scorer.last_prefix_len,
        "label_tokens": scorer.label_tokens,
        "mean_label_mass": float(mass.mean()),
    }


def _agreement(generated: list[str | None], probs: np.ndarray, labels: tuple[str, ...]) -> float:
    """Share of parsed generated labels equal to the scorer's most probable label (nan if none)."""
    best = probs[: len(generated)].argmax(axis=1)
    pairs = [(g, labels[int(i)]) for g, i in zip(generated, best, strict=True) if g is not None]
    return float(np.mean([g == s for g, s in pairs])) if pairs else float("nan")
