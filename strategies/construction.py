"""Turnover-aware portfolio construction: which names a ranked long book holds at a rebalance.

A weak signal is easily paid away in turnover: re-ranking the whole book every day replaces names
whose rank moved by noise. The rules here keep a name until the signal clearly says otherwise:

- ``n_drop`` (Qlib's TopkDropout): at each rebalance at most ``n_drop`` held names are replaced,
  the worst-ranked first, each by the best-ranked name not held;
- ``band`` (hysteresis): a held name stays while its rank is within ``top_k + band``;
- ``min_hold``: a name held for fewer than ``min_hold`` bars does not leave (unless it can no
  longer be ranked: no bar, no score, not selected);
- ``max_turnover``: the sum of |weight changes| at one rebalance is capped; the trades that fit
  are made, best first (the worst leaver paired with the best entrant), the others wait.

``n_drop = top_k``, ``band = 0``, ``min_hold = 0`` and no ``max_turnover`` hold the ``top_k``
best-ranked names at every rebalance: the full re-rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmbt.strategies.portfolio_params import LlmNewsPortfolioParams


@dataclass
class Book:
    """What the long book holds between rebalances: name index → the bar it entered, and the
    weights of the last rebalance (for ``max_turnover``)."""

    since: dict[int, int] = field(default_factory=dict)
    weights: np.ndarray | None = None


def hold_long(order: np.ndarray, ok: np.ndarray, book: Book, bar: int,
              p: LlmNewsPortfolioParams) -> list[int]:
    """The names to hold long at rebalance ``bar``, best-ranked first.

    Args:
        order: indices of the rankable names, best first.
        ok: which names can be ranked now (a bar, a finite score, selected).
        book: the holdings so far (its ``since`` is updated).
        bar: this bar's position in the calendar.
        p: the typed parameters: ``top_k``, ``n_drop``, ``band``, ``min_hold``.
    """
    top_k = p.top_k
    n_drop = top_k if p.n_drop is None else p.n_drop
    rank = {int(j): r for r, j in enumerate(order)}
    held = [j for j in book.since if ok[j]]
    stays = [j for j in held if rank[j] < top_k + p.band or bar - book.since[j] < p.min_hold]
    leavers = sorted((j for j in held if j not in stays), key=lambda j: -rank[j])
    entrants = [int(j) for j in order if int(j) not in book.since]
    free = max(top_k - len(stays) - len(leavers), 0)  # slots that need no swap
    swaps = min(len(leavers), n_drop, max(len(entrants) - free, 0))
    kept = stays + leavers[swaps:]
    new = entrants[: max(top_k - len(kept), 0)]
    book.since = {j: book.since[j] for j in kept} | {j: bar for j in new}
    return sorted(kept + new, key=lambda j: rank[j])


def cap_turnover(old: np.ndarray, new: np.ndarray, priority: np.ndarray, cap: float | None) -> np.ndarray:
    """``new`` weights with the trades that fit under ``cap`` (sum of |change|), best first.

    Trades are paired: the leaver of lowest priority with the entrant of highest priority, then
    the next pair, then every resize of a name kept; a pair that does not fit keeps both old
    weights, and the rest is skipped.

    Args:
        old, new: the last and the wanted weights. priority: higher = better (e.g. -rank).
        cap: the most turnover at one rebalance, or None (every trade).
    """
    if cap is None:
        return new
    delta = new - old
    out, used = old.copy(), 0.0
    for group in _trade_groups(old, new, priority):
        cost = float(np.abs(delta[group]).sum())
        if used + cost > cap + 1e-12:
            break
        out[group], used = new[group], used + cost
    return out


def _trade_groups(old: np.ndarray, new: np.ndarray, priority: np.ndarray) -> list[list[int]]:
    """Pairs (worst leaver, best entrant), the unpaired rest, then resizes."""
    leave = sorted(np.flatnonzero((old != 0) & (new == 0)), key=lambda j: priority[j])
    enter = sorted(np.flatnonzero((old == 0) & (new != 0)), key=lambda j: -priority[j])
    pairs = [[int(a), int(b)] for a, b in zip(leave, enter, strict=False)]
    rest = [[int(j)] for j in (leave[len(pairs):] + enter[len(pairs):])]
    resize = [[int(j)] for j in np.flatnonzero((old != 0) & (new != 0) & (old != new))]
    return pairs + rest + sorted(resize, key=lambda g: -priority[g[0]])
