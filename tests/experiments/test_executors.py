"""Executors: the serial and Ray executors give the same fold results (order, failures, messages),
``--executor`` is validated and leaves the run id alone, and a missing ray is one line.

The fast tests run real but cheap work in Ray workers (stdlib functions; a moving-average backtest
per fold on the real GOOG bars); monkeypatches do not reach Ray worker processes. The slow test runs
a whole walk-forward (tiny random Llama, real LoRA steps and scoring) both ways."""

from __future__ import annotations

import json
import math
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import save_tiny

from llmbt.engine.config import RunConfig
from llmbt.engine.runner import run_backtest
from llmbt.errors import ConfigError
from llmbt.experiments.evaluation import run_facts
from llmbt.experiments.executors import RayExecutor, SerialExecutor, make_executor, worker_env
from llmbt.experiments.splitters import WalkForward
from llmbt.experiments.walkforward import FoldResult, WalkForwardConfig, run_folds, run_walkforward


@pytest.fixture(scope="module")
def ray_executor():
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # sma_fold below, by value
    yield RayExecutor(num_cpus=2)
    ray.shutdown()


def test_the_executors_map_in_item_order(ray_executor):
    items = [9.0, 2.0, 16.0, 0.25]
    assert SerialExecutor().map(math.sqrt, items) == ray_executor.map(math.sqrt, items) == [
        3.0, math.sqrt(2.0), 4.0, 0.5]
    assert ray_executor.map(partial(pow, 2), [3, 1, 10]) == [8, 2, 1024]


def test_a_task_error_is_raised_as_itself(ray_executor):
    for executor in (SerialExecutor(), ray_executor):
        with pytest.raises(ValueError, match="math domain error"):
            executor.map(math.sqrt, [4.0, -1.0, 9.0])


def sma_fold(prices: pd.DataFrame, fold, parent, say) -> FoldResult:
    """A real, cheap fold: a moving-average cross backtest on the test window (fold 2 fails)."""
    if fold.number == 2:
        raise RuntimeError("disk full")
    start, last = int(fold.test[0]), int(fold.test[-1]) + 1
    cfg = RunConfig(strategy="sma_cross", data="sample:GOOG", start=f"{fold.test_start:%Y-%m-%d}",
                    end=f"{fold.test_end:%Y-%m-%d}")
    run = run_backtest(cfg, prices=prices.iloc[start:last], history=prices.iloc[:last])
    say(f"fold {fold.number}: {len(run.returns)} bars, parent {parent}")
    facts = run_facts(run)
    return FoldResult(fold.as_dict() | {"models": {"sma": facts}}, runs={"sma": run})


def _run(goog, executor: str) -> tuple[list[FoldResult], list[str]]:
    cfg = WalkForwardConfig(executor=executor)
    folds = WalkForward(train=300, test=120, embargo=5).folds(goog.index)
    said: list[str] = []
    return run_folds(cfg, folds, partial(sma_fold, goog), said.append), said


def test_serial_and_ray_folds_are_identical_failures_included(goog, ray_executor):
    serial, said_serial = _run(goog, "serial")
    ray_folds, said_ray = _run(goog, "ray")
    assert len(serial) == len(ray_folds) >= 5
    assert serial[2].facts["error"] == ray_folds[2].facts["error"] == "RuntimeError: disk full"
    assert said_serial == said_ray and "fold 2 FAILED: RuntimeError: disk full" in said_ray
    for a, b in zip(serial, ray_folds, strict=True):
        assert _untimed(a.facts) == _untimed(b.facts)
        for name, run in a.runs.items():
            pd.testing.assert_series_equal(run.returns, b.runs[name].returns, check_exact=True)
            pd.testing.assert_frame_equal(run.trades, b.runs[name].trades, check_exact=True)


def test_fail_fast_stops_with_the_folds_own_error(goog, ray_executor):
    folds = WalkForward(train=300, test=120, embargo=5).folds(goog.index)
    for executor in ("serial", "ray"):
        with pytest.raises(RuntimeError, match="disk full"):
            run_folds(WalkForwardConfig(executor=executor, fail_fast=True), folds,
                      partial(sma_fold, goog), lambda _: None)


def _untimed(facts: dict) -> str:
    """Facts without wall times (the only thing allowed to differ between executors), as JSON
    (exact float repr; NaN equals NaN)."""
    def drop(value):
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if "seconds" not in k and k != "ms_per_item"}
        return value

    return json.dumps(drop(facts), sort_keys=True, default=str)


def test_the_executor_is_validated_and_leaves_the_run_id_alone():
    assert WalkForwardConfig(executor="ray", ray_address="10.0.0.5:6379").run_id == \
        WalkForwardConfig().run_id
    with pytest.raises(ConfigError, match=r"--executor 'rya' is not valid\. Did you mean 'ray'\?"):
        WalkForwardConfig(executor="rya")
    with pytest.raises(ConfigError, match="--ray-address '10.0.0.5:6379' needs --executor ray"):
        WalkForwardConfig(ray_address="10.0.0.5:6379")
    with pytest.raises(ConfigError, match="--warm-start chains the folds"):
        WalkForwardConfig(executor="ray", warm_start=True)
    assert isinstance(make_executor("serial"), SerialExecutor)


def test_a_missing_ray_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"^--executor ray needs the ray package: "
                                          r"pip install 'llmbt\[ray\]'$"):
        RayExecutor().map(math.sqrt, [1.0])


def test_workers_get_the_home_and_hugging_face_settings_but_no_keys(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMBT_HOME", "home")  # relative: made absolute for workers elsewhere
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FINNHUB_API_KEY", "secret")
    monkeypatch.delenv("HF_HOME", raising=False)
    env = worker_env()
    assert env["LLMBT_HOME"] == str(tmp_path / "home") and env["HF_HUB_OFFLINE"] == "1"
    assert "FINNHUB_API_KEY" not in env and "HF_HOME" not in env


@pytest.mark.slow
def test_a_walkforward_through_ray_equals_the_serial_one(tmp_path, tokenizer_dir, monkeypatch,
                                                         ray_executor):
    """Tiny random Llama, real LoRA steps and scoring; separate homes, so both train and score.

    What was traded is bitwise the same. Model probabilities agree to float32 precision, not
    bitwise: a prompt's probabilities change in the last float32 bits with the padded batch it is
    scored in, and folds running at once fill the shared signal cache in another order (a serial
    run over a warm cache differs the same way), which also changes each fold's cache hit rate."""
    tiny = save_tiny(tmp_path / "tiny", tokenizer_dir)
    run = RunConfig(strategy="llm_sentiment", model=str(tiny), start="2012-01-01", end="2012-06-30",
                    batch_size=8)
    train = {"max_steps": 1, "eval_every": 1, "top_layers": 1, "batch_size": 4}
    results = {}
    for executor in ("serial", "ray"):
        monkeypatch.setenv("LLMBT_HOME", str(tmp_path / f"home-{executor}"))
        cfg = WalkForwardConfig(run=run, splitter=WalkForward(train=60, test=30, embargo=5),
                                train=train, executor=executor)
        results[executor] = run_walkforward(cfg, say=lambda _: None)
    serial, ray_run = results["serial"], results["ray"]
    assert len(serial.ok) == len(ray_run.ok) == len(serial.folds) >= 2
    for a, b in zip(serial.folds, ray_run.folds, strict=True):
        assert Path(a.facts["adapter"]).name == Path(b.facts["adapter"]).name  # content hash
        # the scorer fingerprint hashes the adapter's files, whose metadata records its training time
        facts_a, facts_b = ({k: v for k, v in _leaves(f.facts).items() if not k.endswith("/scorer")}
                            for f in (a, b))
        floats = {k for k, v in facts_a.items() if isinstance(v, float)}
        assert {k: v for k, v in facts_a.items() if k not in floats} == \
            {k: v for k, v in facts_b.items() if k not in floats}
        assert {k: facts_a[k] for k in floats} == pytest.approx({k: facts_b[k] for k in floats},
                                                                rel=1e-6, nan_ok=True)
        for name in ("base", "lora"):
            pd.testing.assert_frame_equal(a.runs[name].trades, b.runs[name].trades, check_exact=True)
            left, right = a.scores[name], b.scores[name]
            pd.testing.assert_frame_equal(left.drop(columns="signal"), right.drop(columns="signal"),
                                          rtol=0, atol=1e-6)
            # the traded signal z-scores the tiny model's near-zero scores: differences grow
            pd.testing.assert_series_equal(left["signal"], right["signal"], rtol=1e-4)
            for key in ("sharpe", "total_return", "trades", "eval_f1", "hit_rate"):
                assert _same(a.facts["models"][name][key], b.facts["models"][name][key]), key
    for name in ("base", "lora", "buy_and_hold"):
        np.testing.assert_array_equal(serial.stitched(name).to_numpy(), ray_run.stitched(name).to_numpy())


def _leaves(facts: dict, prefix: str = "") -> dict:
    """Numeric facts by path, without wall times, cache hit rates and the adapter's folder."""
    out = {}
    for key, value in facts.items():
        if isinstance(value, dict):
            out |= _leaves(value, f"{prefix}{key}/")
        elif not ("seconds" in key or key in ("ms_per_item", "cache_hit_rate", "adapter")):
            out[prefix + key] = value
    return out


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_the_cli_refuses_a_bad_executor_in_one_line():
    from click.testing import CliRunner

    from llmbt.cli import cli

    for args, line in ((["--executor", "rya"], "--executor 'rya' is not valid. Did you mean 'ray'?"),
                       (["--executor", "ray", "--warm-start"], "--warm-start chains the folds")):
        res = CliRunner().invoke(cli, ["walkforward", "--data", "sample:GOOG", *args])
        errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
        assert res.exit_code != 0 and len(errors) == 1 and line in errors[0], res.output


class _Cluster:
    def __init__(self, resources: dict) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict:
        return self.resources


def test_a_task_asks_for_a_gpu_when_the_cluster_has_one():
    assert RayExecutor().task_gpus(_Cluster({"CPU": 32.0, "GPU": 4.0})) == 1.0
    assert RayExecutor().task_gpus(_Cluster({"CPU": 2.0})) == 0.0
    assert RayExecutor(num_gpus=0.5).task_gpus(_Cluster({"GPU": 1.0})) == 0.5
