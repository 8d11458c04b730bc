"""Universe walk-forward: relative labels without look-ahead, and a tiny end-to-end run (random Llama,
real LoRA steps, real scoring) on a slice of the shared S&P 500 prices and Reuters headlines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers_experiments import UWF_SYMBOLS, UWF_TRAIN, universe_wf_config

from llmbt.experiments import universe_wf as uwf
from llmbt.experiments.results import read_results, write_results
from llmbt.experiments.walkforward import run_walkforward
from llmbt.feeds import load_news
from llmbt.feeds.universe import load_universe
from llmbt.signals_cache.finetune.universe_labels import (
    excess_forward_returns,
    universe_headline_examples,
)


def test_the_universe_mean_counts_only_symbols_with_bars_at_both_ends():
    days = pd.date_range("2020-01-01", periods=4, tz="UTC")
    open_ = pd.DataFrame({"A": [10.0, 10, 10, 10], "B": [20.0, 20, 20, 20], "C": [5.0, np.nan, 5, 5]},
                         index=days)
    close = pd.DataFrame({"A": [11.0, 12, 13, 14], "B": [20.0, 22, 24, 26], "C": [5.0, 5, np.nan, 6]},
                         index=days)
    got = excess_forward_returns(open_, close, horizon=2)
    # row 0: A 12/10-1=0.2, B 22/20-1=0.1, C 5/5-1=0 -> mean 0.1
    assert got.loc[days[0]].tolist() == pytest.approx([0.1, 0.0, -0.1])
    # row 1: C has no open -> mean of A (0.3) and B (0.2) only; C is NaN
    assert got.loc[days[1], ["A", "B"]].tolist() == pytest.approx([0.05, -0.05])
    assert np.isnan(got.loc[days[1], "C"])
    assert got.loc[days[3]].isna().all()  # no full window


@pytest.fixture(scope="module")
def shared(shared_news):
    prices = load_universe(f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}", "2015-01-01",
                           "2015-12-31", symbols=UWF_SYMBOLS.split(",")).prices
    news = load_news(shared_news / "reuters_headlines_2013_2016.csv.gz", tz="America/New_York")
    return prices, news


def test_relative_labels_use_only_train_window_prices(shared):
    prices, news = shared
    first, last = pd.Timestamp("2015-03-02", tz="UTC"), pd.Timestamp("2015-06-30", tz="UTC")
    before = universe_headline_examples(prices, news, horizon=5, first=first, last_end=last)
    changed = {s: b.copy() for s, b in prices.items()}
    for i, bars in enumerate(changed.values()):
        bars.loc[bars.index > last, ["open", "close"]] *= 1.5 + i  # everything after the train block
    after = universe_headline_examples(changed, news, horizon=5, first=first, last_end=last)
    assert len(before) > 300
    assert [(e.text, e.symbol, e.label, e.forward_return) for e in before] == \
           [(e.text, e.symbol, e.label, e.forward_return) for e in after]
    assert max(e.label_end for e in before) <= last + pd.Timedelta("1D")  # exit bar's close
    assert min(e.time for e in before) >= first - pd.Timedelta("4D")
    assert {e.label for e in before} == {"bullish", "neutral", "bearish"}
    # the labels do move when prices inside the train block move (the test can fail)
    inside = {s: b.copy() for s, b in prices.items()}
    inside["AAPL"].loc[(inside["AAPL"].index > first) & (inside["AAPL"].index <= last), "close"] *= 1.3
    moved = universe_headline_examples(inside, news, horizon=5, first=first, last_end=last)
    assert [e.label for e in moved] != [e.label for e in before]


def test_an_example_is_its_symbols_excess_over_the_equal_weight_universe(shared):
    prices, news = shared
    first, last = pd.Timestamp("2015-03-02", tz="UTC"), pd.Timestamp("2015-06-30", tz="UTC")
    ex = universe_headline_examples(prices, news, horizon=5, first=first, last_end=last)
    e = next(x for x in ex if x.symbol == "GS")
    calendar = prices["GS"].index
    exit_ = calendar.get_loc(e.label_end - pd.Timedelta("1D"))  # label_end: the exit bar's close
    entry = calendar[exit_ - 4]
    own = {s: b.loc[calendar[exit_], "close"] / b.loc[entry, "open"] - 1 for s, b in prices.items()}
    assert e.forward_return == pytest.approx(own["GS"] - np.mean(list(own.values())))
    day = (e.time - pd.Timedelta("1ns")).tz_convert("America/New_York").date()  # date-only headline
    assert entry.date() > day  # traded from the next session on


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path_factory.getbasetemp() / "uwf-home"))


@pytest.fixture(scope="module")
def first_run(tiny, shared_news, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(tmp_path_factory.getbasetemp() / "uwf-home"))
        return run_walkforward(universe_wf_config(tiny, shared_news), say=lambda _: None)


def test_both_arms_trade_every_test_window_after_training_on_all_symbols(first_run):
    assert first_run.config.universe and len(first_run.folds) >= 2
    assert len(first_run.ok) == len(first_run.folds)
    for fold in first_run.ok:
        facts = fold.facts
        assert pd.Timestamp(facts["train_end"]) < pd.Timestamp(facts["test_start"])
        assert set(facts["models"]) == {"base", "lora"} and facts["examples"]["train"] > 20
        for name, run in fold.runs.items():
            assert run.returns.index[0] == pd.Timestamp(facts["test_start"]), name
            assert run.returns.index[-1] == pd.Timestamp(facts["test_end"]), name
        assert fold.benchmark.index.equals(fold.runs["base"].returns.index)
        assert set(fold.scores["lora"]["symbol"]) <= set(UWF_SYMBOLS.split(","))
    stitched = first_run.stitched("lora")
    assert stitched.index.is_monotonic_increasing and not stitched.index.has_duplicates


def test_the_results_folder_holds_returns_scores_and_opens(first_run, tmp_path):
    out = write_results(first_run, tmp_path / "uwf")
    for name in ("config.json", "run.json", "folds.csv", "returns.csv", "scores.csv", "opens.csv"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["universe"] is True
    back = read_results(out)
    assert set(back["returns"]) == {"lora", "base", "equal_weight"}
    assert set(back["scores"]) == {"lora", "base"} and "symbol" in back["scores"]["lora"].columns
    assert (out / "adapters" / "fold-0" / "adapter_config.json").is_file()
    assert back["universe"]["survivorship"].startswith("survivor-only")  # 5 survivors, no membership
    assert not (out / "selection.csv").exists()  # no --select


def test_the_universe_walkforward_page_says_the_hindsight_of_its_tested_windows(first_run, tmp_path):
    from llmbt.reports.universe_wf import report_walkforward

    out = write_results(first_run, tmp_path / "uwf")
    tested = read_results(out)["returns"]["base"].index
    first, last, middle = (tested[i].date() for i in (0, -1, len(tested) // 2))
    window = f"the tested period {first}..{last}"
    expected = {None: f"{window} may lie before it",  # a local folder records no cutoff
                "2010-01-01": f"none: {window} starts after", str(middle): f"{window} lies partly before",
                str(last): f"{window} lies before"}
    for cutoff, sentence in expected.items():
        config = json.loads((out / "config.json").read_text())
        config["run"]["model_cutoff"] = cutoff
        (out / "config.json").write_text(json.dumps(config))
        said: list[str] = []
        report_walkforward(out, say=said.append)
        assert any(line.startswith("hindsight: ") and sentence in line for line in said), (cutoff, said)
        page = (out / "comparison.html").read_text()
        row = next(r for r in page.split("<tr>") if "<td>hindsight</td>" in r)
        assert sentence in row, (cutoff, row)
        assert (cutoff is None) or f"knowledge cutoff ({cutoff})" in row


def test_a_failing_fold_is_recorded_and_the_run_goes_on(tiny, shared_news, monkeypatch):
    real, calls = uwf.train_adapter, []

    def flaky(cfg, train, val, parent):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return real(cfg, train, val, parent)

    monkeypatch.setattr(uwf, "train_adapter", flaky)
    result = run_walkforward(universe_wf_config(tiny, shared_news), say=lambda _: None)
    assert result.folds[0].facts["error"] == "RuntimeError: disk full"
    assert len(result.ok) == len(result.folds) - 1 >= 1


def test_the_cli_runs_a_universe_walkforward_and_compare_reads_it_back(tiny, shared_news, first_run,
                                                                          tmp_path):
    from click.testing import CliRunner

    import llmbt.cli.wf  # noqa: F401  (registers the commands)
    from llmbt.cli import cli

    cfg = universe_wf_config(tiny, shared_news).run
    args = ["walkforward", "--strategy", "llm_news_portfolio", "--model", str(tiny), "--symbols", UWF_SYMBOLS,
            "--start", cfg.start, "--end", cfg.end, "--data", cfg.data, "--news", cfg.news,
            "--news-tz", cfg.news_tz, "--param", "top_k=2", "--batch-size", "16", "--train", "40",
            "--test", "21", "--embargo", "5", "--out", str(tmp_path / "out"),
            *[a for k, v in UWF_TRAIN.items() for a in ("--train-param", f"{k}={v}")]]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "adapter reused" in res.output  # the same folds as first_run: served from the store
    assert "IC per arm" in res.output and "mean_ic" in res.output
    folds_ic = pd.read_csv(tmp_path / "out" / "folds_ic.csv")
    assert set(folds_ic["model"]) == {"base", "lora"} and len(folds_ic) == 2 * len(first_run.ok)
    assert folds_ic["mean_ic"].notna().all()
    out = tmp_path / "out"
    assert f"comparison page: {out / 'comparison.html'}; tearsheet: {out / 'tearsheet.html'}" in res.output
    assert "IC difference lora - base" in res.output and "Each arm alone vs the benchmark" in res.output
    page = (out / "comparison.html").read_text()
    assert all(f"<td>{s:.3f}</td>" in page and f"<td>{ic:.4f}</td>" in page
               for s, ic in zip(folds_ic["sharpe"], folds_ic["mean_ic"], strict=True))
    assert (out / "tearsheet.html").is_file()
    per_arm = pd.read_csv(out / "spa_dsr.csv", index_col="arm")
    assert list(per_arm.index) == ["base", "lora"] and (per_arm["n_trials"] == 2).all()
    again = CliRunner().invoke(cli, ["compare", "--from", str(tmp_path / "out")])
    assert again.exit_code == 0 and "IC per arm" in again.output, again.output


def test_a_universe_walkforward_without_news_is_one_line(tiny, shared_news):
    from click.testing import CliRunner

    import llmbt.cli.wf  # noqa: F401
    from llmbt.cli import cli

    res = CliRunner().invoke(cli, ["walkforward", "--strategy", "llm_news_portfolio", "--symbols",
                                   UWF_SYMBOLS, "--data", universe_wf_config(tiny, shared_news).run.data,
                                   "--out", "x"])
    assert res.exit_code != 0 and "--news" in res.output and "Traceback" not in res.output, res.output


def test_jitter_of_a_walkforward_folder_reruns_each_fold_from_the_cache(first_run, tmp_path):
    from llmbt.engine.metrics import sharpe_ratio
    from llmbt.experiments.jitter import jitter_walkforward

    out = write_results(first_run, tmp_path / "uwf-jitter")
    lines = jitter_walkforward(out, 2, 0.0)  # sigma 0: every re-run is the run itself
    for line, arm in zip(lines, ("base", "lora"), strict=True):
        sharpe = sharpe_ratio(first_run.stitched(arm), 252)
        assert line.startswith(f"{arm}: stitched Sharpe {sharpe:.2f}; 2 runs")
        assert f"min {sharpe:.2f} / median {sharpe:.2f} / max {sharpe:.2f} (spread 0.00)" in line


def test_a_walkforward_study_adds_each_arms_jitter_spread_to_its_stitched_table(first_run, tmp_path):
    from llmbt.engine.metrics import sharpe_ratio
    from llmbt.experiments import studies

    out = write_results(first_run, tmp_path / "uwf-study-jitter")
    recipe = studies.Recipe("w", "w", "walkforward", first_run.config.run.to_dict(),
                            {"horizon": 5, "jitter": 2, "jitter_sigma": 0.0})
    rows = studies._walkforward_jitter(recipe, out)  # sigma 0: every re-run is the run itself
    for arm in ("base", "lora"):
        sharpe = f"{sharpe_ratio(first_run.stitched(arm), 252):.2f}"
        assert rows["Sharpe, --jitter 2 σ 0 (min / median / max)"][arm] == f"{sharpe} / {sharpe} / {sharpe}"


def test_a_walkforward_study_publishes_its_statistics_from_the_folder_alone(first_run, tmp_path):
    from llmbt.reports.study_stats import walkforward_statistics

    out = write_results(first_run, tmp_path / "uwf-stats")
    table = walkforward_statistics(read_results(out))
    assert table.startswith("| Statistic | base | lora |\n"), table
    assert "| mean daily IC (t, p) |" in table and "| Sharpe − base, 95 % CI (p) | — |" in table
    assert table == walkforward_statistics(read_results(out))  # seeded bootstraps: byte for byte
