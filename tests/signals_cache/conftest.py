"""Fixtures of the signal-cache tests (model/, scoring/, finetune/, heads/, text_scorers/ and the
modules beside them): ``overconfident``, the labels and probabilities that calibration works on."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_scoring import softmax

from llmbt.signals_cache.scoring.labels import LABELS


@pytest.fixture(scope="module")
def overconfident():
    """Labels drawn from softmax(z) (calibrated by construction) and the probabilities of 3·z
    (over-confident: the right temperature is 3), 4,000 rows: (labels, probs)."""
    rng = np.random.default_rng(7)
    z = rng.normal(0, 1.0, size=(4000, 3))
    true_p = softmax(z)
    labels = [LABELS[rng.choice(3, p=row)] for row in true_p]
    return labels, softmax(3 * z)
