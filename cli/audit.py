"""``bt audit lookahead``: the engine check (signals unchanged when the future is cut off) and,
with ``--model-check``, the model check (the same run with and without ``--anonymize``)."""

from __future__ import annotations

import math

import click

from llmbt.cli.base import build_config, cli, run_options


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
        first = _mismatch(c.first) if c.first else "-"
        lines.append(f"{str(c.cut.date()):<12}{c.bars:>7}{c.values:>10}{c.mismatches:>12}  {first}")
    return "\n".join(lines)


def engine_verdict(audit) -> str:
    """``engine check passed ...`` or ``LOOK-AHEAD: ...`` naming the first changed value."""
    if audit.passed:
        values = sum(c.values for c in audit.checks)
        return (f"engine check passed: {values} values before {len(audit.checks)} cuts "
                "identical to the full run")
    cut, first = audit.first
    return f"LOOK-AHEAD: cutting the data at {cut.date()} changed {_mismatch(first)}"


def model_stats(check) -> dict:
    """IC (1-bar forward, open to open) and Sharpe of each arm, and original - anonymised
    differences with block-bootstrap CIs (paired daily ICs; paired daily returns)."""
    from llmbt.feeds.calendar import periods_per_year
    from llmbt.reports import crosssection as cs
    from llmbt.reports.signal import daily_ic, forward_returns

    arms = {"original": check.original, "anonymized": check.anonymized}
    ics = {name: daily_ic(r.panels["score"], forward_returns(r.opens, (1,))[1])
           for name, r in arms.items()}
    returns = {name: r.run.returns for name, r in arms.items()}
    ppy = periods_per_year(returns["original"].index)
    return {"arms": {name: {"ic": cs.ic_stats(ics[name]), "sharpe": r.run.stats["sharpe"]}
                     for name, r in arms.items()},
            "ic_diff": cs.paired_ic_difference(ics["original"], ics["anonymized"]),
            "sharpe_diff": cs.sharpe_difference_ci(returns["original"], returns["anonymized"], ppy),
            "hindsight": check.hindsight,
            "construction": check.original.signal_info.get("construction", "")}


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


def model_verdict(stats: dict) -> str:
    """Whether anonymising changed the result significantly (a sign of the model's hindsight)."""
    if stats.get("construction"):
        return ("model check: not evidence either way: the construction holds every name whatever "
                "the scores (see construction above)")
    moved = [name for name in ("ic_diff", "sharpe_diff") if stats[name]["significant"]]
    if not moved:
        return "model check: anonymising changed neither IC nor Sharpe significantly"
    what = " and ".join(n.removesuffix("_diff").replace("ic", "IC").replace("sharpe", "Sharpe")
                        for n in moved)
    return f"model check: anonymising changed {what} significantly: part of the result may be hindsight"


def _diff_line(what: str, d: dict, fmt: str) -> str:
    level = 1 - d["alpha"]
    ci = ("n/a" if not (math.isfinite(d["low"]) and math.isfinite(d["high"]))
          else f"[{d['low']:{fmt}}, {d['high']:{fmt}}]")
    return (f"{what} original - anonymised: {d['diff']:{fmt}}, {level:.0%} CI {ci}, "
            f"p {d['p_value']:.3f} ({d['n']} paired days)")


def _mismatch(m) -> str:
    return (f"{m.symbol} {m.date.date()} {m.column}: full {m.full!r}, truncated {m.truncated!r}")
