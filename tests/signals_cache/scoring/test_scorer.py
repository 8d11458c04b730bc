"""Tests of llmbt.signals_cache.scoring.scorer and llmbt.experiments.bench.scoring on a tiny random
Llama (fast) and on the embedded SmolLM2 model (``-m slow``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import save_tiny
from helpers_scoring import HEADLINES, brute_force, chat_prompts

from llmbt.errors import LlmbtError
from llmbt.experiments.bench.scoring import bench_scoring
from llmbt.signals_cache.model.loading import LoadedModel, ModelSpec, load_model
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.labelseq import label_sequences, spellings
from llmbt.signals_cache.scoring.scorer import GenerateParser, LabelScorer

pytestmark = pytest.mark.usefixtures("llmbt_home")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> LoadedModel:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(tmp_path_factory.mktemp("home")))
        folder = save_tiny(tmp_path_factory.mktemp("tiny"), tokenizer_dir)
        return load_model(ModelSpec(base=str(folder), device="cpu", precision="float32"))


@pytest.fixture(scope="module")
def scorer(loaded: LoadedModel) -> LabelScorer:
    return LabelScorer(loaded)


@pytest.fixture(scope="module")
def prompts(loaded: LoadedModel) -> list[str]:
    return chat_prompts(loaded.tokenizer, HEADLINES * 3)


def test_probabilities_shape_and_sum(scorer: LabelScorer, prompts: list[str]) -> None:
    probs = scorer.score(prompts, batch_size=4)
    assert probs.shape == (len(prompts), len(LABELS))
    assert probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert (probs > 0).all()
    # a random model still tells prompts apart (its single-token "neutral" takes almost all
    # the mass: any two-token label costs a second ~1/vocab factor)
    assert np.log(probs).std(axis=0).max() > 1e-2
    assert scorer.last_items_per_s and scorer.last_items_per_s > 0


def test_prefix_reuse_matches_plain(scorer: LabelScorer, prompts: list[str]) -> None:
    scorer.clear_prefix_cache()
    plain = scorer.score(prompts, batch_size=5, prefix_reuse=False)
    assert scorer.last_prefix_len == 0
    plain_mass = scorer.last_label_mass
    reused = scorer.score(prompts, batch_size=5, prefix_reuse=True)
    assert scorer.last_prefix_len > 20
    np.testing.assert_allclose(reused, plain, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.log(scorer.last_label_mass), np.log(plain_mass), atol=1e-4)
    again = scorer.score(prompts, batch_size=5, prefix_reuse=True)  # memoised prefix KV
    np.testing.assert_allclose(again, reused, atol=1e-6, rtol=0)


def test_prefix_reuse_raises_no_future_warning(loaded: LoadedModel, prompts: list[str]) -> None:
    """The KV cache goes to the forward under the keyword the installed transformers takes
    (``cache`` once ``past_key_values`` is deprecated), on every path that passes one."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        for tree in (True, False):  # tree attention and one row per label prefix
            scorer = LabelScorer(loaded, tree=tree)
            scorer.score(prompts[:6], batch_size=3, prefix_reuse=True)
            assert scorer.last_prefix_len > 20
        GenerateParser(loaded).generate_labels(prompts[:1], max_new_tokens=2)


def test_prefix_memo_cropped_for_other_prompts(
    scorer: LabelScorer, loaded: LoadedModel, prompts: list[str]
) -> None:
    scorer.clear_prefix_cache()
    alike = chat_prompts(loaded.tokenizer, ["Board meets on Tuesday", "Board meets on Friday"])
    scorer.score(alike)
    long_prefix = scorer.last_prefix_len
    reused = scorer.score(prompts[:5])
    assert 20 < scorer.last_prefix_len < long_prefix
    plain = scorer.score(prompts[:5], prefix_reuse=False)
    np.testing.assert_allclose(reused, plain, atol=1e-4, rtol=0)
    np.testing.assert_allclose(
        scorer.score(alike), scorer.score(alike, prefix_reuse=False), atol=1e-4, rtol=0
    )


def test_gqa_attention_equals_stock_sdpa(tmp_path: Path, tokenizer_dir: Path,
                                         prompts: list[str]) -> None:
    """The scorer's GQA-in-PyTorch attention gives transformers' own SDPA results."""
    import torch

    from llmbt.signals_cache.model.kv import GQA_SDPA

    fresh = load_model(ModelSpec(base=str(save_tiny(tmp_path, tokenizer_dir)), device="cpu",
                                   precision="float32"))
    ids = fresh.tokenizer(prompts[3], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        stock = fresh.model(input_ids=ids).logits[0, -1]
    stock_labels = brute_force(fresh, prompts[3])  # whole label sequences, stock attention
    scorer = LabelScorer(fresh)
    assert fresh.model.config._attn_implementation == GQA_SDPA
    with torch.inference_mode():
        ours = fresh.model(input_ids=ids).logits[0, -1]
    torch.testing.assert_close(ours, stock, atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        np.log(scorer.label_probs([prompts[3]], prefix_reuse=False)[0]), np.log(stock_labels),
        atol=1e-4, rtol=0,
    )


def test_batch_size_does_not_matter(scorer: LabelScorer, prompts: list[str]) -> None:
    one = scorer.score(prompts, batch_size=1, prefix_reuse=False)
    one_mass = scorer.last_label_mass
    many = scorer.score(prompts, batch_size=32, prefix_reuse=False)
    np.testing.assert_allclose(one, many, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.log(scorer.last_label_mass), np.log(one_mass), atol=1e-4)
    np.testing.assert_allclose(scorer.score(prompts, batch_size=32), one, atol=1e-4, rtol=0)


def test_order_restored_with_mixed_lengths(scorer: LabelScorer, prompts: list[str]) -> None:
    mixed = prompts[:7]
    probs = scorer.score(mixed, batch_size=3)
    singles = np.vstack([scorer.score([p], batch_size=1, prefix_reuse=False) for p in mixed])
    np.testing.assert_allclose(probs, singles, atol=1e-4, rtol=0)
    reversed_probs = scorer.score(mixed[::-1], batch_size=3)
    np.testing.assert_allclose(reversed_probs[::-1], probs, atol=1e-4, rtol=0)


def test_prompt_equal_to_the_common_prefix(scorer: LabelScorer, prompts: list[str]) -> None:
    short = prompts[0][: len(prompts[0]) // 2]
    batch = [short, prompts[0], short, prompts[3]]
    reused = scorer.score(batch, batch_size=4, prefix_reuse=True)
    plain = scorer.score(batch, batch_size=4, prefix_reuse=False)
    np.testing.assert_allclose(reused, plain, atol=1e-4, rtol=0)
    twins = scorer.score([prompts[1], prompts[1]], prefix_reuse=True)
    np.testing.assert_allclose(twins[0], twins[1], atol=1e-6)


def test_label_sequences_are_whole_spellings_without_overlap(loaded: LoadedModel) -> None:
    seqs = label_sequences(loaded.tokenizer)
    assert list(seqs) == list(LABELS)
    for label, label_seqs in seqs.items():
        texts = {loaded.tokenizer.decode(list(s)) for s in label_seqs}
        assert texts == set(spellings(label)) and len(texts) == 4
    flat = [(label, s) for label, ss in seqs.items() for s in ss]
    assert not [(a, b) for a, s in flat for b, o in flat if a != b and o[: len(s)] == s]


def test_overlapping_labels_refused(loaded: LoadedModel) -> None:
    with pytest.raises(LlmbtError, match="'bullish' and 'bullishness' overlap"):
        LabelScorer(loaded, labels=("bullish", "bullishness"))


def test_rare_label_word_is_scored_over_all_its_tokens(loaded: LoadedModel,
                                                       prompts: list[str]) -> None:
    scorer = LabelScorer(loaded, labels=("bullish", "xqzv"))
    assert min(len(s) for s in scorer.sequences["xqzv"]) >= 2
    probs = scorer.score(prompts[:2])
    assert probs.shape == (2, 2) and (probs > 0).all()


@pytest.mark.parametrize("labels", [(), ("up", "UP"), ("up", " ")])
def test_bad_labels_refused(loaded: LoadedModel, labels: tuple[str, ...]) -> None:
    with pytest.raises(LlmbtError, match="labels"):
        LabelScorer(loaded, labels=labels)


def test_bad_inputs_refused(scorer: LabelScorer, prompts: list[str]) -> None:
    with pytest.raises(LlmbtError, match="batch_size 0"):
        scorer.score(prompts, batch_size=0)
    with pytest.raises(LlmbtError, match="list of strings"):
        scorer.score(prompts[0])
    with pytest.raises(LlmbtError, match="prompt 1 has 0 tokens"):
        scorer.score([prompts[0], ""])
    assert scorer.score([]).shape == (0, len(LABELS))


def test_generate_parser_counts_failures(loaded: LoadedModel, prompts: list[str]) -> None:
    parser = GenerateParser(loaded)
    assert parser.parse("Bullish.") == "bullish"
    assert parser.parse("I think NEUTRAL, maybe bearish") == "neutral"
    assert parser.parse("The headline is bull") is None
    labels, failures = parser.generate_labels(prompts[:3], max_new_tokens=3)
    assert len(labels) == 3 == len(parser.last_texts)
    assert failures == sum(label is None for label in labels)
    assert all(label is None or label in LABELS for label in labels)
    assert parser.last_items_per_s and parser.last_items_per_s > 0
    with pytest.raises(LlmbtError, match="max_new_tokens"):
        parser.generate_labels(prompts[:1], max_new_tokens=0)


def test_bench_scoring(loaded: LoadedModel, prompts: list[str]) -> None:
    result = bench_scoring(loaded, prompts, n_generate=2, batch_size=8)
    for key in ("generate_items_per_s", "plain_items_per_s", "prefix_items_per_s"):
        assert result[key] > 0
    assert result["plain_vs_generate"] == pytest.approx(
        result["plain_items_per_s"] / result["generate_items_per_s"]
    )
    assert result["max_abs_diff"] < 1e-4
    assert 0 < result["mean_label_mass"] <= 1 and result["label_tokens"] >= 3
    assert 0 <= result["parse_failures"] <= 2
    with pytest.raises(LlmbtError, match="prompts"):
        bench_scoring(loaded, [])


# ------------------------------------------------------------------ the embedded model


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    home = tmp_path_factory.getbasetemp() / "llmbt-real-home"  # shared with test_model
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(home))
        return load_model(ModelSpec(precision="float32"))  # the float32 reference path


@pytest.mark.slow
def test_real_model_reads_a_clear_headline(real: LoadedModel) -> None:
    probs = LabelScorer(real).score(chat_prompts(real.tokenizer, HEADLINES[:1]))
    assert probs[0, LABELS.index("bullish")] > probs[0, LABELS.index("bearish")]


@pytest.mark.slow
def test_real_model_label_mass_is_reported(real: LoadedModel) -> None:
    """SmolLM2 spells "Bullish" B·ull·ish: the whole sequence counts, and the raw label mass is
    reported, a probability in (0, 1] (the untuned model mostly starts its reply otherwise)."""
    scorer = LabelScorer(real)
    assert max(len(s) for s in scorer.sequences["bullish"]) == 3  # B·ull·ish
    raw = scorer.label_probs(chat_prompts(real.tokenizer, HEADLINES), batch_size=4)
    mass = scorer.last_label_mass
    assert ((mass > 0) & (mass <= 1)).all() and (raw > 0).all()
    np.testing.assert_allclose(raw.sum(axis=1), mass, rtol=1e-12)
    probs = scorer.score(chat_prompts(real.tokenizer, HEADLINES), batch_size=4)
    np.testing.assert_allclose(probs, raw / mass[:, None], atol=1e-6)


@pytest.mark.slow
def test_real_model_prefix_reuse_matches_plain(real: LoadedModel) -> None:
    scorer = LabelScorer(real)
    batch = chat_prompts(real.tokenizer, HEADLINES)
    plain = scorer.score(batch, batch_size=4, prefix_reuse=False)
    reused = scorer.score(batch, batch_size=4, prefix_reuse=True)
    assert scorer.last_prefix_len > 40
    np.testing.assert_allclose(reused, plain, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_real_model_generates_labels(real: LoadedModel) -> None:
    parser = GenerateParser(real)
    labels, failures = parser.generate_labels(chat_prompts(real.tokenizer, HEADLINES[:2]))
    assert failures == sum(label is None for label in labels)
