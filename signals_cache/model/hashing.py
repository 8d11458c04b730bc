"""Content hashes of model files, memoised in ``llmbt_home()/fingerprints.json`` (what the model
and adapter fingerprints are built from), and the atomic text writes the memo and stores use."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from llmbt.paths import llmbt_home

#: A file changed less than this before it was hashed is not memoised: a rewrite within the same
#: timestamp tick would keep its stamp (git's "racily clean" rule).
RACY_NS = 2_000_000_000


def file_stamp(path: Path) -> list[int]:
    """What the memo of ``path``'s hash is valid for: size, mtime, ctime, inode and device.

    Size and mtime alone are not enough: ``cp -p``, ``rsync -t`` and ``tar`` give other weights the
    same ones. The ctime is set by the kernel on every write or ``utime`` and cannot be chosen.
    """
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def file_sha256(path: Path) -> str:
    """sha256 of a file's content, memoised by :func:`file_stamp` in ``fingerprints.json`` (not
    when the file changed within :data:`RACY_NS` before, or while, it was hashed)."""
    path, memo_path = Path(path).resolve(), llmbt_home() / "fingerprints.json"
    key, stamp, start = str(path), file_stamp(path), time.time_ns()
    entry = _read_memo(memo_path).get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    if file_stamp(path) == stamp and start - stamp[2] >= RACY_NS:
        memo = _read_memo(memo_path)  # re-read: another process may have added entries meanwhile
        memo[key] = {"stamp": stamp, "sha256": digest.hexdigest()}
        atomic_write_text(memo_path, json.dumps(memo, indent=1, sort_keys=True))
    return digest.hexdigest()


def _read_memo(path: Path) -> dict[str, Any]:
    try:
        memo = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError:
        memo = {}  # a damaged memo is only a cache: start afresh, the caller rewrites it
    return memo if isinstance(memo, dict) else {}


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def files_digest(files: dict[str, Path]) -> str:
    """sha256 over the named files' content hashes (name order, so renames count)."""
    parts = [f"{name}:{file_sha256(p)}" for name, p in sorted(files.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
