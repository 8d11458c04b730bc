"""``bt walkforward --arm``: spec errors before any data is read, no look-ahead in an arm's per-fold
training examples (a property over random windows), and a tiny universe walk-forward (random
Llama) with a lexicon arm and a per-fold embedding head next to the base model and the LoRA."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers_experiments import (
    UWF_SYMBOLS,
    UWF_TRAIN,
    lexicon_and_head_arms,
    recording_trainers,
    run_folds,
    universe_wf_config,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import llmbt.cli.wf  # noqa: F401  (registers walkforward)
from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.experiments import universe_wf as uwf
from llmbt.experiments import wf_arms
from llmbt.experiments.arms import Arm, parse_arm
from llmbt.experiments.splitters import WalkForward
from llmbt.experiments.walkforward import WalkForwardConfig
from llmbt.feeds.universe import Universe

RUN = RunConfig(strategy="llm_news_portfolio", symbols="AAA,BBB", news="headlines.csv")


def wf(**kw) -> WalkForwardConfig:
    return WalkForwardConfig(run=kw.pop("run", RUN), **kw)


@pytest.mark.parametrize(("arms", "head", "message"), [
    (("name=e,kind=embeddings,adapter=heads/fpb",), {},
     "adapter=heads/fpb with kind=embeddings: bt walkforward trains this arm per fold"),
    (("name=c,kind=seqcls,adapter=cls",), {}, "adapter=cls with kind=seqcls"),
    (("name=m,adapter=adapters/goog",), {}, "a fixed adapter may have been trained on"),
    (("name=lora,kind=lexicon",), {}, "none of base, lora, equal_weight"),
    (("lexicon", "name=lexicon,kind=lexicon"), {}, "--arm name=lexicon: each arm needs its own name"),
    (("name=few,prompt=bars-fewshot-v1",), {}, "--arm few:"),
    (("name=e,kind=embeddings",), {"layer": [1]}, "--head-param layer: unknown. Did you mean 'layers'?"),
    (("name=e,kind=embeddings",), {"poolings": "max"}, "--pooling 'max' is not valid"),
])
def test_bad_walkforward_arms_are_one_clear_error(arms, head, message):
    with pytest.raises(ConfigError, match=None) as err:
        wf(arms=tuple(parse_arm(a) for a in arms), head=head)
    assert message in str(err.value)


def test_a_single_symbol_walkforward_takes_arms_too():  # tests/experiments/test_wf_bar_arms.py runs one
    cfg = wf(run=RunConfig(strategy="llm_sentiment"), arms=(Arm("lexicon", kind="lexicon"),))
    assert not cfg.universe and cfg.to_dict()["arms"][0]["kind"] == "lexicon"


def test_the_run_id_covers_the_arms_and_the_head_settings():
    plain, lex = wf(), wf(arms=(parse_arm("lexicon"),))
    emb = wf(arms=(parse_arm("name=e,kind=embeddings"),))
    assert "arms" not in plain.to_dict()  # run ids of walk-forwards without arms are unchanged
    ids = {plain.run_id, lex.run_id, emb.run_id,
           wf(arms=emb.arms, head={"layers": 1}).run_id}
    assert len(ids) == 4
    assert wf(arms=emb.arms, head={"layers": 1}).to_dict()["head"]["layers"] == (1,)


@pytest.mark.parametrize(("spec", "message"), [
    ("name=e,kind=embedings", "Did you mean 'embeddings'?"),
    ("name=e,kind=embeddings,adapter=heads/x", "drop adapter="),
])
def test_the_cli_refuses_a_bad_arm_in_one_line(spec, message):
    res = CliRunner().invoke(cli, ["walkforward", "--strategy", "llm_news_portfolio", "--symbols",
                                   "AAA,BBB", "--data", "csv:/no/such/file.csv", "--news",
                                   "/no/such/news.csv", "--arm", spec, "--out", "x"])
    assert res.exit_code != 0 and message in res.output and "Traceback" not in res.output, res.output


def _universe(n: int = 110, symbols: str = "AAA,BBB,CCC,DDD") -> tuple[Universe, pd.DataFrame]:
    """Random-walk daily bars and one headline per symbol and day."""
    rng = np.random.default_rng(7)
    idx = pd.date_range("2021-01-04", periods=n, freq="D", tz="UTC", name="timestamp").as_unit("ns")
    prices, rows = {}, []
    for sym in symbols.split(","):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        prices[sym] = pd.DataFrame({"open": close * (1 + rng.normal(0, 0.005, n)), "high": close * 1.01,
                                    "low": close * 0.99, "close": close, "volume": 1e6}, index=idx)
        rows += [(t + pd.Timedelta("14h"), sym, f"{sym} news {i}") for i, t in enumerate(idx)]
    news = pd.DataFrame(rows, columns=["timestamp", "symbol", "headline"]).assign(source="")
    return Universe(prices, "test"), news


UNIVERSE = _universe()


@settings(max_examples=15, deadline=None)
@given(train=st.integers(25, 45), test=st.integers(5, 20), horizon=st.integers(1, 6),
       extra=st.integers(0, 4), anchored=st.booleans())
def test_an_arms_fold_examples_all_end_before_the_folds_test_window(train, test, horizon, extra,
                                                                     anchored):
    universe, news = UNIVERSE
    cfg = wf(splitter=WalkForward(train=train, test=test, embargo=horizon + extra, anchored=anchored),
             horizon=horizon, max_val=0, arms=(parse_arm("name=e,kind=embeddings"),))
    seen: dict[str, list] = {}
    record = recording_trainers(seen)

    folds = [uwf.shift_fold(f, 0, universe.calendar) for f in cfg.splitter.folds(universe.calendar)]
    assert folds
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(uwf, "train_adapter", lambda c, tr, va, parent: record("lora")(c, tr, va))
        mp.setitem(wf_arms._TRAINERS, "embeddings", record("e"))
        mp.setattr(uwf, "_test_arms", lambda *a: None)
        for fold in folds:
            result = uwf._run_fold(cfg, universe, news, fold, None, lambda _: None)
            assert result.facts["arms"]["e"]["artifact"] == "/store/e"
            assert seen["e"] == seen["lora"] and len(seen["e"]) > 10
            closes = fold.train_end + pd.Timedelta("1D")  # the train window's last bar's close
            assert max(ex.label_end for ex in seen["e"]) <= closes <= fold.test_start
            assert min(ex.time for ex in seen["e"]) >= fold.train_start - pd.Timedelta("1D")


def test_lexicon_and_embedding_arms_get_rows_per_fold_and_enter_the_spa_and_dsr(
        tiny, shared_news, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    cfg = universe_wf_config(tiny, shared_news).run
    out = tmp_path / "out"
    args = ["walkforward", "--strategy", "llm_news_portfolio", "--model", str(tiny), "--symbols", UWF_SYMBOLS,
            "--start", cfg.start, "--end", cfg.end, "--data", cfg.data, "--news", cfg.news,
            "--news-tz", cfg.news_tz, "--param", "top_k=2", "--batch-size", "16", "--train", "40",
            "--test", "21", "--embargo", "5", *lexicon_and_head_arms(UWF_TRAIN, out)]
    res, folds = run_folds(args, out)
    table = pd.read_csv(out / "folds_ic.csv")
    arms = ["base", "lora", "lexicon", "emb"]
    assert sorted(table["model"]) == sorted(arms * len(folds))
    assert table["sharpe"].notna().all() and table["mean_ic"].notna().all()
    returns = pd.read_csv(out / "returns.csv", index_col="time")
    assert list(returns.columns) == ["lora", "base", "lexicon", "emb", "equal_weight"]
    assert not returns["emb"].equals(returns["lexicon"])
    per_arm = pd.read_csv(out / "spa_dsr.csv", index_col="arm")
    assert list(per_arm.index) == arms and (per_arm["n_trials"] == 4).all()
    for fold in folds:
        facts = json.loads((out / "folds" / f"{fold}.json").read_text())
        emb = facts["arms"]["emb"]
        assert emb["kind"] == "embeddings" and not emb["reused"]
        assert (out / "arms" / fold / "emb" / "llmbt_head.json").is_file()
        head = json.loads((out / "arms" / fold / "emb" / "llmbt_head.json").read_text())
        assert head["splits"]["train"] == facts["examples"]["train"]  # the LoRA's examples
        assert facts["arms"]["lexicon"] == {"kind": "lexicon", "trained": False}
    config = json.loads((out / "config.json").read_text())
    assert [a["name"] for a in config["arms"]] == ["lexicon", "emb"] and config["head"]["layers"] == [1]
    assert "IC difference emb - base" in res.output


def test_a_seqcls_arm_is_fine_tuned_per_fold_with_the_loras_budget_and_then_reused(
        tiny, tmp_path, monkeypatch):
    from llmbt.signals_cache.finetune.datasets import Example
    from llmbt.signals_cache.model.adapters import is_seqcls_adapter
    from llmbt.signals_cache.text_scorers.registry import make_scorer

    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    day = pd.Timestamp("2021-01-04", tz="UTC")
    texts = {"bullish": "Acme beats forecasts", "bearish": "Acme sued over fraud",
             "neutral": "Acme board meets"}
    train = [Example(f"{t} {i}", label, "AAA", day + pd.Timedelta(days=i), 0.0,
                     day + pd.Timedelta(days=i + 5)) for i in range(4) for label, t in texts.items()]
    cfg = wf(run=RUN.replace(model=str(tiny)), train=UWF_TRAIN,
             arms=(parse_arm("name=cls,kind=seqcls"),))
    arms, facts = wf_arms.train_fold_arms(cfg, {"train": train[:9], "val": train[9:]}, lambda _: None)
    folder = facts["cls"]["artifact"]
    assert is_seqcls_adapter(folder) and arms[0] == Arm("cls", adapter=folder, kind="seqcls")
    meta = json.loads((tmp_path / folder / "llmbt_adapter.json").read_text())
    assert meta["method"] == "seqcls" and meta["splits"] == {"train": 9, "val": 3}
    assert meta["hyperparameters"]["max_steps"] == UWF_TRAIN["max_steps"]  # the fold LoRA's budget
    assert make_scorer("seqcls", model=str(tiny), path=folder).score(["Acme beats"], 1).shape == (1, 3)
    _, again = wf_arms.train_fold_arms(cfg, {"train": train[:9], "val": train[9:]}, lambda _: None)
    assert again["cls"]["reused"] and again["cls"]["artifact"] == folder
