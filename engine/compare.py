"""A/B comparison of models on the same data, strategy and costs: metrics, signal quality, cost,
and whether the difference is real (paired bootstrap of the Sharpe difference, PSR/DSR, McNemar).

Inputs are plain series: per-bar strategy returns of each model (and buy-and-hold), and per test
bar each model's ``score`` (P(bull) − P(bear)), ``confidence``, ``predicted``/``label`` and the
realised ``forward_return``. :func:`compare_results` reads them from a walk-forward results folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.runner import periods_per_year
from feeds.base import LlmbtError

CAL_BINS = 5


@dataclass
class Comparison:
    """Everything the comparison page, tearsheet and ``compare.json`` show."""

    metrics: pd.DataFrame
    significance: list[str]
    stats: dict[str, Any]
    calibration: dict[str, pd.DataFrame] = field(default_factory=dict)


def signal_quality(scores: pd.DataFrame) -> dict[str, float]:
    """Directional accuracy, profitable-signal ratio, mean confidence, ECE and macro F1 of one model."""
    from signals_cache.evaluate import directional_metrics, expected_calibration_error

    direction = directional_metrics(scores["score"].to_numpy(), scores["forward_return"].to_numpy())
    correct = (scores["predicted"] == scores["label"]).to_numpy()
    return {"Directional accuracy": direction["hit_rate"],
            "Profitable signals": direction["profitable_ratio"],
            "Mean confidence": float(scores["confidence"].mean()),
            "Calibration error (ECE)": expected_calibration_error(scores["confidence"].to_numpy(), correct),
            "Label accuracy": float(correct.mean())}


def calibration_table(scores: pd.DataFrame, bins: int = CAL_BINS) -> pd.DataFrame:
    """Reliability table: per confidence bin, mean confidence, share of correct labels, count."""
    correct = (scores["predicted"] == scores["label"]).astype(float)
    edges = np.linspace(1 / 3, 1.0, bins + 1)
    which = np.clip(np.digitize(scores["confidence"], edges[1:-1]), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "conf": scores["confidence"], "hit": correct})
    grouped = frame.groupby("bin").agg(mean_confidence=("conf", "mean"), hit_rate=("hit", "mean"),
                                       count=("hit", "size")).reset_index()
    grouped["confidence_bin"] = (edges[grouped["bin"]] + edges[grouped["bin"] + 1]) / 2
    return grouped[["confidence_bin", "mean_confidence", "hit_rate", "count"]]


def compare(returns: dict[str, pd.Series], scores: dict[str, pd.DataFrame], *, n_trials: int,
            trial_sharpes: list[float] | None = None, extra: dict[str, dict[str, float]] | None = None,
            n_boot: int = 2000) -> Comparison:
    """Compare the models of ``scores`` (first = candidate, second = reference) on ``returns``.

    Args:
        returns: per-bar returns by name (the models of ``scores``, optionally ``buy_and_hold``).
        scores: per-bar signal frames by model name; the first two are tested against each other.
        n_trials: strategies tried (models × folds) for the Deflated Sharpe Ratio.
        trial_sharpes: per-period Sharpe ratios of the trials (their variance enters the DSR).
        extra: more metric rows by model (exposure, turnover, cost…).
    """
    from reports.metrics import headline_metrics
    from reports.stats import (
        deflated_sharpe_ratio,
        mcnemar_from_hits,
        probabilistic_sharpe_ratio,
        sharpe_diff_ci,
        significance_summary,
    )

    models = list(scores)
    if len(models) < 2 or any(m not in returns for m in models):
        raise LlmbtError(f"compare needs returns and scores of two or more models; got returns "
                         f"{sorted(returns)} and scores {models}.")
    ppy = periods_per_year(returns[models[0]].index)
    columns = models + [n for n in returns if n not in models]
    rows: dict[str, dict[str, float]] = {n: headline_metrics(returns[n], ppy) for n in columns}
    for name in models:
        rows[name] |= signal_quality(scores[name])
    for name, values in (extra or {}).items():
        rows.setdefault(name, {}).update(values)
    var = float(np.var(trial_sharpes, ddof=1)) if trial_sharpes and len(trial_sharpes) > 1 else None
    for name in columns:
        rows[name]["PSR (SR > 0)"] = probabilistic_sharpe_ratio(returns[name])
        rows[name]["DSR"] = deflated_sharpe_ratio(returns[name], n_trials, var_sharpe=var or 0.0)
    a, b = models[0], models[1]
    diff = sharpe_diff_ci(returns[a], returns[b], periods_per_year=ppy, n_boot=n_boot)
    mc = mcnemar_from_hits(*_paired_hits(scores[a], scores[b]))
    sentences = [significance_summary(diff, rows[a]["DSR"], mc), _who_wins(a, b, diff)]
    stats = {"candidate": a, "reference": b, "sharpe_diff": vars(diff), "mcnemar": vars(mc),
             "n_trials": n_trials, "periods_per_year": ppy}
    metrics = pd.DataFrame(rows)[columns]
    return Comparison(metrics, sentences, stats, {m: calibration_table(scores[m]) for m in models})


def _paired_hits(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Directional hits (sign of score = sign of forward return) on the bars both models scored."""
    both = a.index.intersection(b.index)

    def hits(frame: pd.DataFrame) -> np.ndarray:
        f = frame.loc[both]
        return (np.sign(f["score"]) == np.sign(f["forward_return"])).to_numpy()

    return hits(a), hits(b)


def _who_wins(a: str, b: str, diff: Any) -> str:
    leader = a if diff.diff > 0 else b
    return (f"Out of sample, {leader} has the higher Sharpe ratio ({diff.diff:+.2f} for {a} − {b}); "
            + ("the bootstrap interval excludes zero." if diff.significant
               else "this could well be luck: the bootstrap interval includes zero."))


def compare_results(folder: str | Path, say: Callable[[str], None] = print) -> Comparison:
    """Compare the models of a walk-forward results folder; write comparison.html, tearsheet.html
    and compare.json into it, and print the metric table."""
    from engine.results import read_results

    folder = Path(folder)
    res = read_results(folder)
    folds, models = res["folds"], list(res["scores"])
    extra = _fold_extras(folds, res["returns"])
    trial = (folds["sharpe"] / np.sqrt(periods_per_year(res["returns"][models[0]].index))).tolist()
    comp = compare(res["returns"], res["scores"], n_trials=len(folds), trial_sharpes=trial, extra=extra)
    _write_outputs(folder, comp, res)
    _print(comp, folder, say)
    return comp


def compare_arms(config: Any, arms: list[Any], out: str | Path, horizon: int = 5,
                 say: Callable[[str], None] = print) -> Comparison:
    """Backtest the arms over ``config``'s period (:func:`engine.arms.run_arms`), compare them and
    write the pages into ``out``."""
    from engine.arms import run_arms

    res = run_arms(config, arms, horizon, say)
    comp = compare(res["returns"], res["scores"], n_trials=len(arms),
                   extra=_fold_extras(res["folds"], res["returns"]))
    notes = {"run id": config.run_id, "period": f"{config.start} .. {config.end or 'last bar'}",
             "arms": "; ".join(f"{a.name}: {a}" for a in arms)}
    title = f"{config.strategy} on {config.data}, {config.start} .. {config.end or 'end'}"
    write_pages(Path(out), comp, res["returns"], res["scores"], res["folds"], res["close"], title, notes)
    _print(comp, Path(out), say)
    return comp


def _print(comp: Comparison, folder: Path, say: Callable[[str], None]) -> None:
    say(comp.metrics.round(4).to_string())
    for sentence in comp.significance:
        say(sentence)
    say(f"comparison page: {folder / 'comparison.html'}; tearsheet: {folder / 'tearsheet.html'}")


def _fold_extras(folds: pd.DataFrame, returns: dict[str, pd.Series]) -> dict[str, dict[str, float]]:
    """Exposure (bar-weighted), turnover (round trips a year) and cost per model from the fold table."""
    out = {}
    for model, g in folds.groupby("model"):
        years = max(g["bars"].sum() / periods_per_year(returns[model].index), 1e-9)
        out[str(model)] = {"Exposure": float(np.average(g["exposure"], weights=g["bars"])),
                           "Turnover (trades/yr)": float(g["trades"].sum() / years),
                           "Macro F1 (mean of folds)": float(g["eval_f1"].mean()),
                           "ms per scored item": float(g["ms_per_item"].mean()),
                           "Cache hit rate": float(g["cache_hit_rate"].mean())}
    return out


def _write_outputs(folder: Path, comp: Comparison, res: dict[str, Any]) -> None:
    run = res["config"]["run"]
    notes = {"run id": res["run"]["run_id"], "git commit": str(res["run"].get("git_commit")),
             "folds": str(res["run"]["folds"]), "failed folds": str(res["run"]["failed_folds"]),
             "seconds": str(res["run"]["seconds"])}
    title = f"{run['strategy']} on {run['data']} (walk-forward {res['run']['run_id']})"
    close = res["close"] if res["close"] is not None else _reload_close(run, res["returns"])
    write_pages(folder, comp, res["returns"], res["scores"], res["folds"], close, title, notes)


def _reload_close(run: dict[str, Any], returns: dict[str, pd.Series]) -> pd.Series:
    """Closes over the tested bars for a results folder saved without prices.csv (older runs)."""
    from feeds import load_prices

    index = next(iter(returns.values())).index
    return load_prices(run["data"], index[0], index[-1], interval=run.get("interval") or "1d")["close"]


def write_pages(folder: Path, comp: Comparison, rets: dict[str, pd.Series],
                scores: dict[str, pd.DataFrame], folds: pd.DataFrame, close: pd.Series, title: str,
                notes: dict[str, str]) -> None:
    """comparison.html, tearsheet.html (candidate vs reference), tearsheet-buy_and_hold.html and
    compare.json in ``folder``; ``close`` is the instrument's closes (the price chart)."""
    from reports.compare_page import ComparisonPage, write_comparison_page
    from reports.tearsheet import write_tearsheet

    models = list(scores)
    a, b = models[0], models[1]
    index = rets[a].index
    page = ComparisonPage(
        title=f"{a} vs {b}: {title}", metrics=comp.metrics, returns=rets,
        prices=close[index[0] : index[-1]], signals={m: scores[m]["score"] for m in models},
        folds=folds.assign(max_drawdown=-folds["max_drawdown"].abs()),
        calibration=comp.calibration, significance=comp.significance, notes=notes)
    folder.mkdir(parents=True, exist_ok=True)
    write_comparison_page(folder / "comparison.html", page)
    ppy = comp.stats["periods_per_year"]
    write_tearsheet(rets[a].rename(a), folder / "tearsheet.html", benchmark=rets[b].rename(b),
                    title=f"{a} (strategy) vs {b} (benchmark)", periods=ppy)
    if "buy_and_hold" in rets:
        write_tearsheet(rets[a].rename(a), folder / "tearsheet-buy_and_hold.html",
                        benchmark=rets["buy_and_hold"], title=f"{a} vs buy and hold", periods=ppy)
    data_out = {"metrics": comp.metrics.to_dict(), "significance": comp.significance, "stats": comp.stats}
    (folder / "compare.json").write_text(json.dumps(data_out, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
