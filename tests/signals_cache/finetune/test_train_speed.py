"""Tests of llmbt.signals_cache.finetune.speed and the fast paths of the training loop: length
grouping, padding to the batch's longest row, the shared prompt prefix (the same loss and
gradients as the plain batch), bf16 autocast training of a tiny model, the --precision
resolution and its place in the metadata and the walk-forward adapter key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST, toy_examples
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbt.errors import ConfigError
from llmbt.signals_cache.finetune import speed
from llmbt.signals_cache.finetune.encoding import Encoded, collate, encode_examples
from llmbt.signals_cache.finetune.speed import epoch_batches, padding_fraction, resolve_precision
from llmbt.signals_cache.finetune.trainer import META_FILE, TrainConfig, finetune
from llmbt.signals_cache.model.loading import ModelSpec, load_tokenizer
from llmbt.signals_cache.scoring.prompts import get_template

pytestmark = pytest.mark.usefixtures("llmbt_home")  # tiny, tokenizer_dir: conftest.py


# ---------------------------------------------------------------- batching


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(5, 300), min_size=1, max_size=400), st.integers(1, 16),
       st.integers(0, 2**16), st.booleans())
def test_an_epoch_covers_every_example_exactly_once(lengths, batch_size, seed, group):
    batches = epoch_batches(lengths, batch_size, np.random.default_rng(seed), group)
    rows = [i for b in batches for i in b]
    assert sorted(rows) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= (
        1 if not group else -(-len(lengths) // (batch_size * speed.GROUP_BATCHES)))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**16))
def test_grouped_batches_differ_less_in_length(seed):
    lengths = np.random.default_rng(seed).integers(160, 257, size=512).tolist()
    rng = np.random.default_rng(seed)
    plain, grouped = (epoch_batches(lengths, 8, rng, group) for group in (False, True))
    spread = {name: np.mean([np.ptp([lengths[i] for i in b]) for b in bs])
              for name, bs in (("plain", plain), ("grouped", grouped))}
    assert spread["grouped"] < 0.25 * spread["plain"]
    assert padding_fraction(lengths, grouped) < 0.25 * padding_fraction(lengths, plain)


def test_grouped_order_is_seeded_and_shuffled():
    lengths = list(range(100, 356))
    run = [epoch_batches(lengths, 8, np.random.default_rng(s), True) for s in (3, 3, 4)]
    assert run[0] == run[1] and run[0] != run[2]
    longest = [max(lengths[i] for i in b) for b in run[0]]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_ungrouped_batches_are_the_order_from_before_grouping():
    rng = np.random.default_rng(7)
    first, second = rng.permutation(20), rng.permutation(20)
    stream = speed.batch_stream([9] * 20, 8, 7, group=False)
    got = [next(stream) for _ in range(6)]
    want = [first[:8], first[8:16], first[16:], second[:8], second[8:16], second[16:]]
    assert got == [w.tolist() for w in want]


def _encoded(tokenizer_dir: Path) -> Encoded:
    tok = load_tokenizer(ModelSpec(base=str(tokenizer_dir)))
    texts = [("Profit soars", "bullish", "ACME"), ("Board meets on Tuesday as planned", "neutral"),
             ("Loss widens sharply after the regulator opens a fraud probe", "bearish", "ACME")]
    return encode_examples(texts, tok, get_template("headlines-v1"), max_length=256)


def test_batches_pad_to_their_longest_row_not_max_length(tiny: Path) -> None:
    enc = _encoded(tiny)
    lengths = [len(x) for x in enc.ids]
    assert max(lengths) < 256
    batch = collate(enc, [0, 1], pad_id=0)
    assert batch["input_ids"].shape == (2, max(lengths[:2]))
    assert batch["attention_mask"].sum(1).tolist() == lengths[:2]


def test_shared_prefix_batch_holds_the_same_tokens(tiny: Path) -> None:
    enc = _encoded(tiny)
    plain, shared = collate(enc, [0, 1, 2], 0), collate(enc, [0, 1, 2], 0, share_prefix=True)
    p = shared["prefix"].shape[1]
    assert p > 100 and shared["input_ids"].shape[1] == plain["input_ids"].shape[1] - p
    for row, ids in enumerate(enc.ids):
        tail = shared["input_ids"][row, : len(ids) - p]
        assert shared["prefix"][0].tolist() + tail.tolist() == ids.tolist()
        assert shared["labels"][row].tolist() == plain["labels"][row, p:].tolist()
        assert (plain["labels"][row, :p] == -100).all()  # the prefix holds no answer token
    assert shared["attention_mask"].tolist() == plain["attention_mask"].tolist()
    assert "prefix" not in collate(enc, [2], 0, share_prefix=True)  # one row: nothing to share


def test_shared_prefix_gives_the_plain_loss_and_gradients(tiny: Path) -> None:
    import torch

    from llmbt.signals_cache.finetune.trainer import wrap_trainable
    from llmbt.signals_cache.finetune.training import _loss
    from llmbt.signals_cache.model.loading import load_model

    loaded = load_model(ModelSpec(base=str(tiny)))
    model = wrap_trainable(loaded.model, TrainConfig(dropout=0.0, r=4))
    with torch.no_grad():  # LoRA B starts at zero: move it so the prefix's gradient matters
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    enc = _encoded(tiny)
    results = []
    for share in (False, True):
        model.zero_grad()
        loss, n = _loss(model, collate(enc, [0, 1, 2], 0, share_prefix=share), "cpu")
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        results.append((float(loss.detach()), n, grads))
    (loss_a, n_a, grads_a), (loss_b, n_b, grads_b) = results
    assert n_a == n_b > 3 and loss_b == pytest.approx(loss_a, rel=1e-5)
    # float32 rounding of two summation orders differs by ~1e-6; a wrong prefix by ~1e-2
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert any(float(g.abs().max()) > 0 for g in grads_a)


# ---------------------------------------------------------------- precision


def test_auto_precision_is_bf16_by_default_where_native_and_fp32_with_the_switch_off(monkeypatch):
    monkeypatch.setattr(speed, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert resolve_precision("auto", "cpu", "lora") == "bf16"
    monkeypatch.setattr(speed, "AUTO_BF16", False)
    assert resolve_precision("auto", "cpu", "lora") == "fp32"
    assert resolve_precision("bf16", "cpu", "lora") == "bf16"


def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    monkeypatch.setattr(speed, "AUTO_BF16", True)
    monkeypatch.setattr(speed, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert resolve_precision("auto", "cpu", "lora") == "bf16"
    assert resolve_precision("auto", "cpu", "qlora") == "fp32"  # a 4-bit base: its own dtype
    assert resolve_precision("auto", "cuda", "lora") == "fp32"
    assert resolve_precision("fp32", "cpu", "lora") == "fp32"
    monkeypatch.setattr(speed, "cpu_flags", lambda: frozenset({"avx512f", "avx2"}))
    assert resolve_precision("auto", "cpu", "lora") == "fp32"  # emulated bf16 would be slower
    assert resolve_precision("bf16", "cpu", "lora") == "bf16"


@pytest.mark.parametrize(("kwargs", "flag"), [
    ({"precision": "fp16"}, "--precision"),
    ({"group_by_length": "yes"}, "--group-by-length"),
    ({"share_prefix": 1}, "--share-prefix"),
])
def test_bad_speed_settings_name_the_flag(kwargs: dict, flag: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(flag)):
        TrainConfig(**kwargs)


def test_cli_refuses_a_bad_precision_naming_the_flag(tmp_path: Path) -> None:
    from click.testing import CliRunner

    import llmbt.cli.ml  # noqa: F401  (registers the commands)
    from llmbt.cli import cli

    data = tmp_path / "d.csv"
    data.write_text("label,text\npositive,Profit soars\nnegative,Loss widens\n")
    res = CliRunner().invoke(cli, ["finetune", "--data", str(data), "--out", str(tmp_path / "a"),
                                   "--precision", "half"])
    assert res.exit_code != 0 and "--precision 'half'" in res.output
    assert "auto, fp32, bf16" in res.output


def test_identity_keeps_old_keys_and_tells_precisions_apart(monkeypatch):
    monkeypatch.setattr(speed, "AUTO_BF16", True)
    monkeypatch.setattr(speed, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    legacy = TrainConfig(precision="fp32", group_by_length=False, share_prefix=False)
    old_fields = {k: v for k, v in legacy.to_dict().items()
                  if k not in ("precision", "group_by_length", "share_prefix", "label_smoothing")}
    assert legacy.identity("cpu") == old_fields  # the key of adapters trained before
    auto = TrainConfig().identity("cpu")
    assert auto["precision"] == "bf16" and auto["group_by_length"] and auto["share_prefix"] is True
    assert TrainConfig(precision="bf16").identity("cpu") == auto
    assert "share_prefix" not in TrainConfig(share_prefix=False).identity("cpu")
    assert "precision" not in TrainConfig().identity("cuda")  # auto is fp32 there
    assert TrainConfig(label_smoothing=0.1).identity("cpu")["label_smoothing"] == 0.1
    spelled = TrainConfig(precision="float32", group_by_length=False, share_prefix=False)
    assert spelled.precision == "fp32" and spelled == legacy  # scoring's spelling, the same run


def test_bf16_autocast_trains_the_tiny_model_and_is_recorded(tiny: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    cfg = TrainConfig(max_steps=20, early_stopping_patience=0, precision="bf16", **FAST)
    meta = finetune(toy_examples(3), toy_examples(1), ModelSpec(base=str(tiny)), tmp_path, cfg,
                    progress=False)
    curve = meta["metrics"]["train_loss"]
    assert curve["mean_last_10pct"] < 0.7 * curve["mean_first_10pct"]
    saved = json.loads((tmp_path / META_FILE).read_text())
    assert saved["precision"] == "bf16" and saved["metrics"]["precision"] == "bf16"
    assert saved["hyperparameters"]["precision"] == "bf16"
    assert saved["hyperparameters"]["group_by_length"] is True
    weights = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert {w.dtype for w in weights.values()} == {np.dtype("float32")}  # LoRA stays fp32
    tokens = sum(len(x) for x in encode_examples(
        toy_examples(3), load_tokenizer(ModelSpec(base=str(tiny))), get_template("headlines-v1"),
        256).ids)
    assert meta["metrics"]["train_tokens"] == 20 * 8 * tokens // 32  # 5 epochs of real tokens
    assert meta["metrics"]["train_tokens_per_s"] > 0


# ---------------------------------------------------------------- bt bench train --model


def test_bench_train_model_times_both_loops_on_the_same_examples(tiny: Path, tmp_path: Path):
    from click.testing import CliRunner

    import llmbt.cli.bench  # noqa: F401  (registers the commands)
    from llmbt.cli import cli

    data = tmp_path / "d.csv"
    data.write_text("label,text\n" + "\n".join(
        f"{lab},{text} number {i}" for i in range(4) for lab, text in (
            ("positive", "Profit soars on record sales"), ("negative", "Loss widens sharply"),
            ("neutral", "Board meets on Tuesday"))) + "\n")
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(cli, ["bench", "train", "--model", str(tiny), "--data", str(data),
                                   "--device", "cpu", "--steps", "2", "--batch-size", "4",
                                   "--n-val", "4", "--json", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    before, now = got["rows"]
    assert (before["variant"], before["precision"], now["variant"]) == ("before", "fp32", "now")
    assert before["val_loss_start"] == pytest.approx(now["val_loss_start"])  # same init, same set
    for row in got["rows"]:
        assert row["steps"] == 2 and row["tokens_per_s"] > 0 and row["peak_rss_gib"] > 0
        assert row["val_loss_end"] < row["val_loss_start"]
    assert now["pad_fraction"] <= before["pad_fraction"] and now["group_by_length"]
    assert got["tokens_per_s_ratio"] == pytest.approx(now["tokens_per_s"] / before["tokens_per_s"])
    both = CliRunner().invoke(cli, ["bench", "train", "--model", str(tiny), "--shape", "tiny-qwen"])
    assert both.exit_code != 0 and "--shape" in both.output and "--model" in both.output
