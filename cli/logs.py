"""The one logging set-up of the ``bt`` command line, chosen by ``bt -v``/``-q``.

Library code logs through ``logging.getLogger(__name__)`` (all under ``llmbt``) and reports
progress through callbacks the commands point at :func:`click.echo`; results are printed by the
commands (click, rich tables). This module decides what reaches the terminal:

===========  =====================  ======================  ==========================================
verbosity    ``llmbt`` loggers      other libraries         progress bars
===========  =====================  ======================  ==========================================
``-q``       errors                 errors                  none
(default)    info                   warnings                llmbt's; transformers' hidden
``-v``       debug                  warnings                llmbt's and transformers' (weights loading)
``-vv``      debug                  debug                   llmbt's and transformers'
===========  =====================  ======================  ==========================================
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

from llmbt.signals_cache.progress import show_transformers_bars

_MARK = "_llmbt_cli_handler"


def setup_logging(verbosity: int) -> None:
    """Route every log record to one rich handler on stderr, at the levels ``verbosity`` picks
    (``-v`` count minus ``-q`` count), and show or hide transformers' progress bars to match.
    Calling it again replaces the earlier set-up."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=verbosity > 0,
                          markup=False)
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    quiet = verbosity < 0
    root.setLevel(logging.ERROR if quiet else logging.DEBUG if verbosity > 1 else logging.WARNING)
    own = logging.ERROR if quiet else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.getLogger("llmbt").setLevel(own)
    show_transformers_bars(verbosity > 0)
