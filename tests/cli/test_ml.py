"""`bt dataset` through click's runner on real data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import SHARED_DATA, save_tiny

import llmbt.cli.ml  # noqa: F401  (registers the commands)
from llmbt.cli import cli

FPB = SHARED_DATA / "fpb" / "fpb50_dev.csv"


def test_dataset_build_bars_writes_splits_and_report(tmp_path):
    res = CliRunner().invoke(cli, ["dataset", "build", "--data", "sample:GOOG", "--horizon", "5",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for name in ("train", "val", "test"):
        rows = (tmp_path / f"{name}.chatml.jsonl").read_text().splitlines()
        msg = json.loads(rows[0])["messages"]
        assert [m["role"] for m in msg] == ["system", "user", "assistant"]
        assert msg[2]["content"] in ("bullish", "bearish", "neutral")
    plain = [json.loads(r) for r in (tmp_path / "train.jsonl").read_text().splitlines()]
    test = [json.loads(r) for r in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert max(r["time"] for r in plain) < min(r["time"] for r in test)  # split by time
    assert "counts" in json.loads((tmp_path / "report.json").read_text())


def test_dataset_build_headline_mode_labels_each_headline_by_later_prices(tmp_path):
    from llmbt.feeds import load_prices

    days = load_prices("sample:GOOG", None, None).index[200:1800:4]
    lines = ["timestamp,symbol,headline"] + [
        f"{(t + pd.Timedelta(hours=14)).strftime('%Y-%m-%d %H:%M')},GOOG,GOOG headline number {i}"
        for i, t in enumerate(days)
    ]
    news = tmp_path / "news.csv"
    news.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(cli, ["dataset", "build", "--data", "sample:GOOG", "--news", str(news),
                                   "--news-tz", "UTC", "--horizon", "3", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    rows = {n: [json.loads(r) for r in (tmp_path / "d" / f"{n}.jsonl").read_text().splitlines()]
            for n in ("train", "val", "test")}
    assert 300 < sum(map(len, rows.values())) <= len(days)
    assert rows["train"][0]["text"].startswith("GOOG headline number")
    assert max(r["time"] for r in rows["train"]) < min(r["time"] for r in rows["val"])
    chat = json.loads((tmp_path / "d" / "train.chatml.jsonl").read_text().splitlines()[0])
    assert "Headline: GOOG headline number" in chat["messages"][1]["content"]
    bad = CliRunner().invoke(cli, ["dataset", "build", "--corpus", str(news), "--news", str(news),
                                   "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "--data" in bad.output


def test_bar_dataset_files_reload_to_the_prompts_scoring_uses(tmp_path):
    from helpers import ChatMLStub

    from llmbt.feeds import load_prices
    from llmbt.signals_cache.finetune.datasets import load_labelled
    from llmbt.signals_cache.finetune.encoding import render_example
    from llmbt.signals_cache.scoring.prompts import bar_prompts, template_for

    res = CliRunner().invoke(cli, ["dataset", "build", "--data", "sample:GOOG", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    examples = load_labelled(tmp_path / "test.jsonl")
    template, tokenizer = template_for("bars"), ChatMLStub()
    scored = bar_prompts(load_prices("sample:GOOG", None, None), "GOOG", template, tokenizer)
    for example in examples[::50]:
        assert example.text.count("\n") >= 5 and example.forward_return is not None
        assert render_example(template, tokenizer, example.text, example.symbol) == scored[example.time]


def test_dataset_build_needs_exactly_one_source(tmp_path):
    res = CliRunner().invoke(cli, ["dataset", "build", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "exactly one" in res.output


@pytest.mark.skipif(not FPB.is_file(), reason="../shared/data/fpb/fpb50_dev.csv absent (runs in CI)")
def test_dataset_build_phrasebank_stratified(tmp_path):
    res = CliRunner().invoke(cli, ["dataset", "build", "--corpus", str(FPB), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    counts = json.loads((tmp_path / "report.json").read_text())["counts"]
    assert counts["test"]["total"] == 386 and counts["train"]["bearish"] == 386


def test_evaluate_on_dated_examples_reports_direction_and_seed_targets(tmp_path, tokenizer_dir):
    CliRunner().invoke(cli, ["dataset", "build", "--data", "sample:GOOG", "--out", str(tmp_path)])
    rows = (tmp_path / "test.jsonl").read_text().splitlines()[:24]
    (tmp_path / "few.jsonl").write_text("\n".join(rows) + "\n")
    tiny = save_tiny(tmp_path / "tiny", tokenizer_dir)
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(cli, ["evaluate", "--data", str(tmp_path / "few.jsonl"), "--model",
                                   str(tiny), "--template", "bars-v2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["n"] == 24 and set(result["base"]["directional"]) >= {"hit_rate", "profitable_ratio"}
    assert set(result["base"]["targets"]) == {"accuracy > 60 %", "profitable signals > 55 %",
                                              "mean confidence 60-80 %"}
    assert "target: profitable signals > 55 %" in res.output and "hit_rate" in res.output
    assert 0 < result["base"]["mean_label_mass"] <= 1 and "mean_label_mass" in res.output


def test_finetune_flags_reach_the_adapter_and_label_map_reads_own_labels(tmp_path, tokenizer_dir):
    rows = ["label,text"] + [f"{lab},{text} {i}" for i in range(4) for lab, text in (
        ("pos", "Profit soars on record sales"), ("neg", "Loss widens as sales collapse"),
        ("neutral", "Board meets on Tuesday"))]
    data = tmp_path / "own.csv"
    data.write_text("\n".join(rows) + "\n")
    tiny = save_tiny(tmp_path / "tiny", tokenizer_dir)
    args = ["finetune", "--data", str(data), "--out", str(tmp_path / "a"), "--model", str(tiny),
            "--max-steps", "2", "--batch-size", "4", "--target-modules", "q_proj,v_proj",
            "--dropout", "0", "--warmup-ratio", "0", "--max-length", "200",
            "--early-stopping-patience", "0", "--label-map", "pos=bullish", "--label-map", "neg=bearish"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q_proj", "v_proj"} and config["lora_dropout"] == 0
    meta = json.loads((tmp_path / "a" / "llmbt_adapter.json").read_text())
    assert meta["hyperparameters"]["max_length"] == 200 and meta["metrics"]["steps"] == 2
    no_map = CliRunner().invoke(cli, args[:5] + ["--model", str(tiny)])
    assert no_map.exit_code != 0 and "unknown label 'pos'" in no_map.output
    bad = CliRunner().invoke(cli, args[:-4] + ["--label-map", "pos:bullish"])
    assert bad.exit_code != 0 and "name=label" in bad.output


def test_every_train_config_field_has_a_finetune_flag_with_its_default():
    import dataclasses

    from llmbt.cli.ml import TRAIN_FLAG_HELP
    from llmbt.signals_cache.finetune.trainer import TrainConfig

    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(TRAIN_FLAG_HELP)
    help_text = CliRunner().invoke(cli, ["finetune", "--help"], terminal_width=200).output
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in help_text
    assert "[default: 600]" in help_text and "[default: 12]" in help_text


def _rows(folder: Path, name: str) -> list[dict]:
    return [json.loads(r) for r in (folder / f"{name}.jsonl").read_text().splitlines()]


def test_dataset_build_fits_quantile_thresholds_on_the_train_block_only(tmp_path):
    import numpy as np

    res = CliRunner().invoke(cli, ["dataset", "build", "--data", "sample:GOOG", "--horizon", "5",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    splits = {n: _rows(tmp_path, n) for n in ("train", "val", "test")}
    train_returns = np.array([r["forward_return"] for r in splits["train"]])
    lower, upper = np.quantile(train_returns, 1 / 3), np.quantile(train_returns, 2 / 3)
    for name, rows in splits.items():
        for row in rows:
            r = row["forward_return"]
            want = "bullish" if r > upper else "bearish" if r < lower else "neutral"
            assert row["label"] == want, (name, row["time"], r, lower, upper)


def test_finetune_without_val_on_dated_examples_validates_on_the_last_part_by_time(tmp_path,
                                                                                  monkeypatch):
    import llmbt.signals_cache.finetune.trainer as ft

    CliRunner().invoke(cli, ["dataset", "build", "--data", "sample:GOOG", "--out", str(tmp_path)])
    seen = {}

    def fake_finetune(train, val, spec, out, cfg, **kwargs):
        seen.update(train=train, val=val)
        return {"metrics": {}}

    monkeypatch.setattr(ft, "finetune", fake_finetune)
    res = CliRunner().invoke(cli, ["finetune", "--data", str(tmp_path / "train.jsonl"),
                                   "--out", str(tmp_path / "a"), "--horizon", "5"])
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path, "train")
    times = sorted(pd.Timestamp(r["time"]) for r in rows)
    train, val = seen["train"], seen["val"]
    n_val = round(len(rows) * 0.1)
    assert [e.time for e in val] == times[-n_val:]  # the last 10 % by time
    assert [e.time for e in train] == times[: len(rows) - n_val - 5]  # then a 5-bar embargo


# ---------------------------------------------------------------- downloaded --data


class GoogExchange:
    """A ccxt exchange serving GOOG's daily bars: only ``fetch_ohlcv`` (the network call) is new."""

    timeframes = {"1d": "1d"}

    def __init__(self, goog: pd.DataFrame) -> None:
        self.rows = [[int(t.value // 1_000_000), *r] for t, r in
                     zip(goog.index, goog[["open", "high", "low", "close", "volume"]].to_numpy().tolist(),
                         strict=True)]
        self.calls: list[int] = []

    def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None):
        self.calls.append(since)
        return [r for r in self.rows if r[0] >= since][:limit]


def test_dataset_build_takes_a_ccxt_start_and_end(tmp_path, monkeypatch, goog, llmbt_home):
    from llmbt.feeds import sources

    exchange = GoogExchange(goog)
    monkeypatch.setattr(sources, "_ccxt_exchange", lambda name: exchange)
    args = ["dataset", "build", "--data", "ccxt:bybit:GOOG/USDT", "--out", str(tmp_path)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "needs a start date; pass one, e.g. --start 2024-01-01" in res.output
    res = CliRunner().invoke(cli, [*args, "--start", "2010-01-04", "--end", "2011-12-30"])
    assert res.exit_code == 0, res.output
    assert exchange.calls[0] == int(pd.Timestamp("2010-01-04", tz="UTC").value // 1_000_000)
    rows = [r for split in ("train", "val", "test") for r in _rows(tmp_path, split)]
    times = sorted(r["time"] for r in rows)
    assert "2010-01-04" <= times[0] and times[-1] < "2011-12-31"  # only the bars asked for
    res = CliRunner().invoke(cli, ["dataset", "build", "--corpus", str(tmp_path / "train.jsonl"),
                                   "--start", "2010-01-04", "--out", str(tmp_path / "c")])
    assert res.exit_code == 1 and "--start/--end pick the bars of --data" in res.output


def test_dataset_build_reads_yahoo_from_the_cache_bt_run_filled(tmp_path, monkeypatch, goog, llmbt_home):
    """yfinance's download (a (field, ticker) frame, end exclusive) is the only stub."""
    from llmbt.feeds import sources

    calls: list[tuple] = []

    def download(ticker, start, end, interval):
        calls.append((ticker, start, end))
        lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
        bars = goog[(goog.index >= lo) & (goog.index < hi)]
        frame = pd.DataFrame({(f.title(), ticker): bars[f].to_numpy() for f in bars.columns},
                             index=pd.DatetimeIndex(bars.index.tz_localize(None), name="Date"))
        frame.columns.names = ["Price", "Ticker"]
        return frame

    monkeypatch.setattr(sources, "_yahoo_download", download)
    span = ["--start", "2010-06-01", "--end", "2011-12-30"]
    res = CliRunner().invoke(cli, ["run", "--strategy", "sma_cross", "--data", "yahoo:GOOG", *span,
                                   "--benchmark", "none", "--no-report"])
    assert res.exit_code == 0, res.output
    assert len(calls) == 1 and list((llmbt_home / "prices").glob("yahoo_GOOG_1d-*.parquet"))
    for out in ("a", "b"):  # offline from here: every build reads that cache
        monkeypatch.setattr(sources, "_yahoo_download", lambda *a: pytest.fail("network touched"))
        res = CliRunner().invoke(cli, ["dataset", "build", "--data", "yahoo:GOOG", *span,
                                       "--out", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
    assert _rows(tmp_path / "a", "train") == _rows(tmp_path / "b", "train")
    assert min(r["time"] for r in _rows(tmp_path / "a", "train")) >= "2010-06-01"
