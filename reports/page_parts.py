"""The pieces every HTML page of ``llmbt.reports`` is made of: number and date formats (a dash
for a missing value), tables and cells, and matplotlib figures drawn on a private Agg canvas (no
pyplot state, matplotlib imported lazily) and inlined as base64 PNGs."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE = (9.0, 3.5)
DPI = 90
DASH = "–"


def commit_note(run: Mapping[str, Any]) -> str:
    """The "git commit" note of a results folder's run.json: its commit, and that the checkout had
    uncommitted changes when ``dirty`` (the code that ran was then not that commit's)."""
    commit = str(run.get("git_commit"))
    return f"{commit} + uncommitted changes (dirty)" if run.get("dirty") else commit


def fmt_num(value: Any, digits: int = 3) -> str:
    """Format a number with ``digits`` decimals (2 from 100 up); NaN and None become a dash."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    if math.isnan(x):
        return DASH
    return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.{digits}f}"


def fmt_date(value: Any) -> str:
    """Format a timestamp as YYYY-MM-DD (a dash when missing)."""
    ts = pd.Timestamp(value) if value is not None else pd.NaT
    return DASH if pd.isna(ts) else ts.strftime("%Y-%m-%d")


def fmt_pct(value: Any) -> str:
    """Format a fraction as a percentage with 2 decimals (a dash when missing)."""
    x = pd.to_numeric(value, errors="coerce")
    return fmt_num(100.0 * x, 2)


def fmt_int(value: Any) -> str:
    """Format a count as an integer (a dash when missing)."""
    return DASH if pd.isna(value) else f"{int(value):,d}"


def html_table(header: list[str], rows: list[list[str]], css_class: str) -> str:
    """An HTML table from an escaped header and rows of ready-made ``<td>`` cells."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f'<table class="{css_class}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'


def no_data(what: str) -> str:
    """The short note a section shows instead of a chart or table."""
    return f'<p class="nodata">No data: {html.escape(what)}</p>'


def cell(text: str, bold: bool = False) -> str:
    """A table cell holding already-escaped ``text``."""
    return f'<td class="best">{text}</td>' if bold else f"<td>{text}</td>"


def plot_label(name: Any) -> str:
    """A legend label matplotlib shows verbatim (no mathtext, no hidden ``_`` labels)."""
    text = str(name).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def legend(ax: Axes) -> None:
    """A small frameless legend in the best free corner."""
    ax.legend(loc="best", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)


def new_figure(nrows: int = 1, figsize: tuple[float, float] | None = None) -> tuple[Figure, list[Axes]]:
    """A private Agg-backed figure with ``nrows`` stacked axes sharing x (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = figsize or (FIGSIZE if nrows == 1 else (FIGSIZE[0], FIGSIZE[1] * 1.5))
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ratios = [2] + [1] * (nrows - 1)
    axes = fig.subplots(nrows, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios})
    return fig, list(axes[:, 0])


def png_img(fig: Figure, alt: str) -> str:
    """Encode ``fig`` as an inline base64 PNG ``<img>`` and release the figure."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI)
    finally:
        fig.clear()
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
