"""The trial ledger (llmbt.experiments.trials): what a trial holds, one row per configuration, several
processes recording at once, `bt run` recording, `bt trials list` / `bt trials clear`, and the
identities (data and scorer fingerprints)."""

from __future__ import annotations

import math
import multiprocessing
import sqlite3

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers_experiments import GOOG_SMA, LEDGER_DAYS, returns_with_sharpe

from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.engine.metrics import sharpe_ratio
from llmbt.engine.runner import run_backtest
from llmbt.errors import ConfigError
from llmbt.experiments import trials
from llmbt.experiments.trial_ids import NO_SCORER, data_fingerprint, scorer_fingerprint


def record(config: RunConfig, sharpe: float, seed: int = 0, command: str = "run") -> str:
    return trials.record_run(config, returns_with_sharpe(sharpe, seed), {}, command)


def test_a_trial_holds_its_data_period_strategy_scorer_returns_and_sharpe(ledger):
    result = run_backtest(GOOG_SMA)
    key = trials.record_run(GOOG_SMA, result.returns, result.signal_info, "run")
    (trial,) = trials.list_trials(with_returns=True)
    assert trial.key == key and trial.data == data_fingerprint(GOOG_SMA.to_dict())
    assert trial.source == "sample:GOOG"
    assert (trial.first_bar, trial.last_bar) == ("2012-01-03T00:00:00Z", "2012-12-31T00:00:00Z")
    assert trial.strategy == "sma_cross" and trial.params == {"fast": 10, "slow": 30, "allow_short": False}
    assert trial.scorer == NO_SCORER and trial.run_id == GOOG_SMA.run_id and trial.command == "run"
    assert trial.sharpe == result.stats["sharpe"] and trial.periods_per_year == 252
    assert trial.bars == len(result.returns) == 250
    back = trial.series()
    assert back.index.equals(result.returns.index) and (back.to_numpy() == result.returns.to_numpy()).all()
    with sqlite3.connect(trials.ledger_path()) as conn:  # plain JSON numbers, never a pickle
        text = conn.execute("SELECT returns FROM trials").fetchone()[0]
    assert text.startswith('{"t":[1325548800,') and trial.created.endswith("+00:00")


def test_the_same_configuration_recorded_twice_is_one_trial(ledger):
    first = record(GOOG_SMA, 1.0)
    again = record(GOOG_SMA.replace(params={"fast": "10"}), 1.0, seed=3)  # the default, as --param gives it
    assert first == again and len(trials.list_trials()) == 1
    assert trials.list_trials()[0].sharpe == pytest.approx(1.0, rel=1e-9)  # the last one recorded
    record(GOOG_SMA.replace(params={"fast": 5}), 1.0)
    record(GOOG_SMA.replace(cash=50_000.0), 1.0)  # costs and cash are no new configuration
    assert len(trials.list_trials()) == 2
    shorter = trials.record_run(GOOG_SMA, returns_with_sharpe(1.0)[:100], {}, "run")  # another period
    assert shorter != first and len(trials.list_trials()) == 3


def _record_many(home: str, worker: int, n: int) -> None:
    import os

    os.environ["LLMBT_HOME"] = home
    os.environ.pop("LLMBT_TRIALS", None)
    for i in range(n):
        record(GOOG_SMA.replace(params={"fast": 2 + i, "slow": 100 + worker}), 0.1 * i, seed=i)
    record(GOOG_SMA, 0.5, seed=worker)  # every process: the same configuration


def test_several_processes_record_at_once_and_every_trial_is_there(ledger):
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                          else "spawn")
    workers = [context.Process(target=_record_many, args=(str(ledger), w, 15)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    found = trials.list_trials()
    assert len(found) == 4 * 15 + 1 == len({t.key for t in found})
    with sqlite3.connect(trials.ledger_path()) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bt_run_records_its_trial_and_says_how_many_are_on_its_data(ledger):
    args = ["run", "--strategy", "sma_cross", "--data", "sample:GOOG", "--start", "2012-01-01",
            "--end", "2012-12-31", "--no-report"]
    for extra in ([], [], ["--param", "fast=5"]):
        res = CliRunner().invoke(cli, args + extra)
        assert res.exit_code == 0, res.output
    assert "trial ledger: 2 trials on this data (bt trials list --data sample:GOOG)" in res.output
    found = trials.list_trials()
    assert [t.params["fast"] for t in found] == [10, 5] and {t.command for t in found} == {"run"}
    assert found[1].run_id == GOOG_SMA.replace(params={"fast": "5"}).run_id


def test_an_llm_run_has_a_scorer_fingerprint_from_its_cache_identity():
    info = {"scorer fingerprint": "0123456789abcdef (bars-v2)"}
    llm = RunConfig(strategy="llm_sentiment")
    base = scorer_fingerprint(llm, info)
    assert base != NO_SCORER and scorer_fingerprint(llm, {}) == NO_SCORER  # nothing scored
    changed = [llm.replace(prompt="bars-v1"), llm.replace(adapter="adapters/x"),
               llm.replace(quantization="8bit"), llm.replace(precision="float32"),
               llm.replace(scorer="lexicon"), llm.replace(model="other")]
    assert len({scorer_fingerprint(c, info) for c in changed} | {base}) == len(changed) + 1
    assert scorer_fingerprint(llm, {"scorer fingerprint": "fedcba9876543210 (bars-v2)"}) != base
    assert scorer_fingerprint(llm.replace(cash=1.0, start="2015-01-01"), info) == base


def test_the_data_fingerprint_covers_the_source_the_universe_and_the_news_file(tmp_path):
    prices, news = tmp_path / "p.csv", tmp_path / "news.csv"
    prices.write_text("a")
    news.write_text("b")
    run = {"data": f"csv:{prices}", "news": str(news)}
    base = data_fingerprint(run)
    for other in ({"symbols": "AAPL,MSFT"}, {"select": "news:30:252"}, {"membership": str(news)},
                  {"news": "finnhub:"}, {"interval": "1h"}, {"data": "sample:GOOG"}):
        assert data_fingerprint(run | other) != base, other
    assert data_fingerprint(run | {"start": "2015-01-01", "strategy": "x"}) == base
    news.write_text("bb")  # the news file changed: other data
    assert data_fingerprint(run) != base


def test_bt_trials_list_and_clear(ledger):
    record(GOOG_SMA, 1.0)
    record(GOOG_SMA.replace(params={"fast": 5}), -0.5)
    eur = RunConfig(strategy="buy_and_hold", data="sample:EURUSD")
    trials.record_run(eur, returns_with_sharpe(0.3), {}, "compare", arm="base", run_id="abcdef012345")
    res = CliRunner().invoke(cli, ["trials", "list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["when", "(UTC)", "command", "strategy", "data", "period", "Sharpe", "run",
                                "id"]
    assert "compare base" in lines[3] and "sample:EURUSD [" in lines[3] and "+0.30" in lines[3]
    assert "2012-01-02..2012-12-14" in lines[1] and "+1.00" in lines[1] and GOOG_SMA.run_id in lines[1]
    assert lines[-1].startswith("3 trials on 2 data fingerprints")
    only = CliRunner().invoke(cli, ["trials", "list", "--data", "sample:EURUSD"]).output
    assert "sample:GOOG" not in only and "1 trial on 1 data fingerprint on sample:EURUSD" in only
    assert "2 trials" in CliRunner().invoke(cli, ["trials", "list", "--strategy", "sma_cross"]).output
    res = CliRunner().invoke(cli, ["trials", "clear", "--data", "sample:EURUSD"])
    assert "removed 1 trial on sample:EURUSD" in res.output and len(trials.list_trials()) == 2
    assert "removed 0 trials" in CliRunner().invoke(cli, ["trials", "clear", "--before", "2000-01-01"]).output
    refused = CliRunner().invoke(cli, ["trials", "clear"], input="n\n")
    assert refused.exit_code != 0 and len(trials.list_trials()) == 2
    assert "removed 2 trials" in CliRunner().invoke(cli, ["trials", "clear", "--before", "2999-01-01"]).output
    assert "no trials recorded" in CliRunner().invoke(cli, ["trials", "list"]).output


def test_the_ledger_can_be_turned_off(ledger, monkeypatch):
    monkeypatch.setenv("LLMBT_TRIALS", "off")
    assert record(GOOG_SMA, 1.0) is None and not trials.ledger_path().exists()
    monkeypatch.setenv("LLMBT_TRIALS", "maybe")
    with pytest.raises(ConfigError, match="LLMBT_TRIALS='maybe' is not on or off"):
        record(GOOG_SMA, 1.0)


def test_a_flat_run_is_a_trial_without_a_sharpe(ledger):
    key = trials.record_run(GOOG_SMA, pd.Series(0.0, LEDGER_DAYS), {}, "run")
    (trial,) = trials.list_trials()
    assert trial.key == key and math.isnan(trial.sharpe)
    assert math.isnan(sharpe_ratio(pd.Series(0.0, LEDGER_DAYS)))
    assert trials.overlapping(trial.data, "2012-06-01T00:00:00Z", "2013-01-01T00:00:00Z")[0].key == key
    assert trials.overlapping(trial.data, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z") == []
    assert trials.overlapping(trial.data, "2012-06-01T00:00:00Z", "2013-01-01T00:00:00Z", [key]) == []


def test_the_recording_benchmark_runs_in_a_ledger_of_its_own(ledger):
    from llmbt.experiments.bench.trials import TrialsBench, bench_trials

    out = bench_trials(TrialsBench(start="2012-01-01", repeats=2, filled=4))
    assert out["bars"] > 250 and out["filled_trials"] == 6 and out["goal_ms"] == 50
    assert all(out[k] > 0 for k in ("first_ms", "new_median_ms", "replace_median_ms", "slowest_ms"))
    assert not trials.ledger_path().exists()  # a temporary home, not the user's ledger
