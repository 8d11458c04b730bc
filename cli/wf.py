"""``bt walkforward`` and ``bt compare``: thin commands that build configs, call the engine and reports."""

from __future__ import annotations

from pathlib import Path

import click

from llmbt.cli.base import build_config, cli, run_options
from llmbt.errors import ConfigError


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, object]:
    """``("max_steps=30", "lr=1e-3")`` → ``{"max_steps": 30, "lr": 0.001}`` (YAML scalars)."""
    import yaml

    out: dict[str, object] = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r} must look like key=value, e.g. {flag} max_steps=30")
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


def _arms(specs: tuple[str, ...]) -> tuple:
    """``--arm`` specs parsed as ``bt compare --arm`` parses them, an error naming the spec."""
    from llmbt.experiments.arms import parse_arm

    arms = []
    for spec in specs:
        try:
            arms.append(parse_arm(spec))
        except ConfigError as exc:
            raise ConfigError(str(exc) if spec in str(exc) else f"--arm {spec!r}: {exc}") from exc
    return tuple(arms)


def trials_option(func):
    """``--trials ledger|run``: what the Deflated Sharpe counts."""
    return click.option(
        "--trials", type=click.Choice(["ledger", "run"]), default="ledger", show_default=True,
        help="Trials the Deflated Sharpe counts: ledger (every configuration the trial ledger "
             "holds on this data over overlapping periods, this command's arms included; see bt "
             "trials list) or run (only this command's arms).")(func)


@cli.command()
@run_options
@click.option("--train", "train_len", default="252", show_default=True,
              help="Train window: bars (252) or a period (1Y, 6M).")
@click.option("--test", "test_len", default="63", show_default=True, help="Test window: bars or period.")
@click.option("--step", default=None, help="Distance between test windows' starts, at least --test "
              "(default: --test).")
@click.option("--embargo", default=5, show_default=True, help="Bars dropped between train and test.")
@click.option("--anchored", is_flag=True, help="Expanding train windows from the first bar.")
@click.option("--horizon", default=5, show_default=True, help="Label horizon in bars.")
@click.option("--warm-start", is_flag=True, help="Start each fold's adapter from the previous one's.")
@click.option("--train-param", "train_params", multiple=True, metavar="KEY=VALUE",
              help="Fine-tuning setting, repeatable: --train-param max_steps=60 (see bt finetune).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failing fold.")
@click.option("--max-val", default=256, show_default=True,
              help="Validation examples per fold at most (evenly spaced over the validation block; "
                   "0 = all).")
@click.option("--executor", default="serial", show_default=True,
              help="Where folds run: serial (here, in turn) or ray (parallel Ray tasks, a local Ray "
                   "unless --ray-address; same trades and run id; needs pip install -e .[ray]). "
                   "--warm-start chains folds, so it is refused with ray.")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Ray cluster for --executor ray, e.g. 10.0.0.5:6379 or auto (ray start --head "
                   "prints it); tasks get a GPU each when the cluster has GPUs.")
@click.option("--arm", "arms", multiple=True, metavar="SPEC",
              help="An extra arm, repeatable, as bt compare --arm (one symbol: text scorers read "
                   "the bar's feature lines): "
                   "name=emb,kind=embeddings (a head trained per fold), name=cls,kind=seqcls (a "
                   "seqcls LoRA per fold, --train-param budget), lexicon, or a model arm "
                   "(name=..,model=..,prompt=..); no adapter= (trained per fold, or unseen).")
@click.option("--head-param", "head_params", multiple=True, metavar="KEY=VALUE",
              help="Setting of the per-fold embedding heads, repeatable: --head-param layers=[14,18] "
                   "(see bt head train).")
@click.option("--out", default=None, help="Results folder (default out/walkforward-<run id>).")
@trials_option
def walkforward(train_len, test_len, step, embargo, anchored, horizon, warm_start, train_params,
                fail_fast, max_val, executor, ray_address, arms, head_params, out, trials,
                **kwargs) -> None:
    """Walk-forward: per fold fine-tune on the train window, backtest base and LoRA on the test window.

    With a universe strategy (llm_news_portfolio, --data a universe, --symbols, --news) each fold
    trains on the headlines of all symbols, labelled by excess return over the equal-weight universe,
    and both arms trade the universe; the report adds the daily IC per fold and the cross-section tests.
    Each --arm is trained on every fold's training window where its kind needs it (embeddings:
    a head; seqcls: a classification-head LoRA) and trades the test window too; the SPA / StepM
    and the Deflated Sharpe count every arm (N = base + LoRA + the --arm arms). With one symbol
    the Deflated Sharpe counts every arm and each gets a paired Sharpe difference CI against base.

    Examples: bt walkforward --strategy llm_sentiment --data sample:GOOG;
    bt walkforward --strategy llm_news_portfolio --data csv:prices.csv.gz --symbols AAPL,MSFT,...
    --news headlines.csv.gz --news-tz America/New_York --start 2015-01-02 --train 6M --test 3M
    --arm lexicon --arm name=emb,kind=embeddings
    """
    from llmbt.experiments.results import write_results
    from llmbt.experiments.splitters import WalkForward
    from llmbt.experiments.trials import record_walkforward
    from llmbt.experiments.walkforward import WalkForwardConfig, run_walkforward

    kwargs["strategy"] = kwargs.get("strategy") or "llm_sentiment"
    splitter = WalkForward(train=train_len, test=test_len, step=step, embargo=embargo, anchored=anchored)
    cfg = WalkForwardConfig(run=build_config(**kwargs), splitter=splitter, horizon=horizon,
                            train=_pairs(train_params, "--train-param"), warm_start=warm_start,
                            fail_fast=fail_fast, max_val=max_val, executor=executor,
                            ray_address=ray_address, arms=_arms(arms),
                            head=_pairs(head_params, "--head-param"))
    folder = Path(out or f"out/walkforward-{cfg.run_id}")
    result = run_walkforward(cfg, say=click.echo)
    write_results(result, folder, trials=record_walkforward(result))  # each arm a trial of the ledger
    _report(folder, trials)
    click.echo(f"walk-forward took {result.seconds:.0f} s; results in {folder}")


def _report(folder: Path, trials: str) -> None:
    """Statistics, comparison page and tearsheet of a results folder (``bt compare --from``);
    ``trials``: what the DSR counts (``--trials``)."""
    import json

    from llmbt.reports.compare import compare_results

    config = Path(folder) / "config.json"  # absent: read_results names the folder and what to pass
    if config.is_file() and json.loads(config.read_text()).get("universe"):
        from llmbt.reports.universe_wf import report_walkforward

        report_walkforward(folder, say=click.echo, trials=trials)  # per-fold IC, cross-section tests
        return
    compare_results(folder, say=click.echo, trials=trials)


@cli.command()
@run_options
@click.option("--from", "folder", type=click.Path(exists=True, file_okay=False),
              help="Results folder of a bt walkforward run (compares its base and LoRA models; "
                   "a universe run: per-fold IC and the cross-section tests) or of a bt compare "
                   "--arm (its arms again).")
@click.option("--arm", "arms", multiple=True, metavar="SPEC",
              help="A model variant, repeatable: a model (smollm2-135m) or name=..,model=..,"
                   "adapter=..,prompt=.. (e.g. name=fewshot,prompt=bars-fewshot-v1); an arm "
                   "without adapter= is the plain model.")
@click.option("--horizon", default=5, show_default=True,
              help="Label horizon (bars) for signal quality; McNemar uses one bar in this many.")
@click.option("--out", default=None, help="Output folder for --arm (default out/compare-<run id>).")
@trials_option
@click.option("--jitter", type=int, default=0, help="Universe arms: re-run each arm N times from "
              "its cached scores plus the scoring precision's numeric error, and say whether each "
              "Sharpe difference exceeds that spread (no model call).")
@click.option("--jitter-sigma", type=float, default=None, help="The noise's standard deviation "
              "(default: what `bt bench scoring --precisions` measured and stored).")
def compare(folder, arms, horizon, out, trials, jitter, jitter_sigma, **kwargs) -> None:
    """A/B comparison: metrics, signal quality, cost, and whether the difference is real
    (paired bootstrap Sharpe CI, PSR/DSR, McNemar); writes comparison.html and tearsheets.

    With a universe strategy (llm_news_portfolio, --data a universe, --symbols, --news) every arm
    trades the universe on the same bars and costs, with the equal-weight universe as benchmark; the
    report gives each arm's IC, the IC and Sharpe differences against the first arm with CIs, SPA /
    Reality Check of all arms and the Deflated Sharpe with N = the number of arms. An arm without
    adapter= is the plain model (--adapter with --arm is refused).

    Examples: bt compare --from out/walkforward-<run id>;
    bt compare --strategy llm_sentiment --start 2012-06-01 --arm smollm2-135m
    --arm name=fewshot,prompt=bars-fewshot-v1;
    bt compare --strategy llm_news_portfolio --data csv:prices.csv.gz --symbols AAPL,MSFT,...
    --news headlines.csv.gz --news-tz America/New_York --start 2015-01-02 --arm name=base
    --arm name=lora,adapter=DIR
    """
    from llmbt.cli.flows import compare_arms, compare_universe_arms
    from llmbt.engine.portfolio_run import is_portfolio
    from llmbt.experiments.arms import parse_arm
    from llmbt.experiments.jitter import check_jitter, jitter_arms

    if bool(folder) == bool(arms):
        raise ConfigError("give either --from DIR (a walk-forward run or a bt compare --arm folder) "
                          "or two or more --arm SPEC.")
    if folder:
        _report(folder, trials)
        if jitter:
            from llmbt.experiments.jitter import jitter_walkforward, resolve_sigma

            for line in jitter_walkforward(folder, jitter, resolve_sigma(jitter_sigma)):
                click.echo(f"jitter: {line}")
        return
    kwargs["strategy"] = kwargs.get("strategy") or "llm_sentiment"
    config = build_config(**kwargs)
    sigma = check_jitter(config, jitter, jitter_sigma)
    parsed = [parse_arm(a) for a in arms]
    run = compare_universe_arms if is_portfolio(config.strategy) else compare_arms
    run(config, parsed, out or f"out/compare-{config.run_id}", horizon=horizon,
        say=click.echo, trials=trials)
    if jitter:
        for line in jitter_arms(config, parsed, jitter, sigma):
            click.echo(f"jitter: {line}")
