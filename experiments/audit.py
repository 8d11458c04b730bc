"""``bt audit lookahead``: prove that a run's past signals never change when the future is removed.

The engine check (a user-facing version of the project's look-ahead property tests, like
freqtrade's ``lookahead-analysis``): the run's signal panels and target weights are computed once
on the full data, then again with the data truncated at ``cuts`` random bar dates ``T`` — every bar
at or after ``T`` dropped, every headline published at or after ``T`` dropped — through the very
functions a run uses (:func:`llmbt.engine.portfolio_run.portfolio_signals` for a universe,
:func:`llmbt.engine.signals.signals_from` for one instrument). Every value at a bar before ``T``
must be bitwise identical (NaN equals NaN); the first one that is not is named.

The model check (:func:`model_check`) runs the same portfolio with and without ``--anonymize``;
the CLI turns the two results into IC and Sharpe differences with confidence intervals (statistics
live in :mod:`llmbt.reports`, above the engine).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.engine.portfolio_run import (
    PortfolioInputs,
    PortfolioResult,
    is_portfolio,
    load_inputs,
    portfolio_signals,
    run_portfolio_backtest,
)
from llmbt.errors import ConfigError
from llmbt.feeds import load_news, symbol_of
from llmbt.feeds.universe import Universe

Frames = dict[str, pd.DataFrame]  # column name -> dates x symbols


@dataclass(frozen=True)
class Mismatch:
    """One value that changed when the future was removed."""

    symbol: str
    date: pd.Timestamp
    column: str
    full: float
    truncated: float


@dataclass(frozen=True)
class CutCheck:
    """One truncation: ``cut`` is the first dropped bar (bars and headlines from it on removed).

    Attributes:
        bars: dates before the cut compared. values: dates x symbols x columns compared.
        mismatches: values that differ. first: the earliest (date, then column, then symbol).
    """

    cut: pd.Timestamp
    bars: int
    values: int
    mismatches: int
    first: Mismatch | None


@dataclass(frozen=True)
class EngineAudit:
    """The engine check of one run config."""

    config: RunConfig
    columns: tuple[str, ...]
    checks: tuple[CutCheck, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        """True when no value before any cut changed."""
        return all(c.mismatches == 0 for c in self.checks)

    @property
    def first(self) -> tuple[pd.Timestamp, Mismatch] | None:
        """(cut, mismatch) of the first failing cut, None when the audit passed."""
        return next(((c.cut, c.first) for c in self.checks if c.first is not None), None)


@dataclass(frozen=True)
class ModelCheck:
    """The same portfolio run with and without anonymised headlines (the model's hindsight)."""

    original: PortfolioResult
    anonymized: PortfolioResult
    hindsight: str


def audit_engine(config: RunConfig, cuts: int = 5, seed: int = 0) -> EngineAudit:
    """Recompute the run's signals (and a portfolio's weights) truncated at ``cuts`` random dates.

    Args:
        config: the run (a portfolio strategy over a universe, or a signal strategy).
        cuts: how many truncation dates, drawn from the traded bars after the first.
        seed: seed of the draw.

    Raises:
        ConfigError: ``cuts`` < 1, or a strategy that computes no signals before the loop.
    """
    if cuts < 1:
        raise ConfigError(f"--cuts {cuts}: the audit needs at least 1 cut, e.g. --cuts 5")
    started = time.perf_counter()
    frames, calendar, recompute = (_portfolio if is_portfolio(config.strategy) else _single)(config)
    checks = tuple(compare_frames(frames, recompute(cut), cut)
                   for cut in cut_dates(calendar, config.start, cuts, seed))
    return EngineAudit(config, tuple(frames), checks, time.perf_counter() - started)


def cut_dates(calendar: pd.DatetimeIndex, start: str | None, cuts: int,
              seed: int) -> list[pd.Timestamp]:
    """``cuts`` distinct bar dates drawn (seeded) from the traded bars after the first, sorted."""
    lo = pd.Timestamp(start, tz=calendar.tz) if start else calendar[0]
    candidates = calendar[calendar >= lo][1:]
    if len(candidates) == 0:
        raise ConfigError(f"--start {start}: fewer than 2 bars to cut between; widen --start/--end")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(candidates), size=min(cuts, len(candidates)), replace=False)
    return [candidates[i] for i in sorted(picks)]


def truncate(inputs: PortfolioInputs, cut: pd.Timestamp) -> PortfolioInputs:
    """``inputs`` without the bars and headlines at or after ``cut``."""
    prices = {s: b.loc[b.index < cut] for s, b in inputs.universe.prices.items()}
    universe = Universe(prices={s: b for s, b in prices.items() if len(b)},
                        source=inputs.universe.source, dropped=inputs.universe.dropped)
    return replace(inputs, universe=universe, news=truncate_news(inputs.news, cut))


def truncate_news(news: pd.DataFrame | None, cut: pd.Timestamp) -> pd.DataFrame | None:
    """The headlines published before ``cut`` (``timestamp`` < cut), with a fresh index."""
    if news is None:
        return None
    return news.loc[news["timestamp"] < cut].reset_index(drop=True)


def compare_frames(full: Mapping[str, pd.DataFrame], cut_frames: Mapping[str, pd.DataFrame],
                   cut: pd.Timestamp) -> CutCheck:
    """Compare every value of ``full`` before ``cut`` with ``cut_frames`` (bitwise, NaN == NaN)."""
    rows = next(iter(full.values())).index < cut
    bad, firsts, values = 0, [], 0
    for order, (name, frame) in enumerate(full.items()):
        a = frame.loc[rows].astype(float)
        b = cut_frames[name].reindex(index=a.index, columns=a.columns).astype(float)
        differ = ~_same(a.to_numpy(), b.to_numpy())
        bad, values = bad + int(differ.sum()), values + differ.size
        if differ.any():
            i, j = np.argwhere(differ)[0]
            firsts.append(((i, order, str(a.columns[j])),
                           Mismatch(str(a.columns[j]), a.index[i], name, a.iat[i, j], b.iat[i, j])))
    first = min(firsts, key=lambda f: f[0])[1] if firsts else None
    return CutCheck(cut, int(rows.sum()), values, bad, first)


def model_check(config: RunConfig) -> ModelCheck:
    """The portfolio run of ``config`` with original and with anonymised headlines.

    Raises:
        ConfigError: not a portfolio strategy, or no ``--names`` table to mask.
    """
    if not is_portfolio(config.strategy):
        raise ConfigError(f"--model-check compares daily ICs across a universe: --strategy "
                          f"{config.strategy} trades one instrument; use llm_news_portfolio")
    if not config.names:
        raise ConfigError("--model-check runs with and without --anonymize: pass --names FILE "
                          "(symbol,company), e.g. ../shared/data/news/sp500_companies.csv")
    original = run_portfolio_backtest(config.replace(anonymize=False), with_benchmark=False)
    anonymized = run_portfolio_backtest(config.replace(anonymize=True), with_benchmark=False)
    return ModelCheck(original, anonymized, original.signal_info.get("hindsight", ""))


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise equality of float64 arrays, any NaN equal to any NaN."""
    a, b = np.ascontiguousarray(a, np.float64), np.ascontiguousarray(b, np.float64)
    return (a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))


def _portfolio(config: RunConfig):
    inputs = load_inputs(config)

    def frames(data: PortfolioInputs) -> Frames:
        panels, weights, _ = portfolio_signals(config, data)
        return dict(panels) | {"weight": weights}

    return frames(inputs), inputs.universe.calendar, lambda cut: frames(truncate(inputs, cut))


def _single(config: RunConfig):
    from llmbt.engine.runner import load_history
    from llmbt.engine.signals import signals_from
    from llmbt.strategies.base import SignalStrategy
    from llmbt.strategies.registry import get_strategy

    cls = get_strategy(config.strategy)
    if not issubclass(cls, SignalStrategy):
        raise ConfigError(f"--strategy {config.strategy} computes no signals before the loop (its "
                          "next() reads Backtrader's past bars only): nothing to audit; pass an "
                          "LLM strategy, e.g. llm_sentiment or llm_news_portfolio")
    prices, symbol = load_history(config), symbol_of(config.data)
    news = load_news(config.news, tz=config.news_tz) if config.news else None

    def frames(bars: pd.DataFrame, headlines: pd.DataFrame | None) -> Frames:
        out, _ = signals_from(cls, bars, config, headlines)
        return {c: out[[c]].set_axis([symbol], axis=1) for c in cls.signal_columns}

    recompute = lambda cut: frames(prices.loc[prices.index < cut], truncate_news(news, cut))  # noqa: E731
    return frames(prices, news), prices.index, recompute
