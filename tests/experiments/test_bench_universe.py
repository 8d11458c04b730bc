"""``bt bench universe`` on a few symbols of the shared universe (not timed: the numbers are shapes)."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from llmbt.cli import cli
from llmbt.errors import DataError
from llmbt.experiments.bench.universe import bench_universe, read_long_prices, stand_in_scores


@pytest.fixture(scope="module")
def few(shared_news):
    return read_long_prices(shared_news / "sp500_prices_2013_2016.csv.gz", n_symbols=6)


def test_the_reader_keeps_the_first_symbols_and_drops_blank_bars(few):
    prices, dropped = few
    assert list(prices) == ["A", "AAL", "AAP", "AAPL", "ABBV", "ABC"] and dropped == 0
    assert all(f.index.tz is not None and f.index.is_monotonic_increasing for f in prices.values())
    assert list(prices["A"].columns) == ["open", "high", "low", "close", "volume"]


def test_stand_in_scores_are_causal_trailing_returns(few):
    prices, _ = few
    scores = stand_in_scores(prices)
    close = prices["AAPL"]["close"]
    assert scores["AAPL"].iloc[:20].isna().all()
    assert scores["AAPL"].iloc[25] == pytest.approx(close.iloc[25] / close.iloc[5] - 1)


def test_bench_universe_runs_both_ways_and_they_agree_roughly(few):
    prices, _ = few
    out = bench_universe(prices, top_k=3, cash=100_000)
    assert out["symbols"] == 6 and out["bars"] == sum(len(f) for f in prices.values())
    assert out["fills"] > 100 and out["bars_per_s"] > 0 and out["peak_rss_mib"] > 0
    assert out["final_value_rel_diff"] < 0.05  # the pandas version is an approximation


def test_the_cli_prints_the_figures_and_a_missing_file_is_one_line(shared_news, tmp_path):
    res = CliRunner().invoke(cli, ["bench", "universe", "--symbols", "3", "--top-k", "1"])
    assert res.exit_code == 0, res.output
    assert "bars_per_s" in res.output and "loop_vs_vector" in res.output
    res = CliRunner().invoke(cli, ["bench", "universe", "--data", str(tmp_path / "none.csv")])
    assert res.exit_code != 0 and "no price file" in res.output
    with pytest.raises(DataError):
        read_long_prices(tmp_path / "none.csv")


def test_the_scoring_comparison_scores_each_distinct_headline_once(shared_news, monkeypatch):
    """With the model stubbed: n rows each; GOOG and GOOGL share headlines, so the universe pass
    scores far fewer distinct prompts than rows."""
    import numpy as np
    from helpers import ChatMLStub

    from llmbt.experiments.bench import universe_scoring
    from llmbt.feeds import load_news, load_universe
    from llmbt.signals_cache.scoring.pipeline import ScoreResult

    class Scorer:
        load_seconds = 0.0

    sizes = []

    def fake(prompts, req, version):
        sizes.append(len(prompts))
        probs = np.full((len(prompts), 3), 1 / 3)
        return ScoreResult(probs, np.ones(len(prompts)), 0, len(prompts), 1, len(prompts), 0.0, 0.0), Scorer()

    monkeypatch.setattr(universe_scoring, "load_tokenizer", lambda spec: ChatMLStub())
    monkeypatch.setattr(universe_scoring, "score_rendered", fake)
    prices = load_universe(f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
                           "2015-01-01", "2015-12-31", symbols="GOOG,GOOGL,AAPL").prices
    news = load_news(shared_news / "reuters_headlines_2013_2016.csv.gz", tz="America/New_York")
    news = news[news["timestamp"] >= pd.Timestamp("2015-01-01", tz="UTC")]
    one, uni = universe_scoring.bench_universe_scoring(prices, news, "GOOG", 40)
    assert one["rows"] == 40 and one["distinct"] >= 38  # a few repeated headlines
    assert uni["rows"] == 40 and uni["distinct"] < 40  # GOOG and GOOGL share headlines
    assert sizes[0] <= 16 and sizes[1:] == [one["distinct"], uni["distinct"]]  # an untimed batch first


def test_a_news_file_is_read_in_new_york_time_and_the_ratio_is_per_row(shared_news, monkeypatch):
    from llmbt.experiments.bench import universe_scoring
    from llmbt.feeds import load_news

    path = shared_news / "reuters_headlines_2013_2016.csv.gz"
    seen = []
    monkeypatch.setattr(universe_scoring, "bench_universe_scoring",
                        lambda prices, news, symbol, n: seen.append(news) or
                        [{"ms_per_row": 6.0}, {"ms_per_row": 4.0}])
    rows, ratio = universe_scoring.bench_news_file({}, path, "GOOG", 40)
    assert ratio == 1.5 and rows == [{"ms_per_row": 6.0}, {"ms_per_row": 4.0}]
    pd.testing.assert_frame_equal(seen[0], load_news(path, tz="America/New_York"))
