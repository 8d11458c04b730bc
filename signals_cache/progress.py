"""Progress bars: llmbt's own (rich, on stderr) and whether transformers shows its bars.

One switch decides both, the CLI's logging set-up (``bt -v``/``-q``):

* llmbt's bars (scoring, fine-tuning: items done of the total, rate, time left) show unless the
  ``llmbt`` logger was set above INFO (``bt -q``); library callers who set up no logging keep
  them. On a terminal they are rich bars; where stderr is not a terminal (a pipe, a log file, CI)
  rich draws nothing, so :class:`PlainProgress` writes the same facts as a plain line when a task
  starts, every :data:`PLAIN_EVERY_S` seconds and when it completes.
* transformers' own bars ("Loading weights", "Converting and de-quantizing GGUF tensors",
  "Writing model shards") follow :func:`show_transformers_bars`, through transformers' documented
  ``enable_progress_bar``/``disable_progress_bar``. transformers is not imported for it (a second of
  start-up for commands that load no model): the choice is applied at once when transformers is
  already imported, else by :func:`apply_transformers_bars`, which model loading calls first.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

#: Seconds between two :class:`PlainProgress` lines of one task.
PLAIN_EVERY_S = 10.0
_transformers_bars: bool | None = None  # None: leave transformers' own setting alone


def show_transformers_bars(show: bool | None) -> None:
    """Show (True) or hide (False) transformers' progress bars from now on; None leaves them be."""
    global _transformers_bars
    _transformers_bars = show
    if "transformers" in sys.modules:
        apply_transformers_bars()


def apply_transformers_bars() -> None:
    """Apply :func:`show_transformers_bars`' choice to transformers (imports it; no-op when unset)."""
    if _transformers_bars is None:
        return
    from transformers.utils import logging as hf_logging

    (hf_logging.enable_progress_bar if _transformers_bars else hf_logging.disable_progress_bar)()


def progress_wanted(enabled: bool) -> bool:
    """``enabled`` and the ``llmbt`` logger not set above INFO (``bt -q``)."""
    return enabled and not logging.getLogger("llmbt").level > logging.INFO


def bars_wanted(enabled: bool) -> bool:
    """:func:`progress_wanted`, on a terminal (where rich draws its bars)."""
    return progress_wanted(enabled) and sys.stderr.isatty()


def progress_bar(enabled: bool, *columns: str, unit: str = "items") -> Progress | PlainProgress:
    """A transient rich progress bar on stderr (description, bar, n/total, extra text ``columns``
    such as ``"loss {task.fields[loss]}"``, ``unit``s a second, time left); when progress is
    wanted but stderr is not a terminal, :class:`PlainProgress` lines instead; disabled unless
    :func:`progress_wanted`."""
    if progress_wanted(enabled) and not sys.stderr.isatty():
        return PlainProgress(columns, unit)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(c) for c in columns),
        _Rate(unit),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not bars_wanted(enabled),
        transient=True,
    )


class _Rate(ProgressColumn):
    """rich's running estimate of ``unit``s a second ("?" before the first advance)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"? {self.unit}/s",
                    style="progress.data.speed")


@dataclass
class _PlainTask:
    description: str
    total: float
    fields: dict[str, Any]
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)
    said_at: float = field(default_factory=time.monotonic)
    finished: bool = False


class PlainProgress:
    """The part of rich's ``Progress`` llmbt uses (a context manager; ``start``, ``stop``,
    ``add_task``, ``update``, ``advance``) as plain lines on stderr, e.g.
    ``scoring: 160/603 prompts (27%), 12.3 prompts/s, about 0:00:36 left``: one when a task
    with a total starts, one every :data:`PLAIN_EVERY_S` seconds and one when it completes."""

    def __init__(self, columns: tuple[str, ...] = (), unit: str = "items") -> None:
        self.columns, self.unit, self.tasks = columns, unit, []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Nothing to draw: lines are written as tasks advance."""

    def stop(self) -> None:
        """Nothing to clear: the lines stay."""

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        """A new task; its first line when it has something to do."""
        self.tasks.append(_PlainTask(description, float(total or 0), fields))
        if total:
            self._say(self.tasks[-1])
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1.0) -> None:
        """``advance`` more items of ``task_id`` done."""
        self.update(task_id, advance=advance)

    def update(self, task_id: int, advance: float = 0.0, **fields: Any) -> None:
        """Advance ``task_id`` and set its ``fields``; a line when due or when it completes."""
        task = self.tasks[task_id]
        task.completed += advance
        task.fields.update(fields)
        task.finished = task.finished or (task.total > 0 and task.completed >= task.total)
        if task.total and (task.finished or time.monotonic() - task.said_at >= PLAIN_EVERY_S):
            self._say(task)

    def _say(self, task: _PlainTask) -> None:
        if task.said_at < 0:  # its completion line was written already
            return
        sys.stderr.write(plain_line(task, self.columns, self.unit) + "\n")
        sys.stderr.flush()
        task.said_at = -1.0 if task.finished else time.monotonic()


def plain_line(task: Any, columns: tuple[str, ...] = (), unit: str = "items") -> str:
    """One :class:`PlainProgress` line of ``task``: done/total, share, rate and time left (time
    taken once complete), then the extra ``columns`` once their fields are set."""
    seconds = time.monotonic() - task.started
    line = (f"{task.description}: {task.completed:g}/{task.total:g} {unit} "
            f"({task.completed / task.total:.0%})")
    rate = task.completed / seconds if seconds > 0 and task.completed else 0.0
    if rate:
        line += f", {rate:.1f} {unit}/s"
        left = task.total - task.completed
        line += (f", done in {seconds:.1f} s" if task.finished
                 else f", about {dt.timedelta(seconds=round(left / rate))} left")
    if any(str(v) for v in task.fields.values()):
        line += "".join(f", {c.format(task=task)}" for c in columns)
    return line
