"""The configuration of a walk-forward (:class:`WalkForwardConfig`, whose hash names the run), the
names of its own arms, and the checks of its ``--arm`` arms and ``--head-param`` settings, all made
before any data is read. :mod:`llmbt.experiments.walkforward` runs it; :mod:`llmbt.experiments.wf_arms`
trains the arms per fold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError, did_you_mean
from llmbt.experiments.arms import Arm, check_arm_prompt
from llmbt.experiments.executors import check_executor
from llmbt.experiments.splitters import WalkForward
from llmbt.experiments.universe_arms import BENCHMARK
from llmbt.experiments.wf_schedule import check_wf_schedule

#: The walk-forward's own arms: the plain base model and the fold's LoRA.
BASE, TUNED = "base", "lora"
#: Arm kinds the walk-forward trains per fold (their ``adapter=`` is the fold's artefact).
TRAINED_KINDS = ("embeddings", "seqcls")
#: Names the walk-forward gives its own columns.
RESERVED = (BASE, TUNED, BENCHMARK, "buy_and_hold")
#: HeadConfig fields that hold several values (a scalar ``--head-param layers=-1`` is one of them).
_TUPLE_FIELDS = ("layers", "poolings", "c_grid")


def default_train() -> dict[str, Any]:
    """Fine-tuning defaults sized for the embedded model on 2 CPU cores (a few minutes a fold)."""
    return {"template": "bars-v2", "max_length": 640, "max_steps": 24, "batch_size": 8, "r": 8,
            "alpha": 16,
            "lr": 1e-3, "top_layers": 8, "eval_every": 8, "early_stopping_patience": 2,
            "warmup_ratio": 0.1}


@dataclass(frozen=True)
class WalkForwardConfig:
    """One walk-forward run; its hash (:attr:`run_id`) names the run.

    Attributes:
        run: strategy, data, costs and base model (``run.start``/``run.end`` bound the bars split).
        splitter: the train/test windows.
        horizon: label horizon in bars (forward return from the next bar's open).
        label_method: ``quantile`` or ``vol`` thresholds (see ``llmbt.signals_cache.finetune.datasets``).
        train: :class:`~llmbt.signals_cache.finetune.trainer.TrainConfig` fields (over :func:`default_train`).
        warm_start: start each fold's adapter from the previous fold's (incremental training).
        val_fraction: share of each train window's examples held out for early stopping.
        max_val: at most this many of them are used (evenly spaced over the validation block, so
            it still spans its whole period; 0 = all): a universe's validation block holds
            thousands of headlines, and each validation pass would cost more than the training.
        fail_fast: stop at the first failing fold instead of logging it and going on.
        executor: where folds run: ``serial`` (this process) or ``ray`` (Ray tasks; not with
            ``warm_start``, which chains the folds).
        ray_address: the Ray cluster for ``executor="ray"`` (None: a local Ray instance).
        arms: more arms (:class:`~llmbt.experiments.arms.Arm`), each trained per fold where its kind
            needs it and tested on the fold's test window (:mod:`llmbt.experiments.wf_arms`).
        head: ``HeadConfig`` fields of the per-fold embedding heads (``--head-param``).
    """

    run: RunConfig = field(default_factory=lambda: RunConfig(strategy="llm_sentiment"))
    splitter: WalkForward = field(default_factory=lambda: WalkForward(train=252, test=63, embargo=5))
    horizon: int = 5
    label_method: str = "quantile"
    train: dict[str, Any] = field(default_factory=dict)
    warm_start: bool = False
    val_fraction: float = 0.15
    max_val: int = 256
    fail_fast: bool = False
    executor: str = "serial"
    ray_address: str | None = None
    arms: tuple[Any, ...] = ()
    head: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise ConfigError(f"--horizon {self.horizon!r} must be a whole number of bars >= 1.")
        if self.splitter.embargo < self.horizon:
            raise ConfigError(f"--embargo {self.splitter.embargo} is shorter than --horizon "
                              f"{self.horizon}: train labels would see test bars; use --embargo "
                              f"{self.horizon} or more.")
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction {self.val_fraction!r} must be in (0, 0.5), e.g. 0.15 "
                              "(a WalkForwardConfig field; bt walkforward holds out 0.15).")
        if isinstance(self.max_val, bool) or not isinstance(self.max_val, int) or self.max_val < 0:
            raise ConfigError(f"--max-val {self.max_val!r} must be a whole number >= 0 (0 = all).")
        if self.universe and self.label_method != "quantile":
            raise ConfigError(f"label_method {self.label_method!r}: a universe walk-forward labels "
                              "headlines by quantiles of their excess return; use quantile "
                              "(a WalkForwardConfig field).")
        if not self.universe and self.run.mode != "bars":
            raise ConfigError("walk-forward fine-tunes on bar prompts; use --mode bars.")
        if self.run.adapter:  # it would score the base arm, and may have seen the test windows
            raise ConfigError(f"--adapter {self.run.adapter!r}: bt walkforward trains its own adapter "
                              "per fold and compares it with the plain base model; drop --adapter, "
                              "or compare that adapter with bt compare --arm name=lora,adapter=DIR.")
        self.train_config()  # validates the training fields, naming the flag
        check_executor(self.executor, self.ray_address)
        if self.warm_start and self.executor != "serial":
            raise ConfigError(f"--warm-start chains the folds (each adapter starts from the previous "
                              f"fold's), so they cannot run as parallel tasks; drop --warm-start or "
                              f"--executor {self.executor}.")
        if self.arms or self.head:
            check_wf_arms(self)
        check_wf_schedule(self)

    @property
    def universe(self) -> bool:
        """True for a portfolio strategy: headlines of a universe (:mod:`llmbt.experiments.universe_wf`)."""
        from llmbt.engine.portfolio_run import is_portfolio

        return is_portfolio(self.run.strategy)

    def train_config(self) -> Any:
        """The :class:`~llmbt.signals_cache.finetune.trainer.TrainConfig` of every fold."""
        from llmbt.signals_cache.finetune.trainer import TrainConfig
        from llmbt.signals_cache.scoring.prompts import template_for
        from llmbt.signals_cache.universe import UNIVERSE_TEMPLATE

        mode, default = ("headlines", UNIVERSE_TEMPLATE) if self.universe else ("bars", None)
        fields_ = default_train() | {"template": template_for(mode, self.run.prompt or default).version}
        if self.universe:
            fields_["max_length"] = 256  # a headline prompt is short
        try:
            return TrainConfig(**(fields_ | dict(self.train)))
        except TypeError as exc:
            raise ConfigError(f"--train-param: {exc}; see bt finetune --help for the names.") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the run's ``config.json``)."""
        out = {"run": self.run.to_dict(), "splitter": vars(self.splitter).copy(),
               "horizon": self.horizon, "label_method": self.label_method,
               "train": self.train_config().to_dict(), "warm_start": self.warm_start,
               "val_fraction": self.val_fraction, "max_val": self.max_val} | wf_arms_dict(self)
        return out | ({"universe": True, "labels": "excess over the equal-weight universe"}
                      if self.universe else {})

    @property
    def run_id(self) -> str:
        """12 hex digits of the config's hash (``fail_fast``, ``executor`` and ``ray_address``
        excluded: they change no result; the run as :meth:`RunConfig.id_dict` hashes it)."""
        blob = json.dumps(self.to_dict() | {"run": self.run.id_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def check_wf_arms(cfg: WalkForwardConfig) -> None:
    """Refuse arms the walk-forward cannot run, before any data is read.

    Raises:
        ConfigError: a repeated or reserved name, an unknown kind, ``adapter=`` on any arm (a
            trained kind is trained per fold; a fixed artefact may have seen the test windows), a
            model arm's prompt that is no headline template (a universe) or no bar template
            (one symbol), or bad ``--head-param`` settings.
    """
    from llmbt.signals_cache.text_scorers.registry import LM_KIND, check_kind

    names = [a.name for a in cfg.arms]
    for name in names:
        if name in RESERVED or names.count(name) > 1:
            raise ConfigError(f"--arm name={name}: each arm needs its own name, none of "
                              f"{', '.join(RESERVED)} (the walk-forward's own columns); rename it.")
    for arm in cfg.arms:
        check_kind(arm.kind)
        if arm.adapter:
            raise ConfigError(_adapter_refusal(arm))
        if arm.kind == LM_KIND:
            check_arm_prompt(cfg.run, arm, universe=cfg.universe)
    if cfg.head or any(a.kind == "embeddings" for a in cfg.arms):
        head_config(cfg.head)


def _adapter_refusal(arm: Arm) -> str:
    """The one-line refusal of an arm's ``adapter=`` in a walk-forward."""
    if arm.kind in TRAINED_KINDS:
        return (f"--arm {arm.name}: adapter={arm.adapter} with kind={arm.kind}: bt walkforward "
                f"trains this arm per fold on the fold's training window; drop adapter=.")
    return (f"--arm {arm.name}: adapter={arm.adapter}: a fixed adapter may have been trained on "
            "the walk-forward's test windows; drop adapter= (the per-fold LoRA is the 'lora' arm; "
            "kind=seqcls or kind=embeddings are trained per fold), or test it with bt compare --arm.")


def head_config(head: Mapping[str, Any]) -> Any:
    """The :class:`~llmbt.signals_cache.heads.train.HeadConfig` of ``--head-param`` settings
    (over its defaults; a list or a scalar for ``layers``, ``poolings`` and ``c_grid``).

    Raises:
        ConfigError: an unknown field, naming the fields, or a bad value.
    """
    from llmbt.signals_cache.heads.train import HeadConfig

    fields_ = {k: tuple(v) if isinstance(v, list | tuple) else (v,) if k in _TUPLE_FIELDS else v
               for k, v in head.items()}
    known = [f.name for f in dataclasses.fields(HeadConfig)]
    unknown = [k for k in fields_ if k not in known]
    if unknown:
        raise ConfigError(f"--head-param {unknown[0]}: unknown.{did_you_mean(unknown[0], known)} "
                          f"Use one of {', '.join(known)} (see bt head train), e.g. "
                          "--head-param layers=[14,18].")
    return HeadConfig(**fields_)


def wf_arms_dict(cfg: WalkForwardConfig) -> dict[str, Any]:
    """The arms' part of the run's ``config.json`` (and so of its run id): empty without arms."""
    if not cfg.arms:
        return {}
    out: dict[str, Any] = {"arms": [dataclasses.asdict(a) for a in cfg.arms]}
    if any(a.kind == "embeddings" for a in cfg.arms):
        out["head"] = dataclasses.asdict(head_config(cfg.head))
    return out
