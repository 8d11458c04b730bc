"""``bt bench train``: speed and memory of scoring and LoRA training per quantization, on models
with random weights of a named shape (a tiny Llama/Qwen, or 7B-shaped ones for GPU numbers).

Random weights make the numbers about speed and memory only: the scores mean nothing. Every
variant runs through the project's own paths: the folder is loaded by :func:`load_model`
(bitsandbytes 8-bit, or 4-bit nf4 with double quantization), scored by :class:`LabelScorer`
with prefix reuse and trained with :func:`wrap_trainable` + :func:`train_step` (QLoRA when the
base is 4-bit). torch, transformers and peft are imported lazily.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError, unknown_name_error
from llmbt.signals_cache.finetune.trainer import keep_cpu_4bit_trainable
from llmbt.signals_cache.model.loading import ModelSpec, load_model, load_tokenizer

#: Named shapes: (model_type, config fields). Vocabulary and special tokens come from the tokenizer.
SHAPES: dict[str, tuple[str, dict[str, int]]] = {
    "tiny-llama": ("llama", {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "num_key_value_heads": 2}),
    "tiny-qwen": ("qwen2", {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "num_key_value_heads": 2}),
    "llama-7b": ("llama", {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                           "num_attention_heads": 32, "num_key_value_heads": 32}),
    "qwen-7b": ("qwen2", {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                          "num_attention_heads": 28, "num_key_value_heads": 4}),
}
QUANTIZATIONS = ("none", "8bit", "4bit")

_SUBJECTS = ("Acme Corp", "Globex", "Initech", "Umbrella plc", "Hooli", "Stark Industries")
_EVENTS = (("reports quarterly revenue up {n} percent", "bullish"),
           ("signs a {n} million euro supply contract", "bullish"),
           ("cuts its full-year outlook by {n} percent", "bearish"),
           ("shares fall {n} percent after a regulator opens a probe", "bearish"),
           ("says its chief executive will step down", "neutral"),
           ("keeps its dividend unchanged at {n} cents a share", "neutral"))


def synthetic_headlines(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (headline, label) pairs of realistic length for timing; the label follows the event,
    so a model can learn them."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        event, label = _EVENTS[int(rng.integers(len(_EVENTS)))]
        subject = _SUBJECTS[int(rng.integers(len(_SUBJECTS)))]
        rows.append((f"{subject} {event.format(n=int(rng.integers(2, 90)))}", label))
    return rows


def save_random_model(shape: str, out: str | Path, tokenizer: str | Path | None = None, *,
                      seed: int = 0, device: str = "cpu") -> Path:
    """Save a model of ``shape`` with random bf16 weights, plus the tokenizer of the folder
    ``tokenizer`` (default: the embedded model's), to ``out``. The weights are drawn on CUDA
    when ``device`` is not ``cpu`` and a GPU is present (a 7B init takes seconds there).

    Raises:
        ConfigError: unknown shape (the message lists the known ones).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if shape not in SHAPES:
        raise unknown_name_error("--shape", shape, SHAPES, cls=ConfigError)
    model_type, fields = SHAPES[shape]
    if tokenizer is None:
        tok = load_tokenizer(ModelSpec())
    else:
        tok = AutoTokenizer.from_pretrained(str(tokenizer), trust_remote_code=False)
    config = AutoConfig.for_model(model_type, vocab_size=len(tok), max_position_embeddings=4096,
                                  tie_word_embeddings=shape.startswith("tiny"),
                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                  bos_token_id=tok.bos_token_id, **fields)
    device = "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    del model
    _free(device)
    return Path(out)


@dataclass(frozen=True)
class TrainBench:
    """What to time: ``n_prompts`` scored, ``steps`` timed optimizer steps (after one warm-up
    step) of ``batch_size`` examples, LoRA rank ``r`` on all linear layers."""

    n_prompts: int = 64
    steps: int = 5
    batch_size: int = 8
    r: int = 16
    device: str = "auto"


def bench_variant(folder: str | Path, quantization: str, bench: TrainBench) -> dict[str, Any]:
    """Load ``folder`` with ``quantization``, time scoring and (except 8-bit) LoRA training.

    Returns:
        ``load_s``, ``weights_gib``, scoring ``score_items_per_s`` / ``score_tokens_per_s`` /
        ``score_peak_gib``, training ``train_tokens_per_s`` / ``train_s_per_step`` /
        ``train_peak_gib`` / ``trainable_params`` / ``loss_first`` / ``loss_last``, and the
        scores (``probs``) for comparison. Peak memory is CUDA's (None on CPU).
    """
    if quantization not in QUANTIZATIONS:
        raise unknown_name_error("--quantization", quantization, QUANTIZATIONS, cls=ConfigError)
    started = time.perf_counter()
    loaded = load_model(ModelSpec(base=str(folder), quantization=quantization, device=bench.device))
    out: dict[str, Any] = {"quantization": quantization, "device": loaded.device,
                           "dtype": loaded.dtype, "load_s": time.perf_counter() - started,
                           "weights_gib": _allocated_gib(loaded.device)}
    if quantization == "4bit":
        keep_cpu_4bit_trainable(loaded.model)  # the same model trains after scoring
    out.update(_bench_scoring(loaded, bench))
    if quantization != "8bit":
        out.update(_bench_training(loaded, bench))
    del loaded
    _free(bench.device)
    return out


def _bench_scoring(loaded: Any, bench: TrainBench) -> dict[str, Any]:
    from llmbt.signals_cache.finetune.encoding import render_example
    from llmbt.signals_cache.scoring.prompts import get_template
    from llmbt.signals_cache.scoring.scorer import LabelScorer

    template = get_template("headlines-v1")
    prompts = [render_example(template, loaded.tokenizer, text, "ACME")
               for text, _ in synthetic_headlines(bench.n_prompts)]
    scorer = LabelScorer(loaded)
    scorer.score(prompts, batch_size=bench.batch_size)  # warm-up: every batch shape once (CUDA
    scorer.clear_prefix_cache()  # picks kernels per shape); the timed pass pays for its prefix
    _reset_peak(loaded.device)
    started = time.perf_counter()
    probs = scorer.score(prompts, batch_size=bench.batch_size)
    _sync(loaded.device)
    seconds = time.perf_counter() - started
    tokens = sum(len(loaded.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    return {"score_items_per_s": len(prompts) / seconds, "score_tokens_per_s": tokens / seconds,
            "score_peak_gib": _peak_gib(loaded.device), "prefix_tokens": scorer.last_prefix_len,
            "probs": probs}


def _bench_training(loaded: Any, bench: TrainBench) -> dict[str, Any]:
    import torch

    from llmbt.signals_cache.finetune.encoding import collate, encode_examples
    from llmbt.signals_cache.finetune.trainer import TrainConfig, wrap_trainable
    from llmbt.signals_cache.finetune.training import train_step
    from llmbt.signals_cache.scoring.prompts import get_template

    cfg = TrainConfig(r=bench.r, alpha=2 * bench.r, dropout=0.0, batch_size=bench.batch_size)
    model = wrap_trainable(loaded.model, cfg)
    model.train()
    n = bench.batch_size * (bench.steps + 1)
    enc = encode_examples(synthetic_headlines(n, seed=1), loaded.tokenizer,
                          get_template(cfg.template), cfg.max_length)
    padded = collate(enc, range(n), loaded.tokenizer.pad_token_id)  # one width: one warm-up
    batches = [{k: v[i : i + bench.batch_size] for k, v in padded.items()}  # step warms all
               for i in range(0, n, bench.batch_size)]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    losses = [train_step(model, optimizer, [batches[0]], loaded.device)]  # warm-up, untimed
    _reset_peak(loaded.device)
    started = time.perf_counter()
    losses += [train_step(model, optimizer, [b], loaded.device) for b in batches[1:]]
    _sync(loaded.device)
    seconds = time.perf_counter() - started
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    result = {"train_tokens_per_s": tokens / seconds, "train_s_per_step": seconds / bench.steps,
              "train_peak_gib": _peak_gib(loaded.device),
              "trainable_params": sum(p.numel() for p in params),
              "loss_first": losses[0], "loss_last": losses[-1]}
    del model, optimizer
    return result


def bench_train(folder: str | Path, bench: TrainBench,
                quantizations: Sequence[str] = QUANTIZATIONS) -> Iterator[dict[str, Any]]:
    """:func:`bench_variant` for each quantization, yielded as each finishes (a 7B variant takes
    minutes); adds ``max_abs_diff_vs_none`` of the scores (the quantization error on the same
    prompts) when ``none`` ran first."""
    reference = None
    for i, quantization in enumerate(quantizations):
        row = bench_variant(folder, quantization, bench)
        probs = row.pop("probs")
        if i == 0 and quantization == "none":
            reference = probs
        row["max_abs_diff_vs_none"] = (float(np.abs(probs - reference).max())
                                       if reference is not None else None)
        yield row


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def _allocated_gib(device: str) -> float | None:
    import torch

    return torch.cuda.memory_allocated() / 2**30 if device.startswith("cuda") else None


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.empty_cache()
