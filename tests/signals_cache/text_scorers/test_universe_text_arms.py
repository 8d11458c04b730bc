"""Text-scorer arms (kind=lexicon) across a universe: universe scoring routes ``req.arm`` to the
text scorer (each distinct headline once, cached under the scorer's fingerprint, the entries a
single-symbol run shares), ``bt run --scorer``, and ``bt compare --arm`` of a stubbed model arm
against ``kind=lexicon`` on the shared S&P 500 headlines."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from helpers import daily_bars, news_frame, stub_scoring

import llmbt.cli.run  # noqa: F401  (registers run)
import llmbt.cli.wf  # noqa: F401  (registers compare)
from llmbt.cli import cli
from llmbt.signals_cache import universe
from llmbt.signals_cache.cache import SignalCache
from llmbt.signals_cache.scorer_id import ScorerId
from llmbt.signals_cache.signals import SignalRequest, compute_signals
from llmbt.signals_cache.text_scorers.registry import make_scorer, scorer_fingerprint

GOOD, BAD = "Acme posts strong gains and record profit", "Acme sued over fraud, losses mount"
SYMBOLS = "AAPL,BA,GS,GM,JPM"


def _no_model(*args, **kwargs):
    raise AssertionError("a text scorer must not load the model's chat template")


def test_a_lexicon_universe_scores_each_distinct_headline_once_under_its_fingerprint(tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setattr(universe, "load_chat_template", _no_model)
    news = news_frame([("2024-01-02T12:00Z", "AAA", GOOD), ("2024-01-02T12:00Z", "BBB", GOOD),
                  ("2024-01-03T12:00Z", "BBB", BAD)])
    req = SignalRequest(scorer=ScorerId(kind="lexicon"), mode="headlines",
                        cache_dir=str(tmp_path / "cache"), progress=False)
    panels, info = universe.universe_signals({"AAA": daily_bars(5), "BBB": daily_bars(5)}, news, req)
    assert "2 distinct headlines, text scorer lexicon (headlines-text)" in info["signals"]
    assert info["model calls"].startswith("1 (2 prompts scored, 0 cache hits")
    scorer = make_scorer("lexicon")
    good, bad = (float(p[0] - p[1]) for p in scorer.score([GOOD, BAD], 2))  # bullish - bearish
    assert good > 0.5 and bad < -0.5  # hand-checked: strong/gains/record profit vs sued/fraud/losses
    assert panels["score"].loc["2024-01-03", "AAA"] == pytest.approx(good)  # the bar after it
    assert panels["score"].loc["2024-01-04", "BBB"] == pytest.approx(bad)
    with SignalCache(tmp_path / "cache") as cache:  # keyed by the scorer, not by a model
        assert len(cache.get_many(scorer_fingerprint("lexicon", scorer), "headlines-text",
                                  [GOOD, BAD])) == 2
    one = SignalRequest(scorer=req.scorer, mode="headlines", symbol="BBB",
                        cache_dir=req.cache_dir, progress=False)
    frame, single = compute_signals(daily_bars(5), one, news)  # a single-symbol run shares the entries
    assert single["cache hit rate"] == 1.0
    assert frame["score"].equals(panels["score"]["BBB"].rename("score"))


def test_an_unknown_scorer_is_refused_before_any_data_is_read():
    res = CliRunner().invoke(cli, ["run", "--strategy", "llm_news_portfolio", "--data",
                                   "csv:/no/such/file.csv", "--scorer", "lexicn", "--no-report"])
    assert res.exit_code != 0 and "--scorer (YAML key 'scorer')" in res.output
    assert "lexicon" in res.output  # the closest kind


def test_bt_run_scorer_lexicon_trades_a_universe(shared_news, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(universe, "load_chat_template", _no_model)
    args = ["run", "--strategy", "llm_news_portfolio", "--symbols", SYMBOLS, "--start", "2015-03-02",
            "--end", "2015-04-30", "--data", f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
            "--news", str(shared_news / "reuters_headlines_2013_2016.csv.gz"), "--news-tz",
            "America/New_York", "--param", "top_k=2", "--scorer", "lexicon", "--no-report"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "text scorer lexicon (headlines-text)" in res.output
    assert ("hindsight: none: the lexicon scorer reads no pretrained model, so it has no training "
            "data cutoff") in res.output and "knowledge cutoff" not in res.output


@pytest.fixture
def lm_stubbed(monkeypatch) -> list[str]:
    """The model arm's scoring stubbed (a hash of each prompt); text scorers score for real."""
    real = universe.score_rendered
    sent = stub_scoring(monkeypatch, universe)
    fake = universe.score_rendered
    monkeypatch.setattr(universe, "score_rendered",
                        lambda texts, req, version: (fake if req.arm == "lm" else real)(texts, req, version))
    return sent


def _base_vs_lexicon(shared_news, end: str, tmp_path, monkeypatch) -> tuple[Path, Result]:
    """Run ``bt compare``, the model against the lexicon on SYMBOLS from 2015-03-02 to ``end``,
    into ``tmp_path/cmp``; assert it succeeded. (The folder, the result.)"""
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    out = tmp_path / "cmp"
    args = ["compare", "--strategy", "llm_news_portfolio", "--symbols", SYMBOLS, "--start", "2015-03-02",
            "--end", end, "--data", f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
            "--news", str(shared_news / "reuters_headlines_2013_2016.csv.gz"), "--news-tz",
            "America/New_York", "--param", "top_k=2", "--arm", "name=base", "--arm",
            "name=lex,kind=lexicon", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return out, res


def test_bt_compare_a_model_arm_against_the_lexicon_on_a_universe(shared_news, lm_stubbed, tmp_path,
                                                                  monkeypatch):
    out, res = _base_vs_lexicon(shared_news, "2015-06-30", tmp_path, monkeypatch)
    assert lm_stubbed and all("<|im_start|>" in p for p in lm_stubbed)  # only the model's prompts
    assert "IC difference lex - base" in res.output
    assert ("hindsight: base: the tested period 2015-03-02..2015-06-30 lies before smollm2-135m's "
            "knowledge cutoff (2024-03-31)") in res.output
    assert "hindsight: lex: none: the lexicon scorer reads no pretrained model" in res.output
    returns = pd.read_csv(out / "returns.csv", index_col="time", parse_dates=["time"])
    assert list(returns.columns) == ["base", "lex", "equal_weight"]
    assert not returns["base"].equals(returns["lex"])
    scores = pd.read_csv(out / "scores.csv")
    lex = scores[scores["model"] == "lex"]["score"]
    assert lex.between(-1, 1).all() and (lex != 0).any()
    stats = json.loads((out / "crosssection.json").read_text())["stats"]
    assert list(stats["ic"]) == ["base", "lex"] and stats["dsr"]["n_trials"] == 2
    assert (out / "comparison.html").is_file() and (out / "tearsheet.html").is_file()


def test_bt_compare_from_reads_a_universe_compare_folder_back(shared_news, lm_stubbed, tmp_path,
                                                              monkeypatch):
    out, first = _base_vs_lexicon(shared_news, "2015-04-30", tmp_path, monkeypatch)
    config, run = (json.loads((out / name).read_text()) for name in ("config.json", "run.json"))
    assert config["arms"] == ["base", "lex"] and config["compare"] and config["universe"]
    assert config["arm_specs"]["lex"]["kind"] == "lexicon" and config["run"]["symbols"] == SYMBOLS
    assert run["run_id"] == config["run_id"] and len(run["config_hash"]) == 12
    assert run["versions"]["pandas"] == pd.__version__ and "lies before" in run["hindsight"]
    assert run["hindsight"].startswith("base: the tested period") and "; lex: none" in run["hindsight"]
    stats = (out / "crosssection.json").read_text()
    page = (out / "comparison.html").read_text()
    (out / "crosssection.json").unlink()
    again = CliRunner().invoke(cli, ["compare", "--from", str(out)])
    assert again.exit_code == 0, again.output
    assert "IC difference lex - base" in again.output
    assert (out / "crosssection.json").read_text() == stats  # the same numbers from the files
    assert (out / "comparison.html").read_text() == page


def test_bt_compare_from_a_folder_without_results_names_it_and_the_fix(tmp_path):
    (tmp_path / "comparison.html").write_text("<html></html>")  # pages alone are no results
    res = CliRunner().invoke(cli, ["compare", "--from", str(tmp_path)])
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    assert f"{str(tmp_path)!r} is not a walk-forward results folder" in res.output
    assert "missing ['run.json', 'returns.csv', 'scores.csv', 'folds.csv']" in res.output
    assert "--out folder of a bt walkforward run or of a bt compare --arm" in res.output
