"""Headline performance metrics (QuantStats, but the Sharpe ratio is
:func:`llmbt.engine.metrics.sharpe_ratio`, the one the runner and the significance tests use) and the terminal
table (rich)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from rich.console import Console
from rich.table import Table

from llmbt.engine.metrics import sharpe_ratio
from llmbt.reports._qs import naive, quantstats

#: Name → (QuantStats stats function, or a function of (returns, periods per year); format).
#: The README's metric list is tested against this.
METRICS: dict[str, tuple[str | Callable[[pd.Series, float], float], str]] = {
    "Total return": ("comp", "{:.2%}"),
    "CAGR": ("cagr", "{:.2%}"),
    "Sharpe": (sharpe_ratio, "{:.2f}"),
    "Sortino": ("sortino", "{:.2f}"),
    "Max drawdown": ("max_drawdown", "{:.2%}"),
    "Calmar": ("calmar", "{:.2f}"),
    "Volatility (ann.)": ("volatility", "{:.2%}"),
    "Win rate (bars)": ("win_rate", "{:.2%}"),
}


def headline_metrics(returns: pd.Series, periods: float = 252.0) -> dict[str, float]:
    """Compute :data:`METRICS` for one return series (simple per-bar returns)."""
    qs = quantstats()
    r = naive(returns)
    out = {}
    for name, (func, _) in METRICS.items():
        if callable(func):
            out[name] = float(func(r, periods))
            continue
        kwargs = {"periods": int(round(periods))} if func in ("sortino", "volatility") else {}
        out[name] = float(getattr(qs.stats, func)(r, **kwargs))
    return out


def metrics_table(series: dict[str, pd.Series], periods: float = 252.0,
                  extra: dict[str, dict[str, str]] | None = None) -> Table:
    """A rich table with one column per named return series."""
    table = Table(title="Backtest metrics", show_lines=False)
    table.add_column("Metric")
    values = {name: headline_metrics(r, periods) for name, r in series.items()}
    for name in series:
        table.add_column(name, justify="right")
    for metric, (_, fmt) in METRICS.items():
        table.add_row(metric, *(fmt.format(values[n][metric]) for n in series))
    for row, cells in (extra or {}).items():
        table.add_row(row, *(cells.get(n, "") for n in series))
    return table


def print_metrics(series: dict[str, pd.Series], periods: float = 252.0,
                  extra: dict[str, dict[str, str]] | None = None, console: Console | None = None) -> None:
    """Render :func:`metrics_table` on ``console`` (default: stdout), for the ``bt`` commands."""
    (console or Console()).print(metrics_table(series, periods, extra))
