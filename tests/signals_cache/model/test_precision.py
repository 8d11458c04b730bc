"""Tests of llmbt.signals_cache.model.precision: each scoring precision against the float32 reference
on a tiny random Llama (fast), the fingerprint per precision, adapters, the ``auto`` rule, the
``--precision`` flag and its old name ``--engine``; ``-m slow`` compares precisions on the embedded
SmolLM2 with real prompts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers_scoring import HEADLINES, chat_prompts

from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.experiments.bench.precision import bench_precisions
from llmbt.signals_cache.model import precision as precision_mod
from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint, load_model, model_fingerprint
from llmbt.signals_cache.model.precision import PRECISIONS, resolve_precision, use_all_cores
from llmbt.signals_cache.scoring.scorer import LabelScorer

CPU_PRECISIONS = [p for p in PRECISIONS if p not in ("auto", "float32")]
#: Largest |Δ log P(label)| against float32 on the tiny model.
TOLERANCE = {"bf16": 0.03}


pytestmark = pytest.mark.usefixtures("llmbt_home")


def _save_model(folder: Path, tokenizer_dir: Path) -> Path:
    """A tiny Llama whose label probabilities are not saturated (small initial weights)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(1)
    config = LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tok),
                         max_position_embeddings=2048, initializer_range=0.05,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_unsaturated(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    return _save_model(tmp_path_factory.mktemp("tiny-precision"), tokenizer_dir)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, tiny_unsaturated: Path) -> Path:
    """A LoRA adapter on every linear layer, with weights large enough to move the labels."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_unsaturated),
                           LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    torch.manual_seed(2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.2)
    out = tmp_path_factory.mktemp("adapter-precision")
    model.save_pretrained(out)
    return out


def _scores(base: Path, precision: str, adapter: Path | None = None) -> np.ndarray:
    """Log label probabilities (a random model's normalised scores are saturated)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(base.parent / "home"))
        loaded = load_model(ModelSpec(base=str(base), adapter=adapter and str(adapter), precision=precision))
    prompts = chat_prompts(loaded.tokenizer, HEADLINES * 3)
    return np.log(LabelScorer(loaded).label_probs(prompts, batch_size=4))


@pytest.fixture(scope="module")
def reference(tiny_unsaturated: Path) -> np.ndarray:
    return _scores(tiny_unsaturated, "float32")


@pytest.mark.parametrize("precision", CPU_PRECISIONS)
def test_precision_scores_within_tolerance_of_float32(tiny_unsaturated: Path, reference: np.ndarray,
                                                      precision: str) -> None:
    got = _scores(tiny_unsaturated, precision)
    assert np.ptp(reference, axis=0).min() > 0.05  # prompts differ: the comparison can fail
    assert np.abs(got - reference).max() < TOLERANCE[precision]


def test_precisions_convert_the_weights(tiny_unsaturated: Path) -> None:
    bf16 = load_model(ModelSpec(base=str(tiny_unsaturated), precision="bf16"))
    assert bf16.dtype == "bfloat16" and bf16.precision == "bf16"
    assert bf16.model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert bf16.model.get_output_embeddings().weight.dtype == torch.float32  # float32 logits
    assert bf16.model.get_input_embeddings().weight.dtype == torch.bfloat16  # untied


def test_fingerprint_differs_per_precision_and_keeps_the_keys_from_before_the_rename(
        tiny_unsaturated: Path) -> None:
    prints = {p: model_fingerprint(ModelSpec(base=str(tiny_unsaturated), precision=p), "v1")
              for p in PRECISIONS[1:]}
    assert len(set(prints.values())) == len(prints)
    # float32 keeps the key cached scores had before precisions existed; bf16 the payload it had
    # as --engine torch-bf16 (the name changed, not the numerics)
    legacy = [base_fingerprint(ModelSpec(base=str(tiny_unsaturated))), None, "none", "float32", "v1"]
    for precision, extra in {"float32": [], "bf16": ["engine:torch-bf16"]}.items():
        want = hashlib.sha256(json.dumps(legacy + extra, sort_keys=True).encode()).hexdigest()[:16]
        assert prints[precision] == want, precision
    auto = model_fingerprint(ModelSpec(base=str(tiny_unsaturated), precision="auto"), "v1")
    resolved = resolve_precision("auto", "cpu")
    assert auto == prints[resolved]
    assert load_model(ModelSpec(base=str(tiny_unsaturated))).precision == resolved


def test_adapter_changes_scores_the_same_way_in_every_precision(tiny_unsaturated: Path,
                                                                adapter: Path,
                                                                reference: np.ndarray) -> None:
    shift = _scores(tiny_unsaturated, "float32", adapter) - reference
    assert np.abs(shift).max() > 0.5  # the adapter matters, so the test can fail
    for precision in CPU_PRECISIONS:
        moved = _scores(tiny_unsaturated, precision, adapter) - _scores(tiny_unsaturated, precision)
        assert np.abs(moved - shift).max() < 0.1, precision


def test_auto_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert resolve_precision("auto", "cpu") == "float32"  # bf16 fails the same-backtest bar today
    monkeypatch.setattr(precision_mod, "BACKTEST_EXACT", ("bf16",))
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "float32"
    assert resolve_precision("auto", "cpu", "4bit") == "float32"
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="--precision bf16 runs on the CPU"):
        resolve_precision("bf16", "cuda")


def test_threads_follow_the_cores() -> None:
    import os

    assert use_all_cores() == len(os.sched_getaffinity(0)) == torch.get_num_threads()


def test_bad_precision_is_one_config_error_line() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'bf16'"):
        RunConfig(precision="bf61")
    with pytest.raises(ConfigError, match="'torch-bf16' is the old --engine name: use bf16"):
        RunConfig(precision="torch-bf16")
    with pytest.raises(ConfigError, match="--precision 'fp16' is not valid"):
        ModelSpec(precision="fp16")
    for flag, value, hint in (("--precision", "bf61", "Did you mean 'bf16'"),
                              ("--engine", "torch-bf61", "Did you mean 'torch-bf16'")):
        res = CliRunner().invoke(cli, ["run", flag, value, "--no-report"])
        assert res.exit_code != 0 and "Traceback" not in res.output
        assert hint in res.output and len(res.output.strip().splitlines()) == 1


def test_bench_precision_rows(tiny_unsaturated: Path) -> None:
    from transformers import AutoTokenizer

    prompts = chat_prompts(AutoTokenizer.from_pretrained(tiny_unsaturated), HEADLINES * 2)
    rows = bench_precisions(ModelSpec(base=str(tiny_unsaturated)), prompts, ["bf16"], batch_size=4)
    assert [r["precision"] for r in rows] == ["float32", "bf16"]
    assert rows[0]["agreement"] == 1.0 and rows[0]["max_abs_dscore"] == 0.0
    assert rows[1]["agreement"] >= 0.9 and 0 < rows[1]["max_abs_dscore"] < 0.05
    assert rows[1]["peak_rss_mib"] > 0 and rows[1]["vs_float32"] > 0 and rows[1]["prefix_tokens"] > 10


@pytest.mark.slow
def test_embedded_model_bf16_agrees_with_float32() -> None:
    """SmolLM2 on 32 real headline prompts: bf16 picks the float32 label >= 90 %."""
    from llmbt.experiments.bench.precision import headline_prompt_sample
    from llmbt.experiments.bench.universe import DEFAULT_NEWS

    if not DEFAULT_NEWS.is_file():
        pytest.skip(f"{DEFAULT_NEWS} is absent")
    prompts = headline_prompt_sample(DEFAULT_NEWS, 32)
    rows = bench_precisions(ModelSpec(), prompts, ["bf16"], batch_size=16)
    assert rows[-1]["agreement"] >= 0.9, rows
