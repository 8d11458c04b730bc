"""Walk-forward end to end on a tiny random Llama: folds, stitching, results folder, caches, failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers_experiments import WF_TRAIN

from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.experiments import walkforward as wf
from llmbt.experiments.results import read_results, write_results
from llmbt.experiments.splitters import WalkForward
from llmbt.experiments.walkforward import WalkForwardConfig, fold_examples, run_walkforward
from llmbt.feeds import load_prices


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path_factory.getbasetemp() / "wf-home"))


def make_config(tiny, **kw) -> WalkForwardConfig:
    run = RunConfig(strategy="llm_sentiment", model=str(tiny), start="2012-01-01", end="2012-12-31",
                    batch_size=8)
    base = {"run": run, "splitter": WalkForward(train=100, test=40, embargo=5), "train": WF_TRAIN}
    return WalkForwardConfig(**(base | kw))


@pytest.fixture(scope="module")
def first_run(tiny, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(tmp_path_factory.getbasetemp() / "wf-home"))
        return run_walkforward(make_config(tiny), say=lambda _: None)


def test_every_fold_runs_both_models_out_of_sample(first_run):
    assert len(first_run.folds) == 4 and len(first_run.ok) == 4
    for fold in first_run.ok:
        facts = fold.facts
        assert pd.Timestamp(facts["train_end"]) < pd.Timestamp(facts["test_start"])
        assert set(facts["models"]) == {"base", "lora"}
        for name, run in fold.runs.items():
            assert run.returns.index[0] == pd.Timestamp(facts["test_start"]), name
            assert run.returns.index[-1] == pd.Timestamp(facts["test_end"]), name
        assert fold.facts["examples"]["train"] > 20


def test_stitched_returns_are_the_concatenated_fold_returns(first_run):
    for name in ("base", "lora", "buy_and_hold"):
        stitched = first_run.stitched(name)
        parts = [f.benchmark if name == "buy_and_hold" else f.runs[name].returns for f in first_run.ok]
        np.testing.assert_array_equal(stitched.to_numpy(), np.concatenate([p.to_numpy() for p in parts]))
        assert stitched.index.is_monotonic_increasing and not stitched.index.has_duplicates


def test_hit_rates_score_the_traded_signal(first_run):
    from llmbt.signals_cache.finetune.evaluate import directional_metrics

    for fold in first_run.ok:
        for name, run in fold.runs.items():
            frame = fold.scores[name]
            traded = run.signals["score"].reindex(frame.index)  # the z-scored column the strategy read
            np.testing.assert_array_equal(frame["signal"].to_numpy(), traded.to_numpy())
            assert not np.allclose(frame["signal"].fillna(0), frame["score"])  # not the raw score
            want = directional_metrics(traded.to_numpy(), frame["forward_return"].to_numpy())
            assert fold.facts["models"][name]["hit_rate"] == want["hit_rate"]


def test_results_folder_round_trips(first_run, tmp_path):
    out = write_results(first_run, tmp_path / "wf")
    for name in ("config.json", "run.json", "folds.csv", "returns.csv", "scores.csv", "folds/fold-0.json"):
        assert (out / name).is_file(), name
    assert (out / "adapters" / "fold-0" / "adapter_config.json").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["run_id"] == first_run.config.run_id and run["failed_folds"] == []
    assert {"torch", "transformers", "peft"} <= run["versions"].keys()
    back = read_results(out)
    pd.testing.assert_series_equal(back["returns"]["lora"], first_run.stitched("lora"),
                                   check_names=False, check_freq=False, check_index_type=False)
    assert set(back["scores"]) == {"lora", "base"} and len(back["folds"]) == 8


def test_second_run_reuses_adapters_and_cached_scores(tiny, first_run):
    second = run_walkforward(make_config(tiny), say=lambda _: None)
    assert all(f.facts["adapter_reused"] for f in second.ok)
    assert all(m["cache_hit_rate"] == 1.0 for f in second.ok for m in f.facts["models"].values())
    pd.testing.assert_series_equal(second.stitched("lora"), first_run.stitched("lora"))


def test_a_failing_fold_is_recorded_and_the_run_goes_on(tiny, monkeypatch):
    real = wf.train_adapter

    def flaky(cfg, train, val, parent):
        if train[0].time.month == 6:  # the fold whose train window starts in June
            raise RuntimeError("disk full")
        return real(cfg, train, val, parent)

    monkeypatch.setattr(wf, "train_adapter", flaky)
    cfg = make_config(tiny, splitter=WalkForward(train=100, test=40, step=40, embargo=5))
    result = run_walkforward(cfg, say=lambda _: None)
    errors = [f.facts for f in result.folds if "error" in f.facts]
    assert len(errors) == 1 and errors[0]["error"] == "RuntimeError: disk full"
    assert len(result.ok) == 3
    with pytest.raises(RuntimeError, match="disk full"):
        run_walkforward(make_config(tiny, fail_fast=True), say=lambda _: None)


def test_train_examples_never_see_the_test_window(tiny):
    cfg = make_config(tiny)
    prices = load_prices("sample:GOOG", None, "2012-12-31")
    offset = int(prices.index.searchsorted(pd.Timestamp("2012-01-01", tz="UTC")))
    fold = wf.shift_fold(cfg.splitter.folds(prices.index[offset:])[1], offset, prices.index)
    train, test = fold_examples(cfg, prices, fold)
    changed = prices.copy()
    changed.iloc[int(fold.train[-1]) + 1 :, :4] *= 1.5  # every bar after the train window
    train2, test2 = fold_examples(cfg, changed, fold)
    assert [(e.text, e.label) for e in train] == [(e.text, e.label) for e in train2]
    last = prices.index[int(fold.train[-1]) - cfg.horizon]
    assert max(e.time for e in train) <= last
    assert all(fold.test_start <= e.time <= fold.test_end for e in test)
    assert [e.label for e in test] != [e.label for e in test2] or test != test2


def test_config_errors_name_the_flag(tiny):
    with pytest.raises(ConfigError, match="--embargo 2 is shorter than --horizon 5"):
        make_config(tiny, splitter=WalkForward(train=100, test=40, embargo=2))
    with pytest.raises(ConfigError, match="--train-param"):
        make_config(tiny, train={"max_stepz": 3})
    with pytest.raises(ConfigError, match="--max-steps"):
        make_config(tiny, train={"max_steps": -1})
    with pytest.raises(ConfigError, match="--mode bars"):
        make_config(tiny, run=RunConfig(strategy="llm_sentiment", mode="headlines"))


def test_run_id_changes_with_the_config(tiny):
    a = make_config(tiny)
    assert a.run_id == make_config(tiny).run_id
    assert a.run_id != make_config(tiny, horizon=3, splitter=WalkForward(train=100, test=40)).run_id
    assert a.run_id == make_config(tiny, fail_fast=True).run_id


def test_compare_from_a_results_folder_writes_the_pages(first_run, tmp_path):
    from llmbt.reports.compare import compare_results

    out = write_results(first_run, tmp_path / "wf")
    lines: list[str] = []
    comp = compare_results(out, say=lines.append)
    assert comp.stats["candidate"] == "lora" and comp.stats["dsr"]["trials"] == ["lora", "base"]
    assert comp.stats["dsr"]["bars"] == len(first_run.stitched("lora"))  # the stitched test windows
    assert list(comp.metrics.columns) == ["lora", "base", "buy_and_hold"]
    for name in ("comparison.html", "tearsheet.html", "tearsheet-buy_and_hold.html", "compare.json"):
        assert (out / name).is_file(), name
    assert any("Sharpe" in line for line in lines)


def test_an_adapter_is_refused_so_the_base_arm_stays_the_plain_base(tiny, tmp_path):
    from click.testing import CliRunner

    import llmbt.cli.wf  # noqa: F401  (registers the commands)
    from llmbt.cli import cli

    with pytest.raises(ConfigError, match="--adapter"):
        make_config(tiny, run=RunConfig(strategy="llm_sentiment", model=str(tiny),
                                        adapter=str(tmp_path)))

    res = CliRunner().invoke(cli, ["walkforward", "--model", str(tiny), "--adapter", str(tmp_path),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "--adapter" in res.output and "bt compare --arm" in res.output, res.output


def test_read_results_reloads_the_closes_of_a_folder_saved_without_prices_csv(tmp_path):
    """Older results folders lack prices.csv: the engine reloads the tested bars' closes from the
    run's data, so the comparison page (reports) only draws what it is given."""
    bars = load_prices("sample:GOOG", "2012-03-01", "2012-03-30").index
    for name, columns in (("returns", {"lora": 0.001, "base": 0.0}), ("scores", {"model": "lora"})):
        pd.DataFrame(columns, index=bars).to_csv(tmp_path / f"{name}.csv", index_label="time")
    pd.DataFrame({"test_start": [bars[0]], "test_end": [bars[-1]]}).to_csv(tmp_path / "folds.csv")
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"run": {"data": "sample:GOOG"}}))
    close = read_results(tmp_path)["close"]
    want = load_prices("sample:GOOG", "2012-03-01", "2012-03-30")["close"]
    np.testing.assert_array_equal(close.to_numpy(), want.to_numpy())
    assert list(close.index) == list(want.index)


def test_fold_split_thins_validation_evenly_and_keeps_train() -> None:
    from llmbt.experiments.walkforward import WalkForwardConfig, fold_split
    from llmbt.signals_cache.finetune.datasets import Example

    times = pd.date_range("2020-01-01", periods=400, freq="D", tz="UTC")
    examples = [Example(text=f"t{i}", label="neutral", time=t) for i, t in enumerate(times)]
    full = fold_split(WalkForwardConfig(max_val=0), examples)
    thin = fold_split(WalkForwardConfig(max_val=10), examples)
    assert thin["train"] == full["train"] and len(full["val"]) > 10
    assert len(thin["val"]) == 10 and thin["val"][0] == full["val"][0]
    assert thin["val"][-1] == full["val"][-1]  # still spans the whole validation block
    with pytest.raises(ConfigError, match="--max-val"):
        WalkForwardConfig(max_val=-1)
