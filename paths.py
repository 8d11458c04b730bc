"""Where llmbt keeps its files: the home folder for caches and local models (``$LLMBT_HOME``)."""

from __future__ import annotations

import os
from pathlib import Path


def llmbt_home() -> Path:
    """The folder for caches and local models: ``$LLMBT_HOME``, default ``~/.cache/llmbt``."""
    return Path(os.environ.get("LLMBT_HOME") or Path.home() / ".cache" / "llmbt").expanduser()
