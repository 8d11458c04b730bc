"""The user-facing error types and "Did you mean …?" suggestions.

Every module of llmbt raises :class:`LlmbtError` (or a subclass) for bad input. The CLI turns it
into a one-line message with no traceback; the message always names the offending value and the fix.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from types import ModuleType


class LlmbtError(ValueError):
    """Bad input from the user: the message names the value and says how to fix it."""


class DataError(LlmbtError):
    """Prices or news that fail validation."""


class ConfigError(LlmbtError):
    """A run configuration that fails validation."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name_error(kind: str, name: str, choices: Iterable[str], cls=LlmbtError) -> LlmbtError:
    """Build the standard error for an unknown registry name."""
    choices = sorted(choices)
    return cls(f"unknown {kind} {name!r}.{did_you_mean(name, choices)} Choose one of: {', '.join(choices)}")


def reject_unknown_keys(data: Iterable[str], keys: Iterable[str], where: str) -> None:
    """Refuse the first key of ``data`` not in ``keys``, as ``WHERE: unknown key 'x'. Did you
    mean 'y'? Valid keys: ...`` (a YAML config, a recipe block).

    Raises:
        ConfigError: naming the key, the closest valid one and every valid key.
    """
    keys = list(keys)
    for key in data:
        if key not in keys:
            raise ConfigError(f"{where}: unknown key {key!r}.{did_you_mean(key, keys)} "
                              f"Valid keys: {', '.join(keys)}")


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional dependency, or fail with one line naming the extra that installs it.

    Args:
        module: the import name, e.g. ``"ccxt"``.
        extra: the llmbt extra that installs it, e.g. ``"crypto"``.
        what: the value that needs it, e.g. ``"ccxt:bybit:BTC/USDT"`` or ``"--quantization 4bit"``.

    Raises:
        ConfigError: ``module`` is not installed (an ImportError from inside it propagates as is).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise  # the package is there but broken: its own error says more
        raise ConfigError(f"{what} needs the {module} package: pip install 'llmbt[{extra}]'") from exc
