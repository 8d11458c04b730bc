"""LoRA with a classification head (``bt finetune --method seqcls``) and its ``seqcls`` arm: it
trains on a tiny random Llama, saves its head with the adapter, reloads to identical scores that
differ from an untrained head's, reads the very prompt it trained on, and runs through
``bt finetune`` and ``bt evaluate`` (``--arm kind=seqcls`` and ``--adapter``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import BAD, FAST, FLAT, GOOD, save_adapter, toy_examples

import llmbt.cli.ml  # noqa: F401  (registers the commands)
from llmbt.cli import cli
from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.finetune.encoding import encode_classes
from llmbt.signals_cache.finetune.trainer import META_FILE, TrainConfig, finetune
from llmbt.signals_cache.model.adapters import is_seqcls_adapter
from llmbt.signals_cache.model.loading import ModelSpec, load_model
from llmbt.signals_cache.model.seqcls import load_seqcls
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.prompts import get_template
from llmbt.signals_cache.text_scorers.registry import kinds, make_scorer

TEXTS = GOOD + BAD + FLAT

pytestmark = pytest.mark.usefixtures("llmbt_home")  # tiny, tokenizer_dir: conftest.py


@pytest.fixture(scope="module")
def trained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("seqcls")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(tmp_path_factory.mktemp("home")))
        cfg = TrainConfig(method="seqcls", max_steps=12, early_stopping_patience=0,  # float32: the
                          precision="fp32", **FAST | {"eval_every": 6})  # reload is compared exactly
        meta = finetune(toy_examples(3), toy_examples(1), ModelSpec(base=str(tiny)), out, cfg,
                        progress=False)
    return out, meta


def test_seqcls_trains_and_saves_lora_with_its_head(trained: tuple) -> None:
    from safetensors import safe_open

    out, meta = trained
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]
    assert is_seqcls_adapter(str(out))
    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as fh:
        keys = list(fh.keys())
    assert any("score" in k for k in keys) and any("lora_A" in k for k in keys)
    assert json.loads((out / META_FILE).read_text()) == meta
    assert meta["method"] == "seqcls" and meta["labels"] == list(LABELS)
    assert meta["splits"] == {"train": 32, "val": 12} and meta["metrics"]["steps"] == 12
    curve = meta["metrics"]["train_loss"]
    assert curve["mean_last_10pct"] < 0.8 * curve["mean_first_10pct"]  # it learns
    assert [s for s, _ in meta["metrics"]["val_history"]] == [6, 12]


def test_reloaded_adapter_scores_bitwise_identically_and_unlike_an_untrained_head(
        tiny: Path, trained: tuple) -> None:
    import torch

    out, meta = trained
    first = make_scorer("seqcls", model=str(tiny), path=str(out))
    probs = [first.score(TEXTS, batch_size=4),
             make_scorer("seqcls", model=str(tiny), path=str(out)).score(TEXTS, batch_size=4)]
    np.testing.assert_array_equal(probs[0], probs[1])
    assert probs[0].shape == (12, 3) and np.allclose(probs[0].sum(axis=1), 1.0)
    truth = np.array([0] * 4 + [1] * 4 + [2] * 4)  # TEXTS is the validation set, in order
    val_loss = -np.log(probs[0][np.arange(12), truth]).mean()
    assert val_loss == pytest.approx(meta["metrics"]["best_val_loss"], abs=1e-4)  # the saved best

    trained_model, tokenizer, _ = first._loaded()
    ids = first.token_ids(TEXTS, tokenizer)
    with torch.inference_mode():  # each prompt alone, whole: what the shared-prefix batches equal
        alone = [torch.softmax(trained_model(input_ids=torch.from_numpy(row.astype(np.int64))[None])
                               .logits.double(), -1)[0].numpy() for row in ids]
    np.testing.assert_allclose(probs[0], np.array(alone), atol=1e-5)

    torch.manual_seed(0)
    model, tokenizer, _ = load_seqcls(ModelSpec(base=str(tiny)))
    with torch.inference_mode():
        untrained = [torch.softmax(model(input_ids=torch.from_numpy(row.astype(np.int64))[None])
                                   .logits.double(), -1)[0].numpy() for row in ids]
    assert np.abs(np.array(untrained) - probs[0]).max() > 0.05


def test_scoring_runs_a_shared_prompt_start_once_for_all_its_batches(
        tiny: Path, trained: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmbt.signals_cache.model import kv

    calls: list[int] = []
    plain = kv.prefix_cache_kwargs
    monkeypatch.setattr(kv, "prefix_cache_kwargs", lambda model, prefix, rows:
                        calls.append(prefix.shape[1]) or plain(model, prefix, rows))
    scorer = make_scorer("seqcls", model=str(tiny), path=str(trained[0]))
    texts = TEXTS * 3  # 36 texts: 9 batches of 4, in order of length
    probs = scorer.score(texts, batch_size=4)
    assert len(calls) == 1 and calls[0] > 100  # the template's system text, once
    np.testing.assert_allclose(probs, np.tile(scorer.score(TEXTS, batch_size=12), (3, 1)), atol=1e-5)


def test_scoring_reads_the_prompt_training_read(tiny: Path, trained: tuple) -> None:
    out, meta = trained
    scorer = make_scorer("seqcls", model=str(tiny), path=str(out))
    _, tokenizer, _ = scorer._loaded()
    enc = encode_classes(toy_examples(1), tokenizer, get_template(meta["template"]), 256)
    assert enc.classes == [0] * 4 + [1] * 4 + [2] * 4
    for got, want in zip(scorer.token_ids(TEXTS, tokenizer), enc.ids, strict=True):
        np.testing.assert_array_equal(got, want)  # symbol ACME left out at training too
    text = tokenizer.decode(enc.ids[0])
    assert "Profit soars on record sales" in text and "ACME" not in text


def test_fingerprint_is_stable_and_follows_the_adapter_weights(tiny: Path, trained: tuple,
                                                               tmp_path: Path) -> None:
    out, _ = trained
    one = make_scorer("seqcls", model=str(tiny), path=str(out)).fingerprint()
    assert one == make_scorer("seqcls", model=str(tiny), path=str(out)).fingerprint()
    assert len(one) == 16 and "seqcls" in kinds()
    copy = Path(shutil.copytree(out, tmp_path / "copy"))
    config = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps(config | {"lora_alpha": 7}))
    assert make_scorer("seqcls", model=str(tiny), path=str(copy)).fingerprint() != one


def test_seqcls_and_label_token_adapters_are_not_mixed_up(tiny: Path, trained: tuple,
                                                          tmp_path: Path) -> None:
    out, _ = trained
    with pytest.raises(ConfigError, match="needs adapter=DIR"):
        make_scorer("seqcls", model=str(tiny))
    lora = save_adapter(tiny, tmp_path / "lora")
    with pytest.raises(ConfigError, match="needs adapter=DIR"):
        make_scorer("seqcls", model=str(tiny), path=str(lora))
    with pytest.raises(LlmbtError, match="kind=seqcls"):
        load_model(ModelSpec(base=str(tiny), adapter=str(out)))
    cfg = TrainConfig(max_steps=1, early_stopping_patience=0, **FAST)
    with pytest.raises(ConfigError, match="--method seqcls"):
        finetune(toy_examples(1), [], ModelSpec(base=str(tiny)), tmp_path / "x", cfg,
                 resume_adapter=str(out), progress=False)


def test_finetune_and_evaluate_cli_with_a_seqcls_adapter(tiny: Path, tmp_path: Path) -> None:
    rows = ["label,text"] + [f"{lab},{text}" for lab, texts in
                             (("positive", GOOD), ("negative", BAD), ("neutral", FLAT))
                             for text in texts]
    data = tmp_path / "few.csv"
    data.write_text("\n".join(rows) + "\n")
    adapter = tmp_path / "cls"
    res = CliRunner().invoke(cli, ["finetune", "--method", "seqcls", "--data", str(data),
                                   "--val", str(data), "--out", str(adapter), "--model", str(tiny),
                                   "--max-steps", "2", "--batch-size", "4", "--top-layers", "0",
                                   "--early-stopping-patience", "0"])
    assert res.exit_code == 0, res.output
    assert json.loads((adapter / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(cli, ["evaluate", "--data", str(data), "--model", str(tiny),
                                   "--adapter", str(adapter), "--arm",
                                   f"name=cls,kind=seqcls,adapter={adapter}", "--no-base",
                                   "--batch-size", "4", "--json", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert set(result) >= {"adapter", "cls"} and "base" not in result
    for key in ("accuracy", "weighted_f1", "macro_f1", "ece", "confusion"):
        assert result["adapter"][key] == result["cls"][key], key  # --adapter scores as kind=seqcls
    assert sum(map(sum, result["cls"]["confusion"])) == 12 and result["cls"]["ms_per_item"] > 0


def test_seqcls_with_a_shared_prefix_gives_the_plain_loss_and_gradients(tiny: Path) -> None:
    """The head reads each row's last token; running the prompts' common start once must not
    change which token that is, the loss or any gradient (the head's included)."""
    import torch

    from llmbt.signals_cache.finetune.encoding import collate
    from llmbt.signals_cache.finetune.trainer import wrap_trainable
    from llmbt.signals_cache.finetune.training import _loss

    model, tokenizer, _device = load_seqcls(ModelSpec(base=str(tiny)), trainable=True)
    model = wrap_trainable(model, TrainConfig(method="seqcls", dropout=0.0, r=4))
    with torch.no_grad():  # LoRA B starts at zero: move it so the prefix's gradient matters
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    enc = encode_classes(toy_examples(1)[:3], tokenizer, get_template("headlines-v1"), 256)
    shared = collate(enc, [0, 1, 2], tokenizer.pad_token_id, share_prefix=True)
    assert shared["prefix"].shape[1] > 100 and shared["labels"].tolist() == enc.classes[:3]
    results = []
    for share in (False, True):
        model.zero_grad()
        loss, n = _loss(model, collate(enc, [0, 1, 2], tokenizer.pad_token_id, share_prefix=share),
                        "cpu")
        loss.backward()
        results.append((float(loss.detach()), n,
                        [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    (loss_a, n_a, grads_a), (loss_b, n_b, grads_b) = results
    assert n_a == n_b == 3 and loss_b == pytest.approx(loss_a, rel=1e-5)
    for a, b in zip(grads_a, grads_b, strict=True):  # float32 rounding ~1e-6; a wrong token ~1e-2
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert any(float(g.abs().max()) > 0 for g in grads_a)


def test_label_smoothing_is_the_textbook_mix_and_leaves_validation_plain(tiny: Path) -> None:
    import torch

    from llmbt.signals_cache.finetune.encoding import collate
    from llmbt.signals_cache.finetune.training import _loss

    model, tokenizer, _device = load_seqcls(ModelSpec(base=str(tiny)))
    enc = encode_classes(toy_examples(1)[:4], tokenizer, get_template("headlines-v1"), 256)
    batch = collate(enc, [0, 1, 2, 3], tokenizer.pad_token_id)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=batch["input_ids"],
                                       attention_mask=batch["attention_mask"]).logits.float(), -1)
        plain, _ = _loss(model, dict(batch), "cpu")
        smooth, _ = _loss(model, dict(batch), "cpu", smoothing=0.3)
    nll = -logp[torch.arange(4), batch["labels"]].mean()
    assert float(plain) == pytest.approx(float(nll), rel=1e-5)
    want = 0.7 * nll - 0.3 * logp.mean(-1).mean()  # (1-e)*NLL + e*(uniform cross-entropy)
    assert float(smooth) == pytest.approx(float(want), rel=1e-5) and float(smooth) != float(plain)
