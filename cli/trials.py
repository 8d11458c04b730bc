"""``bt trials`` commands: the trial ledger (:mod:`llmbt.experiments.trials`), every backtest run, which the
Deflated Sharpe of ``bt compare`` and ``bt walkforward`` counts."""

from __future__ import annotations

from typing import Any

import click

from llmbt.cli.base import cli

#: ``bt trials list`` columns: (header, width).
COLUMNS = (("when (UTC)", 16), ("command", 22), ("strategy", 18), ("data", 30), ("period", 22),
           ("Sharpe", 7), ("run id", 12))


@cli.group()
def trials() -> None:
    """The trial ledger: every backtest run ($LLMBT_HOME/trials), counted by the Deflated Sharpe."""


@trials.command("list")
@click.option("--data", help="Only trials on this data: a source as given to --data (sample:GOOG) "
              "or the start of a data fingerprint.")
@click.option("--strategy", help="Only trials of this strategy.")
def trials_list(data: str | None, strategy: str | None) -> None:
    """A table of the recorded trials, oldest first: when, command (and arm), strategy, data,
    period (first..last traded bar), annualised Sharpe and the command's run id.

    Example: bt trials list --data sample:GOOG
    """
    from llmbt.experiments.trials import ledger_path, list_trials

    found = list_trials(data=data, strategy=strategy)
    if not found:
        click.echo(f"no trials recorded{_which(data, strategy)} (ledger {ledger_path()})")
        return
    click.echo("  ".join(f"{name:<{width}}" for name, width in COLUMNS).rstrip())
    for trial in found:
        click.echo("  ".join(f"{_cut(value, width):<{width}}"
                             for value, (_, width) in zip(_row(trial), COLUMNS, strict=True)).rstrip())
    datas = len({t.data for t in found})
    click.echo(f"{len(found)} trial{'s' * (len(found) != 1)} on {datas} data fingerprint"
               f"{'s' * (datas != 1)}{_which(data, strategy)}; ledger {ledger_path()}")


@trials.command("clear")
@click.option("--data", help="Only trials on this data: a source (sample:GOOG) or the start of a "
              "data fingerprint.")
@click.option("--before", metavar="DATE", help="Only trials recorded before DATE (YYYY-MM-DD, UTC).")
@click.option("--yes", is_flag=True, help="Clear every trial without asking.")
def trials_clear(data: str | None, before: str | None, yes: bool) -> None:
    """Remove trials from the ledger: all of them (asks first, unless --yes), or those of --data
    and/or recorded --before a date. Later Deflated Sharpe ratios no longer count them.

    Example: bt trials clear --data sample:GOOG --before 2026-01-01
    """
    from llmbt.experiments.trials import clear

    if not (data or before or yes):
        click.confirm("Remove every trial of the ledger (later DSRs will not count them)?", abort=True)
    removed = clear(data=data, before=before)
    click.echo(f"removed {removed} trial{'s' * (removed != 1)}{_which(data, None)}"
               + (f" recorded before {before}" if before else ""))


def _which(data: str | None, strategy: str | None) -> str:
    return (f" on {data}" if data else "") + (f" of {strategy}" if strategy else "")


def _row(trial: Any) -> list[str]:
    """A trial's cells, in :data:`COLUMNS` order."""
    command = trial.command + (f" {trial.arm}" if trial.arm else "")
    period = f"{_bar(trial.first_bar)}..{_bar(trial.last_bar)}"
    return [trial.created[:16].replace("T", " "), command, trial.strategy,
            f"{_cut(trial.source, 21, tail=True)} [{trial.data[:6]}]", period, f"{trial.sharpe:+.2f}",
            trial.run_id]


def _bar(text: str) -> str:
    """A bar time as a date, with the time only when it is not midnight."""
    day, _, time = text.rstrip("Z").partition("T")
    return day if time in ("", "00:00:00") else f"{day} {time[:5]}"


def _cut(text: str, width: int, tail: bool = False) -> str:
    """``text`` shortened to ``width`` characters (an ellipsis marks the cut), its start kept, or
    its end with ``tail`` (a file path's name)."""
    if len(text) <= width:
        return text
    return "…" + text[1 - width:] if tail else text[: width - 1] + "…"
