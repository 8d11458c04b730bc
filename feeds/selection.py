"""Point-in-time universes: which symbols may be held at each bar, from data known at its close.

Two sources, combinable:

- ``--membership FILE`` (:func:`load_membership`): rows ``symbol,start,end`` (``end`` blank = still
  a member), e.g. historical index membership; a symbol is tradable only on bars between its start
  and end dates (both inclusive).
- ``--select RULE`` (:class:`SelectRule`): at every bar, the ``count`` symbols with the highest
  metric over the trailing ``bars`` bars *up to and including that bar*, among the symbols that
  have a bar then (and are members): ``news:30:252`` counts headlines (each on the first bar that
  may trade on it, as scoring aligns them, so a headline counts only once it is known) and
  ``dollar-volume:50:63`` sums close × volume. Ties go to the symbol name. A symbol with no
  headline (or no traded value) in the window is never selected.

Both give a calendar × symbols boolean panel (:func:`eligibility`) that the portfolio run ANDs
with the bars a symbol has; row *t* reads rows ≤ *t* only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError, DataError, did_you_mean
from llmbt.feeds.news import align_news_to_bars
from llmbt.feeds.universe import Universe

METRICS: tuple[str, ...] = ("news", "dollar-volume")


@dataclass(frozen=True)
class SelectRule:
    """A selection rule: the ``count`` symbols with the highest ``metric`` over ``bars`` bars."""

    metric: str
    count: int
    bars: int

    @classmethod
    def parse(cls, text: str) -> SelectRule:
        """``METRIC:COUNT:BARS``, e.g. ``news:30:252``.

        Raises:
            ConfigError: an unknown metric ("Did you mean …?") or counts that are not positive
                integers, naming the ``--select`` value and the fix.
        """
        parts = str(text).strip().split(":")
        if parts[0] not in METRICS:
            raise ConfigError(f"--select {text!r}: unknown metric {parts[0]!r}."
                              f"{did_you_mean(parts[0], METRICS)} Use METRIC:COUNT:BARS with METRIC "
                              f"one of {', '.join(METRICS)}, e.g. --select news:30:252")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
            raise ConfigError(f"--select {text!r} must be METRIC:COUNT:BARS with two positive whole "
                              f"numbers, e.g. --select {parts[0]}:30:252 (the 30 symbols with the "
                              "highest value over the trailing 252 bars)")
        return cls(parts[0], int(parts[1]), int(parts[2]))

    def __str__(self) -> str:
        return f"{self.metric}:{self.count}:{self.bars}"


def load_membership(path: str | Path, symbols: list[str]) -> pd.DataFrame:
    """Read ``symbol,start,end`` rows (``end`` blank = still a member) for ``symbols``.

    Returns:
        Columns ``symbol`` (upper-case), ``start``, ``end`` (UTC timestamps; ``end`` NaT = open).

    Raises:
        ConfigError: a missing file or column, a bad date, ``end`` before ``start``, or a symbol
            the universe does not hold, each naming the row and the fix.
    """
    path = Path(path).expanduser()
    label = f"--membership {str(path)!r}"
    if not path.is_file():
        raise ConfigError(f"{label} not found: pass a CSV with columns symbol,start,end")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in ("symbol", "start", "end") if c not in table.columns]
    if missing:
        raise ConfigError(f"{label} lacks column(s) {', '.join(missing)}: the header must be "
                          "symbol,start,end (end blank for a current member)")
    out = pd.DataFrame({"symbol": table["symbol"].str.strip().str.upper(),
                        "start": _dates(table["start"], label, "start", blank_ok=False),
                        "end": _dates(table["end"], label, "end", blank_ok=True)})
    _check_rows(out, label, symbols)
    return out


def _dates(values: pd.Series, label: str, column: str, blank_ok: bool) -> pd.Series:
    text = values.str.strip()
    parsed = pd.to_datetime(text.where(text != ""), errors="coerce", format="ISO8601")
    bad = parsed.isna() & ((text != "") | (not blank_ok))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ConfigError(f"{label} row {row + 1}: {column} {values.iloc[row]!r} is not a date; use "
                          f"YYYY-MM-DD{' (blank end = still a member)' if blank_ok else ''}")
    return parsed.dt.tz_localize("UTC") if parsed.dt.tz is None else parsed.dt.tz_convert("UTC")


def _check_rows(table: pd.DataFrame, label: str, symbols: list[str]) -> None:
    backwards = (table["end"] < table["start"]).to_numpy()
    if backwards.any():
        i = int(np.flatnonzero(backwards)[0])
        raise ConfigError(f"{label} row {i + 1}: {table['symbol'].iat[i]} ends "
                          f"{table['end'].iat[i]:%Y-%m-%d} before it starts "
                          f"{table['start'].iat[i]:%Y-%m-%d}: swap the dates")
    unknown = sorted(set(table["symbol"]) - set(symbols))
    if unknown:
        hint = did_you_mean(unknown[0], symbols)
        raise ConfigError(f"{label} names {len(unknown)} symbol(s) the universe does not hold: "
                          f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}.{hint} Add "
                          "their prices to --data, or drop them from the file (or --symbols).")


def membership_mask(table: pd.DataFrame, calendar: pd.DatetimeIndex,
                    symbols: list[str]) -> pd.DataFrame:
    """True where a symbol is a member on a bar's date (start ≤ date ≤ end, end NaT = open)."""
    days = calendar.normalize()
    out = pd.DataFrame(False, index=calendar, columns=pd.Index(symbols, name="symbol"))
    for row in table.itertuples(index=False):
        inside = days >= row.start
        if not pd.isna(row.end):
            inside &= days <= row.end
        out[row.symbol] |= inside
    return out


def selection_mask(rule: SelectRule, universe: Universe, news: pd.DataFrame | None,
                   allowed: pd.DataFrame) -> pd.DataFrame:
    """True where a symbol is among the rule's top ``count`` at that bar's close.

    Args:
        rule: the parsed ``--select`` rule.
        universe: the bars (the look-back history before ``--start`` included).
        news: headlines (``load_news`` columns); required by the ``news`` metric.
        allowed: calendar × symbols, True where a symbol may be ranked (it has a bar and is a
            member).
    """
    values = _trailing(rule, universe, news, allowed)
    ranked = np.where(allowed.to_numpy() & (values > 0), values, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")  # columns are sorted: ties by name
    top = np.zeros_like(ranked, dtype=bool)
    rows = np.arange(len(ranked))[:, None]
    top[rows, order[:, : rule.count]] = True
    return pd.DataFrame(top & np.isfinite(ranked), index=allowed.index, columns=allowed.columns)


def _trailing(rule: SelectRule, universe: Universe, news: pd.DataFrame | None,
              like: pd.DataFrame) -> np.ndarray:
    """The metric summed over the trailing ``rule.bars`` calendar bars, rows ≤ t only."""
    per_bar = _news_counts(universe, news, like) if rule.metric == "news" else _dollar_volume(
        universe, like)
    total = np.cumsum(per_bar, axis=0)
    lagged = np.vstack([np.zeros((rule.bars, total.shape[1])), total])[: len(total)]
    return total - lagged


def _dollar_volume(universe: Universe, like: pd.DataFrame) -> np.ndarray:
    value = universe.panel("close") * universe.panel("volume")
    return value.reindex(index=like.index, columns=like.columns).fillna(0.0).to_numpy()


def _news_counts(universe: Universe, news: pd.DataFrame | None, like: pd.DataFrame) -> np.ndarray:
    """Headlines per symbol per bar, each on the first calendar bar that may trade on it."""
    if news is None:
        raise DataError("--select news:… ranks symbols by headline count: pass --news FILE")
    out = np.zeros(like.shape)
    column = {s: j for j, s in enumerate(like.columns)}
    symbols = news["symbol"].astype(str).str.strip().str.upper()
    keep = symbols.isin(column).to_numpy()
    if not keep.any() or len(like) == 0:
        return out
    rows = news.loc[keep]
    pos = align_news_to_bars(rows["timestamp"], like.index,
                             rows["day"] if "day" in rows.columns else None)
    cols = symbols[keep].map(column).to_numpy()
    ok = pos >= 0
    np.add.at(out, (pos[ok], cols[ok]), 1.0)
    return out


def membership_changes(mask: pd.DataFrame) -> pd.DataFrame:
    """One row per entry or exit: ``timestamp``, ``symbol``, ``change`` (``enter``/``exit``); the
    first row's members count as entries."""
    now = mask.to_numpy(dtype=bool)
    before = np.vstack([np.zeros((1, now.shape[1]), dtype=bool), now[:-1]])
    rows, cols = np.nonzero(now != before)
    return pd.DataFrame({"timestamp": mask.index[rows], "symbol": mask.columns[cols].astype(str),
                         "change": np.where(now[rows, cols], "enter", "exit")})
