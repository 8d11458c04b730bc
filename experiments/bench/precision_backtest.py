"""The same backtest in two scoring precisions: do the trades and the Sharpe ratio survive?

A precision is exact enough when the backtest it drives makes the same decisions as the float32
reference: at least :data:`MIN_SAME` of the entries and exits are identical and the Sharpe ratios
differ by at most :data:`MAX_SHARPE_GAP`. Entries and exits are ``(time, symbol, side)`` events:
for a single-instrument strategy its trades' entry and exit times, for a portfolio each bar where a
name's target weight goes from zero to non-zero or back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llmbt.engine.config import RunConfig

MIN_SAME = 0.95
MAX_SHARPE_GAP = 0.05


def compare_precisions(config: RunConfig, reference: str = "float32",
                       candidate: str = "bf16") -> dict[str, Any]:
    """Run ``config`` in each precision and compare their entries/exits and Sharpe ratios."""
    runs = {name: _run(config.replace(precision=name)) for name in (reference, candidate)}
    events = {name: _events(result) for name, result in runs.items()}
    a, b = events[reference], events[candidate]
    same = len(a & b) / max(len(a | b), 1)
    sharpes = {name: _sharpe(result) for name, result in runs.items()}
    gap = abs(sharpes[candidate] - sharpes[reference])
    return {"reference": reference, "candidate": candidate, "events_reference": len(a),
            "events_candidate": len(b), "same_events": same,
            "sharpe_reference": sharpes[reference], "sharpe_candidate": sharpes[candidate],
            "sharpe_gap": gap, "passed": bool(same >= MIN_SAME and gap <= MAX_SHARPE_GAP)}


def _run(config: RunConfig) -> Any:
    from llmbt.engine.portfolio_run import is_portfolio, run_portfolio_backtest
    from llmbt.engine.runner import run_backtest

    if is_portfolio(config.strategy):
        return run_portfolio_backtest(config, with_benchmark=False)
    return run_backtest(config, with_benchmark=False)


def _events(result: Any) -> set[tuple]:
    if hasattr(result, "weights"):  # a portfolio: weight switches on or off
        held = result.weights.ffill().fillna(0.0).to_numpy() != 0
        before = np.vstack([np.zeros((1, held.shape[1]), bool), held[:-1]])
        rows, cols = np.nonzero(held != before)
        index, symbols = result.weights.index, result.weights.columns
        return {(index[r], symbols[c], bool(held[r, c])) for r, c in zip(rows, cols, strict=True)}
    trades = result.trades
    if trades.empty:
        return set()
    side = np.sign(trades["size"]).astype(int)
    return ({(t, "entry", s) for t, s in zip(trades["entry_time"], side, strict=True)}
            | {(t, "exit", s) for t, s in zip(trades["exit_time"], side, strict=True)})


def _sharpe(result: Any) -> float:
    stats = result.run.stats if hasattr(result, "run") else result.stats
    value = stats["sharpe"]
    return float(value) if pd.notna(value) else float("nan")
