"""The strategy registry: names → Backtrader strategy classes, with "Did you mean …?" for typos.

Strategies register with :func:`register` when their module is imported; the package's
``__init__`` imports the built-in ones, so they are registered whenever this module is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import backtrader as bt

from llmbt.errors import ConfigError, did_you_mean, unknown_name_error

_REGISTRY: dict[str, type[bt.Strategy]] = {}


def register(name: str) -> Callable[[type[bt.Strategy]], type[bt.Strategy]]:
    """Class decorator that registers a strategy under ``name``; a duplicate name is refused."""

    def deco(cls: type[bt.Strategy]) -> type[bt.Strategy]:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.registered_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available() -> list[str]:
    """Names of all registered strategies, sorted."""
    return sorted(_REGISTRY)


def get_strategy(name: str) -> type[bt.Strategy]:
    """The class registered as ``name``; unknown names raise with "Did you mean …?"."""
    if name not in _REGISTRY:
        raise unknown_name_error("strategy", name, _REGISTRY, cls=ConfigError)
    return _REGISTRY[name]


def param_names(cls: type[bt.Strategy]) -> tuple[str, ...]:
    return tuple(cls.params._getkeys())


def check_params(cls: type[bt.Strategy], params: dict) -> dict:
    """Validate ``--param`` names against the strategy's parameters and coerce their types."""
    names = param_names(cls)
    defaults = dict(cls.params._getitems())
    out = {}
    for key, value in params.items():
        if key not in names:
            raise ConfigError(f"--param {key}: strategy {cls.registered_name!r} has no parameter {key!r}."
                              f"{did_you_mean(key, names)} Parameters: {', '.join(names)}")
        out[key] = _coerce(key, value, defaults[key])
    return out


def validated_params(name: str, params: Mapping) -> dict:
    """The ``--param`` values of strategy ``name``, checked once: known names (with "Did you
    mean"), each coerced to its default's type, and the strategy's own rules
    (``checked_params``, e.g. a portfolio's ``top_k >= 1``). Only the given keys are returned,
    typed; the class defaults fill the rest where the strategy runs.

    Raises:
        ConfigError: an unknown strategy or parameter, or a value that is not valid, naming
            the ``--param``.
    """
    cls = get_strategy(name)
    typed = check_params(cls, dict(params))
    rules = getattr(cls, "checked_params", None)
    if rules is not None:
        checked = rules(typed)
        typed = {key: checked[key] for key in typed}
    return typed


def with_defaults(cls: type[bt.Strategy], params: dict) -> dict:
    """Every parameter of ``cls``: its class defaults, overridden by ``params``."""
    return dict(cls.params._getitems()) | dict(params)


def _coerce(key: str, value, default):
    if default is None or isinstance(value, type(default)) or not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            return {"true": True, "false": False, "1": True, "0": False}[value.lower()]
        return type(default)(value)
    except (KeyError, ValueError):
        raise ConfigError(f"--param {key}={value!r} is not a {type(default).__name__} "
                          f"(default {default!r})") from None


def check_bars(cls: type[bt.Strategy], params: dict, bars: int, source: str) -> None:
    """Refuse a run whose ``bars`` are fewer than the strategy's warm-up needs.

    A strategy states its need with a ``min_bars(params)`` classmethod (default 1 bar); ``params``
    are the run's ``--param`` values over the class defaults.

    Raises:
        ConfigError: naming the bar count, the needed count and the fix.
    """
    rule = getattr(cls, "min_bars", None)
    need, why = rule(with_defaults(cls, params)) if rule else (1, "one bar")
    if bars < need:
        raise ConfigError(f"strategy {cls.registered_name!r} needs at least {need} bars ({why}), "
                          f"but {source} has {bars} bar{'s' if bars != 1 else ''} in the run's "
                          "range; use an earlier --start, a later --end or more data.")
