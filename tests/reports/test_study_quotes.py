"""Figures quoted in the guides' prose: equal to their cell in the published study table, rewritten
with it, and a quote of a row or column the table lacks is one clear error."""

from __future__ import annotations

import pytest
from helpers import ROOT

from llmbt.errors import LlmbtError
from llmbt.reports.studies import blocks_in, study_of
from llmbt.reports.study_quotes import quotes_in, replace_quotes, table_cell

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TABLE = ("| Measurement | a | b, bf16 |\n|---|---:|---:|\n"
         "| items per s | 10.1 | 13.9 |\n| vs a | 1.000 | 1.371 |\n")


def _published(block: str) -> str:
    page = (ROOT / "docs" / "results" / f"{study_of(block)}.md").read_text()
    return next(t for name, _, t in blocks_in(page) if name == block)


def test_every_figure_the_docs_quote_equals_its_cell_in_the_published_table() -> None:
    quotes = [(page, q) for page in PAGES for q in quotes_in(page.read_text())]
    assert len({q.block for _, q in quotes}) >= 3, "the guides quote study tables"
    for page, q in quotes:
        assert table_cell(_published(q.block), q.row, q.column) == q.text, \
            f"{page.relative_to(ROOT)}: the quote of {q.block} {q.row!r} / {q.column!r} is stale"


def test_no_quote_starts_a_line_where_markdown_would_take_it_for_an_html_block() -> None:
    starts = [f"{page.relative_to(ROOT)}:{n}" for page in PAGES
              for n, line in enumerate(page.read_text().splitlines(), 1)
              if line.lstrip().startswith("<!-- quote:")]
    assert not starts, f"move a word before the quote: {starts}"


def test_a_cell_is_found_by_its_row_and_column() -> None:
    assert table_cell(TABLE, "vs a", "b, bf16") == "1.371"
    assert table_cell(TABLE, "items per s", "a") == "10.1"


@pytest.mark.parametrize(("row", "column", "expected"), [
    ("items per sec", "a", "no row 'items per sec'. Did you mean 'items per s'?"),
    ("vs a", "b bf16", "no column 'b bf16'. Did you mean 'b, bf16'? Its columns: a, b, bf16"),
])
def test_a_quote_of_a_missing_row_or_column_names_the_closest(row, column, expected) -> None:
    with pytest.raises(LlmbtError, match=expected.replace("?", r"\?")):
        table_cell(TABLE, row, column, "study table x")


def test_replace_rewrites_the_quotes_of_one_block_only(tmp_path) -> None:
    text = ("bf16 is <!-- quote:x|vs a|b, bf16 -->1.2<!-- /quote -->× as fast, "
            "<!-- quote:y|vs a|a -->7<!-- /quote --> elsewhere.\n")
    page = tmp_path / "guide.md"
    page.write_text(text)
    assert replace_quotes(page, "x", TABLE)
    assert page.read_text() == text.replace("-->1.2<!--", "-->1.371<!--")
    assert not replace_quotes(page, "x", TABLE), "an unchanged quote leaves the file alone"


def test_a_quote_the_new_table_lacks_leaves_the_file_as_it_was(tmp_path) -> None:
    page = tmp_path / "guide.md"
    page.write_text("<!-- quote:x|ms per item|a -->3<!-- /quote -->\n")
    with pytest.raises(LlmbtError, match="guide.md: study table x has no row 'ms per item'"):
        replace_quotes(page, "x", TABLE)
    assert page.read_text() == "<!-- quote:x|ms per item|a -->3<!-- /quote -->\n"
