"""Temperature scaling of label probabilities, fitted on a validation set (Guo et al., 2017).

With ``z = log p`` (the label log-probabilities a scorer gives, normalised over the labels), the
calibrated probabilities are ``softmax(z / T)``: ``T > 1`` softens over-confident scores, ``T < 1``
sharpens timid ones, and the arg-max label (so accuracy and F1) never changes. ``T`` minimises the
mean negative log-likelihood of the true labels on the validation rows, searched in
:data:`T_BOUNDS` (a 1-D bounded optimisation). Zero probabilities (the lexicon's) are floored at
:data:`FLOOR` before the log.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.scoring.labels import LABEL_ALIASES, LABELS

T_BOUNDS = (0.05, 20.0)
FLOOR = 1e-6
#: Written beside an adapter's ``llmbt_adapter.json`` by ``bt evaluate --calibrate-on``.
CALIBRATION_FILE = "llmbt_calibration.json"


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)`` row by row."""
    if not temperature > 0:
        raise LlmbtError(f"temperature {temperature!r} must be positive.")
    z = np.log(np.clip(np.asarray(probs, float), FLOOR, None)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log-likelihood of the true columns ``truth`` (floored at :data:`FLOOR`)."""
    return float(-np.log(np.clip(probs[np.arange(len(truth)), truth], FLOOR, None)).mean())


def fit_temperature(probs: np.ndarray, y_true: Sequence[str],
                    labels: Sequence[str] = LABELS) -> float:
    """The ``T`` in :data:`T_BOUNDS` that minimises the NLL of ``y_true`` under
    :func:`apply_temperature` of ``probs`` (columns in ``labels`` order).

    Raises:
        LlmbtError: no rows, a shape mismatch or an unknown label.
    """
    probs = np.asarray(probs, float)
    if probs.ndim != 2 or probs.shape != (len(y_true), len(labels)) or not len(y_true):
        raise LlmbtError(f"calibration probs shape {probs.shape} must be "
                         f"({len(y_true)}, {len(labels)}) with at least one row.")
    from scipy.optimize import minimize_scalar  # here: reading a temperature needs no scipy

    truth = _indices(y_true, labels)
    fit = minimize_scalar(lambda t: nll(apply_temperature(probs, t), truth),
                          bounds=T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(fit.x)


def _indices(y_true: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    labels = [str(x).lower() for x in labels]
    out = []
    for y in y_true:
        key = LABEL_ALIASES.get(str(y).strip().lower(), str(y).strip().lower())
        if key not in labels:
            raise LlmbtError(f"label {y!r} is not one of {', '.join(labels)}.")
        out.append(labels.index(key))
    return np.array(out, dtype=np.intp)


def write_calibration(adapter: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` (temperature, where it was fitted, ECE before/after) as
    :data:`CALIBRATION_FILE` in the adapter folder; its weights digest (the cache key) is unchanged."""
    path = Path(adapter).expanduser() / CALIBRATION_FILE
    path.write_text(json.dumps(record, indent=2, default=float))
    return path


def read_temperature(adapter: str | Path) -> float | None:
    """The temperature saved beside ``adapter`` by :func:`write_calibration`, None when none is
    (or ``adapter`` is no folder).

    Raises:
        ConfigError: the file is not JSON, has no ``temperature`` or one that is not a positive
            number; naming the file and the fixes.
    """
    path = Path(adapter).expanduser() / CALIBRATION_FILE
    if not path.is_file():
        return None
    fix = ("re-fit it with bt evaluate --calibrate-on VAL, delete the file, or score without it "
           "(--no-calibration; YAML calibrate: false)")
    try:
        value = json.loads(path.read_text())["temperature"]
        temperature = float(value)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: no readable temperature ({type(exc).__name__}: {exc}); "
                          f"{fix}.") from exc
    if isinstance(value, bool) or not (np.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"{path}: temperature {value!r} must be a positive number; {fix}.")
    return temperature
