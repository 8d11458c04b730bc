"""The portfolio run's pages: the QuantStats tearsheet against the benchmark, and a sibling page with the
signal report (IC, quantile returns, turnover) and the per-symbol contribution table."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from llmbt.errors import LlmbtError
from llmbt.reports._signal_render import contribution_frame
from llmbt.reports.signal import SignalReport
from llmbt.reports.tearsheet import write_tearsheet

CSS = ("body{font-family:system-ui,sans-serif;max-width:980px;margin:1rem auto;padding:0 1rem;color:#1d2330}"
       "table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}th,td{border-bottom:1px solid #e3e6ea;"
       "padding:.2rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}"
       "p{font-size:.9rem;color:#444}")


def signal_page_path(path: str | Path) -> Path:
    """The sibling page of tearsheet ``path``: ``run.html`` -> ``run_signal.html``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_signal{path.suffix}")


def write_portfolio_page(path: str | Path, *, returns: pd.Series, benchmark: pd.Series | None,
                         report: SignalReport, contrib: pd.DataFrame, title: str | None = None,
                         periods: float = 252.0, top: int = 10,
                         notes: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """Write the tearsheet at ``path`` and the signal page beside it, each linking to the other.

    Args:
        path: the tearsheet's ``.html`` file; the signal page is :func:`signal_page_path` of it.
        returns: the portfolio's per-bar simple returns. benchmark: the equal-weight universe's.
        report: :func:`~llmbt.reports.signal.signal_report` of the run's scores.
        contrib: per-symbol contribution (index symbol; columns pnl, commission, fills, share).
        title: page title. periods: bars per year. top: best and worst names shown in the contribution table.
        notes: what biases the figures (survivorship, delistings, the selection), on both pages.

    Returns:
        (tearsheet path, signal page path).
    """
    if not isinstance(report, SignalReport):
        raise LlmbtError(f"report must be a SignalReport (from signal_report), got {type(report).__name__}")
    contrib_html = contribution_frame(contrib, top).to_html()  # validates before anything is written
    tearsheet = write_tearsheet(returns, path, benchmark=benchmark, title=title, periods=periods)
    sibling = signal_page_path(tearsheet)
    notes_html = _notes(notes or {})
    sibling.write_text(_signal_page(report, contrib_html, title or str(returns.name or "Portfolio"),
                                    tearsheet.name, notes_html), encoding="utf-8")
    _link_back(tearsheet, sibling.name, notes_html)
    return tearsheet, sibling


def _notes(notes: Mapping[str, str]) -> str:
    """One paragraph per note (``key: sentence``)."""
    return "".join(f"<p><b>{html.escape(k)}</b>: {html.escape(v)}</p>\n" for k, v in notes.items() if v)


def _signal_page(report: SignalReport, contrib_html: str, title: str, tearsheet: str,
                 notes_html: str = "") -> str:
    """The sibling page's HTML."""
    head = html.escape(f"{title}: signal report")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{head}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<h1>{head}</h1>\n"
            f'<p><a href="{html.escape(tearsheet)}">Tearsheet against the benchmark</a></p>\n'
            f"{notes_html}{report.to_html()}<section>\n<h2>Contribution by symbol</h2>\n{contrib_html}\n"
            "<p>Best and worst names by pnl; the total counts every symbol.</p>\n</section>\n"
            "</body>\n</html>\n")


def _link_back(tearsheet: Path, sibling: str, notes_html: str = "") -> None:
    """Add the notes and a link to the signal page at the end of the tearsheet's body."""
    text = tearsheet.read_text(encoding="utf-8")
    link = (f'{notes_html}<p style="text-align:center"><a href="{html.escape(sibling)}">Signal report '
            "and contribution by symbol</a></p>\n")
    cut = text.rfind("</body>")
    tearsheet.write_text(text[:cut] + link + text[cut:] if cut >= 0 else text + link, encoding="utf-8")
