"""``bt strategies`` command: list the registered strategies and their parameters."""

from __future__ import annotations

import click

from llmbt.cli.base import cli


@cli.command("strategies")
def strategies_cmd() -> None:
    """List the registered strategies and their parameters."""
    from llmbt.strategies.registry import available, get_strategy

    for name in available():
        cls = get_strategy(name)
        params = ", ".join(f"{k}={v!r}" for k, v in cls.params._getitems())
        click.echo(f"{name:<20} {params}")
