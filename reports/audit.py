"""The statistics and tables of ``bt audit lookahead``: the model check's IC and Sharpe per arm
with their differences (:func:`model_stats`), its verdict, and the markdown tables an ``audit``
study publishes (:func:`audit_tables`: the model check, and the engine check per cut)."""

from __future__ import annotations

import math
from typing import Any

from llmbt.engine.metrics import bars_per_year
from llmbt.reports.studies import sentence


def model_stats(check) -> dict:
    """IC (1-bar forward, open to open) and Sharpe of each arm, and original - anonymised
    differences with block-bootstrap CIs (paired daily ICs; paired daily returns)."""
    from llmbt.reports import crosssection as cs
    from llmbt.reports.signal import daily_ic, forward_returns

    arms = {"original": check.original, "anonymized": check.anonymized}
    ics = {name: daily_ic(r.panels["score"], forward_returns(r.opens, (1,))[1])
           for name, r in arms.items()}
    returns = {name: r.run.returns for name, r in arms.items()}
    ppy = bars_per_year(returns["original"].index)
    return {"arms": {name: {"ic": cs.ic_stats(ics[name]), "sharpe": r.run.stats["sharpe"]}
                     for name, r in arms.items()},
            "ic_diff": cs.paired_ic_difference(ics["original"], ics["anonymized"]),
            "sharpe_diff": cs.sharpe_difference_ci(returns["original"], returns["anonymized"], ppy),
            "hindsight": check.hindsight,
            "construction": check.original.signal_info.get("construction", "")}


def model_verdict(stats: dict) -> str:
    """Whether anonymising changed the result significantly (a sign of the model's hindsight)."""
    if stats.get("construction"):
        return ("model check: not evidence either way: the construction holds every name whatever "
                "the scores (see construction above)")
    moved = [name for name in ("ic_diff", "sharpe_diff") if stats[name]["significant"]]
    if not moved:
        return "model check: anonymising changed neither IC nor Sharpe significantly"
    what = " and ".join(n.removesuffix("_diff").replace("ic", "IC").replace("sharpe", "Sharpe")
                        for n in moved)
    return f"model check: anonymising changed {what} significantly: part of the result may be hindsight"


def audit_tables(engine: Any, check: Any = None) -> dict[str, str]:
    """An audit study's tables by block name: ``""`` the model check (with ``check``) or else the
    engine check, and ``engine`` the engine check beside a model check."""
    if check is None:
        return {"": engine_markdown(engine)}
    return {"": model_markdown(model_stats(check)), "engine": engine_markdown(engine)}


def model_markdown(stats: dict) -> str:
    """The model check as a markdown table: IC and Sharpe per arm, then the differences with
    their intervals, and the verdict."""
    rows = [f"| {label} | {arm['ic']['mean_ic']:+.4f} | {arm['ic']['t_stat_nonoverlap']:.2f} | "
            f"{arm['ic']['days']:,} | {arm['sharpe']:.2f} |"
            for label, arm in zip(("original", "anonymised"), stats["arms"].values(), strict=True)]
    ic, sharpe = stats["ic_diff"], stats["sharpe_diff"]
    rows.append(f"| original − anonymised | {difference_words(ic, '+.4f')} | | {ic['n']:,} "
                f"| {difference_words(sharpe, '+.2f')} |")
    return ("| headlines | mean IC (1 day) | t | days | Sharpe |\n|---|---:|---:|---:|---:|\n"
            + "\n".join(rows) + f"\n\n{sentence(model_verdict(stats))}\n")


def engine_markdown(audit: Any) -> str:
    """The engine check as a markdown table: one row per cut, and the verdict."""
    rows = [f"| {c.cut.date()} | {c.bars:,} | {c.values:,} | {c.mismatches:,} | "
            f"{mismatch_words(c.first) if c.first else '—'} |" for c in audit.checks]
    return ("| cut | bars before it | values compared | mismatches | first mismatch |\n"
            "|---|---:|---:|---:|---|\n" + "\n".join(rows)
            + f"\n\n{sentence(engine_verdict(audit))} Columns: {', '.join(audit.columns)}.\n")


def engine_verdict(audit: Any) -> str:
    """``engine check passed ...`` or ``LOOK-AHEAD: ...`` naming the first changed value."""
    if audit.passed:
        values = sum(c.values for c in audit.checks)
        return (f"engine check passed: {values:,} values before {len(audit.checks)} cuts "
                "identical to the full run")
    cut, first = audit.first
    return f"LOOK-AHEAD: cutting the data at {cut.date()} changed {mismatch_words(first)}"


def difference_words(d: dict, fmt: str, p_digits: int = 2) -> str:
    """A paired difference ``d`` (diff, low, high, alpha, p_value) as ``+0.0123, 95% CI [a, b], p
    0.45`` (``fmt`` formats the figures; ``CI n/a`` when the interval could not be computed)."""
    if not (math.isfinite(d["low"]) and math.isfinite(d["high"])):
        return f"{d['diff']:{fmt}}, CI n/a"
    level = 1 - d["alpha"]
    return (f"{d['diff']:{fmt}}, {level:.0%} CI [{d['low']:{fmt}}, {d['high']:{fmt}}], "
            f"p {d['p_value']:.{p_digits}f}")


def mismatch_words(m: Any) -> str:
    return f"{m.symbol} {m.date.date()} {m.column}: full {m.full!r}, truncated {m.truncated!r}"
