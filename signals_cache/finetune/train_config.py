"""The fine-tuning hyper-parameters (:class:`TrainConfig`), checked on construction, and the key
fields that decide a trained adapter. :mod:`llmbt.signals_cache.finetune.trainer` trains with them and
:mod:`llmbt.signals_cache.finetune.training` runs the loop they size."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from llmbt.errors import ConfigError
from llmbt.signals_cache.finetune.encoding import text_fields
from llmbt.signals_cache.finetune.speed import PRECISION_ALIASES, PRECISIONS, resolve_precision
from llmbt.signals_cache.scoring.prompts import get_template

METHODS = ("lora", "qlora", "prefix", "seqcls")
SCHEDULES = ("cosine", "linear")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; field names match the CLI flags (``max_steps`` is ``--max-steps``).

    ``r`` is the LoRA rank (for ``prefix`` it is the number of virtual tokens; ``seqcls`` adds a
    trained classification head to LoRA); ``max_steps``
    of 0 trains for ``epochs``; ``early_stopping_patience`` counts validations without a
    validation-loss improvement (0 disables early stopping); ``eval_every`` is in optimizer steps.
    ``top_layers`` > 0 puts LoRA only on the last that many transformer layers (all of them when
    the model has fewer): the backward pass then stops there (2-3x faster steps on CPU).

    The defaults are sized for the embedded SmolLM2-135M on 2 CPU cores: 600 steps of 8 with
    LoRA r=16 on the top 12 of its 30 layers take about 21 minutes (bf16) whatever the data size, and
    reached weighted F1 0.85 on a held-out Financial PhraseBank split. For a 7B model on a GPU
    the usual ``lr=2e-4``, ``top_layers=0`` are the better start.

    ``precision``, ``group_by_length`` and ``share_prefix`` make steps cheaper
    (:mod:`~llmbt.signals_cache.finetune.speed`) at the same loss, though not bit for bit (bf16
    rounds, grouping forms other batches); ``fp32``/``False``/``False`` is the loop as it was
    before they existed. ``label_smoothing`` smooths the training loss only (0: none, the
    default; study ``phrasebank_variants`` compares 0.1 on PhraseBank: within a standard error).
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
    precision: str = "auto"
    group_by_length: bool = True
    share_prefix: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        _choice("--method", self.method, METHODS)
        _choice("--schedule", self.schedule, SCHEDULES)
        if self.precision in PRECISION_ALIASES:  # float32, as scoring spells it: the same run
            object.__setattr__(self, "precision", PRECISION_ALIASES[self.precision])
        _choice("--precision", self.precision, PRECISIONS)
        for name in ("group_by_length", "share_prefix"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{_flag(name)} {getattr(self, name)!r} must be true or false "
                                  f"(the flag {_flag(name)} or --no-{_flag(name)[2:]}).")
        for name, low in (("r", 1), ("alpha", 1), ("epochs", 1), ("max_steps", 0),
                          ("batch_size", 1), ("grad_accum", 1), ("seed", 0),
                          ("early_stopping_patience", 0), ("eval_every", 1), ("max_length", 8),
                          ("top_layers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{_flag(name)} {value!r} must be an integer >= {low}.")
        for name, low, high in (("dropout", 0.0, 1.0), ("warmup_ratio", 0.0, 1.0),
                                ("label_smoothing", 0.0, 1.0),
                                ("weight_decay", 0.0, math.inf), ("lr", 0.0, math.inf)):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or not low <= value <= high or (
                name == "lr" and value <= 0
            ) or (name in ("dropout", "label_smoothing") and value >= 1):
                raise ConfigError(f"{_flag(name)} {value!r} is out of range; e.g. "
                                  f"{getattr(TrainConfig, name)}.")
        if not isinstance(self.target_modules, str) or not self.target_modules.strip():
            raise ConfigError(f"--target-modules {self.target_modules!r} is empty; e.g. all-linear "
                              "or q_proj,v_proj.")
        try:
            template = get_template(self.template)
        except ConfigError as exc:
            raise ConfigError(f"--template: {exc}") from exc
        if len(text_fields(template)) != 1:
            raise ConfigError(f"--template {self.template!r} must have one text field besides "
                              "symbol.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self, device: str) -> dict[str, Any]:
        """The fields that decide the trained adapter on ``device`` (cpu, cuda), for a content
        key: ``precision`` resolved, and each speed setting left out at its value from before
        it existed (fp32, no grouping, no prefix sharing), so older keys stay valid."""
        out = self.to_dict() | {"precision": resolve_precision(self.precision, device,
                                                               self.method)}
        for name, legacy in _LEGACY.items():
            if out[name] == legacy:
                del out[name]
        return out


#: Settings at the values that reproduce training from before they existed.
_LEGACY: dict[str, Any] = {"precision": "fp32", "group_by_length": False, "share_prefix": False,
                           "label_smoothing": 0.0}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _choice(flag: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} {value!r} is not valid; choose from {', '.join(choices)}.")
