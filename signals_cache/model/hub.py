"""A Hugging Face hub model as a local snapshot folder pinned to one commit.

The hub cache keeps each downloaded revision in ``models--owner--name/snapshots/<commit>/`` and
the commit a branch points to in ``refs/<branch>``; a commit names its files' content, so the
snapshot folder's name is what the model fingerprint records for a hub id
(:func:`~llmbt.signals_cache.model.loading.base_fingerprint`). A hub id that is not cached yet is
downloaded *before* it is fingerprinted or loaded, so the cache key and the loaded weights always
name the same commit (never a bare ``owner/name`` that follows the branch). huggingface_hub is
imported lazily. A download that fails is one line saying what failed, not just "unreachable"
(:func:`hub_failure`; :func:`llmbt.feeds.network.classify` reads the huggingface_hub or httpx error).
"""

from __future__ import annotations

import os
from pathlib import Path

from llmbt.errors import LlmbtError
from llmbt.feeds.network import AUTH, NOT_FOUND, classify

_MISSING = ("not a valid model identifier", "not a valid repository name")

HUB_FIX = (
    "Use a local folder, set HF_HUB_OFFLINE=1 with a pre-downloaded snapshot, "
    "or the embedded alias smollm2-135m."
)
#: What a download fetches: config, tokenizer and safetensors weights (loads never use the others).
HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken"]


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set (read now: huggingface_hub
    reads it only once, when it is imported)."""
    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot folder (``snapshots/<commit>``) of hub model ``repo_id``: the cached one
    ``refs/main`` points to, else downloaded now (config, tokenizer and safetensors files only).

    Raises:
        LlmbtError: not cached while offline, or the hub cannot be reached.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        if hub_offline():
            raise LlmbtError(f"--model {repo_id!r}: not cached and HF_HUB_OFFLINE is set. "
                             f"{HUB_FIX}") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except (OSError, ValueError) as exc:  # huggingface_hub's HTTP errors are OSErrors
        raise LlmbtError(hub_failure(repo_id, exc, HUB_FIX)) from exc


def hub_commit(repo_id: str) -> str:
    """The commit of ``repo_id``'s snapshot (:func:`hub_snapshot`): its folder's name."""
    return hub_snapshot(repo_id).name


def hub_failure(source: str, exc: BaseException, fix: str) -> str:
    """``--model SOURCE: the hub ... (first line of the error). FIX``.

    Args:
        source: the hub id that was asked for.
        exc: what transformers raised.
        fix: the advice for working without the hub.
    """
    failure = classify(exc)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind = NOT_FOUND if any(m in reason for m in _MISSING) else failure.kind
    says = {NOT_FOUND: " has no such model (check the id; a private one needs `hf auth login`)",
            AUTH: " refused access (a gated or private model: accept its terms on the hub and "
                  "log in with `hf auth login`)"}.get(kind, failure.says())
    return f"--model {source!r}: the hub{says} ({reason}). {fix}"
