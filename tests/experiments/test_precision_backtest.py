"""The same backtest in two scoring precisions: entries/exits agreement and the Sharpe gap."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from llmbt.engine.config import RunConfig
from llmbt.experiments.bench import precision_backtest


def _portfolio(weights: list[list[float]], sharpe: float) -> SimpleNamespace:
    index = pd.date_range("2024-01-01", periods=len(weights), tz="UTC")
    frame = pd.DataFrame(weights, index=index, columns=["AAA", "BBB"])
    return SimpleNamespace(weights=frame, run=SimpleNamespace(stats={"sharpe": sharpe}))


def _single(entries: list[str], sharpe: float) -> SimpleNamespace:
    trades = pd.DataFrame({"entry_time": entries, "exit_time": [e + "x" for e in entries],
                           "size": np.ones(len(entries))})
    return SimpleNamespace(trades=trades, stats={"sharpe": sharpe})


HELD = [[0.5, 0], [0.5, 0], [0, 0.5]]


@pytest.mark.parametrize(("ref", "cand", "same", "passed"), [
    # NaN = no order that bar (weight kept): the same three switches
    (_portfolio(HELD, 1.0), _portfolio([[0.5, 0], [np.nan, 0], [0, 0.5]], 1.02), 1.0, True),
    # the switch one bar earlier: 1 of 5 distinct events shared
    (_portfolio(HELD, 1.0), _portfolio([[0.5, 0], [0, 0.5], [0, 0.5]], 1.0), 0.2, False),
    (_single(["d1", "d2"], 0.5), _single(["d1", "d2"], 0.6), 1.0, False),  # Sharpe gap 0.1
    (_single(["d1", "d2"], 0.5), _single(["d1", "d3"], 0.5), 2 / 6, False),
])
def test_agreement_and_sharpe_gap(monkeypatch, ref, cand, same, passed):
    runs = {"float32": ref, "bf16": cand}
    monkeypatch.setattr(precision_backtest, "_run", lambda config: runs[config.precision])
    out = precision_backtest.compare_precisions(RunConfig(strategy="llm_sentiment"))
    assert out["same_events"] == pytest.approx(same) and out["passed"] is passed
