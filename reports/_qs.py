"""The one place QuantStats is imported, with its known noise handled."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager

import pandas as pd


def quantstats():
    """Import QuantStats lazily (it is slow to import and unused by most commands)."""
    # QuantStats asks matplotlib for Arial, absent on most Linux machines: one warning per plot.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import quantstats as qs

    return qs


def naive(series: pd.Series) -> pd.Series:
    """QuantStats compares indexes with tz-naive ones: hand it UTC wall times without a zone."""
    s = series.astype(float).copy()
    if isinstance(s.index, pd.DatetimeIndex) and s.index.tz is not None:
        s.index = s.index.tz_convert("UTC").tz_localize(None)
    return s


@contextmanager
def quiet_plots():
    """Silence matplotlib's tick-label UserWarnings that QuantStats' plots trigger."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="quantstats")
        warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")
        warnings.filterwarnings("ignore", category=FutureWarning, module="quantstats")
        yield
