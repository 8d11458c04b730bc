"""Where and in which precision a model runs: the resolved device and dtype, and the bitsandbytes
quantization config (8-bit, or 4-bit nf4). torch and transformers are imported lazily."""

from __future__ import annotations

from typing import Any

from llmbt.errors import ConfigError, require


def resolve_device_dtype(device: str, dtype: str) -> tuple[str, str]:
    """Resolved (device, dtype): auto is cuda when present; float32 on CPU, else bf16/fp16.

    Raises:
        ConfigError: ``device`` is cuda and there is no CUDA GPU.
    """
    import torch

    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ConfigError("--device cuda: no CUDA GPU is available here; use --device cpu.")
    device = ("cuda" if cuda else "cpu") if device == "auto" else device
    if dtype != "auto" or device == "cpu":
        return device, "float32" if dtype == "auto" else dtype
    return device, "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def bnb_config(quantization: str, device: str, dtype: str) -> Any:
    """bitsandbytes config (4bit: nf4 with double quantization), or None for ``none``.

    Raises:
        ConfigError: 8-bit asked for on the CPU.
    """
    if quantization == "none":
        return None
    if quantization == "8bit" and device == "cpu":
        raise ConfigError("--quantization 8bit needs a CUDA GPU; use 4bit or none on CPU.")
    require("bitsandbytes", "gpu", f"--quantization {quantization}")
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    nf4 = {"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    compute = torch.float32 if device == "cpu" else getattr(torch, dtype)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute, **nf4)
