"""Typed, frozen strategy parameters: one dataclass per strategy, declared once.

A strategy declares its parameters as a frozen dataclass derived from :class:`StrategyParams`
(typed fields with their defaults) and sets it as its ``Params``; Backtrader's ``params`` tuple is
derived from it (:meth:`StrategyParams.bt_params`), so there is one declaration, not two.

A value is checked once, when it is made: :meth:`StrategyParams.from_mapping` refuses unknown
names (with "Did you mean …?"), ``__post_init__`` coerces each value to its field's type (``--param
fast=5`` gives the string ``"5"``, YAML ``fast: 5`` the number: both are ``5``) and then applies
the strategy's own rules (a subclass's ``__post_init__``, e.g. ``fast < slow``). Errors are
:class:`~llmbt.errors.ConfigError` naming the ``--param`` and the fix. Downstream code reads the
typed fields and coerces nothing.

Coercion: strings are parsed (``true``/``false``/``1``/``0`` for a bool; ``none`` or an empty
string for an optional field is None); a whole float is accepted for an int, 0 and 1 for a bool,
and an int for a float (kept as it is, so a configuration's run id stays the one it had).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

from llmbt.errors import ConfigError, did_you_mean

_BOOLS = {"true": True, "false": False, "1": True, "0": False}
_NONE = ("", "none")
_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


@dataclass(frozen=True)
class StrategyParams:
    """The parameters of a strategy that has none; the base of every strategy's parameters.

    ``_given`` holds the names set by the user (and any field away from its default): they alone
    make :meth:`to_dict`, the form of the run id and of a run's YAML.
    """

    _given: frozenset[str] = field(default=frozenset(), repr=False, kw_only=True)

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in _param_fields(type(self)):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name], f.default)
            object.__setattr__(self, f.name, value)
        changed = {f.name for f in _param_fields(type(self)) if getattr(self, f.name) != f.default}
        object.__setattr__(self, "_given", frozenset(self._given) | changed)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "this strategy") -> Self:
        """The parameters ``values`` (``--param`` strings or YAML values) over the defaults.

        Args:
            values: parameter name → value; only these names go into :meth:`to_dict`.
            source: what the parameters belong to, for the error (``strategy 'sma_cross'``).

        Raises:
            ConfigError: an unknown name (with "Did you mean …?"), a value of the wrong type or
                one the strategy's rules refuse, naming the ``--param``.
        """
        names = cls.param_names()
        for key in values:
            if key not in names:
                raise ConfigError(f"--param {key}: {source} has no parameter {key!r}."
                                  f"{did_you_mean(key, names)} Parameters: {', '.join(names) or 'none'}")
        return cls(**dict(values), _given=frozenset(values))

    @classmethod
    def of(cls, params: StrategyParams | Mapping[str, Any]) -> Self:
        """``params`` as is when it is already this type, else :meth:`from_mapping` of it."""
        if type(params) is cls:
            return params
        values = params.to_dict() if isinstance(params, StrategyParams) else params
        return cls.from_mapping(values)

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The parameter names, in declaration order."""
        return tuple(f.name for f in _param_fields(cls))

    @classmethod
    def bt_params(cls) -> tuple[tuple[str, Any], ...]:
        """Backtrader's ``params`` tuple: (name, default) of every field."""
        return tuple((f.name, f.default) for f in _param_fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """The given parameters, typed (the run id's and the YAML's ``params``)."""
        return {name: getattr(self, name) for name in self.param_names() if name in self._given}

    def all_values(self) -> dict[str, Any]:
        """Every parameter: the given ones over the defaults (Backtrader's keyword arguments)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def _set(self, **values: Any) -> None:
        """Store normalised values (for a subclass's ``__post_init__``, before its rules)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)


def number(key: str, value: Any, minimum: float, hint: str) -> float:
    """``value`` as a finite float >= ``minimum``, else a ConfigError naming ``--param key``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if isinstance(value, bool) or not out >= minimum or not math.isfinite(out):
        raise ConfigError(f"--param {key}={value!r} must be a number >= {minimum:g} ({hint})")
    return out


def integer(key: str, value: Any, minimum: int, hint: str) -> int:
    """``value`` as an int >= ``minimum`` (a whole float or a string of one is accepted)."""
    try:
        out = number(key, value, minimum, hint)
    except ConfigError:
        out = None
    if out is None or out != int(out) or isinstance(value, bool):
        raise ConfigError(f"--param {key}={value!r} must be an integer >= {minimum} ({hint})")
    return int(out)


def fraction(key: str, value: Any, hint: str, zero: bool = False) -> float:
    """``value`` as a float in (0, 1], or [0, 1] with ``zero``."""
    out = number(key, value, 0.0, hint)
    if out > 1 or (out == 0 and not zero):
        raise ConfigError(f"--param {key}={value!r} must be in {'[0' if zero else '(0'}, 1] ({hint})")
    return out


def choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    """Refuse a ``value`` not among ``choices``, with "Did you mean …?"."""
    if value not in choices:
        raise ConfigError(f"--param {key}={value!r} is not one of {', '.join(choices)}."
                          f"{did_you_mean(str(value), choices)}")


def is_none(value: Any) -> bool:
    """None, or a string that stands for it (``none``, empty)."""
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE)


@functools.cache
def _param_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in fields(cls) if f.name != "_given")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any, default: Any) -> Any:
    """``value`` as the type ``hint`` (``int``, ``float``, ``bool``, ``str``, or one of them
    ``| None``); raises ConfigError naming ``--param key`` and its default."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = typing.get_args(hint) if union else (hint,)
    kind = next(k for k in kinds if k is not type(None))
    if type(None) in kinds and is_none(value):
        return None
    if isinstance(value, str) and kind is not str:
        value = _parsed(key, value, kind, default)
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is bool and (isinstance(value, bool) or whole and value in (0, 1)):
        return bool(value)
    if kind is int and (whole or isinstance(value, float) and value.is_integer()):
        return int(value)
    if kind is float and (whole or isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return value if type(value) in (int, float) else float(value)  # an int stays (its run id)
    if kind is str and isinstance(value, str):
        return value
    raise _type_error(key, value, kind, default)


def _parsed(key: str, value: str, kind: type, default: Any) -> Any:
    try:
        return _BOOLS[value.strip().lower()] if kind is bool else kind(value)
    except (KeyError, ValueError):
        raise _type_error(key, value, kind, default) from None


def _type_error(key: str, value: Any, kind: type, default: Any) -> ConfigError:
    example = str(default).lower() if isinstance(default, bool) else default
    return ConfigError(f"--param {key}={value!r} must be {_KINDS.get(kind, kind.__name__)} "
                       f"(default {default!r}): e.g. --param {key}={example}")
