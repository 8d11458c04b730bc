"""Headline aggregation, signal windows, z-score warm-up, Kelly, vol target and order rejections."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest

from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.pipeline import ScoreResult
from llmbt.signals_cache.signals import per_bar

_ORDER = [("bullish", "neutral", "bearish").index(label) for label in LABELS]
BULL = {"bullish": 0.9, "neutral": 0.05, "bearish": 0.05}  # score +0.85, confidence 0.9
BEAR = {"bullish": 0.05, "neutral": 0.05, "bearish": 0.9}  # score -0.85, confidence 0.9


def _result(*items: dict[str, float]) -> ScoreResult:
    probs = np.array([[item[label] for label in LABELS] for item in items])
    return ScoreResult(probs, np.ones(len(items)), 0, len(items), 1, len(items), 0.0, 0.0)


def _bars(n: int) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame({"close": np.arange(1.0, n + 1)}, index=index)


def test_lone_headline_halves_every_half_life():
    frame = per_bar(_bars(6), np.array([1]), _result(BULL), half_life=2.0)
    s = 0.85
    expected = [math.nan, s, s / math.sqrt(2), s / 2, s / 2 / math.sqrt(2), s / 4]
    np.testing.assert_allclose(frame["score"], expected, rtol=1e-12)
    np.testing.assert_allclose(frame["confidence"], np.array(expected) / s * 0.9, rtol=1e-12)


def test_newer_opposite_headline_outweighs_older_one():
    frame = per_bar(_bars(6), np.array([1, 3]), _result(BULL, BEAR), half_life=2.0)
    # bar 3: old weight 0.5, new 1 -> (-0.85 + 0.5 * 0.85) / 1.5; bar 5: weights 0.25, 0.5 (< 1)
    assert frame["score"].iloc[3] == pytest.approx((-0.85 + 0.425) / 1.5, rel=1e-12)
    assert frame["confidence"].iloc[3] == pytest.approx(0.9, rel=1e-12)
    assert frame["score"].iloc[5] == pytest.approx(-0.85 * 0.5 + 0.85 * 0.25, rel=1e-12)
    assert frame["confidence"].iloc[5] == pytest.approx(0.9 * 0.75, rel=1e-12)


def test_headlines_of_one_bar_are_confidence_weighted_without_decay():
    weak_bear = {"bullish": 0.2, "neutral": 0.3, "bearish": 0.5}  # score -0.3, confidence 0.5
    frame = per_bar(_bars(3), np.array([1, 1]), _result(BULL, weak_bear), half_life=0.0)
    assert frame["score"].iloc[1] == pytest.approx((0.85 * 0.9 - 0.3 * 0.5) / 1.4, rel=1e-12)
    assert frame["confidence"].iloc[1] == pytest.approx(0.7, rel=1e-12)
    assert frame["score"].iloc[[0, 2]].isna().all()


# ------------------------------------------------- which headlines and bars get scored


@pytest.fixture
def scored(monkeypatch) -> list[str]:
    """Stub the tokenizer and the model: record every prompt sent to scoring; each prompt's
    probabilities depend on its text only (as a model's would)."""
    from helpers import ChatMLStub

    from llmbt.signals_cache import signals

    sent: list[str] = []

    def fake_score(prompts, req, version):
        sent.extend(prompts)
        bull = np.array([zlib.crc32(p.encode()) % 1000 / 1000 for p in prompts])
        probs = np.column_stack([bull, 0.5 * (1 - bull), 0.5 * (1 - bull)])[:, _ORDER]
        return ScoreResult(probs, np.ones(len(prompts)), 0, len(prompts), 1, len(prompts), 0.0, 0.0), None

    monkeypatch.setattr(signals, "load_chat_template", lambda spec: ChatMLStub())
    monkeypatch.setattr(signals, "score_rendered", fake_score)
    monkeypatch.setattr(signals, "score_info", lambda *a: {})
    return sent


def _news(tmp_path, rows: list[tuple[str, str, str]]) -> str:
    path = tmp_path / "news.csv"
    pd.DataFrame(rows, columns=["timestamp", "symbol", "headline"]).to_csv(path, index=False)
    return str(path)


def _prepare(prices: pd.DataFrame, **kw):
    from llmbt.engine.config import RunConfig
    from llmbt.engine.signals import prepare_signals
    from llmbt.strategies.llm_sentiment import LlmSentiment

    return prepare_signals(LlmSentiment, prices, RunConfig(**({"strategy": "llm_sentiment"} | kw)))


def test_headline_mode_scores_only_the_runs_symbol(goog, scored, tmp_path):
    news = _news(tmp_path, [("2012-11-05T15:00:00Z", "GOOG", "Google beats estimates"),
                            ("2012-11-06T15:00:00Z", "AAPL", "Apple misses estimates"),
                            ("2012-11-07T15:00:00Z", "goog", "Google launches a phone")])
    frame, _ = _prepare(goog, data="sample:GOOG", mode="headlines", news=news,
                        params={"normalize": "none"})
    assert len(scored) == 2 and not any("Apple" in p for p in scored)
    assert frame["score"].notna().sum() == 2


def test_headline_mode_names_the_symbol_when_none_match(goog, scored, tmp_path):
    from llmbt.errors import LlmbtError

    news = _news(tmp_path, [("2012-11-06T15:00:00Z", "AAPL", "Apple misses estimates")])
    with pytest.raises(LlmbtError, match=r"no headlines for symbol 'GOOG'.*AAPL"):
        _prepare(goog, data="sample:GOOG", mode="headlines", news=news)
    assert scored == []


def _daily_news(goog: pd.DataFrame, first: str, count: int) -> list[tuple[str, str, str]]:
    """One GOOG headline at 15:00 UTC on each of ``count`` bars from ``first`` (→ the next bar)."""
    days = goog.index[goog.index >= first][:count]
    return [(f"{d:%Y-%m-%d}T15:00:00Z", "GOOG", f"Google news number {i}") for i, d in enumerate(days)]


@pytest.mark.parametrize(("params", "expected"), [
    ({"normalize": "none"}, 10),                      # the window's headlines only
    ({"lookback": 5}, 15),                            # + 5 news bars for the z-score
    ({"lookback": 5, "half_life": 1.0}, 25),          # + 10 half-lives of decay before those
])
def test_headline_mode_scores_the_window_and_its_warm_up_only(goog, scored, tmp_path, params,
                                                              expected):
    rows = _daily_news(goog, "2012-12-03", 30)  # 30 bars of news; the last 10 land on/after start
    start = goog.index[goog.index.get_loc(pd.Timestamp(rows[-10][0][:10], tz="UTC")) + 1]
    frame, _ = _prepare(goog, data="sample:GOOG", mode="headlines", news=_news(tmp_path, rows),
                        start=f"{start:%Y-%m-%d}", params=params)
    assert len(scored) == expected
    assert frame.loc[start:, "score"].iloc[:10].notna().all()  # the z-score is ready at start


def test_zscore_is_ready_on_the_first_bar_of_a_window(goog, scored):
    """A walk-forward test window (prices from ``start``, history before it) has a normalised
    score on its first bar, equal to the one computed from the full history (no look-ahead)."""
    start = "2012-06-01"
    history = goog.loc[:"2012-09-01"]
    frame, _ = _prepare(history, data="sample:GOOG", start=start, params={"lookback": 60})
    assert frame.loc[start:, "score"].notna().all()
    assert len(scored) == 60 + len(history.loc[start:])
    full, _ = _prepare(history, data="sample:GOOG", params={"lookback": 60})
    pd.testing.assert_series_equal(frame.loc[start:, "score"], full.loc[start:, "score"])


# ---------------------------------------------------------------- Kelly


def _kelly_strategy():
    from types import SimpleNamespace

    from llmbt.strategies.llm_sentiment import LlmSentiment

    strat = SimpleNamespace(p=SimpleNamespace(sizing="kelly", entry=0.25, exit=0.0, kelly_fraction=0.5))
    LlmSentiment.__init__(strat)
    return strat, LlmSentiment


def test_kelly_uses_per_trade_returns_not_currency_pnl():
    """Returns +20 %, +30 %, +40 %, -20 %, -25 %, -30 % on entry values 1000, 100, 100, 100,
    100, 1000: p = (3 + 1) / (6 + 2) = 0.5, W = 0.30, L = 0.25, f = p/L - (1-p)/W = 1/3,
    half Kelly = 1/6. (Currency P&L would give b = 90/115 and f < 0: no position.)"""
    from types import SimpleNamespace

    strat, cls = _kelly_strategy()
    for ref, (size, ret) in enumerate([(10, 0.2), (1, 0.3), (1, 0.4), (1, -0.2), (1, -0.25),
                                       (10, -0.3)]):
        cls.notify_trade(strat, SimpleNamespace(ref=ref, justopened=True, isclosed=False,
                                                size=size, price=100.0, pnlcomm=0.0))
        cls.notify_trade(strat, SimpleNamespace(ref=ref, justopened=False, isclosed=True,
                                                size=0, price=100.0, pnlcomm=ret * size * 100.0))
    assert cls._kelly(strat) == pytest.approx(1 / 6, rel=1e-12)


@pytest.mark.parametrize(("returns", "expected"), [
    ([0.2, 0.3, 0.4, -0.2, -0.25, -0.3], 1 / 6),
    ([0.01, 0.02, 0.03, -0.01, -0.02], 1.0),             # f = (4/7)/0.015 - (3/7)/0.02 > 2: capped
    ([0.01, -0.1, -0.1, -0.1, -0.1], 0.0),               # negative edge: no position
    ([0.1, -0.1], 0.25),                                 # < 5 trades: half the fraction
])
def test_kelly_size_hand_computed(returns, expected):
    from llmbt.strategies.llm_sentiment import kelly_size

    assert kelly_size(returns, fraction=0.5) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- vol target


def test_realised_vol_annualises_by_bar_frequency():
    """Hourly EURUSD: 5000 bars over 251 days, ~19.9 bars a trading day → 252 × 5000/251 bars a
    year (vol ≈ 5.5 %, not the 1.2 % that × √252 gives); daily crypto (every day): 365.25."""
    from llmbt.feeds import load_prices
    from llmbt.signals_cache.signals import realised_vol

    eur = load_prices("sample:EURUSD", None, None)
    std = eur["close"].pct_change().rolling(20).std()
    np.testing.assert_allclose(realised_vol(eur), std * math.sqrt(252 * 5000 / 251), rtol=1e-12)
    assert 0.03 < realised_vol(eur).median() < 0.1
    days = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")
    coin = pd.DataFrame({"close": 100 * np.exp(np.cumsum(np.sin(np.arange(60.0)) / 50))}, index=days)
    std = coin["close"].pct_change().rolling(20).std()
    np.testing.assert_allclose(realised_vol(coin), std * math.sqrt(365.25), rtol=1e-12)


# ---------------------------------------------------------------- order rejections


def _gapping(opens: list[float], closes: list[float]) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(opens), freq="B", tz="UTC")
    high = np.maximum(opens, closes)
    return pd.DataFrame({"open": opens, "high": high, "low": np.minimum(opens, closes),
                         "close": closes, "volume": 1000.0}, index=index)


def _buy_and_hold(frame: pd.DataFrame, size: float):
    from llmbt.engine.config import RunConfig
    from llmbt.engine.runner import run_backtest

    cfg = RunConfig(strategy="buy_and_hold", cash=10_000.0, size=size, commission=0.001)
    return run_backtest(cfg, prices=frame, with_benchmark=False)


def test_a_gap_above_the_headroom_is_counted_and_the_buy_retried():
    """95 units sized on close 100 cost 10 450 at the 110 open: rejected (counted). Retried on
    bar 1 with the 10 % gap as the normal one: min(int(9500/110), int(10000/(121 * 1.001))) =
    min(86, 82) = 82 units at 110, so the final value is 10 000 - 0.001 * 82 * 110 = 9 990.98."""
    res = _buy_and_hold(_gapping([100.0] + [110.0] * 9, [100.0] + [110.0] * 9), size=95)
    assert res.stats["rejected_orders"] == 1
    assert res.equity.iloc[-1] == pytest.approx(10_000 - 0.001 * 82 * 110, rel=1e-12)


def test_percent_sizing_leaves_headroom_for_a_normal_gap():
    """Every bar opens 3 % above the last close (100 → 103). --size 100 from bar 0 (no gap seen
    yet) is rejected; on bar 1 the normal gap is 3 %: int(10000 / (103 * 1.001)) = 96 units,
    filled at 103. Final value 10 000 - 96 * 3 - 0.001 * 96 * 103 = 9 702.112."""
    res = _buy_and_hold(_gapping([100.0] + [103.0] * 9, [100.0] * 10), size=100)
    assert res.stats["rejected_orders"] == 1
    assert res.equity.iloc[-1] == pytest.approx(10_000 - 96 * 3 - 0.001 * 96 * 103, rel=1e-12)
