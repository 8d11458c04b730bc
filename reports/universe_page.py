"""The pages of universe arms (a universe walk-forward, or ``bt compare --arm`` of a universe strategy):
``comparison.html`` and a QuantStats ``tearsheet.html`` of the best arm against the equal-weight universe.

The comparison page is self-contained like :mod:`llmbt.reports.compare_page` (inline CSS, the chart a
base64 PNG, its helpers reused). Sections, in order: ``summary`` (the statistics as the CLI prints them,
what was not computed and why, the run notes), ``arms`` (per arm: Sharpe, return, drawdown, IC, its own
SPA p-values, DSR, StepM), ``tests`` (IC and Sharpe differences against the reference arm with their
CIs; SPA / Reality Check of all arms; the Deflated Sharpe of the best), ``equity`` (growth of 1 of each
arm and of the equal-weight universe) and ``folds`` (per fold and arm: Sharpe, return, IC).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from llmbt.reports._qs import naive
from llmbt.reports.compare_page import BENCHMARK_COLOR, CSS, PALETTE
from llmbt.reports.crosssection import crosssection_table
from llmbt.reports.page_parts import (
    DASH,
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
from llmbt.reports.tearsheet import write_tearsheet

SECTIONS = (("summary", "Summary"), ("arms", "Arms"), ("tests", "Differences, SPA and Deflated Sharpe"),
            ("equity", "Cumulative returns"), ("folds", "Per-fold Sharpe and IC"))


def write_universe_pages(folder: str | Path, *, returns: Mapping[str, pd.Series], folds: pd.DataFrame,
                         stats: dict, skipped: Mapping[str, str], arms: Sequence[str], title: str,
                         notes: Mapping[str, str], benchmark: str = "equal_weight",
                         periods: float = 252.0) -> tuple[Path, Path]:
    """Write ``comparison.html`` and ``tearsheet.html`` (best arm vs ``benchmark``) into ``folder``.

    Args:
        returns: per-period returns by arm and ``benchmark``.
        folds: one row per (fold, arm): ``fold``, ``model``, ``test_start``, ``test_end``, ``sharpe``,
            ``total_return``, ``mean_ic``, ``ic_t``, ``ic_days``.
        stats, skipped: :func:`llmbt.reports.universe_wf.universe_wf_stats`.
        arms: the arms, reference first. title: page title. notes: run facts.
        benchmark: the benchmark's ``returns`` key. periods: periods per year.

    Returns:
        (comparison page, tearsheet) paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "comparison.html"
    page.write_text(render_universe_page(returns=returns, folds=folds, stats=stats, skipped=skipped,
                                         arms=arms, title=title, notes=notes, benchmark=benchmark,
                                         periods=periods), encoding="utf-8")
    best = best_arm(stats, returns, arms, periods)
    sheet = write_tearsheet(returns[best].rename(best), folder / "tearsheet.html",
                            benchmark=returns[benchmark].rename(benchmark),
                            title=f"{best} (best of {len(arms)} arms by Sharpe) vs {benchmark}",
                            periods=periods)
    return page, sheet


def best_arm(stats: dict, returns: Mapping[str, pd.Series], arms: Sequence[str],
             periods: float = 252.0) -> str:
    """The arm with the highest Sharpe ratio (the DSR's best arm; the first arm when none is defined)."""
    from llmbt.engine.metrics import sharpe_ratio

    if "dsr" in stats:
        return str(stats["dsr"]["best_arm"])
    sharpes = pd.Series({a: sharpe_ratio(returns[a], periods) for a in arms}, dtype=float).dropna()
    return str(sharpes.idxmax()) if len(sharpes) else str(arms[0])


def render_universe_page(*, returns: Mapping[str, pd.Series], folds: pd.DataFrame, stats: dict,
                         skipped: Mapping[str, str], arms: Sequence[str], title: str,
                         notes: Mapping[str, str], benchmark: str, periods: float) -> str:
    """The complete HTML text of the universe comparison page (arguments: :func:`write_universe_pages`)."""
    bodies = {"summary": _summary(stats, skipped, notes),
              "arms": _arms(returns, stats, arms, benchmark, periods), "tests": _tests(stats),
              "equity": _equity(returns, [*arms, benchmark], benchmark), "folds": _folds(folds)}
    head = html.escape(title)
    parts = [f'<section id="{sid}">\n{f"<h1>{head}</h1>" if sid == "summary" else ""}<h2>{name}</h2>\n'
             f"{bodies[sid]}\n</section>" for sid, name in SECTIONS]
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<link rel="icon" href="data:,">\n<title>{head}</title>\n<style>{CSS}</style>\n</head>\n'
            "<body>\n<main>\n" + "\n".join(parts) + "\n</main>\n</body>\n</html>\n")


def _summary(stats: dict, skipped: Mapping[str, str], notes: Mapping[str, str]) -> str:
    parts = [f"<pre>{html.escape(crosssection_table(stats))}</pre>" if stats else no_data("no statistic.")]
    if skipped:
        items = "".join(f"<li>{html.escape(k)}: not computed ({html.escape(v)})</li>"
                        for k, v in skipped.items())
        parts.append(f'<ul class="significance">{items}</ul>')
    rows = [[cell(html.escape(str(k))), cell(html.escape(str(v)))] for k, v in notes.items()]
    return "\n".join([*parts, "<h3>Run</h3>", html_table(["Item", "Value"], rows, "notes")])


def _arms(returns: Mapping[str, pd.Series], stats: dict, arms: Sequence[str], benchmark: str,
          periods: float) -> str:
    from llmbt.reports.metrics import headline_metrics

    ic, alone = stats.get("ic", {}), stats.get("spa_arms", {})
    dsr, stepm = stats.get("dsr", {}), stats.get("spa", {}).get("stepm")
    rows = []
    for arm in [*arms, benchmark]:
        m, i, s = headline_metrics(returns[arm], periods), ic.get(arm, {}), alone.get(arm, {})
        superior = DASH if stepm is None or arm == benchmark else ("yes" if arm in stepm else "no")
        rows.append([cell(html.escape(arm)), cell(fmt_num(m["Sharpe"])), cell(fmt_pct(m["Total return"])),
                     cell(fmt_pct(m["Max drawdown"])), cell(fmt_num(i.get("mean_ic"), 4)),
                     cell(fmt_num(i.get("t_stat_nonoverlap"), 2)), *(cell(fmt_num(s.get(k))) for k in
                     ("p_consistent", "p_lower", "p_upper")), cell(fmt_num(dsr.get("dsrs", {}).get(arm))),
                     cell(superior)])
    header = ["Arm", "Sharpe", "Total return %", "Max drawdown %", "Mean IC", "IC t", "SPA p (alone)",
              "lower", "upper", f"DSR ({dsr.get('n_trials', DASH)} trials)", "StepM superior"]
    note = ("<p>SPA p (alone): the arm against the benchmark as if it were the only arm tried; the "
            "family-wise answers are the SPA over all arms and StepM below.</p>")
    return html_table(header, rows, "arms") + note


def _tests(stats: dict) -> str:
    rows = []
    for key, what, digits in (("ic_difference", "IC", 4), ("sharpe_difference", "Sharpe", 2)):
        for d in stats.get(key, []):
            numbers = [fmt_num(d[k], digits) for k in ("diff", "low", "high")] + [fmt_num(d["p_value"])]
            rows.append([cell(what), cell(html.escape(" - ".join(d["arms"]))), *map(cell, numbers),
                         cell(fmt_int(d["n"])), cell("yes" if d["significant"] else "no")])
    parts = [html_table(["Statistic", "Arms", "Difference", "CI low", "CI high", "p", "n", "Significant"],
                        rows, "differences") if rows else no_data("too few days for the differences.")]
    if spa := stats.get("spa"):
        cells = [spa["p_consistent"], spa["p_lower"], spa["p_upper"]]
        parts.append(html_table(["Test", "SPA p (consistent)", "lower", "Reality Check p (upper)", "Best arm",
                                 "StepM superior", "Arms", "Periods"],
                                [[cell("all arms vs the benchmark"), *(cell(fmt_num(c)) for c in cells),
                                  cell(html.escape(spa["best_arm"])),
                                  cell(html.escape(", ".join(spa["stepm"]) or "none")),
                                  cell(fmt_int(spa["n_arms"])), cell(fmt_int(spa["n"]))]], "spa"))
    if dsr := stats.get("dsr"):
        parts.append(html_table(["Best arm", "Sharpe", "Trials", "Expected best of skill-less", "DSR"],
                                [[cell(html.escape(dsr["best_arm"])), cell(fmt_num(dsr["sharpe"])),
                                  cell(fmt_int(dsr["n_trials"])), cell(fmt_num(dsr["expected_max_sharpe"])),
                                  cell(fmt_num(dsr["dsr"]))]], "dsr"))
    return "\n".join(parts)


def _equity(returns: Mapping[str, pd.Series], names: Sequence[str], benchmark: str) -> str:
    curves = {n: (1.0 + naive(returns[n]).fillna(0.0)).cumprod() for n in names if len(returns[n])}
    if not curves:
        return no_data("no returns.")
    fig, (ax,) = new_figure()
    for i, (name, curve) in enumerate(curves.items()):
        bench = name == benchmark
        ax.plot(curve.index, curve.to_numpy(dtype=float), lw=1.1, label=plot_label(name),
                ls="--" if bench else "-", color=BENCHMARK_COLOR if bench else PALETTE[i % len(PALETTE)])
    ax.set_ylabel("growth of 1")
    legend(ax)
    return png_img(fig, "Cumulative returns: " + ", ".join(curves))


def _folds(folds: pd.DataFrame) -> str:
    if folds.empty:
        return no_data("no fold ran.")
    rows = [[cell(fmt_int(r.fold)), cell(html.escape(str(r.model))), cell(fmt_date(r.test_start)),
             cell(fmt_date(r.test_end)), cell(fmt_num(r.sharpe)), cell(fmt_pct(r.total_return)),
             cell(fmt_num(r.mean_ic, 4)), cell(fmt_num(r.ic_t, 2)), cell(fmt_int(r.ic_days))]
            for r in folds.itertuples(index=False)]
    return html_table(["Fold", "Arm", "Test start", "Test end", "Sharpe", "Total return %", "Mean IC", "IC t",
                   "IC days"], rows, "folds")
