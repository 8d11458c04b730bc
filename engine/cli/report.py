"""``bt run``'s output: a :class:`RunResult` as terminal lines and a tearsheet (the reports package draws)."""

from __future__ import annotations

from pathlib import Path

import click

from llmbt.engine.runner import RunResult
from llmbt.feeds.calendar import periods_per_year


def report_run(result: RunResult, html: Path | None) -> None:
    """Print the metrics table, trade summary and signal info; write the tearsheet if asked."""
    from llmbt.reports import print_metrics, write_tearsheet

    series = {result.config.strategy: result.returns}
    if result.benchmark_returns is not None:
        series[str(result.benchmark_returns.name)] = result.benchmark_returns
    ppy = periods_per_year(result.returns.index)
    s = result.stats
    extra = {"Trades": {result.config.strategy: f"{int(s['trades'])}"},
             "Final value": {result.config.strategy: f"{s['final_value']:,.2f}"},
             "Exposure": {result.config.strategy: f"{s['exposure']:.1%}"},
             "Rejected orders": {result.config.strategy: f"{int(s['rejected_orders'])}"}}
    print_metrics(series, ppy, extra)
    if s["rejected_orders"]:
        click.echo(f"warning: the broker rejected {int(s['rejected_orders'])} order(s) for lack "
                   "of cash at the fill price (a gap above the sizer's headroom); lower --size")
    for key, value in result.signal_info.items():
        click.echo(f"{key}: {value}")
    click.echo(f"backtest took {result.seconds:.2f} s")
    if html is not None:
        path = write_tearsheet(result.returns, html, benchmark=result.benchmark_returns,
                               title=f"{result.config.strategy} on {result.config.data} "
                                     f"(run {result.run_id})", periods=ppy)
        click.echo(f"tearsheet: {path}")
