"""A linear classifier head as plain numpy arrays: ``softmax(((x - mean) / scale) @ coef.T +
intercept)`` over its labels, and its folder on disk.

The folder holds ``head.safetensors`` (the five arrays, read back with safetensors' numpy loader:
no pickle, no code) and :data:`HEAD_META` (JSON: format, labels, base model and fingerprint, layer,
pooling, extraction settings, training record). A folder with :data:`HEAD_META` is a head folder
wherever ``--adapter`` takes one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError
from llmbt.signals_cache.model.hashing import atomic_write_text

#: The head's metadata file (its presence marks a head folder).
HEAD_META = "llmbt_head.json"
#: The head's arrays.
HEAD_WEIGHTS = "head.safetensors"
#: Version of the folder layout and of the predictor's formula.
HEAD_FORMAT = "llmbt-embedding-head-v1"
_ARRAYS = ("mean", "scale", "coef", "intercept")


@dataclass(frozen=True, eq=False)
class LinearHead:
    """Standardisation (``mean``, ``scale``: (d,)) and a multinomial linear layer (``coef``:
    (k, d), ``intercept``: (k,)) over ``labels`` (k names, in column order)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        k, d = len(self.labels), self.mean.shape[0] if self.mean.ndim == 1 else -1
        shapes = {"mean": (d,), "scale": (d,), "coef": (k, d), "intercept": (k,)}
        for name, shape in shapes.items():
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.shape != shape:
                got = getattr(value, "shape", type(value).__name__)
                raise ConfigError(f"head array {name!r} has shape {got}, expected {shape}; "
                                  "re-train the head with bt head train.")
            if not np.isfinite(value).all() or (name == "scale" and (value <= 0).any()):
                raise ConfigError(f"head array {name!r} has non-finite or invalid values; "
                                  "re-train the head with bt head train.")

    @property
    def dim(self) -> int:
        """Feature dimension the head expects."""
        return int(self.mean.shape[0])

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(n, k) float64 logits of (n, d) features."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(f"features of shape {x.shape} do not fit a head of dimension "
                              f"{self.dim}; the head was trained on another model or layer.")
        return ((x - self.mean) / self.scale) @ self.coef.T + self.intercept

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(n, k) probabilities over :attr:`labels` (a numerically stable softmax)."""
        z = self.logits(features)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def digest(self) -> str:
        """sha256 of the arrays' bytes and the labels (part of the scorer's fingerprint)."""
        h = hashlib.sha256(json.dumps(list(self.labels)).encode())
        for name in _ARRAYS:
            h.update(np.ascontiguousarray(getattr(self, name), dtype=np.float64).tobytes())
        return h.hexdigest()


def is_head_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding :data:`HEAD_META`."""
    return (Path(path).expanduser() / HEAD_META).is_file()


def save_head(folder: str | Path, head: LinearHead, meta: dict[str, Any]) -> Path:
    """Write ``head`` and ``meta`` (plus format and labels) into ``folder``; returns it."""
    from safetensors.numpy import save_file

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.ascontiguousarray(getattr(head, name), dtype=np.float64)
              for name in _ARRAYS}
    save_file(arrays, str(folder / HEAD_WEIGHTS))
    record = {"format": HEAD_FORMAT, "labels": list(head.labels), **meta}
    atomic_write_text(folder / HEAD_META, json.dumps(record, indent=2, default=str))
    return folder


def read_head(folder: str | Path) -> tuple[LinearHead, dict[str, Any]]:
    """(head, metadata) of a head folder written by :func:`save_head`.

    Raises:
        ConfigError: a file is missing, the format is unknown, or an array is malformed.
    """
    from safetensors.numpy import load_file

    folder = Path(folder).expanduser()
    meta_file, weights = folder / HEAD_META, folder / HEAD_WEIGHTS
    for path in (meta_file, weights):
        if not path.is_file():
            raise ConfigError(f"--adapter {str(folder)!r} has no {path.name}; pass a folder "
                              "written by bt head train.")
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != HEAD_FORMAT:
        raise ConfigError(f"--adapter {str(folder)!r}: head format {meta.get('format')!r} is "
                          f"not {HEAD_FORMAT!r}; re-train it with this version of llmbt.")
    arrays = load_file(str(weights))
    missing = [name for name in _ARRAYS if name not in arrays]
    if missing:
        raise ConfigError(f"--adapter {str(folder)!r}: {HEAD_WEIGHTS} lacks {missing}; re-train.")
    head = LinearHead(*(arrays[name] for name in _ARRAYS), labels=tuple(meta["labels"]))
    return head, meta
