"""Figures the guides quote in their prose from a published study table, kept equal to it.

A guide quotes one cell of a study's table between two markers (block name, row, column)::

    bf16 scores headlines <!-- quote:precision_speed|vs float32|256 headlines, bf16 -->1.470<!-- /quote -->×
    as fast

``bt study run`` rewrites every quote of the study from its new table, as it rewrites the blocks
(:mod:`llmbt.reports.studies`), and a test checks that each quote in the docs equals its cell in
``docs/results/STUDY.md``; so a figure in a sentence is a study's number, never typed by hand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from llmbt.errors import LlmbtError, did_you_mean

QUOTE = re.compile(r"<!-- quote:(?P<block>[\w/-]+)\|(?P<row>[^|>]+)\|(?P<column>[^|>]+) -->"
                   r"(?P<text>[^<]*)<!-- /quote -->")


class Quote(NamedTuple):
    """One quoted cell: the study block it comes from, its row and column, and the text shown."""

    block: str
    row: str
    column: str
    text: str


def quotes_in(text: str) -> list[Quote]:
    """Every quote in the markdown ``text``, in order."""
    return [Quote(m["block"], m["row"], m["column"], m["text"]) for m in QUOTE.finditer(text)]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_cell(table: str, row: str, column: str, block: str = "the table") -> str:
    """The cell of the markdown ``table`` in the row whose first cell is ``row``, under ``column``.

    Raises:
        LlmbtError: no such row or column (naming the closest one).
    """
    lines = [line for line in table.splitlines() if line.startswith("|")]
    if len(lines) < 3:
        raise LlmbtError(f"{block} is not a table with rows; quote a study table's cell")
    header, rows = _cells(lines[0]), {_cells(line)[0]: _cells(line) for line in lines[2:]}
    if row not in rows:
        raise LlmbtError(f"{block} has no row {row!r}.{did_you_mean(row, rows)} "
                         "Quote a row of the table as its results page prints it.")
    if column not in header[1:]:
        raise LlmbtError(f"{block} has no column {column!r}.{did_you_mean(column, header[1:])} "
                         f"Its columns: {', '.join(header[1:])}.")
    return rows[row][header.index(column)]


def replace_quotes(path: Path, block: str, table: str) -> bool:
    """Rewrite the quotes of study block ``block`` in the markdown file ``path`` from ``table``;
    True when the file changed.

    Raises:
        LlmbtError: a quote names a row or column the new table lacks (the file is left as it was).
    """
    text = path.read_text(encoding="utf-8")

    def fill(m: re.Match[str]) -> str:
        if m["block"] != block:
            return m[0]
        cell = table_cell(table, m["row"], m["column"], f"{path}: study table {block}")
        return f"<!-- quote:{m['block']}|{m['row']}|{m['column']} -->{cell}<!-- /quote -->"

    new = QUOTE.sub(fill, text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
