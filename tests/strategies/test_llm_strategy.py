"""llm_sentiment end to end through the real model-loading path (a tiny random Llama for speed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from llmbt.cli import cli
from llmbt.engine import runner
from llmbt.engine.config import RunConfig
from llmbt.engine.runner import run_backtest
from llmbt.engine.signals import prepare_signals
from llmbt.feeds import load_prices, symbol_of
from llmbt.signals_cache.signals import _decay
from llmbt.strategies.llm_sentiment import zscore_score

pytestmark = pytest.mark.usefixtures("llmbt_home")


def _config(tiny, tmp_path, **kw) -> RunConfig:
    base = dict(strategy="llm_sentiment", start="2012-10-01", model=str(tiny),
                cache_dir=str(tmp_path / "signals"), batch_size=8)
    return RunConfig(**(base | kw))


def test_second_run_makes_zero_model_calls_and_equal_results(tiny, tmp_path):
    first = run_backtest(_config(tiny, tmp_path), with_benchmark=False)
    assert first.signal_info["model calls"].split()[0] != "0"
    second = run_backtest(_config(tiny, tmp_path), with_benchmark=False)
    assert second.signal_info["model calls"].startswith("0 (0 prompts scored")
    pd.testing.assert_series_equal(first.equity, second.equity)
    mass = first.signal_info["mean label mass"]  # a random model says other words than labels
    assert 0 < mass < 1 and second.signal_info["mean label mass"] == mass


def test_raw_scores_in_range_and_warmup_from_history(tiny, tmp_path):
    from llmbt.strategies.llm_sentiment import LlmSentiment

    cfg = _config(tiny, tmp_path, params={"normalize": "none"})
    prices = load_prices("sample:GOOG", None, None)
    frame, _ = prepare_signals(LlmSentiment, prices, cfg)
    window = frame.loc["2012-10-01":]
    assert window["score"].notna().all()  # features warmed up on bars before --start
    assert frame.loc[:"2012-09-30", "score"].isna().all()  # bars before --start are not scored
    assert window["score"].between(-1, 1).all() and window["confidence"].between(1 / 3, 1).all()


def test_headline_mode_scores_land_on_the_first_bar_after_publication(tiny, tmp_path):
    news = tmp_path / "news.csv"
    news.write_text("timestamp,symbol,headline\n"
                    "2012-11-05T15:00:00Z,GOOG,Google beats earnings expectations\n"
                    "2012-11-09T23:59:00Z,GOOG,Regulators open antitrust probe into Google\n")
    cfg = _config(tiny, tmp_path, mode="headlines", news=str(news), params={"normalize": "none"})
    res = run_backtest(cfg, with_benchmark=False)
    from llmbt.strategies.llm_sentiment import LlmSentiment

    frame, _ = prepare_signals(LlmSentiment, load_prices("sample:GOOG", None, None), cfg)
    scored = frame["score"].dropna().index
    assert list(scored.strftime("%Y-%m-%d")) == ["2012-11-06", "2012-11-12"]  # never the same bar
    assert res.stats["bars"] > 0


def test_bad_strategy_params_are_named(tiny, tmp_path):
    from llmbt.errors import ConfigError

    with pytest.raises(ConfigError, match="sizing"):
        run_backtest(_config(tiny, tmp_path, params={"sizing": "martingale"}), with_benchmark=False)
    with pytest.raises(ConfigError, match="--news"):
        run_backtest(_config(tiny, tmp_path, mode="headlines"), with_benchmark=False)


def _hand_signals(prices: pd.DataFrame) -> pd.DataFrame:
    """Score +0.5 for 5 bars then -0.5 for 5 (one trade per 10 bars); confidence and vol vary."""
    i = np.arange(len(prices))
    return pd.DataFrame({"score": np.where(i % 10 < 5, 0.5, -0.5),
                         "confidence": 0.45 + 0.05 * (i % 9),
                         "vol": 0.05 + 0.04 * (i % 7)}, index=prices.index)


@pytest.mark.parametrize(("sizing", "scale"), [
    ("fixed", lambda row: 1.0),
    ("confidence", lambda row: row["confidence"]),
    ("vol_target", lambda row: min(1.0, 0.15 / row["vol"])),
])
def test_sizing_rules_buy_the_units_of_their_formula(monkeypatch, sizing, scale):
    """Units = int(int(value x 95 % / close) x scale), all read on the signal bar (the bar before
    the fill), for every trade of a run with hand-made signals."""
    prices = load_prices("sample:GOOG", "2012-01-01", "2012-12-31")
    signals = _hand_signals(prices)
    monkeypatch.setattr(runner, "prepare_signals",
                        lambda cls, history, config, news=None: (signals.loc[history.index], {}))
    cfg = RunConfig(strategy="llm_sentiment", start="2012-01-01", end="2012-12-31",
                    params={"sizing": sizing, "normalize": "none"})
    run = run_backtest(cfg, prices=prices, with_benchmark=False)
    assert len(run.trades) >= 20
    for trade in run.trades.itertuples():
        fill = prices.index.get_loc(pd.Timestamp(trade.entry_time, tz="UTC"))
        signal_bar = prices.index[fill - 1]
        row = signals.loc[signal_bar]
        base = int(run.equity.loc[signal_bar] * 0.95 / prices["close"].loc[signal_bar])
        assert trade.size == int(base * scale(row)), (sizing, signal_bar)


def test_zscore_is_causal():
    s = pd.Series(np.sin(np.arange(200) / 7.0))
    base = zscore_score(s, 60)
    changed = s.copy()
    changed.iloc[150:] += 5
    pd.testing.assert_series_equal(base.iloc[:150], zscore_score(changed, 60).iloc[:150])


def test_decay_half_life():
    out = _decay(np.array([1.0, 0.0, 0.0]), half_life=1.0)
    assert out.tolist() == [1.0, 0.5, 0.25]


def test_symbol_of():
    assert symbol_of("sample:GOOG") == "GOOG"
    assert symbol_of("ccxt:bybit:BTC/USDT") == "BTC/USDT"
    assert symbol_of("csv:data/aapl.csv") == "aapl"


def test_cli_cache_stats_and_clear(tiny, tmp_path):
    cfg = _config(tiny, tmp_path)
    run_backtest(cfg, with_benchmark=False)
    runner = CliRunner()
    out = runner.invoke(cli, ["cache", "stats", "--cache-dir", cfg.cache_dir]).output
    assert "entries" in out and "last_misses" in out
    out = runner.invoke(cli, ["cache", "clear", "--model", str(tiny), "--cache-dir", cfg.cache_dir]).output
    assert "removed" in out and "removed 0 " not in out


@pytest.mark.slow
def test_embedded_model_run_via_cli(tmp_path):
    """The README's main command on a short window: embedded model, tearsheet, then a cached re-run."""
    args = ["run", "--strategy", "llm_sentiment", "--start", "2013-01-15",
            "--report", str(tmp_path / "llm.html")]
    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "llm_sentiment" in (tmp_path / "llm.html").read_text()
    second = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "model calls: 0 (0 prompts scored" in second.output


def test_cache_clear_names_any_scorer_as_a_run_keys_it(tiny, tmp_path):
    """bt cache clear builds the scorer's identity as bt run does (engine, text scorer): it removes
    exactly that scorer's entries and keeps the others'."""
    from llmbt.engine.signals import scorer_fingerprints
    from llmbt.signals_cache.cache import SignalCache

    cache_dir = str(tmp_path / "signals")
    ref = RunConfig(model=str(tiny), precision="float32")
    bf16, lex = ref.replace(precision="bf16"), RunConfig(scorer="lexicon")
    keys = {name: scorer_fingerprints(cfg)[0] for name, cfg in
            {"ref": ref, "bf16": bf16, "lex": lex}.items()}
    assert len(set(keys.values())) == 3
    with SignalCache(cache_dir) as c:
        for key in keys.values():
            c.put_many(key, "bars-v2", ["a", "b"], [[0.2, 0.3, 0.5]] * 2)
    runner = CliRunner()
    out = runner.invoke(cli, ["cache", "clear", "--model", str(tiny), "--precision", "bf16",
                              "--cache-dir", cache_dir]).output
    assert f"removed 2 entries of scorer {keys['bf16']}" in out
    out = runner.invoke(cli, ["cache", "clear", "--scorer", "lexicon", "--cache-dir", cache_dir]).output
    assert f"removed 2 entries of scorer {keys['lex']}" in out
    with SignalCache(cache_dir) as c:
        assert len(c.get_many(keys["ref"], "bars-v2", ["a", "b"])) == 2  # the reference stays
