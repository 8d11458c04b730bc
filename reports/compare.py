"""A/B comparison of models on the same data, strategy and costs: metrics, signal quality, cost,
and whether the difference is real (paired bootstrap of the Sharpe difference, PSR/DSR, McNemar).

Inputs are plain series: per-bar strategy returns of each model (and buy-and-hold), and per test
bar each model's ``score`` (P(bull) − P(bear)), ``signal`` (the score the strategy traded, after its
normalisation), ``confidence``, ``predicted``/``label`` and the realised ``forward_return`` over
``horizon`` bars. :func:`compare_results` reads them from a walk-forward results folder.

The DSR's trials are the compared models (or arms), each on the same out-of-sample bars, and (by
default, from a results folder) every other configuration the trial ledger holds on the same data over
overlapping periods (:mod:`llmbt.experiments.trials`); hit rates and McNemar's test score ``signal`` (zero =
no signal), McNemar on one bar in ``horizon``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmbt.engine.metrics import bars_per_year as periods_per_year
from llmbt.errors import LlmbtError
from llmbt.experiments.trials import PriorTrials
from llmbt.reports.hindsight_ab import hindsight_sentences
from llmbt.reports.page_parts import commit_note

CAL_BINS = 5
log = logging.getLogger(__name__)


@dataclass
class Comparison:
    """Everything the comparison page, tearsheet and ``compare.json`` show."""

    metrics: pd.DataFrame
    significance: list[str]
    stats: dict[str, Any]
    calibration: dict[str, pd.DataFrame] = field(default_factory=dict)


def traded_column(scores: pd.DataFrame) -> str:
    """``signal`` (the score the strategy traded, after its normalisation) when the frame has it;
    ``score`` (the raw model score) in results folders written before it was recorded."""
    return "signal" if "signal" in scores else "score"


def signal_quality(scores: pd.DataFrame) -> dict[str, float]:
    """Directional accuracy and profitable-signal ratio of the traded signal (zero = no signal, as in
    ``bt evaluate``), mean confidence, ECE and label accuracy of one model."""
    from llmbt.signals_cache.finetune.evaluate import directional_metrics, expected_calibration_error

    signal = scores[traded_column(scores)].to_numpy(dtype=float)
    direction = directional_metrics(signal, scores["forward_return"].to_numpy())
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


def compare(returns: dict[str, pd.Series], scores: dict[str, pd.DataFrame], *, horizon: int,
            trials: dict[str, pd.Series] | None = None, extra: dict[str, dict[str, float]] | None = None,
            n_boot: int = 2000, prior: PriorTrials | None = None) -> Comparison:
    """Compare the models of ``scores`` (first = candidate, second = reference) on ``returns``.

    Args:
        returns: per-bar returns by name (the models of ``scores``, optionally ``buy_and_hold``).
        scores: per-bar signal frames by model name; the first two are tested against each other
            (Sharpe difference CI, McNemar), and each further model against the second (the
            reference: a paired Sharpe difference CI, ``stats["arm_sharpe_diffs"]``).
        horizon: bars of the ``forward_return`` of ``scores``; McNemar's test uses every
            ``horizon``-th common bar, so that the hits it counts are on non-overlapping returns.
        trials: the alternatives tried before picking one (models × prompts × parameter settings) by
            name, as per-bar returns over the same out-of-sample period; default: the models of
            ``scores``. Their number and Sharpe variance deflate each trial's Sharpe (DSR);
            buy-and-hold is a benchmark, not a trial, and is not deflated.
        extra: more metric rows by model (exposure, turnover, cost…).
        prior: the trial ledger's other configurations on this data
            (:func:`llmbt.experiments.trials.prior_trials`): they join ``trials`` in the DSR's number and
            variance, and a sentence says what was counted; None: ``trials`` only, no sentence.
    """
    from llmbt.reports.metrics import headline_metrics
    from llmbt.reports.stats import mcnemar_from_hits, sharpe_diff_ci, significance_summary

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
    trial_set = selection_trials(trials if trials is not None else {m: returns[m] for m in models}, ppy,
                                 prior)
    _add_psr_dsr(rows, returns, trial_set)
    a, b = models[0], models[1]
    diff = sharpe_diff_ci(returns[a], returns[b], periods_per_year=ppy, n_boot=n_boot)
    hits = paired_hits(scores[a], scores[b], horizon)
    mc = mcnemar_from_hits(*hits)
    hit_facts = {"horizon": horizon, "column": traded_column(scores[a]), "bars": len(hits[0]),
                 "pairs": int((hits[0].notna() & hits[1].notna()).sum())}
    more = {m: sharpe_diff_ci(returns[m], returns[b], periods_per_year=ppy, n_boot=n_boot)
            for m in models[2:]}  # each further arm against the reference, paired as a - b
    sentences = [significance_summary(diff, rows[a]["DSR"], mc, dsr_note=trial_set["note"]),
                 _who_wins(a, b, diff), *(_who_wins(m, b, d) for m, d in more.items()),
                 _trials_sentence(trial_set), *_counted(trial_set), _hits_sentence(hit_facts)]
    stats = {"candidate": a, "reference": b, "sharpe_diff": vars(diff), "mcnemar": vars(mc) | hit_facts,
             "n_trials": trial_set["n_trials"], "dsr": trial_set, "periods_per_year": ppy,
             "arm_sharpe_diffs": {m: vars(d) | {"reference": b} for m, d in more.items()}}
    metrics = pd.DataFrame(rows)[columns]
    return Comparison(metrics, sentences, stats, {m: calibration_table(scores[m]) for m in models})


def selection_trials(trials: dict[str, pd.Series], ppy: float,
                     prior: PriorTrials | None = None) -> dict[str, Any]:
    """Number and Sharpe variance of the trials, each measured on the bars all of them cover, and of
    ``prior``'s (the ledger's other configurations: their annualised Sharpes over ``sqrt(ppy)``).

    Returns:
        ``trials`` (names), ``bars`` (common bars), ``sharpe`` (annualised, by name), ``n_trials``
        (trials with a defined Sharpe), ``var_sharpe`` (variance, ddof=1, of their per-period
        Sharpes) and ``var_sharpe_annualised``, ``expected_max_sharpe`` (annualised, of that many
        skill-less trials) and ``note`` (:data:`llmbt.reports.stats.DSR_NEEDS_TRIALS` below 2 trials);
        with ``prior``, also ``counted`` (its mode), ``n_this_run`` and ``n_ledger`` (how many of
        ``n_trials`` are the ledger's).
    """
    from llmbt.engine.metrics import sharpe_ratio
    from llmbt.reports.stats import DSR_NEEDS_TRIALS, expected_max_sharpe

    common = pd.concat(trials, axis=1, join="inner").dropna()
    per_period = {n: sharpe_ratio(common[n], 1) for n in trials}
    defined = [v for v in per_period.values() if not math.isnan(v)]
    pool = defined + [v / math.sqrt(ppy) for v in (prior.sharpes if prior else ())]
    n, nan = len(pool), float("nan")
    var = float(np.var(pool, ddof=1)) if n >= 2 else nan
    out = {"trials": list(trials), "bars": len(common),
           "sharpe": {k: v * math.sqrt(ppy) for k, v in per_period.items()}, "n_trials": n,
           "var_sharpe": var, "var_sharpe_annualised": var * ppy,
           "expected_max_sharpe": expected_max_sharpe(n, var) * math.sqrt(ppy) if n >= 2 else nan,
           "note": None if n >= 2 else DSR_NEEDS_TRIALS}
    if prior is not None:
        out |= {"counted": prior.mode, "n_this_run": len(defined), "n_ledger": n - len(defined)}
    return out


def _add_psr_dsr(rows: dict[str, dict[str, float]], returns: dict[str, pd.Series],
                 trial_set: dict[str, Any]) -> None:
    """PSR (SR > 0) of every column; DSR of the trials only (NaN for buy-and-hold and below 2 trials)."""
    from llmbt.reports.stats import deflated_sharpe_ratio, probabilistic_sharpe_ratio

    for name in rows:
        rows[name]["PSR (SR > 0)"] = probabilistic_sharpe_ratio(returns[name])
        rows[name]["DSR"] = (deflated_sharpe_ratio(returns[name], trial_set["n_trials"],
                                                   var_sharpe=trial_set["var_sharpe"])
                             if name in trial_set["trials"] and not trial_set["note"] else float("nan"))


def _trials_sentence(trial_set: dict[str, Any]) -> str:
    names = ", ".join(map(str, trial_set["trials"]))
    if trial_set["note"]:
        return (f"{trial_set['note']}: of the trials ({names}), {trial_set['n_trials']} with a defined "
                "Sharpe ratio, so no deflated Sharpe ratio is reported.")
    undefined = [str(k) for k, v in trial_set["sharpe"].items() if math.isnan(v)]
    if undefined:
        names = ", ".join(str(k) for k in trial_set["trials"] if str(k) not in undefined)
        names += f"; not {', '.join(undefined)}: no Sharpe ratio, it never traded or its returns are flat"
    trials = (f"{trial_set['n_trials']} trials ({names}), each measured on the same {trial_set['bars']} "
              "out-of-sample bars")
    if trial_set.get("n_ledger"):
        trials = (f"{trial_set['n_trials']} trials: this run's {trial_set['n_this_run']} ({names}), each "
                  f"measured on the same {trial_set['bars']} out-of-sample bars, and {trial_set['n_ledger']} "
                  "more from the trial ledger on this data over overlapping periods")
    return (f"The DSR deflates for {trials}: their annualised Sharpe ratios have variance "
            f"{trial_set['var_sharpe_annualised']:.3f}, so the best of {trial_set['n_trials']} skill-less "
            f"trials would be expected to reach a Sharpe of {trial_set['expected_max_sharpe']:.2f}.")


def _counted(trial_set: dict[str, Any]) -> list[str]:
    """The sentence of which trials the DSR counted (none without a ``prior``)."""
    from llmbt.reports.stats import trials_counted

    if "counted" not in trial_set:
        return []
    return [trials_counted(trial_set["n_trials"], trial_set["n_this_run"], trial_set["counted"])]


def paired_hits(a: pd.DataFrame, b: pd.DataFrame, horizon: int) -> tuple[pd.Series, pd.Series]:
    """Directional hits of two models (1 = the traded signal's sign matches the forward return's,
    0 = it does not, NaN = no signal: a zero or missing signal or a zero return, as ``bt evaluate``
    counts them) on every ``horizon``-th bar both frames cover, so the returns do not overlap."""
    both = a.index.intersection(b.index).sort_values()[:: _whole_bars(horizon)]

    def hits(frame: pd.DataFrame) -> pd.Series:
        f = frame.loc[both]
        signal, ret = f[traded_column(f)].astype(float), f["forward_return"].astype(float)
        counted = np.isfinite(signal) & (signal != 0) & np.isfinite(ret) & (ret != 0)
        return (np.sign(signal) == np.sign(ret)).astype(float).where(counted)

    return hits(a), hits(b)


def _whole_bars(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise LlmbtError(f"horizon {horizon!r} must be a whole number of bars >= 1 (the label horizon).")
    return int(horizon)


def _hits_sentence(facts: dict[str, Any]) -> str:
    what = ("the traded signal (the strategy's normalised score)" if facts["column"] == "signal" else
            "the raw model score (this results folder has no traded signal; re-run to record it)")
    every = "every bar" if facts["horizon"] == 1 else f"one bar in {facts['horizon']}"
    return (f"Hit rates score {what}, a zero signal or zero return counting as no signal; McNemar's "
            f"test uses {every} ({facts['bars']} bars, non-overlapping {facts['horizon']}-bar returns), "
            f"{facts['pairs']} of them with a signal from both models.")


def _who_wins(a: str, b: str, diff: Any) -> str:
    if math.isnan(diff.diff):
        return (f"{a} − {b}: no Sharpe difference (a Sharpe ratio is undefined: a model that never "
                "traded, or flat returns).")
    leader = a if diff.diff > 0 else b
    return (f"Out of sample, {leader} has the higher Sharpe ratio ({diff.diff:+.2f} for {a} − {b}); "
            + ("the bootstrap interval excludes zero." if diff.significant
               else "this could well be luck: the bootstrap interval includes zero."))


def compare_results(folder: str | Path, say: Callable[[str], None] = log.info,
                    trials: str = "ledger") -> Comparison:
    """Compare the models of a walk-forward results folder; write comparison.html, tearsheet.html
    and compare.json into it, and report the metric table through ``say``. ``trials``: what the DSR
    counts, ``ledger`` (every trial on this data: :func:`llmbt.experiments.trials.prior_trials`) or
    ``run`` (the folder's models only)."""
    from llmbt.experiments.results import read_results
    from llmbt.experiments.trials import prior_trials

    folder = Path(folder)
    res = read_results(folder)
    comp = compare(res["returns"], res["scores"], horizon=int(res["config"]["horizon"]),
                   extra=_fold_extras(res["folds"], res["returns"], res["config"].get("compare")),
                   prior=prior_trials(res, list(res["scores"]), trials))
    comp.significance.extend(hindsight_sentences(res["config"].get("arm_specs") or {},
                                                 res["returns"], res["scores"],
                                                 comp.stats["periods_per_year"]))
    _write_outputs(folder, comp, res)
    _print(comp, folder, say)
    return comp


def _print(comp: Comparison, folder: Path, say: Callable[[str], None]) -> None:
    from llmbt.reports.metrics import frame_table, table_text

    say(table_text(frame_table(comp.metrics, "Comparison metrics")))
    for sentence in comp.significance:
        say(sentence)
    say(f"comparison page: {folder / 'comparison.html'}; tearsheet: {folder / 'tearsheet.html'}")


def _fold_extras(folds: pd.DataFrame, returns: dict[str, pd.Series],
                 one_window: bool = False) -> dict[str, dict[str, float]]:
    """Exposure (bar-weighted), turnover (round trips a year), macro F1 (of the one window of a
    ``bt compare --arm`` folder, else the mean of the folds) and cost per model from the fold table;
    ``ms per scored item`` only for a model that scored some item (a fully cached run has none, and
    the row is left out when no model has one)."""
    f1 = "Macro F1" if one_window else "Macro F1 (mean of folds)"
    out = {}
    for model, g in folds.groupby("model"):
        years = max(g["bars"].sum() / periods_per_year(returns[model].index), 1e-9)
        ms = pd.to_numeric(g["ms_per_item"], errors="coerce").mean()
        out[str(model)] = {"Exposure": float(np.average(g["exposure"], weights=g["bars"])),
                           "Turnover (trades/yr)": float(g["trades"].sum() / years),
                           f1: float(g["eval_f1"].mean())} | (
            {"ms per scored item": float(ms)} if np.isfinite(ms) else {}) | {
            "Cache hit rate": float(g["cache_hit_rate"].mean())}
    return out


def _write_outputs(folder: Path, comp: Comparison, res: dict[str, Any]) -> None:
    run, config = res["config"]["run"], res["config"]
    if config.get("compare"):  # a bt compare --arm folder: its period and arms instead of folds
        notes = {"run id": res["run"]["run_id"], "period": f"{run['start']} .. {run['end'] or 'last bar'}",
                 "arms": "; ".join(",".join(f"{k}={v}" for k, v in config["arm_specs"][n].items()
                                            if v is not None) for n in config["arms"]),
                 "hindsight": str(res["run"].get("hindsight"))}
        title = f"{run['strategy']} on {run['data']}, {run['start']} .. {run['end'] or 'end'}"
    else:
        notes = {"run id": res["run"]["run_id"], "git commit": commit_note(res["run"]),
                 "folds": str(res["run"]["folds"]), "failed folds": str(res["run"]["failed_folds"]),
                 "seconds": str(res["run"]["seconds"])}
        title = f"{run['strategy']} on {run['data']} (walk-forward {res['run']['run_id']})"
    write_pages(folder, comp, res["returns"], res["scores"], res["folds"], res["close"], title, notes)


def write_pages(folder: Path, comp: Comparison, rets: dict[str, pd.Series],
                scores: dict[str, pd.DataFrame], folds: pd.DataFrame, close: pd.Series, title: str,
                notes: dict[str, str]) -> None:
    """comparison.html, tearsheet.html (candidate vs reference), tearsheet-buy_and_hold.html and
    compare.json in ``folder``; ``close`` is the instrument's closes (the price chart)."""
    from llmbt.reports.compare_page import ComparisonPage, write_comparison_page
    from llmbt.reports.tearsheet import write_tearsheet

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
