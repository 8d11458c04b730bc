"""Progress bars: llmbt's own (rich, on stderr) and whether transformers shows its bars.

One switch decides both, the CLI's logging set-up (``bt -v``/``-q``):

* llmbt's bars (scoring, fine-tuning) show on a terminal unless the ``llmbt`` logger was set above
  INFO (``bt -q``); library callers who set up no logging keep them.
* transformers' own bars ("Loading weights", "Converting and de-quantizing GGUF tensors",
  "Writing model shards") follow :func:`show_transformers_bars`, through transformers' documented
  ``enable_progress_bar``/``disable_progress_bar``. transformers is not imported for it (a second of
  start-up for commands that load no model): the choice is applied at once when transformers is
  already imported, else by :func:`apply_transformers_bars`, which model loading calls first.
"""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

_transformers_bars: bool | None = None  # None: leave transformers' own setting alone


def show_transformers_bars(show: bool | None) -> None:
    """Show (True) or hide (False) transformers' progress bars from now on; None leaves them be."""
    global _transformers_bars
    _transformers_bars = show
    if "transformers" in sys.modules:
        apply_transformers_bars()


def apply_transformers_bars() -> None:
    """Apply :func:`show_transformers_bars`' choice to transformers (imports it; no-op when unset)."""
    if _transformers_bars is None:
        return
    from transformers.utils import logging as hf_logging

    (hf_logging.enable_progress_bar if _transformers_bars else hf_logging.disable_progress_bar)()


def bars_wanted(enabled: bool) -> bool:
    """``enabled``, on a terminal, and the ``llmbt`` logger not set above INFO (``bt -q``)."""
    level = logging.getLogger("llmbt").level
    return enabled and sys.stderr.isatty() and not level > logging.INFO


def progress_bar(enabled: bool, *columns: str) -> Progress:
    """A transient rich progress bar on stderr (description, bar, n/total, extra text ``columns``
    such as ``"loss {task.fields[loss]}"``, time left); disabled unless :func:`bars_wanted`."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(c) for c in columns),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not bars_wanted(enabled),
        transient=True,
    )
