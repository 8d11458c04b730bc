"""``bt audit lookahead``: the engine check (signals unchanged when the future is cut off) and,
with ``--model-check``, the model check (the same run with and without ``--anonymize``)."""

from __future__ import annotations

import click

from llmbt.cli.base import build_config, cli, run_options
from llmbt.reports.audit import engine_verdict, mismatch_words


@cli.group()
def audit() -> None:
    """Audits of a run configuration against look-ahead."""


@audit.command("lookahead")
@run_options
@click.option("--cuts", type=click.IntRange(min=1), default=5, show_default=True,
              help="Random dates the data (bars and headlines) is truncated at.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the cut dates.")
@click.option("--model-check", is_flag=True, help="Also run the portfolio with and without "
              "--anonymize (needs --names) and compare IC and Sharpe with CIs. The anonymised "
              "headlines are new prompts: every headline of the run is scored again by the "
              "model (~16k for 30 symbols over 2015-2016; minutes to hours on a CPU).")
def lookahead(cuts: int, seed: int, model_check: bool, **kwargs) -> None:
    """Prove the run's past signals and weights never change when the future is removed; with
    --model-check, show how much of its IC and Sharpe may be the model's hindsight.

    Exits 1 naming the first changed value (symbol, date, column) when the engine check fails.

    Example: bt audit lookahead --strategy llm_news_portfolio --data csv:prices.csv.gz
    --symbols top30.txt --news news.csv.gz --start 2015-01-01 --end 2016-12-30 --cuts 5
    """
    from llmbt.experiments import audit as run_audit
    from llmbt.reports.audit import model_stats, model_verdict

    config = build_config(**kwargs)
    click.echo(f"audit lookahead {config.run_id}: {config.strategy} on {config.data}")
    engine = run_audit.audit_engine(config, cuts=cuts, seed=seed)
    click.echo(engine_table(engine))
    verdicts = [engine_verdict(engine)]
    if model_check:
        stats = model_stats(run_audit.model_check(config))
        click.echo(model_table(stats))
        verdicts.append(model_verdict(stats))
    click.echo("verdict: " + "; ".join(verdicts))
    if not engine.passed:
        raise click.exceptions.Exit(1)


def engine_table(audit) -> str:
    """One row per cut: bars and values compared, mismatches, the first changed value."""
    lines = [f"engine check: {', '.join(audit.columns)} recomputed with bars and headlines "
             f"from each cut on removed ({audit.seconds:.1f} s)",
             f"{'cut':<12}{'bars':>7}{'values':>10}{'mismatches':>12}  first mismatch"]
    for c in audit.checks:
        first = mismatch_words(c.first) if c.first else "-"
        lines.append(f"{str(c.cut.date()):<12}{c.bars:>7}{c.values:>10}{c.mismatches:>12}  {first}")
    return "\n".join(lines)


def model_table(stats: dict) -> str:
    """The two arms' IC and Sharpe, the differences with CIs, and the hindsight line."""
    lines = ["model check: the same run with original and with anonymised headlines",
             f"{'arm':<12}{'mean IC':>9}{'t-stat':>8}{'days':>6}{'Sharpe':>8}"]
    for name, arm in stats["arms"].items():
        ic = arm["ic"]
        lines.append(f"{name:<12}{ic['mean_ic']:>9.4f}{ic['t_stat_nonoverlap']:>8.2f}"
                     f"{ic['days']:>6}{arm['sharpe']:>8.2f}")
    lines.append(_diff_line("IC", stats["ic_diff"], ".4f"))
    lines.append(_diff_line("Sharpe", stats["sharpe_diff"], ".2f"))
    if stats.get("construction"):
        lines.append(f"construction: {stats['construction']}")
    lines.append(f"hindsight: {stats['hindsight']}")
    return "\n".join(lines)


def _diff_line(what: str, d: dict, fmt: str) -> str:
    from llmbt.reports.audit import difference_words

    return f"{what} original - anonymised: {difference_words(d, fmt, 3)} ({d['n']} paired days)"

