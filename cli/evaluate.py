"""``bt evaluate``: every row (base, adapter, each ``--arm``) on labelled sentences, and on dated
headlines the daily IC (``--news``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from llmbt.cli.base import cli, precision_option
from llmbt.cli.ml import label_map_option, parse_label_map
from llmbt.cli.news_eval import news_ic, news_options


@cli.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False),
              help="Labelled test file (CSV/JSONL label,text): accuracy, F1, calibration.")
@click.option("--model", default="smollm2-135m", show_default=True, help="Base model.")
@precision_option("auto", note="Of the model rows; heads and seqcls adapters score in float32.")
@click.option("--adapter", type=click.Path(exists=True, file_okay=False),
              help="Adapter folder: evaluated side by side with its base (a --method seqcls "
              "adapter as its classifier).")
@click.option("--arm", "arm_texts", multiple=True, metavar="ARM",
              help="Another row, repeatable: a scorer kind (lexicon) or name=..,kind=..,model=..,"
              "adapter=..,prompt=.. as bt compare --arm takes it.")
@click.option("--calibrate-on", type=click.Path(exists=True, dir_okay=False),
              help="Labelled validation file: fit a temperature per row on it and report ECE "
              "before/after on --data (saved beside --adapter as llmbt_calibration.json, which bt "
              "run, bt compare and bt score then apply).")
@click.option("--no-calibration", is_flag=True,
              help="Ignore temperatures stored beside --adapter and arm folders (no 'calibrated:' "
              "rows for them, the raw probabilities only).")
@click.option("--template", default="headlines-v1", show_default=True, help="Prompt template.")
@click.option("--batch-size", default=16, show_default=True, help="Prompts per forward pass.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write metrics JSON here.")
@click.option("--no-base", is_flag=True, help="With --adapter or --arm, skip the base model.")
@label_map_option
@news_options
def evaluate(data, model, precision, adapter, arm_texts, calibrate_on, no_calibration, template, batch_size,
             json_out, no_base, label_map, **news) -> None:
    """Accuracy, macro/weighted F1, per-class P/R, confusion, calibration (ECE, Brier), ms/item;
    with --news, each row's daily IC on dated headlines against next-day excess returns.

    A row whose adapter (or head) folder holds a temperature from an earlier --calibrate-on is
    shown both ways: the plain rows are its raw probabilities, the 'calibrated:' rows (temperature,
    ECE, Brier, mean confidence) what bt run, bt compare, bt score and universe runs score with;
    accuracy and F1 are the same for both. Its --news IC is of the calibrated scores.
    --no-calibration ignores stored temperatures; --calibrate-on fits a new one on the raw scores.

    Example: bt evaluate --data test.csv --adapter adapters/fpb --arm lexicon --json out/eval.json
    """
    from llmbt.errors import ConfigError

    if not data and (calibrate_on or not news["news"]):
        raise ConfigError("give --data FILE (labelled sentences: F1, calibration) and/or --news FILE "
                          "--universe URI (dated headlines: daily IC)")
    if calibrate_on and no_calibration:
        raise ConfigError("--calibrate-on fits a new temperature on the raw scores and "
                          "--no-calibration ignores stored ones; give one of the two")
    arms = _arms(adapter, arm_texts, no_base)
    if data and (news["model_schedule"] or any(a.schedule for a in arms)):
        raise ConfigError("a model schedule picks each item's model by its date, and --data's "
                          "labelled sentences have none: use --model-schedule or schedule= with "
                          "--news only")
    runs = {a.name: {} for a in arms} if not data else _label_runs(
        data, calibrate_on, label_map, arms, model, adapter, template, batch_size,
        calibrate=not no_calibration, precision=precision)
    if news["news"]:
        stats_of = news_ic(arms, news, model, batch_size, calibrate=not no_calibration,
                           precision=precision)
        for name, stats in stats_of.items():
            runs[name]["news_ic"] = stats
    main = runs["head" if "head" in runs else "adapter"] if adapter else runs[next(iter(runs))]
    result = {k: main[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n") if k in main} | runs
    _print_eval(runs)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2, default=float))
        click.echo(f"metrics: {json_out}")


def _label_runs(data: str, calibrate_on: str | None, label_map: tuple[str, ...], arms: list,
                model: str, adapter: str | None, template: str, batch_size: int,
                calibrate: bool = True, precision: str = "auto") -> dict[str, dict]:
    """Each row's metrics on the labelled ``data`` (temperature fitted on ``calibrate_on``, else
    the one stored beside the row's folder unless ``calibrate`` is off); the model rows score in
    ``precision``."""
    from llmbt.signals_cache.finetune.datasets import load_labelled
    from llmbt.signals_cache.finetune.evaluate import evaluate_arm
    from llmbt.signals_cache.scoring.temperature import stored_temperature

    mapping = parse_label_map(label_map)
    examples = load_labelled(data, label_map=mapping)
    val = load_labelled(calibrate_on, label_map=mapping) if calibrate_on else None
    runs = {arm.name: evaluate_arm(examples, _scorer_arm(arm, model, template, batch_size, precision),
                                   val_examples=val, temperature=None if val else
                                   stored_temperature(arm.adapter, calibrate)) for arm in arms}
    row = "head" if "head" in runs else "adapter"
    if adapter is not None and calibrate_on and row in runs:  # a peft adapter's or head's folder
        _save_calibration(adapter, runs[row]["calibration"], calibrate_on, template)
    return runs


def _arms(adapter: str | None, arm_texts: tuple[str, ...], no_base: bool) -> list:
    """The rows of ``bt evaluate`` (:class:`~llmbt.experiments.arms.Arm`): base, adapter, then
    each ``--arm``."""
    from llmbt.errors import ConfigError
    from llmbt.experiments.arms import Arm, parse_arm

    rows = [Arm("base")] if not no_base or (adapter is None and not arm_texts) else []
    if adapter is not None:
        from llmbt.signals_cache.heads.linear import is_head_folder

        rows.append(Arm("head" if is_head_folder(adapter) else "adapter", adapter=adapter))
    for arm in map(parse_arm, arm_texts):
        if arm.name in {row.name for row in rows}:
            raise ConfigError(f"--arm name {arm.name!r} is taken; give it another name=.")
        rows.append(arm)
    return rows


def _scorer_arm(arm, model: str, template: str, batch_size: int, precision: str = "auto"):
    """What scores ``arm``'s labelled sentences, from its scorer identity: the model on
    ``template`` prompts in ``precision`` (its own model, adapter and prompt where it names them),
    the head or classifier its folder holds, or its text scorer; raw probabilities (a stored
    temperature is reported beside them, not applied)."""
    from llmbt.signals_cache.finetune.evaluate import evaluation_arm
    from llmbt.signals_cache.scorer_id import ScorerId

    fields = {"precision": precision, "calibrate": False, "template": arm.prompt or template}
    if arm.kind == "lm":  # a folder may hold a head or a classifier adapter
        scorer = ScorerId.for_folder(arm.adapter, arm.model, default_model=model, **fields)
    else:
        scorer = ScorerId(kind=arm.kind, model=arm.model or model, adapter=arm.adapter, **fields)
    return evaluation_arm(scorer, batch_size)


def _save_calibration(adapter: str, calibration: dict, fitted_on: str, template: str) -> None:
    from llmbt.signals_cache.finetune.calibration import write_calibration

    path = write_calibration(adapter, calibration | {"fitted_on": str(fitted_on),
                                                     "template": template})
    click.echo(f"temperature {calibration['temperature']:.3f}: {path}")


def _print_eval(runs: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from llmbt.reports.news_ic import NEWS_IC_KEYS

    table = Table(title="Evaluation")
    table.add_column("metric")
    for name in runs:
        table.add_column(name, justify="right")
    for key in ("accuracy", "macro_f1", "weighted_f1", "mean_confidence", "ece", "brier",
                "mean_label_mass", "min_label_mass", "items_per_s", "ms_per_item"):
        if any(key in r for r in runs.values()):  # without --data: none
            table.add_row(key, *(_num(r.get(key)) for r in runs.values()))  # n/a: not of this arm
    for key in ("temperature", "ece_after", "brier_after", "mean_confidence_after"):
        if any("calibration" in r for r in runs.values()):  # n/a: raw only (no temperature)
            table.add_row(f"calibrated: {key}",
                          *(_num(r.get("calibration", {}).get(key)) for r in runs.values()))
    for key in ("hit_rate", "profitable_ratio", "mean_signed_return"):
        if all("directional" in r for r in runs.values()):
            table.add_row(key, *(_num(r["directional"][key]) for r in runs.values()))
    for key in NEWS_IC_KEYS if any("news_ic" in r for r in runs.values()) else ():
        table.add_row(f"news: {key}", *(_num(r.get("news_ic", {}).get(key)) for r in runs.values()))
    for target in next(iter(runs.values())).get("targets", {}):
        table.add_row(f"target: {target}", *(_met(r["targets"][target]) for r in runs.values()))
    Console().print(table)


def _num(value: float | None) -> str:
    return "n/a" if value is None else str(value) if isinstance(value, int) else f"{value:.4f}"


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("met" if value else "missed")
