"""The IC decay curve and the break-even cost: a planted h-bar signal peaks at h; the break-even
cost is the spread over twice the quintile turnover, by hand; rendering names both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmbt.reports.decay import ic_decay, with_decay
from llmbt.reports.signal import forward_returns, signal_report

DAYS = pd.bdate_range("2015-01-02", periods=400, tz="UTC")
NAMES = [f"N{j:02d}" for j in range(30)]


@pytest.fixture(scope="module")
def opens() -> pd.DataFrame:
    """30 seeded random walks (daily vol 2 %): a planted signal needs a known future."""
    rng = np.random.default_rng(11)
    steps = rng.normal(0.0, 0.02, size=(len(DAYS), len(NAMES)))
    return pd.DataFrame(100.0 * np.exp(np.cumsum(steps, axis=0)), index=DAYS, columns=NAMES)


@pytest.mark.parametrize("planted", [3, 8])
def test_a_planted_h_bar_signal_peaks_at_h(opens, planted):
    future = forward_returns(opens, (planted,))[planted]
    noise = np.random.default_rng(planted).normal(0, future.stack().std(), future.shape)
    scores = (future + noise).where(future.notna())
    decay = ic_decay(scores, opens)
    assert list(decay.index) == list(range(1, 21))
    assert int(decay["mean_ic"].idxmax()) == planted
    assert decay.loc[planted, "t_stat_nonoverlap"] > 5
    assert decay.loc[planted, "days_nonoverlap"] == pytest.approx(decay.loc[1, "days_nonoverlap"] / planted,
                                                                  abs=2)


def test_break_even_is_the_spread_over_twice_the_quintile_turnover(opens):
    future = forward_returns(opens, (5,))[5]
    scores = future.rank(axis=1)  # a perfect 5-bar signal
    decay = ic_decay(scores, opens, horizons=(5,))
    bins = np.ceil(scores.rank(axis=1) * 5 / scores.count(axis=1).to_numpy()[:, None]).clip(1, 5)
    shares = []
    for q in (5, 1):
        now, before = bins == q, (bins == q).shift(5, fill_value=False)
        ok = bins.notna().any(axis=1) & bins.shift(5).notna().any(axis=1) & (now.sum(axis=1) > 0)
        shares.append(((now & ~before).sum(axis=1)[ok] / now.sum(axis=1)[ok]).mean())
    top, bottom = (future.where(bins == q).mean(axis=1) for q in (5, 1))
    spread = (top - bottom).mean()
    assert decay.loc[5, "spread"] == pytest.approx(spread, rel=1e-12)
    assert decay.loc[5, "turnover"] == pytest.approx(sum(shares), rel=1e-12)
    assert decay.loc[5, "break_even"] == pytest.approx(spread / (2 * sum(shares)), rel=1e-12)


def test_the_report_says_where_the_signal_peaks_and_what_pays(opens):
    future = forward_returns(opens, (4,))[4]
    report = with_decay(signal_report(future, opens), future, opens, cost=0.001)
    text = report.to_text()
    assert "break-even cost" in text and "mean IC peaks at h=4 (+1.0000" in text
    assert "the first horizon whose spread pays the run's 0.10% one-way cost is h=1" in text
    assert "IC decay and break-even cost" in report.to_html()
    noise = pd.DataFrame(np.random.default_rng(0).normal(size=future.shape), index=DAYS, columns=NAMES)
    flat = with_decay(signal_report(noise, opens), noise, opens, cost=0.05)
    assert "no horizon up to 20 bars pays the run's 5.00% one-way cost" in flat.to_text()


def test_a_study_signal_table_has_a_row_per_horizon_and_says_what_peaks_and_pays(opens):
    from llmbt.reports.studies import SIGNAL_HORIZONS, signal_table

    future = forward_returns(opens, (5,))[5]
    table = signal_table(future, opens, cost=0.001).splitlines()
    assert table[0] == ("| Horizon (bars) | mean IC | t-stat* | days* | top-bottom | turnover | "
                        "break-even cost |")
    decay = ic_decay(future, opens, horizons=SIGNAL_HORIZONS)
    assert [row.split(" | ")[0] for row in table[2:7]] == [f"| {h}" for h in SIGNAL_HORIZONS]
    assert table[4].startswith(f"| 5 | {decay.loc[5, 'mean_ic']:+.4f} | ")
    assert table[-1].startswith("Mean IC peaks at h=5 (+1.0000") and "0.10% one-way cost" in table[-1]
