"""Training examples as the model sees them: canonical fields, the rendered prompt (the very text
scoring uses), token ids with the answer's start, and right-padded batches whose labels cover
only the answer tokens."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.finetune.datasets import tidy_text
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.prompts import (
    PromptTemplate,
    answer_text,
    get_template,
    render,
    variation_base,
)

#: Symbol rendered for examples without one.
NO_SYMBOL = "n/a"


def text_fields(template: PromptTemplate) -> list[str]:
    """The template's placeholders besides ``symbol`` (a training template has exactly one)."""
    return sorted(template.fields - {"symbol"})


def example_fields(example: Any) -> tuple[str, str, str]:
    """(text, canonical label, symbol) of an object with ``.text``/``.label`` (``.symbol``)
    or of a ``(text, label)`` / ``(text, label, symbol)`` tuple. Runs of spaces in the text are
    collapsed; line breaks (bar features are one per line) are kept."""
    if isinstance(example, tuple | list):
        if len(example) not in (2, 3):
            raise LlmbtError(f"example {example!r} must be (text, label) or (text, label, symbol).")
        text, label, symbol = (*example, "")[:3]
    else:
        text, label = example.text, example.label
        symbol = getattr(example, "symbol", "") or ""
    if not isinstance(text, str) or not text.strip():
        raise LlmbtError(f"example text {text!r} is empty; drop that example.")
    return tidy_text(text), answer_text(label), str(symbol).strip() or NO_SYMBOL


def render_example(template: PromptTemplate, tokenizer: Any, text: str, symbol: str) -> str:
    """The prompt of one example (the same text at training and at evaluation); ``symbol`` is
    left out of a template without it (``headlines-v2``, the universe template)."""
    (field,) = text_fields(template)
    named = {"symbol": symbol} if "symbol" in template.fields else {}
    return render(template, tokenizer, **named, **{field: text})


def example_template(example: Any, template: PromptTemplate) -> PromptTemplate:
    """The template that renders ``example`` in a run of ``template``: the paraphrase it records
    (``bt dataset build --augment instructions``), else ``template`` itself.

    Raises:
        ConfigError: the example records a paraphrase of another template.
    """
    version = getattr(example, "template", "") or ""
    base = variation_base(version)
    if base is None or version == template.version:
        return template
    if base != template.version:
        raise ConfigError(f"an example is rendered with {version!r}, a variation of {base!r}, but "
                          f"the run uses --template {template.version!r}: train with --template "
                          f"{base} or rebuild the dataset for {template.version}.")
    return get_template(version)


def dataset_hash(examples: Iterable[Any]) -> str:
    """sha256 of the examples' (text, label, symbol), in order (and its paraphrase, if any)."""
    digest = hashlib.sha256()
    for ex in examples:
        version = getattr(ex, "template", "") or ""
        fields = (*example_fields(ex), version) if variation_base(version) else example_fields(ex)
        digest.update(json.dumps(fields, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


@dataclass
class Encoded:
    """Token ids (int32) per example and where its answer starts (memory-light: no texts)."""

    ids: list[np.ndarray]
    answer_start: list[int]
    truncated: int
    #: Sequence classification (``--method seqcls``): each example's label index in ``LABELS``
    #: (its ids are the prompt alone); None for the label-token methods.
    classes: list[int] | None = None


def encode_examples(
    examples: Sequence[Any], tokenizer: Any, template: PromptTemplate, max_length: int
) -> Encoded:
    """Tokenize prompt + answer + eos (the prompt by :func:`example_template`). A sequence longer
    than ``max_length`` loses tokens from the start of its prompt (the answer is always kept)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise LlmbtError("the tokenizer has no eos token; cannot mark the end of the answer.")
    ids, starts, truncated, prompts = [], [], 0, {}
    for ex in examples:
        text, label, symbol = example_fields(ex)
        own = example_template(ex, template)
        key = (text, symbol, own.version)
        if key not in prompts:
            prompts = {} if len(prompts) > 4096 else prompts
            prompt = render_example(own, tokenizer, text, symbol)
            prompts[key] = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        prompt_ids = prompts[key]
        answer = tokenizer(label, add_special_tokens=False)["input_ids"] + [eos]
        keep = max_length - len(answer)
        if keep < 1:
            raise ConfigError(f"--max-length {max_length} is shorter than the answer; raise it.")
        if len(prompt_ids) > keep:
            prompt_ids, truncated = prompt_ids[-keep:], truncated + 1
        ids.append(np.asarray(list(prompt_ids) + answer, dtype=np.int32))
        starts.append(len(prompt_ids))
    return Encoded(ids, starts, truncated)


def encode_classes(
    examples: Sequence[Any], tokenizer: Any, template: PromptTemplate, max_length: int
) -> Encoded:
    """Tokenize the prompts of ``examples`` for sequence classification, keeping their label
    indices (``LABELS`` order). Every prompt is rendered without the symbol (``n/a``): a text
    scorer sees only the text, so training sees what scoring will. A prompt longer than
    ``max_length`` loses tokens from its start, as :func:`classifier_ids` does at scoring."""
    ids, classes, truncated = [], [], 0
    for ex in examples:
        text, label, _symbol = example_fields(ex)
        row, cut = classifier_ids(tokenizer, render_example(template, tokenizer, text, NO_SYMBOL),
                                  max_length)
        ids.append(row)
        classes.append(LABELS.index(label))
        truncated += cut
    return Encoded(ids, [len(row) for row in ids], truncated, classes)


def classifier_ids(tokenizer: Any, prompt: str, max_length: int) -> tuple[np.ndarray, bool]:
    """(token ids of ``prompt``, at most its last ``max_length``; whether it was cut)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return np.asarray(ids[-max_length:], dtype=np.int32), len(ids) > max_length


def shared_prefix(enc: Encoded, rows: Sequence[int]) -> int:
    """Length of the token prefix all ``rows`` share, ending before the token that predicts
    the first answer token (so every row keeps its own tail with all its loss positions)."""
    first = enc.ids[rows[0]]
    n = min(enc.answer_start[i] for i in rows) - 1
    for i in rows[1:]:
        differ = np.flatnonzero(enc.ids[i][:n] != first[:n])
        n = int(differ[0]) if len(differ) else n
    return max(n, 0)


def collate(enc: Encoded, rows: Sequence[int], pad_id: int,
            share_prefix: bool = False) -> dict[str, Any]:
    """Right-padded (to the longest row) ``input_ids``, ``attention_mask`` and ``labels``
    (-100 off the answer; for sequence classification, the rows' label indices). With
    ``share_prefix`` and a shared prefix (:func:`shared_prefix`) of two or more rows,
    ``prefix`` holds it (1, P) once, the other tensors only the rows' tails and
    ``attention_mask`` is (rows, P + tail width). For sequence classification every tail keeps
    at least its last token, the one the head reads."""
    import torch

    start = shared_prefix(enc, rows) if share_prefix and len(rows) > 1 else 0
    width = max(len(enc.ids[i]) for i in rows) - start
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), start + width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for row, i in enumerate(rows):
        seq = torch.from_numpy(enc.ids[i][start:].astype(np.int64))
        input_ids[row, : len(seq)] = seq
        mask[row, : start + len(seq)] = 1
        answer = enc.answer_start[i] - start
        labels[row, answer : len(seq)] = seq[answer:]
    if enc.classes is not None:
        labels = torch.tensor([enc.classes[i] for i in rows], dtype=torch.long)
    batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
    if start:
        batch["prefix"] = torch.from_numpy(enc.ids[rows[0]][:start].astype(np.int64))[None]
    return batch
