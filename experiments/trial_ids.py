"""What identifies a trial of the ledger (:mod:`llmbt.experiments.trials`): the data it saw, what scored
its signals, and the key of its configuration.

- the **data fingerprint** covers the prices source (``--data``), ``--interval``, ``--symbols``,
  ``--select``, ``--membership``, ``--news`` and ``--news-tz``; a local file stands for its resolved
  path, size and modification time (a folder: those of its files), a remote source for its URI;
- the **scorer fingerprint** is ``none`` for a run that scored nothing (``sma_cross``), else a hash of
  the scorer kind, model, adapter, quantization, precision, prompt, mode, calibration, anonymization and
  the signal cache's own fingerprint of the scorer (``scorer fingerprint`` in the run facts);
- a **configuration** is (data, strategy, parameters with their defaults, scorer, first and last
  traded bar): recording one again replaces it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

NO_SCORER = "none"
#: Sources read from a local file named after the scheme (``csv:PATH``); the others (``sample:``,
#: ``yahoo:``, ``ccxt:``, a news provider's ``finnhub:``) stand for their URI.
FILE_SCHEMES = ("csv", "parquet")


def digest(value: Any) -> str:
    """16 hex digits of the sha256 of ``value`` as sorted JSON (non-JSON values as ``str``)."""
    blob = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_identity(path: Path) -> dict[str, Any]:
    """A local file as its resolved path, size and ``mtime_ns``; a folder as its path and a hash of
    the names, sizes and times of the files in it (not recursive)."""
    path = path.expanduser().resolve()
    if path.is_dir():
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                       for p in path.iterdir() if p.is_file())
        return {"path": str(path), "files": digest(files)}
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def source_identity(value: str | None) -> Any:
    """``value`` (a ``--data``/``--news``/``--symbols``/``--membership`` value) as a file identity
    when it names a local file or folder (a path, or ``csv:``/``parquet:`` and a path), else the
    string itself (a URI such as ``sample:GOOG`` or ``yahoo:AAPL``, a symbol list); None stays None."""
    if value is None or not str(value).strip():
        return value
    text = str(value)
    scheme, sep, rest = text.partition(":")
    if sep and scheme.lower() in FILE_SCHEMES and Path(rest).expanduser().exists():
        return {"scheme": scheme.lower(), **file_identity(Path(rest))}
    if Path(text).expanduser().exists():
        return file_identity(Path(text))
    return text


def data_fingerprint(run: Mapping[str, Any]) -> str:
    """The data fingerprint of a run configuration (``RunConfig.to_dict()`` or the ``run`` of a
    results folder's ``config.json``); see the module docstring."""
    parts = {"data": source_identity(run.get("data")), "interval": run.get("interval") or "1d",
             "symbols": source_identity(run.get("symbols")), "select": run.get("select"),
             "membership": source_identity(run.get("membership")),
             "news": source_identity(run.get("news")), "news_tz": run.get("news_tz")}
    return digest(parts)


def scorer_fingerprint(config: Any, info: Mapping[str, Any]) -> str:
    """The scorer fingerprint of a run of ``config`` (a ``RunConfig``) whose signal facts are ``info``
    (``RunResult.signal_info``): :data:`NO_SCORER` when nothing was scored (no facts)."""
    if not info:
        return NO_SCORER
    ids = config.id_dict()  # the precision as ``engine``, its name before the rename: ids stay
    parts = {"kind": config.scorer, "model": config.model, "adapter": config.adapter,
             "quantization": config.quantization, "engine": ids["engine"], "prompt": config.prompt,
             "mode": config.mode, "calibrate": config.calibrate, "anonymize": config.anonymize,
             "names": source_identity(config.names) if config.anonymize else None,
             "cache": info.get("scorer fingerprint")}
    return digest(parts)


def combined_scorer(fingerprints: Sequence[str]) -> str:
    """One scorer fingerprint for returns stitched from several runs (a walk-forward's folds): the
    fingerprint itself when every run had the same, else a hash of them in order."""
    distinct = list(dict.fromkeys(fingerprints))
    return distinct[0] if len(distinct) == 1 else digest(list(fingerprints))


def bar_text(when: Any) -> str:
    """A bar's time as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC; naive times are UTC): sortable text."""
    ts = pd.Timestamp(when)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def config_key(data: str, strategy: str, params: Mapping[str, Any], scorer: str, first: str,
               last: str) -> str:
    """The key of a configuration: one row of the ledger per key."""
    return digest([data, strategy, dict(params), scorer, first, last])
