"""The store of trained artefacts: LoRA adapters and embedding heads, keyed by what decides them.

An adapter lives under ``$LLMBT_HOME/adapters/<hash>``, the hash covering the base weights, the
training and validation examples, the hyper-parameters (:meth:`TrainConfig.identity`) and the
parent adapter; a head under ``$LLMBT_HOME/heads/<hash>`` (base weights, examples, head
settings). Either is written to a temporary folder and renamed when complete, so an interrupted
training leaves nothing a later run could take for finished, and a re-run with the same inputs
reuses it: walk-forward folds, their arms and studies all train through here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmbt.paths import llmbt_home


def stored_adapter(spec: Any, train: Sequence[Any], val: Sequence[Any], tcfg: Any,
                   parent: str | None = None) -> tuple[str, dict[str, Any], bool]:
    """The adapter ``bt finetune`` trains on ``train``/``val`` from ``spec``'s base with ``tcfg``
    (warm-started from ``parent``), from the store when there.

    Returns:
        The adapter folder, its metadata and whether it was reused.
    """
    from llmbt.signals_cache.finetune.encoding import dataset_hash
    from llmbt.signals_cache.finetune.trainer import META_FILE, finetune
    from llmbt.signals_cache.model.loading import base_fingerprint
    from llmbt.signals_cache.model.quantization import resolve_device_dtype

    device = resolve_device_dtype(spec.device, spec.dtype)[0]
    key = _key([base_fingerprint(spec), dataset_hash(list(train)), dataset_hash(list(val)),
                tcfg.identity(device), parent])
    return _stored(llmbt_home() / "adapters" / key, META_FILE, lambda tmp: finetune(
        list(train), list(val), spec, tmp, tcfg, resume_adapter=parent, progress=True))


def stored_head(base: str, train: Sequence[Any], val: Sequence[Any],
                hcfg: Any) -> tuple[str, dict[str, Any], bool]:
    """The embedding head ``bt head train`` fits on ``train``/``val`` over ``base`` with ``hcfg``
    (:class:`~llmbt.signals_cache.heads.train.HeadConfig`), from the store when there.

    Returns:
        The head folder, its metadata and whether it was reused.
    """
    from llmbt.signals_cache.finetune.encoding import dataset_hash
    from llmbt.signals_cache.heads.linear import HEAD_META
    from llmbt.signals_cache.heads.scorer import HEAD_PRECISION
    from llmbt.signals_cache.heads.train import train_head
    from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint

    key = _key(["embeddings", base_fingerprint(ModelSpec(base=base, precision=HEAD_PRECISION)),
                dataset_hash(list(train)), dataset_hash(list(val)), dataclasses.asdict(hcfg)])
    return _stored(llmbt_home() / "heads" / key, HEAD_META,
                   lambda tmp: train_head(list(train), list(val), base, tmp, hcfg))


def _key(parts: list[Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stored(folder: Path, meta_file: str,
            train: Callable[[Path], dict[str, Any]]) -> tuple[str, dict[str, Any], bool]:
    if (folder / meta_file).is_file():
        return str(folder), json.loads((folder / meta_file).read_text()), True
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    meta = train(tmp)
    tmp.rename(folder)
    return str(folder), meta, False
