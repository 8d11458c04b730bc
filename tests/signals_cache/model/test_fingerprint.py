"""The base model's fingerprint names its weights: a local folder by its files' bytes (whatever
their size and mtime), a hub id by the commit of its snapshot in the hub cache (a fake cache
layout here: ``models--owner--name/snapshots/<sha>/`` and ``refs/main``; nothing is downloaded)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from helpers import save_tiny

from llmbt.errors import LlmbtError
from llmbt.signals_cache.model import hashing
from llmbt.signals_cache.model.loading import ModelSpec, base_fingerprint, load_model

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
REPO = "tiny-owner/tiny-llama"


pytestmark = pytest.mark.usefixtures("llmbt_home")


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache in use (HF_HUB_CACHE), online (no HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return tmp_path / "hub"


def put_snapshot(hub: Path, model: Path, commit: str) -> Path:
    """``model`` cached as commit ``commit`` of :data:`REPO`, which ``refs/main`` now points to."""
    repo = hub / ("models--" + REPO.replace("/", "--"))
    if not (repo / "snapshots" / commit).is_dir():
        shutil.copytree(model, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo / "snapshots" / commit


def hub_fingerprint(commit: str) -> str:
    return hashlib.sha256(f"hub:{REPO}@{commit}".encode()).hexdigest()[:16]


def test_folder_rewritten_with_the_same_size_and_mtime_changes_fingerprint(
    tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashing, "RACY_NS", 0)  # memoise at once, as for weights saved long ago
    folder = save_tiny(tmp_path / "m", tokenizer_dir, seed=0)
    weights = folder / "model.safetensors"
    before, old = base_fingerprint(ModelSpec(base=str(folder))), weights.stat()
    save_tiny(folder, tokenizer_dir, seed=1)  # other weights of the same shape...
    for path in folder.iterdir():  # ...with the old mtimes, as cp -p, rsync -t or tar leave them
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    assert base_fingerprint(ModelSpec(base=str(folder))) != before


def test_a_file_just_written_is_hashed_again(tmp_path: Path, llmbt_home: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x" * 64)
    assert hashing.file_sha256(path) == hashlib.sha256(b"x" * 64).hexdigest()
    assert not (llmbt_home / "fingerprints.json").exists()  # racily clean: not memoised yet


def test_hub_fingerprint_follows_the_cached_commit(hub: Path, tmp_path: Path,
                                                   tokenizer_dir: Path) -> None:
    put_snapshot(hub, save_tiny(tmp_path / "a", tokenizer_dir, seed=0), COMMIT_A)
    spec = ModelSpec(base=REPO, device="cpu")
    assert base_fingerprint(spec) == hub_fingerprint(COMMIT_A)
    put_snapshot(hub, save_tiny(tmp_path / "b", tokenizer_dir, seed=1), COMMIT_B)
    assert base_fingerprint(spec) == hub_fingerprint(COMMIT_B)
    assert Path(load_model(spec).source).name == COMMIT_B


def test_uncached_hub_id_is_fingerprinted_by_the_commit_it_downloads(
    hub: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    real, calls = huggingface_hub.snapshot_download, []

    def download(repo_id: str, **kwargs: object) -> str:
        if not kwargs.get("local_files_only"):
            calls.append(kwargs)
            put_snapshot(hub, tiny, COMMIT_A)  # what the hub's main branch holds now
        return real(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    spec = ModelSpec(base=REPO, device="cpu")
    first = base_fingerprint(spec)  # before the model is in the cache
    put_snapshot(hub, tiny, COMMIT_A)  # as loading it would leave the cache
    assert base_fingerprint(spec) == first == hub_fingerprint(COMMIT_A)
    assert len(calls) == 1 and "*.safetensors" in calls[0]["allow_patterns"]


def test_uncached_hub_id_offline_has_no_fingerprint(hub: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LlmbtError, match="not cached and HF_HUB_OFFLINE is set"):
        base_fingerprint(ModelSpec(base=REPO))
