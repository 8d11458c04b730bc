"""``bt audit lookahead`` on a slice of the shared universe with the model stubbed: the engine check
passes on the product's code, and fails, naming the first changed value, when a look-ahead is
planted; the model check compares original and anonymised headlines with paired statistics."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import stub_scoring
from helpers_portfolio import PORTFOLIO_SYMBOLS, portfolio_config

from llmbt.cli import audit as cli_audit
from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.engine.portfolio_run import PortfolioInputs, load_run_universe
from llmbt.engine.runner import load_history
from llmbt.errors import ConfigError
from llmbt.experiments import audit as engine_audit
from llmbt.experiments.audit import audit_engine, compare_frames, cut_dates, model_check
from llmbt.feeds.universe import Universe
from llmbt.reports.audit import model_stats
from llmbt.signals_cache import signals as single_signals
from llmbt.signals_cache import universe
from llmbt.strategies.llm_sentiment import LlmSentiment
from llmbt.strategies.portfolio import LlmNewsPortfolio

# the vol sets the weights; the daily full re-rank
INVERSE_VOL = {"top_k": 2, "weighting": "inverse_vol", "max_weight": 1.0, "rebalance": 1, "band": 0}


def _args(cfg: RunConfig, *extra: str) -> list[str]:
    return ["audit", "lookahead", "--strategy", cfg.strategy, "--data", cfg.data, "--symbols",
            PORTFOLIO_SYMBOLS, "--news", cfg.news, "--news-tz", "America/New_York", "--start", cfg.start,
            "--end", cfg.end, "--param", "top_k=2", *extra]


def test_the_engine_check_passes_on_the_product_code(shared_news, sent):
    cfg = portfolio_config(shared_news, params={"top_k": 2, "half_life": 3.0})
    result = audit_engine(cfg, cuts=4, seed=1)
    assert result.passed and result.first is None
    assert result.columns == ("score", "confidence", "vol", "weight")
    assert len(result.checks) == 4 and [c.cut for c in result.checks] == sorted(c.cut for c in result.checks)
    for check in result.checks:
        assert check.cut >= pd.Timestamp("2015-03-03", tz="UTC") and check.bars > 60
        assert check.values == check.bars * 5 * 4 and check.mismatches == 0


def test_a_weight_that_reads_the_next_bar_is_caught(shared_news, sent, monkeypatch):
    honest = LlmNewsPortfolio.target_weights.__func__

    def peeking(cls, signals, tradable, params, anchor=None):  # decides at t with the score of t+1
        ahead = {k: (v.shift(-1) if k == "score" else v) for k, v in signals.items()}
        return honest(cls, ahead, tradable, params, anchor)

    monkeypatch.setattr(LlmNewsPortfolio, "target_weights", classmethod(peeking))
    result = audit_engine(portfolio_config(shared_news), cuts=3, seed=0)
    assert not result.passed
    cut, first = result.first
    assert first.column == "weight" and first.date < cut
    assert all(c.mismatches == 0 or c.first.column == "weight" for c in result.checks)


def _last_bar_before(calendar: pd.DatetimeIndex, cut: pd.Timestamp) -> pd.Timestamp:
    return calendar[calendar < cut][-1]


def test_weights_sized_on_the_next_bars_volatility_are_caught_at_the_bar_before_each_cut(
        shared_news, sent, monkeypatch):
    cfg = portfolio_config(shared_news, params=INVERSE_VOL)
    clean = audit_engine(cfg, cuts=3, seed=2)
    assert clean.passed and clean.first is None  # the honest inverse-vol weights pass
    honest = LlmNewsPortfolio.target_weights.__func__

    def peeking(cls, signals, tradable, params, anchor=None):  # at t, 1 / vol of t+1: tomorrow's close
        return honest(cls, signals | {"vol": signals["vol"].shift(-1)}, tradable, params, anchor)

    monkeypatch.setattr(LlmNewsPortfolio, "target_weights", classmethod(peeking))
    result = audit_engine(cfg, cuts=3, seed=2)
    calendar = load_run_universe(cfg).calendar
    assert [c.cut for c in result.checks] == [c.cut for c in clean.checks]
    for check in result.checks:  # a cut that kept its own bar would hide every one of these
        assert check.mismatches > 0 and check.first.column == "weight"
        assert check.first.date == _last_bar_before(calendar, check.cut)


def test_a_single_instrument_signal_with_the_next_bars_volatility_is_caught(monkeypatch):
    stub_scoring(monkeypatch, single_signals)
    cfg = RunConfig(strategy="llm_sentiment", data="sample:GOOG", start="2012-06-01", end="2012-12-31")
    honest = LlmSentiment.finish_signals.__func__

    def peeking(cls, frame, params):  # sizes on the volatility that includes tomorrow's close
        return honest(cls, frame, params).assign(vol=frame["vol"].shift(-1))

    monkeypatch.setattr(LlmSentiment, "finish_signals", classmethod(peeking))
    result = audit_engine(cfg, cuts=3, seed=0)
    assert not result.passed and all(c.mismatches == 1 for c in result.checks)
    calendar = load_history(cfg).index
    for check in result.checks:
        assert check.first.column == "vol" and check.first.date == _last_bar_before(calendar, check.cut)
        assert np.isnan(check.first.truncated) and np.isfinite(check.first.full)  # cut bar dropped


def test_truncation_drops_the_cut_bar_and_headlines_stamped_at_it():
    days = pd.date_range("2015-01-01", periods=5, tz="UTC")
    bars = pd.DataFrame({"close": [1.0, 2.0, 3.0, 4.0, 5.0]}, index=days)
    news = pd.DataFrame({"timestamp": [days[2] - pd.Timedelta("1s"), days[2], days[3]]})
    universe_ = Universe({"A": bars, "B": bars.iloc[3:]}, "test")
    inputs = PortfolioInputs(LlmNewsPortfolio, {}, None, universe_, news)
    cut = engine_audit.truncate(inputs, days[2])
    assert list(cut.universe.prices) == ["A"] and cut.universe.prices["A"].index.equals(days[:2])
    assert list(cut.news["timestamp"]) == [days[2] - pd.Timedelta("1s")]


def test_a_centred_decay_is_caught_and_the_cli_exits_1_naming_it(shared_news, sent, monkeypatch):
    honest = universe.per_bar

    def centred(prices, positions, result, half_life):
        frame = honest(prices, positions, result, half_life)
        return (frame + frame.shift(-1).fillna(0.0)) / 2  # half of tomorrow's news in today's score

    monkeypatch.setattr(universe, "per_bar", centred)
    res = CliRunner().invoke(cli, _args(portfolio_config(shared_news), "--cuts", "3"))
    assert res.exit_code == 1, res.output
    verdict = res.output.strip().splitlines()[-1]
    assert verdict.startswith("verdict: LOOK-AHEAD: cutting the data at 2015-")
    assert " score: full " in verdict and "truncated" in verdict
    assert "Traceback" not in res.output


def test_the_cli_prints_a_row_per_cut_and_passes(shared_news, sent):
    res = CliRunner().invoke(cli, _args(portfolio_config(shared_news), "--cuts", "2", "--seed", "3"))
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if line.startswith("2015-")]
    assert len(rows) == 2 and all(line.split()[3] == "0" and line.endswith("-") for line in rows)
    assert "verdict: engine check passed" in res.output


def test_the_single_instrument_path_is_audited_too(monkeypatch):
    stub_scoring(monkeypatch, single_signals)
    cfg = RunConfig(strategy="llm_sentiment", data="sample:GOOG", start="2012-06-01", end="2012-12-31")
    result = audit_engine(cfg, cuts=3, seed=0)
    assert result.passed and len(result.checks) == 3 and result.checks[0].values > 0
    with pytest.raises(ConfigError, match="nothing to audit"):
        audit_engine(cfg.replace(strategy="sma_cross"))


def test_compare_frames_is_bitwise_with_nan_equal_to_nan():
    days = pd.date_range("2015-01-01", periods=4, tz="UTC")
    full = {"score": pd.DataFrame({"A": [np.nan, 0.0, 1.0, 2.0], "B": [1.0, 2.0, 3.0, 9.0]}, index=days)}
    same = {"score": full["score"].iloc[:3].copy()}
    assert compare_frames(full, same, days[3]).mismatches == 0  # row 3 is after the cut
    signed = {"score": same["score"].assign(A=[np.nan, -0.0, 1.0], B=[1.0, 2.0, 3.5])}
    check = compare_frames(full, signed, days[3])
    assert (check.bars, check.values, check.mismatches) == (3, 6, 2)
    assert (check.first.symbol, check.first.date, check.first.column) == ("A", days[1], "score")


def test_cut_dates_are_seeded_distinct_and_inside_the_window():
    days = pd.date_range("2015-01-01", periods=50, tz="UTC")
    cuts = cut_dates(days, "2015-01-10", 5, seed=0)
    assert cuts == cut_dates(days, "2015-01-10", 5, seed=0) != cut_dates(days, "2015-01-10", 5, seed=1)
    assert len(set(cuts)) == 5 and min(cuts) > pd.Timestamp("2015-01-10", tz="UTC")
    assert len(cut_dates(days, "2015-02-17", 9, seed=0)) == 2  # only two bars after the first


@pytest.fixture
def named(monkeypatch) -> list[str]:
    """A model that is bullish when it sees a company's real name: anonymising changes its IC."""
    return stub_scoring(monkeypatch, universe, lambda p: 0.05 if "Company A" in p
                        else zlib.crc32(p.encode()) % 1000 / 1000)


def test_the_model_check_pairs_the_daily_ics_of_both_arms(shared_news, named, monkeypatch):
    from llmbt.reports import crosssection as cs

    calls = []
    real = cs.paired_ic_difference
    monkeypatch.setattr(cs, "paired_ic_difference",
                        lambda a, b, **kw: calls.append((a, b)) or real(a, b, **kw))
    cfg = portfolio_config(shared_news, names=str(shared_news / "sp500_companies.csv"))
    check = model_check(cfg)
    assert any("Company A" in p for p in named) and not check.original.config.anonymize
    assert check.anonymized.config.anonymize and "lies before" in check.hindsight
    stats = model_stats(check)
    (ic_a, ic_b), = calls
    assert ic_a.index.equals(check.original.panels["score"].index) and ic_b.index.equals(ic_a.index)
    assert not ic_a.dropna().equals(ic_b.dropna())  # the masked arm scored other texts
    assert stats["ic_diff"]["diff"] == pytest.approx((ic_a - ic_b).dropna().mean())
    assert stats["ic_diff"]["n"] == int((ic_a.notna() & ic_b.notna()).sum()) >= 20
    for arm, result in (("original", check.original), ("anonymized", check.anonymized)):
        assert stats["arms"][arm]["sharpe"] == result.run.stats["sharpe"]
    assert stats["sharpe_diff"]["low"] <= stats["sharpe_diff"]["diff"] <= stats["sharpe_diff"]["high"]
    table = cli_audit.model_table(stats)
    assert "IC original - anonymised" in table and "Sharpe original - anonymised" in table
    assert "hindsight: the tested period 2015-03-02..2015-06-30 lies before" in table


def test_an_audit_study_publishes_the_model_check_and_the_engine_check(shared_news, named):
    from llmbt.experiments.study_audit import audit_facts, audit_settings, run_audit
    from llmbt.reports.audit import audit_tables

    cfg = portfolio_config(shared_news, names=str(shared_news / "sp500_companies.csv"))
    outcome = run_audit(cfg, audit_settings({"cuts": 2, "seed": 1}, "t"))
    tables = audit_tables(outcome.engine, outcome.model)
    stats = model_stats(outcome.model)
    model, engine = tables[""].splitlines(), tables["engine"].splitlines()
    assert model[0] == "| headlines | mean IC (1 day) | t | days | Sharpe |"
    original = stats["arms"]["original"]
    assert model[2] == (f"| original | {original['ic']['mean_ic']:+.4f} | "
                        f"{original['ic']['t_stat_nonoverlap']:.2f} | {original['ic']['days']:,} | "
                        f"{original['sharpe']:.2f} |")
    assert model[4].startswith(f"| original − anonymised | {stats['ic_diff']['diff']:+.4f}, 95% CI [")
    assert model[-1].startswith("Model check: anonymising changed") and "IC" in model[-1]
    assert engine[0].startswith("| cut | bars before it |") and len(engine) == 2 + 2 + 2
    assert all(row.endswith("| 0 | — |") for row in engine[2:4])
    assert engine[-1].startswith("Engine check passed: ")
    assert engine[-1].endswith("values before 2 cuts identical to the full run. Columns: score, "
                               "confidence, vol, weight.")
    facts = audit_facts(outcome)
    assert facts["engine check"].endswith("s for 2 cuts") and "lies before" in facts["hindsight"]


def test_the_model_check_needs_a_names_table_and_a_universe(shared_news, named):
    with pytest.raises(ConfigError, match="--names"):
        model_check(portfolio_config(shared_news))
    with pytest.raises(ConfigError, match="llm_news_portfolio"):
        model_check(RunConfig(strategy="llm_sentiment", names="x.csv"))
    assert engine_audit.truncate_news(None, pd.Timestamp("2015-01-01", tz="UTC")) is None
