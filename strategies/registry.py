"""The strategy registry: names → Backtrader strategy classes, with "Did you mean …?" for typos.

Strategies register with :func:`register` when their module is imported; the package's
``__init__`` imports the built-in ones, so they are registered whenever this module is. Each
declares its parameters once, as a :class:`~llmbt.strategies.params.StrategyParams` dataclass
(its ``Params``); :func:`validated_params` makes a run's typed value of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import backtrader as bt

from llmbt.errors import ConfigError, unknown_name_error
from llmbt.strategies.params import StrategyParams

_REGISTRY: dict[str, type[bt.Strategy]] = {}


def register(name: str) -> Callable[[type[bt.Strategy]], type[bt.Strategy]]:
    """Class decorator that registers a strategy under ``name``; a duplicate name is refused, and
    so is a class whose Backtrader ``params`` are not the ones of its ``Params`` dataclass
    (derive them with ``params = Params.bt_params()``)."""

    def deco(cls: type[bt.Strategy]) -> type[bt.Strategy]:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} is already registered by {_REGISTRY[name].__name__}")
        kind = getattr(cls, "Params", None)
        if not (isinstance(kind, type) and issubclass(kind, StrategyParams)) or \
                dict(cls.params._getitems()) != dict(kind.bt_params()):
            raise TypeError(f"strategy {name!r}: declare its parameters once, as a StrategyParams "
                            "dataclass set as Params, with params = Params.bt_params()")
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


def validated_params(name: str, params: StrategyParams | Mapping | None) -> StrategyParams:
    """The parameters of strategy ``name`` as its typed frozen value (:attr:`Params`), checked
    once: known names (with "Did you mean"), each coerced to its field's type, and the strategy's
    own rules (``__post_init__``, e.g. ``0 < fast < slow``). A value already of that type is
    returned as it is; another strategy's value is checked by its given parameters.

    Raises:
        ConfigError: an unknown strategy or parameter, or a value that is not valid, naming
            the ``--param``.
    """
    kind = get_strategy(name).Params
    if type(params) is kind:
        return params
    values = params.to_dict() if isinstance(params, StrategyParams) else dict(params or {})
    return kind.from_mapping(values, source=f"strategy {name!r}")


def check_bars(cls: type[bt.Strategy], params: StrategyParams, bars: int, source: str) -> None:
    """Refuse a run whose ``bars`` are fewer than the strategy's warm-up needs.

    A strategy states its need with a ``min_bars(params)`` classmethod (default 1 bar); ``params``
    are the run's typed parameters.

    Raises:
        ConfigError: naming the bar count, the needed count and the fix.
    """
    rule = getattr(cls, "min_bars", None)
    need, why = rule(params) if rule else (1, "one bar")
    if bars < need:
        raise ConfigError(f"strategy {cls.registered_name!r} needs at least {need} bars ({why}), "
                          f"but {source} has {bars} bar{'s' if bars != 1 else ''} in the run's "
                          "range; use an earlier --start, a later --end or more data.")
