"""``bt run`` command: run one backtest, print its metrics and write a QuantStats tearsheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llmbt.cli.base import build_config, cli, run_options


@cli.command()
@run_options
@click.option("--report", type=click.Path(dir_okay=False),
              help="Tearsheet HTML path (default out/<strategy>-<run id>.html).")
@click.option("--no-report", is_flag=True, help="Skip the HTML tearsheet.")
@click.option("--save-config", type=click.Path(dir_okay=False), help="Write the resolved config "
              "as YAML (reusable with --config).")
@click.option("--jitter", type=int, default=0, help="Portfolio runs: re-run N times from the "
              "cached scores plus the scoring precision's numeric error; report the Sharpe's spread "
              "and the share of identical fills (no model call).")
@click.option("--jitter-sigma", type=float, default=None, help="The noise's standard deviation "
              "(default: what `bt bench scoring --precisions` measured and stored).")
def run(report: str | None, no_report: bool, save_config: str | None, jitter: int,
        jitter_sigma: float | None, **kwargs) -> None:
    """Run one backtest, print its metrics and write a QuantStats tearsheet.

    Example: bt run --strategy sma_cross --data sample:GOOG --start 2010-01-01 --report out/goog.html
    """
    from llmbt.cli.report import report_portfolio, report_run
    from llmbt.engine.portfolio_run import is_portfolio, run_portfolio_backtest
    from llmbt.engine.runner import run_backtest
    from llmbt.experiments.jitter import check_jitter
    from llmbt.reports.tearsheet import check_report_path

    config = build_config(**kwargs)
    if save_config:
        Path(save_config).write_text(config.to_yaml())
    path = None if no_report else check_report_path(
        report or f"out/{config.strategy}-{config.run_id}.html")
    sigma = check_jitter(config, jitter, jitter_sigma)

    def header() -> None:  # once the inputs are loaded and checked: an error comes alone
        click.echo(f"run {config.run_id}: {config.strategy} on {config.data}")

    if is_portfolio(config.strategy):
        result = run_portfolio_backtest(config, on_start=header)
        report_portfolio(result, path)
        _record(config, result.run.returns, result.signal_info)
    else:
        result = run_backtest(config, on_start=header)
        report_run(result, path)
        _record(config, result.returns, result.signal_info)
    if jitter:
        from llmbt.experiments.jitter import jitter_portfolio

        click.echo("jitter: " + jitter_portfolio(config, jitter, sigma).line(config.strategy))


def _record(config: Any, returns: Any, info: dict[str, Any]) -> None:
    """Record the run in the trial ledger (:mod:`llmbt.experiments.trials`) and say how many trials the
    ledger holds on its data."""
    from llmbt.experiments.trial_ids import data_fingerprint
    from llmbt.experiments.trials import count_on, record_run

    if record_run(config, returns, info, "run"):
        count = count_on(data_fingerprint(config.to_dict()))
        click.echo(f"trial ledger: {count} trial{'s' * (count != 1)} on this data (bt trials list "
                   f"--data {config.data})")
