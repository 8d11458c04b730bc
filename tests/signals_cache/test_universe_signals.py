"""Universe scoring: each distinct headline is scored once and counted for each of its symbols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import ChatMLStub, daily_bars, news_frame

from llmbt.errors import ConfigError
from llmbt.signals_cache import universe
from llmbt.signals_cache.scorer_id import ScorerId
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.pipeline import ScoreResult
from llmbt.signals_cache.signals import SignalRequest

GOOD, BAD = "Acme beats estimates", "Acme sued over fraud"


@pytest.fixture
def keyword_sent(monkeypatch) -> list[str]:
    """Stub tokenizer and model: record the prompts sent; 'beats' is bullish, 'sued' bearish (a
    keyword decides the label, where the shared ``sent`` fixture hashes the text)."""
    calls: list[str] = []

    def fake(prompts, req, version):
        calls.extend(prompts)
        probs = np.array([_probs("bullish" if "beats" in p else "bearish") for p in prompts])
        return ScoreResult(probs, np.ones(len(prompts)), 0, len(prompts), 1, len(prompts), 0.0, 0.0), None

    monkeypatch.setattr(universe, "load_chat_template", lambda spec: ChatMLStub())
    monkeypatch.setattr(universe, "score_rendered", fake)
    monkeypatch.setattr(universe, "score_info", lambda *a: {})
    return calls


def _probs(label: str) -> np.ndarray:
    out = np.full(len(LABELS), 0.05)
    out[LABELS.index(label)] = 0.9
    return out


REQ = SignalRequest(mode="headlines")


def test_a_headline_of_several_symbols_is_scored_once_and_counted_for_each(keyword_sent):
    prices = {"AAA": daily_bars(5), "BBB": daily_bars(5)}
    news = news_frame([("2024-01-02T12:00Z", "AAA", GOOD), ("2024-01-02T12:00Z", "BBB", GOOD),
                  ("2024-01-03T12:00Z", "BBB", BAD), ("2024-01-03T12:00Z", "ZZZ", BAD)])
    panels, _ = universe.universe_signals(prices, news, REQ)
    assert len(keyword_sent) == 2 and sum(GOOD in p for p in keyword_sent) == 1  # ZZZ is not in the universe
    assert not any("AAA" in p or "BBB" in p for p in keyword_sent)  # the symbol-free template
    score = panels["score"]
    assert list(score.columns) == ["AAA", "BBB"]
    # a headline at 12:00 on Jan 2 is on the first bar opening after it: Jan 3 (no look-ahead)
    assert np.isnan(score.loc["2024-01-02", "AAA"]) and score.loc["2024-01-03", "AAA"] == pytest.approx(0.85)
    assert score.loc["2024-01-04", "BBB"] == pytest.approx(-0.85)


def test_only_the_window_and_its_warmup_are_scored(keyword_sent):
    prices = {"AAA": daily_bars(30)}
    news = news_frame([(f"2024-01-{d:02d}T12:00Z", "AAA", f"Acme beats estimates {d}") for d in range(1, 29)])
    req = SignalRequest(mode="headlines", warmup=3,
                        score_from=pd.Timestamp("2024-01-20", tz="UTC"))
    universe.universe_signals(prices, news, req)
    days = sorted(int(p.split("estimates ")[1].split("<")[0]) for p in keyword_sent)
    assert days == list(range(16, 29))  # 3 news bars before Jan 20 (Jan 17–19 ← news of 16–18) on


def test_headlines_from_before_a_short_history_are_not_piled_onto_its_first_bar(keyword_sent):
    """Fewer news bars than the warm-up before the start: scoring starts at bar 0, and only the
    headline of the night before the first bar may reach it, not last year's news."""
    prices = {"AAA": daily_bars(10, start="2024-03-01")}
    news = news_frame([("2023-03-01T12:00Z", "AAA", "Acme sued 2023"), ("2024-02-29T22:00Z", "AAA", GOOD),
                  ("2024-03-02T12:00Z", "AAA", BAD)])
    req = SignalRequest(mode="headlines", warmup=5,
                        score_from=pd.Timestamp("2024-03-03", tz="UTC"))
    panels, _ = universe.universe_signals(prices, news, req)
    assert not any("2023" in p for p in keyword_sent) and len(keyword_sent) == 2
    assert panels["score"].loc["2024-03-01", "AAA"] == pytest.approx(0.85)


def test_a_template_with_the_symbol_is_refused(keyword_sent):
    req = SignalRequest(scorer=ScorerId(template="headlines-v1"), mode="headlines")
    with pytest.raises(ConfigError, match="headlines-v2"):
        universe.universe_signals({"AAA": daily_bars(5)}, news_frame([("2024-01-02", "AAA", GOOD)]), req)


def test_a_symbol_without_news_has_an_all_nan_score(keyword_sent):
    panels, _ = universe.universe_signals({"AAA": daily_bars(5), "CCC": daily_bars(5)},
                                          news_frame([("2024-01-02T12:00Z", "AAA", GOOD)]), REQ)
    assert panels["score"]["CCC"].isna().all() and panels["vol"].shape == (5, 2)
