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
#: Third-party loggers whose warnings are known noise, shown from ``-v`` on: bitsandbytes tries
#: to fetch a CPU 4-bit kernel from the Hugging Face hub on every import on a CPU with AVX-512-BF16
#: and warns, over six lines, when the hub (or trust_remote_code) refuses; its own kernels run.
NOISY = ("bitsandbytes.backends.cpu.ops",)


def setup_logging(verbosity: int) -> None:
    """Route every log record to one rich handler on stderr, at the levels ``verbosity`` picks
    (``-v`` count minus ``-q`` count), and show or hide transformers' progress bars to match.
    Calling it again replaces the earlier set-up."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=verbosity > 0,
                          markup=False)
    handler.addFilter(_WarnOnce())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    quiet = verbosity < 0
    root.setLevel(logging.ERROR if quiet else logging.DEBUG if verbosity > 1 else logging.WARNING)
    own = logging.ERROR if quiet else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.getLogger("llmbt").setLevel(own)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity > 0 else logging.ERROR)
    show_transformers_bars(verbosity > 0)


class _WarnOnce(logging.Filter):
    """Let a warning through the terminal once per command: a command that loads the same file
    several times (an audit runs the portfolio three times) would repeat its data warnings."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True
