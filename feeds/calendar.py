"""Bar frequency: how many bars make a year, from the spacing of a price index.

Lives in ``feeds`` so that signals (volatility) and the engine (Sharpe) annualise the same way
without a lower layer importing a higher one.
"""

from __future__ import annotations

import pandas as pd


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the bar spacing: 252 for daily stocks, 365 for daily crypto, 12 monthly."""
    if len(index) < 3:
        return 252.0
    days = pd.Series(index).diff().median() / pd.Timedelta(days=1)
    trading_days = 365.25 if (index.day_of_week >= 5).mean() > 0.05 else 252.0
    if days >= 6:
        return 365.25 / days
    if days >= 0.9:
        return trading_days / round(days)
    return trading_days * len(index) / index.normalize().nunique()
