"""A stored temperature applied where scores are produced (the signal cache's scorers).

``bt evaluate --calibrate-on VAL`` fits a temperature ``T`` and saves it beside the adapter (or
head) folder as ``llmbt_calibration.json`` (:mod:`llmbt.signals_cache.finetune.calibration`).
Every scorer made for that folder then gives ``softmax(log p / T)`` instead of ``p``, *before*
the signal cache stores the rows, so the cache holds plain numbers keyed by a fingerprint that
includes ``T``: scores with and without a temperature (or with two temperatures) never mix, and
a folder without the file keeps exactly the fingerprint it had before temperatures existed.
``calibrate=False`` (``--no-calibration``; YAML ``calibrate: false``) ignores the file.

The label-token scorer's rows sum to the label mass (the share of replies that are a label);
scaling keeps that sum and changes only how it splits between the labels. The arg-max label, so
the sign of ``P(bullish) - P(bearish)``, never changes; ``T > 1`` lowers the confidence.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from llmbt.errors import ConfigError
from llmbt.signals_cache.finetune.calibration import apply_temperature, read_temperature


def stored_temperature(folder: str | None, calibrate: bool = True) -> float | None:
    """The temperature saved beside ``folder`` (an adapter or head folder), or None when
    ``calibrate`` is False, there is no folder or it holds no calibration file.

    Raises:
        ConfigError: ``calibrate`` is not a bool, or the file is unreadable (see
            :func:`~llmbt.signals_cache.finetune.calibration.read_temperature`).
    """
    check_calibrate(calibrate)
    if not calibrate or not folder:
        return None
    return read_temperature(folder)


def check_calibrate(calibrate: object, where: str = "calibrate") -> None:
    """Refuse a ``calibrate`` setting that is not True or False."""
    if not isinstance(calibrate, bool):
        raise ConfigError(f"{where} = {calibrate!r} must be true or false (false: ignore the "
                          "temperature stored beside an adapter, as --no-calibration does).")


def scale_rows(probs: np.ndarray, temperature: float | None) -> np.ndarray:
    """``probs`` (rows summing to their label mass, at most 1) with each row's split between the
    labels temperature-scaled and its sum kept; unchanged when ``temperature`` is None. An
    all-zero row stays zero (the cache's label-mass check reports it)."""
    rows = np.asarray(probs, dtype=np.float64)
    if temperature is None or rows.size == 0:
        return rows
    mass = rows.sum(axis=1, keepdims=True)
    shares = np.divide(rows, mass, out=np.full_like(rows, 1.0 / rows.shape[1]), where=mass > 0)
    return apply_temperature(shares, temperature) * mass


def scaled_fingerprint(fingerprint: str, temperature: float | None) -> str:
    """``fingerprint`` itself without a temperature, else a 16-hex sha256 of it and ``T``."""
    if temperature is None:
        return fingerprint
    payload = [fingerprint, f"temperature:{float(temperature)!r}"]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


class TemperatureScaled:
    """A text scorer (:class:`~llmbt.signals_cache.text_scorers.registry.TextScorer`) whose rows are
    scaled by ``temperature``; its fingerprint is :func:`scaled_fingerprint` of the scorer's."""

    def __init__(self, scorer, temperature: float) -> None:
        self.scorer, self.temperature = scorer, float(temperature)
        self.name = scorer.name

    def fingerprint(self) -> str:
        """The wrapped scorer's fingerprint with the temperature in it."""
        return scaled_fingerprint(self.scorer.fingerprint(), self.temperature)

    def score(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """The wrapped scorer's probabilities, temperature-scaled."""
        return scale_rows(self.scorer.score(texts, batch_size=batch_size), self.temperature)


def calibrated(scorer, folder: str | None, calibrate: bool = True):
    """``scorer`` wrapped in :class:`TemperatureScaled` when ``folder`` holds a temperature (and
    ``calibrate``), else ``scorer`` itself (same object, same fingerprint)."""
    temperature = stored_temperature(folder, calibrate)
    return scorer if temperature is None else TemperatureScaled(scorer, temperature)
