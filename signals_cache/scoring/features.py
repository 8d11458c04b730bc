"""Causal bar features for the bar-mode prompts.

Every value on row ``t`` is computed from bars ``0..t`` only (bar open time index, values known
at that bar's close): rolling windows are trailing, exponential averages use ``adjust=False``
and nothing is back-filled, so changing or appending future bars never changes past rows.

The frame returned by :func:`bar_features` keeps the index of the prices. The first
:data:`WARMUP_BARS` rows (the warm-up) are all NaN; use :func:`valid_mask` to select the rows
that carry features. ``vol_ratio`` alone may also be NaN after the warm-up (no traded volume, as
in FX feeds); such rows are still valid and the prompt shows the value as missing.

Values are rounded (see :data:`DECIMALS`) so that equal market situations give equal prompts,
which is what makes the signal cache effective.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmbt.errors import DataError

#: Rows before this position are warm-up (all NaN): the longest window is the 50-bar SMA.
WARMUP_BARS = 50

RSI_PERIOD = 14
ATR_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_PERIOD, BB_STD = 20, 2.0
VOLUME_PERIOD = 20

#: Feature columns in prompt order, with the number of decimals each is rounded to.
DECIMALS: dict[str, int] = {
    "ret_1": 1,  # % return over 1 bar
    "ret_5": 1,  # % return over 5 bars
    "ret_20": 1,  # % return over 20 bars
    "rsi_14": 0,  # Wilder RSI(14), 0..100
    "macd_hist": 2,  # MACD(12,26,9) histogram as % of close
    "dist_sma20": 1,  # % distance of close above SMA20
    "dist_sma50": 1,  # % distance of close above SMA50
    "atr_14": 1,  # Wilder ATR(14) as % of close
    "bb_pctb": 1,  # Bollinger %B (20, 2 sigma): 0 = lower band, 1 = upper band
    "vol_ratio": 1,  # volume / trailing 20-bar average volume (current bar included)
}
FEATURES: tuple[str, ...] = tuple(DECIMALS)
#: Features that may be NaN after warm-up without making the row invalid.
OPTIONAL_FEATURES: frozenset[str] = frozenset({"vol_ratio"})

_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


def bar_features(prices: pd.DataFrame) -> pd.DataFrame:
    """Rounded causal features of every bar, indexed like ``prices``.

    Args:
        prices: normalised prices (sorted DatetimeIndex; open/high/low/close/volume columns).

    Returns:
        One column per name in :data:`FEATURES`; warm-up rows (the first :data:`WARMUP_BARS`)
        are NaN.

    Raises:
        DataError: missing columns, unsorted index, NaN prices, or too few bars for the warm-up.
    """
    return round_features(raw_bar_features(prices))


def raw_bar_features(prices: pd.DataFrame) -> pd.DataFrame:
    """The same features as :func:`bar_features`, unrounded (for checks and research)."""
    _validate(prices)
    close = prices["close"].astype(float)
    sma20 = close.rolling(BB_PERIOD).mean()
    columns = {
        "ret_1": _pct_return(close, 1),
        "ret_5": _pct_return(close, 5),
        "ret_20": _pct_return(close, 20),
        "rsi_14": rsi(close, RSI_PERIOD),
        "macd_hist": macd_histogram(close) / close * 100.0,
        "dist_sma20": (close / sma20 - 1.0) * 100.0,
        "dist_sma50": (close / close.rolling(50).mean() - 1.0) * 100.0,
        "atr_14": atr(prices, ATR_PERIOD) / close * 100.0,
        "bb_pctb": bollinger_pctb(close, sma20),
        "vol_ratio": volume_ratio(prices["volume"].astype(float)),
    }
    frame = pd.DataFrame(columns, index=prices.index)
    frame.iloc[:WARMUP_BARS] = np.nan
    return frame


def round_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Round each column to its :data:`DECIMALS`; ``-0.0`` becomes ``0.0``."""
    rounded = {name: raw[name].round(places) + 0.0 for name, places in DECIMALS.items()}
    return pd.DataFrame(rounded, index=raw.index)


def valid_mask(features: pd.DataFrame) -> pd.Series:
    """True for rows past the warm-up whose required features are all present."""
    required = [name for name in FEATURES if name not in OPTIONAL_FEATURES]
    return features[required].notna().all(axis=1)


def wilder_mean(values: pd.Series, period: int) -> pd.Series:
    """Wilder's smoothing: seeded by the simple mean of the first ``period`` values.

    Leading NaNs are skipped; the first output is at the ``period``-th valid value.
    """
    present = values.notna().to_numpy()
    seeded = pd.Series(np.nan, index=values.index, dtype=float)
    start = int(present.argmax())
    seed_at = start + period - 1
    if not present.any() or seed_at >= len(values):
        return seeded
    seeded.iloc[seed_at] = values.iloc[start : seed_at + 1].mean()
    seeded.iloc[seed_at + 1 :] = values.iloc[seed_at + 1 :].to_numpy()
    return seeded.ewm(alpha=1.0 / period, adjust=False).mean()


def rsi(close: pd.Series, period: int = RSI_PERIOD) -> pd.Series:
    """Wilder RSI; 100 when there were no losses, 50 when the price did not move at all."""
    delta = close.diff()
    gain = wilder_mean(delta.clip(lower=0.0), period)
    loss = wilder_mean((-delta).clip(lower=0.0), period)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + gain / loss)
    value = value.mask((loss == 0) & (gain > 0), 100.0)
    return value.mask((loss == 0) & (gain == 0), 50.0)


def macd_histogram(close: pd.Series) -> pd.Series:
    """MACD line minus its signal line (exponential averages with ``adjust=False``)."""
    fast = close.ewm(span=MACD_FAST, adjust=False).mean()
    slow = close.ewm(span=MACD_SLOW, adjust=False).mean()
    line = fast - slow
    return line - line.ewm(span=MACD_SIGNAL, adjust=False).mean()


def atr(prices: pd.DataFrame, period: int = ATR_PERIOD) -> pd.Series:
    """Wilder average true range; the first bar's true range is its high-low range."""
    high, low = prices["high"].astype(float), prices["low"].astype(float)
    prev_close = prices["close"].astype(float).shift(1)
    ranges = pd.concat([high - low, (high - prev_close).abs(), (low - prev_close).abs()], axis=1)
    return wilder_mean(ranges.max(axis=1), period)


def bollinger_pctb(close: pd.Series, sma: pd.Series | None = None) -> pd.Series:
    """Bollinger %B with population standard deviation; 0.5 when the band has zero width."""
    mid = close.rolling(BB_PERIOD).mean() if sma is None else sma
    width = 2.0 * BB_STD * close.rolling(BB_PERIOD).std(ddof=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pctb = (close - (mid - width / 2.0)) / width
    return pctb.mask(width == 0, 0.5)


def volume_ratio(volume: pd.Series) -> pd.Series:
    """Volume over its trailing average; NaN when the average is zero (no traded volume)."""
    average = volume.rolling(VOLUME_PERIOD).mean()
    return (volume / average.where(average > 0)).astype(float)


def _pct_return(close: pd.Series, bars: int) -> pd.Series:
    return (close / close.shift(bars) - 1.0) * 100.0


def _validate(prices: pd.DataFrame) -> None:
    missing = [name for name in _PRICE_COLUMNS if name not in prices.columns]
    if missing:
        raise DataError(
            f"prices lack column(s) {missing}; got {list(prices.columns)}. "
            "Pass a normalised frame with open/high/low/close/volume."
        )
    needed = WARMUP_BARS + 1
    if len(prices) < needed:
        raise DataError(
            f"bar features need at least {needed} bars ({WARMUP_BARS}-bar warm-up + 1), "
            f"got {len(prices)}. Load a longer history."
        )
    if not prices.index.is_monotonic_increasing:
        raise DataError("prices index is not sorted by time; sort it (prices.sort_index()).")
    bad = prices[["high", "low", "close"]].isna().any(axis=1)
    if bad.any():
        raise DataError(
            f"prices have {int(bad.sum())} bar(s) with NaN high/low/close, first at "
            f"{prices.index[bad.argmax()]}; drop or fill them before computing features."
        )
