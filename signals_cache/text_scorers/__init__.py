"""Text scorers that are not the causal-LM label scorer (the ``kind=`` of an arm, ``--scorer``):
each maps texts to label probabilities without a prompt, behind one registry (:mod:`.registry`).
("Arms" are the variants a comparison runs; a text scorer is one kind of thing an arm may be.)

Importing this package registers the built-in kinds; each kind's module imports its third-party
library only when a scorer is made, so listing or checking kinds stays cheap (no torch).
"""

from llmbt.signals_cache.text_scorers import (  # noqa: F401  (each registers its kind)
    embeddings,
    lexicon,
    seqcls,
)
