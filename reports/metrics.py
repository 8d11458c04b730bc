"""Headline performance metrics (QuantStats, but the Sharpe ratio is
:func:`llmbt.engine.metrics.sharpe_ratio`, the one the runner and the significance tests use) and the terminal
table (rich)."""

from __future__ import annotations

import io
import math
import numbers
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


#: How the rows of a comparison print, :data:`METRICS` as in ``bt run``: shares and rates as
#: percentages, ratios, scores and PSR/DSR to 2 decimals; a row named nowhere prints to 4 digits.
ROW_FORMATS: dict[str, str] = {fmt_name: fmt for fmt_name, (_, fmt) in METRICS.items()} | {
    "Directional accuracy": "{:.2%}", "Profitable signals": "{:.2%}", "Mean confidence": "{:.2%}",
    "Calibration error (ECE)": "{:.2%}", "Label accuracy": "{:.2%}", "Exposure": "{:.1%}",
    "Turnover (trades/yr)": "{:.1f}", "Macro F1": "{:.2f}", "Macro F1 (mean of folds)": "{:.2f}",
    "ms per scored item": "{:.1f}", "Cache hit rate": "{:.1%}",
    "PSR (SR > 0)": "{:.2f}", "DSR": "{:.2f}",  # probabilities, as the significance sentences say them
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


def frame_table(frame: pd.DataFrame, title: str) -> Table:
    """A rich table of a metric × name ``frame`` (as :attr:`llmbt.reports.compare.Comparison.metrics`),
    each row formatted by :data:`ROW_FORMATS`; a missing value (NaN) is a blank cell."""
    table = Table(title=title, show_lines=False)
    table.add_column("Metric")
    for name in frame.columns:
        table.add_column(str(name), justify="right")
    for metric, row in frame.iterrows():
        fmt = ROW_FORMATS.get(str(metric), "{:.4g}")
        table.add_row(str(metric), *(_cell(fmt, value) for value in row))
    return table


def _cell(fmt: str, value: object) -> str:
    if not isinstance(value, numbers.Real):
        return str(value)
    return fmt.format(value) if math.isfinite(value) else ""


def table_text(table: Table) -> str:
    """``table`` as plain text, drawn as wide as it needs (no colour, no terminal width)."""
    console = Console(file=io.StringIO(), width=1000, color_system=None)
    console.print(table)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines())
