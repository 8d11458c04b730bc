"""Labelled datasets for fine-tuning: loading, leak-free splits, bar labels, checks and export.

Headline corpora (CSV, JSONL, Financial-PhraseBank ``sentence@label``) are undated: deduplicate and
split them with :func:`stratified_split`. Dated examples (bars and headlines labelled by forward
returns, :mod:`llmbt.signals_cache.finetune.labelling`) are split in time order with an embargo and purging
(:func:`time_split`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError, DataError, did_you_mean
from llmbt.signals_cache.scoring.labels import LABEL_ALIASES, LABELS
from llmbt.signals_cache.scoring.prompts import PromptTemplate, answer_text, render_messages


@dataclass(frozen=True)
class Example:
    """One labelled example.

    Attributes:
        text: the headline, or the formatted bar-features block.
        label: one of :data:`~llmbt.signals_cache.scoring.labels.LABELS`.
        symbol: the instrument, ``""`` when unknown (e.g. Financial PhraseBank).
        time: when the text became known (bar time), ``None`` for undated corpora.
        forward_return: realised forward return of a bar example, ``None`` otherwise.
        label_end: when the forward window behind the label ends (headline examples): the
            close of its exit bar (:func:`~llmbt.signals_cache.finetune.labelling.bar_closes`).
        template: the prompt version that renders it, ``""`` for the run's own; a train example
            of ``--augment instructions`` names a paraphrase (``headlines-v1-alt2``).
        augmented: ``""`` for a source example, else the augmentation that made it
            (``"instructions"`` or ``"entities"``, :mod:`~llmbt.signals_cache.finetune.augment`).
    """

    text: str
    label: str
    symbol: str = ""
    time: pd.Timestamp | None = None
    forward_return: float | None = None
    label_end: pd.Timestamp | None = None
    template: str = ""
    augmented: str = ""


def load_labelled(path: str | Path, *, label_map: dict[str, str] | None = None) -> list[Example]:
    """Load a labelled corpus (headlines, or the dated examples ``bt dataset build`` wrote).

    Args:
        path: ``.csv`` or ``.jsonl`` with ``label`` and ``text`` fields (others ignored, except
            optional ``symbol``, ``time``, ``forward_return``, ``label_end``, ``template`` and
            ``augmented``), or ``.txt``
            lines ``sentence@label``.
            Line breaks inside a text (bar features) are kept; runs of spaces are collapsed.
        label_map: extra label synonyms, e.g. ``{"pos": "bullish"}`` (case-insensitive).

    Raises:
        DataError: unreadable file, missing column, empty text or unknown label; the message
            names the row (1-based data row of a CSV, line number of a JSONL or text file).
        ConfigError: unknown file type, or a ``label_map`` value that is not a label.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labelled file {str(path)!r} does not exist.")
    readers = {".csv": _read_csv, ".jsonl": _read_jsonl, ".txt": _read_phrasebank}
    suffix = path.suffix.lower()
    if suffix not in readers:
        raise ConfigError(f"unknown labelled file type {suffix!r} ({path}); use .csv, .jsonl or .txt.")
    aliases = _aliases(label_map)
    return [_make_example(path, row, record, aliases) for row, record in readers[suffix](path)]


def _aliases(label_map: dict[str, str] | None) -> dict[str, str]:
    aliases = {k.lower(): v for k, v in LABEL_ALIASES.items()}
    for key, value in (label_map or {}).items():
        if value not in LABELS:
            raise ConfigError(f"label_map maps {key!r} to {value!r}; map to one of {', '.join(LABELS)}.")
        aliases[str(key).strip().lower()] = value
    return aliases


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read {path} as CSV: {exc}") from exc
    _require_columns(path, frame.columns)
    return list(enumerate(frame.to_dict("records"), 1))


def _lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {number} is not valid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path} line {number} is not a JSON object: {line[:80]!r}")
        _require_columns(path, record.keys(), where=f" line {number}")
        records.append((number, record))
    return records


def _read_phrasebank(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for number, line in _lines(path):
        if "@" not in line:
            raise DataError(f"{path} line {number} has no '@label' suffix: {line[:80]!r}")
        text, label = line.rsplit("@", 1)
        records.append((number, {"text": text, "label": label}))
    return records


def _require_columns(path: Path, columns: Iterable[str], where: str = "") -> None:
    missing = [name for name in ("label", "text") if name not in set(columns)]
    if missing:
        raise DataError(
            f"{path}{where} lacks column(s) {missing}; got {sorted(columns)}. "
            "A labelled file needs 'label' and 'text'."
        )


def _make_example(path: Path, row: int, record: dict[str, Any], aliases: dict[str, str]) -> Example:
    raw_label = record.get("label")
    label = aliases.get(str(raw_label).strip().lower()) if raw_label is not None else None
    if label is None:
        raise DataError(
            f"{path} row {row}: unknown label {raw_label!r}.{did_you_mean(str(raw_label), aliases)} "
            f"Accepted labels: {', '.join(sorted(aliases))}; pass label_map to map others."
        )
    text = tidy_text(str(record.get("text") or ""))
    if not text:
        raise DataError(f"{path} row {row}: empty text; drop that row.")
    return Example(text, label, str(record.get("symbol") or ""), _parse_time(path, row, record.get("time")),
                   _parse_return(path, row, record.get("forward_return")),
                   _parse_time(path, row, record.get("label_end")),
                   str(record.get("template") or ""), str(record.get("augmented") or ""))


def _parse_return(path: Path, row: int, value: Any) -> float | None:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path} row {row}: forward_return {value!r} is not a number.") from exc


def _parse_time(path: Path, row: int, value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    try:
        return pd.to_datetime(value, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path} row {row}: bad time {value!r}; use ISO 8601 (2024-01-31T14:30Z).") from exc


def tidy_text(text: str) -> str:
    """``text`` with runs of spaces collapsed and blank lines dropped; line breaks are kept
    (bar features are one per line), so a prompt reads the same after a JSONL round trip."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def normalise_text(text: str) -> str:
    """Lower-cased text with runs of white space collapsed: the key for duplicate checks."""
    return " ".join(text.lower().split())


def dedupe(examples: Iterable[Example]) -> list[Example]:
    """Keep the first example of each normalised text."""
    first: dict[str, Example] = {}
    for example in examples:
        first.setdefault(normalise_text(example.text), example)
    return list(first.values())


def stratified_split(
    examples: Sequence[Example], *, val: float = 0.1, test: float = 0.1, seed: int = 0
) -> dict[str, list[Example]]:
    """Split an undated corpus into train/val/test with the same label mix in each.

    Duplicate texts are dropped first (first kept), so no text is in two splits; each label is
    shuffled with ``numpy.random.default_rng(seed)`` (deterministic for a given input and seed).

    Raises:
        ConfigError: fractions outside ``[0, 1)`` or summing to 1 or more.
    """
    _check_fractions(val, test)
    rng = np.random.default_rng(seed)
    unique = dedupe(examples)
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for label in LABELS:
        group = [e for e in unique if e.label == label]
        order = rng.permutation(len(group))
        n_test, n_val = round(len(group) * test), round(len(group) * val)
        splits["test"] += [group[i] for i in order[:n_test]]
        splits["val"] += [group[i] for i in order[n_test : n_test + n_val]]
        splits["train"] += [group[i] for i in order[n_test + n_val :]]
    return {name: [part[i] for i in rng.permutation(len(part))] for name, part in splits.items()}


def time_split(
    examples: Sequence[Example], *, val: float = 0.15, test: float = 0.15, embargo: int
) -> dict[str, list[Example]]:
    """Split dated examples into consecutive train | val | test blocks in time order.

    ``embargo`` examples are dropped between train and val and between val and test (only
    between blocks that exist: with ``test=0`` the newest examples are validation); for bar
    examples use at least the label horizon, so no training label overlaps a validation bar.
    Examples with a ``label_end`` (headlines) are also purged: one whose label window ends (its
    exit bar's close) at or after the next split's first example's time (when that headline was
    known; a date-only one at the end of its day in ``--news-tz``, before its first tradable bar
    opens) is dropped, so no kept label shares a bar with a later split's labels.

    Raises:
        DataError: an example has no time, or too few examples for the blocks and embargo.
        ConfigError: bad fractions or a negative embargo.
    """
    _check_fractions(val, test)
    if embargo < 0:
        raise ConfigError(f"embargo must be >= 0 examples, got {embargo}.")
    undated = [i for i, e in enumerate(examples) if e.time is None]
    if undated:
        raise DataError(
            f"time_split needs dated examples; {len(undated)} have no time (first at position "
            f"{undated[0]}). Use stratified_split for undated corpora."
        )
    ordered = sorted(examples, key=lambda e: e.time)
    n = len(ordered)
    n_test, n_val = round(n * test), round(n * val)
    n_train = n - n_test - n_val - embargo * ((n_val > 0) + (n_test > 0))  # no gap before nothing
    if n_train <= 0:
        raise DataError(f"{n} examples are too few for val={val}, test={test}, embargo={embargo}.")
    val_start = n_train + (embargo if n_val else 0)
    test_start = val_start + n_val + (embargo if n_test else 0)
    train, val_part = ordered[:n_train], ordered[val_start : val_start + n_val]
    test_part = ordered[test_start:]
    if test_part:
        val_part = _purge(val_part, test_part[0].time)
    if val_part or test_part:
        train = _purge(train, (val_part or test_part)[0].time)
    return {"train": train, "val": val_part, "test": test_part}


def _purge(part: list[Example], next_start: pd.Timestamp) -> list[Example]:
    """``part`` without the examples whose label window ends at or after ``next_start`` (both
    UTC instants: an exit bar's close, a headline's time)."""
    return [e for e in part if e.label_end is None or e.label_end < next_start]


def _check_fractions(val: float, test: float) -> None:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"split fractions val={val}, test={test} must be in [0, 1) and sum below 1.")


def quality_report(
    splits: dict[str, list[Example]], *, max_chars: int = 1000, min_ratio: float = 0.1
) -> dict[str, Any]:
    """Counts, problems and leakage of a split dataset.

    Returns:
        ``counts`` (split → label → n, plus ``total``), ``empty`` and ``too_long`` (split → n),
        ``duplicates`` (split → extra copies inside it), ``leaks`` (``"a|b"`` → texts shared by
        two splits), ``leak_examples`` (up to 5 such texts) and ``warnings`` (sentences).
    """
    keys = {name: [normalise_text(e.text) for e in part] for name, part in splits.items()}
    rendered = {name: [(normalise_text(e.text), e.template) for e in part]  # a paraphrase's
                for name, part in splits.items()}  # copy of a text is no duplicate
    report: dict[str, Any] = {
        "counts": {name: _label_counts(part) for name, part in splits.items()},
        "empty": {name: sum(not e.text.strip() for e in part) for name, part in splits.items()},
        "too_long": {name: sum(len(e.text) > max_chars for e in part) for name, part in splits.items()},
        "duplicates": {name: len(ks) - len(set(ks)) for name, ks in rendered.items()},
    }
    report["leaks"], report["leak_examples"] = _leaks(keys)
    report["warnings"] = _warnings(report, max_chars, min_ratio)
    return report


def _label_counts(part: list[Example]) -> dict[str, int]:
    counts = Counter(e.label for e in part)
    return {**{label: counts.get(label, 0) for label in LABELS}, "total": len(part)}


def _leaks(keys: dict[str, list[str]]) -> tuple[dict[str, int], list[str]]:
    names, leaks, shown = list(keys), {}, []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(keys[a]) & set(keys[b]))
            leaks[f"{a}|{b}"] = len(shared)
            shown += shared[: max(5 - len(shown), 0)]
    return leaks, shown


def _warnings(report: dict[str, Any], max_chars: int, min_ratio: float) -> list[str]:
    out = [f"{n} example(s) leak across {pair}; dedupe before splitting."
           for pair, n in report["leaks"].items() if n]
    out += [f"{n} duplicate text(s) within {s}." for s, n in report["duplicates"].items() if n]
    out += [f"{n} empty text(s) in {s}." for s, n in report["empty"].items() if n]
    out += [f"{n} text(s) in {s} over {max_chars} characters." for s, n in report["too_long"].items() if n]
    for split, counts in report["counts"].items():
        if (split != "train" and "train" in report["counts"]) or not counts["total"]:
            continue
        for label in LABELS:
            share = counts[label] / counts["total"]
            if share < min_ratio:
                out.append(f"label {label!r} is {share:.0%} of {split}, under min_ratio "
                           f"{min_ratio:.0%}: rebuild with bt dataset build --rebalance")
    return out


def rebalance(examples: Sequence[Example], seed: int = 0) -> list[Example]:
    """Oversample minority labels (with replacement) up to the majority count; train split only.

    Labels absent from ``examples`` stay absent. The result is shuffled deterministically.
    """
    rng = np.random.default_rng(seed)
    groups = {label: [e for e in examples if e.label == label] for label in LABELS}
    target = max((len(g) for g in groups.values()), default=0)
    out = list(examples)
    for group in groups.values():
        if group and len(group) < target:
            out += [group[i] for i in rng.integers(0, len(group), target - len(group))]
    return [out[i] for i in rng.permutation(len(out))]


def _messages(example: Example, template: PromptTemplate) -> list[dict[str, str]]:
    text_fields = sorted(template.fields - {"symbol"})
    if len(text_fields) != 1:
        raise ConfigError(f"template {template.version!r} has text fields {text_fields}; expected one.")
    fields = {text_fields[0]: example.text}
    if "symbol" in template.fields:
        fields["symbol"] = example.symbol or "n/a"
    return render_messages(template, **fields)


def to_chatml(example: Example, template: PromptTemplate) -> dict[str, list[dict[str, str]]]:
    """``{"messages": [system, user, assistant]}``; the assistant says the label word."""
    answer = {"role": "assistant", "content": answer_text(example.label)}
    return {"messages": [*_messages(example, template), answer]}


def to_alpaca(example: Example, template: PromptTemplate) -> dict[str, str]:
    """``{"instruction": system text, "input": user text, "output": label word}``."""
    system, user = _messages(example, template)
    return {"instruction": system["content"], "input": user["content"],
            "output": answer_text(example.label)}


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write one JSON object per line (UTF-8, parents created); returns the number of rows."""
    path, rows = Path(path), list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return len(rows)
