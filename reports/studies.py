"""The markdown a study writes (``docs/results/NAME.md``) and the blocks of it the docs include.

A results file is the study's table (the metrics of :data:`llmbt.reports.metrics.METRICS`,
formatted as ``bt run`` prints them, one column per return series, plus the study's extra rows)
between two markers, then one provenance line (run id, recipe hash, commit, machine, date)::

    <!-- study:demo recipe:0123456789abcdef -->
    | Metric | llm_sentiment | buy_and_hold |
    ...
    <!-- /study:demo -->
    Study `demo` (studies/demo.yaml), run 3c1d…, commit 8bce7c3, …

Any markdown file of the docs (and the README) may hold the same marked block: ``bt study run``
rewrites each one, so no table there is typed by hand, and a test checks each block names a study
whose recipe still matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from llmbt.engine.metrics import bars_per_year as periods_per_year
from llmbt.reports.metrics import METRICS, headline_metrics

BLOCK = re.compile(r"<!-- study:(?P<name>[\w-]+) recipe:(?P<hash>[0-9a-f]{16}) -->\n"
                   r"(?P<table>.*?)<!-- /study:(?P=name) -->", re.S)


def study_table(returns: Mapping[str, pd.Series], extra: Mapping[str, Mapping[str, str]]) -> str:
    """The markdown metric table of ``returns`` (one column each), with ``extra`` rows."""
    names = list(returns)
    ppy = periods_per_year(next(iter(returns.values())).index)
    values = {n: headline_metrics(r, ppy) for n, r in returns.items()}
    lines = ["| Metric | " + " | ".join(names) + " |", "|---" + "|---:" * len(names) + "|"]
    for metric, (_, fmt) in METRICS.items():
        lines.append(f"| {metric} | " + " | ".join(fmt.format(values[n][metric]) for n in names) + " |")
    for row, cells in extra.items():
        lines.append(f"| {row} | " + " | ".join(cells.get(n, "") for n in names) + " |")
    return "\n".join(lines) + "\n"


def block(name: str, recipe_hash: str, table: str) -> str:
    """``table`` between the study's markers."""
    return f"<!-- study:{name} recipe:{recipe_hash} -->\n{table}<!-- /study:{name} -->"


def results_markdown(title: str, name: str, recipe_hash: str, table: str, provenance: str,
                     facts: Mapping[str, object]) -> str:
    """The whole ``docs/results/NAME.md`` page."""
    notes = "".join(f"- {k}: {v}\n" for k, v in facts.items())
    return (f"# {title}\n\n{block(name, recipe_hash, table)}\n\n{provenance}\n"
            + (f"\n{notes}" if notes else ""))


def blocks_in(text: str) -> list[tuple[str, str, str]]:
    """(name, recipe hash, table) of every study block in ``text``."""
    return [(m["name"], m["hash"], m["table"]) for m in BLOCK.finditer(text)]


def replace_blocks(path: Path, name: str, recipe_hash: str, table: str) -> bool:
    """Rewrite the blocks of study ``name`` in the markdown file ``path``; True when it changed."""
    text = path.read_text(encoding="utf-8")
    new = BLOCK.sub(lambda m: block(name, recipe_hash, table) if m["name"] == name else m[0], text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
