"""QuantStats HTML tearsheets."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from llmbt.errors import LlmbtError
from llmbt.reports._qs import naive, quantstats, quiet_plots

log = logging.getLogger(__name__)


def write_tearsheet(returns: pd.Series, path: str | Path, *, benchmark: pd.Series | None = None,
                    title: str | None = None, periods: float = 252.0) -> Path:
    """Write a QuantStats HTML tearsheet of ``returns`` against ``benchmark``.

    Args:
        returns: per-bar simple returns of the strategy; its ``name`` is the strategy's title.
        path: output HTML file; parent folders are created.
        benchmark: per-bar returns of the benchmark (its ``name`` is the benchmark's title).
        title: page title. periods: bars per year.

    Both series keep the whole run window, as the terminal table reads them: QuantStats' default
    ``match_dates`` would cut both to the later of their first non-zero returns (a strategy's first
    trade), so the page's benchmark would be another series over another window than the table's.

    When ``returns`` are :func:`flat` (an arm that never traded), the tearsheet is written without
    the benchmark (QuantStats cannot regress on it), with a warning logged and the reason in its title.

    Returns:
        The path written.
    """
    path = check_report_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    qs = quantstats()
    name = str(returns.name or "Strategy")
    kwargs = {"strategy_title": name, "title": title or name}
    if benchmark is not None and flat(returns):
        note = (f"{name}'s returns are flat (it never traded), so its regression on "
                f"{benchmark.name or 'the benchmark'} (R², alpha, beta) is undefined")
        log.warning("%s: %s; written without the benchmark", path, note)
        kwargs["title"] += f" (without the benchmark: {note})"
    elif benchmark is not None:
        kwargs |= {"benchmark": naive(benchmark), "benchmark_title": str(benchmark.name or "Benchmark")}
    with quiet_plots():
        qs.reports.html(naive(returns), output=str(path), periods_per_year=int(round(periods)),
                        match_dates=False, **kwargs)
    return path


def flat(returns: pd.Series) -> bool:
    """True when ``returns`` take fewer than two distinct values (NaN aside): QuantStats'
    regression on a benchmark (``R^2``) has no variance to work with and raises."""
    return naive(returns).dropna().nunique() < 2


def check_report_path(path: str | Path) -> Path:
    """``path`` as a Path, refused unless it is an HTML file (checked before a run starts).

    Raises:
        LlmbtError: ``path`` does not end in .html or .htm.
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise LlmbtError(f"--report {str(path)!r} must end in .html, e.g. --report out/run.html")
    return path
