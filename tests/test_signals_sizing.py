"""Headline aggregation, signal windows, z-score warm-up, Kelly, vol target and order rejections."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from signals_cache.labels import LABELS
from signals_cache.pipeline import ScoreResult
from signals_cache.signals import _per_bar

BULL = {"bullish": 0.9, "neutral": 0.05, "bearish": 0.05}  # score +0.85, confidence 0.9
BEAR = {"bullish": 0.05, "neutral": 0.05, "bearish": 0.9}  # score -0.85, confidence 0.9


def _result(*items: dict[str, float]) -> ScoreResult:
    probs = np.array([[item[label] for label in LABELS] for item in items])
    return ScoreResult(probs, 0, len(items), 1, len(items), 0.0, 0.0)


def _bars(n: int) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame({"close": np.arange(1.0, n + 1)}, index=index)


def test_lone_headline_halves_every_half_life():
    frame = _per_bar(_bars(6), np.array([1]), _result(BULL), half_life=2.0)
    s = 0.85
    expected = [math.nan, s, s / math.sqrt(2), s / 2, s / 2 / math.sqrt(2), s / 4]
    np.testing.assert_allclose(frame["score"], expected, rtol=1e-12)
    np.testing.assert_allclose(frame["confidence"], np.array(expected) / s * 0.9, rtol=1e-12)


def test_newer_opposite_headline_outweighs_older_one():
    frame = _per_bar(_bars(6), np.array([1, 3]), _result(BULL, BEAR), half_life=2.0)
    # bar 3: old weight 0.5, new 1 -> (-0.85 + 0.5 * 0.85) / 1.5; bar 5: weights 0.25, 0.5 (< 1)
    assert frame["score"].iloc[3] == pytest.approx((-0.85 + 0.425) / 1.5, rel=1e-12)
    assert frame["confidence"].iloc[3] == pytest.approx(0.9, rel=1e-12)
    assert frame["score"].iloc[5] == pytest.approx(-0.85 * 0.5 + 0.85 * 0.25, rel=1e-12)
    assert frame["confidence"].iloc[5] == pytest.approx(0.9 * 0.75, rel=1e-12)


def test_headlines_of_one_bar_are_confidence_weighted_without_decay():
    weak_bear = {"bullish": 0.2, "neutral": 0.3, "bearish": 0.5}  # score -0.3, confidence 0.5
    frame = _per_bar(_bars(3), np.array([1, 1]), _result(BULL, weak_bear), half_life=0.0)
    assert frame["score"].iloc[1] == pytest.approx((0.85 * 0.9 - 0.3 * 0.5) / 1.4, rel=1e-12)
    assert frame["confidence"].iloc[1] == pytest.approx(0.7, rel=1e-12)
    assert frame["score"].iloc[[0, 2]].isna().all()
