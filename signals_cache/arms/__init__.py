"""Text scorers that are not the causal-LM label scorer ("arm kinds"): each maps texts to label
probabilities without a prompt, behind one registry (:mod:`.registry`).

Importing this package registers the built-in kinds; each kind's module imports its third-party
library only when a scorer is made, so listing or checking kinds stays cheap (no torch).
"""

from llmbt.signals_cache.arms import (  # noqa: F401  (each registers its kind)
    embeddings,
    lexicon,
    seqcls,
)
