"""``bt score``: the local model provider. Headlines (or rendered prompts) in, one JSON line per item
out, through the signal cache, so a live system and the backtest get the same numbers.

Input is a JSONL or CSV file, or stdin (``-``, the default). From a pipe it is read as it arrives:
items are scored in batches of up to ``--batch-size``, a batch closes early when no more input is
waiting, and each batch's lines are flushed at once, so a system that writes one headline and
waits gets its line back.
"""

from __future__ import annotations

import csv
import json
import os
import select
import stat
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import click

from llmbt.cli.base import cli, precision_option
from llmbt.engine.config import QUANTIZATIONS
from llmbt.errors import DataError

_EXAMPLE = {"headlines": '{"timestamp": "2024-05-01T13:30:00Z", "symbol": "AAPL", '
                         '"headline": "Apple beats estimates"}',
            "prompts": '{"symbol": "AAPL", "prompt": "<the rendered prompt>"}'}


@cli.command("score")
@click.argument("source", default="-", type=click.Path(dir_okay=False, allow_dash=True, exists=True))
@click.option("--mode", type=click.Choice(["headlines", "prompts"]), default="headlines",
              show_default=True, help="Items carry a headline, or a prompt already rendered.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None,
              help="Input format (default: csv for a .csv file, else jsonl).")
@click.option("--model", default="smollm2-135m", show_default=True,
              help="Scoring model: alias, local folder, .gguf file or Hugging Face id.")
@click.option("--adapter", default=None, help="peft (LoRA) adapter folder applied to --model.")
@click.option("--quantization", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
              help="bitsandbytes quantization of --model (as bt run --quantization).")
@precision_option("auto")
@click.option("--anonymize", is_flag=True, help="Mask company names and tickers in each headline "
              "(Company A = the item's symbol) before scoring, as bt run --anonymize does.")
@click.option("--names", default=None, help="CSV symbol,company of the names --anonymize masks, "
              "e.g. ../shared/data/news/sp500_companies.csv.")
@click.option("--prompt", default=None, help="Template version: of the headlines (default "
              "headlines-v2, as portfolio runs use), or the one --mode prompts were rendered with.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Most items per scored batch (and per flush).")
@click.option("--cache-dir", default=None, help="Signal cache folder (default $LLMBT_HOME/signals).")
@click.option("--no-calibration", is_flag=True, help="Ignore the temperature bt evaluate "
              "--calibrate-on stored beside --adapter: the raw probabilities.")
@click.option("--model-schedule", default=None, help="YAML or CSV of cutoff, model[, adapter] "
              "rows: each item is scored by the latest model whose cutoff precedes its timestamp "
              "(as bt run --model-schedule); records then name the model and its cutoff.")
@click.option("--cutoff-gap", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --model-schedule: days a cutoff must precede an item by, beyond the next day.")
@click.option("--before-first", type=click.Choice(("refuse", "skip")), default="refuse",
              show_default=True, help="With --model-schedule: refuse items before the first "
              "cutoff, or skip them (null scores).")
def score(source: str, mode: str, fmt: str | None, model: str, adapter: str | None,
          quantization: str, precision: str, anonymize: bool, names: str | None, prompt: str | None,
          batch_size: int, cache_dir: str | None, no_calibration: bool, model_schedule: str | None,
          cutoff_gap: int, before_first: str) -> None:
    """Score headlines (or rendered prompts) and write one JSON line per item: symbol, timestamp,
    label, score, confidence, label_mass, fingerprint, template. The model flags mean what they
    mean for bt run (the same spec, cache keys and masking), so a run scored with them gets the
    same numbers here; an --adapter with a stored temperature (llmbt_calibration.json) gives the
    calibrated probabilities.

    Example: echo '{"symbol": "AAPL", "headline": "Apple beats estimates"}' | bt score
    """
    from llmbt.engine.config import RunConfig
    from llmbt.engine.signals import run_request
    from llmbt.signals_cache.provider import ScoreStream

    config = RunConfig(model=model, adapter=adapter, quantization=quantization, precision=precision,
                       calibrate=not no_calibration, anonymize=anonymize, names=names,
                       model_schedule=model_schedule, cutoff_gap=cutoff_gap,
                       before_first=before_first, prompt=prompt, cache_dir=cache_dir,
                       batch_size=batch_size)
    req = run_request(config, mode=mode, progress=False)  # bt run's scorer: its cache keys
    fmt = fmt or ("csv" if source.lower().endswith(".csv") else "jsonl")
    with ScoreStream(req) as stream, _open(source) as handle:
        lines = Lines(handle)
        rows = _csv_rows(lines, mode) if fmt == "csv" else _jsonl_rows(lines, mode)
        for batch in batches(rows, batch_size, lines.ready):
            out = stream.score([item for _, item in batch], first_line=batch[0][0])
            click.echo("\n".join(json.dumps(rec) for rec in out))
            sys.stdout.flush()


def _open(source: str) -> IO[bytes]:
    return click.open_file(source, "rb")


class Lines:
    """Text lines of a binary stream, read as they arrive from a pipe, and whether another line
    can be had without waiting (:meth:`ready`)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.fd, self.number = handle, _pipe_fd(handle), 0
        self._pending: deque[bytes] = deque()
        self._rest = b""

    def __iter__(self) -> Iterator[str]:
        raw = self._pipe_lines() if self.fd is not None else iter(self.handle)
        for line in raw:
            self.number += 1
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"line {self.number} is not UTF-8 ({exc.reason}); "
                                "write the input as UTF-8") from exc

    def _pipe_lines(self) -> Iterator[bytes]:
        while True:
            while self._pending:
                yield self._pending.popleft()
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                if self._rest:
                    yield self._rest
                return
            parts = (self._rest + chunk).split(b"\n")
            self._rest = parts.pop()
            self._pending.extend(p + b"\n" for p in parts)

    def ready(self) -> bool:
        """True unless reading the next line from a pipe would wait for its writer."""
        if self.fd is None or self._pending:
            return True
        return bool(select.select([self.fd], [], [], 0)[0])


def _pipe_fd(handle: IO[bytes]) -> int | None:
    """The descriptor of a pipe, terminal or socket (read as it arrives); None for a file or a
    stream without one (read in full batches)."""
    if sys.platform == "win32" or not hasattr(handle, "fileno"):
        return None
    try:
        fd = handle.fileno()
    except OSError:  # io.UnsupportedOperation: an in-memory stream, e.g. click's test runner
        return None
    mode = os.fstat(fd).st_mode
    return fd if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode) else None


def batches(rows: Iterable[tuple[int, Any]], size: int,
            ready: Callable[[], bool]) -> Iterator[list[tuple[int, Any]]]:
    """Lists of up to ``size`` rows; a list closes early when ``ready()`` says input would wait."""
    batch: list[tuple[int, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size or not ready():
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl_rows(lines: Lines, mode: str) -> Iterator[tuple[int, Any]]:
    for text in lines:
        n = lines.number
        if not text.strip():
            raise DataError(f"line {n} is empty; write one JSON object per line, e.g. {_EXAMPLE[mode]}")
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {n} is not valid JSON ({exc.msg}, column {exc.colno}); write "
                            f"one object per line, e.g. {_EXAMPLE[mode]}") from exc
        if not isinstance(row, dict):
            raise DataError(f"line {n} is a JSON {type(row).__name__}, not an object; write "
                            f"one object per line, e.g. {_EXAMPLE[mode]}")
        yield n, _item(row, n, mode)


def _csv_rows(lines: Lines, mode: str) -> Iterator[tuple[int, Any]]:
    from llmbt.signals_cache.provider import MODES

    reader = csv.DictReader(iter(lines))
    if reader.fieldnames is None or MODES[mode] not in reader.fieldnames:
        raise DataError(f"line 1: the CSV header {reader.fieldnames or []} has no {MODES[mode]!r} "
                        f"column; name the columns timestamp,symbol,{MODES[mode]}")
    for row in reader:
        yield reader.line_num, _item(row, reader.line_num, mode)


def _item(row: dict[str, Any], n: int, mode: str) -> Any:
    from llmbt.signals_cache.provider import MODES, Item

    key = MODES[mode]
    text = row.get(key)
    if key not in row:
        raise DataError(f"line {n} has no {key!r} field (got {sorted(row)}); give each item one, "
                        f"e.g. {_EXAMPLE[mode]}")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"line {n} has an empty {key!r}; drop that line or fill it in")
    symbol, stamp = row.get("symbol"), row.get("timestamp")
    return Item(text=text, symbol=None if symbol in (None, "") else str(symbol),
                timestamp=None if stamp in (None, "") else str(stamp))
