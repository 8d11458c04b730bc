"""Golden: TopkDropout + band on the real 5-symbol slice equals an independent computation of the
same rules, in its weights and, through the reference broker of the equal-weight golden test
(helpers_portfolio.reference_run), to the cent in its final value and fills.

The reference below keeps a list of held names and, at each rebalance bar, drops the names that
can no longer be ranked (no bar, no score), fills empty slots with the best-ranked names not held,
then swaps at most ``n_drop`` held names ranked below ``top_k + band`` (the worst first) for the
best-ranked names not held; weights are ``min(0.95 / held, max_weight)``, 0 for a name with a bar
that is not held, NaN without a bar.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers_portfolio import CASH, COMMISSION, hand_scores, panels, read_slice, reference_run

from llmbt.engine.portfolio import simulate
from llmbt.strategies.portfolio import LlmNewsPortfolio

RULES = {"top_k": 2, "n_drop": 1, "band": 1, "rebalance": 1, "max_weight": 0.5}


def dropout_weights(scores: pd.DataFrame, tradable: pd.DataFrame, rules: dict) -> pd.DataFrame:
    out = pd.DataFrame(np.nan, index=tradable.index, columns=tradable.columns)
    held: list[str] = []
    for i, t in enumerate(tradable.index):
        if i % rules["rebalance"]:
            continue
        names = [s for s in tradable.columns if tradable.at[t, s] and math.isfinite(scores.at[t, s])]
        order = sorted(names, key=lambda s: (-scores.at[t, s], s))
        place = {s: r for r, s in enumerate(order)}
        held = [s for s in held if s in place]
        waiting = [s for s in order if s not in held]
        while len(held) < rules["top_k"] and waiting:
            held.append(waiting.pop(0))
        below = sorted((s for s in held if place[s] >= rules["top_k"] + rules["band"]),
                       key=lambda s: -place[s])
        for s in below[: rules["n_drop"]]:
            if waiting:
                held.remove(s)
                held.append(waiting.pop(0))
        for s in names:
            out.at[t, s] = min(0.95 / len(held), rules["max_weight"]) if s in held else 0.0
    return out


@pytest.fixture(scope="module")
def slice_(shared_news):
    prices = read_slice(shared_news)
    tradable = panels(prices, "close").notna()
    return prices, tradable, hand_scores(tradable.index, tradable.columns)


@pytest.mark.parametrize("rules", [RULES, RULES | {"band": 0}, RULES | {"n_drop": 2, "band": 2},
                                   RULES | {"rebalance": 3}])
def test_dropout_and_band_weights_equal_the_reference(slice_, rules):
    _, tradable, scores = slice_
    got = LlmNewsPortfolio.target_weights({"score": scores}, tradable, rules)
    pd.testing.assert_frame_equal(got, dropout_weights(scores, tradable, rules))


def test_the_dropout_portfolio_equals_the_reference_broker_to_the_cent(slice_):
    prices, tradable, scores = slice_
    weights = LlmNewsPortfolio.target_weights({"score": scores}, tradable, RULES)
    run = simulate(prices, weights, cash=CASH, commission=COMMISSION)
    ref = reference_run(prices, dropout_weights(scores, tradable, RULES))
    assert abs(run.stats["final_value"] - ref["final_value"]) < 0.005
    got = list(run.fills[["timestamp", "symbol", "size", "price"]].itertuples(index=False, name=None))
    assert got == ref["fills"] and run.stats["rejected_orders"] == ref["refused"]
    full = simulate(prices, LlmNewsPortfolio.target_weights(
        {"score": scores}, tradable, RULES | {"n_drop": 2, "band": 0}), cash=CASH, commission=COMMISSION)
    assert run.stats["turnover"] < full.stats["turnover"]  # the rules trade less than the re-rank
