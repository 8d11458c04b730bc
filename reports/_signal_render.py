"""The signal report (:class:`SignalReport`, computed by :mod:`llmbt.reports.signal`), its text and
HTML rendering, and a per-symbol contribution table."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmbt.errors import DataError

CONTRIB_COLUMNS = ("pnl", "commission", "fills", "share")
IC_HEADER = {"mean_ic": "mean IC", "std_ic": "std", "t_stat_nonoverlap": "t-stat*", "days": "days",
             "days_nonoverlap": "days*", "hit_share": "IC>0"}
IC_NOTE = ("IC: Spearman rank correlation across symbols of the score at bar t's close with the return "
           "open[t+1] -> open[t+1+h]. * t-stat on every h-th day only (non-overlapping windows).")
QUANTILE_NOTE = "Mean forward return by score quantile (1 = lowest score), not per bar."


@dataclass(frozen=True)
class SignalReport:
    """The signal report of one scores panel.

    Attributes:
        ic: :func:`llmbt.reports.signal.ic_summary` (one row per horizon).
        quantiles: mean forward return by score quantile (rows) and horizon (columns), with the
            ``top-bottom`` spread as the last row.
        turnover: :func:`llmbt.reports.signal.turnover`.
        daily_ic: dates x horizons daily ICs.
        names: symbols in the panel. dates: rows in the panel. scored: (date, symbol) cells with a score.
        decay: :func:`llmbt.reports.decay.ic_decay` (IC, spread and break-even cost for h = 1…20),
            when computed. cost: the run's one-way cost per unit traded (commission + slippage).
    """

    ic: pd.DataFrame
    quantiles: pd.DataFrame
    turnover: pd.Series
    daily_ic: pd.DataFrame
    names: int
    dates: int
    scored: int
    decay: pd.DataFrame | None = None
    cost: float | None = None

    def to_text(self) -> str:
        """Plain-text tables for a terminal or a README."""
        return report_text(self)

    def to_html(self) -> str:
        """An HTML fragment (one ``<section>``, no page shell) with the same tables."""
        return report_html(self)


def _num(x: float, fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, fmt)


def ic_frame(report: SignalReport) -> pd.DataFrame:
    """The IC table as formatted strings, columns renamed for display."""
    fmts = {"mean_ic": "+.4f", "std_ic": ".4f", "t_stat_nonoverlap": "+.2f", "days": ".0f",
            "days_nonoverlap": ".0f", "hit_share": ".1%"}
    out = pd.DataFrame({IC_HEADER[c]: [_num(float(v), f) for v in report.ic[c]] for c, f in fmts.items()},
                       index=[f"h={h}" for h in report.ic.index])
    return out.rename_axis("horizon")


def quantile_frame(report: SignalReport) -> pd.DataFrame:
    """The quantile table as formatted percentages, one column per horizon."""
    out = pd.DataFrame({f"h={h}": [_num(float(v), "+.3%") for v in report.quantiles[h]]
                        for h in report.quantiles.columns}, index=[str(q) for q in report.quantiles.index])
    return out.rename_axis("quantile")


def turnover_line(report: SignalReport) -> str:
    """One sentence with the turnover figures."""
    t = report.turnover
    return (f"Turnover per bar: top quantile {_num(t['top_turnover'], '.1%')}, bottom quantile "
            f"{_num(t['bottom_turnover'], '.1%')}; rank autocorrelation {_num(t['rank_autocorr'], '.3f')}")


def _title(report: SignalReport) -> str:
    return (f"Signal report: {report.names} symbols, {report.dates} bars, {report.scored:,} scores "
            f"(traded at the next open)")


def report_text(report: SignalReport) -> str:
    """Plain-text form of :class:`SignalReport`."""
    parts = [_title(report), "", ic_frame(report).to_string(), IC_NOTE, "",
             quantile_frame(report).to_string(), QUANTILE_NOTE, "", turnover_line(report)]
    if report.decay is not None:
        parts += ["", decay_frame(report.decay).to_string(), DECAY_NOTE, best_horizon(report)]
    return "\n".join(parts) + "\n"


def report_html(report: SignalReport) -> str:
    """HTML fragment (one ``<section>``) of :class:`SignalReport`."""
    decay = "" if report.decay is None else (
        f"<h3>IC decay and break-even cost</h3>\n{decay_frame(report.decay).to_html()}\n"
        f"<p>{html.escape(DECAY_NOTE)}</p>\n<p>{html.escape(best_horizon(report))}</p>\n")
    return (f'<section class="signal">\n<h2>{html.escape(_title(report))}</h2>\n'
            f"<h3>Information coefficient</h3>\n{ic_frame(report).to_html()}\n"
            f"<p>{html.escape(IC_NOTE)}</p>\n<h3>Quantile returns</h3>\n{quantile_frame(report).to_html()}\n"
            f"<p>{html.escape(QUANTILE_NOTE)}</p>\n<p>{html.escape(turnover_line(report))}</p>\n{decay}"
            "</section>\n")


DECAY_NOTE = ("Per horizon h: top-bottom = quintile spread over h bars; turnover = share of the top "
              "and bottom quintiles replaced between t-h and t; break-even cost = the one-way cost "
              "per unit traded (as --commission) at which rebalancing every h bars earns nothing: "
              "spread / (2 x turnover).")


def decay_frame(decay: pd.DataFrame) -> pd.DataFrame:
    """The decay table as formatted strings."""
    specs = {"mean_ic": "+.4f", "t_stat_nonoverlap": "+.2f", "days_nonoverlap": ".0f",
             "spread": "+.3%", "turnover": ".1%", "break_even": "+.3%"}
    names = {"mean_ic": "mean IC", "t_stat_nonoverlap": "t-stat*", "days_nonoverlap": "days*",
             "spread": "top-bottom", "turnover": "turnover", "break_even": "break-even cost"}
    out = pd.DataFrame({names[c]: [_num(float(v), f) for v in decay[c]] for c, f in specs.items()},
                       index=[f"h={h}" for h in decay.index])
    return out.rename_axis("horizon")


def best_horizon(report: SignalReport) -> str:
    """:func:`horizon_line` of the report's decay table and cost."""
    return horizon_line(report.decay, report.cost)


def horizon_line(decay: pd.DataFrame, cost: float | None) -> str:
    """One sentence: where the mean IC peaks, and the shortest rebalance period whose break-even
    cost exceeds the run's own one-way ``cost``, if any."""
    ic = decay["mean_ic"].dropna()
    peak = (f"mean IC peaks at h={int(ic.idxmax())} ({ic.max():+.4f}, t-stat* "
            f"{_num(float(decay.at[ic.idxmax(), 't_stat_nonoverlap']), '+.2f')})" if len(ic)
            else "no IC could be computed")
    if cost is None:
        return peak
    pays = decay.index[(decay["break_even"] > cost).to_numpy()]
    verdict = (f"the first horizon whose spread pays the run's {cost:.2%} one-way cost is "
               f"h={int(pays[0])} (break-even {decay.at[pays[0], 'break_even']:.2%})" if len(pays)
               else f"no horizon up to {int(decay.index[-1])} bars pays the run's {cost:.2%} one-way cost")
    return f"{peak}; {verdict}"


def contribution_frame(contrib: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Formatted rows of :func:`contribution_table`: best and worst ``top`` names by pnl, then the total."""
    _check_contrib(contrib, top)
    ranked = contrib.sort_values("pnl", ascending=False, kind="stable")
    shown = ranked if len(ranked) <= 2 * top else pd.concat([ranked.head(top), ranked.tail(top)])
    rows = [_contrib_row(str(sym), row) for sym, row in shown.iterrows()]
    if len(ranked) > 2 * top:
        rows.insert(top, [f"... {len(ranked) - 2 * top} more", "", "", "", ""])
    rows.append(_contrib_row(f"total ({len(ranked)})", contrib[list(CONTRIB_COLUMNS)].sum()))
    return pd.DataFrame(rows, columns=["symbol", *CONTRIB_COLUMNS]).set_index("symbol")


def contribution_table(contrib: pd.DataFrame, top: int = 10) -> str:
    """Render a per-symbol contribution frame as text.

    Args:
        contrib: index = symbol; columns ``pnl`` (currency), ``commission`` (currency), ``fills`` (count)
            and ``share`` (a fraction, e.g. of the total pnl, printed as a percentage).
        top: how many best and worst names by pnl to show; all names when there are at most ``2 * top``.

    Returns:
        The table (sorted by pnl, best first) with a ``total`` row summing every symbol, not only those
        shown.
    """
    return contribution_frame(contrib, top).to_string() + "\n"


def _contrib_row(name: str, row: pd.Series) -> list[str]:
    return [name, _num(float(row["pnl"]), ",.2f"), _num(float(row["commission"]), ",.2f"),
            _num(float(row["fills"]), ",.0f"), _num(float(row["share"]), ".1%")]


def _check_contrib(contrib: pd.DataFrame, top: int) -> None:
    if not isinstance(contrib, pd.DataFrame):
        raise DataError(f"the contribution table needs a DataFrame, got {type(contrib).__name__}")
    missing = [c for c in CONTRIB_COLUMNS if c not in contrib.columns]
    if missing:
        raise DataError(f"the contribution frame lacks columns {missing} (has {list(contrib.columns)}): "
                        f"it needs one row per symbol with {list(CONTRIB_COLUMNS)}")
    if contrib.empty:
        raise DataError("the contribution frame is empty: the run made no fills to attribute")
    if not isinstance(top, (int, np.integer)) or top < 1:
        raise DataError(f"top={top!r} must be a positive integer, e.g. 10")
