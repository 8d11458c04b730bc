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
    echo_facts(result.signal_info)
    click.echo(f"backtest took {result.seconds:.2f} s")
    if html is not None:
        path = write_tearsheet(result.returns, html, benchmark=result.benchmark_returns,
                               title=f"{result.config.strategy} on {result.config.data} "
                                     f"(run {result.run_id})", periods=ppy)
        click.echo(f"tearsheet: {path}")


def echo_facts(info: dict) -> None:
    """One ``key: value`` line per run fact; records kept for results folders (a model
    schedule's mapping, lists and mappings) are not printed."""
    for key, value in info.items():
        if not isinstance(value, list | dict):
            click.echo(f"{key}: {value}")


def report_portfolio(result, html: Path | None) -> None:
    """A portfolio run: metrics vs the equal-weight benchmark, the signal report (IC by horizon,
    quantile returns, turnover), per-symbol contributions; the tearsheet and signal page if asked."""
    from llmbt.reports import print_metrics
    from llmbt.reports.signal import contribution_table, signal_report

    run, bench, name = result.run, result.benchmark, result.config.strategy
    runs = {name: run} | ({str(bench.returns.name or "equal_weight"): bench} if bench else {})
    series = {n: r.returns for n, r in runs.items()}
    extra = {label: {n: fmt(r.stats) for n, r in runs.items()} for label, fmt in _PORTFOLIO_ROWS}
    print_metrics(series, periods_per_year(run.returns.index), extra)
    echo_facts(result.universe_info | result.signal_info)
    report = None
    if "score" in result.panels:  # equal_weight scores nothing
        from llmbt.reports.decay import with_decay

        cost = result.config.commission + result.config.slippage
        report = with_decay(signal_report(result.panels["score"], result.opens),
                            result.panels["score"], result.opens, cost)
    if report is not None:
        click.echo(report.to_text())
    click.echo(contribution_table(run.contributions))
    click.echo(f"backtest took {result.seconds:.2f} s")
    if html is not None and report is None:
        from llmbt.reports import write_tearsheet

        path = write_tearsheet(run.returns, html, benchmark=None, periods=periods_per_year(
            run.returns.index), title=f"{name} on {result.config.data} (run {result.run_id})")
        click.echo(f"tearsheet: {path}")
    elif html is not None:
        _write_portfolio_pages(result, report, html)


_PORTFOLIO_ROWS = (
    ("Fills", lambda s: f"{int(s['fills'])}"),
    ("Final value", lambda s: f"{s['final_value']:,.2f}"),
    ("Commission paid", lambda s: f"{s.get('commission', 0.0):,.2f}"),
    ("Turnover (daily)", lambda s: f"{s['turnover']:.1%}"),
    ("Gross exposure", lambda s: f"{s['exposure']:.1%}"),
    ("Rejected orders", lambda s: f"{int(s['rejected_orders'])}"),
)


def _write_portfolio_pages(result, report, html: Path) -> None:
    from llmbt.reports.portfolio_page import write_portfolio_page

    bench = result.benchmark.returns if result.benchmark else None
    paths = write_portfolio_page(html, returns=result.run.returns, benchmark=bench, report=report,
                                 contrib=result.run.contributions,
                                 periods=periods_per_year(result.run.returns.index),
                                 title=f"{result.config.strategy} on {result.config.data} "
                                       f"(run {result.run_id})", notes=_page_notes(result))
    for path in paths:
        click.echo(f"report: {path}")


def _page_notes(result) -> dict[str, str]:
    """The universe facts that bias the figures, for the pages."""
    info = result.universe_info | result.signal_info
    from llmbt.engine.eligibility import FACT_KEYS

    return {k: str(info[k]) for k in FACT_KEYS if info.get(k)}
