"""`bt dataset` through click's runner on real data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import engine.cli_ml  # noqa: F401  (registers the commands)
from engine.cli import cli

FPB = Path(__file__).resolve().parents[2] / "shared" / "data" / "fpb" / "fpb50_dev.csv"


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
    from feeds import load_prices

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


def test_dataset_build_needs_exactly_one_source(tmp_path):
    res = CliRunner().invoke(cli, ["dataset", "build", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "exactly one" in res.output


@pytest.mark.skipif(not FPB.is_file(), reason="../shared/data/fpb/fpb50_dev.csv absent (runs in CI)")
def test_dataset_build_phrasebank_stratified(tmp_path):
    res = CliRunner().invoke(cli, ["dataset", "build", "--corpus", str(FPB), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    counts = json.loads((tmp_path / "report.json").read_text())["counts"]
    assert counts["test"]["total"] == 386 and counts["train"]["bearish"] == 386
