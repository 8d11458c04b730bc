"""Which symbols a portfolio may hold at each bar, and what the universe's history says about bias.

Data flow: ``--membership`` and ``--select`` (:mod:`llmbt.feeds.selection`) → one calendar ×
symbols panel of eligible names, from data known at each close → the strategy ranks only those
(:func:`apply`): a name that leaves is closed at its next bar's open, a bar with fewer eligible
names than the strategy needs holds cash. The equal-weight benchmark uses the same panel.

Survivorship: a symbol whose bars end before the run's last bar was delisted (or merged); the
portfolio loop closes it at its last close (:func:`llmbt.engine.portfolio.simulate`) and
:func:`delistings` names it. A universe in which every symbol trades to the last bar and no
membership was given is *survivor-only* (:func:`survivorship_note`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.feeds.selection import (
    SelectRule,
    load_membership,
    membership_changes,
    membership_mask,
    selection_mask,
)
from llmbt.feeds.universe import Universe

if TYPE_CHECKING:
    from llmbt.strategies.params import StrategyParams

SURVIVOR_ONLY = ("survivor-only: every symbol trades to the last bar and no --membership was given, "
                 "so names that were delisted or left the index in the period are missing; that "
                 "biases absolute and equal-weight returns upward (a strategy is compared with a "
                 "benchmark that shares the bias). Pass --membership FILE or data that includes "
                 "the delisted names.")


@dataclass(frozen=True)
class Eligible:
    """The eligible-names panel (calendar × symbols) and what produced it."""

    mask: pd.DataFrame
    rule: str

    def ever(self, since: pd.Timestamp | None) -> list[str]:
        """Symbols eligible on at least one bar from ``since`` on (all bars when None)."""
        rows = self.mask if since is None else self.mask.loc[since:]
        return [str(s) for s in rows.columns[rows.to_numpy().any(axis=0)]]


def history_bars(config: RunConfig) -> int:
    """Bars of history before ``--start`` that ``--select`` looks back over (0 without it)."""
    return SelectRule.parse(config.select).bars if config.select else 0


def check(config: RunConfig) -> None:
    """Refuse a bad ``--select`` before any data is loaded."""
    if config.select:
        SelectRule.parse(config.select)


def eligible(config: RunConfig, universe: Universe, news: pd.DataFrame | None) -> Eligible | None:
    """The names each bar may hold under ``--membership`` and ``--select`` (None: no rule given)."""
    if not (config.select or config.membership):
        return None
    allowed = universe.tradable()
    rules = []
    if config.membership:
        table = load_membership(config.membership, universe.symbols)
        allowed &= membership_mask(table, universe.calendar, universe.symbols)
        rules.append(f"membership {config.membership}")
    if config.select:
        rule = SelectRule.parse(config.select)
        allowed = selection_mask(rule, universe, news, allowed)
        rules.append(f"select {rule}")
    return Eligible(allowed, ", ".join(rules))


def apply(weights: pd.DataFrame, tradable: pd.DataFrame, chosen: Eligible | None,
          needed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Close names that are not eligible; hold cash on bars with fewer than ``needed`` names.

    Args:
        weights: the strategy's target weights, ranked over the eligible names only.
        tradable: True where a symbol has a bar.
        chosen: the eligible panel (None: ``weights`` unchanged).
        needed: eligible names a bar needs, at least 1.

    Returns:
        The weights (0 = close at the next open) and, per bar, whether it held cash for too few
        eligible names.
    """
    if chosen is None:
        return weights, pd.Series(False, index=weights.index)
    ok = tradable.reindex_like(weights).fillna(False).astype(bool).to_numpy()
    member = chosen.mask.reindex_like(weights).fillna(False).astype(bool).to_numpy()
    out = weights.to_numpy(copy=True)
    out[ok & ~member] = 0.0
    short = (ok & member).sum(axis=1) < max(needed, 1)
    out[short[:, None] & ok] = 0.0
    return (pd.DataFrame(out, index=weights.index, columns=weights.columns),
            pd.Series(short, index=weights.index))


def held_only(panels: Mapping[str, pd.DataFrame], chosen: Eligible, since: pd.Timestamp | None,
              tradable: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The signal panels where a name may be held (from ``since`` on), NaN elsewhere, plus the
    ``selected`` panel (1/0 where the name has a bar, NaN where it has none, as before a listing):
    a name's signals then do not depend on which later bars select it (only names selected at
    some bar are scored), so the look-ahead audit can compare them."""
    keep = chosen.mask.copy()
    if since is not None:
        keep.loc[keep.index < since] = False
    out = {k: v.reindex(index=keep.index, columns=keep.columns).where(keep) for k, v in panels.items()}
    selected = chosen.mask.astype(float).where(tradable.reindex_like(chosen.mask).fillna(False))
    return {"selected": selected} | out  # first: the audit names the root cause


def delistings(prices: Mapping[str, pd.DataFrame]) -> dict[str, pd.Timestamp]:
    """Symbols whose last bar comes before the last bar of any symbol, with that last bar."""
    ends = {s: f.index[-1] for s, f in prices.items() if len(f)}
    if not ends:
        return {}
    last = max(ends.values())
    return {s: t for s, t in sorted(ends.items()) if t < last}


def delisting_note(gone: Mapping[str, pd.Timestamp]) -> str:
    """One line naming the delisted symbols and their last bars ('' when none)."""
    if not gone:
        return ""
    named = ", ".join(f"{s} {t:%Y-%m-%d}" for s, t in list(gone.items())[:8])
    more = f" and {len(gone) - 8} more" if len(gone) > 8 else ""
    return (f"{len(gone)} symbol(s) end before the run's last bar (delisted or merged): {named}{more};"
            " each position was closed at its last close, in the strategy and the benchmark")


def survivorship_note(prices: Mapping[str, pd.DataFrame], membership: str | None) -> str:
    """:data:`SURVIVOR_ONLY` when every symbol trades to the last bar and no membership was given."""
    if membership or len(prices) < 2 or delistings(prices):
        return ""
    return SURVIVOR_ONLY


def selection_summary(chosen: Eligible, since: pd.Timestamp, cash_bars: int) -> str:
    """Names held per bar, distinct names, entries and exits over the traded bars."""
    rows = chosen.mask.loc[since:]
    counts = rows.sum(axis=1)
    now = rows.to_numpy()
    flips = now[1:] != now[:-1]
    enters, exits = int((flips & now[1:]).sum()), int((flips & ~now[1:]).sum())
    text = (f"{chosen.rule}: {counts.mean():.1f} eligible names a bar (min {int(counts.min())}, "
            f"max {int(counts.max())}), {len(chosen.ever(since))} distinct, {enters} entries and "
            f"{exits} exits over {len(rows)} bars")
    if cash_bars:
        text += f"; {cash_bars} bar(s) held cash for too few eligible names"
    return text


def needed_names(params: StrategyParams) -> int:
    """Eligible names a rebalance needs: the strategy's ``min_names`` (typed; at least 1)."""
    return max(getattr(params, "min_names", 1), 1)


def universe_facts(config: RunConfig, universe: Universe, news: pd.DataFrame | None,
                   since: pd.Timestamp) -> dict:
    """What a results folder and its page say about the universe from ``since`` (the first traded
    bar) on: ``survivorship`` and ``delisted`` (sentences, '' when nothing to say), ``selection``
    (:func:`selection_summary`, without a rule '') and ``changes`` (each entry and exit, a frame)."""
    window = {s: f.loc[since:] for s, f in universe.prices.items()}
    window = {s: f for s, f in window.items() if len(f)}
    facts = {"survivorship": survivorship_note(window, config.membership),
             "delisted": delisting_note(delistings(window)), "selection": "",
             "changes": membership_changes(pd.DataFrame(index=pd.DatetimeIndex([]), dtype=bool))}
    chosen = eligible(config, universe, news)
    allowed = universe.tradable()
    if chosen is not None:
        facts["selection"] = selection_summary(chosen, since, 0)
        facts["changes"] = membership_changes(chosen.mask.loc[since:])
        allowed &= chosen.mask
    facts["construction"] = _structural(config, int(allowed.loc[since:].sum(axis=1).max()))
    return facts


def _structural(config: RunConfig, most_names: int) -> str:
    from llmbt.strategies.registry import get_strategy

    cls = get_strategy(config.strategy)
    return cls.structural_note(config.params, most_names)


#: The universe facts every output says, in this order.
FACT_KEYS = ("selection", "delisted", "survivorship", "construction")


def say_facts(facts: dict, say) -> None:
    """Print the universe's sentences (survivorship, delistings, selection) through ``say``."""
    for key in FACT_KEYS:
        if facts.get(key):
            say(f"{key}: {facts[key]}")
