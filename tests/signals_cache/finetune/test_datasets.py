"""Datasets: loading, leak-free splits, look-ahead-free bar labels, quality report and export."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SHARED_DATA

from llmbt.errors import ConfigError, DataError
from llmbt.feeds import load_prices
from llmbt.signals_cache.finetune.datasets import (
    Example,
    load_labelled,
    quality_report,
    rebalance,
    stratified_split,
    time_split,
    to_alpaca,
    to_chatml,
    write_jsonl,
)
from llmbt.signals_cache.finetune.labelling import bar_examples, headline_examples
from llmbt.signals_cache.scoring.prompts import BARS_V1, HEADLINES_V1

FPB = SHARED_DATA / "fpb" / "fpb50_dev.csv"


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_prices("sample:GOOG", None, None)


@pytest.fixture(scope="module")
def goog_examples(goog: pd.DataFrame) -> dict[pd.Timestamp, Example]:
    return {e.time: e for e in bar_examples(goog, symbol="GOOG")}


def _corpus(n_per_label: dict[str, int]) -> list[Example]:
    return [
        Example(f"{label} headline number {i}", label)
        for label, n in n_per_label.items()
        for i in range(n)
    ]


def _news(times: list[pd.Timestamp]) -> pd.DataFrame:
    """Headlines as :func:`feeds.load_news` returns them, one at each time."""
    return pd.DataFrame({"timestamp": pd.DatetimeIndex(times), "symbol": "GOOG",
                         "headline": [f"headline {i}" for i in range(len(times))], "source": ""})


def test_headline_label_starts_at_the_first_bar_opening_after_it(goog: pd.DataFrame) -> None:
    idx = goog.index
    times = [idx[1000] + pd.Timedelta(hours=15), idx[1100], idx[len(idx) - 3]]  # during / at open
    examples = headline_examples(goog, _news(times), horizon=5)
    assert [e.text for e in examples] == ["headline 0", "headline 1"]  # the last: no full window
    for example, entry in zip(examples, (1001, 1101), strict=True):
        expected = goog["close"].iloc[entry + 4] / goog["open"].iloc[entry] - 1
        assert example.forward_return == pytest.approx(expected)
        assert example.label_end == idx[entry + 4] + pd.Timedelta("1D")  # the exit bar's close
        assert example.symbol == "GOOG"
    with pytest.raises(DataError, match="no headline has a full 5-bar window"):
        headline_examples(goog, _news([idx[-1]]), horizon=5)


@pytest.mark.parametrize("method", ["quantile", "vol"])
def test_headline_labels_ignore_prices_up_to_its_time(goog: pd.DataFrame, method: str) -> None:
    idx = goog.index
    news = _news([idx[i] + pd.Timedelta(hours=12) for i in range(300, 1500, 7)])
    base = headline_examples(goog, news, method=method, train_end=idx[1600])
    position = 902  # the headline at bar 902: prices of bars 0..902 are known when it is out
    changed = goog.copy()
    for column in ("high", "close"):  # uneven: closes up, opens not
        changed.iloc[: position + 1, changed.columns.get_loc(column)] *= 1.3
    after = headline_examples(changed, news, method=method, train_end=idx[1600])
    i = next(k for k, e in enumerate(base) if e.time == idx[position] + pd.Timedelta(hours=12))
    assert after[i].forward_return == base[i].forward_return
    assert after[i - 1].forward_return != pytest.approx(base[i - 1].forward_return)
    later = goog.copy()
    later.iloc[position + 1, later.columns.get_loc("open")] *= 1.01  # its entry bar's open
    assert headline_examples(later, news, method=method, train_end=idx[1600])[i].forward_return \
        != pytest.approx(base[i].forward_return)


def test_time_split_purges_headline_labels_that_reach_the_next_split(goog: pd.DataFrame) -> None:
    idx = goog.index
    news = _news([idx[i] + pd.Timedelta(hours=h) for i in range(200, 1800, 3) for h in (1, 20)])
    examples = headline_examples(goog, news, horizon=10)
    splits = time_split(examples, embargo=0)
    for earlier, later in (("train", "val"), ("val", "test")):
        assert max(e.label_end for e in splits[earlier]) < min(e.time for e in splits[later])
    assert sum(map(len, splits.values())) < len(examples)  # some were purged


# ---------------------------------------------------------------------------------------------
# loading


@pytest.mark.skipif(not FPB.is_file(), reason=f"Financial PhraseBank sample not found at {FPB}")
def test_phrasebank_csv_loads_with_expected_label_counts() -> None:
    examples = load_labelled(FPB)
    assert len(examples) == 3872
    assert Counter(e.label for e in examples) == {"neutral": 2285, "bullish": 1105, "bearish": 482}
    assert all(e.text and e.symbol == "" and e.time is None for e in examples)


def test_formats_csv_jsonl_and_phrasebank_txt(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,text,label\n1,Profit rose,POSITIVE\n2,Loss widened,negative\n")
    rows = [{"label": "neutral", "text": "Meeting held", "extra": 1}, {"text": "Up we go", "label": "up"}]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "c.txt").write_text("Sales fell, e-mail a@b@negative\nNo change@neutral\n")
    assert [e.label for e in load_labelled(tmp_path / "a.csv")] == ["bullish", "bearish"]
    assert [e.label for e in load_labelled(tmp_path / "b.jsonl")] == ["neutral", "bullish"]
    txt = load_labelled(tmp_path / "c.txt")
    assert [(e.text, e.label) for e in txt] == [
        ("Sales fell, e-mail a@b", "bearish"),
        ("No change", "neutral"),
    ]


def test_label_map_and_unknown_label_error_names_value_and_row(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("label,text\npositive,Good\nmeh,So so\n")
    with pytest.raises(DataError, match=r"row 2: unknown label 'meh'.*bullish") as info:
        load_labelled(path)
    assert "neutral" in str(info.value)
    assert load_labelled(path, label_map={"MEH": "neutral"})[1].label == "neutral"
    with pytest.raises(ConfigError, match="'meh'"):
        load_labelled(path, label_map={"meh": "sideways"})


def test_missing_column_and_empty_text_errors(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("label,sentence\npositive,Good\n")
    with pytest.raises(DataError, match=r"lack.*\['text'\]"):
        load_labelled(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("label,text\npositive,Good\nneutral,   \n")
    with pytest.raises(DataError, match="row 2: empty text"):
        load_labelled(tmp_path / "b.csv")
    (tmp_path / "c.jsonl").write_text('{"label": "neutral"}\n')
    with pytest.raises(DataError, match="line 1 lacks"):
        load_labelled(tmp_path / "c.jsonl")


def test_csv_with_mangled_bytes_is_read_with_replacement(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"label,text\nneutral,Caf\xe9 opens\n")
    assert load_labelled(tmp_path / "a.csv")[0].text == "Caf\ufffd opens"


# ---------------------------------------------------------------------------------------------
# splits


def test_stratified_split_deterministic_proportional_and_leak_free() -> None:
    examples = _corpus({"bullish": 203, "bearish": 57, "neutral": 411})
    examples += [
        Example("Bullish headline NUMBER 3", "bullish"),
        Example("neutral  headline number 9", "neutral"),
    ]
    first = stratified_split(examples, val=0.1, test=0.2, seed=7)
    assert first == stratified_split(examples, val=0.1, test=0.2, seed=7)
    assert first != stratified_split(examples, val=0.1, test=0.2, seed=8)
    for label, n in {"bullish": 203, "bearish": 57, "neutral": 411}.items():
        counts = {name: sum(e.label == label for e in part) for name, part in first.items()}
        assert abs(counts["val"] - 0.1 * n) <= 1 and abs(counts["test"] - 0.2 * n) <= 1
        assert sum(counts.values()) == n  # the two near-duplicates were dropped
    texts = {name: {" ".join(e.text.lower().split()) for e in part} for name, part in first.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"]
    assert not texts["val"] & texts["test"]


def test_time_split_embargo_and_order() -> None:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    examples = [Example(f"t{i}", "neutral", time=start + pd.Timedelta(days=i)) for i in range(100)]
    splits = time_split(examples[::-1], val=0.2, test=0.2, embargo=5)
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert (len(train), len(val), len(test)) == (50, 20, 20)
    position = {e.time: i for i, e in enumerate(examples)}
    assert position[val[0].time] - position[train[-1].time] > 5
    assert position[test[0].time] - position[val[-1].time] > 5
    assert train[-1].time < val[0].time and val[-1].time < test[0].time


def test_time_split_without_test_block_validates_on_the_newest_examples() -> None:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    examples = [Example(f"t{i}", "neutral", time=start + pd.Timedelta(days=i)) for i in range(100)]
    splits = time_split(examples, val=0.1, test=0.0, embargo=5)
    assert [e.text for e in splits["val"]] == [f"t{i}" for i in range(90, 100)]
    assert [e.text for e in splits["train"]] == [f"t{i}" for i in range(85)]
    assert splits["test"] == []


def test_time_split_errors() -> None:
    with pytest.raises(DataError, match="no time"):
        time_split([Example("a", "neutral")], embargo=0)
    dated = [Example("a", "neutral", time=pd.Timestamp("2024-01-01", tz="UTC"))] * 10
    with pytest.raises(DataError, match="too few"):
        time_split(dated, embargo=5)
    with pytest.raises(ConfigError):
        stratified_split(dated, val=0.6, test=0.5)


# ---------------------------------------------------------------------------------------------
# bar examples: look-ahead


def test_bar_examples_shape_and_forward_return(goog: pd.DataFrame, goog_examples: dict) -> None:
    times = list(goog.index)
    assert 2000 < len(goog_examples) < len(goog)
    assert max(goog_examples) == times[-6]  # the last 5 bars have no full horizon
    t = times[1000]
    expected = goog["close"].iloc[1005] / goog["open"].iloc[1001] - 1
    assert goog_examples[t].forward_return == pytest.approx(expected)
    assert goog_examples[t].text.startswith("ret_1: ") and goog_examples[t].symbol == "GOOG"
    assert set(Counter(e.label for e in goog_examples.values())) == {"bullish", "bearish", "neutral"}


def test_text_ignores_prices_after_bar_t(goog: pd.DataFrame, goog_examples: dict) -> None:
    position = 1200
    changed = goog.copy()
    changed.iloc[position + 1 :, :4] *= 1.5
    changed.iloc[position + 1 :, 4] *= 3
    after = {e.time: e for e in bar_examples(changed, symbol="GOOG")}
    for t in goog.index[position - 50 : position + 1]:
        assert after[t].text == goog_examples[t].text


def test_forward_return_starts_at_next_open(goog: pd.DataFrame, goog_examples: dict) -> None:
    position, t = 1200, goog.index[1200]
    before = goog.copy()
    before.iloc[: position - 5, :4] *= 1.1  # older bars
    before.iloc[position, before.columns.get_loc("close")] *= 1.05  # bar t's close
    before.iloc[position, before.columns.get_loc("high")] *= 1.06
    before.iloc[position + 1, 1:4] *= 1.02  # bar t+1's high, low and close (not its open)
    changed = {e.time: e for e in bar_examples(before, symbol="GOOG")}[t]
    assert changed.text != goog_examples[t].text  # the perturbation is visible to the prompt
    assert changed.forward_return == goog_examples[t].forward_return
    next_open = goog.copy()
    next_open.iloc[position + 1, next_open.columns.get_loc("open")] *= 1.01
    moved = {e.time: e for e in bar_examples(next_open, symbol="GOOG")}[t]
    assert moved.text == goog_examples[t].text
    assert moved.forward_return != pytest.approx(goog_examples[t].forward_return, abs=1e-12)


@pytest.mark.parametrize("method", ["quantile", "vol"])
def test_train_labels_ignore_prices_after_train_end(goog: pd.DataFrame, method: str) -> None:
    train_end = goog.index[1400]
    base = bar_examples(goog, symbol="GOOG", train_end=train_end, method=method)
    changed = goog.copy()
    factors = np.arange(len(goog) - 1401) % 7 + 1.0  # wild, uneven moves after train_end
    changed.iloc[1401:, :4] *= factors[:, None]
    after = bar_examples(changed, symbol="GOOG", train_end=train_end, method=method)
    fitted = [e for e in base if e.time <= goog.index[1395]]  # forward window ends by train_end
    assert len(fitted) > 1000
    assert [e.label for e in fitted] == [e.label for e in after[: len(fitted)]]
    assert [e.label for e in base] != [e.label for e in after]


def test_quantile_thresholds_split_training_window_evenly(goog: pd.DataFrame) -> None:
    train_end = goog.index[1400]
    examples = bar_examples(goog, symbol="GOOG", train_end=train_end)
    fitted = Counter(e.label for e in examples if e.time <= goog.index[1395])
    assert max(fitted.values()) - min(fitted.values()) <= 2


def test_bar_examples_argument_errors(goog: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'quantile'"):
        bar_examples(goog, symbol="G", method="quantiles")
    with pytest.raises(ConfigError, match="horizon"):
        bar_examples(goog, symbol="G", horizon=0)
    with pytest.raises(DataError, match="train_end"):
        bar_examples(goog, symbol="G", train_end="2000-01-01")


# ---------------------------------------------------------------------------------------------
# quality, rebalance, export


def test_quality_report_flags_cross_split_duplicate_and_imbalance() -> None:
    train = _corpus({"bullish": 40, "bearish": 3, "neutral": 40}) + [Example("x" * 50, "neutral")]
    val = _corpus({"bullish": 2, "neutral": 2})[:3] + [Example("Bearish  Headline number 1", "bearish")]
    report = quality_report({"train": train, "val": val}, max_chars=40)
    assert report["counts"]["train"] == {"bullish": 40, "bearish": 3, "neutral": 41, "total": 84}
    assert report["leaks"]["train|val"] == 4
    assert "bearish headline number 1" in report["leak_examples"]
    assert report["too_long"] == {"train": 1, "val": 0}
    warnings = "\n".join(report["warnings"])
    assert "leak across train|val" in warnings
    assert ("label 'bearish' is 4% of train, under min_ratio 10%: rebuild with bt dataset build "
            "--rebalance") in warnings
    clean = quality_report(stratified_split(_corpus({"bullish": 30, "bearish": 30, "neutral": 30})))
    assert clean["warnings"] == [] and set(clean["leaks"].values()) == {0}


def test_quality_report_counts_duplicates_within_split() -> None:
    report = quality_report({"train": [Example("a b", "neutral"), Example("A  b", "neutral")]})
    assert report["duplicates"] == {"train": 1}


def test_rebalance_oversamples_minorities_deterministically() -> None:
    examples = _corpus({"bullish": 10, "bearish": 3, "neutral": 6})
    balanced = rebalance(examples, seed=1)
    assert Counter(e.label for e in balanced) == {"bullish": 10, "bearish": 10, "neutral": 10}
    assert set(balanced) == set(examples)
    assert balanced == rebalance(examples, seed=1)


def test_chatml_and_alpaca_shapes(tmp_path: Path) -> None:
    headline = Example("Acme beats estimates", "bullish", symbol="ACME")
    chat = to_chatml(headline, HEADLINES_V1)
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant"]
    assert chat["messages"][0]["content"] == HEADLINES_V1.system
    assert chat["messages"][1]["content"] == "Symbol: ACME\nHeadline: Acme beats estimates"
    assert chat["messages"][2]["content"] == "bullish"
    bar = Example("ret_1: 0.1", "bearish", symbol="GOOG")
    alpaca = to_alpaca(bar, BARS_V1)
    assert alpaca == {"instruction": BARS_V1.system, "input": "Symbol: GOOG\nret_1: 0.1", "output": "bearish"}
    path = tmp_path / "out" / "train.jsonl"
    assert write_jsonl([chat, alpaca], path) == 2
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == [chat, alpaca]
