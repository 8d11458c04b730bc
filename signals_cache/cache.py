"""A persistent, process-safe cache of label probabilities on top of :mod:`diskcache`.

Key: sha256 hex of (scoring version, model fingerprint, template version, prompt text). Value: a
JSON string of the label probabilities in :data:`~llmbt.signals_cache.scoring.labels.LABELS` order as the
model gives them, before normalisation (their sum is the label mass; JSON floats round-trip exactly).
Each entry is tagged with the model fingerprint so that one model's entries can be evicted at
once. Entries never expire and are never culled for size: the cache only shrinks
through :meth:`SignalCache.clear`.

Nothing read from the cache folder is ever unpickled: :class:`JsonTextDisk` stores only string
keys and JSON text values inline in SQLite, and refuses any other entry (e.g. a pickle planted in
a shared, writable ``--cache-dir``) with an error that names the folder and ``bt cache clear``.

Several processes may read and write one cache directory at the same time (SQLite WAL); opening
it is serialised by a file lock in the folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

from llmbt.errors import LlmbtError
from llmbt.paths import llmbt_home
from llmbt.signals_cache.scoring.labels import LABELS, SCORING_VERSION

#: Key of the run statistics entry (signal keys are 64 hex characters, so it cannot collide).
STATS_KEY = "llmbt:run-stats"


def cache_key(fingerprint: str, template_version: str, prompt: str) -> str:
    """The sha256 hex digest that identifies one (scoring version, model, template, prompt)
    signal (:data:`~llmbt.signals_cache.scoring.labels.SCORING_VERSION`)."""
    payload = json.dumps([SCORING_VERSION, fingerprint, template_version, prompt],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def default_directory() -> Path:
    """``llmbt_home()/signals``."""
    return llmbt_home() / "signals"


class JsonTextDisk(diskcache.Disk):
    """diskcache storage of ``str`` keys and JSON-text values only, inline in SQLite.

    diskcache's default :class:`~diskcache.Disk` unpickles keys and values it did not store
    raw, so whoever can write the cache folder could run code. This Disk never unpickles and
    never reads or deletes files: any entry that is not inline text is refused.
    """

    def put(self, key: Any) -> tuple[Any, bool]:
        """Database key of a ``str`` key; other key types are refused (they would be pickled)."""
        if type(key) is not str:
            raise LlmbtError(f"signal-cache keys must be str, got {type(key).__name__}.")
        return key, True

    def get(self, key: Any, raw: bool) -> str:
        """The stored key; a pickled (non-raw) or non-text key is refused, never unpickled."""
        if not raw or type(key) is not str:
            raise _refused(self._directory, "a key that is not plain text")
        return key

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> tuple:
        """``(size, mode, filename, value)`` of a text value, always inline (never a file)."""
        if read or type(value) is not str:
            raise LlmbtError(f"signal-cache values must be JSON text, got {type(value).__name__}.")
        return 0, diskcache.core.MODE_RAW, None, value

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> str:
        """The stored text; anything else (a pickle, a file, bytes) is refused, never loaded."""
        if mode != diskcache.core.MODE_RAW or filename is not None or type(value) is not str:
            raise _refused(self._directory, "a value that is not plain JSON text (a pickle?)")
        return value

    def remove(self, file_path: str) -> None:
        """Delete a value file, but only one inside the cache folder (this Disk writes none,
        so a file named by an entry was put there by someone else)."""
        root = Path(self._directory).resolve()
        target = (root / file_path).resolve()
        if target.is_relative_to(root) and target != root:
            super().remove(file_path)


def _refused(directory: str, what: str) -> LlmbtError:
    return LlmbtError(
        f"signal cache {directory} holds {what}; llmbt never unpickles or loads such entries. "
        f"Remove them with `bt cache clear --cache-dir {directory}` (or delete that folder)."
    )


@contextlib.contextmanager
def _opening_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/.open.lock`` while a process opens the cache:
    diskcache's opening (tables, settings, pragmas, the tag index) is not safe against another
    process opening the same new folder at once (SQLite answers "database is locked"; diskcache
    issue 266). Reads and writes after opening need no lock. Without ``fcntl`` (Windows) no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(directory / ".open.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class SignalCache:
    """Label probabilities per (model fingerprint, template version, prompt).

    Args:
        directory: cache folder, created when missing; default :func:`default_directory`.
    """

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        self.directory.mkdir(parents=True, exist_ok=True)
        with _opening_lock(self.directory):
            self._cache = diskcache.Cache(
                str(self.directory), disk=JsonTextDisk, tag_index=True, eviction_policy="none",
                statistics=False,
            )

    def __enter__(self) -> SignalCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SignalCache({str(self.directory)!r})"

    def close(self) -> None:
        """Close the database connections (the cache reopens them on the next use)."""
        self._cache.close()

    def get_many(
        self, fingerprint: str, template_version: str, prompts: Sequence[str]
    ) -> dict[int, np.ndarray]:
        """Cached label probabilities (unnormalised) by position in ``prompts``; positions not
        cached are absent.

        Raises:
            LlmbtError: an entry is not plain JSON text or not label probabilities.
        """
        found: dict[int, np.ndarray] = {}
        with self._cache.transact(retry=True):
            for i, prompt in enumerate(prompts):
                value = self._cache.get(cache_key(fingerprint, template_version, prompt))
                if value is not None:
                    found[i] = _decode(value)
        if found:
            check_label_mass(np.stack(list(found.values())), source=str(self.directory))
        return found

    def put_many(
        self,
        fingerprint: str,
        template_version: str,
        prompts: Sequence[str],
        probs: np.ndarray | Sequence[Sequence[float]],
    ) -> None:
        """Store one row of ``probs`` (shape ``(len(prompts), 3)``, label probabilities whose
        row sum, the label mass, is above 0 and at most 1) per prompt, atomically.

        Raises:
            LlmbtError: ``probs`` has the wrong shape, values outside [0, 1] or a row sum
                outside (0, 1].
        """
        rows = _check_probs(probs, len(prompts))
        with self._cache.transact(retry=True):
            for prompt, row in zip(prompts, rows, strict=True):
                key = cache_key(fingerprint, template_version, prompt)
                self._cache.set(key, json.dumps(row.tolist()), tag=fingerprint)

    def clear(self, model: str | None = None) -> int:
        """Remove the entries of one model fingerprint, or everything; returns the count."""
        if model is None:
            return self._cache.clear(retry=True)
        return self._cache.evict(model, retry=True)

    def record_run(self, hits: int, misses: int) -> None:
        """Store the hits/misses of the last run, and add them to the running totals."""
        with self._cache.transact(retry=True):
            previous = self._run_stats()
            self._cache.set(
                STATS_KEY,
                json.dumps(
                    {
                        "last_hits": int(hits),
                        "last_misses": int(misses),
                        "last_run_at": time.time(),
                        "total_hits": previous.get("total_hits", 0) + int(hits),
                        "total_misses": previous.get("total_misses", 0) + int(misses),
                    }
                ),
            )

    def stats(self) -> dict[str, Any]:
        """Entries, bytes on disk, and the recorded run statistics.

        Returns:
            ``{"directory", "entries", "size_bytes", "last_hits", "last_misses", "last_run_at",
            "total_hits", "total_misses"}``; ``last_run_at`` is an ISO 8601 date-time in UTC
            (``2026-12-06T23:05:12+00:00``); the run fields are ``None``/0 before any run.
        """
        with self._cache.transact(retry=True):
            run = self._run_stats()
            entries = len(self._cache) - (STATS_KEY in self._cache)
        return {
            "directory": str(self.directory),
            "entries": entries,
            "size_bytes": self._cache.volume(),
            "last_hits": run.get("last_hits"),
            "last_misses": run.get("last_misses"),
            "last_run_at": _utc_iso(run.get("last_run_at")),
            "total_hits": run.get("total_hits", 0),
            "total_misses": run.get("total_misses", 0),
        }

    def _run_stats(self) -> dict[str, Any]:
        value = self._cache.get(STATS_KEY)
        return json.loads(value) if value is not None else {}


def _utc_iso(epoch: float | None) -> str | None:
    """``epoch`` (seconds, as :meth:`SignalCache.record_run` stores it) as an ISO date-time in UTC."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _decode(value: str) -> np.ndarray:
    try:
        row = np.asarray(json.loads(value), dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise LlmbtError(f"corrupt signal-cache entry {value!r}; clear the signal cache.") from exc
    if row.shape != (len(LABELS),):
        raise LlmbtError(f"corrupt signal-cache entry {value!r}; clear the signal cache.")
    return row


def _check_probs(probs: np.ndarray | Sequence[Sequence[float]], n: int) -> np.ndarray:
    rows = np.asarray(probs, dtype=np.float64)
    if rows.shape != (n, len(LABELS)):
        raise LlmbtError(
            f"probabilities have shape {rows.shape}, expected ({n}, {len(LABELS)}): "
            f"one row per prompt, columns {', '.join(LABELS)}."
        )
    if not np.isfinite(rows).all():
        raise LlmbtError("probabilities contain NaN or infinity; refusing to cache them.")
    check_label_mass(rows)
    return rows


#: Rounding slack on a label mass of 1 (float32 logits, normalised rows).
MASS_TOLERANCE = 1e-6


def check_label_mass(rows: np.ndarray, source: str | None = None) -> None:
    """Refuse label-probability rows outside [0, 1] or whose sum is 0 or exceeds 1.

    Args:
        rows: ``(n, labels)`` probabilities.
        source: the cache folder they were read from, named in the error (None: a scorer).

    Raises:
        LlmbtError: naming the first bad row.
    """
    sums = rows.sum(axis=1)
    bad = np.flatnonzero((rows < 0).any(axis=1) | (rows > 1).any(axis=1)
                         | (sums > 1 + MASS_TOLERANCE) | (sums <= 0))
    if not bad.size:
        return
    where = f" in signal cache {source}" if source else ""
    fix = f"; clear it with `bt cache clear --cache-dir {source}`" if source else ""
    raise LlmbtError(f"label probabilities {rows[bad[0]].tolist()}{where} must lie in [0, 1] "
                     f"with a sum (the label mass) above 0 and at most 1{fix}.")
