"""Point-in-time universes: ``--select`` and ``--membership`` on the shared S&P 500 slice.

The selection at a bar may read only data known at that bar's close: a planted spike of future
headlines must leave every earlier selection unchanged. Names that leave are closed at their next
open, the equal-weight benchmark holds the same names, and bad input is one line.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import fake_adapter, stub_scoring

from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.engine.eligibility import eligible
from llmbt.engine.portfolio_run import run_portfolio_backtest
from llmbt.errors import ConfigError, DataError
from llmbt.feeds import load_news
from llmbt.feeds.selection import SelectRule, load_membership, membership_mask, selection_mask
from llmbt.feeds.universe import Universe, load_universe
from llmbt.signals_cache import universe as universe_scoring

SYMBOLS = ["AAPL", "BA", "GS", "GM", "JPM", "XOM", "MSFT", "PFE"]


@pytest.fixture(scope="module")
def slice_(shared_news) -> tuple[Universe, pd.DataFrame]:
    uni = load_universe(f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}", "2014-06-01",
                        "2015-06-30", symbols=SYMBOLS)
    news = load_news(shared_news / "reuters_headlines_2013_2016.csv.gz", tz="America/New_York")
    return uni, news[news["symbol"].isin(SYMBOLS)].reset_index(drop=True)


def _spike(news: pd.DataFrame, symbol: str, day: str, n: int) -> pd.DataFrame:
    row = news[news["symbol"] == "AAPL"].iloc[[0]]
    end = pd.Timestamp(day, tz="America/New_York") + pd.Timedelta(days=1)
    extra = pd.concat([row] * n).assign(symbol=symbol, headline="planted", day=pd.Timestamp(day),
                                        timestamp=end.tz_convert("UTC"))
    return pd.concat([news, extra], ignore_index=True)


def test_a_future_coverage_spike_does_not_change_earlier_selections(slice_):
    uni, news = slice_
    rule, allowed = SelectRule.parse("news:3:63"), uni.tradable()
    before = selection_mask(rule, uni, news, allowed)
    after = selection_mask(rule, uni, _spike(news, "PFE", "2015-03-10", 500), allowed)
    first = uni.calendar.get_loc(pd.Timestamp("2015-03-11", tz="UTC"))  # the next session
    assert before.iloc[:first].equals(after.iloc[:first])
    assert after.iloc[first]["PFE"] and not before.iloc[first]["PFE"]
    assert after.iloc[first:first + 63]["PFE"].all()  # it counts for 63 bars, then drops out
    assert (after.iloc[:first].sum(axis=1) <= 3).all()


def test_news_selection_counts_the_trailing_bars_by_hand(slice_):
    uni, news = slice_
    mask = selection_mask(SelectRule.parse("news:2:21"), uni, news, uni.tradable())
    t = pd.Timestamp("2015-04-15", tz="UTC")
    i = uni.calendar.get_loc(t)
    lo = uni.calendar[i - 20]  # bars i-20 .. i: headlines whose next session is among them
    days = pd.to_datetime(news["day"])
    nxt = uni.calendar.searchsorted(days.dt.tz_localize("UTC") + pd.Timedelta(days=1))
    known = news[(nxt >= uni.calendar.get_loc(lo)) & (nxt <= i)]
    counts = known["symbol"].value_counts()
    top = sorted(counts.index, key=lambda s: (-counts[s], s))[:2]
    assert sorted(mask.columns[mask.loc[t].to_numpy()]) == sorted(top)


def test_dollar_volume_selection_by_hand(slice_):
    uni, _ = slice_
    mask = selection_mask(SelectRule.parse("dollar-volume:3:5"), uni, None, uni.tradable())
    value = (uni.panel("close") * uni.panel("volume")).fillna(0.0).rolling(5, min_periods=1).sum()
    for t in uni.calendar[[4, 50, 200]]:
        top = value.loc[t].sort_values(ascending=False, kind="stable").index[:3]
        assert set(mask.columns[mask.loc[t].to_numpy()]) == set(top)


def test_membership_limits_the_bars_a_symbol_may_be_held(slice_, tmp_path):
    uni, _ = slice_
    path = tmp_path / "members.csv"
    path.write_text("symbol,start,end\nAAPL,2014-01-01,\nGS,2015-01-05,2015-02-27\n")
    mask = membership_mask(load_membership(path, uni.symbols), uni.calendar, uni.symbols)
    assert mask["AAPL"].all() and not mask["BA"].any()
    gs = mask.index[mask["GS"].to_numpy()]
    assert gs[0] == pd.Timestamp("2015-01-05", tz="UTC")
    assert gs[-1] == pd.Timestamp("2015-02-27", tz="UTC")


@pytest.mark.parametrize("text, match", [
    ("symbol,start,end\nAAPL,2015-03-01,2015-01-01\n", "row 1: AAPL ends 2015-01-01 before it starts"),
    ("symbol,start,end\nAAPLL,2015-01-01,\n", "AAPLL.*Did you mean 'AAPL'"),
    ("symbol,start\nAAPL,2015-01-01\n", "lacks column"),
    ("symbol,start,end\nAAPL,soon,\n", "start 'soon' is not a date"),
])
def test_a_bad_membership_file_is_one_line(tmp_path, text, match):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_membership(path, SYMBOLS)


@pytest.mark.parametrize("rule, match", [
    ("newz:30:252", "unknown metric 'newz'.*Did you mean 'news'"),
    ("news:30", "METRIC:COUNT:BARS"), ("dollar-volume:0:63", "positive whole"),
])
def test_an_unknown_select_rule_is_one_line(rule, match):
    with pytest.raises(ConfigError, match=match):
        SelectRule.parse(rule)


def test_an_unknown_rule_is_refused_by_the_cli_before_loading(tmp_path):
    res = CliRunner().invoke(cli, ["run", "--strategy", "llm_news_portfolio", "--data",
                                   "csv:nowhere.csv", "--select", "volume:5:20", "--no-report"])
    assert res.exit_code != 0 and "unknown metric 'volume'" in res.output, res.output
    assert "Traceback" not in res.output


def _config(shared_news, **kw) -> RunConfig:
    base = dict(strategy="llm_news_portfolio", symbols=",".join(SYMBOLS), start="2015-03-02",
                end="2015-06-30", data=f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
                news=str(shared_news / "reuters_headlines_2013_2016.csv.gz"),
                news_tz="America/New_York", params={"top_k": 2}, select="news:3:63")
    return RunConfig(**(base | kw))


def test_a_selected_run_closes_leavers_and_the_benchmark_holds_the_same_names(shared_news,
                                                                              monkeypatch):
    stub_scoring(monkeypatch, universe_scoring)
    result = run_portfolio_backtest(_config(shared_news))
    selected = result.panels["selected"] == 1
    for run in (result.run, result.benchmark):
        held = run.fills.pivot_table(index="timestamp", columns="symbol", values="size",
                                     aggfunc="sum").reindex(selected.index).fillna(0).cumsum()
        held = held.reindex(columns=selected.columns, fill_value=0.0)
        # a position held after bar t's fills was eligible at t - 1 (decided there, filled at t)
        outside = (held.iloc[1:].to_numpy() != 0) & ~selected.iloc[:-1].to_numpy()
        assert not outside.any()
    assert (result.benchmark.fills.groupby("timestamp")["symbol"].nunique() > 0).any()
    assert "select news:3:63" in result.signal_info["selection"]
    assert "survivor-only" in result.universe_info["survivorship"]


def test_too_few_eligible_names_hold_cash_and_are_counted(shared_news, monkeypatch):
    stub_scoring(monkeypatch, universe_scoring)
    result = run_portfolio_backtest(_config(shared_news, params={"top_k": 2, "min_names": 3},
                                            select="news:2:63"))
    assert "bar(s) held cash for too few eligible names" in result.signal_info["selection"]
    assert result.run.stats["fills"] == 0


def test_the_news_rule_without_news_is_one_line(slice_):
    uni, _ = slice_
    with pytest.raises(DataError, match="--news"):
        selection_mask(SelectRule.parse("news:3:20"), uni, None, uni.tradable())


def test_eligibility_is_none_without_a_rule(slice_):
    uni, news = slice_
    assert eligible(RunConfig(), uni, news) is None
    assert np.all(eligible(RunConfig(select="news:8:5"), uni, news).mask <= uni.tradable())


def test_the_audit_proves_the_selection_reads_no_future_bar(shared_news, monkeypatch):
    from llmbt.experiments.audit import audit_engine

    stub_scoring(monkeypatch, universe_scoring)
    result = audit_engine(_config(shared_news), cuts=3, seed=1)
    assert result.passed and "selected" in result.columns


def test_the_audit_catches_a_selection_that_counts_tomorrows_news(shared_news, monkeypatch):
    from llmbt.experiments.audit import audit_engine
    from llmbt.feeds import selection

    honest = selection._news_counts

    def peeking(universe, news, like):  # the next 5 sessions' headlines counted today
        counts = honest(universe, news, like)
        return sum(np.vstack([counts[k:], np.zeros((k, counts.shape[1]))]) for k in range(6))

    stub_scoring(monkeypatch, universe_scoring)
    monkeypatch.setattr(selection, "_news_counts", peeking)
    result = audit_engine(_config(shared_news, select="news:2:5"), cuts=5, seed=1)
    assert not result.passed
    cut, first = result.first
    assert first.column == "selected" and first.date < cut


def test_a_selected_universe_compare_writes_and_shows_its_membership(shared_news, tmp_path,
                                                                     monkeypatch):
    import llmbt.cli.wf  # noqa: F401  (registers compare)

    stub_scoring(monkeypatch, universe_scoring)
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    cfg, out = _config(shared_news), tmp_path / "cmp"
    args = ["compare", "--strategy", cfg.strategy, "--symbols", cfg.symbols, "--start", cfg.start,
            "--end", cfg.end, "--data", cfg.data, "--news", cfg.news, "--news-tz", cfg.news_tz,
            "--param", "top_k=2", "--select", "news:3:63", "--arm", "name=base", "--arm",
            f"name=lora,adapter={fake_adapter(tmp_path / 'lora')}", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "selection: select news:3:63: " in res.output and "survivorship: survivor-only" in res.output
    facts = json.loads((out / "universe.json").read_text())
    assert facts["survivorship"].startswith("survivor-only") and "entries" in facts["selection"]
    changes = pd.read_csv(out / "selection.csv", parse_dates=["timestamp"])
    assert set(changes["change"]) == {"enter", "exit"}
    assert changes["timestamp"].min() == pd.Timestamp("2015-03-02", tz="UTC")
    assert "survivor-only" in (out / "comparison.html").read_text()
    again = CliRunner().invoke(cli, ["compare", "--from", str(out)])
    assert again.exit_code == 0 and "survivorship: survivor-only" in again.output, again.output


def test_bt_run_prints_and_pages_the_survivorship(shared_news, tmp_path, monkeypatch):
    stub_scoring(monkeypatch, universe_scoring)
    cfg = _config(shared_news)
    res = CliRunner().invoke(cli, ["run", "--strategy", cfg.strategy, "--symbols", cfg.symbols,
                                   "--start", cfg.start, "--end", cfg.end, "--data", cfg.data,
                                   "--news", cfg.news, "--news-tz", cfg.news_tz, "--select",
                                   "dollar-volume:4:21", "--report", str(tmp_path / "pf.html")])
    assert res.exit_code == 0, res.output
    assert "selection: select dollar-volume:4:21: 4.0 eligible names a bar" in res.output
    assert "survivorship: survivor-only" in res.output
    for page in ("pf.html", "pf_signal.html"):
        assert "survivor-only" in (tmp_path / page).read_text()


def test_the_lookback_of_a_selection_is_loaded_before_start():
    from llmbt.engine.portfolio_run import history_bars

    plain = history_bars(RunConfig(strategy="llm_news_portfolio"))
    assert history_bars(RunConfig(strategy="llm_news_portfolio", select="news:30:252")) == 252 > plain


def test_a_single_instrument_run_refuses_a_selection_before_loading():
    res = CliRunner().invoke(cli, ["run", "--strategy", "sma_cross", "--data", "csv:nowhere.csv",
                                   "--select", "news:5:20", "--no-report"])
    assert res.exit_code != 0 and "--select news:5:20 chooses names of a universe" in res.output
    assert "Traceback" not in res.output


def test_bt_bench_select_times_both_runs(shared_news, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    cfg = _config(shared_news)
    res = CliRunner().invoke(cli, [
        "bench", "select", "--rule", "news:3:63", "--repeats", "1", "--", "--strategy", cfg.strategy,
        "--symbols", cfg.symbols, "--start", "2015-05-01", "--end", cfg.end, "--data", cfg.data,
        "--news", cfg.news, "--news-tz", cfg.news_tz, "--scorer", "lexicon"])
    assert res.exit_code == 0, res.output
    rows = dict(line.split(None, 1) for line in res.output.strip().splitlines())
    assert float(rows["process_plain_s"]) > 0 and float(rows["process_select_s"]) > 0
    assert rows["pairs"] == "1" and rows["select_goal"].startswith("<= 10%: ")


@pytest.mark.usefixtures("llmbt_home")
def test_the_select_study_suite_times_the_rule_against_the_names_it_picks(shared_news):
    from llmbt.experiments.bench.select import bench_selection, selected_names

    cfg = _config(shared_news, scorer="lexicon", start="2015-05-01")
    names = selected_names(cfg)
    assert 3 <= len(names) < len(SYMBOLS) and set(names) <= set(SYMBOLS)
    row = bench_selection(cfg, repeats=1)
    assert row["names"] == len(names) and row["rounds"] == 1
    assert min(row[k] for k in ("process_fixed_list_s", "process_rule_over_list_s",
                                "process_rule_over_file_s")) > 0
    assert row["rule_over_list_overhead"] == pytest.approx(
        row["process_rule_over_list_s"] / row["process_fixed_list_s"] - 1)
    assert row["select_goal"].startswith("<= 10%: ")
    with pytest.raises(ConfigError, match="needs a run with select: RULE"):
        selected_names(_config(shared_news, select=None))


def test_a_symbol_listed_later_is_no_look_ahead_for_the_audit(shared_news, monkeypatch):
    """CSRA starts trading in Nov 2015: before its first bar its column does not exist in data cut
    earlier, so the selection there is 'no bar' (NaN), not 'not selected', in both."""
    from llmbt.experiments.audit import audit_engine

    stub_scoring(monkeypatch, universe_scoring)
    cfg = _config(shared_news, symbols=",".join([*SYMBOLS, "CSRA"]), end="2016-02-29")
    result = audit_engine(cfg, cuts=3, seed=2)
    assert result.passed, result.first
