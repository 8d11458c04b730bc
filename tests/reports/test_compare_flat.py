"""An arm that never trades (flat returns): QuantStats cannot regress it on a benchmark, so the
tearsheet is written without the benchmark, with a warning saying why, and ``bt compare`` still
writes its pages."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from click.testing import CliRunner
from helpers import ChatMLStub, stub_scoring

import llmbt.cli.wf  # noqa: F401  (registers compare)
from llmbt.cli import cli
from llmbt.reports.tearsheet import flat, write_tearsheet
from llmbt.signals_cache import signals
from llmbt.signals_cache.model import loading

DAYS = pd.bdate_range("2020-01-01", periods=260, tz="UTC")


def test_a_flat_strategy_gets_a_tearsheet_without_the_benchmark_and_a_warning(tmp_path, caplog):
    noise = pd.Series(np.random.default_rng(0).normal(0, 0.01, len(DAYS)), DAYS, name="bench")
    still = pd.Series(0.0, DAYS, name="never")
    assert flat(still) and not flat(noise) and flat(pd.Series([0.01, np.nan, 0.01]))
    with caplog.at_level(logging.WARNING, logger="llmbt.reports.tearsheet"):
        path = write_tearsheet(still, tmp_path / "t.html", benchmark=noise, title="never vs bench")
    assert "never's returns are flat (it never traded)" in caplog.text
    assert "written without the benchmark" in caplog.text
    text = path.read_text()
    assert "never vs bench (without the benchmark: never&#x27;s returns are flat" in text or \
        "never vs bench (without the benchmark: never's returns are flat" in text
    caplog.clear()
    write_tearsheet(noise.rename("a"), tmp_path / "u.html", benchmark=still)  # a flat benchmark is fine
    assert "flat" not in caplog.text


def test_bt_compare_with_an_arm_that_never_trades_writes_its_pages(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    stub_scoring(monkeypatch, signals)  # each prompt's score: a hash of its text
    monkeypatch.setattr(loading, "load_tokenizer", lambda spec: ChatMLStub())  # F1's prompts
    fake = signals.score_rendered

    def scored(prompts, req, version):  # the few-shot arm: one score for every bar, never a trade
        return fake(["same"] * len(prompts) if req.prompt == "bars-fewshot-v1" else prompts, req, version)

    monkeypatch.setattr(signals, "score_rendered", scored)
    out = tmp_path / "cmp"
    args = ["compare", "--start", "2012-09-01", "--end", "2012-12-31", "--arm",
            "name=still,prompt=bars-fewshot-v1", "--arm", "name=base", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    for name in ("comparison.html", "tearsheet.html", "tearsheet-buy_and_hold.html", "compare.json"):
        assert (out / name).is_file(), name
    assert "still: Sharpe nan" in res.output  # it never traded
    assert "returns are flat (it never traded)" in (out / "tearsheet.html").read_text()
    first = json.loads((out / "compare.json").read_text())
    (out / "compare.json").unlink()
    again = CliRunner().invoke(cli, ["compare", "--from", str(out)])  # the folder reads back
    assert again.exit_code == 0, again.output
    assert json.loads((out / "compare.json").read_text()) == first
    config = json.loads((out / "config.json").read_text())
    assert config["arms"] == ["still", "base"] and config["compare"] and not config["universe"]
    assert "name=still,prompt=bars-fewshot-v1" in (out / "comparison.html").read_text()
