"""Backtrader strategies, by name through :mod:`~llmbt.strategies.registry`.

The built-in strategies register themselves on import, and importing any module of this package
imports them here first, so the registry knows them all before anyone looks a name up.
"""

from llmbt.strategies import baselines, llm_sentiment, portfolio  # noqa: F401  (they register on import)
