"""``--jitter``: the run again from the cached scores plus noise; σ = 0 is the run exactly, a
cache miss is one line, and the spread widens with σ."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import ChatMLStub
from helpers_portfolio import portfolio_config

from llmbt.cli import cli
from llmbt.engine.portfolio_run import run_portfolio_backtest
from llmbt.errors import ConfigError
from llmbt.experiments.jitter import exceeds, jitter_portfolio, resolve_sigma, store_sigma
from llmbt.signals_cache import signals, universe


class HashScorer:
    """The model stubbed below the signal cache: P(bull) from a hash of the prompt, so scores go
    through score_with_cache and are written to the cache as a real run's are."""

    load_seconds, temperature = 0.0, None

    def __init__(self, spec) -> None:
        pass

    def score(self, prompts, batch_size):
        b = np.array([zlib.crc32(p.encode()) % 1000 / 1000 for p in prompts])
        return np.column_stack([b, 0.6 * (1 - b), 0.4 * (1 - b)])


@pytest.fixture
def cached(shared_news, monkeypatch, tmp_path):
    """A 5-symbol run (top 2) whose scores were written to a fresh signal cache."""
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(universe, "load_chat_template", lambda spec: ChatMLStub())
    monkeypatch.setattr(signals, "LazyScorer", HashScorer)
    config = portfolio_config(shared_news, cache_dir=str(tmp_path / "signals"))
    return config, run_portfolio_backtest(config)


def test_sigma_zero_reproduces_the_run_exactly(cached):
    config, run = cached
    jit = jitter_portfolio(config, 3, 0.0)
    assert jit.base.returns.equals(run.run.returns)
    assert jit.sharpes == [run.run.stats["sharpe"]] * 3 and jit.identical == [1.0] * 3


def test_noise_moves_trades_and_widens_the_spread(cached):
    config, run = cached
    small, large = jitter_portfolio(config, 8, 0.001), jitter_portfolio(config, 8, 0.2)
    assert min(large.identical) < 1.0 and max(large.identical) <= max(small.identical)
    assert large.spread()[2] - large.spread()[0] >= small.spread()[2] - small.spread()[0]
    assert "runs with scores + N(0, 0.2)" in large.line("x")
    assert exceeds(10.0, [large]).startswith("the Sharpe difference +10.00 exceeds")
    assert "is within" in exceeds(0.0, [large])


def test_jitter_without_cached_scores_says_to_run_once_first(shared_news, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(universe, "load_chat_template", lambda spec: ChatMLStub())
    config = portfolio_config(shared_news, cache_dir=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="not in the signal cache: run the same command once "
                                          "without --jitter first"):
        jitter_portfolio(config, 2, 0.01)


def test_sigma_comes_from_the_flag_or_the_stored_measurement(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match="bt bench scoring --precisions"):
        resolve_sigma(None)
    store_sigma(0.012, "float32,bf16")
    assert resolve_sigma(None) == 0.012 and resolve_sigma(0.5) == 0.5
    res = CliRunner().invoke(cli, ["run", "--strategy", "sma_cross", "--jitter", "5", "--no-report"])
    assert res.exit_code != 0 and "--jitter re-runs a portfolio" in res.output


def test_bt_compare_jitter_says_whether_the_arms_differ_beyond_the_noise(cached, tmp_path):
    import llmbt.cli.wf  # noqa: F401  (registers compare)

    config, _ = cached
    args = ["compare", "--strategy", config.strategy, "--symbols", config.symbols, "--start",
            config.start, "--end", config.end, "--data", config.data, "--news", config.news,
            "--news-tz", config.news_tz, "--param", "top_k=2", "--cache-dir", config.cache_dir,
            "--arm", "name=a", "--arm", "name=b,kind=lexicon", "--out", str(tmp_path / "c"),
            "--jitter", "3", "--jitter-sigma", "0.05"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = [x for x in res.output.splitlines() if x.startswith("jitter: ")]
    assert lines[0].startswith("jitter: a: Sharpe ") and lines[1].startswith("jitter: b: Sharpe ")
    assert lines[2].startswith("jitter: b - a: the Sharpe difference ")
