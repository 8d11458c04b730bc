"""llmbt: event-driven backtests of strategies that trade on signals from a (LoRA-fine-tuned) LLM.

Where things are, lowest layer first (a module imports only its own layer and the ones below it;
``tests/test_layout.py`` checks this):

- ``llmbt.errors``, ``llmbt.paths``: the user-facing error types; the home folder (``$LLMBT_HOME``).
- ``llmbt.feeds``: prices (bundled samples, CSV/Parquet, Yahoo, ccxt) and news headlines.
- ``llmbt.signals_cache``: the signal model (``model``), prompts and scoring (``scoring``), the score
  cache (``cache``) and fine-tuning (``finetune``); ``signals.compute_signals`` is the entry point.
- ``llmbt.strategies``: the registered Backtrader strategies.
- ``llmbt.engine``: backtest runner, walk-forward, comparisons and benchmarks (``bench``).
- ``llmbt.reports``: metrics, statistics, tearsheets and comparison pages.
- ``llmbt.cli``: the ``bt`` command line, on top of everything.
"""
