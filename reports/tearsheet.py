"""QuantStats HTML tearsheets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmbt.errors import LlmbtError
from llmbt.reports._qs import naive, quantstats, quiet_plots


def write_tearsheet(returns: pd.Series, path: str | Path, *, benchmark: pd.Series | None = None,
                    title: str | None = None, periods: float = 252.0) -> Path:
    """Write a QuantStats HTML tearsheet of ``returns`` against ``benchmark``.

    Args:
        returns: per-bar simple returns of the strategy; its ``name`` is the strategy's title.
        path: output HTML file; parent folders are created.
        benchmark: per-bar returns of the benchmark (its ``name`` is the benchmark's title).
        title: page title. periods: bars per year.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise LlmbtError(f"--report {str(path)!r} must end in .html, e.g. --report out/run.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    qs = quantstats()
    kwargs = {"strategy_title": str(returns.name or "Strategy")}
    bench = None
    if benchmark is not None:
        bench = naive(benchmark)
        kwargs["benchmark_title"] = str(benchmark.name or "Benchmark")
    with quiet_plots():
        qs.reports.html(naive(returns), benchmark=bench, output=str(path),
                        title=title or kwargs["strategy_title"], periods_per_year=int(round(periods)),
                        **kwargs)
    return path
