"""Tests of llmbt.signals_cache.finetune.trainer and llmbt.signals_cache.finetune.evaluate: metrics on
hand-made data, loss masking, and LoRA training of a tiny random Llama (fast) or of the embedded SmolLM2 (``-m
slow``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import BAD, FAST, GOOD, B, Ex, N, R, toy_examples

from llmbt.errors import ConfigError
from llmbt.signals_cache.finetune.encoding import collate, dataset_hash, encode_examples, render_example
from llmbt.signals_cache.finetune.evaluate import (
    classification_metrics,
    directional_metrics,
    evaluate_model,
    expected_calibration_error,
)
from llmbt.signals_cache.finetune.trainer import META_FILE, TrainConfig, finetune
from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint, load_model, load_tokenizer
from llmbt.signals_cache.scoring.prompts import get_template
from llmbt.signals_cache.scoring.scorer import LabelScorer

pytestmark = pytest.mark.usefixtures("llmbt_home")



# ---------------------------------------------------------------- metrics


def test_metrics_on_a_hand_made_confusion() -> None:
    # true:  B B B R R N ; predicted: B B R R N N
    # confusion (rows true B,R,N; cols predicted): [[2,1,0],[0,1,1],[0,0,1]]
    # accuracy 4/6. bullish P=2/2 R=2/3 F1=0.8; bearish P=1/2 R=1/2 F1=0.5;
    # neutral P=1/2 R=1/1 F1=2/3. macro F1=(0.8+0.5+2/3)/3=0.655556;
    # weighted F1=(0.8*3+0.5*2+2/3*1)/6=0.677778.
    y_true = [B, B, B, R, R, N]
    pred = [0, 0, 1, 1, 2, 2]
    probs = np.full((6, 3), 0.2)
    probs[np.arange(6), pred] = 0.6
    m = classification_metrics(y_true, probs)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"][B] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                               "support": 3})
    assert m["per_class"][R]["f1"] == pytest.approx(0.5)
    assert m["per_class"][N]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3) / 6)
    assert m["mean_confidence"] == pytest.approx(0.6)
    # one bin (0.5, 0.6]: accuracy 4/6, confidence 0.6 -> ECE = |0.6667 - 0.6|
    assert m["ece"] == pytest.approx(4 / 6 - 0.6)
    # Brier: correct rows (0.4^2+0.2^2+0.2^2)=0.24, wrong rows (0.6^2+0.8^2+0.2^2)=1.04
    assert m["brier"] == pytest.approx((4 * 0.24 + 2 * 1.04) / 6)


def test_aliases_accepted_and_unknown_labels_refused() -> None:
    probs = np.eye(3)
    assert classification_metrics(["positive", "negative", "neutral"], probs)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="not one of"):
        classification_metrics(["sideways", B, N], probs)
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([B, B], probs)


def test_perfectly_calibrated_toy_has_zero_ece() -> None:
    # 10 rows at confidence 0.8 with 8 right, 10 rows at 0.5 with 5 right
    probs = np.array([[0.8, 0.1, 0.1]] * 10 + [[0.5, 0.3, 0.2]] * 10)
    y_true = [B] * 8 + [R] * 2 + [B] * 5 + [N] * 5
    m = classification_metrics(y_true, probs)
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == 0.0


def test_one_hot_correct_probs_have_zero_brier_and_full_scores() -> None:
    m = classification_metrics([B, R, N, B], np.eye(3)[[0, 1, 2, 0]])
    assert m["brier"] == 0.0 and m["ece"] == 0.0
    assert m["accuracy"] == m["macro_f1"] == m["weighted_f1"] == 1.0
    worst = classification_metrics([B], np.array([[0.0, 1.0, 0.0]]))
    assert worst["brier"] == 2.0 and worst["ece"] == 1.0


def test_seed_targets_met_missed_and_missing() -> None:
    from llmbt.signals_cache.finetune.evaluate import seed_targets

    result = {"accuracy": 0.61, "mean_confidence": 0.85, "directional": {"profitable_ratio": 0.55}}
    assert seed_targets(result) == {"accuracy > 60 %": True, "profitable signals > 55 %": False,
                                    "mean confidence 60-80 %": False}
    assert seed_targets({"accuracy": 0.5, "mean_confidence": 0.7})["profitable signals > 55 %"] is None


def test_directional_metrics() -> None:
    scores = np.array([0.5, -0.2, 0.3, 0.0, -0.4, 0.1])
    rets = np.array([0.01, -0.02, -0.01, 0.05, 0.0, np.nan])
    d = directional_metrics(scores, rets)
    # signals: rows 0,1,2,4 (row 3 has no score, row 5 no return); directional: rows 0,1,2
    assert d["n_signals"] == 4
    assert d["hit_rate"] == pytest.approx(2 / 3)
    assert d["profitable_ratio"] == pytest.approx(2 / 4)
    assert d["mean_signed_return"] == pytest.approx((0.01 + 0.02 - 0.01 + 0.0) / 4)
    assert directional_metrics(np.zeros(3), np.ones(3))["hit_rate"] is None


# ---------------------------------------------------------------- config and encoding


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"method": "full"}, "--method"),
        ({"schedule": "step"}, "--schedule"),
        ({"r": 0}, "--r"),
        ({"lr": 0.0}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"dropout": 1.0}, "--dropout"),
        ({"label_smoothing": 1.0}, "--label-smoothing"),
        ({"label_smoothing": -0.1}, "--label-smoothing"),
        ({"batch_size": 0}, "--batch-size"),
        ({"grad_accum": 1.5}, "--grad-accum"),
        ({"max_steps": -1}, "--max-steps"),
        ({"warmup_ratio": 2.0}, "--warmup-ratio"),
        ({"early_stopping_patience": -1}, "--early-stopping-patience"),
        ({"eval_every": 0}, "--eval-every"),
        ({"epochs": True}, "--epochs"),
        ({"target_modules": " "}, "--target-modules"),
        ({"template": "headlines-v9"}, "--template"),
    ],
)
def test_bad_train_config_names_the_flag(kwargs: dict, flag: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(flag)):
        TrainConfig(**kwargs)


def test_loss_covers_only_the_answer_tokens(tiny: Path) -> None:
    tok = load_tokenizer(ModelSpec(base=str(tiny)))
    template = get_template("headlines-v1")
    examples = [Ex("Profit soars", "positive", "ACME"), ("Board meets", N)]
    enc = encode_examples(examples, tok, template, max_length=256)
    batch = collate(enc, [0, 1], tok.pad_token_id)
    labels, ids = batch["labels"], batch["input_ids"]
    assert labels.shape == ids.shape
    for row, word in enumerate([B, N]):
        kept = labels[row][labels[row] != -100]
        assert tok.decode(kept) == word + tok.eos_token
        prompt = render_example(template, tok, *(["Profit soars", "ACME"], ["Board meets", "n/a"])[row])
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        assert (labels[row][:n_prompt] == -100).all()
        assert tok.decode(ids[row][:n_prompt]) == prompt
    assert batch["attention_mask"].sum() == sum(len(x) for x in enc.ids)
    short = encode_examples([("Profit soars", B)], tok, template, max_length=16)
    assert len(short.ids[0]) == 16 and short.truncated == 1
    assert dataset_hash(examples) == dataset_hash(list(examples))
    assert dataset_hash(examples) != dataset_hash(examples[:1])


# ---------------------------------------------------------------- training (tiny model)


@pytest.fixture(scope="module")
def trained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("adapter")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = TrainConfig(max_steps=20, early_stopping_patience=0, **FAST)
        meta = finetune(toy_examples(3), toy_examples(1), ModelSpec(base=str(tiny)), out, cfg,
                        progress=False)
    return out, meta


def test_training_lowers_the_loss_and_saves_the_adapter(tiny: Path, trained: tuple) -> None:
    out, meta = trained
    for name in ("adapter_config.json", "adapter_model.safetensors", META_FILE):
        assert (out / name).is_file(), name
    saved = json.loads((out / META_FILE).read_text())
    assert saved == meta
    assert meta["base_fingerprint"] == base_fingerprint(ModelSpec(base=str(tiny)))
    assert meta["splits"] == {"train": 32, "val": 12}
    assert meta["hyperparameters"]["lr"] == 1e-2 and meta["template"] == "headlines-v1"
    assert meta["dataset_sha256"] == dataset_hash(toy_examples(3))
    assert set(meta["versions"]) == {"torch", "transformers", "peft"}
    curve = meta["metrics"]["train_loss"]
    assert meta["metrics"]["steps"] == 20
    assert curve["mean_last_10pct"] < 0.7 * curve["mean_first_10pct"]
    val = meta["metrics"]["val_history"]
    assert [s for s, _ in val] == [10, 20]
    assert meta["metrics"]["best_val_loss"] == min(v for _, v in val)


def test_trained_adapter_loads_and_scores_reproducibly(tiny: Path, trained: tuple) -> None:
    out, _ = trained
    spec = ModelSpec(base=str(tiny), adapter=str(out))
    template = get_template("headlines-v1")
    scores = []
    for _ in range(2):
        loaded = load_model(spec)
        prompts = [render_example(template, loaded.tokenizer, t, "ACME") for t in GOOD + BAD]
        scores.append(LabelScorer(loaded).score(prompts, batch_size=4))
    np.testing.assert_array_equal(scores[0], scores[1])
    base = load_model(ModelSpec(base=str(tiny)))
    before = LabelScorer(base).score(prompts, batch_size=4)
    assert np.abs(before - scores[0]).max() > 1e-3  # the adapter changes the scores
    result = evaluate_model(toy_examples(1), spec, batch_size=4)
    assert result["n"] == 12 and 0 <= result["accuracy"] <= 1 and result["items_per_s"] > 0
    assert 0 < result["min_label_mass"] <= result["mean_label_mass"] <= 1
    assert sum(map(sum, result["confusion"])) == 12


def test_resume_adapter_continues_training(tiny: Path, trained: tuple, tmp_path: Path) -> None:
    first, meta1 = trained
    cfg = TrainConfig(max_steps=4, early_stopping_patience=0, **FAST)
    meta2 = finetune(toy_examples(3), [], ModelSpec(base=str(tiny)), tmp_path / "more", cfg,
                     resume_adapter=str(first), progress=False)
    assert meta2["resumed_from"] == str(first)
    assert meta2["metrics"]["best_val_loss"] is None and meta2["splits"]["val"] == 0
    # starts where the first run ended, far below a fresh adapter's first loss
    assert meta2["metrics"]["train_loss"]["first"] < 0.75 * meta1["metrics"]["train_loss"]["first"]
    assert (tmp_path / "more" / "adapter_model.safetensors").is_file()


def test_early_stopping_keeps_the_best_adapter(tiny: Path, tmp_path: Path) -> None:
    # with lr 0.5 the validation loss is 13.1, 7.7, then 10.0 (worse): patience 1 stops at 6
    # (the loop of before the speed settings: fp32 on every CPU, shuffled batches, whole rows)
    cfg = TrainConfig(max_steps=12, early_stopping_patience=1, lr=0.5, eval_every=2, r=8, alpha=16,
                      warmup_ratio=0.0, dropout=0.0, precision="fp32", group_by_length=False,
                      share_prefix=False)
    meta = finetune(toy_examples(3), toy_examples(1), ModelSpec(base=str(tiny)), tmp_path, cfg,
                    progress=False)
    m = meta["metrics"]
    assert m["stopped_early"] and m["steps"] == 6 and m["best_step"] == 4
    assert m["best_val_loss"] == min(v for _, v in m["val_history"])


def test_prefix_tuning_trains_and_saves(tiny: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(method="prefix", r=4, max_steps=3, early_stopping_patience=0, **FAST)
    meta = finetune(toy_examples(3), toy_examples(1), ModelSpec(base=str(tiny)), tmp_path, cfg,
                    progress=False)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"] == "PREFIX_TUNING"
    assert meta["method"] == "prefix" and meta["metrics"]["steps"] == 3


def test_top_layers_puts_lora_on_the_last_layers_only(tiny: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    cfg = TrainConfig(max_steps=2, top_layers=1, early_stopping_patience=0, **FAST)
    finetune(toy_examples(2), [], ModelSpec(base=str(tiny)), tmp_path, cfg, progress=False)
    keys = load_file(str(tmp_path / "adapter_model.safetensors")).keys()
    assert keys and all(".layers.1." in k for k in keys), sorted(keys)[:4]
    finetune(toy_examples(1), [], ModelSpec(base=str(tiny)), tmp_path / "all",
             TrainConfig(top_layers=5, max_steps=1, **FAST), progress=False)  # more than it has
    keys = load_file(str(tmp_path / "all" / "adapter_model.safetensors")).keys()
    assert {".layers.0." in k for k in keys} == {True, False}  # LoRA on both layers


def test_tensorboard_logs_every_step_and_validation(tiny: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrainConfig(max_steps=4, eval_every=2, early_stopping_patience=0, **{
        k: v for k, v in FAST.items() if k != "eval_every"})
    finetune(toy_examples(2), toy_examples(1), ModelSpec(base=str(tiny)), tmp_path / "a", cfg,
             progress=False, tensorboard_dir=tmp_path / "tb")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("val/loss")] == [2, 4]
    assert events.Scalars("train/lr")[0].value == pytest.approx(1e-2)


def test_empty_training_set_refused(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no training examples"):
        finetune([], [], ModelSpec(base=str(tiny)), tmp_path, TrainConfig(), progress=False)


# ---------------------------------------------------------------- embedded model (slow)

PHRASES = [
    ("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period", B),
    ("Net sales increased by 18.5 % to EUR 167.8 mn", B),
    ("The company won a EUR 30 mn order from a Finnish utility", B),
    ("Earnings per share were up to EUR 0.52 from EUR 0.39", B),
    ("Shares rose 5 % after the company raised its outlook", B),
    ("Operating loss widened to EUR 4.2 mn from a loss of EUR 1.1 mn", R),
    ("Net sales fell by 12 % to EUR 55 mn", R),
    ("The company said it will cut 300 jobs after orders dropped", R),
    ("Pre-tax profit decreased to EUR 2.1 mn from EUR 9.9 mn", R),
    ("The group issued a profit warning for the full year", R),
    ("The company is headquartered in Helsinki", N),
    ("The annual general meeting will be held on 25 March", N),
    ("The company operates in 12 countries", N),
    ("The report is available on the company website", N),
    ("The chief executive will present the results in a webcast", N),
    ("The company has about 2,000 employees", N),
]


@pytest.mark.slow
def test_embedded_model_trains_and_reloads(tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=4, lr=1e-3, batch_size=8, warmup_ratio=0.0, dropout=0.0,
                      eval_every=4, early_stopping_patience=0)
    meta = finetune(PHRASES, PHRASES[::2], ModelSpec(), tmp_path / "a", cfg, progress=False)
    curve = meta["metrics"]["train_loss"]
    assert curve["last"] < curve["first"]
    spec = ModelSpec(adapter=str(tmp_path / "a"))
    template = get_template("headlines-v1")
    scores = []
    for _ in range(2):
        loaded = load_model(spec)
        prompts = [render_example(template, loaded.tokenizer, t, "n/a") for t, _ in PHRASES]
        scores.append(LabelScorer(loaded).score(prompts, batch_size=8))
    np.testing.assert_array_equal(scores[0], scores[1])


def test_prefix_adapter_loads_and_scores(tiny: Path, tmp_path: Path) -> None:
    from llmbt.signals_cache.model.loading import load_model
    from llmbt.signals_cache.scoring.scorer import LabelScorer

    cfg = TrainConfig(method="prefix", r=4, max_steps=2, early_stopping_patience=0, **FAST)
    finetune(toy_examples(3), [], ModelSpec(base=str(tiny)), tmp_path, cfg, progress=False)
    loaded = load_model(ModelSpec(base=str(tiny), adapter=str(tmp_path)))
    probs = LabelScorer(loaded).score(["<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"],
                                      batch_size=1, prefix_reuse=False)
    assert probs.shape == (1, 3) and abs(probs.sum() - 1) < 1e-6
    # peft brings the virtual tokens' KV itself: no shared-prefix reuse, same numbers
    twins = [f"<|im_start|>user\nhello {w}<|im_end|>\n<|im_start|>assistant\n" for w in "ab"]
    scorer = LabelScorer(loaded)
    reused = scorer.score(twins, batch_size=2, prefix_reuse=True)
    assert scorer.last_prefix_len == 0
    np.testing.assert_allclose(reused, scorer.score(twins, batch_size=1, prefix_reuse=False),
                               atol=1e-5)


@pytest.mark.parametrize("version", ["bars-v1", "bars-v2"])
def test_bar_training_prompts_equal_the_backtest_prompts(goog, version: str) -> None:
    """Training and scoring see the very same text: bar features keep their line breaks."""
    from helpers import ChatMLStub

    from llmbt.signals_cache.finetune.encoding import example_fields, render_example
    from llmbt.signals_cache.finetune.labelling import bar_examples
    from llmbt.signals_cache.scoring.prompts import bar_prompts

    prices = goog.iloc[:120]
    examples = bar_examples(prices, symbol="GOOG", horizon=5)
    template, tokenizer = get_template(version), ChatMLStub()
    scored = bar_prompts(prices, "GOOG", template, tokenizer)
    for example in examples[::10]:
        text, _, symbol = example_fields(example)
        assert render_example(template, tokenizer, text, symbol) == scored[example.time]
