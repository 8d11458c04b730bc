"""``bt walkforward --arm`` with one symbol (bar prompts): an arm's per-fold training examples are
the fold LoRA's and end, label horizon included, before the test window (a property over random
windows); a tiny walk-forward on sample:GOOG (random Llama) with a lexicon arm and a per-fold
embedding head gives each arm its rows in folds.csv, its column in returns.csv and its place in
the statistics."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers_experiments import WF_TRAIN, lexicon_and_head_arms, recording_trainers, run_folds
from hypothesis import given, settings
from hypothesis import strategies as st

import llmbt.cli.wf  # noqa: F401  (registers walkforward)
from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.experiments import walkforward as wf
from llmbt.experiments import wf_arms
from llmbt.experiments.arms import parse_arm
from llmbt.experiments.splitters import WalkForward
from llmbt.experiments.walkforward import WalkForwardConfig
from llmbt.feeds import load_prices

RUN = RunConfig(strategy="llm_sentiment", start="2012-01-01", end="2012-12-31")
PRICES = load_prices("sample:GOOG", "2011-01-01", "2012-12-31")


def test_a_single_symbol_model_arm_needs_a_bar_prompt():
    with pytest.raises(ConfigError, match="--arm few: --prompt"):
        WalkForwardConfig(run=RUN, arms=(parse_arm("name=few,prompt=headlines-v1"),))
    cfg = WalkForwardConfig(run=RUN, arms=(parse_arm("name=few,prompt=bars-fewshot-v1"),))
    assert cfg.arms[0].prompt == "bars-fewshot-v1"


def test_the_run_id_covers_the_arms_and_is_unchanged_without_them():
    plain = WalkForwardConfig(run=RUN)
    lex = WalkForwardConfig(run=RUN, arms=(parse_arm("lexicon"),))
    assert "arms" not in plain.to_dict() and plain.run_id != lex.run_id


def _label_end(time: pd.Timestamp, horizon: int) -> pd.Timestamp:
    """The bar on which a bar example's forward return (close ``horizon`` bars on) is known."""
    return PRICES.index[PRICES.index.get_loc(time) + horizon]


@settings(max_examples=8, deadline=None)
@given(train=st.integers(60, 120), test=st.integers(10, 40), horizon=st.integers(1, 8),
       extra=st.integers(0, 4), anchored=st.booleans())
def test_an_arms_fold_examples_all_end_before_the_folds_test_window(train, test, horizon, extra,
                                                                     anchored):
    cfg = WalkForwardConfig(run=RUN, splitter=WalkForward(train=train, test=test, anchored=anchored,
                                                          embargo=horizon + extra),
                            horizon=horizon, max_val=0, arms=(parse_arm("name=e,kind=embeddings"),))
    offset = int(PRICES.index.searchsorted(pd.Timestamp(RUN.start, tz="UTC")))
    folds = [wf.shift_fold(f, offset, PRICES.index) for f in cfg.splitter.folds(PRICES.index[offset:])]
    seen: dict[str, list] = {}
    record = recording_trainers(seen)

    assert folds
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(wf, "train_adapter", lambda c, tr, va, parent: record("lora")(c, tr, va))
        mp.setitem(wf_arms._TRAINERS, "embeddings", record("e"))
        mp.setattr(wf, "_test_model", _stop_at_testing)
        for fold in folds:
            with pytest.raises(_Tested):
                wf._run_fold(cfg, PRICES, fold, None, lambda _: None)
            assert seen["e"] == seen["lora"] and len(seen["e"]) > 10
            assert max(_label_end(ex.time, horizon) for ex in seen["e"]) <= fold.train_end
            assert fold.train_end < fold.test_start
            assert min(ex.time for ex in seen["e"]) >= fold.train_start


class _Tested(Exception):
    """Raised where the fold starts testing its arms: the training has happened."""


def _stop_at_testing(*args) -> None:
    raise _Tested


def test_lexicon_and_embedding_arms_trade_every_fold_of_a_single_symbol_walkforward(
        tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    args = ["walkforward", "--strategy", "llm_sentiment", "--data", "sample:GOOG", "--model", str(tiny),
            "--start", "2012-01-01", "--end", "2012-12-31", "--batch-size", "8", "--train", "100",
            "--test", "60", "--embargo", "5", *lexicon_and_head_arms(WF_TRAIN, out)]
    res, folds = run_folds(args, out)
    table = pd.read_csv(out / "folds.csv")
    arms = ["base", "lora", "lexicon", "emb"]
    assert sorted(table["model"]) == sorted(arms * len(folds))
    assert table[["total_return", "max_drawdown", "eval_f1"]].notna().all().all()
    assert table.loc[table["model"] != "lexicon", "sharpe"].notna().all()  # lexicon: few trades
    returns = pd.read_csv(out / "returns.csv", index_col="time")
    assert list(returns.columns) == ["lora", "base", "lexicon", "emb", "buy_and_hold"]
    assert returns["emb"].notna().all() and not returns["emb"].equals(returns["base"])
    compare = json.loads((out / "compare.json").read_text())
    assert compare["stats"]["dsr"]["trials"] == ["lora", "base", "lexicon", "emb"]
    assert set(compare["stats"]["arm_sharpe_diffs"]) == {"lexicon", "emb"}
    assert compare["stats"]["arm_sharpe_diffs"]["emb"]["reference"] == "base"
    assert "for emb − base" in res.output
    for fold in folds:
        facts = json.loads((out / "folds" / f"{fold}.json").read_text())
        assert facts["arms"]["lexicon"] == {"kind": "lexicon", "trained": False}
        head = json.loads((out / "arms" / fold / "emb" / "llmbt_head.json").read_text())
        assert head["splits"]["train"] == facts["examples"]["train"]  # the LoRA's examples
    config = json.loads((out / "config.json").read_text())
    assert [a["name"] for a in config["arms"]] == ["lexicon", "emb"]


def test_a_seqcls_arm_trains_on_the_folds_bar_examples_and_scores_feature_lines(
        tiny, tmp_path, monkeypatch):
    from llmbt.signals_cache.text_scorers.registry import make_scorer
    from llmbt.signals_cache.text_scorers.seqcls import adapter_setup

    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    cfg = WalkForwardConfig(run=RUN.replace(model=str(tiny)), train=WF_TRAIN, max_val=8,
                            splitter=WalkForward(train=60, test=20, embargo=5),
                            arms=(parse_arm("name=cls,kind=seqcls"),))
    offset = int(PRICES.index.searchsorted(pd.Timestamp(RUN.start, tz="UTC")))
    fold = wf.shift_fold(cfg.splitter.folds(PRICES.index[offset:])[0], offset, PRICES.index)
    split = wf.fold_split(cfg, wf.fold_examples(cfg, PRICES, fold)[0])
    arms, facts = wf_arms.train_fold_arms(cfg, split, lambda _: None)
    folder = facts["cls"]["artifact"]
    assert arms[0].adapter == folder and adapter_setup(folder)[0].startswith("bars-")
    meta = json.loads((tmp_path / folder / "llmbt_adapter.json").read_text())
    assert meta["splits"] == {"train": len(split["train"]), "val": len(split["val"])}
    probs = make_scorer("seqcls", model=str(tiny), path=folder).score([split["val"][0].text], 1)
    assert probs.shape == (1, 3)
