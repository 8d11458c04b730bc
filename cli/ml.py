"""``bt dataset``, ``bt finetune``, ``bt evaluate``: thin commands over signals_cache's ML modules."""

from __future__ import annotations

import json
from pathlib import Path

import click

from llmbt.cli.base import cli


def parse_label_map(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """``--label-map pos=bullish`` pairs as a dict (None when none are given)."""
    from llmbt.errors import ConfigError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--label-map {pair!r} must look like name=label, e.g. pos=bullish")
        out[key.strip()] = value.strip().lower()
    return out or None


label_map_option = click.option(
    "--label-map", "label_map", multiple=True, metavar="NAME=LABEL",
    help="Extra label synonym, repeatable, e.g. --label-map pos=bullish (positive/negative/"
    "neutral and bullish/bearish/neutral are known).")


def _print_report(report: dict) -> None:
    for split, counts in report["counts"].items():
        click.echo(f"{split:<6} " + "  ".join(f"{k}={v}" for k, v in counts.items()))
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}")


def _export(splits: dict, template, out: Path) -> None:
    """Each split as ChatML, Alpaca and plain JSONL; every row names the template that renders
    it (a paraphrase for ``--augment instructions`` copies) and its augmentation (or null)."""
    from llmbt.signals_cache.finetune.datasets import to_alpaca, to_chatml, write_jsonl
    from llmbt.signals_cache.scoring.prompts import get_template

    def tag(e) -> dict:
        return {"template": e.template or template.version, "augmented": e.augmented or None}

    def own(e):
        return get_template(e.template) if e.template else template

    for name, part in splits.items():
        write_jsonl(({**to_chatml(e, own(e)), **tag(e)} for e in part), out / f"{name}.chatml.jsonl")
        write_jsonl(({**to_alpaca(e, own(e)), **tag(e)} for e in part), out / f"{name}.alpaca.jsonl")
        rows = ({"text": e.text, "label": e.label, "symbol": e.symbol,
                 "time": e.time.isoformat() if e.time is not None else None,
                 "forward_return": e.forward_return,
                 "label_end": e.label_end.isoformat() if e.label_end is not None else None, **tag(e)}
                for e in part)
        write_jsonl(rows, out / f"{name}.jsonl")


@cli.group()
def dataset() -> None:
    """Labelled datasets for fine-tuning: build from prices or a corpus, check quality."""


@dataset.command("build")
@click.option("--data", help="Price URI (bar mode): one example per bar, labelled by forward return.")
@click.option("--corpus", type=click.Path(dir_okay=False), help="Labelled text file (CSV/JSONL "
              "label,text or PhraseBank sentence@label) instead of --data.")
@click.option("--news", type=click.Path(exists=True, dir_okay=False), help="With --data: headline "
              "mode, one example per headline (CSV/JSONL/Parquet timestamp,symbol,headline), "
              "labelled by the forward return from the first bar opening after it.")
@click.option("--news-tz", help="Time zone of naive news timestamps, e.g. America/New_York.")
@click.option("--start", help="First bar of --data (inclusive), YYYY-MM-DD; ccxt: needs it.")
@click.option("--end", help="Last bar of --data (inclusive), YYYY-MM-DD.")
@click.option("--interval", default="1d", show_default=True, help="Bar size of downloaded "
              "--data (yahoo:, ccxt:), e.g. 1d, 1h; read from the cache bt run and bt data fetch "
              "fill.")
@click.option("--horizon", default=5, show_default=True, help="Label horizon in bars (dated modes).")
@click.option("--method", default="quantile", show_default=True, help="quantile or vol thresholds, "
              "fitted on the training window only.")
@click.option("--embargo", type=int, help="Bars dropped between splits (default: --horizon).")
@click.option("--rebalance", is_flag=True, help="Oversample minority labels in train.")
@click.option("--seed", default=0, show_default=True, help="Seed of the stratified split (corpus).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--anonymize", is_flag=True, help="With --news: mask company names and tickers "
              "(--names table; Company A = the headline's own) as bt run --anonymize scores them.")
@click.option("--names", type=click.Path(dir_okay=False), help="CSV symbol,company for "
              "--anonymize and --augment entities.")
@click.option("--augment", help="Augment the train split only (after the split): comma list of "
              "instructions (paraphrased prompts) and entities (company names swapped between "
              "same-label examples; needs --names). Off by default.")
@click.option("--augment-factor", default=1, show_default=True, help="Copies per train example "
              "and augmentation.")
@label_map_option
def dataset_build(data, corpus, news, news_tz, start, end, interval, horizon, method, embargo,
                  rebalance, seed, out, anonymize, names, augment, augment_factor,
                  label_map) -> None:
    """Build train/val/test JSONL (plain, ChatML and Alpaca) and a quality report.

    Examples: bt dataset build --data sample:GOOG --horizon 5 --out datasets/goog;
    bt dataset build --data ccxt:bybit:BTC/USDT --start 2023-01-01 --end 2024-12-31 --out datasets/btc
    """
    from llmbt.errors import ConfigError
    from llmbt.feeds import load_news, load_prices, symbol_of
    from llmbt.signals_cache.finetune import datasets as ds
    from llmbt.signals_cache.finetune.labelling import bar_examples, fit_on_train, headline_examples
    from llmbt.signals_cache.scoring.prompts import template_for

    if bool(data) == bool(corpus):
        raise ConfigError("give exactly one of --data URI (bar or headline mode) or --corpus FILE")
    if news and not data:
        raise ConfigError("--news labels headlines by prices: pass --data URI with it")
    if corpus and (start or end):
        raise ConfigError("--start/--end pick the bars of --data; a --corpus file is used whole, "
                          "drop them")
    if anonymize and not (news and names):
        raise ConfigError("--anonymize masks headlines of --news: pass --news FILE and --names "
                          "FILE (CSV symbol,company, e.g. ../shared/data/news/sp500_companies.csv)")
    if data:
        prices, symbol = load_prices(data, start, end, interval=interval), symbol_of(data)
        if news:  # headline mode: purged by label window, embargo counted in headlines
            examples = headline_examples(prices, _masked(load_news(news, tz=news_tz, symbol=symbol),
                                                         anonymize, names),
                                         horizon=horizon, method=method)
            template = template_for("headlines")
        else:
            examples = bar_examples(prices, symbol=symbol, horizon=horizon, method=method)
            template = template_for("bars")
        splits = ds.time_split(examples, embargo=horizon if embargo is None else embargo)
        if method == "quantile":  # thresholds from the train block only (not val or test)
            splits = fit_on_train(splits)
    else:
        splits = ds.stratified_split(ds.load_labelled(corpus, label_map=parse_label_map(label_map)),
                                     seed=seed)
        template = template_for("headlines")
    splits, augmented = _augmented(splits, augment, augment_factor, template, names, seed)
    if rebalance:
        splits["train"] = ds.rebalance(splits["train"], seed=seed)
    out = Path(out)
    _export(splits, template, out)
    report = ds.quality_report(splits)
    if augmented:
        report["augmented"] = augmented
        report["warnings"] += _augment_warnings(augmented)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    _print_report(report)
    click.echo(f"wrote {out}")


def _augmented(splits: dict, augment: str | None, factor: int, template, names: str | None,
               seed: int) -> tuple[dict, dict | None]:
    """``splits`` with train augmented (``--augment``) and the counts, or as they are and None."""
    from llmbt.signals_cache.anonymize import load_names
    from llmbt.signals_cache.finetune.augment import augment_train, parse_augment

    kinds = parse_augment(augment)
    if not kinds:
        return splits, None
    table = load_names(names) if names and "entities" in kinds else None
    return augment_train(splits, kinds, template=template, names=table, factor=factor, seed=seed)


def _augment_warnings(augmented: dict) -> list[str]:
    click.echo(f"augmented: {augmented['added']} copies of {augmented['sources']} train examples "
               + " ".join(f"{k}=+{augmented[k]['added']}" for k in ("instructions", "entities")
                          if k in augmented))
    entities = augmented.get("entities")
    if entities is None or entities["added"]:
        return []
    return [f"--augment entities added nothing: {entities['touchable']} train example(s) name a "
            "company of --names, and a swap needs another company named under the same label."]


def _masked(news, anonymize: bool, names: str | None):
    """``news`` with company names and tickers masked (``--anonymize``), else as it is."""
    if not anonymize:
        return news
    from llmbt.signals_cache.anonymize import anonymize_news, load_masker

    return anonymize_news(news, load_masker(names))


@dataset.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def dataset_check(files: tuple[str, ...]) -> None:
    """Quality report of labelled files (one per split: e.g. train.jsonl val.jsonl test.jsonl).

    Example: bt dataset check datasets/goog/train.jsonl datasets/goog/test.jsonl
    """
    from llmbt.signals_cache.finetune.datasets import load_labelled, quality_report

    splits = {Path(f).name.split(".")[0]: load_labelled(f) for f in files}
    _print_report(quality_report(splits))


#: Help of each training flag; flag names and defaults come from :class:`TrainConfig`'s fields.
TRAIN_FLAG_HELP: dict[str, str] = {
    "method": "lora, qlora (4-bit base) or prefix on the label tokens, or seqcls (LoRA with a "
              "classification head; score it with --arm name=..,kind=seqcls,adapter=DIR).",
    "r": "LoRA rank (prefix tuning: virtual tokens).",
    "alpha": "LoRA alpha.",
    "dropout": "LoRA dropout.",
    "target_modules": "all-linear, or comma-separated module names, e.g. q_proj,v_proj.",
    "top_layers": "LoRA on the last N layers only (faster backward; 0 = all layers).",
    "lr": "Peak learning rate (AdamW); 2e-4 suits 7B models.",
    "warmup_ratio": "Share of the steps spent warming the learning rate up.",
    "schedule": "cosine or linear decay.",
    "weight_decay": "AdamW weight decay.",
    "epochs": "Passes over the training set (with --max-steps 0).",
    "max_steps": "Stop after this many optimizer steps (0 = by --epochs).",
    "batch_size": "Examples per step.",
    "grad_accum": "Gradient accumulation steps.",
    "max_length": "Longest token sequence; longer prompts lose their start.",
    "eval_every": "Validate every N steps.",
    "early_stopping_patience": "Validations without improvement before stopping (0 = never).",
    "seed": "Seed of split, init and order.",
    "template": "Prompt template (the one scoring will use).",
    "precision": "auto, fp32 (or float32, as scoring spells it) or bf16: bf16 autocast forward "
                 "(LoRA weights and AdamW stay fp32); auto = bf16 on a CPU with native bf16 "
                 "(AVX-512-BF16/AMX), else fp32.",
    "group_by_length": "Batches of similar length (shuffled, seeded; every example once per "
                       "epoch): less padding.",
    "share_prefix": "Run the prompt prefix a batch shares once (the template's system text; "
                    "2.6x fewer token positions on PhraseBank prompts).",
    "label_smoothing": "Label smoothing of the training loss (0 = none; e.g. 0.1); validation "
                       "loss stays plain cross-entropy.",
}


def _train_options(func):
    """``--model`` and one flag per :class:`TrainConfig` field (its default shown)."""
    from llmbt.signals_cache.finetune.trainer import TrainConfig

    opts = [click.option("--model", default="smollm2-135m", show_default=True,
                         help="Base model to adapt.")]
    opts += [click.option(_flag_decl(name, getattr(TrainConfig, name)), name, show_default=True,
                          default=getattr(TrainConfig, name), help=text)
             for name, text in TRAIN_FLAG_HELP.items()]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _flag_decl(name: str, default: object) -> str:
    """``--name``, or ``--name/--no-name`` for a boolean field."""
    flag = name.replace("_", "-")
    return f"--{flag}/--no-{flag}" if isinstance(default, bool) else f"--{flag}"


@cli.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Labelled file: CSV/JSONL label,text (positive/negative/neutral or "
              "bullish/bearish/neutral) or PhraseBank sentence@label.")
@click.option("--val", "val_file", type=click.Path(exists=True, dir_okay=False),
              help="Validation file (default: 10 % of --data: the last 10 % by time, after an "
              "embargo of --horizon examples, for dated examples; else a stratified 10 %).")
@click.option("--horizon", default=5, show_default=True, help="Label horizon in bars of dated "
              "examples (bt dataset build): the embargo before the validation tail.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Adapter folder.")
@click.option("--resume-adapter", type=click.Path(exists=True, file_okay=False),
              help="Continue training this adapter (incremental; use a lower --lr).")
@click.option("--tensorboard", "tensorboard_dir", type=click.Path(file_okay=False),
              help="Write TensorBoard scalars (train/loss, train/lr, val/loss) here.")
@label_map_option
@_train_options
def finetune(data, val_file, horizon, out, resume_adapter, tensorboard_dir, label_map, model, seed,
             **train) -> None:
    """Fine-tune a LoRA / QLoRA / prefix-tuning / classification-head LoRA adapter on labelled text.

    Example: bt finetune --data train.csv --out adapters/fpb
    """
    from llmbt.signals_cache.finetune.trainer import TrainConfig
    from llmbt.signals_cache.finetune.trainer import finetune as run_finetune
    from llmbt.signals_cache.model.loading import ModelSpec

    splits = labelled_splits(data, val_file, label_map, horizon, seed)
    cfg = TrainConfig(seed=seed, **train)
    meta = run_finetune(splits["train"], splits["val"], ModelSpec(base=model), out, cfg,
                        resume_adapter=resume_adapter, tensorboard_dir=tensorboard_dir)
    click.echo(json.dumps(meta.get("metrics", {}), indent=2, default=str))
    click.echo(f"adapter: {out}")


def labelled_splits(data: str, val_file: str | None, label_map: tuple[str, ...], horizon: int,
                    seed: int) -> dict[str, list]:
    """``train``/``val`` examples of ``bt finetune`` and ``bt head train``: ``data`` and
    ``val_file`` when one is given, else ``data`` split by :func:`_validation_split`."""
    from llmbt.signals_cache.finetune.datasets import load_labelled

    mapping = parse_label_map(label_map)
    examples = load_labelled(data, label_map=mapping)
    if val_file:
        return {"train": examples, "val": load_labelled(val_file, label_map=mapping)}
    return _validation_split(examples, horizon, seed)


def _validation_split(examples: list, horizon: int, seed: int) -> dict[str, list]:
    """10 % for validation: dated examples (bars, headlines) hold out their last 10 % by time
    after an embargo of ``horizon`` examples (so no training label overlaps a validation bar);
    undated corpora a stratified random 10 %."""
    from llmbt.errors import ConfigError
    from llmbt.signals_cache.finetune.datasets import stratified_split, time_split

    if any(e.augmented for e in examples):
        raise ConfigError("--data holds augmented examples (bt dataset build --augment): pass "
                          "--val with its val.jsonl, so validation is not drawn from their copies.")
    if any(e.time is not None for e in examples):
        return time_split(examples, val=0.1, test=0.0, embargo=horizon)
    return stratified_split(examples, val=0.1, test=0.0, seed=seed)
