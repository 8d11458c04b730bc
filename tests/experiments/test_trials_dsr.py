"""The Deflated Sharpe counts the trial ledger's trials: ``bt compare`` (one symbol and a universe) and
``bt walkforward`` record each arm, the DSR counts every configuration on the same data over an
overlapping period (and says so), falls as trials grow, and ``--trials run`` gives the old DSR."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import ChatMLStub, stub_scoring
from helpers_experiments import GOOG_SMA, returns_with_sharpe

import llmbt.cli.wf  # noqa: F401  (registers compare and walkforward)
from llmbt.cli import cli
from llmbt.engine.metrics import sharpe_ratio
from llmbt.experiments import trials
from llmbt.experiments.results import read_results
from llmbt.experiments.trial_ids import data_fingerprint
from llmbt.experiments.trials import PriorTrials, prior_trials
from llmbt.reports.compare import compare
from llmbt.reports.crosssection import deflated_sharpe_for_arms
from llmbt.signals_cache import signals, universe
from llmbt.signals_cache.model import loading

SYMBOLS = "AAPL,BA,GS,GM,JPM"


def score_frames(index: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({"score": 0.5, "signal": 0.5, "confidence": 0.6, "label": "bullish",
                         "predicted": "bullish", "forward_return": 0.01}, index=index)


def folder_of(arms: dict[str, pd.Series]) -> dict:
    """What read_results gives for a bt compare of ``arms`` on GOOG whose arms were recorded."""
    keys = {name: trials.record_run(GOOG_SMA, r, {"scorer fingerprint": name}, "compare", arm=name)
            for name, r in arms.items()}
    return {"run": {"trials": trials.trials_facts(GOOG_SMA, keys)}, "config": {"run": GOOG_SMA.to_dict()},
            "returns": arms}


def test_the_dsr_falls_as_the_ledger_holds_more_trials(ledger):
    arms = {"a": returns_with_sharpe(1.5, 1), "b": returns_with_sharpe(0.5, 2)}
    res, scores = folder_of(arms), {n: score_frames(r.index) for n, r in arms.items()}
    added, seen = [], []
    for i in range(6):
        sharpe = (0.6 + 0.3 * i) * (-1) ** i  # ever wider: the variance does not shrink
        other = GOOG_SMA.replace(params={"fast": 2 + i})
        trials.record_run(other, returns_with_sharpe(sharpe, 10 + i), {}, "run")
        added.append(sharpe)
        prior = prior_trials(res, ["a", "b"])
        dsr = compare(arms, scores, horizon=1, prior=prior, n_boot=50).stats["dsr"]
        cross = deflated_sharpe_for_arms(pd.DataFrame(arms), 252, prior)
        assert dsr["n_trials"] == cross["n_trials"] == 3 + i and dsr["n_this_run"] == 2
        want = np.var([1.5, 0.5, *added], ddof=1)  # annualised Sharpes, arms and ledger alike
        assert dsr["var_sharpe_annualised"] == pytest.approx(want, rel=1e-9)
        assert cross["var_sharpe"] * 252 == pytest.approx(want, rel=1e-9)
        seen.append((compare(arms, scores, horizon=1, prior=prior, n_boot=50).metrics.loc["DSR", "a"],
                     cross["dsr"]))
    for column in zip(*seen, strict=True):
        assert all(later < earlier for earlier, later in zip(column, column[1:], strict=False)), column


def test_only_trials_on_the_same_data_over_an_overlapping_period_count(ledger):
    arms = {"a": returns_with_sharpe(1.5, 1), "b": returns_with_sharpe(0.5, 2)}
    res = folder_of(arms)
    eur = GOOG_SMA.replace(data="sample:EURUSD")
    trials.record_run(eur, returns_with_sharpe(3.0), {}, "run")  # other data
    later = pd.bdate_range("2014-01-01", periods=100, tz="UTC")
    trials.record_run(GOOG_SMA, returns_with_sharpe(3.0, days=later), {}, "run")  # after this period
    assert prior_trials(res, ["a", "b"]) == PriorTrials((), "ledger")
    tail = returns_with_sharpe(-1.0)[200:]
    trials.record_run(GOOG_SMA, tail, {}, "run")  # overlaps its last bars
    trials.record_run(GOOG_SMA, returns_with_sharpe(1.5, 1), {"scorer fingerprint": "a"}, "compare", arm="a")
    assert prior_trials(res, ["a", "b"]).sharpes == (sharpe_ratio(tail, 252),)  # "a" is not counted twice
    assert prior_trials(res, ["a", "b"], "run") == PriorTrials((), "run")


def _compare(out: Path, *arms: str) -> dict:
    args = ["compare", "--start", "2012-09-01", "--end", "2012-12-31", "--out", str(out)]
    res = CliRunner().invoke(cli, [*args, *(a for arm in arms for a in ("--arm", arm))])
    assert res.exit_code == 0, res.output
    return json.loads((out / "compare.json").read_text()) | {"output": res.output}


@pytest.fixture(scope="module")
def two_compares(tmp_path_factory) -> dict:
    """Two single-symbol ``bt compare`` runs into one ledger (scoring stubbed: a prompt's score is a
    hash of its text): base and few-shot, then base again and v1."""
    folder = tmp_path_factory.mktemp("two-compares")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(folder / "home"))
        mp.delenv("LLMBT_TRIALS")
        stub_scoring(mp, signals)
        mp.setattr(loading, "load_tokenizer", lambda spec: ChatMLStub())
        one = _compare(folder / "one", "name=base", "name=fewshot,prompt=bars-fewshot-v1")
        after_one = trials.list_trials()
        two = _compare(folder / "two", "name=base", "name=v1,prompt=bars-v1")  # base again: replaced
    return {"folder": folder, "one": one, "after_one": after_one, "two": two}


@pytest.fixture
def its_ledger(two_compares, monkeypatch) -> Path:
    """The ledger of :func:`two_compares`, on."""
    monkeypatch.setenv("LLMBT_HOME", str(two_compares["folder"] / "home"))
    monkeypatch.delenv("LLMBT_TRIALS")
    return two_compares["folder"]


def test_bt_compare_records_its_arms_and_its_dsr_counts_the_ledger(two_compares, its_ledger):
    found, first = two_compares["after_one"], two_compares["one"]
    assert [t.arm for t in found] == ["base", "fewshot"] and {t.command for t in found} == {"compare"}
    run = json.loads((its_ledger / "one" / "run.json").read_text())
    assert run["trials"]["keys"] == {t.arm: t.key for t in found} and found[0].run_id == run["run_id"]
    dsr = first["stats"]["dsr"]
    assert (dsr["counted"], dsr["n_trials"], dsr["n_this_run"], dsr["n_ledger"]) == ("ledger", 2, 2, 0)
    assert "DSR counts 2 trials on this data, 2 in this run" in first["output"]
    second = two_compares["two"]
    assert [t.arm for t in trials.list_trials()] == ["fewshot", "base", "v1"]
    dsr = second["stats"]["dsr"]
    assert (dsr["n_trials"], dsr["n_this_run"], dsr["n_ledger"]) == (3, 2, 1)
    assert any("DSR counts 3 trials on this data, 2 in this run" in s for s in second["significance"])
    assert "deflates for 3 trials: this run's 2 (base, v1)" in " ".join(second["significance"])
    assert "and 1 more from the trial ledger on this data" in " ".join(second["significance"])
    assert "DSR counts 3 trials on this data" in (its_ledger / "two" / "comparison.html").read_text()
    again = CliRunner().invoke(cli, ["compare", "--from", str(its_ledger / "two")])  # its arms once
    assert again.exit_code == 0 and "DSR counts 3 trials on this data, 2 in this run" in again.output
    assert len(trials.list_trials()) == 3  # reading a folder back records nothing


def test_trials_run_gives_the_dsr_of_this_commands_arms_exactly_as_before(two_compares, its_ledger):
    ledger_dsr = two_compares["two"]["metrics"]
    res = CliRunner().invoke(cli, ["compare", "--from", str(its_ledger / "two"), "--trials", "run"])
    assert res.exit_code == 0 and "DSR counts the 2 trials of this run only (--trials run)" in res.output
    alone = json.loads((its_ledger / "two" / "compare.json").read_text())
    back = read_results(its_ledger / "two")
    old = compare(back["returns"], back["scores"], horizon=5)  # the DSR before the ledger
    assert alone["stats"]["dsr"] == json.loads(json.dumps(old.stats["dsr"])) | {
        "counted": "run", "n_this_run": 2, "n_ledger": 0}
    for arm in ("base", "v1"):
        assert alone["metrics"][arm]["DSR"] == old.metrics.loc["DSR", arm] != ledger_dsr[arm]["DSR"]
    frame = pd.DataFrame({k: v for k, v in back["returns"].items() if k != "buy_and_hold"})
    assert deflated_sharpe_for_arms(frame, 252, PriorTrials(mode="run")) == deflated_sharpe_for_arms(
        frame, 252) | {"counted": "run", "n_this_run": 2, "n_ledger": 0}


def test_bt_walkforward_records_each_arms_stitched_returns(ledger, tiny, tmp_path):
    out = tmp_path / "wf"
    args = ["walkforward", "--model", str(tiny), "--start", "2012-06-01", "--end", "2012-12-31",
            "--train", "60", "--test", "40", "--embargo", "5", "--batch-size", "8", "--out", str(out),
            *[a for kv in ("max_steps=1", "eval_every=1", "top_layers=1", "batch_size=4")
              for a in ("--train-param", kv)]]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    found = {t.arm: t for t in trials.list_trials(with_returns=True)}
    back = read_results(out)
    assert set(found) == {"lora", "base"} and {t.command for t in found.values()} == {"walkforward"}
    for arm, trial in found.items():
        stitched = back["returns"][arm]
        assert trial.run_id == back["run"]["run_id"] and trial.bars == len(stitched)
        assert trial.series().to_numpy() == pytest.approx(stitched.to_numpy(), rel=1e-12)
        assert trial.data == data_fingerprint(back["config"]["run"])
    assert found["lora"].scorer != found["base"].scorer  # an adapter per fold
    assert back["run"]["trials"]["keys"] == {a: t.key for a, t in found.items()}
    assert "DSR counts 2 trials on this data, 2 in this run" in res.output


@pytest.fixture
def universe_stub(monkeypatch) -> None:
    """Universe scoring stubbed; an arm's adapter folder salts its prompts (so it changes the scores)."""
    stub_scoring(monkeypatch, universe)
    plain = universe.score_rendered

    def scored(prompts, req, version):
        salt = Path(req.spec.adapter).name if req.spec.adapter else ""
        return plain([salt + p for p in prompts], req, version)

    monkeypatch.setattr(universe, "score_rendered", scored)


def _adapter(folder: Path) -> str:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return str(folder)


def test_a_universe_compare_and_run_are_recorded_and_counted(ledger, shared_news, universe_stub, tmp_path):
    data = ["--strategy", "llm_news_portfolio", "--symbols", SYMBOLS, "--start", "2015-03-02",
            "--end", "2015-06-30", "--data", f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
            "--news", str(shared_news / "reuters_headlines_2013_2016.csv.gz"), "--news-tz",
            "America/New_York", "--param", "top_k=2"]
    out = tmp_path / "cmp"
    arms = ["--arm", "name=base", "--arm", f"name=lora,adapter={_adapter(tmp_path / 'a')}", "--arm",
            f"name=lora2,adapter={_adapter(tmp_path / 'b')}"]
    res = CliRunner().invoke(cli, ["compare", *data, *arms, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert [t.arm for t in trials.list_trials()] == ["base", "lora", "lora2"]
    assert "DSR counts 3 trials on this data, 3 in this run" in res.output
    stats = json.loads((out / "crosssection.json").read_text())["stats"]["dsr"]
    assert (stats["counted"], stats["n_trials"], stats["n_ledger"]) == ("ledger", 3, 0)
    ran = CliRunner().invoke(cli, ["run", *data[:-1], "top_k=3", "--no-report"])  # a 4th configuration
    assert ran.exit_code == 0 and "trial ledger: 4 trials on this data" in ran.output, ran.output
    again = CliRunner().invoke(cli, ["compare", "--from", str(out)])
    assert again.exit_code == 0 and "DSR counts 4 trials on this data, 3 in this run" in again.output
    counted = json.loads((out / "crosssection.json").read_text())["stats"]["dsr"]
    assert counted["n_trials"] == 4 and counted["dsr"] < stats["dsr"]
    assert "DSR counts 4 trials on this data" in (out / "comparison.html").read_text()
    alone = CliRunner().invoke(cli, ["compare", "--from", str(out), "--trials", "run"])
    assert alone.exit_code == 0 and "DSR counts the 3 trials of this run only" in alone.output
    back = json.loads((out / "crosssection.json").read_text())["stats"]["dsr"]
    frame = pd.DataFrame({a: read_results(out)["returns"][a] for a in ("base", "lora", "lora2")})
    assert back["dsr"] == stats["dsr"] == deflated_sharpe_for_arms(frame, 252)["dsr"]
    assert not math.isnan(back["dsr"])
