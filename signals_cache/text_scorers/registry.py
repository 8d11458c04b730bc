"""The registry of text scorers (arm kinds other than ``lm``, the causal-LM label scorer).

A kind is registered once under its name with a factory ``factory(model=..., path=...)`` that
returns a :class:`TextScorer`; ``model`` is the run's base model and ``path`` the arm's artefact
folder (``adapter=`` of an arm: e.g. a trained classifier head), each None when not given. A kind
that reads the texts through no pretrained language model (a word list) is registered with
``pretrained=False``: it has no knowledge cutoff (:func:`reads_pretrained`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from llmbt.errors import ConfigError, unknown_name_error

#: The kind of the causal-LM label scorer (prompt → label-token probabilities); not registered here.
LM_KIND = "lm"


class TextScorer(Protocol):
    """Maps raw texts (a headline, a bar's feature lines) to label probabilities."""

    name: str

    def fingerprint(self) -> str:
        """A stable id of everything that changes the scores (data files, parameters, version);
        the signal cache keys entries by it, so they never mix with a model's."""
        ...

    def score(self, texts: list[str], batch_size: int) -> np.ndarray:
        """``(len(texts), 3)`` probabilities, columns in ``LABELS`` order, each row summing to 1."""
        ...


Factory = Callable[..., TextScorer]
_KINDS: dict[str, Factory] = {}
_NOT_PRETRAINED: set[str] = set()


def register(name: str, factory: Factory, *, pretrained: bool = True) -> Factory:
    """Register ``factory`` as the arm kind ``name``; ``pretrained``: its scorers read the texts
    through a pretrained language model (the run's base model), whose knowledge cutoff applies.

    Raises:
        ConfigError: ``name`` is ``lm`` or already registered.
    """
    if name == LM_KIND or name in _KINDS:
        raise ConfigError(f"arm kind {name!r} is already registered; register it under a new name.")
    _KINDS[name] = factory
    if not pretrained:
        _NOT_PRETRAINED.add(name)
    return factory


def reads_pretrained(kind: str) -> bool:
    """Whether scorers of ``kind`` read the texts through a pretrained language model (``lm`` and
    the kinds registered with ``pretrained=True``), so may know the tested period's events.

    Raises:
        ConfigError: unknown kind.
    """
    return check_kind(kind) not in _NOT_PRETRAINED


def kinds() -> tuple[str, ...]:
    """Every arm kind: ``lm`` and the registered text scorers, sorted."""
    return (LM_KIND, *sorted(_KINDS))


def get(name: str) -> Factory:
    """The factory of the registered kind ``name``.

    Raises:
        ConfigError: unknown kind, with the closest name and the list of kinds.
    """
    if name not in _KINDS:
        raise unknown_name_error("arm kind", name, kinds(), cls=ConfigError)
    return _KINDS[name]


def make_scorer(kind: str, *, model: str | None = None, path: str | None = None) -> TextScorer:
    """A text scorer of ``kind`` for the base model ``model`` and the artefact folder ``path``."""
    return get(kind)(model=model, path=path)


def check_kind(kind: str) -> str:
    """``kind`` when it is ``lm`` or a registered kind.

    Raises:
        ConfigError: unknown kind.
    """
    if kind != LM_KIND:
        get(kind)
    return kind


def scorer_fingerprint(kind: str, scorer: TextScorer) -> str:
    """The signal-cache fingerprint of ``scorer``: ``arm:KIND:FINGERPRINT`` (model fingerprints are
    16 hex digits, so the two never collide)."""
    return f"arm:{kind}:{scorer.fingerprint()}"
