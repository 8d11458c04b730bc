"""Statistics of universe arms (a universe walk-forward's base and adapter, or ``bt compare --arm``'s
N arms): daily IC per arm, per-fold IC and Sharpe, the cross-section tests
(:mod:`llmbt.reports.crosssection`) on the stitched test windows, and the files and pages.

Inputs are what :func:`llmbt.experiments.results.read_results` returns for a universe run (or
:func:`llmbt.experiments.universe_arms.run_universe_arms` for ``bt compare --arm``): ``scores`` (per
arm, rows ``time, symbol, score``), ``opens`` (time x symbols), ``returns`` (per arm and
``equal_weight``) and ``folds`` (one row per fold and arm; one fold for ``bt compare``). The daily
IC of an arm is the Spearman correlation across symbols of its score at a close with the
``horizon``-bar open-to-open forward return from the next open
(:func:`llmbt.reports.signal.daily_ic`); the opens run past each test window's end, so its last
days have a forward return too (in a walk-forward).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmbt.engine.eligibility import FACT_KEYS
from llmbt.errors import LlmbtError
from llmbt.experiments.trials import PriorTrials
from llmbt.experiments.wf_config import BENCHMARK
from llmbt.reports.crosssection import (
    deflated_sharpe_for_arms,
    ic_stats,
    paired_ic_difference,
    sharpe_difference_ci,
    spa_per_arm,
    spa_test,
)
from llmbt.reports.page_parts import commit_note
from llmbt.reports.signal import daily_ic, forward_returns
from llmbt.reports.stats import trials_counted

log = logging.getLogger(__name__)
#: The folds table's columns printed (those present).
FOLD_COLUMNS = ("fold", "test_start", "test_end", "model", "examples", "sharpe", "total_return",
                "mean_ic", "ic_t", "ic_days")


def universe_daily_ic(scores: Mapping[str, pd.DataFrame], opens: pd.DataFrame, horizon: int,
                      min_names: int = 5) -> pd.DataFrame:
    """Daily IC (dates of ``opens`` x arms) of each arm's scores vs ``horizon``-bar forward returns.

    Args:
        scores: arm -> rows indexed by time with ``symbol`` and ``score`` columns.
        opens: time x symbols open prices. horizon: forward bars. min_names: see ``daily_ic``.
    """
    fwd = forward_returns(opens, (horizon,))[horizon]
    out = {arm: daily_ic(score_panel(rows, opens), fwd, min_names) for arm, rows in scores.items()}
    return pd.DataFrame(out, index=opens.index)


def score_panel(rows: pd.DataFrame, opens: pd.DataFrame) -> pd.DataFrame:
    """An arm's score rows (time index; ``symbol``, ``score``) as a panel shaped like ``opens``."""
    panel = rows.rename_axis("time").reset_index().pivot_table(
        index="time", columns="symbol", values="score", aggfunc="last")
    return panel.reindex(index=opens.index, columns=opens.columns)


def write_decay(res: Mapping[str, Any], arms: Sequence[str], folder: Path, cost: float,
                say: Callable[[str], None]) -> None:
    """Each arm's IC decay and break-even cost (:func:`llmbt.reports.decay.ic_decay`) over the
    tested bars: ``decay.csv`` (arm, horizon, ...) and one line per arm."""
    from llmbt.reports._signal_render import horizon_line
    from llmbt.reports.decay import ic_decay

    frames = []
    for arm in arms:
        decay = ic_decay(score_panel(res["scores"][arm], res["opens"]), res["opens"])
        frames.append(decay.assign(arm=arm))
        say(f"IC decay {arm}: {horizon_line(decay, cost)}")
    pd.concat(frames).to_csv(folder / "decay.csv")


def fold_ic_table(daily: pd.DataFrame, folds: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """One row per (fold, arm): the fold's test window, mean daily IC, its t-stat and days.

    Args:
        daily: :func:`universe_daily_ic`. folds: rows with ``fold``, ``test_start``, ``test_end``.
        horizon: the ICs' forward horizon (t-stats use every ``horizon``-th day).
    """
    rows = []
    for fold in folds.drop_duplicates("fold").itertuples():
        window = daily.loc[pd.Timestamp(fold.test_start) : pd.Timestamp(fold.test_end)]
        for arm in daily.columns:
            ic = window[arm]
            s = ic_stats(ic, horizon) if ic.notna().any() else {"mean_ic": float("nan"),
                                                                "t_stat_nonoverlap": float("nan"),
                                                                "days": 0}
            rows.append({"fold": fold.fold, "model": arm, "mean_ic": s["mean_ic"],
                         "ic_t": s["t_stat_nonoverlap"], "ic_days": s["days"]})
    return pd.DataFrame(rows)


def universe_wf_stats(returns: Mapping[str, pd.Series], daily: pd.DataFrame, horizon: int, *,
                      periods: float, arms: Sequence[str] | None = None,
                      benchmark: str = BENCHMARK,
                      prior: PriorTrials | None = None) -> tuple[dict, dict[str, str]]:
    """The cross-section statistics of N arms, for :func:`~llmbt.reports.crosssection.crosssection_table`.

    ``ic`` per arm; for each other arm, the paired daily-IC difference and the portfolio Sharpe
    difference ``arm - arms[0]`` (the reference: the base model) with block-bootstrap CIs (lists);
    SPA / Reality Check of all arms against ``benchmark`` (``spa``) and of each arm alone
    (``spa_arms``); the Deflated Sharpe with every arm a trial (``dsr``: N = the number of arms). A
    statistic the data cannot support (too few days) is left out and its reason given in the
    second dict.

    Args:
        returns: per-period returns by arm and ``benchmark``. daily: :func:`universe_daily_ic`.
        horizon: the ICs' forward horizon. periods: periods per year of the bars (the
            engine's :func:`llmbt.engine.runner.periods_per_year`: 252 daily stocks, 365.25 daily
            crypto). arms: the arms, reference first (default: ``daily``'s columns).
            benchmark: the SPA benchmark. prior: the trial ledger's other trials on this data,
            counted in the DSR too (:func:`~llmbt.reports.crosssection.deflated_sharpe_for_arms`).
    """
    arms = list(daily.columns if arms is None else arms)
    ref, others = arms[0], arms[1:]
    frame = pd.DataFrame({arm: returns[arm] for arm in arms})
    tests = {
        "ic": lambda: {arm: ic_stats(daily[arm], horizon) for arm in arms},
        "ic_difference": lambda: [paired_ic_difference(daily[a], daily[ref], horizon=horizon)
                                  | {"arms": (a, ref)} for a in others],
        "sharpe_difference": lambda: [sharpe_difference_ci(returns[a], returns[ref], periods)
                                      | {"arms": (a, ref)} for a in others],
        "spa": lambda: spa_test(frame, returns[benchmark]),
        "spa_arms": lambda: spa_per_arm(frame, returns[benchmark]),
        "dsr": lambda: deflated_sharpe_for_arms(frame, periods, prior),
    }
    stats, skipped = {}, {}
    for key, test in tests.items():
        try:
            stats[key] = test()
        except LlmbtError as exc:  # too little data for this statistic: say so, keep the others
            skipped[key] = str(exc)
    return stats, skipped


def report_universe(res: Mapping[str, Any], folder: Path, *, horizon: int, arms: Sequence[str],
                    title: str, notes: dict[str, str], say: Callable[[str], None],
                    prior: PriorTrials | None = None) -> dict:
    """Per-fold Sharpe, return and IC, and the cross-section statistics of universe arms; the files.

    Writes into ``folder``: ``ic.csv`` (daily IC per arm), ``decay.csv`` (IC decay and break-even
    cost per arm and horizon, :func:`write_decay`), ``folds_ic.csv`` (the folds table plus
    each fold's IC), ``crosssection.json`` (every statistic, and why one was skipped),
    ``spa_dsr.csv`` (per arm: Sharpe, DSR with N = the number of arms, SPA p-values alone, StepM)
    and the pages (:func:`llmbt.reports.universe_page.write_universe_pages`); reports through ``say``.

    Args:
        res: ``returns`` (per arm and ``equal_weight``), ``scores`` (per arm, long rows), ``opens``
            (time x symbols), ``folds`` (one row per fold and arm) and ``periods_per_year`` (of
            the bars: every Sharpe of the report is annualised with it, as the engine's per-fold
            Sharpe is), as :func:`llmbt.experiments.results.read_results` gives them.
        folder: output folder. horizon: the IC's forward horizon. arms: reference arm first.
        title: the pages' title. notes: run facts for the page. say: where the text goes.
        prior: the trial ledger's other trials on this data for the DSR (None: the arms only).

    Returns:
        The statistics (:func:`universe_wf_stats`).
    """
    from llmbt.reports.crosssection import crosssection_table
    from llmbt.reports.universe_page import write_universe_pages

    arms = list(arms)
    daily = universe_daily_ic({a: res["scores"][a] for a in arms}, res["opens"], horizon)
    daily.to_csv(folder / "ic.csv", index_label="time")
    table = res["folds"].merge(fold_ic_table(daily, res["folds"], horizon), on=["fold", "model"])
    table.to_csv(folder / "folds_ic.csv", index=False)
    say(table[[c for c in FOLD_COLUMNS if c in table]].to_string(index=False, float_format="{:.4f}".format))
    run = res["config"]["run"]
    write_decay(res, arms, folder, float(run.get("commission", 0)) + float(run.get("slippage", 0)), say)
    periods = float(res["periods_per_year"])
    stats, skipped = universe_wf_stats(res["returns"], daily, horizon, periods=periods, arms=arms,
                                       prior=prior)
    if "counted" in stats.get("dsr", {}):
        dsr = stats["dsr"]
        notes = notes | {"DSR trials": trials_counted(dsr["n_trials"], dsr["n_this_run"], dsr["counted"])}
    say(crosssection_table(stats))
    for key, why in skipped.items():
        say(f"{key}: not computed ({why})")
    _write_stats(folder, stats, skipped, periods)
    page, tearsheet = write_universe_pages(folder, returns=res["returns"], folds=table, stats=stats,
                                           skipped=skipped, arms=arms, title=title,
                                           notes=notes | {"periods per year": f"{periods:g}"},
                                           periods=periods)
    say(f"comparison page: {page}; tearsheet: {tearsheet}")
    return stats


def report_walkforward(folder: str | Path, say: Callable[[str], None], trials: str = "ledger") -> dict:
    """:func:`report_universe` of a universe results folder: a universe walk-forward's (the base
    model, the reference; the adapter; its ``--arm`` arms, all N in the SPA and the DSR) or a
    universe ``bt compare --arm``'s (its arms, the first the reference). ``trials``: what the DSR
    counts, ``ledger`` (also the trial ledger's other trials on this data,
    :func:`llmbt.experiments.trials.prior_trials`) or ``run`` (the arms only)."""
    from llmbt.experiments.results import read_results
    from llmbt.experiments.trials import prior_trials
    from llmbt.experiments.wf_config import BASE, TUNED

    folder = Path(folder)
    res = read_results(folder)
    config, facts = res["config"], res["run"]
    kind = "universe compare" if config.get("compare") else "universe walk-forward"
    title = f"{config['run']['strategy']} on {config['run']['data']} ({kind} {facts['run_id']})"
    notes = folder_notes(res)
    if not config.get("compare"):  # bt compare --arm said it while scoring
        say(f"hindsight: {notes['hindsight']}")
    for key in FACT_KEYS:
        if key in notes:
            say(f"{key}: {notes[key]}")
    arms = config["arms"] if config.get("compare") else (
        BASE, TUNED, *(a["name"] for a in config.get("arms", [])))
    return report_universe(res, folder, horizon=int(config["horizon"]), arms=arms, title=title,
                           notes=notes, say=say, prior=prior_trials(res, arms, trials))


def folder_notes(res: Mapping[str, Any]) -> dict[str, str]:
    """The page's run facts of a universe results folder (:func:`llmbt.experiments.results.read_results`):
    run id, git commit, folds, seconds, the labels (a walk-forward) or the arms (a comparison) and
    the hindsight line where the folder records one."""
    config, facts = res["config"], res["run"]
    notes = {"run id": facts["run_id"], "git commit": commit_note(facts),
             "folds": str(facts["folds"]), "failed folds": str(facts["failed_folds"]),
             "seconds": str(facts["seconds"])}
    if config.get("compare"):
        run = config["run"]
        notes["period"] = f"{run['start']} .. {run['end'] or 'last bar'}"
        notes["arms"] = "; ".join(f"{n}: {spec}" for n, spec in config["arm_specs"].items())
    else:
        notes["labels"] = str(config.get("labels"))
        if config.get("arms"):  # bt walkforward --arm
            notes["arms"] = "; ".join(f"{a['name']}: kind={a['kind']}" + (
                f", model={a['model']}" if a.get("model") else "") for a in config["arms"])
    notes["hindsight"] = str(facts.get("hindsight") or tested_hindsight(config["run"], res["returns"]))
    for key in FACT_KEYS:  # universe.json: what biases the figures
        if res.get("universe", {}).get(key):
            notes[key] = res["universe"][key]
    return notes


def tested_hindsight(run: Mapping[str, Any], returns: Mapping[str, pd.Series]) -> str:
    """The hindsight line (:func:`llmbt.engine.signals.hindsight_line`) of a results folder's tested
    bars (the stitched test windows of ``returns``) and its run's model and ``model_cutoff``."""
    from llmbt.signals_cache.hindsight import hindsight_line

    tested = next(iter(returns.values())).index
    return hindsight_line(run["model"], run.get("model_cutoff"), tested[0], tested[-1],
                          scorer=run.get("scorer") or "lm")


def _write_stats(folder: Path, stats: dict, skipped: dict[str, str], periods: float) -> None:
    """``crosssection.json`` (every statistic, and the periods per year it annualised with) and
    ``spa_dsr.csv`` (one row per arm)."""
    data = {"stats": stats, "skipped": skipped, "periods_per_year": periods}
    (folder / "crosssection.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    per_arm = per_arm_table(stats)
    if len(per_arm):
        per_arm.to_csv(folder / "spa_dsr.csv", index_label="arm")


def per_arm_table(stats: dict) -> pd.DataFrame:
    """One row per arm: ``sharpe`` and ``dsr`` (N = ``n_trials`` arms), its own SPA p-values
    (``p_spa``, ``p_lower``, ``p_upper``: alone vs the benchmark), ``mean_excess`` and
    ``stepm_superior`` (found better than the benchmark, family-wise over all arms)."""
    spa_arms, dsr, spa = stats.get("spa_arms", {}), stats.get("dsr"), stats.get("spa")
    rows = {}
    for arm in dict.fromkeys([*spa_arms, *((dsr or {}).get("sharpes", {}))]):
        one = spa_arms.get(arm, {})
        rows[arm] = {"sharpe": dsr["sharpes"].get(arm) if dsr else None,
                     "dsr": dsr["dsrs"].get(arm) if dsr else None,
                     "n_trials": dsr["n_trials"] if dsr else None,
                     "mean_excess": one.get("mean_excess"), "p_spa": one.get("p_consistent"),
                     "p_lower": one.get("p_lower"), "p_upper": one.get("p_upper"),
                     "stepm_superior": arm in spa["stepm"] if spa else None}
    return pd.DataFrame.from_dict(rows, orient="index")
