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
