"""The typed parameters of the portfolio strategies (:mod:`llmbt.strategies.portfolio`), with their
rules. Each field is normalised by its own rule before the generic coercion of
:class:`~llmbt.strategies.params.StrategyParams`, so an error says the range it must be in
(``--param top_k=0 must be an integer >= 1 (names held long, e.g. --param top_k=5)``).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmbt.errors import ConfigError
from llmbt.strategies.params import StrategyParams, choice, fraction, integer, is_none, number

WEIGHTINGS = ("equal", "confidence", "inverse_vol")


@dataclass(frozen=True)
class PortfolioParams(StrategyParams):
    """Every portfolio strategy's: ``rebalance`` (bars between rebalances, >= 1) and ``gross``
    (the cap on the sum of |weights|, in (0, 1])."""

    rebalance: int = 1
    gross: float = 0.95

    def __post_init__(self) -> None:
        self._set(rebalance=integer("rebalance", self.rebalance, 1,
                                    "bars between rebalances, e.g. --param rebalance=5"),
                  gross=fraction("gross", self.gross, "cap on the sum of |weights|, e.g. --param gross=0.95"))
        super().__post_init__()


@dataclass(frozen=True)
class LlmNewsPortfolioParams(PortfolioParams):
    """``llm_news_portfolio``'s parameters (see :class:`~llmbt.strategies.portfolio.LlmNewsPortfolio`):
    counts are integers (``top_k`` >= 1, the others >= 0), caps are fractions, ``entry`` is a score
    in (0, 1] or None, ``n_drop`` (<= ``top_k``) and ``max_turnover`` (in (0, 2]) are None when off."""

    top_k: int = 5
    bottom_k: int = 0
    entry: float | None = None
    allow_short: bool = False
    weighting: str = "equal"
    max_weight: float = 0.2
    net: float = 1.0
    min_confidence: float = 0.0
    half_life: float = 3.0
    min_names: int = 1
    rebalance: int = 5
    n_drop: int | None = None
    band: int = 10
    min_hold: int = 0
    max_turnover: float | None = None

    def __post_init__(self) -> None:
        self._set(
            top_k=integer("top_k", self.top_k, 1, "names held long, e.g. --param top_k=5"),
            bottom_k=integer("bottom_k", self.bottom_k, 0, "names held short, e.g. --param bottom_k=5"),
            min_names=integer("min_names", self.min_names, 0, "ranked names a rebalance needs, e.g. "
                              "--param min_names=10"),
            max_weight=fraction("max_weight", self.max_weight, "cap per name, e.g. --param max_weight=0.2"),
            net=fraction("net", self.net, "cap on |sum of weights|, e.g. --param net=1", zero=True),
            min_confidence=fraction("min_confidence", self.min_confidence,
                                    "e.g. --param min_confidence=0.4", zero=True),
            half_life=number("half_life", self.half_life, 0.0, "headline decay in bars, e.g. "
                             "--param half_life=3"),
            entry=None if is_none(self.entry) else fraction(
                "entry", self.entry, "a score threshold in (0, 1], e.g. --param entry=0.3"))
        self._turnover()
        choice("weighting", self.weighting, WEIGHTINGS)
        super().__post_init__()

    def _turnover(self) -> None:
        """Normalise ``n_drop``, ``band``, ``min_hold`` and ``max_turnover``."""
        n_drop = None if is_none(self.n_drop) else integer(
            "n_drop", self.n_drop, 1, "names replaced at most per rebalance, e.g. --param n_drop=1")
        if n_drop is not None and n_drop > self.top_k:
            raise ConfigError(f"--param n_drop={n_drop} must be at most top_k={self.top_k} "
                              "(n_drop = top_k is the full re-rank)")
        self._set(n_drop=n_drop,
                  band=integer("band", self.band, 0, "extra ranks a held name may slip, e.g. --param band=5"),
                  min_hold=integer("min_hold", self.min_hold, 0, "bars before a name may leave, e.g. "
                                   "--param min_hold=5"),
                  max_turnover=None if is_none(self.max_turnover) else _max_turnover(self.max_turnover))


def _max_turnover(value: object) -> float:
    out = number("max_turnover", value, 0.0, "sum of |weight changes| per rebalance, e.g. "
                 "--param max_turnover=0.4")
    if not 0 < out <= 2:
        raise ConfigError(f"--param max_turnover={value!r} must be in (0, 2] (2 = the whole book "
                          "sold and bought again), e.g. --param max_turnover=0.4")
    return out
