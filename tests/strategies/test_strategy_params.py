"""Strategy parameters (llmbt.strategies.params): one typed, frozen dataclass per strategy, from which
Backtrader's ``params`` are derived; checked once when the run config is made (errors name the
``--param``), read as they are downstream, and with the run ids they had before they were typed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import backtrader as bt
import pytest

from llmbt.engine.config import RunConfig
from llmbt.engine.runner import run_backtest
from llmbt.errors import ConfigError
from llmbt.strategies.baselines import SmaCross, SmaCrossParams
from llmbt.strategies.llm_sentiment import LlmSentiment, LlmSentimentParams
from llmbt.strategies.params import StrategyParams
from llmbt.strategies.portfolio import LlmNewsPortfolio
from llmbt.strategies.registry import available, get_strategy, register

#: One non-default value per strategy, as ``--param`` gives it (a string) and typed.
GIVEN = {"sma_cross": ({"slow": "40"}, {"slow": 40}),
         "buy_and_hold": ({}, {}),
         "llm_sentiment": ({"entry": "0.3", "allow_short": "true"}, {"entry": 0.3, "allow_short": True}),
         "llm_news_portfolio": ({"top_k": "3", "entry": "none"}, {"top_k": 3, "entry": None}),
         "equal_weight": ({"rebalance": "21"}, {"rebalance": 21})}


def test_every_strategy_declares_its_parameters_once():
    assert set(GIVEN) == set(available())
    for name in available():
        cls = get_strategy(name)
        assert issubclass(cls.Params, StrategyParams)
        assert dict(cls.params._getitems()) == cls.Params().all_values()  # Backtrader's, derived


@pytest.mark.parametrize("name", sorted(GIVEN))
def test_a_strategy_s_parameters_round_trip(name, tmp_path):
    flags, typed = GIVEN[name]
    cfg = RunConfig(strategy=name, params=flags)
    assert type(cfg.params) is get_strategy(name).Params and cfg.params.to_dict() == typed
    assert cfg.params == RunConfig(strategy=name, params=typed).params  # --param and YAML: one value
    assert cfg.params.all_values() == get_strategy(name).Params().all_values() | typed
    assert cfg.params.of(cfg.params) is cfg.params
    path = tmp_path / "run.yaml"
    path.write_text(cfg.to_yaml())
    assert RunConfig.from_yaml(path) == cfg and RunConfig.from_yaml(path).run_id == cfg.run_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.params._given = frozenset()


def test_run_ids_are_the_ones_before_the_parameters_were_typed():
    """Pinned to the ids of the same configs when ``params`` was a checked mapping."""
    pins = [("llm_sentiment", {}, "ae6b36414e4f"), ("sma_cross", {}, "3337fcf67234"),
            ("sma_cross", {"fast": "5"}, "005ba4afb649"), ("sma_cross", {"fast": 5}, "005ba4afb649"),
            ("sma_cross", {"fast": 10}, "354d196dbb9a"),  # a default given is part of the id
            ("sma_cross", {"fast": "7", "slow": "50", "allow_short": "true"}, "7e0f2c4ee8cc"),
            ("llm_sentiment", {"entry": "0.3", "exit": 0, "sizing": "kelly", "normalize": "none"},
             "0197d3bf04a5"),  # the YAML int 0 of a float stays 0
            ("llm_sentiment", {"entry": 1, "half_life": 2, "lookback": "30", "max_hold": "5"},
             "7b2313f1ffab"),
            ("llm_news_portfolio", {"top_k": "3", "gross": 1, "entry": "none"}, "e9b5dc6740cc"),
            ("llm_news_portfolio",
             {"entry": "0.3", "n_drop": "2", "max_turnover": "0.4", "min_confidence": 0}, "9a44f1be85d7"),
            ("equal_weight", {"rebalance": "5", "gross": "1"}, "8d12f8313199"),
            ("buy_and_hold", {}, "4c311d5c86ca")]
    assert [RunConfig(strategy=s, params=p).run_id for s, p, _ in pins] == [pin for *_, pin in pins]
    assert RunConfig(strategy="sma_cross", params={"fast": "5"}).to_dict()["params"] == {"fast": 5}


@pytest.mark.parametrize("name, params, fragment", [
    ("sma_cross", {"fast": "five"},
     "--param fast='five' must be an integer (default 10): e.g. --param fast=10"),
    ("sma_cross", {"fast": 5.5}, "--param fast=5.5 must be an integer"),
    ("sma_cross", {"allow_short": "maybe"}, "--param allow_short='maybe' must be true or false"),
    ("sma_cross", {"slwo": 40},
     "--param slwo: strategy 'sma_cross' has no parameter 'slwo'. Did you mean 'slow'?"),
    ("llm_sentiment", {"entry": "high"}, "--param entry='high' must be a number (default 0.25)"),
    ("llm_sentiment", {"sizing": 3}, "--param sizing=3 must be text"),
    ("llm_news_portfolio", {"top_k": "0"}, "--param top_k='0' must be an integer >= 1"),
    ("equal_weight", {"gross": "all"}, "--param gross='all' must be a number >= 0"),
    ("buy_and_hold", {"size": 1}, "--param size: strategy 'buy_and_hold' has no parameter 'size'."),
])
def test_a_bad_value_is_one_line_naming_the_param(name, params, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig(strategy=name, params=params)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, params, fragment", [
    ("sma_cross", {"fast": 30}, "sma_cross needs 0 < --param fast < --param slow, got fast=30 slow=30"),
    ("sma_cross", {"fast": 0}, "got fast=0 slow=30"),
    ("llm_sentiment", {"exit": 0.5}, "llm_sentiment needs -1 <= exit <= entry <= 1, got entry=0.25 exit=0.5"),
    ("llm_sentiment", {"min_confidence": "1.5"}, "--param min_confidence=1.5 must be in [0, 1]"),
    ("llm_sentiment", {"stop_loss": -0.1}, "--param stop_loss=-0.1 must be a number >= 0"),
    ("llm_sentiment", {"vol_target": 0}, "--param vol_target=0 must be > 0"),
    ("llm_sentiment", {"lookback": 3}, "--param lookback=3 must be at least 5 bars for normalize=zscore"),
    ("llm_sentiment", {"sizing": "kely"},
     "--param sizing='kely' is not one of fixed, confidence, vol_target, kelly. Did you mean 'kelly'?"),
    ("llm_news_portfolio", {"top_k": 2, "n_drop": 3}, "--param n_drop=3 must be at most top_k=2"),
    ("llm_news_portfolio", {"max_turnover": "3"}, "--param max_turnover='3' must be in (0, 2]"),
])
def test_a_strategy_s_own_rules_are_checked_when_the_config_is_made(name, params, fragment):
    with pytest.raises(ConfigError) as err:
        RunConfig(strategy=name, params=params)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_value_made_directly_is_typed_and_checked_like_one_from_the_cli():
    assert SmaCrossParams(fast="5") == RunConfig(strategy="sma_cross", params={"fast": "5"}).params
    assert LlmSentimentParams(lookback=3, normalize="none").lookback == 3  # the rule is zscore's
    with pytest.raises(ConfigError, match="--param slow=2.5 must be an integer"):
        SmaCrossParams(slow=2.5)


def test_the_runner_reads_the_config_s_typed_parameters_as_they_are(goog, monkeypatch):
    seen = []
    monkeypatch.setattr(SmaCross, "min_bars", classmethod(lambda cls, p: seen.append(p) or (1, "")))
    cfg = RunConfig(strategy="sma_cross", start=None, params={"fast": "5"})
    run_backtest(cfg, prices=goog, with_benchmark=False)
    assert seen == [cfg.params] and seen[0] is cfg.params

    def stop(cls, params):
        seen.append(params)
        raise ConfigError("stop before scoring")

    monkeypatch.setattr(LlmSentiment, "signal_spec", classmethod(stop))
    llm = RunConfig(strategy="llm_sentiment", start=None, params={"lookback": "30"})
    with pytest.raises(ConfigError, match="stop before scoring"):
        run_backtest(llm, prices=goog, with_benchmark=False)
    assert seen[-1] is llm.params and seen[-1].lookback == 30


def test_another_strategy_checks_the_given_params_again():
    cfg = RunConfig(strategy="sma_cross", params={"fast": 5})
    with pytest.raises(ConfigError, match="strategy 'llm_sentiment' has no parameter 'fast'"):
        cfg.replace(strategy="llm_sentiment")
    assert RunConfig(strategy="sma_cross").replace(strategy="llm_sentiment").params == LlmSentimentParams()
    assert cfg.replace(params={"slow": "40"}).params.to_dict() == {"fast": 5, "slow": 40}
    assert LlmNewsPortfolio.Params.of({"top_k": 2}).top_k == 2


def test_a_strategy_whose_backtrader_params_are_written_twice_is_refused():
    @dataclass(frozen=True)
    class TwiceParams(StrategyParams):
        period: int = 10

    class Twice(bt.Strategy):
        Params = TwiceParams
        params = (("period", 20),)  # drifted from the dataclass

    with pytest.raises(TypeError, match="declare its parameters once"):
        register("twice_declared")(Twice)
    assert "twice_declared" not in available()
