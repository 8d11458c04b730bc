"""LLM look-ahead controls in a run: the model's knowledge cutoff (``hindsight`` in every LLM run's
facts and output) and ``--anonymize --names`` through the universe run, with the model stubbed."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from click.testing import CliRunner
from helpers_portfolio import PORTFOLIO_SYMBOLS, portfolio_config

from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.engine.portfolio_run import run_portfolio_backtest
from llmbt.errors import ConfigError
from llmbt.signals_cache.anonymize import core_name, load_names
from llmbt.signals_cache.cache import cache_key
from llmbt.signals_cache.hindsight import hindsight_warning
from llmbt.signals_cache.model.aliases import MODEL_ALIASES, SMOLLM2_CUTOFF, model_cutoff


def test_hindsight_before_partly_before_after_and_unknown():
    before = hindsight_warning("2024-03-31", "2015-01-01", "2016-12-30", model="smollm2-135m")
    assert before == ("the tested period 2015-01-01..2016-12-30 lies before smollm2-135m's "
                      "knowledge cutoff (2024-03-31): the model may have read about these "
                      "events; see --anonymize and bt audit lookahead")
    assert "lies partly before" in hindsight_warning("2024-03-31", "2024-01-02", "2024-12-31")
    assert hindsight_warning("2024-03-31", "2024-04-01", "2025-01-01") is None
    unknown = hindsight_warning(None, "2015-01-01", "2016-12-30", model="my/model")
    assert "cutoff unknown" in unknown and "--model-cutoff" in unknown


def test_the_hindsight_line_names_the_cutoff_of_the_scorer_that_ran():
    import pandas as pd

    from llmbt.engine.config import RunConfig as Config
    from llmbt.engine.signals import arms_hindsight, lookahead_info

    index = pd.date_range("2017-01-02", "2017-12-29", freq="B", tz="UTC")
    line = {kind: lookahead_info(Config(scorer=kind, start="2017-01-02"), index)["hindsight"]
            for kind in ("lm", "lexicon", "seqcls", "embeddings")}
    assert line["lexicon"] == ("none: the lexicon scorer reads no pretrained model, so it has no "
                               "training data cutoff")
    for kind in ("lm", "seqcls", "embeddings"):  # these read through the base model
        assert line[kind].startswith("the tested period 2017-01-02..2017-12-29 lies before "
                                     "smollm2-135m's knowledge cutoff (2024-03-31)")
    lex = lookahead_info(Config(scorer="lexicon", model_cutoff="2016-01-01"), index)["hindsight"]
    assert lex == line["lexicon"]  # --model-cutoff is the model's; the lexicon reads none
    info = {"base": {"hindsight": line["lm"]}, "lora": {"hindsight": line["lm"]},
            "lex": {"hindsight": line["lexicon"]}}
    assert arms_hindsight(info) == [f"base, lora: {line['lm']}", f"lex: {line['lexicon']}"]
    assert arms_hindsight({"lex": info["lex"], "lex2": info["lex"]}) == [line["lexicon"]]


def test_the_embedded_alias_records_its_cutoff_and_the_flag_overrides_it():
    assert MODEL_ALIASES["smollm2-135m"].cutoff == SMOLLM2_CUTOFF == "2024-03-31"
    assert model_cutoff("smollm2-135m") == "2024-03-31"
    assert model_cutoff("smollm2-135m", "2030-01-01") == "2030-01-01"
    assert model_cutoff("./my-model") is None and model_cutoff("./my-model", "2023-06-30") == "2023-06-30"


def test_config_checks_the_cutoff_date_and_the_names_table():
    import datetime as dt

    assert RunConfig(model_cutoff=dt.date(2023, 6, 30)).model_cutoff == "2023-06-30"  # YAML date
    for bad in ("June", "2023-6-30", "2023-02-30"):
        with pytest.raises(ConfigError, match=rf"--model-cutoff .*{bad!r} is not a date: use YYYY-MM-DD"):
            RunConfig(model_cutoff=bad)
    with pytest.raises(ConfigError, match="--anonymize .*needs --names FILE"):
        RunConfig(anonymize=True)


def test_run_ids_of_earlier_runs_are_kept_and_an_anonymised_run_differs():
    cfg = RunConfig()
    added = ("model_cutoff", "anonymize", "names", "scorer", "calibrate", "select", "membership",
             "model_schedule", "cutoff_gap", "before_first")
    old = {k: v for k, v in cfg.id_dict().items() if k not in added}
    blob = json.dumps(old, sort_keys=True, default=str)
    assert cfg.run_id == hashlib.sha256(blob.encode()).hexdigest()[:12]
    assert RunConfig(anonymize=True, names="n.csv").run_id != cfg.run_id
    assert RunConfig(model_cutoff="2020-01-01").run_id != cfg.run_id


def test_a_bad_cutoff_flag_is_one_line_naming_the_flag():
    res = CliRunner().invoke(cli, ["run", "--model-cutoff", "2024-13-45"])
    assert res.exit_code != 0 and "--model-cutoff" in res.output and "Traceback" not in res.output


def test_anonymised_universe_prompts_name_no_company_and_miss_the_plain_cache(shared_news, sent):
    names_file = shared_news / "sp500_companies.csv"
    plain = run_portfolio_backtest(portfolio_config(shared_news))
    plain_prompts = list(sent)
    sent.clear()
    masked = run_portfolio_backtest(portfolio_config(shared_news, anonymize=True, names=str(names_file)))
    names = load_names(names_file)
    forms = {core_name(c[0]) for c in names.values()} | {s for s in names if len(s) > 1}
    forms |= {"Boeing", "Goldman", "JPMorgan", "J.P. Morgan"}
    name = re.compile("|".join(rf"(?<!\w){re.escape(f)}(?!\w)" for f in forms))
    texts = [p.split("Headline: ")[1].split("<|im_end|>")[0] for p in sent]
    assert texts and [t for t in texts if name.search(t)] == []
    before = [p.split("Headline: ")[1].split("<|im_end|>")[0] for p in plain_prompts]
    assert sum(bool(name.search(t)) for t in before) > 0.5 * len(before)  # the check can fail
    assert sum("Company A" in t for t in texts) > 0.3 * len(texts)
    assert len(sent) == len(set(sent))  # identical masked texts are still scored once
    keys = {cache_key("fp", "headlines-v2", p) for p in plain_prompts}  # a masked text is a new key;
    masked_keys = {cache_key("fp", "headlines-v2", p) for p in sent if "Company " in p}
    assert len(masked_keys) > 0.5 * len(sent) and keys.isdisjoint(masked_keys)  # one naming no
    assert set(sent) - set(plain_prompts) == {p for p in sent if "Company " in p}  # one is shared
    assert masked.run_id != plain.run_id
    assert "lies before smollm2-135m's knowledge cutoff (2024-03-31)" in masked.signal_info["hindsight"]
    assert "anonymized" in masked.signal_info and "anonymized" not in plain.signal_info


def test_bt_run_prints_the_hindsight_line(shared_news, sent, tmp_path):
    cfg = portfolio_config(shared_news)
    args = ["run", "--strategy", cfg.strategy, "--data", cfg.data, "--symbols", PORTFOLIO_SYMBOLS,
            "--news", cfg.news, "--news-tz", "America/New_York", "--start", cfg.start,
            "--end", cfg.end, "--param", "top_k=2", "--no-report", "--model-cutoff", "2015-04-30"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert ("hindsight: the tested period 2015-03-02..2015-06-30 lies partly before "
            "smollm2-135m's knowledge cutoff (2015-04-30)") in res.output


def test_dataset_build_anonymize_masks_the_training_headlines(tmp_path):
    from llmbt.feeds import load_prices

    days = load_prices("sample:GOOG", None, None).index[200:1000:4]
    news, names = tmp_path / "news.csv", tmp_path / "names.csv"
    news.write_text("timestamp,symbol,headline\n" + "".join(
        f"{t.strftime('%Y-%m-%d')} 14:00,GOOG,Google and Apple Inc news {i}\n" for i, t in enumerate(days)))
    names.write_text("symbol,company\nGOOG,Alphabet Inc\nGOOG,Google\nAAPL,Apple Inc\n")
    base = ["dataset", "build", "--data", "sample:GOOG", "--news", str(news), "--news-tz", "UTC",
            "--horizon", "3", "--out", str(tmp_path / "d")]
    res = CliRunner().invoke(cli, base + ["--anonymize", "--names", str(names)])
    assert res.exit_code == 0, res.output
    chat = (tmp_path / "d" / "train.chatml.jsonl").read_text()
    assert "Company A and Company B news 0" in chat and "Google" not in chat and "GOOG" not in chat
    bad = CliRunner().invoke(cli, base + ["--anonymize"])
    assert bad.exit_code != 0 and "--names" in bad.output


def test_anonymised_bar_prompts_show_company_a_and_miss_the_plain_cache(tmp_path, monkeypatch):
    from helpers import stub_scoring

    from llmbt.engine.runner import load_history, run_backtest
    from llmbt.experiments.evaluation import window_examples
    from llmbt.signals_cache import signals

    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    names = tmp_path / "names.csv"
    names.write_text("symbol,company\nGOOG,Alphabet Inc\n")
    prompts = stub_scoring(monkeypatch, signals)
    cfg = RunConfig(strategy="llm_sentiment", data="sample:GOOG", start="2012-10-01")
    plain = run_backtest(cfg, with_benchmark=False)
    plain_prompts = list(prompts)
    prompts.clear()
    masked = run_backtest(cfg.replace(anonymize=True, names=str(names)), with_benchmark=False)
    assert plain_prompts and all("Symbol: GOOG\n" in p for p in plain_prompts)
    assert len(prompts) == len(plain_prompts) and all("Symbol: Company A\n" in p for p in prompts)
    assert not any("GOOG" in p for p in prompts) and "anonymized" not in plain.signal_info
    keys = {cache_key("fp", "bars-v2", p) for p in plain_prompts}
    assert keys.isdisjoint(cache_key("fp", "bars-v2", p) for p in prompts)
    assert masked.signal_info["anonymized"] == ("the symbol GOOG shown as Company A in every bar "
                                                "prompt (bar prompts carry no other names)")
    prices = load_history(cfg.replace(anonymize=True, names=str(names)))  # walk-forward's examples
    examples = window_examples(prices, cfg.replace(anonymize=True, names=str(names)), horizon=5,
                               method="quantile", fit_end=prices.index[-200],
                               start=prices.index[-150], end=prices.index[-10])
    assert examples and {e.symbol for e in examples} == {"Company A"}
