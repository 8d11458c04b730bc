"""Experiment pieces shared by test modules (``from helpers_experiments import ...``): returns of a
given Sharpe for the trial ledger, the training budgets and the config of the tiny walk-forwards,
and the fold-trainer stand-in and CLI tail of the walk-forward arm tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner, Result

from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.experiments.splitters import WalkForward
from llmbt.experiments.walkforward import WalkForwardConfig

LEDGER_DAYS = pd.bdate_range("2012-01-02", periods=250, tz="UTC")
GOOG_SMA = RunConfig(strategy="sma_cross", data="sample:GOOG", start="2012-01-01", end="2012-12-31")


def returns_with_sharpe(sharpe: float, seed: int = 0, days: pd.DatetimeIndex = LEDGER_DAYS) -> pd.Series:
    """Returns on ``days`` whose annualised Sharpe (252 bars a year) is exactly ``sharpe``."""
    noise = np.random.default_rng(seed).normal(0, 0.01, len(days))
    noise = (noise - noise.mean()) / noise.std(ddof=1) * 0.01
    return pd.Series(noise + sharpe / math.sqrt(252) * 0.01, days)


#: the fold LoRA's one-step training budget of the tiny walk-forwards: one symbol (WF_) and a universe
#: (UWF_, its prompts cut at 96 tokens); the universe walk-forward's six symbols
WF_TRAIN = {"max_steps": 1, "eval_every": 1, "top_layers": 1, "batch_size": 4}
UWF_TRAIN = {"max_steps": 1, "eval_every": 1, "top_layers": 1, "batch_size": 4, "max_length": 96}
UWF_SYMBOLS = "AAPL,BA,GS,GM,JPM,MSFT"


def universe_wf_config(tiny, shared_news, **kw) -> WalkForwardConfig:
    """A tiny universe walk-forward on the shared slice: the model in ``tiny``, six symbols, March to
    July 2015, folds of 40 train and 21 test bars; ``kw`` replaces its fields."""
    run = RunConfig(strategy="llm_news_portfolio", model=str(tiny), symbols=UWF_SYMBOLS,
                    start="2015-03-02", end="2015-07-31", batch_size=16,
                    data=f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
                    news=str(shared_news / "reuters_headlines_2013_2016.csv.gz"),
                    news_tz="America/New_York", params={"top_k": 2})
    base = {"run": run, "splitter": WalkForward(train=40, test=21, embargo=5), "train": UWF_TRAIN}
    return WalkForwardConfig(**(base | kw))


def recording_trainers(seen: dict[str, list]):
    """``record(name)``: a stand-in for a fold trainer (the LoRA's ``train_adapter`` or an arm's)
    that stores the examples it was given, train then val, in ``seen[name]`` and returns the
    artefact ``/store/NAME`` without training."""
    def record(name: str):
        def trainer(*args):
            seen[name] = [*args[-2], *args[-1]]  # (.., train, val)
            meta = {"metrics": {"train_loss": {}, "best_val_loss": None, "seconds": 0.0}}
            return f"/store/{name}", meta, False
        return trainer
    return record


def lexicon_and_head_arms(train: dict, out: Path) -> list[str]:
    """The tail of ``bt walkforward`` arguments both arm tests share: ``--out``, the fold LoRA's
    ``train`` budget, a lexicon arm and an embeddings-head arm on layer 1."""
    return ["--out", str(out), *[a for k, v in train.items() for a in ("--train-param", f"{k}={v}")],
            "--arm", "lexicon", "--arm", "name=emb,kind=embeddings", "--head-param", "layers=[1]",
            "--head-param", "c_grid=[0.1]", "--head-param", "batch_size=16"]


def run_folds(args: list[str], out: Path) -> tuple[Result, list[str]]:
    """Run ``bt`` with ``args``, assert it succeeded with two folds or more; (result, fold names)."""
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    folds = sorted(p.stem for p in (out / "folds").glob("fold-*.json"))
    assert len(folds) >= 2
    return res, folds
