"""Tests of llmbt.signals_cache.model.loading: specs, aliases, loading, adapters and fingerprints.

Fast tests use a tiny random Llama saved to a temporary folder (with the SmolLM2 tokenizer,
extracted once from the embedded GGUF and kept in pytest's cache, or a tiny trained tokenizer
when the package is missing) and go through the real loading path. ``-m slow`` loads the
embedded model itself.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from helpers import save_adapter, save_tiny

from llmbt.errors import ConfigError, LlmbtError
from llmbt.signals_cache.cache import cache_key
from llmbt.signals_cache.model import loading as model_mod
from llmbt.signals_cache.model.aliases import MODEL_ALIASES, ModelAlias, register_alias
from llmbt.signals_cache.model.loading import (
    ModelSpec,
    base_fingerprint,
    load_model,
    model_fingerprint,
)

pytestmark = pytest.mark.usefixtures("llmbt_home")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Path:
    return save_adapter(tiny, tmp_path_factory.mktemp("adapter"), scale=0.05)


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"quantization": "3bit"}, "--quantization"),
        ({"dtype": "float64"}, "dtype 'float64' is not valid"),
        ({"device": "tpu"}, "--device"),
        ({"base": ""}, "--model"),
        ({"base": "/no/such/folder"}, "--model"),
        ({"base": "missing.gguf"}, "--model"),
        ({"adapter": "/no/such/adapter"}, "--adapter"),
    ],
)
def test_bad_spec_fields_name_the_flag(kwargs: dict, flag: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(flag)):
        ModelSpec(**kwargs)


def test_bad_choice_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="Did you mean '4bit'"):
        ModelSpec(quantization="4bits")


def test_non_gguf_file_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a .gguf"):
        ModelSpec(base=str(tmp_path / "weights.bin"))


def test_unknown_alias_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'smollm2-135m'"):
        ModelSpec(base="smollm2-13m")


def test_duplicate_alias_refused() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_alias(ModelAlias("smollm2-135m", "again", lambda: "x"))
    assert "smollm2-135m" in MODEL_ALIASES


def test_adapter_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="adapter_config.json"):
        ModelSpec(adapter=str(tmp_path))


def test_offline_hub_id_explains_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(LlmbtError, match="HF_HUB_OFFLINE=1.*smollm2-135m"):
        load_model(ModelSpec(base="no-such-owner/no-such-model-llmbt"))
    assert time.perf_counter() - start < 5


def _hub_answer(error):
    """huggingface_hub's snapshot download (the hub's network call) raising ``error``; a look-up
    of the local cache finds nothing, as on a machine that never downloaded the model."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    def download(repo_id, *args, local_files_only=False, **kwargs):
        if local_files_only:
            raise LocalEntryNotFoundError("not in the local cache")
        raise error(repo_id)
    return download


def _repo_not_found(repo_id):
    import httpx2
    from huggingface_hub.errors import RepositoryNotFoundError

    url = f"https://huggingface.co/api/models/{repo_id}"
    return RepositoryNotFoundError(f"401 Client Error. Repository Not Found for url: {url}.",
                                   response=httpx2.Response(401, request=httpx2.Request("GET", url)))


def _connect_timeout(repo_id):
    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        raise httpx2.ConnectTimeout("timed out")
    except httpx2.ConnectTimeout as exc:
        error = LocalEntryNotFoundError("cannot reach the hub and no cached snapshot")
        error.__cause__ = exc
        return error


@pytest.mark.parametrize(("error", "line"), [
    (_repo_not_found, r"^--model 'no-such-owner/no-such-model-llmbt': the hub has no such model "
                      r"\(check the id; a private one needs `hf auth login`\) \(401 Client Error\. "
                      r"Repository Not Found for url: "),
    (_connect_timeout, r"^--model 'no-such-owner/no-such-model-llmbt': the hub timed out \(cannot "
                       r"reach the hub and no cached snapshot\)\. Use a local folder"),
])
def test_a_hub_failure_says_what_failed(monkeypatch: pytest.MonkeyPatch, error, line) -> None:
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _hub_answer(error))
    with pytest.raises(LlmbtError, match=line) as info:
        load_model(ModelSpec(base="no-such-owner/no-such-model-llmbt"))
    assert "\n" not in str(info.value)


def test_cached_hub_snapshot_loads_offline(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-owner--tiny-llama"
    shutil.copytree(tiny, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(base="tiny-owner/tiny-llama", device="cpu")
    loaded = load_model(spec)
    assert Path(loaded.source).name == revision
    with pytest.raises(LlmbtError, match="not cached"):  # no commit, so no fingerprint
        base_fingerprint(ModelSpec(base="tiny-owner/other"))


def test_eight_bit_on_cpu_refused(tiny: Path) -> None:
    with pytest.raises(ConfigError, match="8bit needs a CUDA GPU"):
        load_model(ModelSpec(base=str(tiny), quantization="8bit", device="cpu"))


def test_load_local_folder(tiny: Path) -> None:
    loaded = load_model(ModelSpec(base=str(tiny), device="cpu", precision="float32"))
    assert not loaded.model.training
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.tokenizer.pad_token_id is not None
    assert re.fullmatch(r"[0-9a-f]{16}", loaded.fingerprint)
    assert (loaded.device, loaded.dtype) == ("cpu", "float32")
    assert loaded.fingerprint_for("v1") == model_fingerprint(loaded.spec, "v1")


def test_fingerprint_stable_and_memoised(
    tiny: Path, adapter: Path, llmbt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmbt.signals_cache.model import hashing

    monkeypatch.setattr(hashing, "RACY_NS", 0)  # the fixtures' files count as settled
    spec = ModelSpec(base=str(tiny), adapter=str(adapter))
    first = model_fingerprint(spec, "bars-v1")
    assert model_fingerprint(spec, "bars-v1") == first
    assert model_fingerprint(spec, "bars-v2") != first
    assert model_fingerprint(ModelSpec(base=str(tiny)), "bars-v1") != first
    assert model_fingerprint(ModelSpec(base=str(tiny), quantization="4bit"), "bars-v1") != (
        model_fingerprint(ModelSpec(base=str(tiny)), "bars-v1")
    )
    memo = json.loads((llmbt_home / "fingerprints.json").read_text())
    assert str((adapter / "adapter_model.safetensors").resolve()) in memo


def test_fingerprint_follows_adapter_weights(tiny: Path, tmp_path: Path) -> None:
    folder = save_adapter(tiny, tmp_path / "a", scale=0.0)
    spec = ModelSpec(base=str(tiny), adapter=str(folder))
    before = model_fingerprint(spec, "v1")
    save_adapter(tiny, folder, scale=0.01)
    assert model_fingerprint(spec, "v1") != before


def test_fingerprint_and_cache_key_follow_the_resolved_dtype_and_precision(tiny: Path) -> None:
    def keys(**kw) -> tuple[str, str]:
        fingerprint = model_fingerprint(ModelSpec(base=str(tiny), device="cpu", **kw), "v1")
        return fingerprint, cache_key(fingerprint, "v1", "the same prompt")

    by_dtype = {d: keys(dtype=d) for d in ("float32", "bfloat16", "float16")}
    assert len({f for f, _ in by_dtype.values()}) == len({k for _, k in by_dtype.values()}) == 3
    assert keys(dtype="auto") == by_dtype["float32"]  # auto is float32 on the CPU: one key
    bf16_precision = keys(precision="bf16")
    assert bf16_precision not in by_dtype.values() and bf16_precision != keys(precision="float32")


def test_adapter_loads_and_changes_outputs(tiny: Path, adapter: Path) -> None:
    ids = torch.tensor([[5, 6, 7, 8]])
    base = load_model(ModelSpec(base=str(tiny)))
    adapted = load_model(ModelSpec(base=str(tiny), adapter=str(adapter)))
    with torch.inference_mode():
        diff = (base.model(ids).logits - adapted.model(ids).logits).abs().max()
    assert diff > 1e-4
    assert adapted.fingerprint != base.fingerprint


def test_adapter_for_other_shape_refused(tiny: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    other = save_tiny(tmp_path / "other", tokenizer_dir, hidden=32)
    folder = save_adapter(other, tmp_path / "other-adapter")
    with pytest.raises(LlmbtError, match=f"does not fit --model '{re.escape(str(tiny))}'"):
        load_model(ModelSpec(base=str(tiny), adapter=str(folder)))


def test_adapter_metadata_fingerprint_checked(tiny: Path, adapter: Path, tmp_path: Path) -> None:
    folder = tmp_path / "meta-adapter"
    shutil.copytree(adapter, folder)
    (folder / "llmbt_adapter.json").write_text(json.dumps({"base_fingerprint": "0" * 16}))
    with pytest.raises(LlmbtError, match="trained on another base model"):
        load_model(ModelSpec(base=str(tiny), adapter=str(folder)))
    good = {"base_fingerprint": base_fingerprint(ModelSpec(base=str(tiny)))}
    (folder / "llmbt_adapter.json").write_text(json.dumps(good))
    load_model(ModelSpec(base=str(tiny), adapter=str(folder)))


def test_gguf_store_is_atomic(
    tiny: Path, tmp_path: Path, llmbt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF not really")

    def broken(source: Path, out: Path) -> None:
        out.mkdir()
        (out / "half-written").write_text("x")
        raise LlmbtError("killed mid-way")

    monkeypatch.setattr(model_mod, "_convert_gguf", broken)
    with pytest.raises(LlmbtError, match="killed"):
        load_model(ModelSpec(base=str(gguf)))
    assert not (llmbt_home / "models").exists() or not any((llmbt_home / "models").iterdir())
    calls = []
    monkeypatch.setattr(
        model_mod, "_convert_gguf", lambda s, out: calls.append(shutil.copytree(tiny, out))
    )
    first = load_model(ModelSpec(base=str(gguf)))
    load_model(ModelSpec(base=str(gguf)))
    assert len(calls) == 1
    assert Path(first.source).parent == llmbt_home / "models"


def test_four_bit_on_cpu(tiny: Path) -> None:
    pytest.importorskip("bitsandbytes")
    loaded = load_model(ModelSpec(base=str(tiny), quantization="4bit", device="cpu"))
    kinds = {type(m).__name__ for m in loaded.model.modules()}
    assert "Linear4bit" in kinds
    with torch.inference_mode():
        assert torch.isfinite(loaded.model(torch.tensor([[5, 6, 7]])).logits).all()


@pytest.mark.slow
def test_embedded_alias_converts_once(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.getbasetemp() / "llmbt-real-home"  # shared with test_scoring
    shutil.rmtree(home / "models" / "smollm2-135m", ignore_errors=True)
    monkeypatch.setenv("LLMBT_HOME", str(home))
    start = time.perf_counter()
    first = load_model(ModelSpec())
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    second = load_model(ModelSpec())
    second_s = time.perf_counter() - start
    assert (home / "models" / "smollm2-135m" / "llmbt_store.json").is_file()
    assert not [p for p in (home / "models").iterdir() if p.name.startswith(".")]
    assert second_s < first_s / 3, (first_s, second_s)
    assert second.fingerprint == first.fingerprint
    assert second.model.config.num_hidden_layers == 30
    assert "<|im_start|>" in second.tokenizer.chat_template
