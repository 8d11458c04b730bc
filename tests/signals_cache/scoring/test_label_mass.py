"""P(label) is the probability of the label's whole token sequence, and its total is reported.

A stub word-piece tokenizer spells ``Bullish`` as ``B`` + ``ull`` + ``ish`` (as SmolLM2 does) and
a bigram "model" with hand-set probabilities gives golden numbers; a tiny random Llama with the
SmolLM2 tokenizer is checked against a brute-force teacher-forced product of token probabilities.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import save_tiny
from helpers_scoring import brute_force, variant_sequences

from llmbt.signals_cache.model.loading import LoadedModel, ModelSpec, load_model
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.scorer import LabelScorer

PIECES = ["<pad>", "B", "ull", "ear", "ish", "Ne", "utral", "bull", "bear", "neutral",
          " bull", " bear", " neutral", " Bull", " Bear", " Neutral"]


class PieceTokenizer:
    """Greedy longest-match tokenizer over :data:`PIECES` plus every printable ASCII character."""

    def __init__(self) -> None:
        chars = [chr(c) for c in range(32, 127)]
        self.vocab = PIECES + [c for c in chars if c not in PIECES]
        self.ids = {piece: i for i, piece in enumerate(self.vocab)}
        self.pad_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out, i = [], 0
        while i < len(text):
            piece = max((p for p in self.ids if p and text.startswith(p, i)), key=len)
            out.append(self.ids[piece])
            i += len(piece)
        return out

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict:
        return {"input_ids": [self.encode(t) for t in texts]}

    def __len__(self) -> int:
        return len(self.vocab)


#: Next-token probabilities of the bigram model by current token (all other tokens: 0).
BIGRAM = {
    ":": {"B": 0.4, "bull": 0.1, "bear": 0.1, "Ne": 0.1, "neutral": 0.05, "x": 0.25},
    "B": {"ull": 0.5, "ear": 0.3, "x": 0.2},
    "ull": {"ish": 0.8, "x": 0.2},
    "ear": {"ish": 0.5, "x": 0.5},
    "bull": {"ish": 0.9, "x": 0.1},
    "bear": {"ish": 0.6, "x": 0.4},
    "Ne": {"utral": 0.5, "x": 0.5},
}
#: P(label) by hand: B·ull·ish + bull·ish, B·ear·ish + bear·ish, Ne·utral + neutral.
GOLDEN = {"bullish": 0.4 * 0.5 * 0.8 + 0.1 * 0.9,   # 0.25
          "bearish": 0.4 * 0.3 * 0.5 + 0.1 * 0.6,   # 0.12
          "neutral": 0.1 * 0.5 + 0.05}              # 0.10


class BigramLM(torch.nn.Module):
    """logits[t] = log P(next | token t): exact whatever the padding, masks or cache."""

    def __init__(self, tok: PieceTokenizer) -> None:
        super().__init__()
        from transformers import LlamaConfig

        n = len(tok)
        table = torch.full((n, n), -1e4)
        table[:, tok.ids["x"]] = 0.0
        for cur, nxt in BIGRAM.items():
            table[tok.ids[cur]] = -1e4
            for piece, p in nxt.items():
                table[tok.ids[cur], tok.ids[piece]] = math.log(p)
        self.table = table
        self.config = LlamaConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                  num_key_value_heads=1, vocab_size=n, max_position_embeddings=512)
        self.config._attn_implementation = "eager"  # takes a custom (tree) mask

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=False, logits_to_keep=0):
        if past_key_values is not None:  # keep a (dummy) KV so prefix reuse runs for real
            kv = torch.zeros(input_ids.shape[0], 1, input_ids.shape[1], 8)
            past_key_values.update(kv, kv.clone(), 0)
        logits = self.table[input_ids]
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


@pytest.fixture(scope="module")
def stub() -> LoadedModel:
    tok = PieceTokenizer()
    return LoadedModel(model=BigramLM(tok), tokenizer=tok, fingerprint="stub", spec=None,
                       device="cpu")


def test_stub_spells_labels_in_several_pieces(stub: LoadedModel) -> None:
    tok = stub.tokenizer
    assert [tok.decode([i]) for i in tok.encode("Bullish")] == ["B", "ull", "ish"]
    assert [tok.decode([i]) for i in tok.encode("Neutral")] == ["Ne", "utral"]


@pytest.mark.parametrize(("prefix_reuse", "tree"), [(False, True), (True, True), (True, False)])
def test_whole_label_sequences_give_the_golden_probabilities(stub, prefix_reuse, tree) -> None:
    """The old scorer read only first tokens of 3+ letters: it dropped B… and Ne… (0.5 of the
    mass) and called bullish and bearish equally likely (0.4 / 0.4 / 0.2)."""
    scorer = LabelScorer(stub, tree=tree)
    assert (scorer._mask_kind is not None) == tree
    prompts = ["Label this:", "Another one, longer:", "Label this:"]
    golden = np.array([GOLDEN[label] for label in LABELS])
    probs = scorer.score(prompts, batch_size=2, prefix_reuse=prefix_reuse)
    np.testing.assert_allclose(probs, np.tile(golden / 0.47, (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(scorer.last_label_mass, 0.47, rtol=1e-5)
    raw = scorer.label_probs(prompts, batch_size=2, prefix_reuse=prefix_reuse)
    np.testing.assert_allclose(raw, np.tile(golden, (3, 1)), rtol=1e-5, atol=1e-9)


def test_label_mass_below_one_when_the_model_says_something_else(stub) -> None:
    scorer = LabelScorer(stub)
    probs = scorer.score(["No colon here"], prefix_reuse=False)  # every reply is "x"
    assert scorer.last_label_mass[0] < 1e-12 and np.isfinite(probs).all()


# ------------------------------------------------------------------ a tiny random Llama


@pytest.fixture(scope="module")
def tiny_loaded(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> LoadedModel:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_HOME", str(tmp_path_factory.mktemp("home")))
        folder = save_tiny(tmp_path_factory.mktemp("tiny"), tokenizer_dir, hidden=32)
        return load_model(ModelSpec(base=str(folder), device="cpu", precision="float32"))


def _prompts(tokenizer) -> list[str]:
    system = "Reply with one word: bullish, bearish or neutral."
    texts = ["Shares jump", "Profit warning issued by the board of directors", "Flat day"]
    return [tokenizer.apply_chat_template([{"role": "system", "content": system},
                                           {"role": "user", "content": t}],
                                          tokenize=False, add_generation_prompt=True)
            for t in texts]


def test_tiny_llama_labels_are_multi_token(tiny_loaded: LoadedModel) -> None:
    multi = [s for label in LABELS for s in variant_sequences(tiny_loaded.tokenizer, label) if len(s) > 1]
    assert len(multi) >= 4  # with SmolLM2's tokenizer: Bullish = B·ull·ish, Neutral = Ne·utral …


@pytest.mark.parametrize("prefix_reuse", [False, True])
def test_tiny_llama_matches_brute_force(tiny_loaded: LoadedModel, prefix_reuse: bool) -> None:
    prompts = _prompts(tiny_loaded.tokenizer)
    expected = np.vstack([brute_force(tiny_loaded, p) for p in prompts])
    scorer = LabelScorer(tiny_loaded)
    raw = scorer.label_probs(prompts, batch_size=2, prefix_reuse=prefix_reuse)
    np.testing.assert_allclose(np.log(raw), np.log(expected), atol=1e-4, rtol=0)
    probs = scorer.score(prompts, batch_size=3, prefix_reuse=prefix_reuse)
    np.testing.assert_allclose(probs, expected / expected.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(np.log(scorer.last_label_mass), np.log(expected.sum(1)),
                               atol=1e-4, rtol=0)


def test_tree_pass_equals_one_row_per_label_prefix(tiny_loaded: LoadedModel) -> None:
    prompts = _prompts(tiny_loaded.tokenizer)
    tree = LabelScorer(tiny_loaded).label_probs(prompts, batch_size=3)
    rows = LabelScorer(tiny_loaded, tree=False).label_probs(prompts, batch_size=3)
    np.testing.assert_allclose(np.log(tree), np.log(rows), atol=1e-4, rtol=0)
