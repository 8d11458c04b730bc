"""Fine-tuning the signal model on labelled texts: LoRA, QLoRA (4-bit nf4 base) or prefix tuning.

Each example becomes ``render(template, symbol=..., <text field>=text) + answer_text(label) + eos``
and the loss covers only the answer tokens (the label word and the end-of-turn token), so the
model learns exactly what :class:`~signals_cache.scoring.LabelScorer` reads. A plain torch loop
(AdamW, warm-up + cosine/linear schedule, gradient accumulation, periodic validation loss with
early stopping) trains the adapter; the best adapter by validation loss is saved with peft's
``save_pretrained`` plus ``llmbt_adapter.json`` (base fingerprint, data hash, metrics, versions,
hyper-parameters). torch, transformers and peft are imported lazily.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from feeds.base import ConfigError, LlmbtError
from signals_cache.labels import LABELS
from signals_cache.model import ModelSpec, base_fingerprint, load_model
from signals_cache.prompts import PromptTemplate, answer_text, get_template, render

METHODS = ("lora", "qlora", "prefix")
SCHEDULES = ("cosine", "linear")
META_FILE = "llmbt_adapter.json"
#: Symbol rendered for examples without one.
NO_SYMBOL = "n/a"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; field names match the CLI flags (``max_steps`` is ``--max-steps``).

    ``r`` is the LoRA rank (for ``prefix`` it is the number of virtual tokens); ``max_steps``
    of 0 trains for ``epochs``; ``early_stopping_patience`` counts validations without a
    validation-loss improvement (0 disables early stopping); ``eval_every`` is in optimizer steps.
    ``top_layers`` > 0 puts LoRA only on the last that many transformer layers (all of them when
    the model has fewer): the backward pass then stops there (2-3x faster steps on CPU).

    The defaults are sized for the embedded SmolLM2-135M on 2 CPU cores: 600 steps of 8 with
    LoRA r=16 on the top 12 of its 30 layers take about 30 minutes whatever the data size, and
    reached weighted F1 0.85 on a held-out Financial PhraseBank split. For a 7B model on a GPU
    the usual ``lr=2e-4``, ``top_layers=0`` are the better start.
    """

    method: str = "lora"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = "all-linear"
    lr: float = 1e-3
    epochs: int = 1
    max_steps: int = 600
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    schedule: str = "cosine"
    weight_decay: float = 0.0
    seed: int = 0
    early_stopping_patience: int = 2
    eval_every: int = 100
    max_length: int = 256
    template: str = "headlines-v1"
    top_layers: int = 12

    def __post_init__(self) -> None:
        _choice("--method", self.method, METHODS)
        _choice("--schedule", self.schedule, SCHEDULES)
        for name, low in (("r", 1), ("alpha", 1), ("epochs", 1), ("max_steps", 0),
                          ("batch_size", 1), ("grad_accum", 1), ("seed", 0),
                          ("early_stopping_patience", 0), ("eval_every", 1), ("max_length", 8),
                          ("top_layers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{_flag(name)} {value!r} must be an integer >= {low}.")
        for name, low, high in (("dropout", 0.0, 1.0), ("warmup_ratio", 0.0, 1.0),
                                ("weight_decay", 0.0, math.inf), ("lr", 0.0, math.inf)):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not low <= value <= high or (
                name == "lr" and value <= 0
            ) or (name == "dropout" and value >= 1):
                raise ConfigError(f"{_flag(name)} {value!r} is out of range; e.g. "
                                  f"{getattr(TrainConfig, name)}.")
        if not isinstance(self.target_modules, str) or not self.target_modules.strip():
            raise ConfigError(f"--target-modules {self.target_modules!r} is empty; e.g. all-linear "
                              "or q_proj,v_proj.")
        try:
            template = get_template(self.template)
        except ConfigError as exc:
            raise ConfigError(f"--template: {exc}") from exc
        if len(_text_fields(template)) != 1:
            raise ConfigError(f"--template {self.template!r} must have one text field besides "
                              "symbol.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _choice(flag: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} {value!r} is not valid; choose from {', '.join(choices)}.")


def _text_fields(template: PromptTemplate) -> list[str]:
    return sorted(template.fields - {"symbol"})


def example_fields(example: Any) -> tuple[str, str, str]:
    """(text, canonical label, symbol) of an object with ``.text``/``.label`` (``.symbol``)
    or of a ``(text, label)`` / ``(text, label, symbol)`` tuple. Runs of spaces in the text are
    collapsed; line breaks (bar features are one per line) are kept."""
    if isinstance(example, tuple | list):
        if len(example) not in (2, 3):
            raise LlmbtError(f"example {example!r} must be (text, label) or (text, label, symbol).")
        text, label, symbol = (*example, "")[:3]
    else:
        text, label = example.text, example.label
        symbol = getattr(example, "symbol", "") or ""
    if not isinstance(text, str) or not text.strip():
        raise LlmbtError(f"example text {text!r} is empty; drop that example.")
    lines = (" ".join(line.split()) for line in text.strip().splitlines())
    return "\n".join(x for x in lines if x), answer_text(label), str(symbol).strip() or NO_SYMBOL


def render_example(template: PromptTemplate, tokenizer: Any, text: str, symbol: str) -> str:
    """The prompt of one example (the same text at training and at evaluation)."""
    (field,) = _text_fields(template)
    return render(template, tokenizer, symbol=symbol, **{field: text})


def dataset_hash(examples: Iterable[Any]) -> str:
    """sha256 of the examples' (text, label, symbol), in order."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps(example_fields(ex), ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


@dataclass
class _Encoded:
    """Token ids (int32) per example and where its answer starts (memory-light: no texts)."""

    ids: list[np.ndarray]
    answer_start: list[int]
    truncated: int


def encode_examples(
    examples: Sequence[Any], tokenizer: Any, template: PromptTemplate, max_length: int
) -> _Encoded:
    """Tokenize prompt + answer + eos. A sequence longer than ``max_length`` loses tokens from
    the start of its prompt (the answer is always kept)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise LlmbtError("the tokenizer has no eos token; cannot mark the end of the answer.")
    ids, starts, truncated, prompts = [], [], 0, {}
    for ex in examples:
        text, label, symbol = example_fields(ex)
        key = (text, symbol)
        if key not in prompts:
            prompts = {} if len(prompts) > 4096 else prompts
            prompt = render_example(template, tokenizer, text, symbol)
            prompts[key] = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        prompt_ids = prompts[key]
        answer = tokenizer(label, add_special_tokens=False)["input_ids"] + [eos]
        keep = max_length - len(answer)
        if keep < 1:
            raise ConfigError(f"--max-length {max_length} is shorter than the answer; raise it.")
        if len(prompt_ids) > keep:
            prompt_ids, truncated = prompt_ids[-keep:], truncated + 1
        ids.append(np.asarray(list(prompt_ids) + answer, dtype=np.int32))
        starts.append(len(prompt_ids))
    return _Encoded(ids, starts, truncated)


def collate(enc: _Encoded, rows: Sequence[int], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 off the answer)."""
    import torch

    width = max(len(enc.ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for row, i in enumerate(rows):
        seq = torch.from_numpy(enc.ids[i].astype(np.int64))
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
        labels[row, enc.answer_start[i] : len(seq)] = seq[enc.answer_start[i] :]
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def _top_linear_names(model: Any, layers: list[int]) -> list[str]:
    """Full names of the linear modules inside the given decoder layers (``all-linear`` there)."""
    import re

    import torch

    pattern = re.compile(rf"\.(?:layers|h|blocks)\.({'|'.join(map(str, layers))})\.")
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and pattern.search(name)]


def _peft_config(cfg: TrainConfig, model: Any) -> Any:
    from peft import LoraConfig, PrefixTuningConfig, TaskType

    if cfg.method == "prefix":
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=cfg.r)
    targets: str | list[str] = cfg.target_modules.strip()
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    top = cfg.top_layers if cfg.top_layers < n_layers else 0  # as many or more: all layers
    layers = list(range(n_layers - top, n_layers)) if top else None
    if layers and targets == "all-linear":  # peft takes layers_to_transform only with a list
        targets, layers = _top_linear_names(model, layers), None
    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.r, lora_alpha=cfg.alpha,
                      lora_dropout=cfg.dropout, target_modules=targets, layers_to_transform=layers)


def _trainable_model(spec: ModelSpec, cfg: TrainConfig, resume_adapter: str | None) -> Any:
    """Base model (unmerged, 4-bit for qlora) wrapped with a new or resumed trainable adapter."""
    quantization = "4bit" if cfg.method == "qlora" else spec.quantization
    if cfg.method != "qlora" and quantization != "none":
        raise ConfigError(f"--quantization {quantization} trains only with --method qlora.")
    loaded = load_model(dataclasses.replace(spec, adapter=None, quantization=quantization))
    if resume_adapter is not None:
        _check_resume(spec, resume_adapter)
    return loaded, wrap_trainable(loaded.model, cfg, resume_adapter)


def wrap_trainable(model: Any, cfg: TrainConfig, resume_adapter: str | None = None) -> Any:
    """``model`` frozen and wrapped with a new (``cfg``) or resumed trainable peft adapter; a
    4-bit/8-bit base is first prepared for k-bit training (QLoRA)."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        keep_cpu_4bit_trainable(model)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    for param in model.parameters():
        param.requires_grad_(False)
    if resume_adapter is not None:
        return PeftModel.from_pretrained(model, resume_adapter, is_trainable=True)
    return get_peft_model(model, _peft_config(cfg, model))


def keep_cpu_4bit_trainable(model: Any) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference in eval mode: once
    packed, a later training step fails on layers with a bias (Qwen's q/k/v), e.g. right after
    a validation pass. Call before the first eval-mode forward; a no-op on CUDA."""
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False


def _check_resume(spec: ModelSpec, adapter: str) -> None:
    folder = Path(adapter).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"--resume-adapter {adapter!r} has no adapter_config.json.")
    meta = folder / META_FILE
    wanted = json.loads(meta.read_text()).get("base_fingerprint") if meta.is_file() else None
    if wanted and wanted != base_fingerprint(spec):
        raise LlmbtError(f"--resume-adapter {adapter!r} was trained on another base model "
                         f"(fingerprint {wanted}); pass that base as --model.")


def _loss(model: Any, batch: dict[str, Any], device: str) -> tuple[Any, int]:
    """Mean cross-entropy over the answer tokens of ``batch`` and their count. Only the
    positions that predict an answer token are projected onto the vocabulary (when the model
    takes ``logits_to_keep``): the full (batch, length, vocab) logits would dominate the cost."""
    import torch

    from signals_cache.scoring import _supports_logits_to_keep

    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch.pop("labels")
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


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fine-tune", unit="step", disable=not enabled, leave=False)


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


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}


def _fit(model: Any, train: _Encoded, val: _Encoded, cfg: TrainConfig, pad_id: int, device: str,
         progress: bool, log: Callable[[str, float, int], None] | None = None) -> dict[str, Any]:
    """The training loop: AdamW + schedule, validation every ``cfg.eval_every`` steps, early
    stopping; the best adapter weights by validation loss are restored. ``log(tag, value, step)``
    receives ``train/loss``, ``train/lr`` and ``val/loss``. Returns the metrics."""
    log = log or (lambda tag, value, step: None)
    import torch
    from transformers import get_scheduler

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
    bar = _progress(total_steps, progress)
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
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}")
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
        bar.close()
    loop_seconds = time.perf_counter() - loop_start
    if best_state is not None and best_step != step:
        _restore(model, best_state)
    found = math.isfinite(best_val)
    return {"steps": step, "planned_steps": total_steps, "train_loss": _summary(losses),
            "best_val_loss": best_val if found else None, "best_step": best_step if found else None,
            "val_history": val_history, "stopped_early": stopped_early,
            "seconds_per_step": round(loop_seconds / max(step, 1), 4)}  # validation included


def _tensorboard(folder: str | Path | None) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``folder`` (None without a folder)."""
    if folder is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard "
                          "(or drop --tensorboard).") from exc
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


def finetune(
    examples_train: Sequence[Any],
    examples_val: Sequence[Any],
    spec: ModelSpec,
    out_dir: str | Path,
    cfg: TrainConfig,
    *,
    resume_adapter: str | None = None,
    progress: bool = True,
    tensorboard_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train an adapter of ``spec.base`` and save it to ``out_dir``; returns the metadata written
    to ``out_dir/llmbt_adapter.json``.

    ``resume_adapter`` continues training an existing adapter folder (its own peft config is
    kept; ``cfg.method``/``r``/``alpha`` are then ignored). With ``examples_val`` empty there is
    no validation and the last adapter is saved. ``tensorboard_dir`` gets TensorBoard scalars
    ``train/loss``, ``train/lr`` and ``val/loss`` per step (needs the ``tensorboard`` package).

    Raises:
        ConfigError: bad configuration or an empty training set.
        LlmbtError: the model cannot be loaded or the resumed adapter belongs to another base.
    """
    import torch

    if not isinstance(cfg, TrainConfig):
        raise ConfigError("cfg must be a TrainConfig.")
    examples_train, examples_val = list(examples_train), list(examples_val)
    if not examples_train:
        raise ConfigError("no training examples; pass a non-empty training split.")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    started = time.perf_counter()
    loaded, model = _trainable_model(spec, cfg, resume_adapter)
    tokenizer, device = loaded.tokenizer, loaded.device
    pad_id = tokenizer.pad_token_id
    template = get_template(cfg.template)
    train = encode_examples(examples_train, tokenizer, template, cfg.max_length)
    val = encode_examples(examples_val, tokenizer, template, cfg.max_length)
    data_hash = dataset_hash(examples_train)
    val_hash = dataset_hash(examples_val)
    del examples_train, examples_val

    writer = _tensorboard(tensorboard_dir)
    try:
        metrics = _fit(model, train, val, cfg, pad_id, device, progress,
                       writer.add_scalar if writer else None)
    finally:
        if writer:
            writer.close()
    metrics["seconds"] = round(time.perf_counter() - started, 3)  # the save is not included

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    meta = {
        "base_fingerprint": base_fingerprint(spec),
        "base_model": spec.base,
        "method": cfg.method,
        "labels": list(LABELS),
        "template": template.version,
        "dataset_sha256": data_hash,
        "val_sha256": val_hash,
        "splits": {"train": len(train.ids), "val": len(val.ids)},
        "truncated": {"train": train.truncated, "val": val.truncated},
        "resumed_from": str(resume_adapter) if resume_adapter is not None else None,
        "metrics": metrics,
        "versions": _versions(),
        "hyperparameters": cfg.to_dict(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    return meta
