"""Experiments built on the backtester (:mod:`llmbt.engine`): walk-forward, arms and A/B runs, the
look-ahead audit, ``--jitter``, the trial ledger, results folders, studies and the benchmarks.

They run backtests and models and write results; :mod:`llmbt.reports` computes statistics and
renders pages from those results, and the command line (:mod:`llmbt.cli`) sits on top of both.
"""
