"""The trial ledger: every backtest llmbt runs (``bt run``, each arm of ``bt compare`` and of
``bt walkforward``), kept in ``$LLMBT_HOME/trials/ledger.sqlite`` so that the Deflated Sharpe Ratio
can count every configuration tried on the same data, not only the arms of one command.

A trial holds the data fingerprint, the first and last traded bar, the strategy and its parameters,
the scorer fingerprint (:mod:`llmbt.experiments.trial_ids`), the command's run id, its per-bar returns
(JSON: epoch seconds and plain numbers), its annualised Sharpe (:func:`llmbt.engine.metrics.sharpe_ratio`),
the periods per year, the command and the time it was recorded. Recording the same configuration
again replaces it. SQLite in WAL mode with a busy timeout, one transaction per trial, so processes
running side by side each add theirs. ``LLMBT_TRIALS=off`` turns the ledger off (nothing recorded,
the DSR counts the run's own arms).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from llmbt.engine.metrics import sharpe_ratio
from llmbt.errors import ConfigError
from llmbt.experiments.trial_ids import (
    NO_SCORER,
    bar_text,
    config_key,
    data_fingerprint,
    scorer_fingerprint,
)
from llmbt.feeds.calendar import periods_per_year
from llmbt.paths import llmbt_home

ENV = "LLMBT_TRIALS"
MODES = ("ledger", "run")  # --trials: every trial on this data, or this command's arms only
BUSY_MS = 30_000
_COLUMNS = ("key", "data", "source", "strategy", "params", "scorer", "first_bar", "last_bar", "run_id",
            "arm", "command", "sharpe", "periods_per_year", "bars", "created", "returns")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    key TEXT PRIMARY KEY, data TEXT NOT NULL, source TEXT NOT NULL, strategy TEXT NOT NULL,
    params TEXT NOT NULL, scorer TEXT NOT NULL, first_bar TEXT NOT NULL, last_bar TEXT NOT NULL,
    run_id TEXT NOT NULL, arm TEXT, command TEXT NOT NULL, sharpe REAL, periods_per_year REAL NOT NULL,
    bars INTEGER NOT NULL, created TEXT NOT NULL, returns TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS trials_by_data ON trials (data, first_bar, last_bar);
"""


@dataclass(frozen=True)
class Trial:
    """One configuration tried: see the module docstring. ``sharpe`` is annualised with
    ``periods_per_year`` (NaN when undefined: returns that never moved); ``returns`` holds
    ``t`` (epoch seconds of each bar) and ``r`` (its return, None where undefined)."""

    key: str
    data: str
    source: str
    strategy: str
    params: dict[str, Any]
    scorer: str
    first_bar: str
    last_bar: str
    run_id: str
    arm: str | None
    command: str
    sharpe: float
    periods_per_year: float
    bars: int
    created: str
    returns: dict[str, list] = field(default_factory=dict, repr=False)

    def series(self) -> pd.Series:
        """The per-bar returns as a Series indexed by UTC time."""
        index = pd.to_datetime(self.returns.get("t", []), unit="s", utc=True)
        return pd.Series([math.nan if v is None else v for v in self.returns.get("r", [])], index,
                         dtype=float, name=self.arm or self.strategy)


@dataclass(frozen=True)
class PriorTrials:
    """What the ledger adds to a command's own arms in the DSR: the annualised Sharpes of the other
    configurations tried on the same data over overlapping periods. ``mode``: ``ledger``, ``run``
    (``--trials run``: none added) or ``off`` (``LLMBT_TRIALS=off``: none added)."""

    sharpes: tuple[float, ...] = ()
    mode: str = "run"


def enabled() -> bool:
    """False when ``LLMBT_TRIALS`` is ``off`` (or 0/false/no); on by default.

    Raises:
        ConfigError: any other value, naming it and the fix.
    """
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("", "on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise ConfigError(f"{ENV}={value!r} is not on or off: unset it (the ledger is on) or set "
                      f"{ENV}=off to record no trials.")


def check_mode(mode: str) -> str:
    """``mode`` if it is a ``--trials`` mode (:data:`MODES`)."""
    if mode not in MODES:
        raise ConfigError(f"--trials {mode!r} is not one of {', '.join(MODES)}: ledger counts every "
                          "trial on this data, run only this command's arms.")
    return mode


def ledger_path() -> Path:
    """``$LLMBT_HOME/trials/ledger.sqlite``."""
    return llmbt_home() / "trials" / "ledger.sqlite"


def connect() -> sqlite3.Connection:
    """The ledger, created if absent: WAL mode, a busy timeout, autocommit (callers open their own
    ``BEGIN IMMEDIATE`` transaction to write)."""
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL: no corruption; a power cut may lose the last trials
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(_SCHEMA)
    return conn


def make_trial(config: Any, returns: pd.Series, info: Mapping[str, Any], command: str, *,
               arm: str | None = None, run_id: str | None = None, scorer: str | None = None) -> Trial:
    """The trial of a run of ``config`` (a ``RunConfig``) that earned ``returns`` (per traded bar).

    Args:
        info: the run's signal facts (``signal_info``), for the scorer fingerprint.
        command: what made it (``run``, ``compare``, ``walkforward``). arm: the arm's name.
        run_id: the command's run id (default ``config.run_id``).
        scorer: the scorer fingerprint, when it is not the one of ``config`` and ``info`` (stitched
            returns: :func:`llmbt.experiments.trial_ids.combined_scorer`).
    """
    returns = returns.astype(float)
    ppy = periods_per_year(returns.index)
    params = config.params.all_values()  # typed, with the defaults, when the config was made
    data, scorer = data_fingerprint(config.to_dict()), scorer or scorer_fingerprint(config, info)
    first, last = bar_text(returns.index[0]), bar_text(returns.index[-1])
    return Trial(key=config_key(data, config.strategy, params, scorer, first, last), data=data,
                 source=str(config.data), strategy=config.strategy, params=params, scorer=scorer,
                 first_bar=first, last_bar=last, run_id=run_id or config.run_id, arm=arm,
                 command=command, sharpe=sharpe_ratio(returns, ppy), periods_per_year=ppy,
                 bars=len(returns), created=datetime.now(UTC).isoformat(timespec="seconds"),
                 returns=plain_returns(returns))


def plain_returns(returns: pd.Series) -> dict[str, list]:
    """Per-bar returns as plain JSON: ``t`` (epoch seconds, UTC; naive times are UTC) and ``r`` (the
    returns, None where undefined)."""
    index = pd.DatetimeIndex(returns.index)
    index = index.tz_localize("UTC") if index.tz is None else index
    return {"t": index.as_unit("s").asi8.tolist(),
            "r": [v if math.isfinite(v) else None for v in returns.astype(float).tolist()]}


def record(trial: Trial) -> None:
    """Write ``trial`` in one transaction, replacing the row of the same configuration."""
    row = [getattr(trial, c) for c in _COLUMNS]
    row[_COLUMNS.index("params")] = json.dumps(trial.params, sort_keys=True, default=str)
    row[_COLUMNS.index("returns")] = json.dumps(trial.returns, separators=(",", ":"))
    sharpe = row[_COLUMNS.index("sharpe")]
    row[_COLUMNS.index("sharpe")] = sharpe if math.isfinite(sharpe) else None
    marks = ", ".join("?" * len(_COLUMNS))
    with closing(connect()) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"INSERT OR REPLACE INTO trials ({', '.join(_COLUMNS)}) VALUES ({marks})", row)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def record_run(config: Any, returns: pd.Series, info: Mapping[str, Any], command: str, *,
               arm: str | None = None, run_id: str | None = None, scorer: str | None = None) -> str | None:
    """:func:`record` the trial of :func:`make_trial`; its key, or None when the ledger is off or
    there are no returns."""
    if not enabled() or returns is None or returns.empty:
        return None
    trial = make_trial(config, returns, info, command, arm=arm, run_id=run_id, scorer=scorer)
    record(trial)
    return trial.key


def record_walkforward(result: Any, command: str = "walkforward") -> dict[str, Any]:
    """Record every arm of a walk-forward (a ``WalkForwardResult``) as one trial: its stitched
    out-of-sample returns, the scorers of its folds (:func:`~llmbt.experiments.trial_ids.combined_scorer`).

    Returns:
        What the results folder keeps (``run.json``'s ``trials``): ``data`` (the data
        fingerprint) and ``keys`` (arm -> trial key).
    """
    from llmbt.experiments.trial_ids import combined_scorer

    cfg, keys = result.config, {}
    for name in result.arm_names if result.ok else ():
        scorers = [f.facts["models"][name].get("scorer") or NO_SCORER for f in result.ok]
        keys[name] = record_run(cfg.run, result.stitched(name), {}, command, arm=name,
                                run_id=cfg.run_id, scorer=combined_scorer(scorers))
    return trials_facts(cfg.run, keys)


def trials_facts(config: Any, keys: Mapping[str, str | None]) -> dict[str, Any]:
    """What a results folder keeps of its arms' trials (``run.json``'s ``trials``): the data
    fingerprint of ``config`` (a ``RunConfig``) and each recorded arm's key (none when the ledger
    is off), so that ``bt compare --from`` leaves them out of the ledger's other trials."""
    return {"data": data_fingerprint(config.to_dict()), "keys": {n: k for n, k in keys.items() if k}}


def _trial(row: sqlite3.Row, with_returns: bool) -> Trial:
    values = dict(row)
    values["params"] = json.loads(values["params"])
    values["sharpe"] = math.nan if values["sharpe"] is None else values["sharpe"]
    values["returns"] = json.loads(values["returns"]) if with_returns else {}
    return Trial(**values)


def _select(where: str, args: Sequence[Any], with_returns: bool) -> list[Trial]:
    if not ledger_path().is_file():
        return []
    columns = ", ".join(c if c != "returns" or with_returns else "'' AS returns" for c in _COLUMNS)
    with closing(connect()) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(f"SELECT {columns} FROM trials {where} ORDER BY created, rowid", args).fetchall()
    return [_trial(r, with_returns) for r in rows]


def _filters(data: str | None, strategy: str | None, before: str | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if data:
        clauses.append("(source = ? OR data LIKE ?)")
        args += [data, f"{data}%"]
    if strategy:
        clauses.append("strategy = ?")
        args.append(strategy)
    if before:
        clauses.append("created < ?")
        args.append(_day(before))
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def _day(text: str) -> str:
    """``--before`` as the ISO text the ``created`` column compares with (UTC)."""
    try:
        ts = pd.Timestamp(str(text))
    except ValueError:
        raise ConfigError(f"--before {text!r} is not a date: use YYYY-MM-DD") from None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).isoformat()


def list_trials(data: str | None = None, strategy: str | None = None, before: str | None = None,
                with_returns: bool = False) -> list[Trial]:
    """The ledger's trials, oldest first; ``data`` matches the source (``sample:GOOG``) or the
    start of the data fingerprint, ``before`` the recording time."""
    where, args = _filters(data, strategy, before)
    return _select(where, args, with_returns)


def clear(data: str | None = None, before: str | None = None) -> int:
    """Delete every trial (or those of ``data``, or recorded before ``before``); how many."""
    if not ledger_path().is_file():
        return 0
    where, args = _filters(data, None, before)
    with closing(connect()) as conn:
        conn.execute("BEGIN IMMEDIATE")
        count = conn.execute(f"DELETE FROM trials {where}", args).rowcount
        conn.execute("COMMIT")
    return count


def overlapping(data: str, first: str, last: str, exclude: Sequence[str] = ()) -> list[Trial]:
    """Trials on the data ``data`` whose traded bars overlap ``first..last`` (bar texts), except the
    keys ``exclude`` (the command's own arms)."""
    marks = ", ".join("?" * len(exclude))
    where = "WHERE data = ? AND first_bar <= ? AND last_bar >= ?" + (
        f" AND key NOT IN ({marks})" if exclude else "")
    return _select(where, [data, last, first, *exclude], False)


def prior_trials(res: Mapping[str, Any], arms: Sequence[str], mode: str = "ledger") -> PriorTrials:
    """The ledger's other trials for the DSR of a results folder's ``arms``
    (:func:`llmbt.experiments.results.read_results`): on its data (``run.json``'s ``trials``, or the
    fingerprint of its run's data), over the bars its arms traded, its own arms left out."""
    if check_mode(mode) == "run":
        return PriorTrials(mode="run")
    if not enabled():
        return PriorTrials(mode="off")
    facts = res["run"].get("trials") or {}
    data = facts.get("data") or data_fingerprint(res["config"]["run"])
    index = pd.DatetimeIndex(sorted(set().union(*(res["returns"][a].index for a in arms))))
    others = overlapping(data, bar_text(index[0]), bar_text(index[-1]), list(facts.get("keys", {}).values()))
    return PriorTrials(tuple(t.sharpe for t in others if math.isfinite(t.sharpe)), "ledger")


def count_on(data: str) -> int:
    """How many trials the ledger holds on the data ``data``."""
    if not ledger_path().is_file():
        return 0
    with closing(connect()) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM trials WHERE data = ?", [data]).fetchone()[0])
