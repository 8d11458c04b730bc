"""A headline with a blank symbol can be traded by no symbol: it is dropped, and said so in one
warning naming how many and the file (a universe run would otherwise lose it without a word)."""

from __future__ import annotations

import logging

import pytest

from llmbt.engine.config import RunConfig
from llmbt.engine.portfolio_run import run_news
from llmbt.errors import DataError
from llmbt.feeds import load_news


def test_a_universe_news_file_with_blank_symbols_warns_once_naming_the_count_and_file(tmp_path, caplog):
    path = tmp_path / "news.csv"
    path.write_text("timestamp,symbol,headline\n2015-03-02,AAPL,a\n2015-03-02,,b\n"
                    "2015-03-03,MSFT,c\n2015-03-03,  ,d\n")
    config = RunConfig(strategy="llm_news_portfolio", news=str(path), news_tz="America/New_York")
    with caplog.at_level(logging.WARNING, logger="llmbt"):
        news = run_news(config, universe=None)  # a file: the universe is not needed
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"news {str(path)!r}: dropped 2 headline(s) with a blank symbol (first at "
                        "row 2); put the symbol each headline is about in the symbol column"]
    assert list(news["symbol"]) == ["AAPL", "MSFT"] and list(news["headline"]) == ["a", "c"]
    caplog.clear()
    path.write_text("timestamp,symbol,headline\n2015-03-02,AAPL,a\n")
    with caplog.at_level(logging.WARNING, logger="llmbt"):
        assert len(load_news(path, tz="UTC")) == 1
    assert caplog.records == []


def test_a_news_file_without_any_symbol_is_one_error_line(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("timestamp,symbol,headline\n2015-03-02,,a\n2015-03-03,,b\n")
    with pytest.raises(DataError, match=r"every headline has a blank symbol \(first at row 1\); put "):
        load_news(path, tz="UTC")
