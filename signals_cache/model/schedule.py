"""Point-in-time model schedules: which model scores an item, decided by the item's time.

A schedule (``--model-schedule FILE``) lists models by the end of their training data, their
*cutoff*: TiMaGPT2 has one GPT-2 per year, each trained only on text written before it. Every bar
or headline is scored by the latest model whose cutoff day lies strictly before the item's day,
``gap_days`` (``--cutoff-gap``) earlier still: a model trained on text up to 2014-12-31 scores
items from 2015-01-01 on, never an item of 2014-12-31 itself. So no item is ever scored by a model
that could have read about it. Items before the first cutoff are refused, naming that date, or
with ``before_first="skip"`` (``--before-first skip``) left unscored and counted.

The file is YAML (a list of mappings, or ``{models: [...]}``) or CSV with a header, each row
``cutoff, model[, adapter]``; relative paths are read from the file's folder. Cutoffs must be
strictly increasing dates, none after today, and every row's model (and adapter) must load.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from llmbt.errors import ConfigError, LlmbtError

BEFORE_FIRST = ("refuse", "skip")
_COLUMNS = ("cutoff", "model", "adapter")


@dataclass(frozen=True)
class Segment:
    """One row of a schedule: a model (and adapter) trained on text up to ``cutoff`` (a day)."""

    cutoff: dt.date
    model: str
    adapter: str | None = None
    row: int = 1

    def label(self) -> str:
        """``model (+ adapter) cutoff DAY`` for messages and reports."""
        adapter = f" + adapter {self.adapter}" if self.adapter else ""
        return f"{self.model}{adapter} (cutoff {self.cutoff})"


@dataclass(frozen=True)
class ModelSchedule:
    """A validated schedule: its segments in cutoff order and how items map onto them."""

    path: str
    segments: tuple[Segment, ...]
    gap_days: int = 0
    before_first: str = "refuse"

    def __post_init__(self) -> None:
        if self.before_first not in BEFORE_FIRST:
            raise ConfigError(f"--before-first {self.before_first!r} is not valid; choose "
                              "refuse (default) or skip.")
        if isinstance(self.gap_days, bool) or not isinstance(self.gap_days, int) or self.gap_days < 0:
            raise ConfigError(f"--cutoff-gap {self.gap_days!r} must be a whole number of days >= 0.")

    def first_day(self, k: int) -> pd.Timestamp:
        """The first UTC day segment ``k`` may score: its cutoff's next day, plus the gap."""
        return pd.Timestamp(self.segments[k].cutoff, tz="UTC") + pd.Timedelta(days=1 + self.gap_days)

    def assign(self, times: Any) -> np.ndarray:
        """The segment of each item time (``-1``: before the first cutoff; not yet checked)."""
        days = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).floor("D").as_unit("ns")
        starts = pd.DatetimeIndex([self.first_day(k) for k in range(len(self.segments))])
        return np.searchsorted(starts.as_unit("ns").asi8, days.asi8, side="right") - 1

    def segments_of(self, times: Any, what: str = "item", hint: str = "") -> np.ndarray:
        """:meth:`assign`, refusing items before the first cutoff unless ``before_first`` is skip.

        Raises:
            ConfigError: naming how many items, the first of them, the first cutoff and the fix.
        """
        idx = self.assign(times)
        early = idx < 0
        if early.any() and self.before_first == "refuse":
            first = pd.DatetimeIndex(pd.to_datetime(times, utc=True))[early].min()
            raise ConfigError(
                f"{int(early.sum())} {what}(s), the first on {first:%Y-%m-%d}, come before the first "
                f"model of {self.path} may score them (cutoff {self.segments[0].cutoff}, so from "
                f"{self.first_day(0):%Y-%m-%d}{hint}): start later, add an earlier model, or pass "
                "--before-first skip to leave them unscored")
        return idx

    def for_window(self, start: Any) -> int:
        """The segment that scores a window starting at ``start`` (a walk-forward fold's test)."""
        return int(self.segments_of([start], "test window")[0])

    def spec(self, k: int, like: Any) -> Any:
        """``like`` (a ModelSpec) with segment ``k``'s model and adapter."""
        seg = self.segments[k]
        return dataclasses.replace(like, base=seg.model, adapter=seg.adapter)


def load_schedule(path: str | Path, gap_days: int = 0, before_first: str = "refuse",
                  today: dt.date | None = None) -> ModelSchedule:
    """Read and validate a schedule file (see the module docstring).

    Raises:
        ConfigError: a missing or unreadable file, a bad row, unsorted or duplicate cutoffs, a
            cutoff after ``today``, or a row whose model or adapter cannot be loaded; each names
            the file and the row.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"--model-schedule {str(path)!r} not found; pass a YAML or CSV file of "
                          "cutoff, model[, adapter] rows")
    rows = _rows(path)
    if not rows:
        raise ConfigError(f"--model-schedule {path}: no rows; give one cutoff, model[, adapter] "
                          "row per model")
    segments = tuple(_segment(path, n, row) for n, row in enumerate(rows, start=1))
    _check_order(path, segments, today or dt.date.today())
    for seg in segments:
        _check_loadable(path, seg)
    return ModelSchedule(str(path), segments, gap_days, before_first)


def _rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"cutoff", "model"} <= set(reader.fieldnames):
            raise ConfigError(f"--model-schedule {path}: the CSV header must be cutoff,model"
                              f"[,adapter]; got {reader.fieldnames}")
        return [dict(row) for row in reader]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--model-schedule {path} is not valid YAML: {exc}") from exc
    data = data.get("models") if isinstance(data, dict) else data
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ConfigError(f"--model-schedule {path}: expected a list of {{cutoff, model, adapter}} "
                          "mappings (or models: [...])")
    return data


def _segment(path: Path, n: int, row: dict[str, Any]) -> Segment:
    unknown = sorted(set(row) - set(_COLUMNS))
    if unknown:
        raise ConfigError(f"--model-schedule {path} row {n}: unknown column(s) {unknown}; use "
                          "cutoff, model, adapter")
    try:
        cutoff = dt.date.fromisoformat(str(row.get("cutoff") or "").strip()[:10])
    except ValueError:
        raise ConfigError(f"--model-schedule {path} row {n}: cutoff {row.get('cutoff')!r} is not "
                          "a date; use YYYY-MM-DD (the last day of the model's training data)") from None
    model = str(row.get("model") or "").strip()
    if not model:
        raise ConfigError(f"--model-schedule {path} row {n}: the model is empty; give an alias, "
                          "a local folder or a hub id")
    adapter = str(row.get("adapter") or "").strip() or None
    return Segment(cutoff, _local(path, model), _local(path, adapter) if adapter else None, n)


def _local(path: Path, value: str) -> str:
    """``value`` read from the schedule's folder when it names a file or folder there."""
    beside = path.parent / value
    return str(beside) if not Path(value).is_absolute() and beside.exists() else value


def _check_order(path: Path, segments: tuple[Segment, ...], today: dt.date) -> None:
    for before, seg in zip(segments, segments[1:], strict=False):
        if seg.cutoff <= before.cutoff:
            what = "repeats" if seg.cutoff == before.cutoff else "comes before"
            raise ConfigError(f"--model-schedule {path} row {seg.row}: cutoff {seg.cutoff} {what} "
                              f"row {before.row}'s {before.cutoff}; list each cutoff once, in "
                              "increasing order")
    future = [seg for seg in segments if seg.cutoff > today]
    if future:
        raise ConfigError(f"--model-schedule {path} row {future[0].row}: cutoff {future[0].cutoff} "
                          f"is in the future (today is {today}); a cutoff is the last day of the "
                          "model's training data")


def _check_loadable(path: Path, seg: Segment) -> None:
    from llmbt.signals_cache.model.loading import ModelSpec, check_base

    try:
        check_base(ModelSpec(base=seg.model, adapter=seg.adapter))
    except LlmbtError as exc:
        raise ConfigError(f"--model-schedule {path} row {seg.row} ({seg.model}): cannot be "
                          f"loaded: {exc}") from exc
