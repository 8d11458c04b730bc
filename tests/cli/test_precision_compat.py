"""What renaming the scoring ``--engine`` (auto, torch, torch-bf16) to ``--precision`` (auto,
float32, bf16) keeps: run ids, walk-forward ids, trial fingerprints and configs written before
(key ``engine``), and the old flag as a hidden alias with one deprecation line. The model
fingerprint's payload is pinned in test_precision.py (it needs a model)."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from llmbt.cli import cli
from llmbt.engine import config as config_mod
from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.experiments.trial_ids import scorer_fingerprint
from llmbt.experiments.wf_config import WalkForwardConfig
from llmbt.signals_cache.model import precision as precision_mod

#: Ids of the default llm_sentiment run before the rename: auto (today's default) and torch-bf16.

pytestmark = pytest.mark.usefixtures("llmbt_home")

RUN_IDS = {"auto": "ae6b36414e4f", "bf16": "f4c1b93ea08a"}
WF_IDS = {"auto": "82e2e78437b5", "bf16": "a881df85cc0c"}
SCORER = {"auto": "753855dbcf7191b8", "bf16": "7065e8aa7a5cfb14"}


@pytest.fixture
def llm() -> RunConfig:
    return RunConfig(strategy="llm_sentiment")


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_run_walkforward_and_trial_ids_are_those_from_before_the_rename(llm, precision) -> None:
    config = llm.replace(precision=precision)
    assert config.run_id == RUN_IDS[precision]
    assert WalkForwardConfig(run=config).run_id == WF_IDS[precision]
    assert scorer_fingerprint(config, {"scorer fingerprint": "abc"}) == SCORER[precision]


def test_ids_hash_the_old_key_and_name_while_configs_write_the_new(llm) -> None:
    bf16 = llm.replace(precision="bf16")
    assert bf16.to_dict()["precision"] == "bf16" and "engine" not in bf16.to_dict()
    assert bf16.id_dict()["engine"] == "torch-bf16" and "precision" not in bf16.id_dict()
    assert "precision: bf16" in bf16.to_yaml()
    assert config_mod.ENGINE_NAMES == precision_mod.ENGINE_NAMES
    assert config_mod.PRECISIONS == precision_mod.PRECISIONS


@pytest.mark.parametrize(("old", "new"), [("auto", "auto"), ("torch", "float32"), ("torch-bf16", "bf16")])
def test_a_config_written_before_loads_with_its_id(llm, caplog, old, new) -> None:
    saved = llm.replace(precision=new).id_dict()  # what config.json held: key engine, old name
    with caplog.at_level(logging.WARNING, logger="llmbt"):
        loaded = RunConfig.from_dict(saved, source="run.yaml")
    assert loaded.precision == new and loaded.run_id == llm.replace(precision=new).run_id
    assert [r.getMessage() for r in caplog.records] == [
        f"run.yaml: key 'engine' is deprecated: use precision: {new}"]
    caplog.clear()
    assert RunConfig.from_dict(saved, warn=False).precision == new and not caplog.records


def test_old_engine_key_refused_beside_precision_or_with_an_unknown_value(llm) -> None:
    with pytest.raises(ConfigError, match="'engine' is the old name of 'precision'"):
        RunConfig.from_dict({"engine": "torch", "precision": "float32"})
    with pytest.raises(ConfigError, match="engine 'torch-bf61' is not one of auto, torch, "
                                          "torch-bf16. Did you mean 'torch-bf16'?"):
        RunConfig.from_dict({"engine": "torch-bf61"})
    with pytest.raises(ConfigError, match="unknown key 'precison'. Did you mean 'precision'"):
        RunConfig.from_dict({"precison": "bf16"})


def test_old_engine_flag_maps_its_values_and_says_so_once(tmp_path) -> None:
    runner = CliRunner()
    for old, new in (("torch", "float32"), ("torch-bf16", "bf16"), ("auto", "auto")):
        out = tmp_path / f"{old}.yaml"
        res = runner.invoke(cli, ["run", "--engine", old, "--no-report", "--save-config", str(out)])
        assert res.exit_code == 0, res.output
        assert res.stderr.splitlines() == [f"--engine is deprecated: use --precision {new}"]
        assert f"precision: {new}" in out.read_text()
    res = runner.invoke(cli, ["run", "--engine", "torch", "--precision", "float32", "--no-report"])
    assert res.exit_code != 0 and "give only --precision" in res.output
    assert "--engine" not in runner.invoke(cli, ["run", "--help"]).output  # hidden


@pytest.mark.parametrize("command", [["run"], ["compare"], ["walkforward"], ["score"], ["evaluate"],
                                     ["cache", "clear"], ["audit", "lookahead"],
                                     ["bench", "precision-backtest"]])
def test_every_command_of_the_old_flag_has_precision(command) -> None:
    out = CliRunner().invoke(cli, [*command, "--help"]).output
    assert "--precision [auto|float32|bf16]" in out and "--engine" not in out


def test_bench_scoring_old_engines_list_and_old_command_name() -> None:
    from llmbt.cli.bench import _precision_names, bench

    assert _precision_names(None, None) == ["float32", "bf16"]
    assert _precision_names("bf16", None) == ["bf16"] and _precision_names("none", None) == []
    assert _precision_names(None, "torch,torch-bf16") == ["float32", "bf16"]
    with pytest.raises(ConfigError, match="give only --precisions"):
        _precision_names("bf16", "torch-bf16")
    with pytest.raises(ConfigError, match="--precision 'torch' is not valid. It is the old"):
        _precision_names("torch", None)
    old = bench.commands["engine-backtest"]
    assert old.hidden and old.callback is bench.commands["precision-backtest"].callback
    assert "engine-backtest" not in CliRunner().invoke(cli, ["bench", "--help"]).output


def test_jitter_sigma_stored_before_the_rename_is_still_read(llmbt_home) -> None:
    import json

    from llmbt.experiments.jitter import store_sigma, stored_sigma

    llmbt_home.mkdir(parents=True, exist_ok=True)
    (llmbt_home / "engine_error.json").write_text(json.dumps({"sigma": 0.02, "engines": "x"}))
    assert stored_sigma() == 0.02
    store_sigma(0.011, "bf16 vs float32")
    assert stored_sigma() == 0.011  # the new file wins
