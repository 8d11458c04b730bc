"""``bt bench train --model``: tokens/s of ``bt finetune`` on a real model and real examples,
the loop as it was (fp32, shuffled batches, every row run whole) against today's defaults
(:mod:`llmbt.signals_cache.finetune.speed`), with the held-out loss both reach.

Both variants train a fresh LoRA adapter (same seed, ``bt finetune``'s defaults otherwise)
for the same number of steps over the same examples: exactly one epoch of ``steps x
batch_size`` examples, batched each variant's way; one untimed step with learning rate 0
warms the kernels first. Tokens are real (padding not counted). The held-out loss is computed
the same way for both (fp32, plain batches) on examples neither trained on, so a lower speed
cost at an equal loss is visible in one table. A variant with ``method: seqcls`` trains the
classification-head LoRA instead, on a freshly loaded classifier of the same base (its held-out
loss is over the three classes). torch is imported lazily.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmbt.errors import ConfigError

#: Financial PhraseBank beside the project (see ../shared/data/MANIFEST.md), when present.
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fpb" / "fpb50_dev.csv"
#: The two loops compared: as before the speed settings existed, and today's defaults.
VARIANTS: dict[str, dict[str, Any]] = {
    "before": {"precision": "fp32", "group_by_length": False, "share_prefix": False},
    "now": {},
}


def bench_examples(data: str | Path | None, n: int, seed: int = 0) -> tuple[list, str]:
    """``n`` labelled examples of ``data`` (default: the shared PhraseBank, else the bundled
    synthetic headlines) in a seeded random order, and where they came from."""
    import numpy as np

    from llmbt.experiments.bench.train import synthetic_headlines
    from llmbt.signals_cache.finetune.datasets import load_labelled

    path = Path(data) if data is not None else DEFAULT_DATA
    if data is None and not path.is_file():
        return synthetic_headlines(n, seed=seed), "synthetic headlines (no shared PhraseBank)"
    examples = load_labelled(str(path))
    if len(examples) < n:
        raise ConfigError(f"--data {str(path)!r} has {len(examples)} examples; the bench needs "
                          f"{n} (--steps x --batch-size + --n-val): lower --steps.")
    order = np.random.default_rng(seed).permutation(len(examples))[:n]
    return [examples[i] for i in order], str(path)


def bench_finetune(model: str, examples: Sequence[Any], *, steps: int, batch_size: int,
                   n_val: int, device: str = "cpu",
                   variants: Mapping[str, Mapping[str, Any]] = VARIANTS) -> Iterator[dict[str, Any]]:
    """One row per entry of ``variants`` (name: the :class:`TrainConfig` fields it changes from
    ``bt finetune``'s defaults), yielded as each finishes: the first ``steps x batch_size``
    examples train, the next ``n_val`` give the held-out loss.

    Raises:
        ConfigError: fewer examples than the run needs.
        LlmbtError: the model cannot be loaded.
    """
    from llmbt.signals_cache.finetune.trainer import TrainConfig
    from llmbt.signals_cache.model.loading import ModelSpec, load_model

    n_train = steps * batch_size
    if len(examples) < n_train + n_val:
        raise ConfigError(f"the bench needs {n_train + n_val} examples, got {len(examples)}.")
    base = TrainConfig(max_steps=steps, batch_size=batch_size, early_stopping_patience=0)
    split = (examples[:n_train], examples[n_train : n_train + n_val])
    spec = ModelSpec(base=model, device=device, precision="float32")
    language_model = None  # loaded on the first label-token variant, reused by the others
    for name, fields in variants.items():
        cfg = dataclasses.replace(base, **fields)
        if cfg.method == "seqcls":
            loaded = _fresh_classifier(spec, cfg.seed)
        else:
            loaded = language_model = language_model or load_model(spec)
        train, val = _encoded(loaded.tokenizer, cfg, split)
        yield {"variant": name} | _run_variant(loaded, cfg, train, val)


def _fresh_classifier(spec: Any, seed: int) -> Any:
    """``spec``'s base loaded as the classifier ``--method seqcls`` trains, its new head
    initialised from ``seed`` (as ``bt finetune``), so every seqcls variant starts alike."""
    import torch

    from llmbt.signals_cache.model.loading import LoadedModel
    from llmbt.signals_cache.model.seqcls import load_seqcls

    torch.manual_seed(seed)
    net, tokenizer, where = load_seqcls(spec, trainable=True)
    return LoadedModel(net, tokenizer, "", spec, where)


def _encoded(tokenizer: Any, cfg: Any, split: tuple[Sequence[Any], Sequence[Any]]) -> tuple[Any, Any]:
    """The (train, val) examples encoded the way ``cfg.method`` trains on them."""
    from llmbt.signals_cache.finetune.encoding import encode_classes, encode_examples
    from llmbt.signals_cache.scoring.prompts import get_template

    encode = encode_classes if cfg.method == "seqcls" else encode_examples
    template = get_template(cfg.template)
    train, val = (encode(part, tokenizer, template, cfg.max_length) for part in split)
    return train, val


def _run_variant(loaded: Any, cfg: Any, train: Any, val: Any) -> dict[str, Any]:
    """Train a fresh adapter of ``loaded.model`` with ``cfg``; its speed, cost and losses."""
    import torch

    from llmbt.signals_cache.finetune.encoding import Encoded
    from llmbt.signals_cache.finetune.trainer import wrap_trainable
    from llmbt.signals_cache.finetune.training import fit, val_loss

    pad, device = loaded.tokenizer.pad_token_id, loaded.device
    torch.manual_seed(cfg.seed)
    model = wrap_trainable(loaded.model, cfg)
    legacy = dataclasses.replace(cfg, **VARIANTS["before"])
    loss_before = val_loss(model, val, legacy, pad, device, "fp32")
    _warm_up(model, train, cfg, pad, device)
    torch.manual_seed(cfg.seed)
    _reset_peak_rss()
    metrics = fit(model, train, Encoded([], [], 0), cfg, pad, device, progress=False)
    row = {"method": cfg.method, "precision": metrics["precision"],
           "group_by_length": cfg.group_by_length,
           "share_prefix": cfg.share_prefix, "steps": metrics["steps"],
           "s_per_step": metrics["seconds_per_step"], "tokens_per_s": metrics["train_tokens_per_s"],
           "peak_rss_gib": _peak_rss_gib(), **_batch_cost(train, cfg),
           "train_loss_last_10pct": metrics["train_loss"]["mean_last_10pct"],
           "val_loss_start": loss_before, "val_loss_end": val_loss(model, val, legacy, pad,
                                                                    device, "fp32")}
    loaded.model = model.unload()  # the bare base again for the next variant
    return row


def _warm_up(model: Any, train: Any, cfg: Any, pad: int, device: str) -> None:
    """One step at learning rate 0 (the adapter stays at its init) so kernels exist."""
    import torch

    from llmbt.signals_cache.finetune.encoding import collate
    from llmbt.signals_cache.finetune.speed import resolve_precision
    from llmbt.signals_cache.finetune.training import shares_prefix, train_step

    params = [p for p in model.parameters() if p.requires_grad]
    batch = collate(train, list(range(cfg.batch_size)), pad, shares_prefix(cfg))
    precision = resolve_precision(cfg.precision, device.split(":")[0], cfg.method)
    train_step(model, torch.optim.SGD(params, lr=0.0), [batch], device, precision)
    model.zero_grad(set_to_none=True)


def _batch_cost(train: Any, cfg: Any) -> dict[str, float]:
    """Padding share of the run's batches, and real tokens per computed token position
    (a shared prefix is computed once per batch)."""
    from llmbt.signals_cache.finetune.encoding import shared_prefix
    from llmbt.signals_cache.finetune.speed import batch_stream, padding_fraction
    from llmbt.signals_cache.finetune.training import shares_prefix

    lengths = [len(ids) for ids in train.ids]
    stream = batch_stream(lengths, cfg.batch_size, cfg.seed, cfg.group_by_length)
    batches = [next(stream) for _ in range(cfg.max_steps)]
    computed = 0
    for rows in batches:
        p = shared_prefix(train, rows) if shares_prefix(cfg) and len(rows) > 1 else 0
        computed += p + len(rows) * (max(lengths[i] for i in rows) - p)
    real = sum(lengths[i] for rows in batches for i in rows)
    return {"pad_fraction": padding_fraction(lengths, batches),
            "real_per_computed_token": real / max(computed, 1)}


def _reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS count of this process (Linux; elsewhere a no-op)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return


def _peak_rss_gib() -> float | None:
    """Peak resident memory of this process since :func:`_reset_peak_rss` (None off Linux)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return None


def speedup(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``now`` over ``before``: tokens/s ratio and the held-out loss difference."""
    by = {r["variant"]: r for r in rows}
    before, now = by["before"], by["now"]
    return {"tokens_per_s_ratio": now["tokens_per_s"] / before["tokens_per_s"],
            "val_loss_diff": now["val_loss_end"] - before["val_loss_end"]}
