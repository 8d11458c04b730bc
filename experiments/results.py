"""The results folder of a walk-forward run, or of a universe ``bt compare --arm``: plain JSON and CSV
that ``bt compare --from`` reads back.

Layout::

    OUT/config.json        the WalkForwardConfig (with its run id)
    OUT/run.json           run id, git commit (and ``dirty``), package versions, timings, folds
                           ok / failed, and ``trials``: the data fingerprint and each arm's key in
                           the trial ledger (:mod:`llmbt.experiments.trials`)
    OUT/folds/fold-K.json  everything known about fold K (or its error)
    OUT/folds.csv          one row per (fold, model): period, examples, losses, F1, Sharpe, …
    OUT/returns.csv        stitched out-of-sample returns: one column per model + buy_and_hold
    OUT/scores.csv         per test bar and model: score, confidence, label, prediction, fwd return
    OUT/prices.csv         closes over the tested bars (the comparison page's price chart)
    OUT/opens.csv          a universe run: opens (time x symbols) from the first tested bar, for the
                           daily IC (scores.csv then holds time, symbol, score, model rows and
                           returns.csv the equal_weight benchmark)
    OUT/adapters/fold-K    link to the fold's adapter in the content-addressed store
    OUT/arms/fold-K/NAME   link to the fold's artefact of a trained ``--arm`` (an embedding head,
                           a seqcls adapter; :mod:`llmbt.experiments.wf_arms`)

With ``--arm`` arms, returns.csv and scores.csv hold each arm next to the base model and the LoRA.
A ``bt compare --arm`` (:func:`write_arms_results`) writes the same config.json (the run, its arms
and horizon, ``compare: true``), run.json (one fold), folds.csv, returns.csv (one column per arm +
the benchmark: equal_weight or buy_and_hold), scores.csv, and opens.csv (a universe) or prices.csv
(one symbol); no folds/ or adapters/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from llmbt.engine.signals import arms_hindsight
from llmbt.errors import DataError
from llmbt.experiments.walkforward import BASE, TUNED, WalkForwardResult
from llmbt.feeds.calendar import periods_per_year

if TYPE_CHECKING:
    from llmbt.engine.config import RunConfig
    from llmbt.experiments.arms import Arm

PACKAGES = ("torch", "transformers", "peft", "backtrader", "quantstats", "pandas", "numpy")


#: The folder whose git checkout a results folder names: this package's.
SOURCE = Path(__file__).parent


def _git(folder: Path, *args: str) -> str | None:
    """stdout of ``git ARGS`` in ``folder``; None outside git or without git."""
    try:
        out = subprocess.run(["git", *args], cwd=str(folder), check=True, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state(folder: Path | None = None) -> dict[str, Any]:
    """The checkout running this (``folder``, default :data:`SOURCE`): ``git_commit``, its HEAD,
    and ``dirty``, whether tracked files differ from HEAD (staged or not; untracked files do not
    count, as in ``git describe --dirty``): the code that ran is then not that commit's. Both are
    None outside git."""
    folder = SOURCE if folder is None else folder
    commit = (_git(folder, "rev-parse", "HEAD") or "").strip() or None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "dirty": None if status is None else bool(status.strip())}


def versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a result."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_results(result: WalkForwardResult, out: str | Path, trials: dict[str, Any] | None = None) -> Path:
    """Write the results folder (see the module docstring); returns it. ``trials``: what
    :func:`llmbt.experiments.trials.record_walkforward` recorded (kept in ``run.json``)."""
    out = Path(out)
    (out / "folds").mkdir(parents=True, exist_ok=True)
    cfg = result.config
    _dump(out / "config.json", {"run_id": cfg.run_id, **cfg.to_dict()})
    failed = [f.facts["fold"] for f in result.folds if "error" in f.facts]
    _dump(out / "run.json", {"run_id": cfg.run_id, **git_state(), "versions": versions(),
                             "seconds": round(result.seconds, 1), "folds": len(result.folds),
                             "failed_folds": failed} | ({"trials": trials} if trials else {}))
    for fold in result.folds:
        _dump(out / "folds" / f"fold-{fold.facts['fold']}.json", fold.facts)
        _link_adapter(out, fold.facts)
        for name, arm in fold.facts.get("arms", {}).items():
            if arm.get("artifact"):
                _link(out / "arms" / f"fold-{fold.facts['fold']}" / name, arm["artifact"])
    result.table().to_csv(out / "folds.csv", index=False)
    models = (TUNED, BASE, *(a.name for a in cfg.arms))
    returns = {name: result.stitched(name) for name in (*models, result.benchmark_name)}
    pd.DataFrame(returns).to_csv(out / "returns.csv", index_label="time")
    scores = [result.stitched_scores(name).assign(model=name) for name in models]
    pd.concat(scores).to_csv(out / "scores.csv", index_label="time")
    tested = returns[BASE].index
    if result.close is not None and len(tested):
        result.close.loc[tested[0] : tested[-1]].to_csv(out / "prices.csv", index_label="time")
    if result.opens is not None:
        result.opens.to_csv(out / "opens.csv", index_label="time")
    write_universe_facts(out, result.universe)
    return out


def write_arms_results(res: dict[str, Any], config: RunConfig, arms: list[Arm], out: str | Path, *,
                       horizon: int) -> Path:
    """Write the results folder of a ``bt compare --arm`` (see the module docstring).

    Args:
        res: :func:`llmbt.experiments.universe_arms.run_universe_arms` (a universe: with ``opens``) or
            :func:`llmbt.experiments.arms.run_arms` (one symbol: with ``close``). config: the run
            (before the arms change it). arms: the arms, reference first. out: the folder.
            horizon: the IC's (or the labels') horizon.

    Returns:
        The folder; ``bt compare --from`` reads it back.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"run": config.to_dict(), "arms": [a.name for a in arms], "horizon": horizon,
            "arm_specs": {a.name: dataclasses.asdict(a) for a in arms}, "compare": True,
            "universe": res.get("opens") is not None}
    hashed = meta | {"run": config.id_dict()}  # the hash from before precision was renamed
    config_hash = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()[:12]
    _dump(out / "config.json", {"run_id": config.run_id, "config_hash": config_hash, **meta})
    hindsight = "; ".join(arms_hindsight(res["info"]))  # each arm's scorer has its own
    _dump(out / "run.json", {"run_id": config.run_id, "config_hash": config_hash, **git_state(),
                             "versions": versions(), "seconds": round(res.get("seconds", 0.0), 1),
                             "folds": 1, "failed_folds": [], "hindsight": hindsight}
          | ({"trials": res["trials"]} if res.get("trials") else {}) | _schedules(res["info"]))
    pd.DataFrame(res["returns"]).to_csv(out / "returns.csv", index_label="time")
    pd.concat([frame.assign(model=name) for name, frame in res["scores"].items()]).to_csv(
        out / "scores.csv", index_label="time")
    res["folds"].to_csv(out / "folds.csv", index=False)
    if meta["universe"]:
        res["opens"].to_csv(out / "opens.csv", index_label="time")
        write_universe_facts(out, res.get("universe"))
    else:
        res["close"].rename("close").to_csv(out / "prices.csv", index_label="time")
    return out


def _schedules(info: dict[str, Any]) -> dict[str, Any]:
    """``schedules``: each point-in-time arm's segment → model mapping (none without one)."""
    found = {name: facts["schedule"] for name, facts in info.items() if facts.get("schedule")}
    return {"schedules": found} if found else {}


def _dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def _link_adapter(out: Path, facts: dict[str, Any]) -> None:
    if facts.get("adapter"):
        _link(out / "adapters" / f"fold-{facts['fold']}", facts["adapter"])


def _link(link: Path, target: str) -> None:
    """``link`` -> the folder ``target`` (replacing an older link)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target, link, target_is_directory=True)


def write_universe_facts(out: Path, facts: dict | None) -> None:
    """``universe.json`` (survivorship, delistings, selection: sentences) and, under a selection,
    ``selection.csv`` (each entry and exit: timestamp, symbol, change)."""
    if not facts:
        return
    _dump(out / "universe.json", {k: v for k, v in facts.items() if isinstance(v, str)})
    if facts.get("selection"):
        facts["changes"].to_csv(out / "selection.csv", index=False)


def read_results(out: str | Path) -> dict[str, Any]:
    """Read back what :func:`write_results` wrote: returns, scores (per model), folds, run facts
    and the closes over the tested bars (``close``: prices.csv, or for a folder written before it
    was saved, reloaded from the run's data; None for a universe, whose ``opens`` are read), and
    ``periods_per_year`` of the tested bars (:func:`llmbt.feeds.calendar.periods_per_year`: 252 for
    daily stocks, 365.25 for daily crypto), which the reports annualise with.

    Raises:
        DataError: the folder is not a walk-forward results folder.
    """
    out = Path(out)
    missing = [n for n in ("run.json", "returns.csv", "scores.csv", "folds.csv") if not (out / n).is_file()]
    if missing:
        raise DataError(f"{str(out)!r} is not a walk-forward results folder (missing {missing}); "
                        "pass the --out folder of a bt walkforward run or of a bt compare --arm.")
    stitched = pd.read_csv(out / "returns.csv", index_col="time", parse_dates=["time"])
    scores = pd.read_csv(out / "scores.csv", index_col="time", parse_dates=["time"])
    folds = pd.read_csv(out / "folds.csv", parse_dates=["test_start", "test_end"])
    returns = {c: stitched[c].dropna() for c in stitched.columns}
    config = json.loads((out / "config.json").read_text())
    opens = None
    if (out / "prices.csv").is_file():
        close = pd.read_csv(out / "prices.csv", index_col="time", parse_dates=["time"])["close"]
    elif config.get("universe"):  # a universe: opens (time x symbols) instead of one close
        close = None
        opens = pd.read_csv(out / "opens.csv", index_col="time", parse_dates=["time"])
    else:
        close = _reload_close(config["run"], returns)
    return {"returns": returns, "close": close, "opens": opens,
            "scores": {m: g.drop(columns="model") for m, g in scores.groupby("model", sort=False)},
            "folds": folds, "run": json.loads((out / "run.json").read_text()), "config": config,
            "universe": json.loads((out / "universe.json").read_text())
            if (out / "universe.json").is_file() else {},
            "periods_per_year": periods_per_year(stitched.index)}


def _reload_close(run: dict[str, Any], returns: dict[str, pd.Series]) -> pd.Series:
    """Closes over the tested bars for a results folder saved without prices.csv (older runs)."""
    from llmbt.feeds import load_prices

    index = next(iter(returns.values())).index
    return load_prices(run["data"], index[0], index[-1], interval=run.get("interval") or "1d")["close"]
