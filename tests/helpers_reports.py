"""The A/B comparison page the report tests render (``from helpers_reports import ...``): two
deterministic rules traded on the real GOOG sample 2009-2012, one walk-forward fold per calendar
year, with the page's section ids in order."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmbt.reports.compare_page import ComparisonPage

SECTION_IDS = ["summary", "metrics", "equity", "drawdowns", "folds", "signals", "calibration"]
YEARS = (2009, 2010, 2011, 2012)
BASE, LORA = "mom5", "sma20"


def rule_scores(close: pd.Series) -> dict[str, pd.Series]:
    """Per-bar scores in [-1, 1] known at each close: 5-day momentum and distance above the 20-day SMA."""
    return {
        BASE: np.tanh(10.0 * close.pct_change(5)),
        LORA: np.tanh(20.0 * (close / close.rolling(20).mean() - 1.0)),
    }


def sharpe(r: pd.Series) -> float:
    return float(np.sqrt(252) * r.mean() / r.std()) if r.std() > 0 else math.nan


def max_drawdown(r: pd.Series) -> float:
    equity = (1.0 + r).cumprod()
    return float((equity / equity.cummax() - 1.0).min())


def f1_up(score: pd.Series, next_ret: pd.Series) -> float:
    """F1 of "score > 0" as a prediction of an up day tomorrow."""
    pred, true = score > 0, next_ret > 0
    tp = float((pred & true).sum())
    return 2 * tp / (pred.sum() + true.sum()) if pred.sum() + true.sum() else math.nan


def calibration_frame(score: pd.Series, next_ret: pd.Series) -> pd.DataFrame:
    """Hit rate of the score's direction by |score| bin."""
    ok = score.notna() & next_ret.notna() & (score != 0)
    conf, hit = score[ok].abs(), np.sign(score[ok]) == np.sign(next_ret[ok])
    bins = pd.cut(conf, np.linspace(0.0, 1.0, 6), include_lowest=True)
    table = pd.DataFrame({"conf": conf, "hit": hit.astype(float), "bin": bins})
    grouped = table.groupby("bin", observed=True)
    frame = grouped.agg(mean_confidence=("conf", "mean"), hit_rate=("hit", "mean"), count=("hit", "size"))
    frame.insert(0, "confidence_bin", [iv.mid for iv in frame.index])
    return frame.reset_index(drop=True)


def significance_sentence(a: pd.Series, b: pd.Series) -> str:
    diff = b - a
    t = diff.mean() / (diff.std() / math.sqrt(len(diff)))
    p = math.erfc(abs(t) / math.sqrt(2))
    verdict = "is significant" if p < 0.05 else "is not significant"
    return (f"The Sharpe difference between {LORA} ({sharpe(b):.2f}) and {BASE} ({sharpe(a):.2f}) "
            f"{verdict} at 5 % (paired t = {t:.2f}, p = {p:.2f}).")


def fold_rows(returns: dict[str, pd.Series], positions: dict[str, pd.Series], scores, next_ret) -> list:
    rows = []
    for fold, year in enumerate(YEARS, start=1):
        for model in (BASE, LORA):
            r = returns[model][str(year)]
            rows.append({"fold": fold, "model": model, "test_start": r.index[0], "test_end": r.index[-1],
                         "sharpe": sharpe(r), "total_return": float((1 + r).prod() - 1),
                         "max_drawdown": max_drawdown(r),
                         "trades": int(positions[model][str(year)].diff().abs().gt(0).sum()),
                         "eval_f1": f1_up(scores[model][str(year)], next_ret[str(year)])})
    return rows


def build_page(goog: pd.DataFrame) -> ComparisonPage:
    """A realistic page: two rules traded on GOOG 2009-2012, one walk-forward fold per calendar year."""
    close = goog["close"]
    ret = close.pct_change().fillna(0.0)
    next_ret = ret.shift(-1)
    scores = rule_scores(close)
    positions = {m: (s.shift(1) > 0).astype(float) for m, s in scores.items()}
    window = slice(str(YEARS[0]), str(YEARS[-1]))
    returns = {m: (positions[m] * ret)[window] for m in scores}
    returns["buy_and_hold"] = ret[window]
    metrics = pd.DataFrame({m: {"CAGR %": 100 * ((1 + r).prod() ** (252 / len(r)) - 1), "Sharpe": sharpe(r),
                                "Max drawdown %": 100 * max_drawdown(r)} for m, r in returns.items()})
    return ComparisonPage(
        title="GOOG 2009-2012: mom5 vs sma20", metrics=metrics, returns=returns, prices=close[window],
        signals={m: s[window] for m, s in scores.items()},
        folds=pd.DataFrame(fold_rows(returns, positions, scores, next_ret)),
        calibration={m: calibration_frame(s[window], next_ret[window]) for m, s in scores.items()},
        significance=[significance_sentence(returns[BASE], returns[LORA])],
        notes={"run id": "wf-20240101-abc", "git commit": "0123abc", "config hash": "9f8e7d"})
