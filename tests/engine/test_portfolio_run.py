"""``bt run --strategy llm_news_portfolio`` end to end on a slice of the shared universe, with the
tokenizer and the model stubbed (scores depend on the headline text only, as a model's would)."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers_portfolio import PORTFOLIO_SYMBOLS, portfolio_config

from llmbt.cli import cli
from llmbt.engine.portfolio_run import run_portfolio_backtest
from llmbt.errors import ConfigError


def test_a_universe_run_trades_the_window_and_scores_each_headline_once(shared_news, sent):
    result = run_portfolio_backtest(portfolio_config(shared_news))
    run, bench = result.run, result.benchmark
    assert run.equity.index[0] == pd.Timestamp("2015-03-02", tz="UTC")
    assert run.equity.index[-1] == pd.Timestamp("2015-06-30", tz="UTC")
    assert len(sent) == len(set(sent))  # each distinct headline scored once
    assert run.stats["fills"] > 0 and bench.stats["fills"] > 0
    assert run.contributions["pnl"].sum() == pytest.approx(run.stats["final_value"] - 100_000, abs=0.01)
    # the signals the weights came from were known at each close: a headline dated D is on D+1 at
    # the earliest, and weights are NaN (no order) where a symbol has no bar
    assert result.panels["score"].index.equals(run.equity.index)
    assert set(result.weights.columns) == set(PORTFOLIO_SYMBOLS.split(","))


def test_headlines_before_the_warmup_are_not_scored(shared_news, sent):
    run_portfolio_backtest(portfolio_config(shared_news, params={"top_k": 2, "half_life": 1.0}))
    warm = len(sent)
    sent.clear()
    run_portfolio_backtest(portfolio_config(shared_news, params={"top_k": 2, "half_life": 8.0}))
    assert len(sent) > warm  # a longer decay needs more history, and only then is it scored


def test_the_cli_prints_metrics_ic_and_contributions(shared_news, sent, tmp_path):
    cfg = portfolio_config(shared_news)
    args = ["run", "--strategy", cfg.strategy, "--data", cfg.data, "--symbols", PORTFOLIO_SYMBOLS,
            "--news", cfg.news, "--news-tz", "America/New_York", "--start", cfg.start,
            "--end", cfg.end, "--param", "top_k=2", "--param", "rebalance=1", "--param", "band=0",
            "--report", str(tmp_path / "pf.html")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    for text in ("equal_weight", "mean IC", "top-bottom", "rank autocorrelation", "total (5)"):
        assert text in res.output
    assert (tmp_path / "pf.html").is_file() and (tmp_path / "pf_signal.html").is_file()


def test_a_portfolio_without_news_is_one_line(shared_news, sent):
    with pytest.raises(ConfigError, match="--news"):
        run_portfolio_backtest(portfolio_config(shared_news, news=None))


def test_a_symbol_list_with_an_unknown_symbol_says_did_you_mean(shared_news, sent):
    res = CliRunner().invoke(cli, ["run", "--strategy", "llm_news_portfolio", "--data",
                                   f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
                                   "--symbols", "AAPL,MSFTT", "--news", "x.csv", "--no-report"])
    assert res.exit_code != 0 and "MSFTT" in res.output and "MSFT" in res.output
    assert "Traceback" not in res.output


def test_news_from_a_fetched_provider_cache_gives_the_same_run_as_the_file(shared_news, sent,
                                                                           monkeypatch, tmp_path):
    """``--news finnhub:`` reads what ``bt news fetch finnhub`` cached (network call stubbed with
    the shared headlines, re-stamped at 20:00 UTC, after the close): the same prompts are scored
    and the same portfolio results as from a file holding the same timed rows."""
    from llmbt.feeds.newsources import fetch_news, finnhub

    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    raw = pd.read_csv(shared_news / "reuters_headlines_2013_2016.csv.gz")
    raw = raw[raw["symbol"].isin(PORTFOLIO_SYMBOLS.split(","))
              & raw["timestamp"].between("2014-06-01", "2015-06-30")]
    stamps = pd.to_datetime(raw["timestamp"]).dt.tz_localize("UTC") + pd.Timedelta(hours=20)
    items = [{"category": "company", "datetime": int(t.timestamp()), "headline": h, "id": i,
              "image": "", "related": s, "source": "Reuters", "summary": "", "url": f"u{i}"}
             for i, (t, s, h) in enumerate(zip(stamps, raw["symbol"], raw["headline"], strict=True))]

    class Client:
        def company_news(self, symbol, _from, to):
            lo, hi = pd.Timestamp(_from, tz="UTC"), pd.Timestamp(to, tz="UTC") + pd.Timedelta(days=1)
            return [a for a in items if a["related"] == symbol
                    and lo.timestamp() <= a["datetime"] < hi.timestamp()]

    monkeypatch.setattr(finnhub, "_client", lambda: Client())
    fetch_news("finnhub", PORTFOLIO_SYMBOLS, "2014-06-01", "2015-06-30")
    cached = run_portfolio_backtest(portfolio_config(shared_news, news="finnhub:"))
    prompts = list(sent)
    sent.clear()
    path = tmp_path / "timed.csv"
    pd.DataFrame({"timestamp": stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "symbol": raw["symbol"],
                  "headline": raw["headline"]}).to_csv(path, index=False)
    from_file = run_portfolio_backtest(portfolio_config(shared_news, news=str(path), news_tz=None))
    assert sorted(prompts) == sorted(sent) and len(prompts) > 100
    assert cached.run.stats["final_value"] == from_file.run.stats["final_value"]


def test_universe_arms_refuse_a_bar_prompt_in_one_line():
    res = CliRunner().invoke(cli, ["compare", "--strategy", "llm_news_portfolio", "--data", "sample:GOOG",
                                   "--arm", "name=a", "--arm", "name=b,prompt=bars-v1"])
    assert res.exit_code != 0 and "--arm b: prompt 'bars-v1' is a bars template" in res.output, res.output
    assert "Traceback" not in res.output


def test_equal_weight_needs_no_news_scores_nothing_and_is_the_benchmark(shared_news, sent):
    llm = run_portfolio_backtest(portfolio_config(shared_news))
    sent.clear()
    ew = run_portfolio_backtest(portfolio_config(shared_news, strategy="equal_weight", news=None, params={}))
    assert sent == [] and ew.benchmark is None and ew.signal_info == {}
    assert ew.run.returns.to_numpy().tolist() == llm.benchmark.returns.to_numpy().tolist()
    res = CliRunner().invoke(cli, ["run", "--strategy", "equal_weight", "--data", ew.config.data,
                                   "--symbols", PORTFOLIO_SYMBOLS, "--start", "2015-03-02", "--end",
                                   "2015-06-30", "--no-report"])
    assert res.exit_code == 0 and "model calls" not in res.output, res.output
