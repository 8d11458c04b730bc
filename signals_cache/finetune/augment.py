"""Train-split augmentation (``bt dataset build --augment instructions,entities``).

As the fine-tuning guide this product follows suggests, two augmentations add copies of train
examples, never of validation or test ones (they run after the split, on the train part only):

- ``instructions``: each example again under ``factor`` paraphrased instructions
  (:data:`~llmbt.signals_cache.scoring.prompts.VARIATIONS` of the run's template), so an adapter
  does not overfit one wording. The copy records its template version; scoring keeps the
  canonical one.
- ``entities``: each example that names a company (a names table, found with the masking regex
  of :mod:`~llmbt.signals_cache.anonymize`) again with that company replaced by one named in
  another train example **of the same label**, ``factor`` times. Only *strong* mentions are
  swapped: ones that contain the company's core name (``Citigroup``, ``Goldman Sachs``), not a
  bare ticker or short form that may be a common word or acronym (``IT``, ``News``, ``Smith``).

Both are deterministic for a seed. A copy whose text equals any existing text (a train, val or
test one) is dropped, so augmentation adds no duplicate and no validation or test sentence.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmbt.errors import ConfigError, unknown_name_error
from llmbt.signals_cache.anonymize import Masker, build_masker, core_name
from llmbt.signals_cache.finetune.datasets import Example, normalise_text
from llmbt.signals_cache.scoring.prompts import VARIATIONS, PromptTemplate

#: The augmentations ``--augment`` accepts, in the order they run.
AUGMENTATIONS: tuple[str, ...] = ("instructions", "entities")
Mention = tuple[int, int, tuple[str, ...]]  # (start, end, the company's symbols)
Donor = tuple[tuple[str, ...], str]  # (company symbols, its name as a train example writes it)


def parse_augment(text: str | None) -> tuple[str, ...]:
    """``"instructions,entities"`` → the augmentations, in :data:`AUGMENTATIONS` order.

    Raises:
        ConfigError: an unknown name (with the closest known one).
    """
    names = {n.strip().lower() for n in (text or "").split(",") if n.strip()}
    for name in sorted(names - set(AUGMENTATIONS)):
        raise unknown_name_error("--augment", name, AUGMENTATIONS, cls=ConfigError)
    return tuple(a for a in AUGMENTATIONS if a in names)


def instruction_variants(examples: Sequence[Example], template: PromptTemplate, *,
                         factor: int = 1, seed: int = 0) -> list[Example]:
    """``factor`` copies of each example, each under a different paraphrase of ``template``
    (drawn with ``numpy.random.default_rng(seed)``).

    Raises:
        ConfigError: ``template`` has no variations, or fewer than ``factor``.
    """
    versions = VARIATIONS.get(template.version, ())
    if len(versions) < factor:
        with_some = ", ".join(sorted(VARIATIONS))
        raise ConfigError(f"prompt {template.version!r} has {len(versions)} instruction variation(s), "
                          f"fewer than --augment-factor {factor}; lower it or use one of {with_some}.")
    rng = np.random.default_rng(seed)
    return [dataclasses.replace(e, template=versions[i], augmented="instructions")
            for e in examples for i in sorted(rng.choice(len(versions), factor, replace=False))]


@dataclass(frozen=True)
class EntitySwapper:
    """Finds swappable company mentions; build with :func:`entity_swapper`."""

    masker: Masker
    cores: Mapping[tuple[str, ...], str]  # company symbols → core name (``Goldman Sachs``)

    def mentions(self, text: str) -> list[Mention]:
        """The strong mentions of ``text``: ones containing their company's core name as written
        (or, for a name of several words, in any case when the mention starts upper-case); a
        one-word mention only when no capitalised word touches it (``Mr Smith``, ``AC Nielsen``,
        ``NASDAQ OMX`` and ``EQT Partners`` are other names)."""
        return [(start, end, company) for start, end, company in self.masker.mentions(text)
                if _strong(text[start:end], self.cores[company])
                and (" " in text[start:end] or _standalone(text, start, end))]


def _strong(mention: str, core: str) -> bool:
    if core in mention:
        return True
    return " " in core and mention[:1].isupper() and core.lower() in mention.lower()


_CAPITALISED = re.compile(r"[A-Z][A-Za-z.&'-]*")


def _standalone(text: str, start: int, end: int) -> bool:
    """No capitalised word right before or after ``text[start:end]`` (one space apart)."""
    before = text[:start].split(" ")[-2:] if text[:start].endswith(" ") else []
    after = text[end:].split(" ")[:2] if text[end:].startswith(" ") else []
    return not any(_CAPITALISED.fullmatch(word) for word in (before[:1] + after[1:]))


def entity_swapper(names: Mapping[str, Sequence[str]]) -> EntitySwapper:
    """An :class:`EntitySwapper` of a names table (symbol → company names, as
    :func:`~llmbt.signals_cache.anonymize.load_names` returns it)."""
    masker = build_masker(names)
    companies = {c for e in (masker.exact, masker.folded) for c in e.values()}
    return EntitySwapper(masker, {c: core_name(names[c[0]][0]) for c in companies})


def donor_pools(examples: Sequence[Example], swapper: EntitySwapper) -> dict[str, list[Donor]]:
    """Label → the companies its examples name (each with its most written spelling), sorted."""
    seen: dict[str, dict[tuple[str, ...], Counter]] = {}
    for e in examples:
        for start, end, company in swapper.mentions(e.text):
            seen.setdefault(e.label, {}).setdefault(company, Counter())[e.text[start:end]] += 1
    return {label: [(c, min(n.items(), key=lambda kv: (-kv[1], kv[0]))[0]) for c, n in sorted(by.items())]
            for label, by in seen.items()}


def swap_entities(examples: Sequence[Example], swapper: EntitySwapper, *, factor: int = 1,
                  seed: int = 0, taken: set[str] | None = None) -> tuple[list[Example], dict[str, int]]:
    """Up to ``factor`` copies of each example that names a company, each company replaced by
    another one named in a train example of the same label (drawn with ``default_rng(seed)``;
    no donor twice for one example, so the copies differ).

    ``taken`` holds normalised texts a copy may not have (all splits' texts); it grows by each
    copy kept. Returns the copies and counts: ``touchable`` (examples with a strong mention),
    ``added``, ``dropped`` (copies equal to a taken text).
    """
    pools, rng = donor_pools(examples, swapper), np.random.default_rng(seed)
    taken = set() if taken is None else taken
    out, stats = [], {"touchable": 0, "added": 0, "dropped": 0}
    for example in examples:
        mentions = swapper.mentions(example.text)
        own = list(dict.fromkeys(m[2] for m in mentions))
        choices = [d for d in pools.get(example.label, []) if d[0] not in own]
        stats["touchable"] += bool(mentions)
        order = rng.permutation(len(choices)) if mentions else []
        for j in range(min(factor, len(choices) // len(own)) if own else 0):  # disjoint donors
            picks = order[j * len(own) : (j + 1) * len(own)]
            copy = _swapped(example, mentions, dict(zip(own, (choices[i] for i in picks), strict=True)))
            key = normalise_text(copy.text)
            stats["dropped" if key in taken else "added"] += 1
            if key not in taken:
                taken.add(key)
                out.append(copy)
    return out, stats


def _swapped(example: Example, mentions: list[Mention], to: dict[tuple[str, ...], Donor]) -> Example:
    """``example`` with each mention replaced by its company's donor spelling; a symbol of a
    swapped company becomes the donor's (so ``Symbol:`` and the headline agree)."""
    text = example.text
    for start, end, company in reversed(mentions):
        text = text[:start] + to[company][1] + text[end:]
    symbol = next((to[c][0][0] for c in to if example.symbol and example.symbol in c), example.symbol)
    return dataclasses.replace(example, text=text, symbol=symbol, augmented="entities")


def augment_train(splits: dict[str, list[Example]], kinds: Sequence[str], *, template: PromptTemplate,
                  names: Mapping[str, Sequence[str]] | None = None, factor: int = 1,
                  seed: int = 0) -> tuple[dict[str, list[Example]], dict[str, Any]]:
    """``splits`` with the train part followed by its augmented copies, and the counts for the
    quality report. Validation and test are returned as they are, and no copy repeats a text of
    any split.

    Raises:
        ConfigError: ``factor`` below 1, ``entities`` without ``names`` or on bar examples, or
            ``instructions`` with a template of too few variations.
    """
    if int(factor) != factor or factor < 1:
        raise ConfigError(f"--augment-factor must be a whole number >= 1, got {factor!r}.")
    train, stats = splits["train"], {"factor": factor, "sources": len(splits["train"])}
    taken = {normalise_text(e.text) for part in splits.values() for e in part}
    added: list[Example] = []
    if "instructions" in kinds:
        copies = instruction_variants(train, template, factor=factor, seed=seed)
        stats["instructions"] = {"added": len(copies), "templates": dict(sorted(
            Counter(e.template for e in copies).items()))}
        added += copies
    if "entities" in kinds:
        copies, stats["entities"] = swap_entities(train, _swapper(names, template), factor=factor,
                                                  seed=seed + 1, taken=taken)
        added += copies
    stats["added"] = len(added)
    return {**splits, "train": [*train, *added]}, stats


def _swapper(names: Mapping[str, Sequence[str]] | None, template: PromptTemplate) -> EntitySwapper:
    if template.name != "headlines":
        raise ConfigError("--augment entities swaps company names in headlines; bar examples "
                          "have none: use --augment instructions.")
    if not names:
        raise ConfigError("--augment entities needs --names FILE (CSV symbol,company, e.g. "
                          "../shared/data/news/sp500_companies.csv).")
    return entity_swapper(names)
