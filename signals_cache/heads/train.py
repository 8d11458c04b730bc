"""Training an embedding head: features of the train and validation texts from one pass of the
base model per batch (every layer and pooling asked for at once), a multinomial logistic
regression (scikit-learn, the ``heads`` extra; the only module that imports it) per
(layer, pooling, C) on standardised train features, and the best by validation weighted F1
(then validation log-loss) saved as a numpy head folder (:mod:`.linear`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError, DataError, require
from llmbt.signals_cache.finetune.encoding import dataset_hash
from llmbt.signals_cache.finetune.evaluate import classification_metrics
from llmbt.signals_cache.heads.embed import DEFAULT_MAX_LENGTH, check_pooling, extract_features
from llmbt.signals_cache.heads.linear import LinearHead, save_head
from llmbt.signals_cache.heads.scorer import HEAD_PRECISION
from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint, load_model
from llmbt.signals_cache.scoring.labels import LABELS

CLASS_WEIGHTS = ("balanced", "none")
#: Inverse regularisation strengths tried (the best on validation is kept). On PhraseBank with
#: SmolLM2-135M the best C was 0.003-0.03 for every layer and pooling; larger C fits slowly.
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)


@dataclass(frozen=True)
class HeadConfig:
    """What ``bt head train`` tries: every ``layers`` × ``poolings`` × ``c_grid`` is fitted on
    train and the best on validation kept. ``layers`` are 1-based (-1 = last layer).

    Defaults from a sweep on PhraseBank with SmolLM2-135M (30 layers; README): mean pooling beat
    last-token pooling at every layer (test weighted F1 0.72-0.78 against 0.61-0.73), middle
    layers 14-22 beat the last one (0.73), the pass stops after layer 22 (~3/4 of the cost), and
    unweighted classes did a little better than ``balanced`` on validation and test (0.78 / 0.76).
    """

    layers: tuple[int, ...] = (14, 18, 22)
    poolings: tuple[str, ...] = ("mean",)
    c_grid: tuple[float, ...] = C_GRID
    class_weight: str = "none"
    batch_size: int = 32
    max_length: int = DEFAULT_MAX_LENGTH
    autocast: bool = True
    max_iter: int = 3000
    seed: int = 0

    def __post_init__(self) -> None:
        for p in self.poolings:
            check_pooling(p)
        if self.class_weight not in CLASS_WEIGHTS:
            raise ConfigError(f"--class-weight {self.class_weight!r} is not valid; choose from "
                              f"{', '.join(CLASS_WEIGHTS)}.")
        if not self.layers or not self.poolings or not self.c_grid:
            raise ConfigError("give at least one --layer, --pooling and C to try.")
        if any(not (isinstance(c, int | float) and math.isfinite(c) and c > 0)
               for c in self.c_grid):
            raise ConfigError(f"C values {self.c_grid!r} must be positive numbers, e.g. 0.1.")
        for name, low in (("batch_size", 1), ("max_length", 8), ("max_iter", 10)):
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)!r} must be "
                                  f">= {low}.")


def _labels_of(examples: Sequence[Any], split: str) -> np.ndarray:
    labels = [ex.label for ex in examples]
    absent = [lab for lab in LABELS if lab not in labels]
    if split == "train" and absent:
        raise DataError(f"the training split has no {', '.join(map(repr, absent))} examples; "
                        "a head needs every label in train (add examples, or rebuild the dataset with "
                        "bt dataset build --rebalance).")
    return np.asarray(labels)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) of train features (a constant column gets scale 1)."""
    x = np.asarray(x, dtype=np.float64)
    scale = x.std(axis=0)
    return x.mean(axis=0), np.where(scale > 0, scale, 1.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, cfg: HeadConfig) -> tuple[LinearHead, Any]:
    """A multinomial logistic regression on ``x`` (standardised here) as a :class:`LinearHead`
    over :data:`LABELS` (plus the scikit-learn model, to check the numpy rebuild against)."""
    require("sklearn", "heads", "bt head train")
    from sklearn.linear_model import LogisticRegression

    mean, scale = standardiser(x)
    model = LogisticRegression(
        C=c, class_weight=None if cfg.class_weight == "none" else cfg.class_weight,
        max_iter=cfg.max_iter, random_state=cfg.seed)
    model.fit((x - mean) / scale, y)
    order = [list(model.classes_).index(lab) for lab in LABELS]
    head = LinearHead(mean, scale, np.asarray(model.coef_[order], np.float64),
                      np.asarray(model.intercept_[order], np.float64), tuple(LABELS))
    return head, model


def _log_loss(y: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]) -> float:
    rows = np.arange(len(y))
    cols = np.array([labels.index(lab) for lab in y])
    return float(-np.log(np.clip(probs[rows, cols], 1e-15, None)).mean())


def search(train_x: dict, y_train: np.ndarray, val_x: dict, y_val: np.ndarray,
           cfg: HeadConfig) -> tuple[tuple[int, str, float], LinearHead, list[dict], float]:
    """Fit every (layer, pooling, C); returns the best key, its head, the table of tries and
    the largest |numpy − scikit-learn| probability difference of the best on validation."""
    tries, best = [], None
    for (layer, pooling), x in train_x.items():
        for c in cfg.c_grid:
            head, model = fit_logistic(x, y_train, c, cfg)
            probs = head.predict_proba(val_x[(layer, pooling)])
            wf1 = classification_metrics(y_val, probs, head.labels)["weighted_f1"]
            loss = _log_loss(y_val, probs, head.labels)
            tries.append({"layer": layer, "pooling": pooling, "C": c,
                          "val_weighted_f1": round(wf1, 6), "val_log_loss": round(loss, 6)})
            if best is None or (wf1, -loss) > best[0]:
                sk = model.predict_proba((val_x[(layer, pooling)] - head.mean) / head.scale)
                gap = float(np.abs(sk[:, [list(model.classes_).index(lab) for lab in LABELS]]
                                   - probs).max())
                best = ((wf1, -loss), (layer, pooling, c), head, gap)
    return best[1], best[2], tries, best[3]


def head_features(loaded: Any, examples: Sequence[Any], cfg: HeadConfig) -> dict:
    """Features of ``examples``' texts for every layer × pooling of ``cfg``."""
    return extract_features(loaded.model, loaded.tokenizer, [ex.text for ex in examples],
                            cfg.layers, poolings=cfg.poolings, batch_size=cfg.batch_size,
                            max_length=cfg.max_length, autocast=cfg.autocast)


def train_head(examples_train: Sequence[Any], examples_val: Sequence[Any], base: str,
               out_dir: str | Path, cfg: HeadConfig, *, device: str = "auto") -> dict[str, Any]:
    """Train a head on ``base``'s features and save it to ``out_dir``; returns its metadata.

    Raises:
        ConfigError: bad configuration, or no validation examples to choose C with.
        DataError: the training split lacks a label.
    """
    examples_train, examples_val = list(examples_train), list(examples_val)
    y_train, y_val = _labels_of(examples_train, "train"), _labels_of(examples_val, "val")
    if not len(y_val):
        raise ConfigError("the head chooses layer, pooling and C on validation: pass --val FILE "
                          "or a --data file large enough for a 10 % validation split.")
    started = time.perf_counter()
    spec = ModelSpec(base=base, device=device, precision=HEAD_PRECISION)
    loaded = load_model(spec)
    train_x, val_x = head_features(loaded, examples_train, cfg), head_features(loaded, examples_val, cfg)
    extracted = time.perf_counter()
    (layer, pooling, c), head, tries, gap = search(train_x, y_train, val_x, y_val, cfg)
    val = classification_metrics(y_val, head.predict_proba(val_x[(layer, pooling)]), head.labels)
    meta = {
        "base_model": base, "base_fingerprint": base_fingerprint(spec), "layer": layer,
        "pooling": pooling, "max_length": cfg.max_length, "autocast": cfg.autocast, "C": c,
        "class_weight": cfg.class_weight, "dim": head.dim,
        "splits": {"train": len(y_train), "val": len(y_val)},
        "dataset_sha256": dataset_hash(examples_train), "val_sha256": dataset_hash(examples_val),
        "metrics": {"val": val, "tries": tries, "max_abs_diff_vs_sklearn": gap,
                    "extract_seconds": round(extracted - started, 3),
                    "seconds": round(time.perf_counter() - started, 3)},
        "hyperparameters": asdict(cfg), "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    save_head(out_dir, head, meta)
    return meta | {"labels": list(head.labels)}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("scikit-learn", "numpy", "torch", "transformers")}
