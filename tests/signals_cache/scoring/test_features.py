"""Bar features: warm-up, rounding, validation, golden values and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import ChatMLStub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmbt.errors import DataError
from llmbt.signals_cache.scoring.features import (
    DECIMALS,
    FEATURES,
    WARMUP_BARS,
    bar_features,
    raw_bar_features,
    valid_mask,
)
from llmbt.signals_cache.scoring.prompts import BARS_V1, bar_prompts


@pytest.fixture(scope="module")
def goog_features(goog) -> pd.DataFrame:
    return bar_features(goog)


def random_walk(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    spread = close * rng.uniform(0.001, 0.03, n)
    index = pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "open": close * (1 + rng.normal(0, 0.005, n)),
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.uniform(1e3, 1e5, n),
        },
        index=index,
    )


def perturb_future(prices: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """Copy of ``prices`` with every bar after position ``t`` changed."""
    rng = np.random.default_rng(seed)
    changed = prices.copy()
    future = len(prices) - t - 1
    for column in ("open", "high", "low", "close", "volume"):
        values = changed[column].to_numpy().copy()
        values[t + 1 :] *= rng.uniform(0.5, 1.5, future)
        changed[column] = values
    return changed


# --- shape, warm-up, rounding ---------------------------------------------------------------


def test_index_columns_and_warmup(goog, goog_features):
    assert goog_features.index.equals(goog.index)
    assert tuple(goog_features.columns) == FEATURES
    assert goog_features.iloc[:WARMUP_BARS].isna().all().all()
    valid = valid_mask(goog_features)
    assert not valid.iloc[:WARMUP_BARS].any()
    assert valid.iloc[WARMUP_BARS:].all()
    assert goog_features.iloc[WARMUP_BARS:].notna().all().all()


def test_values_are_rounded_without_negative_zero(goog_features):
    body = goog_features.iloc[WARMUP_BARS:]
    for name, places in DECIMALS.items():
        scaled = body[name].to_numpy() * 10**places
        np.testing.assert_allclose(scaled, np.round(scaled), atol=1e-6, err_msg=name)
        zeros = body[name].to_numpy()[body[name].to_numpy() == 0]
        assert not np.signbit(zeros).any(), name


def test_plausible_ranges(goog_features):
    body = goog_features.iloc[WARMUP_BARS:]
    assert body["rsi_14"].between(0, 100).all()
    assert (body["atr_14"] > 0).all()
    assert (body["vol_ratio"] > 0).all()


def test_flat_prices_and_zero_volume_are_handled():
    index = pd.date_range("2021-01-01", periods=80, freq="D", tz="UTC")
    flat = pd.DataFrame(
        {"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 0.0}, index=index
    )
    features = bar_features(flat)
    row = features.iloc[-1]
    assert row["rsi_14"] == 50 and row["bb_pctb"] == 0.5
    assert row["ret_1"] == 0 and row["atr_14"] == 0 and row["macd_hist"] == 0
    assert np.isnan(row["vol_ratio"])
    assert valid_mask(features).iloc[WARMUP_BARS:].all()


def test_only_gains_give_rsi_100():
    prices = random_walk(80, 1)
    prices["close"] = np.linspace(100, 200, 80)
    assert (bar_features(prices)["rsi_14"].iloc[WARMUP_BARS:] == 100).all()


# --- validation -----------------------------------------------------------------------------


def test_too_few_bars_names_count_and_need(goog):
    with pytest.raises(DataError, match=r"at least 51 bars.*got 50"):
        bar_features(goog.iloc[:50])
    assert valid_mask(bar_features(goog.iloc[:51])).sum() == 1


def test_missing_column_unsorted_and_nan_prices(goog):
    with pytest.raises(DataError, match="volume"):
        bar_features(goog.drop(columns="volume"))
    with pytest.raises(DataError, match="not sorted"):
        bar_features(goog.iloc[::-1])
    broken = goog.copy()
    broken.iloc[100, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match="NaN"):
        bar_features(broken)


# --- golden values against plain python -----------------------------------------------------


def plain_rsi(closes: list[float], t: int, period: int = 14) -> float:
    deltas = [closes[i] - closes[i - 1] for i in range(1, t + 1)]
    gains = [max(d, 0.0) for d in deltas]
    losses = [max(-d, 0.0) for d in deltas]
    avg_gain, avg_loss = sum(gains[:period]) / period, sum(losses[:period]) / period
    for gain, loss in zip(gains[period:], losses[period:], strict=True):
        avg_gain = (avg_gain * (period - 1) + gain) / period
        avg_loss = (avg_loss * (period - 1) + loss) / period
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def plain_atr(rows: list[tuple[float, float, float]], t: int, period: int = 14) -> float:
    ranges = [rows[0][0] - rows[0][1]]
    for i in range(1, t + 1):
        high, low, prev_close = rows[i][0], rows[i][1], rows[i - 1][2]
        ranges.append(max(high - low, abs(high - prev_close), abs(low - prev_close)))
    value = sum(ranges[:period]) / period
    for true_range in ranges[period:]:
        value = (value * (period - 1) + true_range) / period
    return value


def plain_sma_distance(closes: list[float], t: int, window: int) -> float:
    sma = sum(closes[t - window + 1 : t + 1]) / window
    return (closes[t] / sma - 1.0) * 100.0


@pytest.mark.parametrize("t", [50, 51, 137, 600, 1500, 2147])
def test_golden_values_match_plain_python(goog, goog_features, t):
    closes = goog["close"].tolist()
    rows = list(zip(goog["high"], goog["low"], goog["close"], strict=True))
    raw = raw_bar_features(goog).iloc[t]
    expected = {
        "rsi_14": plain_rsi(closes, t),
        "dist_sma20": plain_sma_distance(closes, t, 20),
        "dist_sma50": plain_sma_distance(closes, t, 50),
        "atr_14": plain_atr(rows, t) / closes[t] * 100.0,
        "ret_5": (closes[t] / closes[t - 5] - 1.0) * 100.0,
    }
    for name, value in expected.items():
        assert raw[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
        assert goog_features.iloc[t][name] == pytest.approx(round(value, DECIMALS[name])), name


# --- no look-ahead --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_changing_future_bars_keeps_past_features_and_prompts(goog, goog_features, seed):
    rng = np.random.default_rng(seed)
    t = int(rng.integers(0, len(goog) - 2))
    changed = perturb_future(goog, t, seed)
    pd.testing.assert_frame_equal(bar_features(changed).iloc[: t + 1], goog_features.iloc[: t + 1])
    assert not bar_features(changed).iloc[t + 1 :].equals(goog_features.iloc[t + 1 :])
    tokenizer = ChatMLStub()
    before = bar_prompts(goog, "GOOG", BARS_V1, tokenizer)
    after = bar_prompts(changed, "GOOG", BARS_V1, tokenizer)
    cut = goog.index[t]
    pd.testing.assert_series_equal(after[after.index <= cut], before[before.index <= cut])


@pytest.mark.parametrize("t", [50, 51, 99, 777, 2000, 2146])
def test_appending_bars_keeps_past_features(goog, goog_features, t):
    truncated = bar_features(goog.iloc[: t + 1])
    pd.testing.assert_frame_equal(truncated, goog_features.iloc[: t + 1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(WARMUP_BARS + 2, 160),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_no_look_ahead_property(n, data, seed):
    prices = random_walk(n, seed)
    t = data.draw(st.integers(0, n - 2), label="t")
    column = data.draw(st.sampled_from(["close", "high", "low", "volume", "open"]), label="col")
    changed = prices.copy()
    changed.iloc[t + 1 :, changed.columns.get_loc(column)] *= data.draw(
        st.floats(0.2, 5.0).filter(lambda f: f != 1.0), label="factor"
    )
    extra = random_walk(n + 30, seed + 1).iloc[n:] * (prices["close"].iloc[-1] / 100)
    appended = pd.concat([changed, extra])
    expected = bar_features(prices).iloc[: t + 1]
    pd.testing.assert_frame_equal(bar_features(changed).iloc[: t + 1], expected)
    pd.testing.assert_frame_equal(bar_features(appended).iloc[: t + 1], expected)
