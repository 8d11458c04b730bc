"""Purging date-only headlines (the shared Reuters set: dates only, end of day in America/New_York):
no kept label may share a bar with the next split's first label. A label ends at its exit bar's
close; a date-only headline is known at the end of its day and trades from the next session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmbt.feeds import align_news_to_bars, load_news
from llmbt.feeds.news import select_symbol
from llmbt.feeds.universe import load_universe
from llmbt.signals_cache.finetune.datasets import Example, time_split
from llmbt.signals_cache.finetune.labelling import headline_examples
from llmbt.signals_cache.finetune.universe_labels import universe_headline_examples

TZ, HORIZON = "America/New_York", 5


@pytest.fixture(scope="module")
def reuters(shared_news):
    prices = load_universe(f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}", "2014-06-01",
                           "2015-12-31", symbols=["AAPL", "BA", "GS", "JPM", "MSFT"]).prices
    news = load_news(shared_news / "reuters_headlines_2013_2016.csv.gz", tz=TZ)
    news = news[(news["timestamp"] >= "2014-06-01") & (news["timestamp"] < "2015-12-01")]
    return prices, news.reset_index(drop=True)


def entry_bar(example: Example, bars: pd.DatetimeIndex) -> int:
    """The first bar a date-only headline trades on, from its own date (not from ``label_end``)."""
    day = (example.time - pd.Timedelta("1ns")).tz_convert(TZ).tz_localize(None).normalize()
    return int(align_news_to_bars(pd.DatetimeIndex([example.time]), bars,
                                  day=pd.DatetimeIndex([day]))[0])


def overlaps(splits: dict[str, list[Example]], bars: pd.DatetimeIndex) -> dict[str, int]:
    """Per pair of consecutive splits: kept labels whose exit bar is at or after the later split's
    first entry bar (its label's first bar)."""
    out = {}
    for earlier, later in (("train", "val"), ("val", "test")):
        if splits[earlier] and splits[later]:
            start = entry_bar(splits[later][0], bars)
            out[earlier] = sum(entry_bar(e, bars) + HORIZON - 1 >= start for e in splits[earlier])
    return out


def test_one_symbols_date_only_headlines_are_purged_where_labels_share_a_bar(reuters):
    prices, news = reuters
    bars = prices["AAPL"]
    examples = headline_examples(bars, select_symbol(news, "AAPL"), horizon=HORIZON)
    assert all(e.time.tz_convert(TZ).hour == 0 for e in examples)  # every headline is date-only
    splits = time_split(examples, val=0.15, test=0.15, embargo=5)
    # the first validation headline (2015-06-09) trades from the 2015-06-10 bar, where 4 training
    # labels of 2015-06-03's headlines end; 9 validation labels end on the test block's first bar
    assert splits["val"][0].time == pd.Timestamp("2015-06-10 04:00", tz="UTC")
    assert overlaps(splits, bars.index) == {"train": 0, "val": 0}
    assert max(e.label_end for e in splits["train"]) == pd.Timestamp("2015-06-10", tz="UTC")


def test_a_universe_folds_train_labels_stop_before_its_validation_block(reuters):
    prices, news = reuters
    first, last = pd.Timestamp("2015-01-02", tz="UTC"), pd.Timestamp("2015-06-30", tz="UTC")
    examples = universe_headline_examples(prices, news, horizon=HORIZON, first=first, last_end=last)
    splits = time_split(examples, val=0.15, test=0.0, embargo=HORIZON)  # as a fold splits them
    assert overlaps(splits, prices["AAPL"].index) == {"train": 0}


def test_a_labels_end_is_its_exit_bars_close():
    from llmbt.signals_cache.finetune.labelling import bar_closes

    daily = pd.date_range("2015-06-01", periods=5, freq="B", tz="UTC")
    assert list(bar_closes(daily, np.array([0, 4]))) == [pd.Timestamp("2015-06-02", tz="UTC"),
                                                         pd.Timestamp("2015-06-06", tz="UTC")]
    hourly = pd.date_range("2015-06-01 13:30", periods=7, freq="h", tz="UTC")
    assert bar_closes(hourly, np.array([6]))[0] == pd.Timestamp("2015-06-01 20:30", tz="UTC")
