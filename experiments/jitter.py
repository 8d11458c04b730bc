"""How fragile a portfolio result is: the same run from the cached scores, perturbed N times.

A scoring precision's numeric error (float32 vs bf16: |Δscore| ~ 0.01,
:mod:`llmbt.experiments.bench.precision`) agrees on every label and can still change which names
rank first. ``--jitter N`` re-runs the backtest N times with every score plus seeded Gaussian noise
of that size (σ: ``--jitter-sigma``, or what ``bt bench scoring --precisions`` measured and stored,
:func:`stored_sigma`), without a model call (a cache miss is an error: run once without
``--jitter`` first), and reports the spread of the Sharpe ratio, the share of the run's fills that
every perturbed run repeats, and whether a difference between two arms is larger than that spread.
σ = 0 reproduces the run exactly.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.engine.portfolio import PortfolioRun
from llmbt.engine.portfolio_run import (
    load_inputs,
    scored_panels,
    simulate_window,
    trade_window,
    weights_from,
)
from llmbt.errors import ConfigError
from llmbt.paths import llmbt_home

SIGMA_FILE = "precision_error.json"
#: Where the σ was stored before ``--engine`` became ``--precision`` (still read).
OLD_SIGMA_FILE = "engine_error.json"


@dataclass
class JitterResult:
    """The run and its perturbed re-runs: ``sharpes`` and ``identical`` (share of the run's fills
    repeated exactly: time, symbol, size) per re-run."""

    sigma: float
    base: PortfolioRun
    sharpes: list[float] = field(default_factory=list)
    identical: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def spread(self) -> tuple[float, float, float]:
        """Min, median and max Sharpe of the perturbed runs."""
        s = np.asarray(self.sharpes, dtype=float)
        return float(np.nanmin(s)), float(np.nanmedian(s)), float(np.nanmax(s))

    def line(self, name: str) -> str:
        """One sentence for the terminal and the reports."""
        lo, mid, hi = self.spread()
        return (f"{name}: Sharpe {self.base.stats['sharpe']:.2f}; {len(self.sharpes)} runs with scores "
                f"+ N(0, {self.sigma:g}): min {lo:.2f} / median {mid:.2f} / max {hi:.2f} (spread "
                f"{hi - lo:.2f}); {np.mean(self.identical):.0%} of its fills repeated identically "
                f"({self.seconds:.1f} s)")


def stored_sigma() -> float | None:
    """σ of the score error ``bt bench scoring --precisions`` measured and stored, if any."""
    found = [p for p in (llmbt_home() / SIGMA_FILE, llmbt_home() / OLD_SIGMA_FILE) if p.is_file()]
    return float(json.loads(found[0].read_text())["sigma"]) if found else None


def store_sigma(sigma: float, precisions: str) -> None:
    """Keep the measured σ (std of Δscore between ``precisions``) for later ``--jitter`` runs."""
    path = llmbt_home() / SIGMA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sigma": sigma, "precisions": precisions}) + "\n")


def resolve_sigma(sigma: float | None) -> float:
    """``--jitter-sigma`` or the stored measurement; ConfigError naming both fixes when neither."""
    value = stored_sigma() if sigma is None else sigma
    if value is None:
        raise ConfigError("--jitter needs the size of the scoring precision's error: run `bt bench "
                          "scoring --precisions float32,bf16` once (it stores it), or pass "
                          "--jitter-sigma, e.g. --jitter-sigma 0.01")
    if not value >= 0:
        raise ConfigError(f"--jitter-sigma {value!r} must be >= 0, e.g. 0.01")
    return float(value)


def check_jitter(config: RunConfig, n: int, sigma: float | None) -> float | None:
    """``--jitter N`` / ``--jitter-sigma``, checked before the run: the noise level (None without
    ``--jitter``); ConfigError for N < 1, a single-instrument strategy or no known σ."""
    from llmbt.engine.portfolio_run import is_portfolio

    if not n and sigma is None:
        return None
    if n < 1:
        raise ConfigError(f"--jitter {n} must be at least 1 (re-runs), e.g. --jitter 20")
    if not is_portfolio(config.strategy):
        raise ConfigError(f"--jitter re-runs a portfolio's weights from its cached scores; --strategy "
                          f"{config.strategy} is single-instrument: use llm_news_portfolio")
    return resolve_sigma(sigma)


def jitter_portfolio(config: RunConfig, n: int, sigma: float, seed: int = 0) -> JitterResult:
    """Re-run ``config``'s portfolio ``n`` times from the cached scores plus N(0, ``sigma``).

    Raises:
        ConfigError: ``n`` < 1, or a score the cache lacks (run once without ``--jitter``).
    """
    if n < 1:
        raise ConfigError(f"--jitter {n} must be at least 1, e.g. --jitter 20")
    started = time.perf_counter()
    base, *again = perturbed_runs(config, n, sigma, seed)
    out = JitterResult(sigma, base, [r.stats["sharpe"] for r in again],
                       [_repeated(base.fills, r.fills) for r in again])
    out.seconds = time.perf_counter() - started
    return out


def perturbed_runs(config: RunConfig, n: int, sigma: float, seed: int = 0) -> list[PortfolioRun]:
    """``config``'s portfolio from the cached scores, then ``n`` times with every score plus
    N(0, ``sigma``) (seeds ``seed`` … ``seed + n - 1``): ``n + 1`` runs, the unperturbed first."""
    inputs = load_inputs(config, cache_only=True)
    panels, _, chosen = scored_panels(config, inputs)
    window = trade_window(inputs.universe, config.start, panels.get("selected"))
    score = panels["score"]
    finite = np.isfinite(score.to_numpy())
    runs = []
    for k in range(n + 1):
        noise = np.random.default_rng(seed + k - 1).normal(0.0, sigma, score.shape) if k else 0.0
        weights = weights_from(config, inputs, panels | {"score": score + np.where(finite, noise, 0.0)},
                               chosen)[0]
        runs.append(simulate_window(config, window, weights, config.strategy))
    return runs


def _repeated(base: pd.DataFrame, other: pd.DataFrame) -> float:
    """Share of ``base``'s fills (time, symbol, size) that ``other`` has too."""
    if base.empty:
        return 1.0 if other.empty else 0.0
    key = lambda f: Counter(zip(f["timestamp"], f["symbol"], f["size"], strict=True))  # noqa: E731
    return sum((key(base) & key(other)).values()) / len(base)


def exceeds(diff: float, spreads: list[JitterResult]) -> str:
    """Whether an A/B Sharpe difference is larger than the arms' jitter spreads (max − min)."""
    width = max(j.spread()[2] - j.spread()[0] for j in spreads)
    verdict = "exceeds" if abs(diff) > width else "is within"
    return (f"the Sharpe difference {diff:+.2f} {verdict} the numeric-noise spread {width:.2f} "
            "(the widest arm's max − min under --jitter)")


def jitter_arms(config: RunConfig, arms: list, n: int, sigma: float) -> list[str]:
    """``bt compare --jitter``: each arm's :func:`jitter_portfolio` line, then whether each arm's
    Sharpe difference to the first exceeds the numeric-noise spread."""
    from llmbt.experiments.arms import arm_config

    runs = {arm.name: jitter_portfolio(arm_config(config, arm), n, sigma) for arm in arms}
    lines = [j.line(name) for name, j in runs.items()]
    first, ref = next(iter(runs.items()))
    for name, j in list(runs.items())[1:]:
        diff = j.base.stats["sharpe"] - ref.base.stats["sharpe"]
        lines.append(f"{name} - {first}: {exceeds(diff, [ref, j])}")
    return lines


def jitter_walkforward(folder: str | Path, n: int, sigma: float) -> list[str]:
    """``bt compare --from DIR --jitter N`` of a universe walk-forward: one line per model arm
    with the stitched Sharpe and the spread of :func:`walkforward_spreads`."""
    return [f"{arm}: stitched Sharpe {base:.2f}; {n} runs with scores + N(0, {sigma:g}): "
            f"min {lo:.2f} / median {mid:.2f} / max {hi:.2f} (spread {hi - lo:.2f})"
            for arm, (base, lo, mid, hi) in walkforward_spreads(folder, n, sigma).items()]


def walkforward_spreads(folder: str | Path, n: int,
                        sigma: float) -> dict[str, tuple[float, float, float, float]]:
    """Per model arm of a universe walk-forward's results ``folder``: each fold's test window
    re-run from its cached scores (the LoRA arm with its fold's adapter) plus noise, stitched;
    the unperturbed stitched Sharpe, then min, median and max of the ``n`` perturbed ones.

    Raises:
        ConfigError: ``folder`` is not a universe walk-forward's, or a score is not cached.
    """
    from llmbt.experiments.walkforward import BASE, TUNED

    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text())
    if not meta.get("universe") or meta.get("compare"):
        raise ConfigError(f"--jitter with --from needs a universe walk-forward's folder; {folder} "
                          "is not one (for bt compare --arm, pass --jitter to the compare itself)")
    run = RunConfig.from_dict(meta["run"], warn=False)  # saved by llmbt: an old key is no typo
    folds = pd.read_csv(folder / "folds.csv")
    out = {}
    for arm in (BASE, TUNED):
        sharpes = _stitched_jitter(run, folds[folds["model"] == arm], folder, arm == TUNED, n, sigma)
        out[arm] = (float(sharpes[0]), float(np.min(sharpes[1:])), float(np.median(sharpes[1:])),
                    float(np.max(sharpes[1:])))
    return out


def _stitched_jitter(run: RunConfig, folds: pd.DataFrame, folder: Path, adapter: bool, n: int,
                     sigma: float) -> list[float]:
    """Stitched Sharpe of the folds' runs: unperturbed first, then ``n`` perturbed (seeds 0..n-1)."""
    from llmbt.engine.metrics import sharpe_ratio
    from llmbt.feeds.calendar import periods_per_year

    parts: list[list[pd.Series]] = [[] for _ in range(n + 1)]
    for row in folds.itertuples(index=False):
        config = run.replace(start=str(row.test_start)[:10], end=str(row.test_end)[:10],
                             adapter=str(folder / "adapters" / f"fold-{row.fold}") if adapter else None)
        for k, fold_run in enumerate(perturbed_runs(config, n, sigma)):
            parts[k].append(fold_run.returns)
    stitched = [pd.concat(p) for p in parts]
    return [sharpe_ratio(r, periods_per_year(r.index)) for r in stitched]
