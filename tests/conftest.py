"""Shared test helpers: a ChatML stub tokenizer and the real GOOG sample read straight from its CSV."""

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
