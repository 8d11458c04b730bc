"""Fetch once with only the network call stubbed, then backtest, walk forward and compare with the
network raising: the warm-up history is bounded, so a cache that covers it serves everything."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers_feeds import FakeExchange, FakeYahoo, candles, use_exchange, use_yahoo, yahoo_frame

from llmbt.engine import runner
from llmbt.engine.config import RunConfig
from llmbt.engine.runner import run_backtest
from llmbt.experiments import arms as arms_mod
from llmbt.experiments import walkforward as wf
from llmbt.feeds import fetch_to_cache
from llmbt.feeds.prices import history_start
from llmbt.signals_cache.scoring.labels import LABELS

pytestmark = pytest.mark.usefixtures("llmbt_home")


@pytest.fixture()
def seen(monkeypatch) -> list[pd.DataFrame]:
    """llm_sentiment's signals from a formula instead of a model; records each history given."""
    histories: list[pd.DataFrame] = []

    def fake(cls, history, config, news=None):
        histories.append(history)
        wave = np.sin(np.arange(len(history)) / 3.0)
        frame = pd.DataFrame({"score": wave, "confidence": 0.6, "vol": 0.2}, index=history.index)
        return frame, {}

    monkeypatch.setattr(runner, "prepare_signals", fake)
    return histories


class Offline:
    """Stands in for ccxt's exchange once offline: any network call fails the test."""

    timeframes = FakeExchange.timeframes

    def fetch_ohlcv(self, *args, **kwargs):
        raise AssertionError("network used")


def fake_quality(run_cfg, examples, traded):
    """signal_quality_frame without a model: a per-bar score frame and its quality facts."""
    score = np.cos(np.arange(len(examples)) / 2.0) * (0.5 if run_cfg.adapter else 0.4)
    labels = [e.label for e in examples]
    predicted = [LABELS[int(i)] for i in np.arange(len(examples)) % 3]
    index = pd.DatetimeIndex([e.time for e in examples])
    frame = pd.DataFrame({"score": score, "signal": traded.reindex(index).to_numpy(dtype=float),
                          "confidence": 0.5, "label": labels, "predicted": predicted,
                          "forward_return": [e.forward_return for e in examples]},
                         index=index)
    return frame, {"eval_f1": 0.3, "eval_accuracy": 0.3, "mean_confidence": 0.5, "ece": 0.1,
                   "hit_rate": 0.5, "profitable_ratio": 0.5}


def yahoo_cached_then_offline(monkeypatch) -> FakeYahoo:
    use_yahoo(monkeypatch, FakeYahoo(yahoo_frame("TEST", start="2020-01-01", n=650)))
    fetch_to_cache("yahoo:TEST", "2020-01-01", "2022-06-30")
    return use_yahoo(monkeypatch, FakeYahoo(error=ConnectionError("offline")))


def test_history_start_leaves_room_for_closed_markets():
    assert history_start(None, 260) is None
    assert history_start("2021-06-01", 0) == pd.Timestamp("2021-06-01", tz="UTC")
    days = pd.bdate_range(history_start("2021-06-01", 260).tz_localize(None), "2021-05-31")
    assert len(days) - 12 >= 260  # weekdays minus a year's holidays
    hourly = history_start("2024-03-15", 260, "1h").tz_localize(None)
    assert (len(pd.bdate_range(hourly, "2024-03-14")) - 2) * 7 >= 260  # 7 stock bars a day
    assert history_start("2021-06-01", 10, "1wk") == pd.Timestamp("2021-03-16", tz="UTC")


def test_yahoo_backtest_runs_offline_on_a_bounded_warm_up(monkeypatch, seen):
    offline = yahoo_cached_then_offline(monkeypatch)
    cfg = RunConfig(strategy="llm_sentiment", data="yahoo:TEST", start="2021-06-01",
                    end="2022-06-30", params={"normalize": "none"})
    run = run_backtest(cfg)
    assert offline.calls == [] and run.stats["bars"] > 200 and run.benchmark_returns is not None
    [history] = seen
    assert (history.index < pd.Timestamp("2021-06-01", tz="UTC")).sum() >= 260  # 200 + lookback 60
    assert history.index[0] > pd.Timestamp("2020-01-01", tz="UTC")  # bounded, not "all data"


def test_ccxt_backtest_gets_a_start_and_runs_offline(monkeypatch, seen):
    use_exchange(monkeypatch, FakeExchange(candles(24 * 120), page=1000))
    fetch_to_cache("ccxt:bybit:BTC/USDT", "2024-01-01", "2024-04-29", interval="1h")
    use_exchange(monkeypatch, Offline())
    cfg = RunConfig(strategy="llm_sentiment", data="ccxt:bybit:BTC/USDT", interval="1h",
                    start="2024-03-15", end="2024-04-29", params={"normalize": "none"})
    run = run_backtest(cfg)
    assert run.stats["bars"] == 24 * 45 + 1
    assert (seen[0].index < pd.Timestamp("2024-03-15", tz="UTC")).sum() >= 260


def test_walkforward_and_compare_from_run_offline(monkeypatch, seen, tmp_path):
    from llmbt.experiments.results import write_results
    from llmbt.experiments.splitters import WalkForward
    from llmbt.reports.compare import compare_results

    offline = yahoo_cached_then_offline(monkeypatch)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    meta = {"metrics": {"train_loss": {"mean_last_10pct": 1.0}, "best_val_loss": 1.1, "seconds": 0.0}}
    monkeypatch.setattr(wf, "train_adapter", lambda cfg, train, val, parent: (str(adapter), meta, True))
    monkeypatch.setattr(wf, "signal_quality_frame", fake_quality)
    run = RunConfig(strategy="llm_sentiment", data="yahoo:TEST", start="2021-06-01", end="2022-06-30")
    cfg = wf.WalkForwardConfig(run=run, splitter=WalkForward(train=100, test=40, embargo=5))
    result = wf.run_walkforward(cfg, say=lambda _: None)
    assert len(result.ok) == len(result.folds) >= 3
    assert pd.Timestamp(result.ok[0].facts["train_start"]) >= pd.Timestamp("2021-06-01", tz="UTC")
    folder = write_results(result, tmp_path / "wf")
    comp = compare_results(folder, say=lambda _: None)
    assert offline.calls == [] and (folder / "comparison.html").is_file()
    assert (folder / "prices.csv").is_file() and "DSR" in comp.metrics.index


def test_compare_arms_runs_offline(monkeypatch, seen, tmp_path):
    from llmbt.cli.flows import compare_arms

    offline = yahoo_cached_then_offline(monkeypatch)
    monkeypatch.setattr(arms_mod, "signal_quality_frame", fake_quality)
    cfg = RunConfig(strategy="llm_sentiment", data="yahoo:TEST", start="2021-06-01", end="2022-06-30")
    arms = [arms_mod.Arm("a"), arms_mod.Arm("b", adapter=str(tmp_path))]
    compare_arms(cfg, arms, tmp_path / "cmp", say=lambda _: None)
    assert offline.calls == [] and (tmp_path / "cmp" / "comparison.html").is_file()
    assert all(h.index[0] == seen[0].index[0] for h in seen)  # every arm: the same history
