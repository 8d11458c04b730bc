"""The one Sharpe ratio of llmbt, and the number checks it shares with ``llmbt.reports.stats``.

The runner's stats, the metric table of ``bt run`` / ``bt compare`` (``llmbt.reports.metrics``) and the
significance tests (``llmbt.reports.stats``) all call :func:`sharpe_ratio`; it lives in the engine so that
the engine never imports ``reports`` for it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmbt.errors import LlmbtError
from llmbt.feeds import calendar

ArrayLike = pd.Series | np.ndarray | list


def bars_per_year(index: pd.DatetimeIndex) -> float:
    """Bars a year of ``index`` (:func:`llmbt.feeds.calendar.periods_per_year`, the one rule),
    for the reports, which do not read feeds."""
    return calendar.periods_per_year(index)


def float_series(x: ArrayLike, name: str) -> pd.Series:
    """``x`` as a float Series (arrays get a RangeIndex, None becomes NaN); error if not numeric."""
    s = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x, dtype=object).ravel())
    try:
        if s.dtype == object:
            s = pd.to_numeric(s.where(s.notna(), np.nan).astype(float), errors="raise")
        return s.astype(float)
    except (TypeError, ValueError) as exc:
        raise LlmbtError(f"{name} must hold numbers (NaN/None for missing); got values such as "
                         f"{s.iloc[:3].tolist()}. Pass per-period returns or True/False hits.") from exc


def finite_values(returns: ArrayLike, name: str = "returns") -> np.ndarray:
    """The values of ``returns`` as a float array, NaN dropped."""
    v = float_series(returns, name).to_numpy()
    return v[~np.isnan(v)]


def positive(value: float, name: str, minimum: float = 0.0) -> float:
    """``value`` as a float if it is a finite number > 0 (or >= ``minimum`` when one is given)."""
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value)
            and (value >= minimum if minimum else value > 0)):
        raise LlmbtError(f"{name} must be a number {f'>= {minimum:g}' if minimum else '> 0'}; got {value!r}.")
    return float(value)


def sharpe_ratio(returns: ArrayLike, periods_per_year: float = 252) -> float:
    """Annualised Sharpe ratio ``mean / std * sqrt(periods_per_year)`` (std with ddof=1, no risk-free);
    NaN with fewer than 2 values or zero standard deviation (a run that never trades).

    Args:
        returns: simple per-period returns; NaN are dropped.
        periods_per_year: bars a year, not rounded (252 daily stocks, 365.25 daily crypto); 1 for the
            per-period (non-annualised) ratio.
    """
    ppy, r = positive(periods_per_year, "periods_per_year"), finite_values(returns)
    sd = r.std(ddof=1) if len(r) >= 2 else 0.0
    return float(r.mean() / sd * math.sqrt(ppy)) if sd > 0 else float("nan")
