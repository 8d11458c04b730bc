"""Scoring pieces shared by test modules (``from helpers_scoring import ...``): the headlines and chat
prompts the scorer tests score, the brute-force label probabilities, SmolLM2's chat template with a
model folder and a stub scorer that use it, and a fixed-probability arm for calibration."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from llmbt.signals_cache.model.loading import LoadedModel, ModelSpec
from llmbt.signals_cache.scoring.labels import LABELS

SYSTEM = (
    "You are a disciplined financial news analyst. Judge the likely effect of the headline on "
    "the price over the next few days. Reply with exactly one word: bullish, bearish or neutral."
)
HEADLINES = [
    "Company beats earnings expectations and raises guidance",
    "Regulator opens fraud probe; shares halted",
    "Board meets on Tuesday",
    "Quarterly revenue rose 4 % to EUR 120 million while the operating margin narrowed slightly "
    "because of higher raw material prices and one-off restructuring costs in two plants",
    "CEO resigns",
    "New contract with a national railway worth about USD 300 million over five years",
    "Dividend unchanged",
]


def chat_prompts(tokenizer: object, headlines: list[str]) -> list[str]:
    return [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Headline: {h}"}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for h in headlines
    ]


def variant_sequences(tokenizer, label: str) -> set[tuple[int, ...]]:
    """Token ids of the spellings scored: lower-case and Capitalised, with and without a space."""
    words = {label.lower(), label.capitalize()}
    return {tuple(tokenizer.encode(w, add_special_tokens=False))
            for w in words | {" " + w for w in words}}


def brute_force(loaded: LoadedModel, prompt: str) -> np.ndarray:
    """Σ over spellings of Π P(token | prompt + earlier tokens), one plain forward per spelling."""
    import torch

    tok, out = loaded.tokenizer, []
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    for label in LABELS:
        total = 0.0
        for seq in variant_sequences(tok, label):
            with torch.inference_mode():
                logits = loaded.model(input_ids=torch.tensor([ids + list(seq)])).logits[0]
            logp = torch.log_softmax(logits.double(), -1)
            total += math.exp(sum(logp[len(ids) - 1 + k, t] for k, t in enumerate(seq)))
        out.append(total)
    return np.array(out)


SMOLLM2_CHATML = (  # SmolLM2-135M-Instruct's template
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")
SMOLLM2_TOKENS = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}


def model_folder(tmp_path: Path) -> Path:
    """A model folder the fingerprint accepts (weights are only hashed, never loaded here)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"not really weights")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": SMOLLM2_CHATML}))
    return folder


class StubScorer:
    """Stands in for the model: probabilities from the prompt's length, label mass 0.9."""

    def __init__(self, spec: ModelSpec) -> None:
        self.load_seconds = 0.0

    def score(self, prompts: list[str], batch_size: int) -> np.ndarray:
        bull = np.array([len(p) % 7 / 10 for p in prompts])
        return np.column_stack([bull, 0.6 - bull / 2, 0.3 - bull / 2])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class FixedArm:
    """An arm whose probabilities are given per text."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def probs(self, examples):
        texts = [getattr(e, "text", None) or e[0] for e in examples]
        return np.array([self.table[t] for t in texts]), LABELS, {"ms_per_item": 0.1}
