"""The training loop behind :func:`llmbt.signals_cache.finetune.trainer.finetune`: answer-token loss, one
optimizer step with gradient accumulation, validation, early stopping with the best weights
restored, and optional TensorBoard scalars. torch and transformers are imported lazily."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmbt.errors import require
from llmbt.signals_cache.finetune.encoding import Encoded, collate
from llmbt.signals_cache.finetune.speed import autocast, batch_stream, resolve_precision
from llmbt.signals_cache.model.kv import prefix_cache_kwargs, supports_logits_to_keep
from llmbt.signals_cache.progress import progress_bar

if TYPE_CHECKING:
    from llmbt.signals_cache.finetune.train_config import TrainConfig


def _loss(model: Any, batch: dict[str, Any], device: str,
          smoothing: float = 0.0) -> tuple[Any, int]:
    """Mean cross-entropy over the answer tokens of ``batch`` and their count (for sequence
    classification, 1-D ``labels``: over its rows' classes, and the row count). Only the
    positions that predict an answer token are projected onto the vocabulary (when the model
    takes ``logits_to_keep``): the full (batch, length, vocab) logits would dominate the cost.
    A batch with a shared ``prefix`` runs it once and the rows' tails on its repeated cache (the
    classifier's head then reads each tail's last token, the same token as without sharing).
    ``smoothing`` is the cross-entropy's label smoothing (training only; validation is plain)."""
    import torch

    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch.pop("labels")
    kwargs: dict[str, Any] = {"use_cache": False}
    if "prefix" in batch:
        kwargs = prefix_cache_kwargs(model, batch.pop("prefix"), len(labels))
    if labels.dim() == 1:  # sequence classification: one label index per row
        logits = model(**batch, **kwargs).logits
        return (torch.nn.functional.cross_entropy(logits.float(), labels, label_smoothing=smoothing),
                len(labels))
    targets = labels[:, 1:]
    if supports_logits_to_keep(model):
        positions = (targets != -100).any(dim=0).nonzero().flatten()
        kwargs["logits_to_keep"] = positions
        targets = targets[:, positions]
    logits = model(**batch, **kwargs).logits
    if "logits_to_keep" not in kwargs:
        logits = logits[:, :-1, :]
    n = int((targets != -100).sum())
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
        ignore_index=-100, reduction="sum", label_smoothing=smoothing,
    )
    return loss / max(n, 1), n


def train_step(model: Any, optimizer: Any, batches: Sequence[dict[str, Any]], device: str,
               precision: str = "fp32", smoothing: float = 0.0) -> float:
    """One optimizer step accumulating gradients over ``batches`` (gradient norm clipped at 1),
    forward passes in ``precision`` (``fp32`` or ``bf16`` autocast; the weights, gradients and
    optimizer state keep their dtype), with label ``smoothing``; returns the mean of their
    answer-token losses."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for batch in batches:
        with autocast(precision, device):
            loss, _n = _loss(model, batch, device, smoothing)
        (loss / len(batches)).backward()
        total += float(loss.detach()) / len(batches)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return total


def val_loss(model: Any, enc: Encoded, cfg: TrainConfig, pad_id: int, device: str,
             precision: str) -> float:
    """Mean cross-entropy of ``model`` over the answer tokens (or, for sequence classification, the
    rows) of the encoded validation examples ``enc``, without gradients, in batches of
    ``cfg.batch_size`` under ``precision``; the model is left in train mode."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), autocast(precision, device):
        for start in range(0, len(enc.ids), cfg.batch_size):
            rows = list(range(start, min(start + cfg.batch_size, len(enc.ids))))
            loss, n = _loss(model, collate(enc, rows, pad_id, shares_prefix(cfg)), device)
            total, count = total + float(loss) * n, count + n
    model.train()
    return total / max(count, 1)


def _trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _summary(losses: list[float]) -> dict[str, Any]:
    if not losses:
        return {}
    k = max(1, len(losses) // 10)
    stride = max(1, math.ceil(len(losses) / 100))
    return {
        "first": losses[0], "last": losses[-1], "min": min(losses),
        "mean_first_10pct": float(np.mean(losses[:k])), "mean_last_10pct": float(np.mean(losses[-k:])),
        "curve": [round(x, 5) for x in losses[::stride]], "curve_stride": stride,
    }


def fit(model: Any, train: Encoded, val: Encoded, cfg: TrainConfig, pad_id: int, device: str,
        progress: bool, log: Callable[[str, float, int], None] | None = None) -> dict[str, Any]:
    """The training loop: AdamW + schedule, validation every ``cfg.eval_every`` steps, early
    stopping; the best adapter weights by validation loss are restored. ``log(tag, value, step)``
    receives ``train/loss``, ``train/lr`` and ``val/loss``. Returns the metrics."""
    import torch
    from transformers import get_scheduler

    log = log or (lambda tag, value, step: None)

    steps_per_epoch = math.ceil(len(train.ids) / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.schedule, optimizer,
                              num_warmup_steps=round(cfg.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    precision = resolve_precision(cfg.precision, device.split(":")[0], cfg.method)
    lengths = [len(ids) for ids in train.ids]
    batches = batch_stream(lengths, cfg.batch_size, cfg.seed, cfg.group_by_length)
    model.train()
    losses: list[float] = []
    val_history: list[list[float]] = []
    best_val, best_state, best_step, bad_evals, stopped_early = math.inf, None, 0, 0, False
    bar = progress_bar(progress, "loss {task.fields[loss]}", unit="steps")
    task = bar.add_task("fine-tune", total=total_steps, loss="")
    bar.start()
    step, loop_start, tokens, train_seconds = 0, time.perf_counter(), 0, 0.0
    try:
        while step < total_steps:
            rows = [next(batches) for _ in range(cfg.grad_accum)]
            started = time.perf_counter()
            micro = [collate(train, r, pad_id, shares_prefix(cfg)) for r in rows]
            step_loss = train_step(model, optimizer, micro, device, precision, cfg.label_smoothing)
            train_seconds += time.perf_counter() - started
            tokens += sum(lengths[i] for r in rows for i in r)
            step += 1
            log("train/loss", step_loss, step)
            log("train/lr", scheduler.get_last_lr()[0], step)
            scheduler.step()
            losses.append(step_loss)
            bar.update(task, advance=1, loss=f"{step_loss:.4f}")
            if val.ids and (step % cfg.eval_every == 0 or step == total_steps):
                vloss = val_loss(model, val, cfg, pad_id, device, precision)
                log("val/loss", vloss, step)
                val_history.append([step, vloss])
                if vloss < best_val - 1e-6:
                    best_val, best_step, bad_evals = vloss, step, 0
                    best_state = _trainable_state(model)
                else:
                    bad_evals += 1
                    if cfg.early_stopping_patience and bad_evals >= cfg.early_stopping_patience:
                        stopped_early = True
                        break
    finally:
        bar.stop()
    loop_seconds = time.perf_counter() - loop_start
    if best_state is not None and best_step != step:
        _restore(model, best_state)
    found = math.isfinite(best_val)
    return {"steps": step, "planned_steps": total_steps, "train_loss": _summary(losses),
            "best_val_loss": best_val if found else None, "best_step": best_step if found else None,
            "val_history": val_history, "stopped_early": stopped_early,
            "seconds_per_step": round(loop_seconds / max(step, 1), 4),  # validation included
            "precision": precision, "train_tokens": tokens,  # real tokens, padding not counted
            "train_tokens_per_s": round(tokens / max(train_seconds, 1e-9), 2)}


def tensorboard_writer(folder: str | Path | None) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``folder`` (None without a folder)."""
    if folder is None:
        return None
    require("tensorboard", "tensorboard", "--tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(Path(folder).expanduser()))


def shares_prefix(cfg: TrainConfig) -> bool:
    """Whether batches share their prompt prefix (not with prefix tuning: its virtual tokens
    are the cache)."""
    return cfg.share_prefix and cfg.method != "prefix"


def _restore(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name])
