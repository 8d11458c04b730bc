"""One self-contained HTML page comparing models side by side (e.g. a base LLM vs its LoRA fine-tune).

The page needs no network: the CSS is inline and every chart is a base64 PNG drawn by matplotlib's
Agg backend on a private :class:`matplotlib.figure.Figure` (no pyplot state, matplotlib imported lazily).
Sections, in order: ``summary``, ``metrics``, ``equity``, ``drawdowns``, ``folds``, ``signals`` and
``calibration``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llmbt.errors import LlmbtError
from llmbt.reports._qs import naive
from llmbt.reports.page_parts import (
    cell,
    fmt_date,
    fmt_int,
    fmt_num,
    fmt_pct,
    html_table,
    legend,
    new_figure,
    no_data,
    plot_label,
    png_img,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SECTIONS = (("summary", "Summary"), ("metrics", "Metrics"), ("equity", "Equity curves"),
            ("drawdowns", "Drawdowns"), ("folds", "Walk-forward folds"), ("signals", "Signals"),
            ("calibration", "Calibration"))
FOLD_COLUMNS = ("fold", "model", "test_start", "test_end", "sharpe", "total_return", "max_drawdown",
                "trades", "eval_f1")
CALIBRATION_COLUMNS = ("confidence_bin", "mean_confidence", "hit_rate", "count")
BENCHMARK = "buy_and_hold"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
BENCHMARK_COLOR = "#7f7f7f"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1000px;margin:0 auto;padding:1rem 1.5rem 3rem}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.5rem 1.25rem 1rem;margin:1rem 0}
h1{font-size:1.6rem;margin:.8rem 0 .2rem}
h2{font-size:1.2rem;border-bottom:1px solid #eceff3;padding-bottom:.3rem}
ul.significance{font-size:1.05rem;background:#fff8e1;border-left:4px solid #f5b400;padding:.6rem 2rem}
table{border-collapse:collapse;font-size:.88rem;margin:.5rem 0}
th,td{border-bottom:1px solid #eceff3;padding:.25rem .7rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f1f3f6}
td.best{font-weight:700}p.nodata{color:#8a6d3b;font-style:italic}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
"""


@dataclass(frozen=True)
class ComparisonPage:
    """Everything the comparison page shows; see the module docstring for the sections.

    Attributes:
        title: page title.
        metrics: rows = metric names (e.g. "Sharpe"), columns = model names; floats.
        returns: model name -> per-period simple returns (DatetimeIndex); may include ``buy_and_hold``.
        prices: close prices over the same period (DatetimeIndex).
        signals: model name -> per-bar score in [-1, 1] (NaN = no signal).
        folds: one row per (fold, model) with the columns in :data:`FOLD_COLUMNS`.
        calibration: model -> frame with the columns in :data:`CALIBRATION_COLUMNS`.
        significance: plain-English sentences about the statistical tests.
        notes: run facts (run id, git commit, config hash, timings) shown in the "Run" table.
    """

    title: str
    metrics: pd.DataFrame
    returns: dict[str, pd.Series]
    prices: pd.Series
    signals: dict[str, pd.Series]
    folds: pd.DataFrame
    calibration: dict[str, pd.DataFrame]
    significance: list[str]
    notes: dict[str, str] = field(default_factory=dict)


def write_comparison_page(path: str | Path, page: ComparisonPage) -> Path:
    """Render ``page`` and write it to ``path`` (an ``.html`` file; parent folders are created).

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise LlmbtError(f"comparison page path {str(path)!r} must end in .html, e.g. out/compare.html")
    text = render_comparison_page(page)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def render_comparison_page(page: ComparisonPage) -> str:
    """Return the complete, self-contained HTML text of the comparison page.

    Raises:
        LlmbtError: when an input has the wrong type, index or columns.
    """
    _validate(page)
    colors = _colors(page)
    bodies = {
        "summary": _summary_html(page), "metrics": _metrics_html(page),
        "equity": _equity_html(page, colors), "drawdowns": _drawdowns_html(page, colors),
        "folds": _folds_html(page, colors), "signals": _signals_html(page, colors),
        "calibration": _calibration_html(page, colors),
    }
    title = html.escape(str(page.title))
    lead = {"summary": f"<h1>{title}</h1>\n"}  # the page title opens the summary section
    parts = [f'<section id="{sid}">\n{lead.get(sid, "")}<h2>{head}</h2>\n{bodies[sid]}\n</section>'
             for sid, head in SECTIONS]
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n<title>{title}</title>\n<style>{CSS}</style>\n</head>\n'
            '<body>\n<main>\n' + "\n".join(parts) + "\n</main>\n</body>\n</html>\n")


def _validate(page: ComparisonPage) -> None:
    """Raise :class:`LlmbtError` naming the first bad input and the fix."""
    if not isinstance(page.metrics, pd.DataFrame):
        raise LlmbtError(f"metrics must be a pandas DataFrame (rows = metrics, columns = models), "
                         f"got {type(page.metrics).__name__}")
    for kind in ("returns", "signals", "calibration"):
        if not isinstance(value := getattr(page, kind), Mapping):
            raise LlmbtError(f"{kind} must be a dict of model name -> data, got {type(value).__name__}")
    for name, series in page.returns.items():
        _check_series(f"returns[{name!r}]", series)
    _check_series("prices", page.prices)
    for name, series in page.signals.items():
        _check_series(f"signals[{name!r}]", series)
    _check_columns("folds", page.folds, FOLD_COLUMNS, "one row per (fold, model)")
    for name, frame in page.calibration.items():
        _check_columns(f"calibration[{name!r}]", frame, CALIBRATION_COLUMNS, "one row per confidence bin")


def _check_series(label: str, series: Any) -> None:
    """A non-empty series must be a pandas Series with a DatetimeIndex."""
    if not isinstance(series, pd.Series):
        raise LlmbtError(f"{label} must be a pandas Series indexed by time, got {type(series).__name__}")
    if len(series) and not isinstance(series.index, pd.DatetimeIndex):
        raise LlmbtError(f"{label} has a {type(series.index).__name__}, not a DatetimeIndex: index it by bar "
                         f"time, e.g. series.index = pd.to_datetime(dates)")


def _check_columns(label: str, frame: Any, columns: tuple[str, ...], rows: str) -> None:
    """A non-empty frame must hold every required column."""
    if not isinstance(frame, pd.DataFrame):
        raise LlmbtError(f"{label} must be a pandas DataFrame ({rows}), got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if len(frame) and missing:
        raise LlmbtError(f"{label} is missing column(s) {', '.join(missing)}: it needs {rows} with the "
                         f"columns {', '.join(columns)}")


def _summary_html(page: ComparisonPage) -> str:
    """Significance sentences, prominently, then the "Run" notes table."""
    if page.significance:
        items = "\n".join(f"<li>{html.escape(str(s))}</li>" for s in page.significance)
        parts = [f'<ul class="significance">\n{items}\n</ul>']
    else:
        parts = [no_data("no significance tests were run.")]
    if page.notes:
        rows = [[cell(html.escape(str(k))), cell(html.escape(str(v)))] for k, v in page.notes.items()]
        parts.append("<h3>Run</h3>\n" + html_table(["Item", "Value"], rows, "notes"))
    return "\n".join(parts)


def _metrics_html(page: ComparisonPage) -> str:
    """The metrics table, one row per metric, the best model's value in bold."""
    metrics = page.metrics
    if metrics.empty:
        return no_data("no metrics were computed.")
    rows = []
    for metric, row in metrics.iterrows():
        best = _best_column(str(metric), row)
        rows.append([cell(html.escape(str(metric)))]
                    + [cell(fmt_num(v), bold=col == best) for col, v in row.items()])
    return html_table(["Metric", *map(str, metrics.columns)], rows, "metrics")


def _best_column(metric: str, row: pd.Series) -> Any:
    """The column holding the best value of ``metric`` (``None`` when it has no clear best)."""
    values = pd.to_numeric(row, errors="coerce").dropna()
    name = metric.lower()
    no_best = ("trade", "count", "bars", "confidence", "exposure", "turnover", "cache")
    if len(values) < 2 or values.nunique() < 2 or any(w in name for w in no_best):
        return None
    if "drawdown" in name:
        return values.abs().idxmin()
    if any(w in name for w in ("volatil", "std", "ulcer", "error", "ece", "brier", "ms per")):
        return values.idxmin()
    return values.idxmax()


def _equity_curves(page: ComparisonPage) -> dict[str, pd.Series]:
    """Growth of 1 per model: ``(1 + r).cumprod()`` on a tz-naive index."""
    return {m: (1.0 + naive(r).fillna(0.0)).cumprod() for m, r in page.returns.items() if len(r)}


def _equity_html(page: ComparisonPage, colors: dict[str, str]) -> str:
    """All equity curves on one axes."""
    curves = _equity_curves(page)
    if not curves:
        return no_data("no returns were given.")
    fig, (ax,) = new_figure()
    for model, curve in curves.items():
        _line(ax, curve, model, colors)
    ax.set_ylabel("growth of 1")
    legend(ax)
    return png_img(fig, "Equity curves: " + ", ".join(curves))


def _drawdowns_html(page: ComparisonPage, colors: dict[str, str]) -> str:
    """All drawdown curves (in %) on one axes."""
    curves = _equity_curves(page)
    if not curves:
        return no_data("no returns were given.")
    fig, (ax,) = new_figure()
    for model, curve in curves.items():
        _line(ax, 100.0 * (curve / curve.cummax() - 1.0), model, colors)
    ax.set_ylabel("drawdown %")
    legend(ax)
    return png_img(fig, "Drawdowns: " + ", ".join(curves))


def _folds_html(page: ComparisonPage, colors: dict[str, str]) -> str:
    """Grouped bars of per-fold Sharpe per model, then the folds table."""
    folds = page.folds
    if folds.empty:
        return no_data("no walk-forward folds were run.")
    sharpe = folds.groupby(["fold", "model"], sort=False)["sharpe"].mean().unstack("model").sort_index()
    sharpe = sharpe[list(dict.fromkeys(folds["model"]))]
    fig, (ax,) = new_figure()
    width = 0.8 / sharpe.shape[1]
    x = np.arange(len(sharpe))
    for i, model in enumerate(sharpe.columns):
        ax.bar(x + (i - (sharpe.shape[1] - 1) / 2) * width, sharpe[model].to_numpy(dtype=float), width,
               label=plot_label(model), color=colors.get(model, BENCHMARK_COLOR))
    ax.set_xticks(x, [f"fold {k}" for k in sharpe.index])
    ax.axhline(0.0, color="#444", lw=0.6)
    ax.set_ylabel("Sharpe")
    legend(ax)
    return png_img(fig, "Per-fold Sharpe by model") + "\n" + _folds_table(folds)


def _folds_table(folds: pd.DataFrame) -> str:
    """The folds frame as an HTML table (returns and drawdowns in %)."""
    header = ["Fold", "Model", "Test start", "Test end", "Sharpe", "Total return %", "Max drawdown %",
              "Trades", "Eval F1"]
    rows = [[cell(fmt_int(r.fold)), cell(html.escape(str(r.model))), cell(fmt_date(r.test_start)),
             cell(fmt_date(r.test_end)), cell(fmt_num(r.sharpe)), cell(fmt_pct(r.total_return)),
             cell(fmt_pct(r.max_drawdown)), cell(fmt_int(r.trades)), cell(fmt_num(r.eval_f1))]
            for r in folds.itertuples(index=False)]
    return html_table(header, rows, "folds")


def _signals_html(page: ComparisonPage, colors: dict[str, str]) -> str:
    """Price on top, each model's score below on a shared time axis."""
    scores = {m: naive(s).dropna() for m, s in page.signals.items()}
    empty = [m for m, s in scores.items() if s.empty]
    scores = {m: s for m, s in scores.items() if not s.empty}
    notes = no_data(f"no signals from {', '.join(map(str, empty))}.") if empty else ""
    if not scores:
        return notes or no_data("no signals were given.")
    fig, (top, bottom) = new_figure(2)
    if len(page.prices):
        top.plot(naive(page.prices).index, naive(page.prices).to_numpy(), color="#333", lw=0.9)
    top.set_ylabel("close")
    for model, score in scores.items():
        bottom.plot(score.index, score.to_numpy(), lw=0.6, marker=".", ms=2,
                    label=plot_label(model), color=colors.get(model, BENCHMARK_COLOR))
    bottom.axhline(0.0, color="#444", lw=0.6)
    bottom.set(ylim=(-1.05, 1.05), ylabel="score")
    legend(bottom)
    return notes + png_img(fig, "Price and signals: " + ", ".join(scores))


def _calibration_html(page: ComparisonPage, colors: dict[str, str]) -> str:
    """Reliability plot: mean confidence vs hit rate per model, marker area by count."""
    frames = {m: f.dropna(subset=["mean_confidence", "hit_rate"]) for m, f in page.calibration.items()
              if len(f)}
    frames = {m: f.sort_values("mean_confidence") for m, f in frames.items() if len(f)}
    empty = [str(m) for m in page.calibration if m not in frames]
    notes = no_data(f"no calibration bins for {', '.join(empty)}.") if empty else ""
    if not frames:
        return notes or no_data("no calibration was computed.")
    biggest = float(np.nanmax([1.0, *(f["count"].max() for f in frames.values())]))
    fig, (ax,) = new_figure(figsize=(5.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=0.8, label="perfect calibration")
    for model, frame in frames.items():
        color = colors.get(model, BENCHMARK_COLOR)
        ax.plot(frame["mean_confidence"], frame["hit_rate"], color=color, lw=0.8, label=plot_label(model))
        ax.scatter(frame["mean_confidence"], frame["hit_rate"], color=color, alpha=0.7,
                   s=15 + 250 * frame["count"].fillna(0).to_numpy(dtype=float) / biggest)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence", ylabel="hit rate")
    legend(ax)
    return notes + png_img(fig, "Calibration: " + ", ".join(map(str, frames)))


def _colors(page: ComparisonPage) -> dict[str, str]:
    """One colour per model, the same in every chart; the buy-and-hold benchmark is grey."""
    names = [*page.metrics.columns, *page.returns, *page.signals, *page.calibration]
    if len(page.folds) and "model" in page.folds:
        names += list(page.folds["model"])
    models = [m for m in dict.fromkeys(names) if m != BENCHMARK]
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    return {**colors, BENCHMARK: BENCHMARK_COLOR}


def _line(ax: Axes, series: pd.Series, model: str, colors: dict[str, str]) -> None:
    """Plot one model's series; the benchmark is dashed."""
    ax.plot(series.index, series.to_numpy(dtype=float), lw=1.1, label=plot_label(model),
            color=colors.get(model, BENCHMARK_COLOR), ls="--" if model == BENCHMARK else "-")
