"""A/B against hindsight: how much of a modern model's result a point-in-time arm keeps.

``bt compare --arm name=pit,schedule=FILE --arm name=modern,model=…`` backtests a schedule of
models that cannot know the tested period beside a modern model that may have read about it.
What the point-in-time arm keeps of the modern arm's Sharpe ratio and information coefficient
(Spearman of the score with the forward return), with paired stationary-bootstrap 95 % intervals
of the differences, says how much of the modern result could be hindsight. It sits next to the
anonymisation check (``bt audit lookahead --model-check``), which masks names but cannot remove
what the model read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from llmbt.reports.stats import sharpe_diff_ci, stationary_bootstrap_indices

MIN_IC_BARS = 20


def kept_facts(returns: dict[str, pd.Series], scores: dict[str, pd.DataFrame], pit: str,
               modern: str, ppy: float, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Sharpe and IC of the arms ``pit`` and ``modern``, their differences (pit − modern) with
    95 % paired-bootstrap intervals, and the share of the modern arm's value the pit arm keeps."""
    diff = sharpe_diff_ci(returns[pit], returns[modern], periods_per_year=ppy, n_boot=n_boot,
                          seed=seed)
    sharpe = {name: _sharpe(returns[name], ppy) for name in (pit, modern)}
    facts = {"pit": pit, "modern": modern, "sharpe": sharpe,
             "sharpe_diff": {"diff": diff.diff, "low": diff.low, "high": diff.high},
             "kept_sharpe": _share(sharpe[pit], sharpe[modern])}
    return facts | _ic_facts(scores.get(pit), scores.get(modern), n_boot, seed)


def _sharpe(returns: pd.Series, ppy: float) -> float:
    from llmbt.engine.metrics import sharpe_ratio

    return float(sharpe_ratio(returns.dropna().to_numpy(), ppy))


def _share(part: float, whole: float) -> float:
    return part / whole if whole and math.isfinite(whole) and whole > 0 else float("nan")


def _ic_facts(a: pd.DataFrame | None, b: pd.DataFrame | None, n_boot: int,
              seed: int) -> dict[str, Any]:
    """IC of each arm and the paired-bootstrap interval of their difference (empty when the score
    frames carry no forward return, e.g. a universe's rows)."""
    if a is None or b is None or "forward_return" not in a or "forward_return" not in b:
        return {}
    both = pd.concat({"a": a["score"], "b": b["score"], "r": a["forward_return"]}, axis=1).dropna()
    if len(both) < MIN_IC_BARS:
        return {}
    ranks = both.rank().to_numpy()
    ic_a, ic_b = _corr(ranks[:, 0], ranks[:, 2]), _corr(ranks[:, 1], ranks[:, 2])
    idx = stationary_bootstrap_indices(len(ranks), max(1, round(len(ranks) ** (1 / 3))), n_boot,
                                       seed)
    boot = _rows_corr(ranks[idx, 0], ranks[idx, 2]) - _rows_corr(ranks[idx, 1], ranks[idx, 2])
    low, high = np.nanquantile(boot, [0.025, 0.975])
    return {"ic": {"pit": ic_a, "modern": ic_b},
            "ic_diff": {"diff": ic_a - ic_b, "low": float(low), "high": float(high)},
            "kept_ic": _share(ic_a, ic_b), "ic_bars": len(ranks)}


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(_rows_corr(x[None, :], y[None, :])[0])


def _rows_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    return np.divide((x * y).sum(axis=1), den, out=np.full(len(x), np.nan), where=den > 0)


def kept_sentence(facts: dict[str, Any]) -> str:
    """One plain sentence of :func:`kept_facts`."""
    pit, modern, d = facts["pit"], facts["modern"], facts["sharpe_diff"]
    text = (f"Hindsight A/B: the point-in-time arm {pit} has Sharpe {facts['sharpe'][pit]:.2f} "
            f"against {facts['sharpe'][modern]:.2f} for {modern} ({pit} − {modern} = "
            f"{d['diff']:+.2f}, 95% CI {d['low']:+.2f} to {d['high']:+.2f}"
            f"{_kept(facts['kept_sharpe'])})")
    if "ic" in facts:
        ic, e = facts["ic"], facts["ic_diff"]
        text += (f"; IC {ic['pit']:+.3f} against {ic['modern']:+.3f} (difference {e['diff']:+.3f}, "
                 f"95% CI {e['low']:+.3f} to {e['high']:+.3f}{_kept(facts['kept_ic'])}, "
                 f"{facts['ic_bars']} bars)")
    return text + (". What the modern arm earns beyond the point-in-time arm may be hindsight; "
                   "the anonymisation check (bt audit lookahead --model-check) is the other test.")


def _kept(share: float) -> str:
    return f"; it keeps {share:.0%}" if math.isfinite(share) else ""


def hindsight_sentences(arm_specs: dict[str, dict[str, Any]], returns: dict[str, pd.Series],
                        scores: dict[str, pd.DataFrame], ppy: float) -> list[str]:
    """The A/B sentence of each point-in-time arm (``schedule=``) against the first modern arm
    (a language model without a schedule); none when the arms lack either."""
    pits = [n for n, spec in arm_specs.items() if spec.get("schedule") and n in returns]
    modern = [n for n, spec in arm_specs.items() if not spec.get("schedule")
              and spec.get("kind", "lm") == "lm" and n in returns]
    if not pits or not modern:
        return []
    return [kept_sentence(kept_facts(returns, scores, pit, modern[0], ppy)) for pit in pits]
