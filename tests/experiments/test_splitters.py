"""Walk-forward splitters: window boundaries, the embargo as a property, periods on real dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from llmbt.errors import ConfigError
from llmbt.experiments.splitters import WalkForward, parse_length


def days(n: int) -> pd.DatetimeIndex:
    return pd.bdate_range("2020-01-01", periods=n)


def test_rolling_bars_exact_boundaries():
    folds = WalkForward(train=40, test=20, embargo=5).folds(days(100))
    assert [(f.train[0], f.train[-1], f.test[0], f.test[-1]) for f in folds] == [
        (0, 39, 45, 64), (20, 59, 65, 84), (40, 79, 85, 99)]
    assert all(len(f.train) == 40 for f in folds)


def test_anchored_train_windows_start_at_the_first_bar_and_grow():
    folds = WalkForward(train=40, test=20, embargo=5, anchored=True).folds(days(100))
    assert [f.train[0] for f in folds] == [0, 0, 0]
    assert [len(f.train) for f in folds] == [40, 60, 80]


def test_a_step_shorter_than_the_test_window_is_refused():
    with pytest.raises(ConfigError, match=r"^--step 5 is shorter than --test 10: test windows would "
                       r"overlap .* use --step 10 or longer \(or leave --step out"):
        WalkForward(train=10, test=10, step=5, embargo=0)
    with pytest.raises(ConfigError, match="--step 1M is shorter than --test 30D"):  # in February
        WalkForward(train="1Y", test="30D", step="1M")
    folds = WalkForward(train=10, test=10, step=15, embargo=0).folds(days(40))  # gaps are fine
    assert [f.test[0] for f in folds] == [10, 25]
    assert len(WalkForward(train="1Y", test="6M", step="6M").folds(days(800))) == 5


def test_bt_walkforward_refuses_an_overlapping_step_before_loading_anything(tmp_path):
    from click.testing import CliRunner

    from llmbt.cli import cli

    res = CliRunner().invoke(cli, ["walkforward", "--data", f"csv:{tmp_path / 'none.csv'}",
                                   "--test", "63", "--step", "21", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--step 21 is shorter than --test 63" in lines[0]
    assert "use --step 63 or longer" in lines[0] and not (tmp_path / "o").exists()


def test_split_is_sklearn_like_and_matches_folds():
    wf = WalkForward(train=30, test=10, embargo=3)
    pairs = list(wf.split(days(80)))
    assert wf.get_n_splits(days(80)) == len(pairs) == 5
    for (train, test), fold in zip(pairs, wf.folds(days(80)), strict=True):
        assert np.array_equal(train, fold.train) and np.array_equal(test, fold.test)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(30, 400), train=st.integers(5, 60), test=st.integers(1, 40),
       step=st.integers(1, 40), embargo=st.integers(0, 10), horizon=st.integers(1, 10),
       anchored=st.booleans())
def test_no_test_bar_inside_a_train_label_horizon(n, train, test, step, embargo, horizon, anchored):
    assume(step >= test)  # a shorter step is refused
    wf = WalkForward(train=train, test=test, step=step, embargo=embargo, anchored=anchored)
    try:
        folds = wf.folds(days(n))
    except ConfigError:
        assert train + embargo >= n
        return
    for f in folds:
        assert f.train.max() + embargo < f.test.min()
        label_bars = {t + k for t in f.train for k in range(1, horizon + 1)}
        assert (embargo >= horizon) == label_bars.isdisjoint(f.test.tolist())
        assert len(f.train) == (f.train.max() + 1 if anchored else train)


def test_test_windows_tile_the_data_when_step_is_test():
    folds = WalkForward(train=50, test=30, embargo=5).folds(days(300))
    stitched = np.concatenate([f.test for f in folds])
    assert np.array_equal(stitched, np.arange(55, 300))


def test_periods_on_real_dates(goog):
    folds = WalkForward(train="2Y", test="1Y", embargo=5).folds(goog.index)
    first = folds[0]
    assert first.test_start == goog.index[goog.index.searchsorted(goog.index[0] + pd.DateOffset(years=2))]
    assert all(f.test_start.year == first.test_start.year + i for i, f in enumerate(folds))
    for f in folds:
        assert f.test_end < f.test_start + pd.DateOffset(years=1)
        assert f.test_start - pd.DateOffset(years=2, days=7) <= f.train_start
        assert f.test[0] - f.train[-1] == 6  # 5 embargoed bars in between
    assert len(folds) == 7 and folds[-1].test_end == goog.index[-1]


@pytest.mark.parametrize("bad", ["2X", "0", 0, -3, "Y", True, 1.5])
def test_bad_lengths_name_the_flag(bad):
    with pytest.raises(ConfigError, match=r"--train .* must be a positive number of bars|--train True"):
        WalkForward(train=bad)


def test_parse_length():
    assert parse_length("252", "--x") == 252
    assert parse_length("6m", "--x") == pd.DateOffset(months=6)


def test_mixing_bars_and_periods_is_refused():
    with pytest.raises(ConfigError, match="all be bars or all be periods"):
        WalkForward(train=250, test="6M")


def test_negative_embargo_and_short_data_are_refused():
    with pytest.raises(ConfigError, match="--embargo -1"):
        WalkForward(embargo=-1)
    with pytest.raises(ConfigError, match="too few for --train 90"):
        WalkForward(train=90, test=10, embargo=10).folds(days(100))
    with pytest.raises(ConfigError, match="sorted and unique"):
        WalkForward(train=5, test=5).folds(days(30)[::-1])
