"""Portfolio target weights (pure, before the loop) and the one-feed-per-symbol engine on small frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmbt.engine.portfolio import simulate, union_calendar
from llmbt.errors import ConfigError, DataError, LlmbtError
from llmbt.strategies.portfolio import EqualWeight, LlmNewsPortfolio
from llmbt.strategies.registry import available, get_strategy

DAYS = pd.date_range("2021-01-04", periods=8, freq="B", tz="UTC", name="timestamp")


def panel(rows: list[list[float]], names: str = "ABCD") -> pd.DataFrame:
    return pd.DataFrame(rows, index=DAYS[: len(rows)], columns=list(names), dtype=float)


def weights(scores: pd.DataFrame, tradable: pd.DataFrame | None = None, **params) -> pd.DataFrame:
    tradable = scores.notna() | True if tradable is None else tradable
    full = {"rebalance": 1, "band": 0}  # the daily full re-rank unless params say otherwise
    return LlmNewsPortfolio.target_weights({"score": scores}, tradable, full | params)


def test_both_strategies_are_registered_and_listed():
    assert {"llm_news_portfolio", "equal_weight"} <= set(available())
    assert get_strategy("llm_news_portfolio") is LlmNewsPortfolio
    assert LlmNewsPortfolio.Params.from_mapping({"top_k": "3"}).to_dict() == {"top_k": 3}
    assert "top" in (LlmNewsPortfolio.__doc__ or "") and "equal" in (EqualWeight.__doc__ or "")


def test_top_k_ties_go_to_the_earlier_symbol_name():
    w = weights(panel([[0.5, 0.9, 0.5, 0.1]]), top_k=2, max_weight=1.0)
    assert w.iloc[0].tolist() == [0.475, 0.475, 0.0, 0.0]  # B, then A beats C on the name


def test_per_name_cap_leaves_the_excess_in_cash_and_gross_caps_the_sum():
    w = weights(panel([[0.5, 0.9, 0.4, 0.1]]), top_k=3)
    assert w.iloc[0].tolist() == [0.2, 0.2, 0.2, 0.0]
    w = weights(panel([[0.5, 0.9, 0.4, 0.1]]), top_k=4, max_weight=1.0, gross=0.8)
    assert np.isclose(w.iloc[0].sum(), 0.8)


def test_bottom_k_shorts_and_the_net_cap():
    w = weights(panel([[0.5, 0.9, -0.4, -0.8]]), top_k=2, bottom_k=1, max_weight=1.0, gross=0.9)
    assert np.allclose(w.iloc[0], [0.3, 0.3, 0.0, -0.3])
    w = weights(panel([[0.5, 0.9, -0.4, -0.8]]), top_k=2, bottom_k=1, max_weight=1.0, gross=0.9, net=0.1)
    assert np.isclose(w.iloc[0].sum(), 0.1) and np.isclose(w.iloc[0]["D"], -0.3)


def test_entry_threshold_longs_every_name_above_it():
    w = weights(panel([[0.5, 0.9, 0.29, -0.4]]), entry=0.3, max_weight=1.0)
    assert w.iloc[0].tolist() == [0.475, 0.475, 0.0, 0.0]
    w = weights(panel([[0.5, 0.9, 0.29, -0.4]]), entry=0.3, allow_short=True, max_weight=1.0, gross=0.9)
    assert np.allclose(w.iloc[0], [0.3, 0.3, 0.0, -0.3])


def test_untradable_or_unscored_names_and_the_rebalance_schedule():
    scores = panel([[0.9, np.nan, 0.1, 0.2]] * 4)
    tradable = scores.notna() | True
    tradable.iloc[:, 0] = [True, False, True, True]
    w = weights(scores, tradable, top_k=1, rebalance=2)
    assert w.iloc[0].tolist() == [0.2, 0.0, 0.0, 0.0]  # B unscored: 0 (closed), not ranked
    assert w.iloc[1].isna().all() and w.iloc[3].isna().all()  # not rebalance bars
    w = weights(scores, tradable, top_k=1)
    assert np.isnan(w.iloc[1]["A"]) and w.iloc[1]["D"] == 0.2  # A has no bar: no order for it


def test_too_few_scored_names_skip_the_rebalance():
    w = weights(panel([[0.9, np.nan, np.nan, np.nan], [0.9, 0.1, 0.2, np.nan]]), min_names=2)
    assert w.iloc[0].isna().all() and w.iloc[1].notna().all()


def test_confidence_and_inverse_vol_weighting():
    scores = panel([[0.9, 0.8, 0.1, 0.0]])
    conf, vol = panel([[0.3, 0.6, 0.9, 0.9]]), panel([[0.1, 0.3, 0.2, 0.2]])
    w = LlmNewsPortfolio.target_weights({"score": scores, "confidence": conf}, scores.notna(),
                                        {"top_k": 2, "weighting": "confidence", "max_weight": 1.0})
    assert np.allclose(w.iloc[0], [0.95 / 3, 0.95 * 2 / 3, 0, 0])
    w = LlmNewsPortfolio.target_weights({"score": scores, "vol": vol}, scores.notna(),
                                        {"top_k": 2, "weighting": "inverse_vol", "max_weight": 1.0})
    assert np.allclose(w.iloc[0], [0.95 * 0.75, 0.95 * 0.25, 0, 0])
    w = LlmNewsPortfolio.target_weights({"score": scores, "confidence": conf}, scores.notna(),
                                        {"top_k": 2, "min_confidence": 0.5})
    assert w.iloc[0].tolist() == [0.0, 0.2, 0.2, 0.0]


def test_truncating_the_panels_leaves_earlier_weights_unchanged():
    i, j = np.meshgrid(np.arange(8), np.arange(4), indexing="ij")
    scores = panel((((5 * i + j * j) % 7 - 3) / 3.0).tolist())
    full = weights(scores, top_k=2, bottom_k=1, rebalance=3)
    for cut in range(1, 8):
        pd.testing.assert_frame_equal(weights(scores.iloc[:cut], top_k=2, bottom_k=1, rebalance=3),
                                      full.iloc[:cut])


@pytest.mark.parametrize("params, fragment", [
    ({"top_k": 0}, "--param top_k=0 must be an integer >= 1"),
    ({"top_k": 2.5}, "--param top_k=2.5 must be an integer"),
    ({"max_weight": 0}, "--param max_weight=0 must be in (0, 1]"),
    ({"max_weight": 1.5}, "--param max_weight=1.5 must be in (0, 1]"),
    ({"gross": -1}, "--param gross=-1 must be a number >= 0"),
    ({"weighting": "inverse-vol"}, "Did you mean 'inverse_vol'?"),
    ({"rebalance": "daily"}, "--param rebalance='daily' must be an integer >= 1"),
    ({"entry": "high"}, "--param entry='high'"),
    ({"weighting": "confidence"}, "needs a 'confidence' signal panel"),
])
def test_bad_params_fail_with_one_line_naming_the_param(params, fragment):
    with pytest.raises(ConfigError) as err:
        weights(panel([[0.1, 0.2, 0.3, 0.4]]), **params)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_signal_spec_passes_the_half_life():
    spec = LlmNewsPortfolio.signal_spec({"half_life": 2})
    assert (spec.half_life, spec.warmup) == (2.0, 10)


def test_equal_weight_splits_gross_over_tradable_names():
    tradable = panel([[1, 1, 0, 1], [1, 1, 1, 1]]).astype(bool)
    w = EqualWeight.target_weights({}, tradable, {"gross": 0.9})
    assert np.allclose(w.iloc[0].fillna(-1), [0.3, 0.3, -1, 0.3]) and np.allclose(w.iloc[1], 0.225)


# ---- engine ----------------------------------------------------------------------------------


def bars(opens: list[float], days=DAYS) -> pd.DataFrame:
    o = np.asarray(opens, dtype=float)
    return pd.DataFrame({"open": o, "high": o + 2, "low": o - 2, "close": o + 0.5, "volume": 1e6},
                        index=days[: len(o)])


def test_a_halted_symbol_fills_at_its_next_bar_not_at_a_stale_price():
    a = bars([100, 101, 102, 103, 104, 105])
    b = bars([50, 51, 52, 53, 54, 55]).drop(DAYS[2:4])  # no bars on days 2 and 3
    w = pd.DataFrame({"A": np.nan, "B": np.nan}, index=DAYS[:6])
    w.loc[DAYS[1], "B"] = 0.5  # decided at day 1's close; B's next bar is day 4
    run = simulate({"A": a, "B": b}, w, cash=10_000, commission=0.0)
    assert run.fills[["timestamp", "symbol", "size", "price"]].values.tolist() == [
        [DAYS[4], "B", int(5000 / 51.5), 54.0]]


def test_a_later_start_does_not_hold_the_others_back_and_sells_pay_for_buys():
    a, b = bars([100] * 6), bars([10, 10, 10, 10], days=DAYS[2:])
    w = pd.DataFrame({"A": [0.95, np.nan, 0.0, np.nan, np.nan, np.nan],
                      "B": [np.nan, np.nan, 0.95, np.nan, np.nan, np.nan]}, index=DAYS[:6])
    run = simulate({"B": b, "A": a}, w, cash=10_000, commission=0.001)
    f = run.fills
    assert f["timestamp"].tolist() == [DAYS[1], DAYS[3], DAYS[3]]
    assert f["symbol"].tolist() == ["A", "A", "B"]  # the sale is placed (and fills) first
    assert run.stats["rejected_orders"] == 0 and len(run.equity) == 6


def test_a_buy_the_cash_cannot_pay_at_the_open_is_counted_as_rejected():
    a = bars([100, 130, 130])  # a 30 % gap up after a 95 % target
    w = pd.DataFrame({"A": [0.95, np.nan, np.nan]}, index=DAYS[:3])
    run = simulate({"A": a}, w, cash=10_000, commission=0.001)
    assert run.fills.empty and run.stats["rejected_orders"] == 1
    assert run.contributions.empty and run.stats["final_value"] == 10_000


def test_slippage_moves_the_fill_price_and_stats_are_plain_numbers():
    a = bars([100, 101, 102, 103])
    w = pd.DataFrame({"A": [0.5, np.nan, 0.0, np.nan]}, index=DAYS[:4])
    run = simulate({"A": a}, w, cash=10_000, commission=0.001, slippage=0.01)
    assert run.fills["price"].tolist() == pytest.approx([101 * 1.01, 103 * 0.99])
    assert abs(run.contributions["pnl"].sum() - (run.equity.iloc[-1] - 10_000)) < 1e-6
    assert set(run.stats) >= {"final_value", "sharpe", "max_drawdown", "turnover", "exposure", "bars"}
    assert run.stats["bars"] == 4 and run.returns.index.equals(run.equity.index)


def test_bad_engine_input_fails_with_one_line():
    a = bars([100, 101])
    with pytest.raises(DataError, match="weights name symbols without prices: ZZZ"):
        simulate({"A": a}, pd.DataFrame({"ZZZ": [0.5, 0.5]}, index=DAYS[:2]), cash=1e4, commission=0)
    with pytest.raises(DataError, match="needs prices"):
        simulate({}, pd.DataFrame(), cash=1e4, commission=0)
    with pytest.raises(LlmbtError, match="cash"):
        simulate({"A": a}, pd.DataFrame(index=DAYS[:2]), cash=0, commission=0)


def test_union_calendar_maps_every_timestamp_to_backtrader_dates():
    cal = union_calendar({"A": bars([1, 2]), "B": bars([1, 2, 3])})
    assert cal.index.equals(DAYS[:3]) and np.all(np.diff(cal.to_numpy()) > 0)
