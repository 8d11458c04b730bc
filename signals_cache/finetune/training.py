"""The training loop behind :func:`llmbt.signals_cache.finetune.trainer.finetune`: answer-token loss, one
optimizer step with gradient accumulation, validation, early stopping with the best weights
restored, and optional TensorBoard scalars. torch and transformers are imported lazily."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmbt.errors import require
from llmbt.signals_cache.finetune.encoding import _Encoded, collate
from llmbt.signals_cache.progress import progress_bar

if TYPE_CHECKING:
    from llmbt.signals_cache.finetune.trainer import TrainConfig


def _loss(model: Any, batch: dict[str, Any], device: str) -> tuple[Any, int]:
    """Mean cross-entropy over the answer tokens of ``batch`` and their count (for sequence
    classification, 1-D ``labels``: over its rows' classes, and the row count). Only the
    positions that predict an answer token are projected onto the vocabulary (when the model
    takes ``logits_to_keep``): the full (batch, length, vocab) logits would dominate the cost."""
    import torch

    from llmbt.signals_cache.scoring.scorer import _supports_logits_to_keep

    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch.pop("labels")
    if labels.dim() == 1:  # sequence classification: one label index per row
        logits = model(**batch, use_cache=False).logits
        return torch.nn.functional.cross_entropy(logits.float(), labels), len(labels)
    targets = labels[:, 1:]
    kwargs: dict[str, Any] = {}
    if _supports_logits_to_keep(model):
        positions = (targets != -100).any(dim=0).nonzero().flatten()
        kwargs["logits_to_keep"] = positions
        targets = targets[:, positions]
    logits = model(**batch, use_cache=False, **kwargs).logits
    if not kwargs:
        logits = logits[:, :-1, :]
    n = int((targets != -100).sum())
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
        ignore_index=-100, reduction="sum",
    )
    return loss / max(n, 1), n


def train_step(model: Any, optimizer: Any, batches: Sequence[dict[str, Any]], device: str) -> float:
    """One optimizer step accumulating gradients over ``batches`` (gradient norm clipped at 1);
    returns the mean of their answer-token losses."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for batch in batches:
        loss, _n = _loss(model, batch, device)
        (loss / len(batches)).backward()
        total += float(loss.detach()) / len(batches)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return total


def _val_loss(model: Any, enc: _Encoded, batch_size: int, pad_id: int, device: str) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(enc.ids), batch_size):
            rows = list(range(start, min(start + batch_size, len(enc.ids))))
            loss, n = _loss(model, collate(enc, rows, pad_id), device)
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


def fit(model: Any, train: _Encoded, val: _Encoded, cfg: TrainConfig, pad_id: int, device: str,
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
    batches = iter(_shuffled_batches(len(train.ids), cfg.batch_size, cfg.seed))
    model.train()
    losses: list[float] = []
    val_history: list[list[float]] = []
    best_val, best_state, best_step, bad_evals, stopped_early = math.inf, None, 0, 0, False
    bar = progress_bar(progress, "loss {task.fields[loss]}")
    task = bar.add_task("fine-tune", total=total_steps, loss="")
    bar.start()
    step, loop_start = 0, time.perf_counter()
    try:
        while step < total_steps:
            micro = [collate(train, next(batches), pad_id) for _ in range(cfg.grad_accum)]
            step_loss = train_step(model, optimizer, micro, device)
            step += 1
            log("train/loss", step_loss, step)
            log("train/lr", scheduler.get_last_lr()[0], step)
            scheduler.step()
            losses.append(step_loss)
            bar.update(task, advance=1, loss=f"{step_loss:.4f}")
            if val.ids and (step % cfg.eval_every == 0 or step == total_steps):
                vloss = _val_loss(model, val, cfg.batch_size, pad_id, device)
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
            "seconds_per_step": round(loop_seconds / max(step, 1), 4)}  # validation included


def tensorboard_writer(folder: str | Path | None) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``folder`` (None without a folder)."""
    if folder is None:
        return None
    require("tensorboard", "tensorboard", "--tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(Path(folder).expanduser()))


def _shuffled_batches(n: int, batch_size: int, seed: int) -> Iterable[list[int]]:
    """Row indices in batches, reshuffled each epoch, without end (the step count stops it)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size].tolist()


def _restore(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name])
