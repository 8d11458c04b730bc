"""--anonymize: company names and tickers of a names table become placeholders (Glasserman & Lin).

The property test runs on the shared Reuters headlines (62,999 rows) and the S&P 500 names table:
after masking, no company's core name and no multi-letter ticker of any listed symbol is left as a
whole word. Its check is independent of the masker's regex (substring search, then one small
regex per name found).
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from llmbt.errors import DataError
from llmbt.signals_cache.anonymize import (
    FOCAL,
    anonymize_news,
    build_masker,
    core_name,
    load_masker,
    load_names,
)

NAMES = {"AAPL": "Apple Inc", "MSFT": "Microsoft Corporation", "F": "Ford Motor Company",
         "T": "AT&T Inc", "GOOG": "Alphabet Inc", "GOOGL": "Alphabet Inc",
         "JPM": "J P Morgan Chase & Co", "TGT": "Target Corporation", "ALL": "Allstate Corporation (The)",
         "KSS": "Kohl&#39;s Corporation", "XOM": "Exxon Mobil Corporation"}


@pytest.fixture(scope="module")
def masker():
    return build_masker(NAMES)


@pytest.mark.parametrize("company, core", [
    ("Apple Inc", "Apple"), ("Allstate Corporation (The)", "Allstate"), ("The AES Corporation", "AES"),
    ("J P Morgan Chase & Co", "J P Morgan Chase"), ("Eli Lilly and Company", "Eli Lilly"),
    ("Kohl&#39;s Corporation", "Kohl's"), ("News Corporation", "News Corporation"),
    ("Baker Hughes a GE company", "Baker Hughes"), ("Phillips 66", "Phillips 66"),
    ("Willis Towers Watson Public Limited Company", "Willis Towers Watson"),
    ("Interpublic Group of Companies Inc (The)", "Interpublic")])
def test_core_name_strips_legal_suffixes_and_notes(company, core):
    assert core_name(company) == core


@pytest.mark.parametrize("symbol, text, masked", [
    ("AAPL", "Tokyo court says Samsung infringed Apple 'bounce-back' patent",
     "Tokyo court says Samsung infringed Company A 'bounce-back' patent"),
    ("AAPL", "Apple's iPhone sales beat Microsoft (MSFT.O) forecasts; AAPL up",
     "Company A's iPhone sales beat Company B (Company B.O) forecasts; Company A up"),
    ("MSFT", "Apple's iPhone sales beat Microsoft forecasts",
     "Company B's iPhone sales beat Company A forecasts"),
    ("JPM", "Bank hires JPMorgan banker; J.P. Morgan and JP Morgan Chase & Co agree",
     "Bank hires Company A banker; Company A and Company A & Co agree"),
    ("F", "Ford (F) and AT&T (T.N) sign deal; NYSE:F up",
     "Company A (Company A) and Company B (Company B.N) sign deal; NYSE:Company A up"),
    ("GOOGL", "Alphabet's GOOG shares rise", "Company A's Company A shares rise"),
    ("XOM", "ExxonMobil and Exxon Mobil Corp: EXXON says", "Company A and Company A: Company A says"),
])
def test_hand_checked_headlines(masker, symbol, text, masked):
    assert masker.mask(text, symbol) == masked


def test_common_words_and_one_letter_tickers_stay_outside_ticker_contexts(masker):
    text = "Analysts cut price target; a T-shirt maker and F-16 jets: all of it at 5 p.m."
    assert masker.mask(text, "TGT") == text  # lower-case "target", T, F, "all" are words
    assert masker.mask("Target beats; ALL falls", "TGT") == "Company A beats; Company B falls"


def test_others_are_lettered_in_order_of_first_mention_and_masking_is_idempotent(masker):
    text = "Microsoft, Apple and AT&T join; Apple leads"
    once = masker.mask(text, "KSS")
    assert once == "Company B, Company C and Company D join; Company C leads"
    assert masker.mask(once, "KSS") == once and masker.mask(once, None) == once


def test_anonymize_news_masks_per_row_symbol_and_hides_the_symbol(masker):
    news = pd.DataFrame({"symbol": ["AAPL", "MSFT"], "headline": ["Apple sues Microsoft"] * 2})
    out = anonymize_news(news, masker)
    assert list(out["headline"]) == ["Company A sues Company B", "Company B sues Company A"]
    assert set(out["symbol"]) == {FOCAL} and list(news["symbol"]) == ["AAPL", "MSFT"]


def test_a_bad_names_table_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="--names .*not found"):
        load_names(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("ticker,name\nAAPL,Apple\n")
    with pytest.raises(DataError, match="needs columns symbol,company"):
        load_names(bad)
    aliases = tmp_path / "aliases.csv"
    aliases.write_text("symbol,company\nGOOGL,Alphabet Inc\nGOOGL,Google\n")
    assert load_masker(aliases).mask("Google and Alphabet", "GOOGL") == "Company A and Company A"


def _leftovers(text: str, names: dict[str, list[str]]) -> list[str]:
    """Core names (any case if several words, else as written/Title/UPPER) and multi-letter
    tickers still present as whole words in ``text``."""
    lower, words, found = text.lower(), set(re.findall(r"\w+", text)), []
    for symbol, companies in names.items():
        core = core_name(companies[0])
        if " " in core:
            checks = [(core, re.I)] if core.lower() in lower else []
        else:
            checks = [(f, 0) for f in {core, core.upper(), core.capitalize()} if f in text]
        checks += [(symbol, 0)] if len(symbol) > 1 and symbol in words else []
        for form, flags in checks:  # a plain word is whole iff it is one of the text's words
            if flags or not re.fullmatch(r"\w+", form) or form in words:
                found += re.findall(rf"(?<!\w){re.escape(form)}(?!\w)", text, flags)
    return found


def test_no_listed_name_or_ticker_survives_on_the_shared_headlines(shared_news):
    names = load_names(shared_news / "sp500_companies.csv")
    news = pd.read_csv(shared_news / "reuters_headlines_2013_2016.csv.gz")
    assert len(news) == 62_999 and len(names) == 499
    masker = load_masker(shared_news / "sp500_companies.csv")
    masked = [masker.mask(h, s) for h, s in zip(news["headline"], news["symbol"], strict=True)]
    assert len(_leftovers("\n".join(news["headline"][:3000]), names)) > 1000  # the check works
    assert _leftovers("\n".join(masked), names) == []
    changed = sum(a != b for a, b in zip(masked, news["headline"], strict=True))
    assert changed > 0.6 * len(news)
    again = [masker.mask(m, s) for m, s in zip(masked, news["symbol"], strict=True)]
    assert again == masked  # idempotent


def test_the_focal_placeholder_appears_when_the_own_name_was_there(shared_news):
    names = load_names(shared_news / "sp500_companies.csv")
    news = pd.read_csv(shared_news / "reuters_headlines_2013_2016.csv.gz").iloc[::7]
    masker = load_masker(shared_news / "sp500_companies.csv")
    own = [(h, s) for h, s in zip(news["headline"], news["symbol"], strict=True)
           if _leftovers(h, {s: names[s]})]
    assert len(own) > 3000
    assert all(FOCAL in masker.mask(h, s) for h, s in own)
