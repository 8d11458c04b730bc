"""The signal report: IC, quantile returns and turnover with known values, a golden IC on real prices
(checked with scipy.stats.spearmanr), quantile returns on unbalanced bins against a plain loop, and the
next-open pairing (no look-ahead)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from llmbt.errors import DataError
from llmbt.reports.signal import (
    SignalReport,
    contribution_table,
    daily_ic,
    forward_returns,
    ic_summary,
    quantile_returns,
    signal_report,
    turnover,
)

DATES = pd.date_range("2024-01-01", periods=12, freq="B", tz="UTC")
SYMS = [f"S{j}" for j in range(6)]


def made_open() -> pd.DataFrame:
    """Opens whose bar-to-bar returns are distinct within each date: r[t, j] = ((3j + 5t) mod 7 - 3) %."""
    r = np.array([[((3 * j + 5 * t) % 7 - 3) / 100 for j in range(6)] for t in range(12)])
    return pd.DataFrame(100 * np.cumprod(1 + r, axis=0), index=DATES, columns=SYMS)


def next_return_rank(open_: pd.DataFrame) -> pd.DataFrame:
    """The rank of the return a score at t's close can trade: open[t+1] -> open[t+2]."""
    return (open_.shift(-2) / open_.shift(-1)).rank(axis=1)


def test_forward_return_is_next_open_to_open_with_nan_for_missing_bars() -> None:
    open_ = pd.DataFrame({"A": [10.0, 11.0, 12.1, 13.31], "B": [20.0, np.nan, 30.0, 15.0]})
    fwd = forward_returns(open_, horizons=(1, 2))
    assert fwd[1]["A"].iloc[0] == pytest.approx(12.1 / 11.0 - 1)  # open[2] / open[1], not open[1] / open[0]
    assert fwd[2]["A"].iloc[0] == pytest.approx(13.31 / 11.0 - 1)
    assert np.isnan(fwd[1]["B"].iloc[0])  # entry bar missing: no fake fill
    assert fwd[1]["B"].iloc[1] == pytest.approx(15.0 / 30.0 - 1)
    assert fwd[1].iloc[-2:].isna().all().all() and fwd[2].iloc[-3:].isna().all().all()


def test_score_equal_to_the_next_return_rank_has_ic_one_and_reversed_minus_one() -> None:
    open_ = made_open()
    scores = next_return_rank(open_)
    ic = daily_ic(scores, forward_returns(open_, (1,))[1])
    assert ic.iloc[:-2].tolist() == pytest.approx([1.0] * 10) and ic.iloc[-2:].isna().all()
    assert ic_summary(scores, open_, (1,)).loc[1, "mean_ic"] == pytest.approx(1.0)
    assert ic_summary(-scores, open_, (1,)).loc[1, "mean_ic"] == pytest.approx(-1.0)
    assert ic_summary(scores, open_, (1,)).loc[1, "hit_share"] == 1.0


def test_same_bar_return_is_not_what_a_score_is_paired_with() -> None:
    open_ = made_open()
    same_bar = (open_ / open_.shift(1)).rank(axis=1)  # open[t-1] -> open[t]: known before t's close
    assert ic_summary(same_bar, open_, (1,)).loc[1, "mean_ic"] < 0.9


def test_constant_score_gives_nan_ic_and_few_names_give_nan() -> None:
    open_ = made_open()
    flat = pd.DataFrame(1.0, index=DATES, columns=SYMS)
    assert daily_ic(flat, forward_returns(open_, (1,))[1]).isna().all()
    assert np.isnan(ic_summary(flat, open_, (1,)).loc[1, "mean_ic"])
    scores = next_return_rank(open_)
    scores.iloc[0, :2] = np.nan  # 4 names left on the first date
    ic = daily_ic(scores, forward_returns(open_, (1,))[1], min_names=5)
    assert np.isnan(ic.iloc[0]) and ic.iloc[1] == pytest.approx(1.0)


def test_t_stat_uses_every_h_th_day() -> None:
    open_ = made_open()
    table = ic_summary(open_ / open_.shift(3), open_, (1, 3))
    assert table.loc[1, "days"] == table.loc[1, "days_nonoverlap"]
    assert table.loc[3, "days_nonoverlap"] == -(-table.loc[3, "days"] // 3)


def test_quantile_spread_has_the_sign_of_the_signal() -> None:
    open_ = made_open()
    scores, fwd = next_return_rank(open_), forward_returns(open_, (1,))[1]
    table = quantile_returns(scores, fwd, quantiles=3)
    means = table["mean_return"]
    assert list(table.index) == [1, 2, 3, "top-bottom"] and table.loc[1, "mean_names"] == 2
    assert means.loc[1] < means.loc[2] < means.loc[3]
    assert means.loc["top-bottom"] == pytest.approx(means.loc[3] - means.loc[1])
    assert quantile_returns(-scores, fwd, quantiles=3).loc["top-bottom", "mean_return"] < 0


def holey_panels() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, forward returns), 10 dates x 7 names: scores in steps of 0.5 (ties across bin edges),
    distinct returns; a date with 3 scored names, one with 2, two all tied, one with a bottom bin and
    no top bin, and NaN in either panel alone (a score without a return, a return without a score)."""
    t, j = np.arange(10)[:, None], np.arange(7)[None, :]
    scores = pd.DataFrame(((3 * t + 2 * j + t * j) % 5 - 2) / 2.0, index=DATES[:10], columns=list("ABCDEFG"))
    fwd = pd.DataFrame(((5 * t + 3 * j) % 11 - 5) / 100 + j / 1000 + t / 10_000, index=scores.index,
                       columns=scores.columns)
    scores.iloc[2, [0, 2, 4, 6]] = np.nan  # 3 names: exactly q=3
    scores.iloc[3, 2:] = np.nan  # 2 names: too few, skipped
    scores.iloc[5] = 0.5  # all tied
    scores.iloc[9] = [-1.0] + [1.0] * 6  # 6 tied at the top: a bottom bin but no top bin
    scores.iloc[0, 3] = np.nan
    fwd.iloc[6, 2] = fwd.iloc[7, 5] = fwd.iloc[8, [1, 4]] = np.nan  # scored, no return
    return scores, fwd


def loop_quantiles(scores: pd.DataFrame, fwd: pd.DataFrame, q: int) -> tuple[pd.DataFrame, list]:
    """The documented rule in a plain loop: per date, the names with both values; average rank (exact
    fractions) = 1 + names below + (ties - 1) / 2; bin = max(1, ceil(rank * q / n)); skip n < q.
    Returns the table (mean of daily bin means, mean names over dates with the bin, mean daily
    top-bottom) and each used date's bin sizes."""
    means, counts, spreads, sizes = {b: [] for b in range(1, q + 1)}, {b: [] for b in range(1, q + 1)}, [], []
    for t in scores.index:
        pairs = [(scores.at[t, s], fwd.at[t, s]) for s in scores.columns
                 if math.isfinite(scores.at[t, s]) and math.isfinite(fwd.at[t, s])]
        if len(pairs) < q:
            continue
        day = {b: [] for b in range(1, q + 1)}
        for x, r in pairs:
            rank = 1 + sum(y < x for y, _ in pairs) + Fraction(sum(y == x for y, _ in pairs) - 1, 2)
            day[max(1, math.ceil(rank * q / len(pairs)))].append(r)
        sizes.append([len(day[b]) for b in day])
        for b, rets in day.items():
            if rets:
                means[b].append(sum(rets) / len(rets))
                counts[b].append(len(rets))
        if day[1] and day[q]:
            spreads.append(sum(day[q]) / len(day[q]) - sum(day[1]) / len(day[1]))
    rows = {b: [np.mean(means[b]), np.mean(counts[b])] for b in means}
    rows["top-bottom"] = [np.mean(spreads), np.nan]
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean_return", "mean_names"]), sizes


@pytest.mark.parametrize("q", [3, 4])
def test_quantile_returns_on_unbalanced_bins_equal_a_plain_loop(q) -> None:
    scores, fwd = holey_panels()
    want, sizes = loop_quantiles(scores, fwd, q)
    got = quantile_returns(scores, fwd, quantiles=q)
    assert list(got.index) == [*range(1, q + 1), "top-bottom"]
    np.testing.assert_allclose(got.to_numpy(dtype=float), want.to_numpy(), rtol=0, atol=1e-12)
    assert len(sizes) == 10 - 1 - (q > 3)  # the 2-name date is skipped, the 3-name one for q=4
    assert sum(max(s) > min(s) for s in sizes) >= 6  # bins of unequal sizes on most dates
    assert any(s[0] == s[-1] == 0 for s in sizes)  # all tied: no top or bottom, no spread that day
    assert any(s[0] > s[-1] == 0 for s in sizes)  # a bottom without a top: no spread either
    assert want["mean_return"].notna().all()


def test_turnover_of_a_fixed_ranking_is_zero_and_of_a_rotating_one_is_one() -> None:
    dates = pd.date_range("2024-01-01", periods=6, freq="B")
    names = [f"S{j}" for j in range(10)]
    fixed = pd.DataFrame([list(range(10))] * 6, index=dates, columns=names, dtype=float)
    t = turnover(fixed, quantiles=5)
    assert (t["top_turnover"], t["bottom_turnover"], t["rank_autocorr"]) == (0.0, 0.0, pytest.approx(1.0))
    rotating = pd.DataFrame([[(j + 2 * d) % 10 for j in range(10)] for d in range(6)], index=dates,
                            columns=fixed.columns, dtype=float)
    t = turnover(rotating, quantiles=5)
    assert (t["top_turnover"], t["bottom_turnover"]) == (1.0, 1.0)
    expected = spearmanr(rotating.iloc[1], rotating.iloc[0])[0]
    assert t["rank_autocorr"] == pytest.approx(expected)


def test_report_renders_text_and_html() -> None:
    open_ = made_open()
    report = signal_report(next_return_rank(open_), open_, horizons=(1, 2), quantiles=3, min_names=3)
    assert isinstance(report, SignalReport) and (report.names, report.dates, report.scored) == (6, 12, 60)
    text = report.to_text()
    assert "h=1      +1.0000" in text and "top-bottom" in text and "rank autocorrelation" in text
    page = report.to_html()
    assert page.startswith('<section class="signal">') and "<table" in page and "t-stat*" in page


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s, o: (s.drop(columns="S5"), o), r"different symbols \(e\.g\. \['S5'\]\)"),
    (lambda s, o: (s.iloc[1:], o), r"different dates .*scores\.reindex\(open_\.index\)"),
    (lambda s, o: (s[["S0"]], o[["S0"]]), r"panel has 1 \(\['S0'\]\): pass a universe of 2 or more"),
    (lambda s, o: (s * np.nan, o), r"scores are all NaN"),
    (lambda s, o: (s, o.mul(np.where(np.arange(12) == 3, -1.0, 1.0), axis=0)),
     r"open price -[\d.]+ of S0 on 2024-01-04.* not positive"),
    (lambda s, o: (s, o.iloc[::-1]), r"different dates \(same dates, other order\)"),
    (lambda s, o: (s.iloc[::-1], o.iloc[::-1]), r"sorted and unique"),
])
def test_bad_panels_are_one_clear_error(mutate, message) -> None:
    scores, open_ = mutate(next_return_rank(made_open()), made_open())
    with pytest.raises(DataError, match=message):
        signal_report(scores, open_)


def test_bad_horizons_and_quantiles() -> None:
    open_ = made_open()
    with pytest.raises(DataError, match=r"horizons \(0, 5\) must be positive"):
        forward_returns(open_, (0, 5))
    with pytest.raises(DataError, match=r"horizons \(1, 1\) repeat"):
        forward_returns(open_, (1, 1))
    with pytest.raises(DataError, match=r"quantiles=1 must be an integer of at least 2"):
        signal_report(next_return_rank(open_), open_, quantiles=1)


# --- look-ahead: a score at row t is paired with open[t+1] -> open[t+1+h], whatever its value -----------

def test_ic_at_t_uses_no_open_after_t_plus_1_plus_h() -> None:
    open_ = made_open()
    scores = open_ / open_.shift(2)
    for h in (1, 3):
        full = daily_ic(scores, forward_returns(open_, (h,))[h], min_names=3)
        for t in (2, 5):
            cut = slice(None, t + 2 + h)  # rows 0 .. t+1+h
            part = daily_ic(scores.iloc[cut], forward_returns(open_.iloc[cut], (h,))[h], min_names=3)
            assert part.iloc[t] == pytest.approx(full.iloc[t])
            short = slice(None, t + 1 + h)  # open[t+1+h] missing: no IC at t
            assert np.isnan(daily_ic(scores.iloc[short], forward_returns(open_.iloc[short], (h,))[h]).iloc[t])


@pytest.mark.parametrize("k", [1, -1])
def test_shifting_scores_shifts_the_pairing_with_them(k) -> None:
    open_ = made_open()
    scores = open_ / open_.shift(2)
    fwd = forward_returns(open_, (2,))[2]
    moved = daily_ic(scores.shift(k), fwd, min_names=3).shift(-k)  # the score now at row t+k, back at t
    pd.testing.assert_series_equal(moved, daily_ic(scores, fwd.shift(-k), min_names=3))


# --- real data -----------------------------------------------------------------------------------------

SYMBOLS = ["AAPL", "AMZN", "DHR", "ES", "FTV", "GOOG", "HPE", "JPM", "MSFT", "O", "PYPL", "REGN", "VRTX",
           "WRK", "XOM"]  # with the blank opens of DHR, ES, O, REGN, VRTX, WRK and the PYPL/HPE/FTV listings
# mean daily IC over all dates, recomputed independently with scipy.stats.spearmanr in a loop over the
# long-format rows (497 and 493 dates): 0.016342416583178282 and 0.023178563210749223
GOLDEN = {1: (0.016342416583178282, 497, 497), 5: (0.023178563210749223, 493, 99)}


@pytest.fixture(scope="module")
def prices(shared_news: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_news / "sp500_prices_2013_2016.csv.gz", parse_dates=["timestamp"])
    return df[df.symbol.isin(SYMBOLS) & (df.timestamp >= "2015-01-01")].reset_index(drop=True)


def panels(prices: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(5-day reversal scores known at each close, opens), dates x symbols."""
    close = prices.pivot(index="timestamp", columns="symbol", values="close")
    open_ = prices.pivot(index="timestamp", columns="symbol", values="open")
    return -(close / close.shift(5) - 1), open_


def test_golden_ic_on_real_prices_matches_scipy_on_sample_dates(prices) -> None:
    scores, open_ = panels(prices)
    opens = prices.set_index(["timestamp", "symbol"])["open"].to_dict()
    closes = prices.set_index(["timestamp", "symbol"])["close"].to_dict()
    days = sorted(prices.timestamp.unique())
    table = ic_summary(scores, open_, (1, 5), min_names=5)
    for h in (1, 5):
        ic = daily_ic(scores, forward_returns(open_, (h,))[h])
        for day in ("2015-07-15", "2015-07-16", "2015-11-02", "2016-01-11", "2016-07-05"):
            i = days.index(pd.Timestamp(day))
            x, y = [], []
            for sym in SYMBOLS:
                c0, c5 = closes.get((days[i], sym)), closes.get((days[i - 5], sym))
                o1, o2 = opens.get((days[i + 1], sym)), opens.get((days[i + 1 + h], sym))
                if all(v is not None and np.isfinite(v) for v in (c0, c5, o1, o2)):
                    x.append(-(c0 / c5 - 1))
                    y.append(o2 / o1 - 1)
            assert len(x) >= 5
            assert ic.loc[days[i]] == pytest.approx(spearmanr(x, y)[0], abs=1e-12), (h, day)
        mean_ic, days_, sparse = GOLDEN[h]
        assert table.loc[h, "mean_ic"] == pytest.approx(mean_ic, abs=1e-12)
        assert (table.loc[h, "days"], table.loc[h, "days_nonoverlap"]) == (days_, sparse)


def test_contribution_table_shows_best_worst_and_the_total() -> None:
    contrib = pd.DataFrame({"pnl": [500.0, -120.5, 30.0, 1200.25, -40.0],
                            "commission": [3.0, 2.5, 1.0, 4.0, 0.5], "fills": [10, 8, 2, 12, 1],
                            "share": 0.0}, index=pd.Index(["A", "B", "C", "D", "E"], name="symbol"))
    contrib["share"] = contrib.pnl / contrib.pnl.sum()
    lines = contribution_table(contrib, top=2).splitlines()
    names = [ln.split()[0] for ln in lines[2:]]
    assert names == ["D", "A", "...", "E", "B", "total"]
    assert lines[-1].split() == ["total", "(5)", "1,569.75", "11.00", "33", "100.0%"]
    assert "1 more" in lines[4]
    assert [ln.split()[0] for ln in contribution_table(contrib, top=3).splitlines()[2:]] == [
        "D", "A", "C", "E", "B", "total"]
    with pytest.raises(DataError, match=r"lacks columns \['fills'\]"):
        contribution_table(contrib.drop(columns="fills"))
