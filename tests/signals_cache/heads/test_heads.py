"""The embeddings + classifier arm: features from hidden states, the numpy head (no pickle), the
head folder round trip, training on a tiny random Llama, the wrong-base refusal, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import save_tiny

from llmbt.cli import cli
from llmbt.errors import ConfigError, DataError, LlmbtError
from llmbt.signals_cache.finetune.datasets import Example
from llmbt.signals_cache.heads.embed import extract_features, length_batches, pool, resolve_layer
from llmbt.signals_cache.heads.linear import (
    HEAD_META,
    HEAD_WEIGHTS,
    LinearHead,
    is_head_folder,
    read_head,
    save_head,
)
from llmbt.signals_cache.heads.scorer import EmbeddingHeadScorer, evaluate_head, load_head
from llmbt.signals_cache.heads.train import HeadConfig, fit_logistic, train_head
from llmbt.signals_cache.model.loading import ModelSpec, load_model

SENTENCES = {
    "bullish": ["Profit soars on record sales", "Shares jump after strong quarterly earnings",
                "Company raises full-year guidance", "Orders rise sharply in the third quarter",
                "Net sales increased by 20 percent"],
    "bearish": ["Loss widens as sales collapse", "Shares plunge after profit warning",
                "Company cuts jobs amid falling demand", "Operating loss deepened in the quarter",
                "Revenue fell short of expectations"],
    "neutral": ["Board meets on Tuesday", "The company is based in Helsinki",
                "Annual report published in March", "The plant employs 200 people",
                "Results will be released next week"],
}


def examples(index: slice) -> list[Example]:
    return [Example(text, label) for label, texts in SENTENCES.items() for text in texts[index]]


TRAIN, VAL = examples(slice(0, 3)), examples(slice(3, 5))
SMALL = HeadConfig(layers=(1, 2), poolings=("mean", "last"), c_grid=(0.1, 10.0), batch_size=4,
                   autocast=False)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("head")
    return out, train_head(TRAIN, VAL, str(tiny), out, SMALL)


def test_head_is_softmax_of_standardised_linear_layer() -> None:
    head = LinearHead(np.array([1.0, 2.0]), np.array([2.0, 4.0]), np.array([[1.0, 0.0],
                      [0.0, 1.0], [0.0, 0.0]]), np.array([0.0, 0.0, np.log(2.0)]),
                      ("bullish", "bearish", "neutral"))
    probs = head.predict_proba(np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_allclose(probs[0], [0.25, 0.25, 0.5])  # logits 0, 0, log 2
    e = np.exp([1.0, 1.0, np.log(2.0)])
    np.testing.assert_allclose(probs[1], e / e.sum())
    with pytest.raises(ConfigError, match="do not fit a head of dimension 2"):
        head.predict_proba(np.zeros((1, 3)))


def test_head_folder_round_trips_bitwise_and_holds_no_pickle(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 8)), np.repeat(["bullish", "bearish", "neutral"], 20)
    x[y == "bullish", 0] += 2.0
    head, model = fit_logistic(x, y, 1.0, SMALL)
    save_head(tmp_path, head, {"base_fingerprint": "0" * 16})
    back, meta = read_head(tmp_path)
    for name in ("mean", "scale", "coef", "intercept"):
        assert np.array_equal(getattr(head, name), getattr(back, name))
    assert np.array_equal(head.predict_proba(x), back.predict_proba(x)) and back.labels == head.labels
    order = [list(model.classes_).index(lab) for lab in head.labels]  # equals scikit-learn's
    np.testing.assert_allclose(back.predict_proba(x), model.predict_proba(
        (x - head.mean) / head.scale)[:, order], atol=1e-12)
    assert is_head_folder(tmp_path) and meta["format"] == "llmbt-embedding-head-v1"
    assert not (tmp_path / HEAD_WEIGHTS).read_bytes().startswith((b"\x80", b"PK"))  # no pickle/zip


def test_read_head_refuses_missing_or_foreign_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="has no llmbt_head.json"):
        read_head(tmp_path)
    head = LinearHead(np.zeros(2), np.ones(2), np.zeros((3, 2)), np.zeros(3),
                      ("bullish", "bearish", "neutral"))
    save_head(tmp_path, head, {})
    meta = json.loads((tmp_path / HEAD_META).read_text()) | {"format": "other"}
    (tmp_path / HEAD_META).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="head format 'other'"):
        read_head(tmp_path)


def test_pool_takes_the_mean_of_real_tokens_or_the_last_one() -> None:
    hidden = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])  # left padding in row 0
    assert pool(hidden, mask, "mean").tolist() == [[3.0, 4.0], [8.0, 9.0]]
    assert pool(hidden, mask, "last").tolist() == [[4.0, 5.0], [10.0, 11.0]]


def test_layers_resolve_and_batches_follow_length() -> None:
    assert resolve_layer(-1, 30) == 30 and resolve_layer(15, 30) == 15
    for bad in (0, 31, -31):
        with pytest.raises(ConfigError, match="pass 1..30 or -1"):
            resolve_layer(bad, 30)
    assert length_batches([5, 1, 3, 1], 2) == [[1, 3], [2, 0]]


def test_features_are_the_layer_outputs_in_text_order(tiny) -> None:
    loaded = load_model(ModelSpec(base=str(tiny)))
    texts = [ex.text for ex in TRAIN]
    feats = extract_features(loaded.model, loaded.tokenizer, texts, [1], poolings=["mean"],
                             batch_size=len(texts))[(1, "mean")]
    enc = loaded.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        full = loaded.model(**enc, output_hidden_states=True).hidden_states[1]
    np.testing.assert_allclose(feats, pool(full, enc["attention_mask"], "mean").numpy(),
                               atol=1e-5)  # stopping after layer 1 gives layer 1's output
    rev = extract_features(loaded.model, loaded.tokenizer, texts[::-1], [1], poolings=["mean"],
                           batch_size=len(texts))[(1, "mean")]
    assert np.array_equal(rev, feats[::-1])


def test_head_trains_on_a_tiny_model_and_records_its_search(trained) -> None:
    out, meta = trained
    assert meta["layer"] in (1, 2) and meta["pooling"] in ("mean", "last") and meta["C"] in (0.1, 10)
    assert len(meta["metrics"]["tries"]) == 8 and meta["metrics"]["max_abs_diff_vs_sklearn"] < 1e-9
    assert meta["splits"] == {"train": 9, "val": 6} and meta["versions"]["scikit-learn"]
    assert is_head_folder(out) and meta["base_fingerprint"]


def test_loaded_head_scores_exactly_as_at_training(trained, tiny) -> None:
    out, meta = trained
    result = evaluate_head(VAL, out, str(tiny), batch_size=SMALL.batch_size)
    for key in ("accuracy", "weighted_f1", "confusion", "ece", "brier", "mean_confidence"):
        assert result[key] == meta["metrics"]["val"][key], key  # same features, same head
    head, saved = read_head(out)
    texts = [ex.text for ex in VAL]
    in_memory = EmbeddingHeadScorer(load_model(ModelSpec(base=str(tiny))), head, saved, 4)
    again = load_head(out, str(tiny), batch_size=4)
    assert np.array_equal(in_memory.score(texts), again.score(texts))
    assert again.fingerprint == result["fingerprint"] and len(again.fingerprint) == 16


def test_head_refuses_another_base_naming_both_fingerprints(trained, tokenizer_dir, tmp_path) -> None:
    out, meta = trained
    other = save_tiny(tmp_path / "other", tokenizer_dir, seed=1)
    with pytest.raises(LlmbtError, match=rf"fingerprint {meta['base_fingerprint']}.*has "
                                         r"fingerprint [0-9a-f]{16}; pass the base"):
        load_head(out, str(other))


def test_training_needs_every_label(tiny, tmp_path) -> None:
    with pytest.raises(DataError, match="no 'neutral' examples"):
        train_head([ex for ex in TRAIN if ex.label != "neutral"], VAL, str(tiny), tmp_path, SMALL)


def test_cli_trains_a_head_and_evaluate_shows_base_and_head(tiny, tmp_path) -> None:
    data, val = tmp_path / "train.csv", tmp_path / "val.csv"
    for path, part in ((data, TRAIN), (val, VAL)):
        path.write_text("\n".join(["label,text"] + [f"{e.label},{e.text}" for e in part]) + "\n")
    out = tmp_path / "head"
    res = CliRunner().invoke(cli, ["head", "train", "--data", str(data), "--val", str(val),
                                   "--out", str(out),
                                   "--model", str(tiny), "--layer", "1", "--layer", "-1",
                                   "--pooling", "last", "--batch-size", "4", "--no-autocast"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / HEAD_META).read_text())["pooling"] == "last"
    report = tmp_path / "eval.json"
    res = CliRunner().invoke(cli, ["evaluate", "--data", str(data), "--model", str(tiny),
                                   "--adapter", str(out), "--json", str(report)])
    assert res.exit_code == 0, res.output
    result = json.loads(report.read_text())
    assert set(result) >= {"base", "head"} and result["weighted_f1"] == result["head"]["weighted_f1"]
    assert "head" in res.output and "adapter" not in result


def test_embeddings_arm_scores_a_head_folder_in_label_order(trained, tiny) -> None:
    from llmbt.engine.config import RunConfig
    from llmbt.engine.signals import scorer_id
    from llmbt.signals_cache.scoring.labels import LABELS
    from llmbt.signals_cache.text_scorers.registry import make_scorer, scorer_fingerprint

    out, _ = trained
    arm = make_scorer("embeddings", model=str(tiny), path=str(out))
    direct = load_head(out, str(tiny), batch_size=4)
    texts = [ex.text for ex in VAL]
    order = [list(direct.labels).index(label) for label in LABELS]
    assert np.array_equal(arm.score(texts, 4), direct.score(texts)[:, order])
    assert scorer_fingerprint("embeddings", arm) == f"arm:embeddings:{direct.fingerprint}"
    scorer = scorer_id(RunConfig(strategy="llm_sentiment", model=str(tiny), adapter=str(out),
                                 scorer="embeddings"))
    assert scorer.spec.adapter is None and (scorer.kind, scorer.folder) == ("embeddings", str(out))
    assert scorer.fingerprint() == f"arm:embeddings:{direct.fingerprint}"  # one identity, one key
    with pytest.raises(ConfigError, match="bt head train"):
        make_scorer("embeddings", path=str(tiny))
