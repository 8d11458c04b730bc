"""The ``bt`` command line: a package of thin commands (parse flags -> build a config -> call).

Every command module is imported here, explicitly, so ``llmbt.cli.cli`` has all the
commands however it is reached (``bt``, ``python -m llmbt``, click's test runner).
"""

from __future__ import annotations

from llmbt.cli import (  # noqa: F401  (each registers its commands)
    audit,
    bench,
    cache,
    data,
    evaluate,
    head,
    ml,
    news,
    run,
    score,
    strategies,
    study,
    trials,
    wf,
)
from llmbt.cli.base import Group, build_config, cli, run_options

__all__ = ["Group", "build_config", "cli", "main", "run_options"]


def main() -> None:
    """Entry point of the ``bt`` console script and of ``python -m llmbt``."""
    cli(prog_name="bt")
