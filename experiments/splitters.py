"""Walk-forward splitters: rolling or anchored train/test windows over a time index, with an embargo.

Like scikit-learn's ``TimeSeriesSplit``, :meth:`WalkForward.split` yields integer positions
``(train, test)``; :meth:`WalkForward.folds` gives the same windows as :class:`Fold` records with
their dates. Lengths are whole bars (``252``) or calendar periods (``"2Y"``, ``"6M"``, ``"13W"``,
``"90D"``). The ``embargo`` drops that many bars between the end of each train window and the
start of its test window: with ``embargo >= h`` no label of the train window (which looks ``h``
bars ahead of its bar) reaches into the test window.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError

_PERIOD = re.compile(r"^\s*(\d+)\s*([YMWD])\s*$", re.IGNORECASE)
_UNITS = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}


@dataclass(frozen=True)
class Fold:
    """One walk-forward window: positions into the index and the dates they span."""

    number: int
    train: np.ndarray
    test: np.ndarray
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-able facts of the fold (dates as ISO strings)."""
        return {"fold": self.number, "train_bars": len(self.train), "test_bars": len(self.test),
                **{k: getattr(self, k).isoformat()
                   for k in ("train_start", "train_end", "test_start", "test_end")}}


def parse_length(value: int | str, flag: str) -> int | pd.DateOffset:
    """``252`` → 252 bars; ``"2Y"`` → ``DateOffset(years=2)``.

    Raises:
        ConfigError: not a positive whole number of bars or a period like 2Y, 6M, 13W, 90D.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{flag} {value!r} must be bars (e.g. 252) or a period (e.g. 1Y, 6M).")
    if isinstance(value, int | np.integer) or (isinstance(value, str) and value.strip().isdigit()):
        bars = int(value)
        if bars >= 1:
            return bars
    elif isinstance(value, str) and (m := _PERIOD.match(value)) and int(m.group(1)) >= 1:
        return pd.DateOffset(**{_UNITS[m.group(2).upper()]: int(m.group(1))})
    raise ConfigError(f"{flag} {value!r} must be a positive number of bars (e.g. 252) or a period "
                      "such as 2Y, 6M, 13W or 90D.")


def _shorter(step: int | pd.DateOffset, test: int | pd.DateOffset) -> bool:
    """Whether a test window starting ``step`` after the previous one's start can begin before
    that window ends: bars compared as numbers, periods from every day of a leap-year cycle
    (``1M`` is shorter than ``30D`` from February 1st)."""
    if isinstance(step, int):
        return step < test
    days = pd.date_range("2000-01-01", "2003-12-31", freq="D")
    return bool((days + step < days + test).any())


@dataclass(frozen=True)
class WalkForward:
    """Walk-forward windows.

    Attributes:
        train: train window length (bars or period); with ``anchored`` the first window's length.
        test: test window length (bars or period).
        step: how far each next test window starts after the previous one (default: ``test``,
            so test windows tile the data without overlap); a shorter step is refused (each
            bar is stitched once), a longer one leaves gaps.
        embargo: bars dropped between each train window's end and its test window's start.
        anchored: train windows all start at the first bar (expanding) instead of rolling.
    """

    train: int | str = "2Y"
    test: int | str = "6M"
    step: int | str | None = None
    embargo: int = 5
    anchored: bool = False

    def __post_init__(self) -> None:
        kinds = {isinstance(x, int) for x in self._lengths()}
        if len(kinds) > 1:
            raise ConfigError(f"--train {self.train!r}, --test {self.test!r} and --step {self.step!r} "
                              "must all be bars or all be periods; mixing them is ambiguous.")
        if isinstance(self.embargo, bool) or not isinstance(self.embargo, int) or self.embargo < 0:
            raise ConfigError(f"--embargo {self.embargo!r} must be a whole number of bars >= 0 "
                              "(at least the label horizon).")
        _, test, step = self._lengths()
        if self.step is not None and _shorter(step, test):
            raise ConfigError(f"--step {self.step} is shorter than --test {self.test}: test windows "
                              "would overlap and their bars count twice; use --step "
                              f"{self.test} or longer (or leave --step out: it defaults to --test).")

    def folds(self, index: pd.DatetimeIndex) -> list[Fold]:
        """Every window that has a full train window and at least one test bar.

        Raises:
            ConfigError: the index is not sorted, or too short for one fold.
        """
        index = pd.DatetimeIndex(index)
        if not index.is_monotonic_increasing or index.has_duplicates:
            raise ConfigError("the index to split must be sorted and unique (normalised prices).")
        bounds = self._bar_bounds(len(index)) if self._in_bars() else self._period_bounds(index)
        folds = [self._fold(i, index, *b) for i, b in enumerate(bounds)]
        if not folds:
            raise ConfigError(f"{len(index)} bars ({index[0]:%Y-%m-%d} to {index[-1]:%Y-%m-%d}) are "
                              f"too few for --train {self.train} + --embargo {self.embargo} + "
                              f"--test {self.test}; use shorter windows or more data.")
        return folds

    def split(self, index: pd.DatetimeIndex) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_positions, test_positions)`` per fold, as scikit-learn splitters do."""
        for fold in self.folds(index):
            yield fold.train, fold.test

    def get_n_splits(self, index: pd.DatetimeIndex) -> int:
        """Number of folds over ``index``."""
        return len(self.folds(index))

    def _in_bars(self) -> bool:
        return isinstance(parse_length(self.train, "--train"), int)

    def _lengths(self) -> tuple[object, object, object]:
        step = self.step if self.step is not None else self.test
        return (parse_length(self.train, "--train"), parse_length(self.test, "--test"),
                parse_length(step, "--step"))

    def _bar_bounds(self, n: int) -> list[tuple[int, int, int, int]]:
        train, test, step = self._lengths()
        out, test_start = [], train + self.embargo
        while test_start < n:
            train_end = test_start - self.embargo
            out.append((0 if self.anchored else train_end - train, train_end,
                        test_start, min(test_start + test, n)))
            test_start += step
        return out

    def _period_bounds(self, index: pd.DatetimeIndex) -> list[tuple[int, int, int, int]]:
        train, test, step = self._lengths()
        out, start = [], index[0] + train
        while start <= index[-1]:
            test_lo = int(index.searchsorted(start, side="left"))
            test_hi = int(index.searchsorted(start + test, side="left"))
            train_lo = 0 if self.anchored else int(index.searchsorted(start - train, side="left"))
            train_hi = test_lo - self.embargo
            if train_hi > train_lo and test_hi > test_lo:
                out.append((train_lo, train_hi, test_lo, test_hi))
            start = start + step
        return out

    @staticmethod
    def _fold(number: int, index: pd.DatetimeIndex, a: int, b: int, c: int, d: int) -> Fold:
        return Fold(number, np.arange(a, b), np.arange(c, d), index[a], index[b - 1], index[c],
                    index[d - 1])
